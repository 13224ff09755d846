"""ffprobe: reading a source's streams, and rejecting what is not a playable, complete video.

``probe_file`` runs ffprobe, checks what it declares against ``SourceLimits``, reads every
packet once (a stream-copy pass that catches truncated files and timestamp jumps) and decodes
the first pictures; it returns a ProbeResult, or raises ProbeError with a reason a person
understands. ``parse_probe`` is its pure half.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shlex
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transcoding.ffmpeg.process import last_error_line, launch_command
from transcoding.ffmpeg.sanity import (
    REEXPORT_ADVICE,
    LimitProblem,
    PacketTimeline,
    SourceLimits,
    declared_problem,
    timeline_problem,
)
from transcoding.ffmpeg.values import to_float, to_int

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: Demuxers accepted for uploads; keeps ffmpeg away from playlists/concat files that could
#: read other local files or URLs (the classic HLS-in-AVI trick).
DEFAULT_DEMUXERS: tuple[str, ...] = ("mov", "matroska", "avi")

#: ffprobe ``field_order`` values of interlaced video (tt/bb: top/bottom field first; tb/bt:
#: coded in one order, shown in the other).  ``progressive`` and ``unknown`` are not.
INTERLACED_FIELD_ORDERS = frozenset({"tt", "bb", "tb", "bt"})

#: ffprobe ``color_transfer`` values of HDR video, with the names people know them by.
HDR_TRANSFERS: Mapping[str, str] = {"smpte2084": "PQ", "arib-std-b67": "HLG"}

#: Pictures decoded by the decode check: enough to see a stream that does not decode, cheap at any size.
DECODE_CHECK_FRAMES = 10
#: The decode check's own timeout: ten pictures of a 4K stream decode in well under a second.
DECODE_CHECK_TIMEOUT_S = 30.0

#: ffprobe's words for "not stated"; stored as None.
_UNSTATED = {"", "unknown", "unspecified", "reserved"}


class ProbeError(Exception):
    """The file cannot be transcoded; ``str(error)`` is a reason a person understands.

    ``reason`` is a short machine code: ``not_video``, ``audio_only``, ``no_video``,
    ``unsupported`` (a container outside ``allowed_demuxers``), ``truncated``, ``corrupt``
    (also: pictures that do not decode), ``empty``, ``timeout``, ``unreadable``,
    ``too_large`` (over a ``SourceLimits`` size, rate or duration) or ``implausible``
    (timestamps the bytes cannot back).
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    @classmethod
    def from_limit(cls, problem: LimitProblem) -> ProbeError:
        return cls(problem.message, reason=problem.reason)


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What the pipeline needs to know about a source file.

    ``width``/``height`` are the display size: rotation (90/270 swap them) and a
    non-square sample aspect ratio are already applied.  ``field_order`` is the stream's
    (``progressive``, ``tt``, ``bb``...), else read from the first decoded frame (DV
    reports none); the ``color_*`` fields are ffprobe's names, None when not stated.
    """

    duration: float
    width: int
    height: int
    rotation: int
    video_codec: str
    video_bitrate: int | None
    bitrate: int | None
    frame_rate: float
    audio_codec: str | None
    has_audio: bool
    raw: dict[str, Any] = dataclasses.field(repr=False, compare=False)
    coded_width: int = 0
    coded_height: int = 0
    pix_fmt: str | None = None
    format_name: str = ""
    video_stream_index: int = 0
    audio_stream_index: int | None = None
    audio_channels: int | None = None
    field_order: str | None = None
    color_transfer: str | None = None
    color_primaries: str | None = None
    color_space: str | None = None
    color_range: str | None = None

    @property
    def is_interlaced(self) -> bool:
        """True for interlaced video (camcorder 1080i/576i footage): fields, not frames."""
        return self.field_order in INTERLACED_FIELD_ORDERS

    @property
    def hdr_format(self) -> str | None:
        """``PQ`` or ``HLG`` for HDR sources (by their transfer function), else None."""
        return HDR_TRANSFERS.get(self.color_transfer or "")

    @property
    def is_wide_gamut(self) -> bool:
        """True for BT.2020 primaries: HDR phone clips, and the rare wide-gamut SDR file."""
        return self.color_primaries == "bt2020"

    @property
    def short_side(self) -> int:
        """The smaller display dimension, which names a tier (a 1080x1920 phone clip is "1080p")."""
        return min(self.width, self.height)

    @property
    def is_portrait(self) -> bool:
        """True when the picture is taller than wide after rotation."""
        return self.height > self.width


def _parse_ratio(value: Any) -> float | None:
    """Parse ffprobe rationals such as ``30000/1001``, ``16:15`` or ``25``; None for 0/0."""
    if not isinstance(value, str) or not value:
        return to_float(value)
    parts = re.split(r"[/:]", value)
    if len(parts) == 1:
        return to_float(parts[0])
    num, den = to_float(parts[0]), to_float(parts[1])
    if num is None or not den:
        return None
    return num / den


def _stated(value: Any) -> str | None:
    text = str(value).strip().lower() if value is not None else ""
    return None if text in _UNSTATED else text


def _field_order(video: Mapping[str, Any], frames: Sequence[Mapping[str, Any]]) -> str | None:
    """The stream's field order, else the first decoded frame's (``-show_frames`` output)."""
    stated = _stated(video.get("field_order"))
    if stated is not None or not frames:
        return stated
    frame = frames[0]
    if "interlaced_frame" not in frame:
        return None
    if not to_int(frame.get("interlaced_frame")):
        return "progressive"
    return "tt" if to_int(frame.get("top_field_first")) else "bb"


def _stream_rotation(stream: Mapping[str, Any]) -> int:
    """Rotation in degrees (0/90/180/270) from the display matrix, else the legacy rotate tag."""
    for side_data in stream.get("side_data_list") or ():
        if side_data.get("side_data_type") == "Display Matrix" and "rotation" in side_data:
            value = to_float(side_data.get("rotation"))
            if value is not None:
                return round(value) % 360
    tag = to_float((stream.get("tags") or {}).get("rotate"))
    return round(tag) % 360 if tag is not None else 0


def _is_still_image_format(format_name: str) -> bool:
    # image2 and the *_pipe demuxers are how ffprobe reports a single picture (png, jpeg, webp...)
    return format_name == "image2" or format_name.endswith("_pipe")


def parse_probe(data: Mapping[str, Any]) -> ProbeResult:
    """Turn ``ffprobe -show_format -show_streams`` JSON into a ProbeResult (pure).

    Raises ProbeError when the data describes something that is not a playable video.
    """
    streams = list(data.get("streams") or [])
    fmt = data.get("format") or {}
    format_name = str(fmt.get("format_name") or "")
    if not streams:
        raise ProbeError("not a video file: no audio or video streams found", reason="not_video")
    if _is_still_image_format(format_name):
        kind = format_name.removesuffix("_pipe")
        raise ProbeError(f"not a video file: it is a still image ({kind})", reason="not_video")

    video_streams = [
        s for s in streams if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    audio_streams = [s for s in streams if s.get("codec_type") == "audio"]
    if not video_streams:
        if audio_streams:
            codec = audio_streams[0].get("codec_name") or "unknown"
            raise ProbeError(f"audio-only file: it contains {codec} audio but no video stream", reason="audio_only")
        raise ProbeError("no video stream found", reason="no_video")

    video = video_streams[0]
    coded_width = to_int(video.get("width")) or 0
    coded_height = to_int(video.get("height")) or 0
    if coded_width <= 0 or coded_height <= 0:
        raise ProbeError("the video stream has no picture size; the file is damaged", reason="corrupt")

    sample_aspect = _parse_ratio(video.get("sample_aspect_ratio")) or 1.0
    display_width = coded_width
    display_height = coded_height
    # anamorphic sources (SAR != 1) are widened so every rendition can use square pixels
    if sample_aspect > 0 and abs(sample_aspect - 1.0) > 1e-3:
        display_width = max(2, round(coded_width * sample_aspect))
    rotation = _stream_rotation(video)
    if rotation in (90, 270):
        display_width, display_height = display_height, display_width

    duration = to_float(fmt.get("duration"))
    if duration is None or duration <= 0:
        duration = to_float(video.get("duration"))
    if duration is None or duration <= 0:
        raise ProbeError("could not determine the video's duration; the file is damaged", reason="corrupt")

    frame_rate = _parse_ratio(video.get("avg_frame_rate")) or _parse_ratio(video.get("r_frame_rate")) or 0.0
    audio = audio_streams[0] if audio_streams else None
    return ProbeResult(
        duration=duration,
        width=display_width,
        height=display_height,
        rotation=rotation,
        video_codec=str(video.get("codec_name") or "unknown"),
        video_bitrate=to_int(video.get("bit_rate")),
        bitrate=to_int(fmt.get("bit_rate")),
        frame_rate=float(frame_rate),
        audio_codec=str(audio.get("codec_name") or "unknown") if audio else None,
        has_audio=audio is not None,
        raw=dict(data),
        coded_width=coded_width,
        coded_height=coded_height,
        pix_fmt=video.get("pix_fmt"),
        format_name=format_name,
        video_stream_index=to_int(video.get("index")) or 0,
        audio_stream_index=to_int(audio.get("index")) if audio else None,
        audio_channels=to_int(audio.get("channels")) if audio else None,
        field_order=_field_order(video, list(data.get("frames") or [])),
        color_transfer=_stated(video.get("color_transfer")),
        color_primaries=_stated(video.get("color_primaries")),
        color_space=_stated(video.get("color_space")),
        color_range=_stated(video.get("color_range")),
    )


def is_remote_input(path: PathLike | str) -> bool:
    """True for an original read over HTTP(S) (a presigned storage URL), False for a local file."""
    return isinstance(path, str) and path.startswith(("https://", "http://"))


def input_url(path: PathLike | str) -> str:
    """The ``-i`` argument: a local file as an absolute ``file:`` URL, or a storage URL as given."""
    if is_remote_input(path):
        return os.fspath(path)
    # the file: prefix stops names like "a:b.mp4" or "http..." from being read as protocols
    return "file:" + os.fspath(Path(path).absolute())


def whitelist_args(allowed_demuxers: Sequence[str] | None, *, remote: bool = False) -> list[str]:
    """Input options that allow local files only (or, ``remote``, only HTTP(S) for the storage URL
    the worker made itself) and, when given, only ``allowed_demuxers``."""
    args = ["-protocol_whitelist", "https,tls,http,tcp" if remote else "file"]
    if allowed_demuxers:
        args += ["-format_whitelist", ",".join(allowed_demuxers)]
    return args


def _ffprobe_args(ffprobe_bin: str, allowed_demuxers: Sequence[str] | None) -> list[str]:
    """The start of every ffprobe command: quiet except errors, local files of allowed formats only."""
    return [ffprobe_bin, "-hide_banner", "-v", "error", *whitelist_args(allowed_demuxers)]


def probe_command(
    path: PathLike,
    *,
    ffprobe_bin: str = "ffprobe",
    allowed_demuxers: Sequence[str] | None = DEFAULT_DEMUXERS,
) -> list[str]:
    """ffprobe argument list printing format and streams as JSON."""
    return [
        *_ffprobe_args(ffprobe_bin, allowed_demuxers),
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        input_url(path),
    ]


def decode_check_command(
    path: PathLike,
    *,
    stream_index: int,
    frames: int = DECODE_CHECK_FRAMES,
    ffprobe_bin: str = "ffprobe",
    allowed_demuxers: Sequence[str] | None = DEFAULT_DEMUXERS,
) -> list[str]:
    """ffprobe argument list decoding the first ``frames`` pictures of one stream, printing their
    size and interlacing flags as JSON; decoder errors go to stderr."""
    return [
        *_ffprobe_args(ffprobe_bin, allowed_demuxers),
        "-select_streams",
        str(stream_index),
        "-read_intervals",
        f"%+#{frames}",
        "-show_entries",
        "frame=width,height,interlaced_frame,top_field_first",
        "-print_format",
        "json",
        input_url(path),
    ]


def integrity_check_command(
    path: PathLike,
    *,
    video_stream_index: int,
    ffmpeg_bin: str = "ffmpeg",
    allowed_demuxers: Sequence[str] | None = DEFAULT_DEMUXERS,
) -> list[str]:
    """Stream-copy pass that reads every packet without decoding; fails fast on a truncated file.

    It prints one ``framecrc`` line per packet (stream, timestamps, duration, size) for
    ``PacketTimeline``; the video stream is output stream 0.
    """
    return [
        ffmpeg_bin,
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-xerror",
        *whitelist_args(allowed_demuxers),
        "-i",
        input_url(path),
        # only the streams we transcode: odd subtitle/data/attachment tracks must not reject a file
        "-map",
        f"0:{video_stream_index}",
        "-map",
        "0:a?",
        "-c",
        "copy",
        "-f",
        "framecrc",
        "-",
    ]


_ISO_BMFF_TOP_LEVEL = {
    b"ftyp",
    b"moov",
    b"mdat",
    b"free",
    b"skip",
    b"wide",
    b"pnot",
    b"uuid",
    b"moof",
    b"mfra",
    b"styp",
    b"sidx",
    b"pdin",
    b"meta",
    b"prfl",
    b"junk",
}


def mp4_structure_problem(path: PathLike) -> str | None:
    """Walk the top-level MP4/MOV boxes; return why the file is incomplete, or None.

    Returns None for files that are not ISO BMFF at all or whose boxes are intact.
    """
    file_path = Path(path)
    size = file_path.stat().st_size
    with file_path.open("rb") as handle:
        first = handle.read(8)
        if len(first) < 8 or first[4:8] not in _ISO_BMFF_TOP_LEVEL:
            return None
        offset = 0
        seen: set[bytes] = set()
        while offset < size:
            handle.seek(offset)
            header = handle.read(16)
            if len(header) < 8:
                return f"file is truncated: it ends inside an MP4 box header at byte {offset}"
            box_size = int.from_bytes(header[:4], "big")
            box_type = header[4:8]
            if box_size == 1:
                if len(header) < 16:
                    return f"file is truncated: it ends inside an MP4 box header at byte {offset}"
                box_size = int.from_bytes(header[8:16], "big")
            elif box_size == 0:
                box_size = size - offset
            if box_size < 8:
                return f"file is damaged: invalid MP4 box size {box_size} at byte {offset}"
            if offset + box_size > size:
                name = box_type.decode("latin-1")
                missing = offset + box_size - size
                if name == "moov" or b"moov" not in seen:
                    return (
                        f"moov atom not found → file is truncated or incomplete "
                        f"({missing} bytes missing from the '{name}' box)"
                    )
                return (
                    f"file is truncated: the '{name}' box at byte {offset} needs {box_size} bytes "
                    f"but the file ends {missing} bytes early"
                )
            seen.add(box_type)
            offset += box_size
    if b"moov" not in seen:
        return "moov atom not found → file is truncated or incomplete"
    return None


def _explain_probe_failure(stderr: str, path: Path) -> ProbeError:
    if path.exists() and path.stat().st_size == 0:
        return ProbeError("file is empty", reason="empty")
    whitelist = re.search(r"\[(\S+) @ [^\]]*\] Format not on whitelist", stderr)
    if whitelist:
        detected = whitelist.group(1)
        if _is_still_image_format(detected):
            kind = detected.removesuffix("_pipe")
            return ProbeError(f"not a video file: it is a still image ({kind})", reason="not_video")
        return ProbeError(
            f"unsupported container: the file holds {detected} data; accepted are MP4/MOV, MKV/WebM and AVI",
            reason="unsupported",
        )
    if "moov atom not found" in stderr:
        problem = mp4_structure_problem(path) if path.exists() else None
        if problem is not None:
            return ProbeError(problem, reason="truncated")
        return ProbeError("not a video file: its content is not a recognised video container", reason="not_video")
    if "Invalid data found when processing input" in stderr:
        return ProbeError("not a video file: its content is not a recognised video container", reason="not_video")
    return ProbeError(f"ffprobe could not read the file: {last_error_line(stderr)}", reason="unreadable")


def _run_tool(cmd: Sequence[str], *, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    logger.debug("running %s: %s", what, shlex.join(cmd))
    try:
        return subprocess.run(
            launch_command(cmd),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(f"{what} did not finish within {timeout:g} s", reason="timeout") from exc


def _run_integrity_pass(cmd: Sequence[str], *, timeout: float, timeline: PacketTimeline) -> tuple[int, str]:
    """Run the stream-copy pass, feeding its stdout to ``timeline`` as it comes; (exit code, stderr).

    A long lecture has millions of packets, so the lines are read one by one, never held.
    """
    logger.debug("running ffmpeg integrity check: %s", shlex.join(cmd))
    timed_out = threading.Event()
    with tempfile.TemporaryFile() as errors:
        # This thread waits for the child, so its parent-death signal fires only if the worker dies.
        process = subprocess.Popen(
            launch_command(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            errors="replace",
        )

        def kill() -> None:
            timed_out.set()
            process.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            assert process.stdout is not None
            with process.stdout:
                for line in process.stdout:
                    timeline.feed(line)
            returncode = process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        if timed_out.is_set():
            raise ProbeError(f"ffmpeg integrity check did not finish within {timeout:g} s", reason="timeout")
        errors.seek(0)
        return returncode, errors.read().decode(errors="replace")


def _decoder_message(stderr: str) -> str:
    """``[h264 @ 0x55…] error while decoding MB 10 0`` → ``h264: error while decoding MB 10 0``."""
    line = last_error_line(stderr)
    match = re.match(r"\[(\S+) @ [^\]]*\]\s*(.*)", line)
    return f"{match.group(1)}: {match.group(2)}" if match else line


def _decode_check(
    path: Path, result: ProbeResult, *, ffprobe_bin: str, allowed_demuxers: Sequence[str] | None, timeout: float
) -> tuple[list[dict[str, Any]], str | None]:
    """Decode the first pictures: (their ffprobe frame entries, why the stream is damaged or None)."""
    completed = _run_tool(
        decode_check_command(
            path, stream_index=result.video_stream_index, ffprobe_bin=ffprobe_bin, allowed_demuxers=allowed_demuxers
        ),
        timeout=timeout,
        what="decoding the first pictures",
    )
    frames: list[dict[str, Any]] = []
    with contextlib.suppress(json.JSONDecodeError, AttributeError):
        frames = list(json.loads(completed.stdout or "{}").get("frames") or [])
    damaged = "the video stream is damaged: its first pictures cannot be decoded"
    if completed.returncode != 0 or completed.stderr.strip():
        return frames, f"{damaged} ({_decoder_message(completed.stderr)}). {REEXPORT_ADVICE}"
    if not frames:
        return frames, f"{damaged} (no picture came out of the decoder). {REEXPORT_ADVICE}"
    declared = (result.coded_width, result.coded_height)
    for frame in frames:
        size = (to_int(frame.get("width")), to_int(frame.get("height")))
        if size != declared:
            return frames, (
                f"the video stream is damaged: it declares {declared[0]}x{declared[1]} pictures but decodes to "
                f"{size[0]}x{size[1]}. {REEXPORT_ADVICE}"
            )
    return frames, None


def probe_file(
    path: PathLike,
    *,
    ffprobe_bin: str = "ffprobe",
    ffmpeg_bin: str = "ffmpeg",
    timeout: float = 60.0,
    allowed_demuxers: Sequence[str] | None = DEFAULT_DEMUXERS,
    check_integrity: bool = True,
    limits: SourceLimits | None = None,
) -> ProbeResult:
    """Probe a file with ffprobe, check it against ``limits``, read every packet once and decode its start.

    In order, each step only when the ones before passed (a bomb costs only ffprobe's own look):
    ffprobe; what it declares against ``limits`` (picture size, pixel rate, bytes per second,
    duration); with ``check_integrity``, a stream-copy pass over every packet (truncation; a
    video stream without pictures; with ``limits``, timestamp jumps) and the decode check (the
    first pictures must decode cleanly at the declared size). The decoded pictures also give
    the field order when the stream states none.

    Raises ProbeError with a human reason ("audio-only file ...", "file is truncated ...").
    """
    file_path = Path(path)
    if not file_path.is_file():
        raise ProbeError(f"file not found: {file_path}", reason="unreadable")
    size = file_path.stat().st_size
    if size == 0:
        raise ProbeError("file is empty", reason="empty")
    limits = limits or SourceLimits()

    completed = _run_tool(
        probe_command(file_path, ffprobe_bin=ffprobe_bin, allowed_demuxers=allowed_demuxers),
        timeout=timeout,
        what="ffprobe",
    )
    if completed.returncode != 0:
        raise _explain_probe_failure(completed.stderr, file_path)
    try:
        data = json.loads(completed.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise ProbeError(f"ffprobe printed unreadable output: {exc}", reason="unreadable") from exc
    result = parse_probe(data)
    problem = declared_problem(
        limits,
        width=result.coded_width,
        height=result.coded_height,
        frame_rate=result.frame_rate,
        duration=result.duration,
        size_bytes=size,
    )
    if problem is not None:
        raise ProbeError.from_limit(problem)

    if check_integrity:
        timeline = PacketTimeline()
        returncode, stderr = _run_integrity_pass(
            integrity_check_command(
                file_path,
                video_stream_index=result.video_stream_index,
                ffmpeg_bin=ffmpeg_bin,
                allowed_demuxers=allowed_demuxers,
            ),
            timeout=timeout,
            timeline=timeline,
        )
        if returncode != 0:
            structure = mp4_structure_problem(file_path)
            if structure is not None:
                raise ProbeError(structure, reason="truncated")
            raise ProbeError(f"file is truncated or damaged: {last_error_line(stderr)}", reason="corrupt")
        start = to_float((data.get("format") or {}).get("start_time")) or 0.0
        problem = timeline_problem(limits, timeline, start=start, duration=result.duration)
        if problem is not None:
            raise ProbeError.from_limit(problem)

    if check_integrity or result.field_order is None:
        frames, damage = _decode_check(
            file_path,
            result,
            ffprobe_bin=ffprobe_bin,
            allowed_demuxers=allowed_demuxers,
            timeout=min(timeout, DECODE_CHECK_TIMEOUT_S),
        )
        if damage is not None and check_integrity:
            raise ProbeError(damage, reason="corrupt")
        if result.field_order is None and frames:
            # some codecs (DV) state no field order on the stream; their decoded frames do
            flags = {key: frames[0][key] for key in ("interlaced_frame", "top_field_first") if key in frames[0]}
            result = parse_probe({**data, "frames": [flags]})
    return result
