"""ffprobe/ffmpeg helpers for the HLS pipeline, with no Django imports.

Everything here either builds argument lists, parses tool output, or runs one
ffmpeg/ffprobe process; services in ``transcoding/services.py`` glue it to models
and storage.  The flow for one video is::

    probe = probe_file(path)                                  # or ProbeError
    renditions = plan_renditions(probe, parse_ladder(settings.HLS_LADDER))
    conversion = source_conversion(probe, renditions=renditions,
                                   available=available_filters())   # deinterlace, HDR -> SDR
    cmd = build_hls_command(input_path=path, output_dir=tmp, probe=probe,
                            renditions=renditions, conversion=conversion)
    result = run_ffmpeg(cmd, duration=probe.duration, on_progress=..., timeout=...)
    output = rewrite_master_playlist(output_dir=tmp, renditions=renditions, probe=probe)
    run_ffmpeg(poster_command(input_path=path, output_path=tmp / "poster.jpg",
                              probe=probe, conversion=conversion), duration=probe.duration, timeout=...)

Output layout inside ``output_dir`` (every path relative to it)::

    master.m3u8                 multivariant playlist (rewritten with measured values)
    <name>/index.m3u8           VOD media playlist of one rendition, e.g. 720p/index.m3u8
    <name>/seg_00000.ts         MPEG-TS segments, numbered from 0
    <name>/iframes.m3u8         I-frame playlist (byte ranges into the segments)
    poster.jpg                  only if the caller writes the poster there
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import functools
import itertools
import json
import logging
import math
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: Demuxers accepted for uploads; keeps ffmpeg away from playlists/concat files that could
#: read other local files or URLs (the classic HLS-in-AVI trick).
DEFAULT_DEMUXERS: tuple[str, ...] = ("mov", "matroska", "avi")

MASTER_PLAYLIST_NAME = "master.m3u8"
MEDIA_PLAYLIST_NAME = "index.m3u8"
IFRAME_PLAYLIST_NAME = "iframes.m3u8"
SEGMENT_TEMPLATE = "seg_%05d.ts"

RateControl = Literal["capped_crf", "fixed_bitrate", "cbr"]

#: ffprobe ``field_order`` values of interlaced video (tt/bb: top/bottom field first; tb/bt:
#: coded in one order, shown in the other).  ``progressive`` and ``unknown`` are not.
INTERLACED_FIELD_ORDERS = frozenset({"tt", "bb", "tb", "bt"})

#: ffprobe ``color_transfer`` values of HDR video, with the names people know them by.
HDR_TRANSFERS: Mapping[str, str] = {"smpte2084": "PQ", "arib-std-b67": "HLG"}

#: ffprobe's words for "not stated"; stored as None.
_UNSTATED = {"", "unknown", "unspecified", "reserved"}


# ---------------------------------------------------------------------------
# Probe
# ---------------------------------------------------------------------------


class ProbeError(Exception):
    """The file cannot be transcoded; ``str(error)`` is a reason a person understands.

    ``reason`` is a short machine code: ``not_video``, ``audio_only``, ``no_video``,
    ``unsupported`` (a container outside ``allowed_demuxers``), ``truncated``, ``corrupt``,
    ``empty``, ``timeout`` or ``unreadable``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


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


def _to_float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def _to_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _parse_ratio(value: Any) -> float | None:
    """Parse ffprobe rationals such as ``30000/1001``, ``16:15`` or ``25``; None for 0/0."""
    if not isinstance(value, str) or not value:
        return _to_float(value)
    parts = re.split(r"[/:]", value)
    if len(parts) == 1:
        return _to_float(parts[0])
    num, den = _to_float(parts[0]), _to_float(parts[1])
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
    if not _to_int(frame.get("interlaced_frame")):
        return "progressive"
    return "tt" if _to_int(frame.get("top_field_first")) else "bb"


def _stream_rotation(stream: Mapping[str, Any]) -> int:
    """Rotation in degrees (0/90/180/270) from the display matrix, else the legacy rotate tag."""
    for side_data in stream.get("side_data_list") or ():
        if side_data.get("side_data_type") == "Display Matrix" and "rotation" in side_data:
            value = _to_float(side_data.get("rotation"))
            if value is not None:
                return round(value) % 360
    tag = _to_float((stream.get("tags") or {}).get("rotate"))
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
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    audio_streams = [s for s in streams if s.get("codec_type") == "audio"]
    if not video_streams:
        if audio_streams:
            codec = audio_streams[0].get("codec_name") or "unknown"
            raise ProbeError(
                f"audio-only file: it contains {codec} audio but no video stream", reason="audio_only"
            )
        raise ProbeError("no video stream found", reason="no_video")

    video = video_streams[0]
    coded_width = _to_int(video.get("width")) or 0
    coded_height = _to_int(video.get("height")) or 0
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

    duration = _to_float(fmt.get("duration"))
    if duration is None or duration <= 0:
        duration = _to_float(video.get("duration"))
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
        video_bitrate=_to_int(video.get("bit_rate")),
        bitrate=_to_int(fmt.get("bit_rate")),
        frame_rate=float(frame_rate),
        audio_codec=str(audio.get("codec_name") or "unknown") if audio else None,
        has_audio=audio is not None,
        raw=dict(data),
        coded_width=coded_width,
        coded_height=coded_height,
        pix_fmt=video.get("pix_fmt"),
        format_name=format_name,
        video_stream_index=_to_int(video.get("index")) or 0,
        audio_stream_index=_to_int(audio.get("index")) if audio else None,
        audio_channels=_to_int(audio.get("channels")) if audio else None,
        field_order=_field_order(video, list(data.get("frames") or [])),
        color_transfer=_stated(video.get("color_transfer")),
        color_primaries=_stated(video.get("color_primaries")),
        color_space=_stated(video.get("color_space")),
        color_range=_stated(video.get("color_range")),
    )


def _input_url(path: PathLike) -> str:
    # the file: prefix stops names like "a:b.mp4" or "http..." from being read as protocols
    return "file:" + os.fspath(Path(path).absolute())


def _whitelist_args(allowed_demuxers: Sequence[str] | None) -> list[str]:
    args = ["-protocol_whitelist", "file"]
    if allowed_demuxers:
        args += ["-format_whitelist", ",".join(allowed_demuxers)]
    return args


def _ffprobe_args(ffprobe_bin: str, allowed_demuxers: Sequence[str] | None) -> list[str]:
    """The start of every ffprobe command: quiet except errors, local files of allowed formats only."""
    return [ffprobe_bin, "-hide_banner", "-v", "error", *_whitelist_args(allowed_demuxers)]


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
        _input_url(path),
    ]


def first_frame_command(
    path: PathLike,
    *,
    stream_index: int,
    ffprobe_bin: str = "ffprobe",
    allowed_demuxers: Sequence[str] | None = DEFAULT_DEMUXERS,
) -> list[str]:
    """ffprobe argument list printing the interlacing flags of one stream's first frame as JSON."""
    return [
        *_ffprobe_args(ffprobe_bin, allowed_demuxers),
        "-select_streams",
        str(stream_index),
        "-read_intervals",
        "%+#1",
        "-show_entries",
        "frame=interlaced_frame,top_field_first",
        "-print_format",
        "json",
        _input_url(path),
    ]


def integrity_check_command(
    path: PathLike,
    *,
    ffmpeg_bin: str = "ffmpeg",
    allowed_demuxers: Sequence[str] | None = DEFAULT_DEMUXERS,
) -> list[str]:
    """Stream-copy pass that reads every packet without decoding; fails fast on a truncated file."""
    return [
        ffmpeg_bin,
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-xerror",
        *_whitelist_args(allowed_demuxers),
        "-i",
        _input_url(path),
        # only the streams we transcode: odd subtitle/data/attachment tracks must not reject a file
        "-map",
        "0:v",
        "-map",
        "0:a?",
        "-c",
        "copy",
        "-f",
        "null",
        "-",
    ]


