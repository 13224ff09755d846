"""ffmpeg command lines: x264/AAC encoder options, the one-process HLS ladder command and the poster (pure).

``build_hls_command`` decodes once and writes every rendition as HLS in the layout of
``transcoding.hls.playlists``; ``EncoderOptions`` holds the knobs only the benchmark varies.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from transcoding.ffmpeg.chunks import CHUNK_TS_OFFSET_S, ChunkRange, chunk_sprite_template
from transcoding.ffmpeg.filters import (
    BT709_TAGS,
    PREVIEW_LABEL,
    SourceConversion,
    build_filter_graph,
    source_conversion,
)
from transcoding.ffmpeg.ladder import PlannedRendition, even_floor
from transcoding.ffmpeg.previews import SPRITE_TEMPLATE, PreviewPlan, preview_filter_chain, preview_output_args
from transcoding.ffmpeg.probe import (
    DEFAULT_DEMUXERS,
    PathLike,
    ProbeResult,
    input_url,
    is_remote_input,
    whitelist_args,
)
from transcoding.hls.playlists import (
    AUDIO_RENDITION_NAME,
    MASTER_PLAYLIST_NAME,
    MEDIA_PLAYLIST_NAME,
    SEGMENT_TEMPLATE,
    validate_renditions,
)

RateControl = Literal["capped_crf", "fixed_bitrate", "cbr"]

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
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
        f"-c{spec}",
        "libx264",
        f"-preset{spec}",
        preset,
        f"-profile{spec}",
        "high",
    ]
    if rate_control == "capped_crf":
        args += [f"-crf{spec}", f"{crf:g}"]
    elif rate_control == "fixed_bitrate":
        args += [f"-b{spec}", str(rendition.video_bitrate)]
    elif rate_control == "cbr":
        args += [
            f"-b{spec}",
            str(rendition.video_bitrate),
            f"-minrate{spec}",
            str(rendition.maxrate),
            f"-x264-params{spec}",
            "nal-hrd=cbr",
        ]
    else:
        raise ValueError(f"unknown rate control {rate_control!r}; use 'capped_crf', 'fixed_bitrate' or 'cbr'")
    args += [
        f"-maxrate{spec}",
        str(rendition.maxrate),
        f"-bufsize{spec}",
        str(rendition.bufsize),
        f"-g{spec}",
        str(gop),
        f"-sc_threshold{spec}",
        "0",
        f"-forced-idr{spec}",
        "1",
        f"-force_key_frames{spec}",
        f"expr:gte(t,n_forced*{keyframe_interval:g})",
    ]
    if threads is not None:
        args += [f"-threads{spec}", str(threads)]
    return args


def audio_encoder_args(*, stream: int | None, audio_bitrate: int = 128_000) -> list[str]:
    """Stereo AAC-LC at 48 kHz for one output audio stream."""
    spec = f":a:{stream}" if stream is not None else ":a"
    return [
        f"-c{spec}",
        "aac",
        f"-b{spec}",
        str(audio_bitrate),
        f"-ac{spec}",
        "2",
        f"-ar{spec}",
        "48000",
    ]


@dataclasses.dataclass(frozen=True)
class EncoderOptions:
    """Encoder knobs the benchmark compares; the defaults are what production encodes with.

    ``cascade`` scales each lower tier from the next larger tier's picture (measured ~1/3
    less CPU than three separate processes on 1080p input); ``tier_presets`` overrides the
    x264 preset per rendition name; ``x264_threads`` None leaves x264's automatic choice;
    ``rate_control="fixed_bitrate"``/``"cbr"`` exist for comparisons, not production.
    """

    cascade: bool = True
    tier_presets: Mapping[str, str] = dataclasses.field(default_factory=dict)
    x264_threads: int | None = None
    rate_control: RateControl = "capped_crf"


DEFAULT_ENCODER_OPTIONS = EncoderOptions()


def build_hls_command(
    *,
    ffmpeg_bin: str = "ffmpeg",
    input_path: PathLike | str,
    output_dir: PathLike,
    probe: ProbeResult,
    renditions: Sequence[PlannedRendition],
    segment_seconds: float = 6.0,
    keyframe_interval: float = 2.0,
    audio_bitrate: int = 128_000,
    crf: float = 23.0,
    preset: str = "veryfast",
    options: EncoderOptions = DEFAULT_ENCODER_OPTIONS,
    conversion: SourceConversion | None = None,
    previews: PreviewPlan | None = None,
    audio_filter: str | None = None,
    allowed_demuxers: Sequence[str] | None = DEFAULT_DEMUXERS,
    loglevel: str = "warning",
    chunk: ChunkRange | None = None,
) -> list[str]:
    """One ffmpeg process that decodes once and writes every rendition as HLS.

    ``output_dir`` must exist; ffmpeg creates the ``<name>/`` directories.  Segments are
    cut at IDR frames forced every ``keyframe_interval`` seconds, so ``segment_seconds``
    must be a multiple of it.  Maps and ``-var_stream_map`` come from the probe, so a
    source without audio works.  Progress goes to stdout (``-progress pipe:1``).

    ``options`` holds the benchmark's comparison knobs (cascaded scaling, per-tier presets,
    x264 threads, rate control); its defaults are production's.
    ``conversion`` prepares interlaced and HDR sources (default: ``source_conversion``
    assuming the usual filters exist; pass the one made with ``available_filters``).
    ``previews`` adds the scrubbing preview sheets (``sprite-<n>.jpg`` in ``output_dir``) as one
    more branch of the same decode; ``audio_filter`` (loudness normalisation) runs once on the
    source audio before it is handed to every rendition.

    With ``chunk`` the command encodes only that time range of the source, video only (the audio
    is encoded once for the whole file: ``audio_hls_command``): segments are numbered from the
    chunk's first segment and timestamped where the chunk sits in the whole video
    (``chunk_output_args``), and the preview sheets are named after the chunk.
    """
    validate_renditions(renditions)
    ratio = segment_seconds / keyframe_interval if keyframe_interval > 0 else 0.0
    if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
        raise ValueError(
            f"segment_seconds ({segment_seconds:g}) must be a whole multiple of keyframe_interval "
            f"({keyframe_interval:g}) so every segment starts with an IDR frame"
        )
    out = Path(output_dir).absolute()
    if "%" in os.fspath(out):
        raise ValueError(f"output_dir {out} must not contain '%' (ffmpeg treats it as a pattern)")
    if conversion is None:
        conversion = source_conversion(probe, renditions=renditions)

    graph, labels = build_filter_graph(
        video_input=f"0:{probe.video_stream_index}",
        renditions=renditions,
        cascade=options.cascade,
        source_filters=conversion.filters,
        preview_chain=preview_filter_chain(previews) if previews is not None else None,
    )
    with_audio = probe.has_audio and probe.audio_stream_index is not None and chunk is None
    audio_inputs = [f"0:{probe.audio_stream_index}"] * len(renditions)
    if with_audio and audio_filter:
        audio_inputs = [f"[a{i}]" for i in range(len(renditions))]
        fan_out = f",asplit={len(renditions)}" if len(renditions) > 1 else ""
        graph += f";[0:{probe.audio_stream_index}]{audio_filter}{fan_out}" + "".join(audio_inputs)
    cmd: list[str] = [
        ffmpeg_bin,
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        loglevel,
        "-progress",
        "pipe:1",
        "-nostats",
        *input_args(input_path, allowed_demuxers=allowed_demuxers, chunk=chunk),
    ]
    cmd += ["-filter_complex", graph]
    for label in labels:
        cmd += ["-map", f"[{label}]"]
    if with_audio:
        for audio_input in audio_inputs:
            cmd += ["-map", audio_input]
    for index, rendition in enumerate(renditions):
        cmd += video_encoder_args(
            rendition=rendition,
            stream=index,
            frame_rate=probe.frame_rate,
            crf=crf,
            preset=options.tier_presets.get(rendition.name, preset),
            keyframe_interval=keyframe_interval,
            threads=options.x264_threads,
            rate_control=options.rate_control,
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
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        # x264 lookahead delays video packets; the default queue overflows on some inputs
        "-max_muxing_queue_size",
        "4096",
        *(chunk_output_args(chunk, segment_seconds=segment_seconds) if chunk is not None else []),
        "-f",
        "hls",
        "-hls_time",
        f"{segment_seconds:g}",
        "-hls_playlist_type",
        "vod",
        "-hls_list_size",
        "0",
        "-hls_segment_type",
        "mpegts",
        "-hls_flags",
        "independent_segments",
        "-hls_segment_filename",
        os.fspath(out / "%v" / SEGMENT_TEMPLATE),
        "-master_pl_name",
        MASTER_PLAYLIST_NAME,
        "-var_stream_map",
        stream_map,
        os.fspath(out / "%v" / MEDIA_PLAYLIST_NAME),
    ]
    if previews is not None:
        template = chunk_sprite_template(chunk.index) if chunk is not None else SPRITE_TEMPLATE
        cmd += preview_output_args(label=PREVIEW_LABEL, output_dir=out, template=template)
    return cmd


def input_args(
    input_path: PathLike | str, *, allowed_demuxers: Sequence[str] | None, chunk: ChunkRange | None = None
) -> list[str]:
    """Input options and ``-i``: a local file, or the original's presigned URL (read by byte ranges,
    reconnecting on network errors); with ``chunk``, accurate seeking to its start and its length only."""
    args: list[str] = []
    if is_remote_input(input_path):
        args += ["-reconnect", "1", "-reconnect_on_network_error", "1", "-reconnect_delay_max", "30"]
    args += whitelist_args(allowed_demuxers, remote=is_remote_input(input_path))
    if chunk is not None:
        args += ["-ss", f"{chunk.start:.6f}", "-t", f"{chunk.length:.6f}"]
    return [*args, "-i", input_url(input_path)]


def chunk_output_args(chunk: ChunkRange, *, segment_seconds: float) -> list[str]:
    """Output options that place a chunk in the whole video: segment numbers from its first segment,
    timestamps shifted to its start (plus ``CHUNK_TS_OFFSET_S``, which no B-frame or AAC priming
    delay reaches below zero, so no muxer shifts one chunk's clock and not another's)."""
    return [
        "-output_ts_offset",
        f"{chunk.start + CHUNK_TS_OFFSET_S:.6f}",
        "-start_number",
        str(chunk.first_segment(segment_seconds)),
    ]


def audio_hls_command(
    *,
    ffmpeg_bin: str = "ffmpeg",
    input_path: PathLike | str,
    output_dir: PathLike,
    probe: ProbeResult,
    segment_seconds: float = 6.0,
    audio_bitrate: int = 128_000,
    audio_filter: str | None = None,
    allowed_demuxers: Sequence[str] | None = DEFAULT_DEMUXERS,
    loglevel: str = "warning",
) -> list[str]:
    """The whole audio track as one HLS audio rendition (``<output_dir>/audio/index.m3u8``), for the
    chunked layout: AAC as the ladder's, on the chunks' clock (``CHUNK_TS_OFFSET_S``), encoded once so
    it has no gap or click where the video chunks meet."""
    if not probe.has_audio or probe.audio_stream_index is None:
        raise ValueError("the source has no audio stream")
    out = Path(output_dir).absolute()
    if "%" in os.fspath(out):
        raise ValueError(f"output_dir {out} must not contain '%' (ffmpeg treats it as a pattern)")
    cmd = [
        ffmpeg_bin,
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        loglevel,
        "-progress",
        "pipe:1",
        "-nostats",
        *input_args(input_path, allowed_demuxers=allowed_demuxers),
        "-map",
        f"0:{probe.audio_stream_index}",
        "-vn",
        "-sn",
        "-dn",
    ]
    if audio_filter:
        cmd += ["-af", audio_filter]
    cmd += audio_encoder_args(stream=None, audio_bitrate=audio_bitrate)
    cmd += [
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        "-output_ts_offset",
        f"{CHUNK_TS_OFFSET_S:.6f}",
        "-f",
        "hls",
        "-hls_time",
        f"{segment_seconds:g}",
        "-hls_playlist_type",
        "vod",
        "-hls_list_size",
        "0",
        "-hls_segment_type",
        "mpegts",
        "-hls_segment_filename",
        os.fspath(out / AUDIO_RENDITION_NAME / SEGMENT_TEMPLATE),
        os.fspath(out / AUDIO_RENDITION_NAME / MEDIA_PLAYLIST_NAME),
    ]
    return cmd


def poster_time(probe: ProbeResult, *, position: float = 0.1) -> float:
    """Seek time for the poster: ``position`` of the duration, at least one frame before the end."""
    frame = 1.0 / probe.frame_rate if probe.frame_rate > 0 else 0.04
    return max(0.0, min(probe.duration * position, probe.duration - 2 * frame))


def poster_command(
    *,
    ffmpeg_bin: str = "ffmpeg",
    input_path: PathLike | str,
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
    target_width = width or even_floor(probe.width)
    target_height = height or even_floor(probe.height)
    if conversion is None:
        conversion = source_conversion(probe)
    video_filter = ",".join([*conversion.filters, f"scale={target_width}:{target_height},setsar=1"])
    return [
        ffmpeg_bin,
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-ss",
        f"{poster_time(probe, position=position):.3f}",
        *input_args(input_path, allowed_demuxers=allowed_demuxers),
        "-map",
        f"0:{probe.video_stream_index}",
        "-frames:v",
        "1",
        "-vf",
        video_filter,
        "-q:v",
        str(quality),
        "-f",
        "image2",
        "-update",
        "1",
        os.fspath(Path(output_path).absolute()),
    ]
