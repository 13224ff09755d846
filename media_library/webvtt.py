"""Caption files as untrusted input: parse WebVTT or SRT, validate, and write clean WebVTT (pure).

No Django imports. ``captions_parse`` refuses what a player must not get (a wrong
encoding, broken or reversed timings, markup WebVTT does not allow, too many cues) with a
``CaptionsError`` whose message says what to fix, and returns the cues; ``webvtt_render``
writes them back as WebVTT with an ``X-TIMESTAMP-MAP`` header so the cues line up with
the MPEG-TS timestamps of the video's HLS segments. STYLE and REGION blocks and comments
(NOTE) never reach the output.
"""

from __future__ import annotations

import dataclasses
import math
import re

__all__ = [
    "ALLOWED_TAGS",
    "CaptionsError",
    "CaptionsTooLarge",
    "Cue",
    "ParsedCaptions",
    "captions_parse",
    "format_timestamp",
    "is_language_tag",
    "mpegts_first_pts",
    "subtitle_media_playlist",
    "webvtt_render",
    "webvtt_set_timestamp_map",
]

#: Cue text tags WebVTT defines (timestamps such as ``<00:00:01.500>`` are allowed too).
ALLOWED_TAGS = ("b", "i", "u", "c", "v", "lang", "ruby", "rt")

_VTT_TIME = r"(?:(\d{2,}):)?(\d{2}):(\d{2})\.(\d{3})"
_SRT_TIME = r"(\d{1,}):(\d{2}):(\d{2})[,.](\d{1,3})"
_VTT_TIMING = re.compile(rf"^{_VTT_TIME}[ \t]+-->[ \t]+{_VTT_TIME}(?:[ \t]+(.*))?$")
_SRT_TIMING = re.compile(rf"^{_SRT_TIME}[ \t]*-->[ \t]*{_SRT_TIME}(?:[ \t]+.*)?$")
_TAG = re.compile(r"<(/?)([^\s<>./]+)((?:\.[^\s<>.]+)*)(?:[ \t]+([^<>]*))?>")
_TIMESTAMP_TAG = re.compile(rf"^{_VTT_TIME}$")
_SETTING = re.compile(r"^(vertical|line|position|size|align):([A-Za-z0-9.%,:-]+)$")
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|\d{3}))?(?:-[A-Za-z0-9]{5,8})*$")
_SRT_INDEX = re.compile(r"^\d+$")
# SRT exports carry <font color=…>; the colour is dropped, the text kept.
_SRT_FONT = re.compile(r"</?font(?:\s[^>]*)?>", re.IGNORECASE)


class CaptionsError(ValueError):
    """A caption file that cannot be used as it is; the message says what to fix."""


class CaptionsTooLarge(CaptionsError):
    """A caption file over the size limit."""


@dataclasses.dataclass(frozen=True)
class Cue:
    """One cue: start and end in seconds, WebVTT settings and sanitised cue text."""

    start: float
    end: float
    text: str
    identifier: str = ""
    settings: str = ""


@dataclasses.dataclass(frozen=True)
class ParsedCaptions:
    """The cues of a caption file, the format it came in and what was left out or is doubtful."""

    source_format: str
    cues: tuple[Cue, ...]
    warnings: tuple[str, ...]


def is_language_tag(value: str) -> bool:
    """True for a plausible BCP 47 language tag (``en``, ``pt-BR``, ``zh-Hant-TW``, ``es-419``)."""
    return len(value) <= 35 and bool(_LANGUAGE_TAG.match(value))


