"""HLS playlists: the output layout, media playlist reading, measured master and I-frame playlists (pure).

Output layout inside ``output_dir`` (every path relative to it)::

    master.m3u8                 multivariant playlist (rewritten with measured values)
    <name>/index.m3u8           VOD media playlist of one rendition, e.g. 720p/index.m3u8
    <name>/seg_00000.ts         MPEG-TS segments, numbered from 0
    <name>/iframes.m3u8         I-frame playlist (byte ranges into the segments)
    poster.jpg                  only if the caller writes the poster there
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from transcoding.hls.ts import (
    HlsOutputError,
    HlsOutputIncomplete,
    KeyFrameRange,
    PathLike,
    TsSegmentScan,
    scan_ts_segment,
)

logger = logging.getLogger(__name__)

MASTER_PLAYLIST_NAME = "master.m3u8"
MEDIA_PLAYLIST_NAME = "index.m3u8"
IFRAME_PLAYLIST_NAME = "iframes.m3u8"
SEGMENT_TEMPLATE = "seg_%05d.ts"
#: Folder of the audio rendition of a chunked output, which every video tier plays with.
AUDIO_RENDITION_NAME = "audio"
AUDIO_GROUP_ID = "audio"

_SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class RenditionLayout(Protocol):
    """What the HLS files need of a planned rendition: its directory name and picture size."""

    @property
    def name(self) -> str: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...


class FrameRateSource(Protocol):
    """What the master playlist needs of the probed source: its frame rate (0 when unknown)."""

    @property
    def frame_rate(self) -> float: ...


def validate_renditions(renditions: Sequence[RenditionLayout]) -> None:
    """Raise ValueError unless the renditions have unique, directory-safe names and even sizes."""
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
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#"):
            if duration is None:
                raise HlsOutputError(f"{playlist_path}: segment {line} has no #EXTINF")
            segment_path = playlist_path.parent / line
            if not segment_path.is_file():
                raise HlsOutputIncomplete(f"{playlist_path}: segment {line} is missing")
            size = segment_path.stat().st_size
            if size == 0:
                raise HlsOutputIncomplete(f"{playlist_path}: segment {line} is empty")
            segments.append(MediaSegment(uri=line, duration=duration, bytes=size))
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


def render_iframe_playlist(entries: Sequence[tuple[str, KeyFrameRange, float]]) -> tuple[str, int, int]:
    """An EXT-X-I-FRAMES-ONLY playlist of ``(segment uri, key frame, duration)``; with its peak and average bit/s."""
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
    total_bytes = sum(frame.length for _, frame, _ in entries)
    total_duration = sum(duration for _, _, duration in entries)
    return "\n".join(lines) + "\n", math.ceil(peak), math.ceil(total_bytes * 8 / total_duration)


def render_media_playlist(segments: Sequence[MediaSegment], *, media_sequence: int = 0) -> str:
    """A VOD media playlist of ``segments`` as ffmpeg writes one (what a chunked output's assembly writes)."""
    target = max(1, max(math.ceil(segment.duration - 1e-3) for segment in segments))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for segment in segments:
        lines += [f"#EXTINF:{segment.duration:.6f},", segment.uri]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _iframe_entries(
    segments: Sequence[MediaSegment], scans: Sequence[TsSegmentScan]
) -> list[tuple[str, KeyFrameRange, float]]:
    """Each key frame of the segments with the time until the next one (the last: until the segments end)."""
    frames = [(segment.uri, frame) for segment, scan in zip(segments, scans, strict=True) for frame in scan.keyframes]
    if not frames:
        return []
    first_pts = next((scan.first_video_pts for scan in scans if scan.first_video_pts is not None), frames[0][1].pts)
    end_pts = first_pts + sum(segment.duration for segment in segments)
    entries: list[tuple[str, KeyFrameRange, float]] = []
    for position, (uri, frame) in enumerate(frames):
        following = frames[position + 1][1].pts if position + 1 < len(frames) else end_pts
        entries.append((uri, frame, max(following - frame.pts, 0.001)))
    return entries


def measure_rendition(
    *,
    output_dir: PathLike,
    rendition: RenditionLayout,
    frame_rate: float | None,
    iframe_playlist: bool = True,
) -> RenditionOutput:
    """Measure one written rendition from its segments and write its I-frame playlist."""
    directory = Path(output_dir) / rendition.name
    playlist = directory / MEDIA_PLAYLIST_NAME
    if not playlist.is_file():
        raise HlsOutputIncomplete(f"rendition {rendition.name}: {playlist} was not written")
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
    entries = _iframe_entries(segments, scans)
    if iframe_playlist and entries:
        text, iframe_bandwidth, _ = render_iframe_playlist(entries)
        (directory / IFRAME_PLAYLIST_NAME).write_text(text)
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


def render_master_playlist(
    outputs: Sequence[RenditionOutput], *, start_height: int = 480, audio_playlist: str | None = None
) -> str:
    """Text of the multivariant playlist for measured renditions.

    ``audio_playlist`` (a chunked output) is the audio rendition every variant plays with, as the
    ``EXT-X-MEDIA`` of group ``AUDIO_GROUP_ID``; the variants' BANDWIDTH and CODECS then include it.
    """
    lines = ["#EXTM3U", "#EXT-X-VERSION:4", "#EXT-X-INDEPENDENT-SEGMENTS", ""]
    if audio_playlist:
        lines += [
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP_ID}",NAME="Audio",DEFAULT=YES,AUTOSELECT=YES,'
            f'CHANNELS="2",URI="{audio_playlist}"',
            "",
        ]
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
        if audio_playlist:
            attributes.append(f'AUDIO="{AUDIO_GROUP_ID}"')
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
    renditions: Sequence[RenditionLayout],
    probe: FrameRateSource,
    iframe_playlists: bool = True,
    start_height: int = 480,
) -> HlsOutput:
    """Measure the written segments and replace ffmpeg's master.m3u8 with exact values.

    BANDWIDTH is the peak segment bitrate and AVERAGE-BANDWIDTH the mean (bytes*8 over
    EXTINF); CODECS comes from the SPS in the segments; I-frame playlists are written
    per rendition.  Returns sizes per rendition for Rendition rows.
    """
    directory = Path(output_dir)
    validate_renditions(renditions)
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


