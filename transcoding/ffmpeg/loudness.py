"""Even loudness: the audio-only measuring pass and the ``loudnorm`` filter of the encode (pure).

EBU R128 two-pass normalisation: ``loudness_measure_command`` decodes the audio stream only
(the video is demuxed, never decoded) and ``loudnorm`` prints what it measured as JSON;
``parse_loudness_measurement`` reads it; ``loudness_filter`` chooses a constant gain
(what loudnorm's linear mode applies, as a plain ``volume`` filter: speech keeps its dynamics,
nothing pumps, and the encode skips loudnorm's 192 kHz resampling) and falls back to
loudnorm's dynamic mode only when that gain would push the true peak over the limit.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from transcoding.ffmpeg.probe import DEFAULT_DEMUXERS, PathLike, input_args
from transcoding.ffmpeg.values import to_float

#: Highest true peak the output may reach (dBTP).
TRUE_PEAK_LIMIT_DBTP = -1.0
# loudnorm aims this much lower: AAC encoding raises true peaks by a few tenths of a dB.
_TRUE_PEAK_HEADROOM_DB = 0.5
#: Loudness range loudnorm's dynamic mode keeps at least (LU; its own default).
DEFAULT_LOUDNESS_RANGE = 11.0
# ffmpeg 5.1 accepts LRA up to 20 LU
_MAX_LOUDNESS_RANGE = 20.0
# loudnorm reports this gating threshold, or -inf loudness, for silence: there is nothing to normalise
_SILENT_THRESHOLD = -70.0


class LoudnessMeasurementError(ValueError):
    """The measuring pass printed no loudnorm figures that can be read."""


@dataclasses.dataclass(frozen=True)
class LoudnessMeasurement:
    """What loudnorm's first pass measured: integrated loudness, true peak, range, gating threshold."""

    integrated: float
    true_peak: float
    loudness_range: float
    threshold: float

    @property
    def silent(self) -> bool:
        return self.threshold <= _SILENT_THRESHOLD or self.integrated <= _SILENT_THRESHOLD


@dataclasses.dataclass(frozen=True)
class LoudnessFilter:
    """The audio filter of the encode and what it does, in words for the job log."""

    filter: str
    mode: str
    note: str


def _loudnorm_targets(target_lufs: float, loudness_range: float) -> str:
    return f"I={target_lufs:g}:TP={TRUE_PEAK_LIMIT_DBTP - _TRUE_PEAK_HEADROOM_DB:g}:LRA={loudness_range:g}"


def loudness_measure_command(
    *,
    ffmpeg_bin: str = "ffmpeg",
    input_path: PathLike | str,
    audio_stream_index: int,
    target_lufs: float,
    allowed_demuxers: Sequence[str] | None = DEFAULT_DEMUXERS,
) -> list[str]:
    """ffmpeg command that decodes only the audio stream and prints loudnorm's measurement (JSON on stderr)."""
    return [
        ffmpeg_bin,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "info",
        "-progress",
        "pipe:1",
        "-nostats",
        *input_args(input_path, allowed_demuxers=allowed_demuxers),
        "-map",
        f"0:{audio_stream_index}",
        "-vn",
        "-sn",
        "-dn",
        "-af",
        f"loudnorm={_loudnorm_targets(target_lufs, DEFAULT_LOUDNESS_RANGE)}:print_format=json",
        "-f",
        "null",
        "-",
    ]


def parse_loudness_measurement(log_lines: Sequence[str]) -> LoudnessMeasurement:
    """Read the JSON block loudnorm prints at the end of the measuring pass.

    Raises:
        LoudnessMeasurementError: no block, or one without the four input figures.
    """
    text = "\n".join(log_lines)
    start, end = text.rfind("{"), text.rfind("}")
    if start == -1 or end < start:
        raise LoudnessMeasurementError("the measuring pass printed no loudnorm figures")
    try:
        figures = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise LoudnessMeasurementError(f"loudnorm's figures are not JSON: {exc}") from exc
    values = {name: to_float(figures.get(name)) for name in ("input_i", "input_tp", "input_lra", "input_thresh")}
    # loudnorm prints "-inf" for silence, which to_float reads as unknown
    if values["input_i"] is None and str(figures.get("input_i", "")).strip() == "-inf":
        return LoudnessMeasurement(integrated=-99.0, true_peak=-99.0, loudness_range=0.0, threshold=-99.0)
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise LoudnessMeasurementError(f"loudnorm's figures lack {', '.join(missing)}")
    return LoudnessMeasurement(
        integrated=values["input_i"] or 0.0,
        true_peak=values["input_tp"] or 0.0,
        loudness_range=values["input_lra"] or 0.0,
        threshold=values["input_thresh"] or 0.0,
    )


def loudness_filter(measurement: LoudnessMeasurement, *, target_lufs: float) -> LoudnessFilter | None:
    """The encode's loudnorm filter for a measured source, None for silence (left as it is).

    Linear (one constant gain, ``volume``) when the gain keeps the measured true peak under
    the limit; else loudnorm's dynamic mode with the measured values, which limits peaks and
    adjusts the gain in 3 s windows.
    """
    if measurement.silent:
        return None
    gain = target_lufs - measurement.integrated
    peak_after = measurement.true_peak + gain
    peak_limit = TRUE_PEAK_LIMIT_DBTP - _TRUE_PEAK_HEADROOM_DB
    linear = peak_after <= peak_limit
    loudness_range = min(_MAX_LOUDNESS_RANGE, max(DEFAULT_LOUDNESS_RANGE, measurement.loudness_range))
    measured = (
        f"measured_I={measurement.integrated:.2f}:measured_TP={measurement.true_peak:.2f}"
        f":measured_LRA={measurement.loudness_range:.2f}:measured_thresh={measurement.threshold:.2f}"
    )
    source = f"audio measured {measurement.integrated:.1f} LUFS, true peak {measurement.true_peak:.1f} dBTP"
    if linear:
        return LoudnessFilter(
            filter=f"volume={gain:.2f}dB",
            mode="linear",
            note=f"{source}: normalised to {target_lufs:g} LUFS with a constant gain of {gain:+.1f} dB (linear)",
        )
    chain = (
        f"loudnorm={_loudnorm_targets(target_lufs, loudness_range)}:{measured}"
        ":linear=false:print_format=none,aresample=48000"
    )
    return LoudnessFilter(
        filter=chain,
        mode="dynamic",
        note=(
            f"{source}: a constant gain of {gain:+.1f} dB would peak at {peak_after:+.1f} dBTP, over "
            f"{TRUE_PEAK_LIMIT_DBTP:g} dBTP, so it was normalised to {target_lufs:g} LUFS with loudnorm's dynamic mode"
        ),
    )