def captions_parse(data: bytes, *, max_bytes: int, max_cues: int, duration: float | None = None) -> ParsedCaptions:
    """Parse and validate a WebVTT or SRT file (told apart by the ``WEBVTT`` header).

    Overlapping cues are allowed (WebVTT allows them); cues that end after ``duration``
    are kept and reported in ``warnings``.

    Raises:
        CaptionsError: the file is too large, not UTF-8, empty, neither WebVTT nor SRT,
            has a malformed, negative or reversed timing, cues out of order, more than
            ``max_cues`` cues, or cue markup WebVTT does not allow (``<script>`` …).
    """
    if len(data) > max_bytes:
        raise CaptionsTooLarge(
            f"the caption file is larger than the limit of {max_bytes} bytes; split it into shorter tracks"
        )
    if b"\x00" in data:
        nul_offset = data.index(b"\x00")
        raise CaptionsError(
            f"the caption file has a NUL character at byte offset {nul_offset}: it is a binary file, not WebVTT or SRT"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaptionsError(
            f"the caption file is not UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start} "
            "is not valid UTF-8; save the file as UTF-8"
        ) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise CaptionsError("the caption file is empty")
    if text.startswith("WEBVTT") and (len(text) == 6 or text[6] in " \t\n"):
        cues, warnings = _parse_vtt(text, max_cues=max_cues)
        source_format = "vtt"
    elif _looks_like_srt(text):
        cues, warnings = _parse_srt(text, max_cues=max_cues)
        source_format = "srt"
    else:
        raise CaptionsError(
            "the caption file is neither WebVTT (first line 'WEBVTT') nor SRT (a cue number, then "
            "'00:00:01,000 --> 00:00:02,000')"
        )
    if not cues:
        raise CaptionsError("the caption file has no cues")
    _check_order(cues)
    if duration is not None:
        late = [cue for cue in cues if cue.end > duration + 0.001]
        if late:
            warnings.append(
                f"{len(late)} cue(s) end after the video's end ({format_timestamp(duration)}), the first at "
                f"{format_timestamp(late[0].start)}; players never show what lies past the end"
            )
    return ParsedCaptions(source_format=source_format, cues=tuple(cues), warnings=tuple(warnings))


def webvtt_render(cues: tuple[Cue, ...] | list[Cue], *, mpegts: int | None = None) -> str:
    """Write cues as a WebVTT file; ``mpegts`` adds ``X-TIMESTAMP-MAP`` (cue time 0 = that 90 kHz PTS)."""
    lines = ["WEBVTT"]
    if mpegts is not None:
        lines.append(f"X-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000")
    lines.append("")
    for cue in cues:
        if cue.identifier:
            lines.append(cue.identifier)
        timing = f"{format_timestamp(cue.start)} --> {format_timestamp(cue.end)}"
        lines.append(f"{timing} {cue.settings}" if cue.settings else timing)
        lines.append(cue.text)
        lines.append("")
    return "\n".join(lines) + "\n"


def webvtt_set_timestamp_map(text: str, *, mpegts: int) -> str:
    """A WebVTT file written by ``webvtt_render`` with its ``X-TIMESTAMP-MAP`` set to ``mpegts``."""
    header, separator, cues = text.partition("\n\n")
    lines = [line for line in header.split("\n") if not line.startswith("X-TIMESTAMP-MAP=")]
    lines.insert(1, f"X-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000")
    return "\n".join(lines) + separator + cues


def subtitle_media_playlist(*, uri: str, duration: float) -> str:
    """An HLS subtitle media playlist with one WebVTT segment covering the whole video.

    ``EXT-X-TARGETDURATION`` is the duration rounded up, as RFC 8216 requires of the
    longest segment.
    """
    length = max(duration, 0.001)
    return (
        "#EXTM3U\n"
        "#EXT-X-VERSION:3\n"
        f"#EXT-X-TARGETDURATION:{max(1, math.ceil(length))}\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-PLAYLIST-TYPE:VOD\n"
        f"#EXTINF:{length:.3f},\n"
        f"{uri}\n"
        "#EXT-X-ENDLIST\n"
    )


#: Where ffmpeg's MPEG-TS muxer starts the clock (1.4 s at 90 kHz), used before a video has segments.
FFMPEG_MPEGTS_START_PTS = 126_000


def mpegts_first_pts(data: bytes) -> int | None:
    """The presentation start (90 kHz ticks) in the leading bytes of an MPEG-TS segment.

    That is the earliest first PTS of any stream (audio often starts a little before video),
    which players take as media time 0.
    """
    first: dict[int, int] = {}
    for offset in range(0, len(data) - 187, 188):
        packet = data[offset : offset + 188]
        pid = (packet[1] & 0x1F) << 8 | packet[2]
        if packet[0] != 0x47 or not packet[1] & 0x40 or pid in first:
            continue
        adaptation = (packet[3] >> 4) & 0x3
        start = 4 + (1 + packet[4] if adaptation & 0x2 else 0)
        pes = packet[start:]
        if len(pes) >= 14 and pes[:3] == b"\x00\x00\x01" and pes[7] & 0x80:
            b = pes[9:14]
            first[pid] = ((b[0] >> 1) & 0x07) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
    return min(first.values(), default=None)


def format_timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm`` as WebVTT writes it."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """Blocks separated by blank lines, each with the 1-based number of its first line."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start = 1
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            if not current:
                start = number
            current.append(line)
        elif current:
            blocks.append((start, current))
            current = []
    if current:
        blocks.append((start, current))
    return blocks


def _parse_vtt(text: str, *, max_cues: int) -> tuple[list[Cue], list[str]]:
    blocks = _blocks(text)
    cues: list[Cue] = []
    dropped: set[str] = set()
    for line_number, lines in blocks[1:]:
        first = lines[0]
        if first.startswith(("NOTE", "STYLE", "REGION")) and "-->" not in first:
            if not first.startswith("NOTE"):
                dropped.add(first.split()[0])
            continue
        identifier = ""
        if "-->" not in first:
            if len(lines) < 2 or "-->" not in lines[1]:
                raise CaptionsError(
                    f"line {line_number}: {first[:60]!r} is neither a cue timing ('00:00:01.000 --> 00:00:02.000') "
                    "nor a cue identifier followed by one"
                )
            identifier, lines, line_number = first.strip(), lines[1:], line_number + 1
        match = _VTT_TIMING.match(lines[0].strip())
        if match is None:
            raise CaptionsError(_timing_error(line_number, lines[0], "00:00:01.000 --> 00:00:02.000"))
        start, end = _seconds(match.groups()[0:4]), _seconds(match.groups()[4:8])
        cues.append(
            _cue(
                start=start,
                end=end,
                body=lines[1:],
                line_number=line_number,
                identifier=identifier,
                settings=_clean_settings(match.group(9) or ""),
            )
        )
        _check_count(cues, max_cues)
    warnings = [f"{name} blocks were left out: players get the cues only" for name in sorted(dropped)]
    return cues, warnings


def _looks_like_srt(text: str) -> bool:
    lines = [line.strip() for line in text.split("\n") if line.strip()][:2]
    return len(lines) == 2 and bool(_SRT_INDEX.match(lines[0])) and "-->" in lines[1]


def _parse_srt(text: str, *, max_cues: int) -> tuple[list[Cue], list[str]]:
    cues: list[Cue] = []
    for line_number, lines in _blocks(text):
        if _SRT_INDEX.match(lines[0].strip()) and len(lines) > 1 and "-->" in lines[1]:
            lines, line_number = lines[1:], line_number + 1
        match = _SRT_TIMING.match(lines[0].strip())
        if match is None:
            raise CaptionsError(_timing_error(line_number, lines[0], "00:00:01,000 --> 00:00:02,000"))
        groups = match.groups()
        start, end = _seconds(groups[0:4], srt=True), _seconds(groups[4:8], srt=True)
        body = [_SRT_FONT.sub("", line) for line in lines[1:]]
        cues.append(_cue(start=start, end=end, body=body, line_number=line_number))
        _check_count(cues, max_cues)
    return cues, []


def _timing_error(line_number: int, line: str, example: str) -> str:
    if re.search(r"(^|\s)-\d", line):
        return f"line {line_number}: negative timestamp in {line.strip()[:80]!r}; cue times start at 00:00:00.000"
    return f"line {line_number}: cue timing {line.strip()[:80]!r} is malformed; write it as '{example}'"


def _seconds(groups: tuple[str | None, ...], *, srt: bool = False) -> float:
    hours, minutes, seconds, fraction = groups
    if int(minutes or 0) > 59 or int(seconds or 0) > 59:
        raise CaptionsError(f"timestamp {hours or '00'}:{minutes}:{seconds} has minutes or seconds above 59")
    millis = int((fraction or "0").ljust(3, "0")) if srt else int(fraction or 0)
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds or 0) + millis / 1000