# --- Chunked outputs ---------------------------------------------------------------------
# A chunk's worker measures what it wrote (``measure_chunk_part``: plain JSON, stored on its
# TranscodeChunk row); the assembly joins the parts of every chunk into the playlists without
# reading a segment again (``assemble_rendition``).


def measure_chunk_part(*, directory: PathLike, with_keyframes: bool = True) -> dict[str, object]:
    """What one chunk wrote for one tier (or the audio rendition) in ``directory``: its segments
    ``[uri, duration, bytes]``, I-frame entries ``[uri, duration, offset, length]``, the H.264 codec
    string, whether every segment starts with an IDR frame, and the bytes of its segments."""
    folder = Path(directory)
    playlist = folder / MEDIA_PLAYLIST_NAME
    if not playlist.is_file():
        raise HlsOutputIncomplete(f"{playlist} was not written")
    segments = read_media_playlist(playlist)
    if not segments:
        raise HlsOutputError(f"{playlist} lists no segments")
    part: dict[str, object] = {
        "segments": [[segment.uri, segment.duration, segment.bytes] for segment in segments],
        "bytes": sum(segment.bytes for segment in segments),
    }
    if with_keyframes:
        scans = [scan_ts_segment(folder / segment.uri) for segment in segments]
        video_codec = next((scan.video_codec for scan in scans if scan.video_codec), None)
        if video_codec is None:
            raise HlsOutputError(f"{playlist}: no H.264 parameter sets found in the segments")
        part["video_codec"] = video_codec
        part["keyframe_aligned"] = all(scan.starts_with_keyframe for scan in scans)
        part["iframes"] = [
            [uri, duration, frame.offset, frame.length] for uri, frame, duration in _iframe_entries(segments, scans)
        ]
    return part


