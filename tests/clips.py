"""Generate small test media with ffmpeg's lavfi sources (testsrc2, sine, still pictures).

Plain functions: each writes one file into the given directory and returns its path.
They are used by test fixtures and by ``bench/transcode.py``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

FFMPEG = "ffmpeg"
FONT_FILE = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def _run(args: Sequence[str], *, ffmpeg_bin: str = FFMPEG) -> None:
    subprocess.run(
        [ffmpeg_bin, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def make_clip(
    path: Path,
    *,
    width: int = 320,
    height: int = 180,
    duration: float = 4.0,
    fps: int = 30,
    audio: bool = True,
    faststart: bool = False,
    crf: int = 23,
    preset: str = "ultrafast",
    gop_seconds: float = 2.0,
    noise: bool = False,
    container: str | None = None,
    ffmpeg_bin: str = FFMPEG,
) -> Path:
    """Moving testsrc2 picture (H.264, MP4 unless ``container`` names another muxer),
    optionally with a mono 440 Hz AAC track. ``noise`` adds grain that defeats compression
    (about 2 MB per second at 320x240 and CRF 10), for uploads that must span many chunks."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={duration}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}"]
        args += ["-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "96k"]
    args += [
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-crf",
        str(crf),
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(max(1, int(fps * gop_seconds))),
    ]
    if noise:
        args += ["-vf", "noise=alls=60:allf=t"]
    if faststart:
        args += ["-movflags", "+faststart"]
    if container:
        args += ["-f", container]
    _run([*args, str(path)], ffmpeg_bin=ffmpeg_bin)
    return path


def make_landscape(directory: Path) -> Path:
    """320x180, 30 fps, 6 s, with audio."""
    return make_clip(directory / "landscape.mp4", width=320, height=180, duration=6.0)


def make_no_audio(directory: Path) -> Path:
    """320x180, 4 s, video only."""
    return make_clip(directory / "no_audio.mp4", width=320, height=180, duration=4.0, audio=False)


def make_rotated_portrait(directory: Path) -> Path:
    """Coded 320x180 with rotate=90 metadata, so it displays as 180x320 (a phone held upright)."""
    plain = make_clip(directory / "rotated_source.mp4", width=320, height=180, duration=4.0)
    rotated = directory / "rotated_portrait.mp4"
    _run(["-i", str(plain), "-map", "0", "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated)])
    plain.unlink()
    return rotated


def make_native_portrait(directory: Path) -> Path:
    """Coded 180x320 (portrait pixels, no rotation metadata), with audio."""
    return make_clip(directory / "native_portrait.mp4", width=180, height=320, duration=4.0)


def make_tiny(directory: Path) -> Path:
    """160x90, below a 240p lowest tier, with audio."""
    return make_clip(directory / "tiny.mp4", width=160, height=90, duration=3.0)


def make_interlaced(directory: Path, *, duration: float = 2.0) -> Path:
    """320x180 H.264 interlaced top field first (25 frames/s of 50 fields), MP4, no audio.

    testsrc2 moves every 1/50 s and each field is taken from its own picture, so moving
    edges comb as in camcorder 1080i/576i footage; x264 codes it as interlaced.
    """
    path = directory / "interlaced_tff.mp4"
    _run(
        [
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=320x180:rate=50:duration={duration}",
            "-vf",
            "interlace=scan=tff",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "50",
            "-flags",
            "+ildct+ilme",
            "-field_order",
            "tt",
            str(path),
        ]
    )
    return path


def make_dv_pal(directory: Path, *, duration: float = 2.0) -> Path:
    """PAL DV in AVI as MiniDV camcorders write it: 720x576 (16:15 pixels), bottom field first.

    The stream states no field order; only the decoded frames say they are interlaced.
    """
    path = directory / "dv_pal.avi"
    _run(
        [
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=720x576:rate=50:duration={duration}",
            "-vf",
            "interlace=scan=bff,setsar=16/15",
            "-c:v",
            "dvvideo",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "avi",
            str(path),
        ]
    )
    return path


def make_ten_bit(
    path: Path,
    *,
    encoder: str = "libx264",
    primaries: str | None = None,
    transfer: str | None = None,
    matrix: str | None = None,
    duration: float = 2.0,
) -> Path:
    """320x180 10-bit 4:2:0 (x264 High 10 or x265 Main 10), optionally tagged with colour
    primaries/transfer/matrix, e.g. ``bt2020``/``arib-std-b67``/``bt2020nc`` for a phone's HLG.

    The pixels are ordinary testsrc2 values: the tags make it HDR, not the picture.
    """
    args = [
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size=320x180:rate=30:duration={duration}",
        "-c:v",
        encoder,
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p10le",
    ]
    if encoder == "libx264":
        args += ["-profile:v", "high10"]
    else:
        args += ["-x265-params", "log-level=error"]
    for option, value in (("-color_primaries", primaries), ("-color_trc", transfer), ("-colorspace", matrix)):
        if value:
            args += [option, value]
    _run([*args, str(path)])
    return path


def make_truncated_faststart(directory: Path) -> Path:
    """MP4 with moov at the front (faststart), cut to 60%: ffprobe still reports the full duration."""
    full = make_clip(directory / "faststart_full.mp4", duration=4.0, faststart=True)
    data = full.read_bytes()
    truncated = directory / "truncated_faststart.mp4"
    truncated.write_bytes(data[: int(len(data) * 0.6)])
    full.unlink()
    return truncated


def make_cut_before_moov(directory: Path) -> Path:
    """MP4 with moov at the end, cut in the middle of mdat: the index is gone."""
    full = make_clip(directory / "moov_end_full.mp4", duration=4.0)
    data = full.read_bytes()
    cut = directory / "cut_before_moov.mp4"
    cut.write_bytes(data[: len(data) // 2])
    full.unlink()
    return cut


def make_not_video(directory: Path) -> Path:
    """A text file renamed .mp4."""
    path = directory / "not_video.mp4"
    path.write_text("These are lecture notes, not a video.\n" * 50)
    return path


def make_png_as_mp4(directory: Path) -> Path:
    """A PNG picture renamed .mp4."""
    path = directory / "picture.mp4"
    _run(
        [
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x64:duration=1",
            "-frames:v",
            "1",
            "-c:v",
            "png",
            "-f",
            "image2",
            str(path),
        ]
    )
    return path


def make_audio_only(directory: Path) -> Path:
    """AAC audio in an MP4 container and no video track."""
    path = directory / "audio_only.mp4"
    _run(["-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000:duration=3", "-c:a", "aac", str(path)])
    return path


def _still(source: str, *, width: int, height: int, fps: int, seconds: float) -> str:
    # one frame of an animated source, repeated: a slide that never changes
    frames = max(1, round(fps * seconds))
    return f"{source}=size={width}x{height}:rate={fps},trim=end_frame=1,loop=loop={frames - 1}:size=1,setpts=N/{fps}/TB"


def _text_slide(colour: str, title: str, *, width: int, height: int, fps: int, seconds: float) -> str:
    base = f"color=c={colour}:size={width}x{height}:rate={fps}:duration={seconds}"
    if not FONT_FILE.exists():
        # without a font, boxes stand in for lines of text
        boxes = [
            f"drawbox=x={width // 12}:y={height * k // 10}:w={width * 2 // 3}:h={height // 25}:color=white:t=fill"
            for k in (2, 4, 5, 6)
        ]
        return ",".join([base, *boxes])
    size_title, size_body = max(8, height // 11), max(6, height // 19)
    lines = [
        (title, size_title, height // 9),
        ("• first point about the topic", size_body, height // 3),
        ("• second point with numbers 12345", size_body, height * 4 // 9),
        ("• third point", size_body, height * 5 // 9),
    ]
    texts = [
        f"drawtext=fontfile={FONT_FILE}:text='{text}':fontsize={size}:fontcolor=white:x={width // 16}:y={y}"
        for text, size, y in lines
    ]
    return ",".join([base, *texts])


def make_slides(
    path: Path,
    *,
    width: int = 320,
    height: int = 180,
    slide_seconds: float = 2.0,
    slides: int = 3,
    fps: int = 30,
    audio: bool = True,
    crf: int = 18,
    preset: str = "veryfast",
    ffmpeg_bin: str = FFMPEG,
) -> Path:
    """Slide-like clip: static pictures (text slides, smptehdbars, testsrc2, mandelbrot) that
    change every ``slide_seconds``; ``slides`` pictures in total."""
    kinds = [
        lambda s: _text_slide("navy", "Lecture 1 - Introduction", width=width, height=height, fps=fps, seconds=s),
        lambda s: _still("testsrc2", width=width, height=height, fps=fps, seconds=s),
        lambda s: _text_slide("darkgreen", "Chapter 2 - Methods", width=width, height=height, fps=fps, seconds=s),
        lambda s: _still("smptehdbars", width=width, height=height, fps=fps, seconds=s),
        lambda s: _text_slide("maroon", "Summary and questions", width=width, height=height, fps=fps, seconds=s),
        lambda s: _still("mandelbrot", width=width, height=height, fps=fps, seconds=s),
    ]
    chains = [f"{kinds[i % len(kinds)](slide_seconds)}[s{i}]" for i in range(slides)]
    inputs = "".join(f"[s{i}]" for i in range(slides))
    graph = ";".join([*chains, f"{inputs}concat=n={slides}:v=1:a=0,format=yuv420p[v]"])
    duration = slide_seconds * slides
    args = ["-filter_complex", graph]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=48000:duration={duration}"]
    args += ["-map", "[v]"]
    if audio:
        args += ["-map", "0:a", "-c:a", "aac", "-b:a", "96k"]
    args += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-g", str(fps * 2), "-t", f"{duration}", str(path)]
    _run(args, ffmpeg_bin=ffmpeg_bin)
    return path


def make_timestamp_bomb(directory: Path) -> Path:
    """1.4 KB MKV: two 160x90 frames 36,000 s apart, so it declares 10 h (a CFR encode makes 36,001 frames)."""
    path = directory / "timestamp_bomb.mkv"
    _run(
        [
            "-f",
            "lavfi",
            "-i",
            "color=s=160x90:r=1",
            "-frames:v",
            "2",
            "-vf",
            "setpts=N*36000/TB",
            "-fps_mode",
            "passthrough",
            str(path),
        ]
    )
    return path


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = (value << 1) | ((self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def golomb(self) -> int:
        zeros = 0
        while self.bits(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.bits(zeros)


class _BitWriter:
    def __init__(self) -> None:
        self.out: list[int] = []

    def bits(self, count: int, value: int) -> None:
        self.out += [(value >> (count - 1 - i)) & 1 for i in range(count)]

    def golomb(self, value: int) -> None:
        length = (value + 1).bit_length()
        self.bits(length - 1, 0)
        self.bits(length, value + 1)

    def to_bytes(self) -> bytes:
        padded = self.out + [0] * (-len(self.out) % 8)
        return bytes(int("".join(map(str, padded[i : i + 8])), 2) for i in range(0, len(padded), 8))


def _unescape(payload: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for byte in payload:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _escape(payload: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for byte in payload:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _resize_baseline_sps(rbsp: bytes, *, width: int, height: int) -> bytes:
    """A Baseline-profile H.264 SPS (without its NAL header) declaring ``width``x``height``, cropping dropped."""
    reader, writer = _BitReader(rbsp), _BitWriter()

    def copy(count: int = 1) -> None:
        writer.bits(count, reader.bits(count))

    def copy_golomb() -> None:
        writer.golomb(reader.golomb())

    profile = reader.bits(8)
    if profile != 66:
        raise ValueError(f"only Baseline SPS (profile 66) can be resized here, not profile {profile}")
    writer.bits(8, profile)
    copy(16)  # constraint flags, level
    copy_golomb()  # seq_parameter_set_id
    copy_golomb()  # log2_max_frame_num_minus4
    poc_type = reader.golomb()
    writer.golomb(poc_type)
    if poc_type == 0:
        copy_golomb()
    elif poc_type == 1:
        raise ValueError("pic_order_cnt_type 1 is not handled")
    copy_golomb()  # max_num_ref_frames
    copy()  # gaps_in_frame_num_value_allowed_flag
    reader.golomb(), reader.golomb()
    writer.golomb(width // 16 - 1)
    writer.golomb(height // 16 - 1)
    frame_mbs_only = reader.bits(1)
    writer.bits(1, frame_mbs_only)
    if not frame_mbs_only:
        copy()
    copy()  # direct_8x8_inference_flag
    if reader.bits(1):
        for _ in range(4):
            reader.golomb()
    writer.bits(1, 0)
    stop = len(rbsp) * 8 - 1
    while not (rbsp[stop >> 3] >> (7 - (stop & 7))) & 1:
        stop -= 1
    while reader.pos < stop:  # the VUI, verbatim
        copy()
    writer.bits(1, 1)
    return writer.to_bytes()


def make_sps_lie(path: Path, *, width: int, height: int, frames: int = 2) -> Path:
    """A tiny MP4 whose H.264 SPS declares ``width``x``height`` while its slices hold 160x96 pictures.

    ffprobe and the stream-copy pass accept it; decoding conceals almost every macroblock,
    which at 8192x8192 costs ~0.3 s of CPU per frame.
    """
    raw = path.with_suffix(".h264")
    _run(
        [
            "-f",
            "lavfi",
            "-i",
            "color=c=navy:s=160x96:r=25",
            "-frames:v",
            str(frames),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-profile:v",
            "baseline",
            "-pix_fmt",
            "yuv420p",
            "-bsf:v",
            "filter_units=remove_types=6",
            str(raw),
        ]
    )
    units = raw.read_bytes().split(b"\x00\x00\x01")
    for index, unit in enumerate(units):
        if unit and unit[0] & 0x1F == 7:
            body = _unescape(unit.rstrip(b"\x00")[1:])
            units[index] = unit[:1] + _escape(_resize_baseline_sps(body, width=width, height=height)) + b"\x00"
    raw.write_bytes(b"\x00\x00\x01".join(units))
    _run(["-r", "25", "-i", str(raw), "-c", "copy", str(path)])
    raw.unlink()
    return path
