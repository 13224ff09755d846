"""Even loudness end to end: quiet and loud speech-like originals come out at the target, measured on the HLS output."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.factories import make_stored_video
from tests.transcoding.services.test_pipeline import encodes, run  # noqa: F401 (encodes is a fixture)
from transcoding.models import TranscodeJob
from unpuzzle import storage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Pink noise in the voice band, chopped into ~4 syllables a second with pauses between words.
_SPEECH = (
    "anoisesrc=color=pink:sample_rate=48000:amplitude=0.5:seed=7,highpass=f=150,lowpass=f=3500,"
    "volume='0.02+0.98*pow(abs(sin(2*PI*2*t)),2)*gte(sin(2*PI*0.4*t),-0.6)':eval=frame"
)


@pytest.fixture(autouse=True)
def small_ladder(settings):
    settings.HLS_LADDER = "120p:200k"
    settings.HLS_SEGMENT_SECONDS = 2
    settings.HLS_AUDIO_BITRATE = "96k"


def loudness(args: list[str]) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP) ffmpeg's ebur128 filter measures on an input."""
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", *args, "-af", "ebur128=peak=true", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    summary = out[out.rindex("Summary:") :]
    integrated = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    peak = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))
    return integrated, peak


def speech_clip(directory: Path, name: str, target_lufs: float) -> Path:
    """An 8 s 320x180 clip whose speech-like mono track is at about ``target_lufs`` integrated.

    A limiter keeps the samples under full scale, so a loud target takes a few rounds of more gain.
    """
    raw = directory / f"{name}-raw.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", _SPEECH, "-t", "8", "-ac", "1", str(raw)], check=True
    )
    path = directory / f"{name}.mp4"
    gain, measured = 0.0, loudness(["-i", str(raw)])[0]
    for _ in range(6):
        gain += target_lufs - measured
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x180:rate=25:duration=8",
                "-i",
                str(raw),
                "-af",
                f"volume={gain:.2f}dB,alimiter=limit=0.98:attack=0.1:release=1:level=false",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-c:a",
                "aac",
                "-b:a",
                "192k",
                "-shortest",
                str(path),
            ],
            check=True,
        )
        measured = loudness(["-i", str(path)])[0]
        if abs(measured - target_lufs) <= 0.5:
            break
    return path


def hls_audio_loudness(video) -> tuple[float, float]:
    """ebur128 over the audio of every segment of the video's rendition, concatenated in order."""
    playlist_key = video.renditions.get().playlist_key
    folder = Path(storage.get_storage().path(playlist_key)).parent
    with open(folder / "index.m3u8") as fh:
        segments = [folder / line.strip() for line in fh if line.strip() and not line.startswith("#")]
    assert len(segments) >= 4
    return loudness(["-i", "concat:" + "|".join(str(path) for path in segments), "-map", "0:a"])


@pytest.mark.parametrize(
    ("name", "level", "mode"),
    [
        # +19 dB would push this clip's peaks (16 dB over its loudness) past -1 dBTP: dynamic mode
        ("quiet", -35.0, "loudnorm's dynamic mode"),
        ("loud", -8.0, "(linear)"),
    ],
)
def test_quiet_and_loud_speech_come_out_at_the_target(user, tmp_path, name, level, mode):
    clip = speech_clip(tmp_path, name, level)
    source_lufs, _ = loudness(["-i", str(clip)])
    assert source_lufs == pytest.approx(level, abs=1.5)
    video = make_stored_video(user, clip)
    job = run(video)
    assert job.status == TranscodeJob.Status.SUCCEEDED, job.error
    integrated, peak = hls_audio_loudness(video)
    assert integrated == pytest.approx(-16.0, abs=1.0)
    assert peak <= -1.0
    note = job.log_tail.splitlines()[0]
    assert "normalised to -16 LUFS" in note and mode in note


def test_the_target_is_a_setting(user, tmp_path, settings):
    settings.LOUDNESS_TARGET_LUFS = -23.0
    video = make_stored_video(user, speech_clip(tmp_path, "quiet", -35.0))
    run(video)
    integrated, peak = hls_audio_loudness(video)
    assert integrated == pytest.approx(-23.0, abs=1.0) and peak <= -1.0


def test_off_by_setting_leaves_the_loudness_as_it_was(user, tmp_path, settings):
    settings.LOUDNESS_NORMALIZE = False
    clip = speech_clip(tmp_path, "quiet", -35.0)
    source_lufs, _ = loudness(["-i", str(clip)])
    video = make_stored_video(user, clip)
    job = run(video)
    integrated, _ = hls_audio_loudness(video)
    assert integrated == pytest.approx(source_lufs, abs=0.5)
    assert "LUFS" not in job.log_tail


def test_a_source_without_audio_skips_the_measuring_pass(user, no_audio_clip, request):
    started = request.getfixturevalue("encodes")
    video = make_stored_video(user, no_audio_clip)
    job = run(video)
    assert job.status == TranscodeJob.Status.SUCCEEDED, job.error
    assert started and not [cmd for cmd in started if any("loudnorm" in arg for arg in cmd)]
