"""HLS ladder tiers (``240p:400k,480p:800k,720p:1500k``) and the renditions planned for one source (pure)."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Sequence

from transcoding.ffmpeg.probe import ProbeResult


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


def even_floor(value: float) -> int:
    """The even size at or below ``value`` (at least 2): H.264 4:2:0 needs even sizes."""
    return max(2, int(value) // 2 * 2)


def _even_round(value: float) -> int:
    return max(2, round(value / 2.0) * 2)


def _size_for_short_side(probe: ProbeResult, short: int) -> tuple[int, int]:
    """Width and height for a given short side, keeping the display aspect ratio."""
    if short >= probe.short_side:
        return even_floor(probe.width), even_floor(probe.height)
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