def _cue(
    *, start: float, end: float, body: list[str], line_number: int, identifier: str = "", settings: str = ""
) -> Cue:
    if end <= start:
        raise CaptionsError(
            f"line {line_number}: the cue ends ({format_timestamp(end)}) before or when it starts "
            f"({format_timestamp(start)}); the end must come after the start"
        )
    if "-->" in identifier:
        raise CaptionsError(f"line {line_number}: a cue identifier must not contain '-->'")
    lines = [_clean_text(line, line_number=line_number + 1 + index) for index, line in enumerate(body)]
    return Cue(start=start, end=end, text="\n".join(lines), identifier=identifier, settings=settings)


def _clean_text(line: str, *, line_number: int) -> str:
    """Cue text with only WebVTT's tags; a lone ``<`` or ``>`` becomes an entity."""
    if "-->" in line:
        raise CaptionsError(f"line {line_number}: cue text must not contain '-->' (a cue needs a blank line before it)")
    out: list[str] = []
    position = 0
    for match in _TAG.finditer(line):
        out.append(_escape(line[position : match.start()]))
        closing, name = match.group(1), match.group(2).lower()
        if not closing and _TIMESTAMP_TAG.match(name + (match.group(3) or "")):
            out.append(match.group(0))
        elif name not in ALLOWED_TAGS:
            raise CaptionsError(
                f"line {line_number}: the tag <{closing}{name}> is not allowed in captions; "
                f"use only {', '.join(f'<{tag}>' for tag in ALLOWED_TAGS)} and timestamps, or remove it"
            )
        else:
            out.append(match.group(0))
        position = match.end()
    out.append(_escape(line[position:]))
    return "".join(out)


def _escape(text: str) -> str:
    return re.sub(r"&(?![A-Za-z]+;|#\d+;|#x[0-9A-Fa-f]+;)", "&amp;", text).replace("<", "&lt;").replace(">", "&gt;")


def _clean_settings(settings: str) -> str:
    """Keep the cue settings WebVTT defines; ``region:`` is dropped with the REGION blocks."""
    return " ".join(item for item in settings.split() if _SETTING.match(item))


def _check_count(cues: list[Cue], max_cues: int) -> None:
    if len(cues) > max_cues:
        raise CaptionsError(f"the caption file has more than {max_cues} cues; split it or merge short cues")


def _check_order(cues: list[Cue]) -> None:
    for previous, cue in zip(cues, cues[1:], strict=False):
        if cue.start < previous.start:
            raise CaptionsError(
                f"cues are out of order: a cue starting at {format_timestamp(cue.start)} follows one starting at "
                f"{format_timestamp(previous.start)}; sort the cues by start time"
            )