_ISO_BMFF_TOP_LEVEL = {
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid",
    b"moof", b"mfra", b"styp", b"sidx", b"pdin", b"meta", b"prfl", b"junk",
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


def _first_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


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
    return ProbeError(f"ffprobe could not read the file: {_first_error_line(stderr)}", reason="unreadable")


@functools.cache
def _parent_death_prefix() -> tuple[str, ...]:
    """``setpriv --pdeathsig KILL --`` where that works (Linux with util-linux >= 2.33), else nothing.

    Decided once per process; a missing or unusable setpriv is logged once.
    """
    if not sys.platform.startswith("linux"):
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        logger.warning("setpriv (util-linux) not found: ffmpeg will outlive a worker that is killed")
        return ()
    prefix = (setpriv, "--pdeathsig", "KILL", "--")
    # try it once: older util-linux has no --pdeathsig, and a sandbox may refuse the prctl
    try:
        check = subprocess.run(
            [*prefix, setpriv, "--version"], capture_output=True, text=True, errors="replace", timeout=10,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        failure = str(exc)
    else:
        if check.returncode == 0:
            return prefix
        failure = _first_error_line(check.stderr)
    logger.warning(
        "%s cannot set a parent-death signal (%s): ffmpeg will outlive a worker that is killed", setpriv, failure
    )
    return ()


def launch_command(cmd: Sequence[str]) -> list[str]:
    """``cmd`` prefixed so that on Linux the tool is SIGKILLed when the thread that started it dies.

    The parent-death signal follows the starting *thread*, so start the process from a thread
    that waits for it.  A missing program raises FileNotFoundError, as Popen would without
    the prefix (setpriv would report it only as exit code 127).
    """
    prefix = _parent_death_prefix()
    if prefix and shutil.which(cmd[0]) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), cmd[0])
    return [*prefix, *cmd]


