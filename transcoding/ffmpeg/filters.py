"""Video filters: what this ffmpeg build has, and the filter graph that prepares and scales the source.

``source_conversion`` decides once per source how it is deinterlaced and brought to 8-bit
BT.709 SDR (pure); ``build_filter_graph`` splits and scales it into the ladder.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import subprocess
from collections.abc import Collection, Sequence

from transcoding.ffmpeg.ladder import PlannedRendition
from transcoding.ffmpeg.probe import ProbeResult
from transcoding.ffmpeg.process import last_error_line

logger = logging.getLogger(__name__)

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
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("could not list the filters of %s: %s", ffmpeg_bin, exc)
        return frozenset()
    names = frozenset(
        match.group(1) for line in completed.stdout.splitlines() if (match := _FILTER_LINE_RE.match(line))
    )
    if completed.returncode != 0 or not names:
        logger.warning("could not list the filters of %s: %s", ffmpeg_bin, last_error_line(completed.stderr))
        return frozenset()
    _filters_by_binary[ffmpeg_bin] = names
    return names


#: What the pipeline uses when it is not told which filters exist (Debian's ffmpeg has them all).
PIPELINE_FILTERS = frozenset({"bwdif", "yadif", "zscale", "tonemap", "colorspace"})

#: Output colour tags for every converted source: the ladder is 8-bit BT.709 SDR.
BT709_TAGS: tuple[tuple[str, str], ...] = (
    ("color_primaries", "bt709"),
    ("color_trc", "bt709"),
    ("colorspace", "bt709"),
    ("color_range", "tv"),
)

# source colour names zscale accepts as input (ffprobe spells them the same way)
_ZSCALE_PRIMARIES = {
    "bt709",
    "bt470m",
    "bt470bg",
    "smpte170m",
    "smpte240m",
    "film",
    "bt2020",
    "smpte428",
    "smpte431",
    "smpte432",
}
_ZSCALE_MATRICES = {"bt709", "fcc", "bt470bg", "smpte170m", "bt2020nc", "bt2020c"}
# source transfers the colorspace filter understands, for wide-gamut SDR
_COLORSPACE_TRANSFERS = {
    "bt709",
    "bt470m",
    "bt470bg",
    "gamma22",
    "gamma28",
    "smpte170m",
    "smpte240m",
    "iec61966-2-1",
    "iec61966-2-4",
    "bt2020-10",
    "bt2020-12",
}


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
                f"interlaced source (field order {probe.field_order}): deinterlaced with {name}, one frame per frame",
                False,
            )
    return (
        [],
        (
            f"WARNING: interlaced source (field order {probe.field_order}) but this ffmpeg has neither bwdif nor "
            f"yadif: encoded without deinterlacing, moving edges will show combing"
        ),
        True,
    )


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
        return (
            chain,
            (
                f"WARNING: {described}: this ffmpeg has no zscale/tonemap, so it was NOT tone-mapped; colours were "
                f"converted BT.2020 to BT.709 with the colorspace filter, reading the {hdr} signal as SDR BT.2020 "
                f"(highlights clip; PQ sources look dark and flat)"
            ),
            True,
        )
    return (
        [],
        (
            f"WARNING: {described}: this ffmpeg has neither zscale/tonemap nor colorspace, so colours were NOT "
            f"converted; the output is tagged BT.709 SDR and will look washed out"
        ),
        True,
    )


def _wide_gamut_to_bt709(probe: ProbeResult, filters: Collection[str]) -> tuple[list[str], str, bool]:
    transfer = probe.color_transfer if probe.color_transfer in _COLORSPACE_TRANSFERS else "bt2020-10"
    if "colorspace" in filters:
        return (
            [f"colorspace=all=bt709:iall=bt2020:itrc={transfer}:irange={_range_word(probe)}:format=yuv420p"],
            "wide-gamut SDR source (BT.2020 primaries): colours converted to BT.709 with the colorspace filter",
            False,
        )
    return (
        [],
        (
            "WARNING: wide-gamut SDR source (BT.2020 primaries) but this ffmpeg has no colorspace filter: colours "
            "were NOT converted; the output is tagged BT.709 and looks less saturated"
        ),
        True,
    )


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


#: Label of the scrubbing previews' branch in the ladder's filter graph.
PREVIEW_LABEL = "pv"


def build_filter_graph(
    *,
    video_input: str,
    renditions: Sequence[PlannedRendition],
    cascade: bool = True,
    source_filters: Sequence[str] = (),
    preview_chain: str | None = None,
) -> tuple[str, list[str]]:
    """filter_complex text and the output label of each rendition (same order as ``renditions``).

    ``source_filters`` (deinterlacing, tone mapping: ``SourceConversion.filters``) run once
    on the source picture, before anything is split.  With ``cascade`` each tier is scaled
    from the next larger tier's picture instead of from the source, which is much cheaper
    when the source is large.  ``preview_chain`` (the scrubbing previews) gets its own branch
    of the prepared source picture, labelled ``PREVIEW_LABEL``.
    """
    order = sorted(range(len(renditions)), key=lambda i: renditions[i].width * renditions[i].height, reverse=True)
    labels = [f"v{i}" for i in range(len(renditions))]
    source = f"[{video_input}]" + "".join(f"{name}," for name in source_filters)
    parts: list[str] = []
    if preview_chain:
        parts.append(f"{source}split=2[src][{PREVIEW_LABEL}in]")
        parts.append(f"[{PREVIEW_LABEL}in]{preview_chain}[{PREVIEW_LABEL}]")
        source = "[src]"
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