@dataclasses.dataclass(frozen=True)
class AssembledRendition:
    """A tier of a chunked output, joined: its measured values and the text of its playlists."""

    output: RenditionOutput
    media_playlist: str
    iframe_playlist: str | None


def _part_segments(parts: Sequence[dict]) -> list[MediaSegment]:
    return [
        MediaSegment(uri=uri, duration=duration, bytes=size)
        for part in parts
        for uri, duration, size in part["segments"]
    ]


def assemble_audio(parts: Sequence[dict]) -> tuple[str, int, int]:
    """The audio rendition's media playlist; its peak and average bit/s (what every variant adds)."""
    segments = _part_segments(parts)
    # the last AAC frame may make a segment of a few milliseconds, which says nothing about the peak
    peak = max(
        (segment.bytes * 8 / segment.duration for segment in segments if segment.duration >= 0.5),
        default=0.0,
    )
    total = sum(segment.duration for segment in segments)
    average = sum(segment.bytes for segment in segments) * 8 / total if total > 0 else 0.0
    return render_media_playlist(segments), math.ceil(peak), math.ceil(average)


def assemble_rendition(
    *,
    rendition: RenditionLayout,
    parts: Sequence[dict],
    frame_rate: float | None,
    audio_bandwidth: tuple[int, int] | None = None,
) -> AssembledRendition:
    """Join the parts of one tier, in chunk order, into its media and I-frame playlists.

    BANDWIDTH is the peak segment bitrate and AVERAGE-BANDWIDTH the mean, as for a single-process
    output, plus the audio rendition's (``audio_bandwidth``: peak, average) when there is one.
    """
    segments = _part_segments(parts)
    if not segments:
        raise HlsOutputError(f"rendition {rendition.name}: the chunks wrote no segments")
    codecs = {part["video_codec"] for part in parts}
    if len(codecs) != 1:
        raise HlsOutputError(f"rendition {rendition.name}: the chunks wrote different codecs {sorted(codecs)}")
    video_codec = codecs.pop()
    media_playlist = render_media_playlist(segments)
    entries = [
        (uri, KeyFrameRange(pts=0.0, offset=offset, length=length), duration)
        for part in parts
        for uri, duration, offset, length in part["iframes"]
    ]
    iframe_text, iframe_bandwidth = (None, None)
    if entries:
        iframe_text, iframe_bandwidth, _ = render_iframe_playlist(entries)
    total_bytes = sum(segment.bytes for segment in segments)
    total_duration = sum(segment.duration for segment in segments)
    peak = max(segment.bytes * 8 / segment.duration for segment in segments if segment.duration > 0)
    audio_peak, audio_average = audio_bandwidth or (0, 0)
    output = RenditionOutput(
        name=rendition.name,
        width=rendition.width,
        height=rendition.height,
        bandwidth=math.ceil(peak) + audio_peak,
        average_bandwidth=math.ceil(total_bytes * 8 / total_duration) + audio_average,
        codecs=f"{video_codec},mp4a.40.2" if audio_bandwidth else video_codec,
        video_codec=video_codec,
        frame_rate=frame_rate if frame_rate and frame_rate > 0 else None,
        playlist=f"{rendition.name}/{MEDIA_PLAYLIST_NAME}",
        iframe_playlist=f"{rendition.name}/{IFRAME_PLAYLIST_NAME}" if iframe_text else None,
        iframe_bandwidth=iframe_bandwidth,
        segment_durations=tuple(segment.duration for segment in segments),
        segment_bytes=total_bytes,
        bytes=total_bytes + len(media_playlist) + len(iframe_text or ""),
        keyframe_aligned=all(part["keyframe_aligned"] for part in parts),
    )
    return AssembledRendition(output=output, media_playlist=media_playlist, iframe_playlist=iframe_text)