def _run_tool(cmd: Sequence[str], *, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    logger.debug("running %s: %s", what, shlex.join(cmd))
    try:
        return subprocess.run(
            launch_command(cmd), capture_output=True, text=True, errors="replace", timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(f"{what} did not finish within {timeout:g} s", reason="timeout") from exc


def probe_file(
    path: PathLike,
    *,
    ffprobe_bin: str = "ffprobe",
    ffmpeg_bin: str = "ffmpeg",
    timeout: float = 60.0,
    allowed_demuxers: Sequence[str] | None = DEFAULT_DEMUXERS,
    check_integrity: bool = True,
) -> ProbeResult:
    """Probe a file with ffprobe, then read every packet once (stream copy) to catch truncation.

    Raises ProbeError with a human reason ("audio-only file ...", "file is truncated ...").
    """
    file_path = Path(path)
    if not file_path.is_file():
        raise ProbeError(f"file not found: {file_path}", reason="unreadable")
    if file_path.stat().st_size == 0:
        raise ProbeError("file is empty", reason="empty")

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
    if result.field_order is None:
        # some codecs (DV) state no field order on the stream; their decoded frames do
        frames = _run_tool(
            first_frame_command(
                file_path, stream_index=result.video_stream_index, ffprobe_bin=ffprobe_bin,
                allowed_demuxers=allowed_demuxers,
            ),
            timeout=timeout,
            what="ffprobe (first frame)",
        )
        with contextlib.suppress(json.JSONDecodeError):
            found = json.loads(frames.stdout or "{}").get("frames") if frames.returncode == 0 else None
            if found:
                data = {**data, "frames": found}
                result = parse_probe(data)

    if check_integrity:
        copied = _run_tool(
            integrity_check_command(file_path, ffmpeg_bin=ffmpeg_bin, allowed_demuxers=allowed_demuxers),
            timeout=timeout,
            what="ffmpeg integrity check",
        )
        if copied.returncode != 0:
            problem = mp4_structure_problem(file_path)
            if problem is not None:
                raise ProbeError(problem, reason="truncated")
            raise ProbeError(
                f"file is truncated or damaged: {_first_error_line(copied.stderr)}", reason="corrupt"
            )
    return result


# ---------------------------------------------------------------------------
# Ladder
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Tier:
    """One configured ladder step: ``480p`` at 800 kbit/s means short side 480 px."""

    name: str
    height: int
    video_bitrate: int

    @property
    def maxrate(self) -> int:
        """VBV cap in bit/s: the tier bitrate is a ceiling for capped CRF."""
        return self.video_bitrate

    @property
    def bufsize(self) -> int:
        """VBV buffer in bits: two seconds at the cap."""
        return 2 * self.video_bitrate


@dataclasses.dataclass(frozen=True)
class PlannedRendition:
    """One output rendition with its exact (even, aspect-kept) size and rate limits."""

    name: str
    width: int
    height: int
    video_bitrate: int
    maxrate: int
    bufsize: int

    @property
    def short_side(self) -> int:
        """The smaller dimension, the number in the name."""
        return min(self.width, self.height)


_TIER_RE = re.compile(r"^(?P<height>\d+)p\s*:\s*(?P<rate>\d+(?:\.\d+)?)\s*(?P<unit>[kKmM]?)$")


def parse_bitrate(text: str) -> int:
    """Parse ``800k``, ``1.5M`` or ``800000`` into bit/s."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not match:
        raise ValueError(f"bitrate {text!r} must be a number with an optional k or M suffix, like 800k")
    multiplier = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    value = round(float(match.group(1)) * multiplier)
    if value <= 0:
        raise ValueError(f"bitrate {text!r} must be greater than zero")
    return value


def parse_ladder(spec: str) -> list[Tier]:
    """Parse a ladder setting like ``240p:400k,480p:800k,720p:1500k`` into tiers, lowest first."""
    if not spec or not spec.strip():
        raise ValueError("HLS ladder is empty; expected something like '240p:400k,480p:800k,720p:1500k'")
    tiers: list[Tier] = []
    for raw_entry in spec.split(","):
        entry = raw_entry.strip()
        match = _TIER_RE.match(entry)
        if not match:
            raise ValueError(
                f"HLS ladder entry {entry!r} must look like '480p:800k' (short side in pixels, 'p', "
                f"':', bitrate with optional k/M suffix)"
            )
        height = int(match.group("height"))
        if height < 16 or height > 4320:
            raise ValueError(f"HLS ladder entry {entry!r}: height must be between 16 and 4320 pixels")
        if height % 2:
            raise ValueError(f"HLS ladder entry {entry!r}: height must be even (H.264 4:2:0 needs even sizes)")
        bitrate = parse_bitrate(f"{match.group('rate')}{match.group('unit')}")
        tiers.append(Tier(name=f"{height}p", height=height, video_bitrate=bitrate))
    tiers.sort(key=lambda tier: tier.height)
    for lower, upper in itertools.pairwise(tiers):
        if lower.height == upper.height:
            raise ValueError(f"HLS ladder lists {upper.name} twice")
        if upper.video_bitrate < lower.video_bitrate:
            raise ValueError(
                f"HLS ladder: {upper.name} has a lower bitrate ({upper.video_bitrate} bit/s) "
                f"than {lower.name} ({lower.video_bitrate} bit/s)"
            )
    return tiers


def _even_floor(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _even_round(value: float) -> int:
    return max(2, round(value / 2.0) * 2)


def _size_for_short_side(probe: ProbeResult, short: int) -> tuple[int, int]:
    """Width and height for a given short side, keeping the display aspect ratio."""
    if short >= probe.short_side:
        return _even_floor(probe.width), _even_floor(probe.height)
    long_side = _even_round(short * max(probe.width, probe.height) / probe.short_side)
    short = _even_round(short)
    return (short, long_side) if probe.is_portrait else (long_side, short)


def _scaled_bitrate(bitrate: int, *, pixels: int, reference_pixels: int) -> int:
    # fewer pixels need proportionally fewer bits; a quarter of the tier rate is the floor
    ratio = min(1.0, pixels / reference_pixels) if reference_pixels else 1.0
    return max(bitrate // 4, int(bitrate * ratio))


def plan_renditions(
    probe: ProbeResult,
    tiers: Sequence[Tier],
    *,
    shrink_min_ratio: float = 1.2,
) -> list[PlannedRendition]:
    """Choose the renditions for one source, tallest first.

    Tiers are sized by the source's short side and never upscale.  The first tier above
    the source becomes a source-sized rendition when the source's short side is at least
    ``shrink_min_ratio`` times the tallest kept tier (else it would nearly duplicate it);
    a source below the lowest tier gets one rendition at its own size.
    """
    if not tiers:
        raise ValueError("plan_renditions needs at least one tier")
    ordered = sorted(tiers, key=lambda tier: tier.height)
    source_short = probe.short_side
    planned: list[PlannedRendition] = []
    seen_sizes: set[tuple[int, int]] = set()

    def add(name: str, width: int, height: int, bitrate: int) -> None:
        if (width, height) in seen_sizes:
            return
        seen_sizes.add((width, height))
        planned.append(
            PlannedRendition(
                name=name, width=width, height=height, video_bitrate=bitrate, maxrate=bitrate, bufsize=2 * bitrate
            )
        )

    for tier in ordered:
        if tier.height <= source_short:
            width, height = _size_for_short_side(probe, tier.height)
            add(tier.name, width, height, tier.video_bitrate)
            continue
        # first tier above the source: maybe shrink it to the source size, then stop
        width, height = _size_for_short_side(probe, source_short)
        tallest_kept = planned[-1].short_side if planned else 0
        if not planned or min(width, height) >= shrink_min_ratio * tallest_kept:
            tier_width, tier_height = (
                (tier.height, _even_round(tier.height * probe.height / probe.width))
                if probe.is_portrait
                else (_even_round(tier.height * probe.width / probe.height), tier.height)
            )
            bitrate = _scaled_bitrate(
                tier.video_bitrate, pixels=width * height, reference_pixels=tier_width * tier_height
            )
            if planned:
                bitrate = max(bitrate, planned[-1].video_bitrate)
            add(f"{min(width, height)}p", width, height, bitrate)
        break
    planned.sort(key=lambda rendition: rendition.width * rendition.height, reverse=True)
    return planned


# ---------------------------------------------------------------------------
# ffmpeg commands
# ---------------------------------------------------------------------------

_SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")

X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)


def check_crf(crf: float) -> None:
    """Raise ValueError unless x264 capped CRF can use ``crf`` for HLS."""
    # CRF 0 means lossless, which needs the High 4:4:4 profile players do not decode over HLS
    if not 1 <= crf <= 51:
        raise ValueError(f"CRF {crf:g} is outside 1-51 (lower is better quality and more bytes; 23 is the default)")


def check_preset(preset: str) -> None:
    """Raise ValueError unless ``preset`` is an x264 preset name."""
    if preset not in X264_PRESETS:
        raise ValueError(f"x264 preset {preset!r} is not one of {', '.join(X264_PRESETS)}")


def keyframe_interval_frames(frame_rate: float, keyframe_interval: float) -> int:
    """GOP length in frames for a keyframe interval; 2 s at 30 fps is 60."""
    if frame_rate <= 0 or frame_rate > 240:
        return 250
    return max(1, round(frame_rate * keyframe_interval))


def video_encoder_args(
    *,
    rendition: PlannedRendition,
    stream: int | None,
    frame_rate: float,
    crf: float = 23.0,
    preset: str = "veryfast",
    keyframe_interval: float = 2.0,
    threads: int | None = None,
    rate_control: RateControl = "capped_crf",
) -> list[str]:
    """libx264 options for one output video stream (``stream`` is its index, None for a single output).

    Capped CRF: constant quality, limited by maxrate/bufsize.  Two comparison points for the
    benchmark: ``fixed_bitrate`` sets ``-b:v = maxrate = tier bitrate`` (x264 may spend less on
    easy pictures); ``cbr`` also sets ``minrate`` and HRD CBR signalling, so x264 pads with filler
    data and every second costs the tier bitrate.  IDR frames are
    forced every ``keyframe_interval`` seconds by timestamp, so every tier cuts its
    segments at the same instants.
    """
    spec = f":v:{stream}" if stream is not None else ":v"
    gop = keyframe_interval_frames(frame_rate, keyframe_interval)
    args = [
        f"-c{spec}", "libx264",
        f"-preset{spec}", preset,
        f"-profile{spec}", "high",
    ]
    if rate_control == "capped_crf":
        args += [f"-crf{spec}", f"{crf:g}"]
    elif rate_control == "fixed_bitrate":
        args += [f"-b{spec}", str(rendition.video_bitrate)]
    elif rate_control == "cbr":
        args += [
            f"-b{spec}", str(rendition.video_bitrate),
            f"-minrate{spec}", str(rendition.maxrate),
            f"-x264-params{spec}", "nal-hrd=cbr",
        ]
    else:
        raise ValueError(f"unknown rate control {rate_control!r}; use 'capped_crf', 'fixed_bitrate' or 'cbr'")
    args += [
        f"-maxrate{spec}", str(rendition.maxrate),
        f"-bufsize{spec}", str(rendition.bufsize),
        f"-g{spec}", str(gop),
        f"-sc_threshold{spec}", "0",
        f"-forced-idr{spec}", "1",
        f"-force_key_frames{spec}", f"expr:gte(t,n_forced*{keyframe_interval:g})",
    ]
    if threads is not None:
        args += [f"-threads{spec}", str(threads)]
    return args


def audio_encoder_args(*, stream: int | None, audio_bitrate: int = 128_000) -> list[str]:
    """Stereo AAC-LC at 48 kHz for one output audio stream."""
    spec = f":a:{stream}" if stream is not None else ":a"
    return [
        f"-c{spec}", "aac",
        f"-b{spec}", str(audio_bitrate),
        f"-ac{spec}", "2",
        f"-ar{spec}", "48000",
    ]


_FILTER_LINE_RE = re.compile(r"^\s*[T.][S.][C.]\s+(\S+)\s+\S*->\S*\s")
_filters_by_binary: dict[str, frozenset[str]] = {}


def available_filters(ffmpeg_bin: str = "ffmpeg", *, timeout: float = 30.0) -> frozenset[str]:
    """Names of the filters this ffmpeg build has (``ffmpeg -filters``), remembered per binary.

    An ffmpeg that cannot list its filters gives an empty set (not remembered): every
    optional conversion is then reported as skipped, and the transcode itself will say
    what is wrong with the binary.
    """
    if ffmpeg_bin in _filters_by_binary:
        return _filters_by_binary[ffmpeg_bin]
    try:
        completed = subprocess.run(
            [ffmpeg_bin, "-hide_banner", "-nostdin", "-filters"],
            capture_output=True, text=True, errors="replace", timeout=timeout, stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("could not list the filters of %s: %s", ffmpeg_bin, exc)
        return frozenset()
    names = frozenset(
        match.group(1) for line in completed.stdout.splitlines() if (match := _FILTER_LINE_RE.match(line))
    )
    if completed.returncode != 0 or not names:
        logger.warning("could not list the filters of %s: %s", ffmpeg_bin, _first_error_line(completed.stderr))
        return frozenset()
    _filters_by_binary[ffmpeg_bin] = names
    return names


#: What the pipeline uses when it is not told which filters exist (Debian's ffmpeg has them all).
PIPELINE_FILTERS = frozenset({"bwdif", "yadif", "zscale", "tonemap", "colorspace"})

#: Output colour tags for every converted source: the ladder is 8-bit BT.709 SDR.
BT709_TAGS: tuple[tuple[str, str], ...] = (
    ("color_primaries", "bt709"), ("color_trc", "bt709"), ("colorspace", "bt709"), ("color_range", "tv"),
)

# source colour names zscale accepts as input (ffprobe spells them the same way)
_ZSCALE_PRIMARIES = {"bt709", "bt470m", "bt470bg", "smpte170m", "smpte240m", "film", "bt2020", "smpte428",
                     "smpte431", "smpte432"}
_ZSCALE_MATRICES = {"bt709", "fcc", "bt470bg", "smpte170m", "bt2020nc", "bt2020c"}
# source transfers the colorspace filter understands, for wide-gamut SDR
_COLORSPACE_TRANSFERS = {"bt709", "bt470m", "bt470bg", "gamma22", "gamma28", "smpte170m", "smpte240m",
                         "iec61966-2-1", "iec61966-2-4", "bt2020-10", "bt2020-12"}


@dataclasses.dataclass(frozen=True)
class SourceConversion:
    """Filters run once on the decoded source, before the ladder is split and scaled.

    ``notes`` say what was done and why (they go to the job log); ``warnings`` are the
    notes about conversions this ffmpeg lacked a filter for, where the picture was only
    approximated; ``tag_bt709`` makes the encoder tag every output BT.709 (sources whose
    own tags would be wrong for the 8-bit SDR ladder).
    """

    filters: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    tag_bt709: bool = False


def _deinterlace(probe: ProbeResult, filters: Collection[str]) -> tuple[list[str], str, bool]:
    # one frame per frame keeps the frame rate (25i stays 25p); parity from each frame's flags
    for name in ("bwdif", "yadif"):
        if name in filters:
            return (
                [f"{name}=mode=send_frame:parity=auto:deint=all"],
                f"interlaced source (field order {probe.field_order}): deinterlaced with {name}, "
                f"one frame per frame",
                False,
            )
    return [], (
        f"WARNING: interlaced source (field order {probe.field_order}) but this ffmpeg has neither bwdif nor "
        f"yadif: encoded without deinterlacing, moving edges will show combing"
    ), True


def _range_word(probe: ProbeResult) -> str:
    return "pc" if probe.color_range == "pc" else "tv"


def _hdr_to_sdr(
    probe: ProbeResult, filters: Collection[str], size: tuple[int, int] | None
) -> tuple[list[str], str, bool]:
    hdr = probe.hdr_format
    described = (
        f"HDR source ({hdr}, {probe.color_primaries or 'unstated'} primaries, "
        f"{probe.pix_fmt or 'unknown pixel format'})"
    )
    if {"zscale", "tonemap"} <= set(filters):
        primaries = probe.color_primaries if probe.color_primaries in _ZSCALE_PRIMARIES else "bt2020"
        matrix = probe.color_space if probe.color_space in _ZSCALE_MATRICES else "bt2020nc"
        # the first zscale also sizes the picture for the top tier: tone mapping in float on
        # fewer pixels costs far less CPU than at a 4K source's size
        resize = f"w={size[0]}:h={size[1]}:f=bicubic:" if size else ""
        chain = [
            f"zscale={resize}tin={probe.color_transfer}:pin={primaries}:min={matrix}:rin={_range_word(probe)}"
            f":t=linear:npl=100",
            "format=gbrpf32le",
            "zscale=p=bt709",
            "tonemap=tonemap=hable:desat=0",
            "zscale=t=bt709:m=bt709:r=tv",
            "format=yuv420p",
        ]
        return chain, f"{described}: tone-mapped to BT.709 SDR 8-bit with zscale and tonemap (hable)", False
    if "colorspace" in filters:
        chain = [f"colorspace=all=bt709:iall=bt2020:itrc=bt2020-10:irange={_range_word(probe)}:format=yuv420p"]
        return chain, (
            f"WARNING: {described}: this ffmpeg has no zscale/tonemap, so it was NOT tone-mapped; colours were "
            f"converted BT.2020 to BT.709 with the colorspace filter, reading the {hdr} signal as SDR BT.2020 "
            f"(highlights clip; PQ sources look dark and flat)"
        ), True
    return [], (
        f"WARNING: {described}: this ffmpeg has neither zscale/tonemap nor colorspace, so colours were NOT "
        f"converted; the output is tagged BT.709 SDR and will look washed out"
    ), True


def _wide_gamut_to_bt709(probe: ProbeResult, filters: Collection[str]) -> tuple[list[str], str, bool]:
    transfer = probe.color_transfer if probe.color_transfer in _COLORSPACE_TRANSFERS else "bt2020-10"
    if "colorspace" in filters:
        return [
            f"colorspace=all=bt709:iall=bt2020:itrc={transfer}:irange={_range_word(probe)}:format=yuv420p"
        ], "wide-gamut SDR source (BT.2020 primaries): colours converted to BT.709 with the colorspace filter", False
    return [], (
        "WARNING: wide-gamut SDR source (BT.2020 primaries) but this ffmpeg has no colorspace filter: colours "
        "were NOT converted; the output is tagged BT.709 and looks less saturated"
    ), True


def source_conversion(
    probe: ProbeResult,
    *,
    renditions: Sequence[PlannedRendition] = (),
    available: Collection[str] | None = None,
) -> SourceConversion:
    """Decide how the decoded source is prepared once before the ladder (pure).

    Interlaced sources are deinterlaced first (bwdif, one frame per frame, so the frame
    rate stays); HDR sources (PQ/HLG) are tone-mapped to 8-bit BT.709 SDR, at the size of
    the largest of ``renditions`` when given; BT.2020 SDR sources get BT.709 colours.
    ``available`` is the set of filters the ffmpeg build has (``available_filters``);
    None means the usual ones are there.  A missing filter gives a weaker conversion and a
    WARNING note instead of a failed transcode.
    """
    filters = PIPELINE_FILTERS if available is None else available
    size = None
    if renditions:
        top = max(renditions, key=lambda rendition: rendition.width * rendition.height)
        size = (top.width, top.height)
    steps: list[tuple[list[str], str, bool]] = []
    if probe.is_interlaced:
        steps.append(_deinterlace(probe, filters))
    if probe.hdr_format:
        steps.append(_hdr_to_sdr(probe, filters, size))
    elif probe.is_wide_gamut:
        steps.append(_wide_gamut_to_bt709(probe, filters))
    return SourceConversion(
        filters=tuple(name for step_filters, _, _ in steps for name in step_filters),
        notes=tuple(note for _, note, _ in steps),
        warnings=tuple(note for _, note, degraded in steps if degraded),
        tag_bt709=bool(probe.hdr_format or probe.is_wide_gamut),
    )


def scale_filter(rendition: PlannedRendition) -> str:
    """Exact-size bicubic scale to 8-bit 4:2:0 with square pixels."""
    return f"scale={rendition.width}:{rendition.height},format=yuv420p,setsar=1"


def build_filter_graph(
    *,
    video_input: str,
    renditions: Sequence[PlannedRendition],
    cascade: bool = True,
    source_filters: Sequence[str] = (),
) -> tuple[str, list[str]]:
    """filter_complex text and the output label of each rendition (same order as ``renditions``).

    ``source_filters`` (deinterlacing, tone mapping: ``SourceConversion.filters``) run once
    on the source picture, before anything is split.  With ``cascade`` each tier is scaled
    from the next larger tier's picture instead of from the source, which is much cheaper
    when the source is large.
    """
    order = sorted(range(len(renditions)), key=lambda i: renditions[i].width * renditions[i].height, reverse=True)
    labels = [f"v{i}" for i in range(len(renditions))]
    source = f"[{video_input}]" + "".join(f"{name}," for name in source_filters)
    parts: list[str] = []
    if cascade:
        current = source
        for position, index in enumerate(order):
            chain = f"{current}{scale_filter(renditions[index])}"
            if position == len(order) - 1:
                parts.append(f"{chain}[{labels[index]}]")
            else:
                next_input = f"c{position}"
                parts.append(f"{chain},split=2[{labels[index]}][{next_input}]")
                current = f"[{next_input}]"
    else:
        if len(renditions) == 1:
            parts.append(f"{source}{scale_filter(renditions[0])}[{labels[0]}]")
        else:
            split_labels = [f"s{i}" for i in range(len(renditions))]
            parts.append(f"{source}split={len(renditions)}" + "".join(f"[{s}]" for s in split_labels))
            for index, rendition in enumerate(renditions):
                parts.append(f"[{split_labels[index]}]{scale_filter(rendition)}[{labels[index]}]")
    return ";".join(parts), labels


def _validate_renditions(renditions: Sequence[PlannedRendition]) -> None:
    if not renditions:
        raise ValueError("at least one rendition is needed")
    names = [r.name for r in renditions]
    if len(set(names)) != len(names):
        raise ValueError(f"rendition names must be unique, got {names}")
    for rendition in renditions:
        if not _SAFE_NAME_RE.match(rendition.name):
            raise ValueError(f"rendition name {rendition.name!r} may only use letters, digits, '_' and '-'")
        if rendition.width % 2 or rendition.height % 2:
            raise ValueError(f"rendition {rendition.name} is {rendition.width}x{rendition.height}; sizes must be even")


def build_hls_command(
    *,
    ffmpeg_bin: str = "ffmpeg",
    input_path: PathLike,
    output_dir: PathLike,
    probe: ProbeResult,
    renditions: Sequence[PlannedRendition],
    segment_seconds: float = 6.0,
    keyframe_interval: float = 2.0,
    audio_bitrate: int = 128_000,
    crf: float = 23.0,
    preset: str = "veryfast",
    tier_presets: Mapping[str, str] | None = None,
    x264_threads: int | None = None,
    rate_control: RateControl = "capped_crf",
    cascade: bool = True,
    conversion: SourceConversion | None = None,
    allowed_demuxers: Sequence[str] | None = DEFAULT_DEMUXERS,
    loglevel: str = "warning",
) -> list[str]:
    """One ffmpeg process that decodes once and writes every rendition as HLS.

    ``output_dir`` must exist; ffmpeg creates the ``<name>/`` directories.  Segments are
    cut at IDR frames forced every ``keyframe_interval`` seconds, so ``segment_seconds``
    must be a multiple of it.  Maps and ``-var_stream_map`` come from the probe, so a
    source without audio works.  Progress goes to stdout (``-progress pipe:1``).

    ``cascade`` scales each lower tier from the next larger tier's picture (measured ~1/3
    less CPU than three separate processes on 1080p input); ``tier_presets`` overrides the
    x264 preset per rendition name; ``x264_threads`` None leaves x264's automatic choice;
    ``rate_control="fixed_bitrate"``/``"cbr"`` exist for comparisons (benchmark), not production.
    ``conversion`` prepares interlaced and HDR sources (default: ``source_conversion``
    assuming the usual filters exist; pass the one made with ``available_filters``).
    """
    _validate_renditions(renditions)
    ratio = segment_seconds / keyframe_interval if keyframe_interval > 0 else 0.0
    if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
        raise ValueError(
            f"segment_seconds ({segment_seconds:g}) must be a whole multiple of keyframe_interval "
            f"({keyframe_interval:g}) so every segment starts with an IDR frame"
        )
    out = Path(output_dir).absolute()
    if "%" in os.fspath(out):
        raise ValueError(f"output_dir {out} must not contain '%' (ffmpeg treats it as a pattern)")
    tier_presets = tier_presets or {}
    if conversion is None:
        conversion = source_conversion(probe, renditions=renditions)

    graph, labels = build_filter_graph(
        video_input=f"0:{probe.video_stream_index}", renditions=renditions, cascade=cascade,
        source_filters=conversion.filters,
    )
    cmd: list[str] = [
        ffmpeg_bin,
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel", loglevel,
        "-progress", "pipe:1",
        "-nostats",
        *_whitelist_args(allowed_demuxers),
        "-i", _input_url(input_path),
    ]
    cmd += ["-filter_complex", graph]
    for label in labels:
        cmd += ["-map", f"[{label}]"]
    with_audio = probe.has_audio and probe.audio_stream_index is not None
    if with_audio:
        for _ in renditions:
            cmd += ["-map", f"0:{probe.audio_stream_index}"]
    for index, rendition in enumerate(renditions):
        cmd += video_encoder_args(
            rendition=rendition,
            stream=index,
            frame_rate=probe.frame_rate,
            crf=crf,
            preset=tier_presets.get(rendition.name, preset),
            keyframe_interval=keyframe_interval,
            threads=x264_threads,
            rate_control=rate_control,
        )
        if conversion.tag_bt709:
            cmd += [arg for option, value in BT709_TAGS for arg in (f"-{option}:v:{index}", value)]
    if with_audio:
        cmd += audio_encoder_args(stream=None, audio_bitrate=audio_bitrate)
    if with_audio:
        stream_map = " ".join(f"v:{i},a:{i},name:{r.name}" for i, r in enumerate(renditions))
    else:
        stream_map = " ".join(f"v:{i},name:{r.name}" for i, r in enumerate(renditions))
    cmd += [
        "-map_metadata", "-1",
        "-map_chapters", "-1",
        # x264 lookahead delays video packets; the default queue overflows on some inputs
        "-max_muxing_queue_size", "4096",
        "-f", "hls",
        "-hls_time", f"{segment_seconds:g}",
        "-hls_playlist_type", "vod",
        "-hls_list_size", "0",
        "-hls_segment_type", "mpegts",
        "-hls_flags", "independent_segments",
        "-hls_segment_filename", os.fspath(out / "%v" / SEGMENT_TEMPLATE),
        "-master_pl_name", MASTER_PLAYLIST_NAME,
        "-var_stream_map", stream_map,
        os.fspath(out / "%v" / MEDIA_PLAYLIST_NAME),
    ]
    return cmd


def poster_time(probe: ProbeResult, *, position: float = 0.1) -> float:
    """Seek time for the poster: ``position`` of the duration, at least one frame before the end."""
    frame = 1.0 / probe.frame_rate if probe.frame_rate > 0 else 0.04
    return max(0.0, min(probe.duration * position, probe.duration - 2 * frame))


def poster_command(
    *,
    ffmpeg_bin: str = "ffmpeg",
    input_path: PathLike,
    output_path: PathLike,
    probe: ProbeResult,
    width: int | None = None,
    height: int | None = None,
    position: float = 0.1,
    quality: int = 3,
    conversion: SourceConversion | None = None,
    allowed_demuxers: Sequence[str] | None = DEFAULT_DEMUXERS,
) -> list[str]:
    """JPEG poster from ~10% into the video (display orientation, square pixels).

    ``width``/``height`` default to the source display size (use the top rendition's).
    ``conversion`` is the ladder's, so the poster is deinterlaced and tone-mapped the same
    way (default: ``source_conversion`` of the probe).  ffmpeg exits 0 without writing a
    file if no frame exists there: check the file.
    """
    target_width = width or _even_floor(probe.width)
    target_height = height or _even_floor(probe.height)
    if conversion is None:
        conversion = source_conversion(probe)
    video_filter = ",".join([*conversion.filters, f"scale={target_width}:{target_height},setsar=1"])
    return [
        ffmpeg_bin,
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel", "error",
        *_whitelist_args(allowed_demuxers),
        "-ss", f"{poster_time(probe, position=position):.3f}",
        "-i", _input_url(input_path),
        "-map", f"0:{probe.video_stream_index}",
        "-frames:v", "1",
        "-vf", video_filter,
        "-q:v", str(quality),
        "-f", "image2",
        "-update", "1",
        os.fspath(Path(output_path).absolute()),
    ]


# ---------------------------------------------------------------------------
# Progress and process runner
# ---------------------------------------------------------------------------


def parse_progress_line(line: str) -> tuple[str, str] | None:
    """Split one ``-progress`` line (``key=value``) into its parts; None for anything else."""
    text = line.strip()
    if "=" not in text:
        return None
    key, _, value = text.partition("=")
    key = key.strip()
    if not key or " " in key:
        return None
    return key, value.strip()


def _parse_clock(value: str) -> float | None:
    match = re.fullmatch(r"(-?)(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", value)
    if not match:
        return None
    seconds = int(match.group(2)) * 3600 + int(match.group(3)) * 60 + float(match.group(4))
    return -seconds if match.group(1) else seconds


@dataclasses.dataclass(frozen=True)
class ProgressSnapshot:
    """One ``-progress`` block: encoded media time so far and whether ffmpeg finished."""

    out_time: float
    finished: bool
    speed: float | None
    fields: Mapping[str, str]

    def percent(self, duration: float) -> float:
        """Progress 0..100 against the probed duration (100 once ffmpeg reports the end)."""
        if self.finished:
            return 100.0
        if duration <= 0:
            return 0.0
        return max(0.0, min(100.0, 100.0 * self.out_time / duration))


class ProgressParser:
    """Incremental parser for ``-progress`` output; feed lines, get a snapshot per block."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}

    def feed(self, line: str) -> ProgressSnapshot | None:
        """Consume one line; return a snapshot when the line closes a block (``progress=...``)."""
        parsed = parse_progress_line(line)
        if parsed is None:
            return None
        key, value = parsed
        if key != "progress":
            self._fields[key] = value
            return None
        fields, self._fields = self._fields, {}
        return ProgressSnapshot(
            out_time=max(0.0, self._out_time(fields)),
            finished=value == "end",
            speed=_to_float(fields.get("speed", "").rstrip("x")),
            fields=fields,
        )

    @staticmethod
    def _out_time(fields: Mapping[str, str]) -> float:
        # out_time_ms is in microseconds too (a long-standing ffmpeg quirk)
        for key in ("out_time_us", "out_time_ms"):
            micros = _to_int(fields.get(key))
            if micros is not None:
                return micros / 1_000_000
        clock = _parse_clock(fields.get("out_time", ""))
        return clock if clock is not None else 0.0


@dataclasses.dataclass(frozen=True)
class FfmpegResult:
    """How a finished ffmpeg run went: exit code, time and memory of the child, log tail."""

    returncode: int
    wall_seconds: float
    cpu_seconds: float
    max_rss_kb: int
    log_tail: list[str]


class TranscodeError(Exception):
    """ffmpeg did not produce a result; carries its log tail and the resources it used."""

    def __init__(
        self, message: str, *, log_tail: Sequence[str] = (), wall_seconds: float = 0.0, cpu_seconds: float = 0.0
    ) -> None:
        super().__init__(message)
        self.log_tail = list(log_tail)
        self.wall_seconds = wall_seconds
        self.cpu_seconds = cpu_seconds


class TranscodeFailed(TranscodeError):
    """ffmpeg exited with an error."""

    def __init__(self, message: str, *, returncode: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.returncode = returncode


class TranscodeTimeout(TranscodeError):
    """ffmpeg ran longer than allowed and was killed."""


class TranscodeCancelled(TranscodeError):
    """The caller asked to stop; ffmpeg was killed."""


def _pump_lines(stream: IO[str], sink: Callable[[str], None]) -> None:
    for line in stream:
        sink(line.rstrip("\r\n"))


def _kill_and_reap(process: subprocess.Popen[str]) -> tuple[float, int]:
    """SIGKILL the child and wait for it; returns its CPU seconds and peak RSS (KB)."""
    # os.kill, not Popen.send_signal: that polls first and could reap the child, losing its rusage
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
    return _reap(process, block=True) or (0.0, 0)


def _reap(process: subprocess.Popen[str], *, block: bool) -> tuple[float, int] | None:
    """wait4 the child so its own rusage is exact; None while it is still running."""
    if process.returncode is not None:
        return None
    try:
        pid, status, usage = os.wait4(process.pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        process.returncode = process.returncode if process.returncode is not None else -1
        return 0.0, 0
    if pid == 0:
        return None
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss)


def run_ffmpeg(
    cmd: Sequence[str],
    *,
    duration: float,
    timeout: float,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    log_tail_lines: int = 50,
    poll_interval: float = 0.25,
    cancel_check_interval: float = 1.0,
) -> FfmpegResult:
    """Run ffmpeg, report progress 0..100 from ``-progress pipe:1`` and enforce timeout/cancel.

    ``on_progress`` and ``should_cancel`` are called from the calling thread (safe for
    database access).  stderr is read in a thread and its last lines kept.  On timeout or
    cancellation the child is killed and reaped before TranscodeTimeout/TranscodeCancelled
    is raised; a non-zero exit raises TranscodeFailed.  If the process dies meanwhile
    (SIGKILL, OOM killer), Linux kills ffmpeg too (``launch_command``).  CPU time and peak
    RSS are those of this child only (``os.wait4``).
    """
    tail: collections.deque[str] = collections.deque(maxlen=max(1, log_tail_lines))
    updates: queue.SimpleQueue[ProgressSnapshot] = queue.SimpleQueue()
    parser = ProgressParser()

    def on_stdout(line: str) -> None:
        snapshot = parser.feed(line)
        if snapshot is not None:
            updates.put(snapshot)

    def on_stderr(line: str) -> None:
        if line.strip():
            tail.append(line)

    logger.info("starting ffmpeg: %s", shlex.join(cmd))
    started = time.monotonic()
    # This thread waits for ffmpeg until it is reaped, so the parent-death signal fires only when the worker dies.
    process = subprocess.Popen(
        launch_command(cmd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        bufsize=1,
    )
    assert process.stdout is not None and process.stderr is not None
    readers = [
        threading.Thread(target=_pump_lines, args=(process.stdout, on_stdout), daemon=True, name="ffmpeg-stdout"),
        threading.Thread(target=_pump_lines, args=(process.stderr, on_stderr), daemon=True, name="ffmpeg-stderr"),
    ]
    for reader in readers:
        reader.start()

    deadline = started + timeout
    next_cancel_check = started
    last_percent = -1.0
    usage: tuple[float, int] | None = None

    def report(snapshot: ProgressSnapshot) -> None:
        nonlocal last_percent
        percent = snapshot.percent(duration)
        if on_progress is not None and percent != last_percent:
            on_progress(percent)
        last_percent = percent

    def finish_readers() -> None:
        for reader in readers:
            reader.join(timeout=5)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()

    def stop(error_type: type[TranscodeError], message: str) -> TranscodeError:
        cpu, _ = _kill_and_reap(process)
        finish_readers()
        wall = time.monotonic() - started
        logger.warning("%s after %.1f s wall, %.1f s CPU", message, wall, cpu)
        return error_type(message, log_tail=list(tail), wall_seconds=wall, cpu_seconds=cpu)

    try:
        while usage is None:
            with contextlib.suppress(queue.Empty):
                report(updates.get(timeout=poll_interval))
            usage = _reap(process, block=False)
            if usage is not None:
                break
            now = time.monotonic()
            if now >= deadline:
                raise stop(TranscodeTimeout, f"ffmpeg timed out after {timeout:g} s and was killed")
            if should_cancel is not None and now >= next_cancel_check:
                next_cancel_check = now + cancel_check_interval
                if should_cancel():
                    raise stop(TranscodeCancelled, "transcoding was cancelled and ffmpeg was killed")
    finally:
        if process.returncode is None:
            _kill_and_reap(process)
            finish_readers()

    finish_readers()
    while True:
        try:
            report(updates.get_nowait())
        except queue.Empty:
            break
    wall = time.monotonic() - started
    cpu, max_rss = usage
    returncode = process.returncode if process.returncode is not None else -1
    if returncode != 0:
        last = tail[-1] if tail else "no error output"
        raise TranscodeFailed(
            f"ffmpeg exited with code {returncode}: {last}",
            returncode=returncode,
            log_tail=list(tail),
            wall_seconds=wall,
            cpu_seconds=cpu,
        )
    if on_progress is not None and last_percent < 100.0:
        on_progress(100.0)
    logger.info("ffmpeg finished in %.1f s wall, %.1f s CPU, peak RSS %d KB", wall, cpu, max_rss)
    return FfmpegResult(
        returncode=returncode, wall_seconds=wall, cpu_seconds=cpu, max_rss_kb=max_rss, log_tail=list(tail)
    )


# ---------------------------------------------------------------------------
# Output measurement and master playlist
# ---------------------------------------------------------------------------


class HlsOutputError(Exception):
    """The files ffmpeg wrote are missing or unusable."""


@dataclasses.dataclass(frozen=True)
class KeyFrameRange:
    """Bytes of one IDR frame in a segment, including the PAT/PMT written just before it."""

    pts: float
    offset: int
    length: int


@dataclasses.dataclass(frozen=True)
class TsSegmentScan:
    """What a pass over one MPEG-TS segment found."""

    video_codec: str | None
    has_aac: bool
    keyframes: tuple[KeyFrameRange, ...]
    starts_with_keyframe: bool
    first_video_pts: float | None


_TS_PACKET = 188
_STREAM_TYPE_H264 = 0x1B
_AAC_STREAM_TYPES = {0x0F, 0x11}


def _pes_pts(payload: bytes) -> float | None:
    if len(payload) < 14 or payload[:3] != b"\x00\x00\x01" or not payload[7] & 0x80:
        return None
    b = payload[9:14]
    ticks = ((b[0] >> 1) & 0x07) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
    return ticks / 90_000.0


def _avc_codec_from_pes(payload: bytes) -> str | None:
    """``avc1.PPCCLL`` from the SPS at the start of a PES (profile, constraint flags, level)."""
    if len(payload) < 9 or payload[:3] != b"\x00\x00\x01":
        return None
    es = payload[9 + payload[8]:]
    start = 0
    while True:
        start = es.find(b"\x00\x00\x01", start)
        if start < 0 or start + 6 > len(es):
            return None
        if es[start + 3] & 0x1F == 7:
            profile, constraints, level = es[start + 4], es[start + 5], es[start + 6]
            return f"avc1.{profile:02x}{constraints:02x}{level:02x}"
        start += 3


def scan_ts_segment(path: PathLike) -> TsSegmentScan:
    """Read an MPEG-TS segment written by ffmpeg: codec string, audio type, IDR byte ranges."""
    data = Path(path).read_bytes()
    if len(data) % _TS_PACKET or (data and data[0] != 0x47):
        raise HlsOutputError(f"{path} is not an MPEG-TS file made of 188-byte packets")
    pmt_pids: set[int] = set()
    video_pid: int | None = None
    has_aac = False
    codec: str | None = None
    keyframes: list[KeyFrameRange] = []
    first_video_pts: float | None = None
    starts_with_keyframe = False
    pending_pes = bytearray()
    collecting_sps = False
    open_frame: tuple[float, int] | None = None
    last_video_end = 0
    recent_pids: collections.deque[int] = collections.deque(maxlen=3)

    def close_frame() -> None:
        nonlocal open_frame
        if open_frame is not None:
            pts, start = open_frame
            keyframes.append(KeyFrameRange(pts=pts, offset=start, length=last_video_end - start))
            open_frame = None

    for offset in range(0, len(data), _TS_PACKET):
        packet = data[offset:offset + _TS_PACKET]
        if packet[0] != 0x47:
            raise HlsOutputError(f"{path}: lost MPEG-TS sync at byte {offset}")
        pid = (packet[1] & 0x1F) << 8 | packet[2]
        unit_start = bool(packet[1] & 0x40)
        adaptation = (packet[3] >> 4) & 0x3
        payload_at = 4
        random_access = False
        if adaptation & 0x2:
            field_length = packet[4]
            random_access = field_length > 0 and bool(packet[5] & 0x40)
            payload_at = 5 + field_length
        payload = packet[payload_at:] if adaptation & 0x1 else b""

        if pid == 0 and unit_start and payload:
            section = payload[1 + payload[0]:]
            length = ((section[1] & 0x0F) << 8 | section[2]) if len(section) >= 3 else 0
            for at in range(8, 3 + length - 4, 4):
                program = section[at] << 8 | section[at + 1]
                if program:
                    pmt_pids.add((section[at + 2] & 0x1F) << 8 | section[at + 3])
        elif pid in pmt_pids and unit_start and payload:
            section = payload[1 + payload[0]:]
            length = (section[1] & 0x0F) << 8 | section[2]
            at = 12 + ((section[10] & 0x0F) << 8 | section[11])
            while at + 5 <= 3 + length - 4:
                stream_type, es_pid = section[at], (section[at + 1] & 0x1F) << 8 | section[at + 2]
                if stream_type == _STREAM_TYPE_H264 and video_pid is None:
                    video_pid = es_pid
                has_aac = has_aac or stream_type in _AAC_STREAM_TYPES
                at += 5 + ((section[at + 3] & 0x0F) << 8 | section[at + 4])
        elif pid == video_pid:
            if unit_start:
                close_frame()
                pts = _pes_pts(payload)
                if first_video_pts is None:
                    first_video_pts = pts
                    starts_with_keyframe = random_access
                if random_access and pts is not None:
                    # start at the PAT/PMT ffmpeg writes before each keyframe so the range decodes alone
                    start = offset
                    if len(recent_pids) >= 2 and recent_pids[-1] in pmt_pids and recent_pids[-2] == 0:
                        start = offset - 2 * _TS_PACKET
                    open_frame = (pts, start)
                if codec is None:
                    pending_pes = bytearray(payload)
                    collecting_sps = True
            elif collecting_sps and codec is None and len(pending_pes) < 8192:
                pending_pes += payload
            if collecting_sps and codec is None:
                codec = _avc_codec_from_pes(bytes(pending_pes))
            last_video_end = offset + _TS_PACKET
        recent_pids.append(pid)
    close_frame()
    return TsSegmentScan(
        video_codec=codec,
        has_aac=has_aac,
        keyframes=tuple(keyframes),
        starts_with_keyframe=starts_with_keyframe,
        first_video_pts=first_video_pts,
    )


@dataclasses.dataclass(frozen=True)
class MediaSegment:
    """One entry of a media playlist with its file size."""

    uri: str
    duration: float
    bytes: int


def read_media_playlist(playlist: PathLike) -> list[MediaSegment]:
    """Segments (URI, EXTINF duration, file size) listed in a media playlist written by ffmpeg."""
    playlist_path = Path(playlist)
    segments: list[MediaSegment] = []
    duration: float | None = None
    for line in playlist_path.read_text().splitlines():
        line = line.strip()
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:"):].split(",", 1)[0])
        elif line and not line.startswith("#"):
            if duration is None:
                raise HlsOutputError(f"{playlist_path}: segment {line} has no #EXTINF")
            segment_path = playlist_path.parent / line
            if not segment_path.is_file():
                raise HlsOutputError(f"{playlist_path}: segment {line} is missing")
            segments.append(MediaSegment(uri=line, duration=duration, bytes=segment_path.stat().st_size))
            duration = None
    return segments


@dataclasses.dataclass(frozen=True)
class RenditionOutput:
    """A written rendition, measured: what goes into the master playlist and a Rendition row."""

    name: str
    width: int
    height: int
    bandwidth: int
    average_bandwidth: int
    codecs: str
    video_codec: str
    frame_rate: float | None
    playlist: str
    iframe_playlist: str | None
    iframe_bandwidth: int | None
    segment_durations: tuple[float, ...]
    segment_bytes: int
    bytes: int
    keyframe_aligned: bool


@dataclasses.dataclass(frozen=True)
class HlsOutput:
    """The finished ladder: master playlist path, renditions as listed, total bytes on disk."""

    master_playlist: Path
    renditions: list[RenditionOutput]
    total_bytes: int


def _format_frame_rate(frame_rate: float) -> str:
    return f"{frame_rate:.3f}"


def _write_iframe_playlist(
    path: Path, entries: Sequence[tuple[str, KeyFrameRange, float]]
) -> tuple[int, int]:
    """Write an EXT-X-I-FRAMES-ONLY playlist; returns its peak and average bit/s."""
    target = max(1, max(round(duration) for _, _, duration in entries))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:4",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-I-FRAMES-ONLY",
    ]
    peak = 0.0
    for uri, frame, duration in entries:
        lines += [f"#EXTINF:{duration:.6f},", f"#EXT-X-BYTERANGE:{frame.length}@{frame.offset}", uri]
        peak = max(peak, frame.length * 8 / duration)
    lines.append("#EXT-X-ENDLIST")
    path.write_text("\n".join(lines) + "\n")
    total_bytes = sum(frame.length for _, frame, _ in entries)
    total_duration = sum(duration for _, _, duration in entries)
    return math.ceil(peak), math.ceil(total_bytes * 8 / total_duration)


def measure_rendition(
    *,
    output_dir: PathLike,
    rendition: PlannedRendition,
    frame_rate: float | None,
    iframe_playlist: bool = True,
) -> RenditionOutput:
    """Measure one written rendition from its segments and write its I-frame playlist."""
    directory = Path(output_dir) / rendition.name
    playlist = directory / MEDIA_PLAYLIST_NAME
    if not playlist.is_file():
        raise HlsOutputError(f"rendition {rendition.name}: {playlist} was not written")
    segments = read_media_playlist(playlist)
    if not segments:
        raise HlsOutputError(f"rendition {rendition.name}: the playlist lists no segments")

    peak = max(segment.bytes * 8 / segment.duration for segment in segments if segment.duration > 0)
    total_bytes = sum(segment.bytes for segment in segments)
    total_duration = sum(segment.duration for segment in segments)
    scans = [scan_ts_segment(directory / segment.uri) for segment in segments]
    video_codec = next((scan.video_codec for scan in scans if scan.video_codec), None)
    if video_codec is None:
        raise HlsOutputError(f"rendition {rendition.name}: no H.264 parameter sets found in the segments")
    has_aac = any(scan.has_aac for scan in scans)
    aligned = all(scan.starts_with_keyframe for scan in scans)
    if not aligned:
        logger.warning("rendition %s has segments that do not start with an IDR frame", rendition.name)

    iframe_name: str | None = None
    iframe_bandwidth: int | None = None
    frames = [(segment.uri, frame) for segment, scan in zip(segments, scans, strict=True) for frame in scan.keyframes]
    if iframe_playlist and frames:
        first_pts = next((scan.first_video_pts for scan in scans if scan.first_video_pts is not None), frames[0][1].pts)
        end_pts = first_pts + total_duration
        entries: list[tuple[str, KeyFrameRange, float]] = []
        for position, (uri, frame) in enumerate(frames):
            following = frames[position + 1][1].pts if position + 1 < len(frames) else end_pts
            entries.append((uri, frame, max(following - frame.pts, 0.001)))
        iframe_bandwidth, _ = _write_iframe_playlist(directory / IFRAME_PLAYLIST_NAME, entries)
        iframe_name = f"{rendition.name}/{IFRAME_PLAYLIST_NAME}"

    codecs = f"{video_codec},mp4a.40.2" if has_aac else video_codec
    on_disk = sum(path.stat().st_size for path in directory.iterdir() if path.is_file())
    return RenditionOutput(
        name=rendition.name,
        width=rendition.width,
        height=rendition.height,
        bandwidth=math.ceil(peak),
        average_bandwidth=math.ceil(total_bytes * 8 / total_duration),
        codecs=codecs,
        video_codec=video_codec,
        frame_rate=frame_rate if frame_rate and frame_rate > 0 else None,
        playlist=f"{rendition.name}/{MEDIA_PLAYLIST_NAME}",
        iframe_playlist=iframe_name,
        iframe_bandwidth=iframe_bandwidth,
        segment_durations=tuple(segment.duration for segment in segments),
        segment_bytes=total_bytes,
        bytes=on_disk,
        keyframe_aligned=aligned,
    )


def _master_order(outputs: Sequence[RenditionOutput], start_height: int) -> list[RenditionOutput]:
    """Players start with the first variant: the tallest at or below ``start_height``, then the rest tallest first."""
    by_size = sorted(outputs, key=lambda output: output.width * output.height, reverse=True)
    fitting = [output for output in by_size if min(output.width, output.height) <= start_height]
    first = fitting[0] if fitting else by_size[-1]
    return [first] + [output for output in by_size if output is not first]


def render_master_playlist(outputs: Sequence[RenditionOutput], *, start_height: int = 480) -> str:
    """Text of the multivariant playlist for measured renditions."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:4", "#EXT-X-INDEPENDENT-SEGMENTS", ""]
    ordered = _master_order(outputs, start_height)
    for output in ordered:
        attributes = [
            f"BANDWIDTH={output.bandwidth}",
            f"AVERAGE-BANDWIDTH={output.average_bandwidth}",
            f'CODECS="{output.codecs}"',
            f"RESOLUTION={output.width}x{output.height}",
        ]
        if output.frame_rate:
            attributes.append(f"FRAME-RATE={_format_frame_rate(output.frame_rate)}")
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attributes), output.playlist]
    iframe_lines = [
        "#EXT-X-I-FRAME-STREAM-INF:"
        + ",".join(
            [
                f"BANDWIDTH={output.iframe_bandwidth}",
                f'CODECS="{output.video_codec}"',
                f"RESOLUTION={output.width}x{output.height}",
                f'URI="{output.iframe_playlist}"',
            ]
        )
        for output in ordered
        if output.iframe_playlist and output.iframe_bandwidth
    ]
    if iframe_lines:
        lines += ["", *iframe_lines]
    return "\n".join(lines) + "\n"


def rewrite_master_playlist(
    *,
    output_dir: PathLike,
    renditions: Sequence[PlannedRendition],
    probe: ProbeResult,
    iframe_playlists: bool = True,
    start_height: int = 480,
) -> HlsOutput:
    """Measure the written segments and replace ffmpeg's master.m3u8 with exact values.

    BANDWIDTH is the peak segment bitrate and AVERAGE-BANDWIDTH the mean (bytes*8 over
    EXTINF); CODECS comes from the SPS in the segments; I-frame playlists are written
    per rendition.  Returns sizes per rendition for Rendition rows.
    """
    directory = Path(output_dir)
    _validate_renditions(renditions)
    outputs = [
        measure_rendition(
            output_dir=directory, rendition=rendition, frame_rate=probe.frame_rate, iframe_playlist=iframe_playlists
        )
        for rendition in renditions
    ]
    counts = {output.name: len(output.segment_durations) for output in outputs}
    if len(set(counts.values())) > 1:
        logger.warning("renditions have different segment counts: %s", counts)
    master = directory / MASTER_PLAYLIST_NAME
    temporary = master.with_suffix(".m3u8.tmp")
    temporary.write_text(render_master_playlist(outputs, start_height=start_height))
    temporary.replace(master)
    total = sum(output.bytes for output in outputs) + master.stat().st_size
    return HlsOutput(master_playlist=master, renditions=outputs, total_bytes=total)
