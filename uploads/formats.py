"""Which containers the allowed file extensions stand for; pure helpers, no Django."""

from __future__ import annotations

# ffprobe's format_name lists demuxer names ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm").
_DEMUXERS_BY_EXTENSION = {
    "mp4": {"mp4"},
    "m4v": {"mp4"},
    "mov": {"mov"},
    "mkv": {"matroska"},
    "webm": {"webm"},
    "avi": {"avi"},
    "ts": {"mpegts"},
    "mpg": {"mpeg"},
    "mpeg": {"mpeg"},
    "flv": {"flv"},
    "wmv": {"asf"},
    "3gp": {"3gp"},
}


def container_allowed(format_name: str, allowed_extensions: list[str]) -> bool:
    """True when ffprobe's ``format_name`` is one of the containers the extensions allow."""
    demuxers = {name.strip().lower() for name in (format_name or "").split(",") if name.strip()}
    allowed: set[str] = set()
    for ext in allowed_extensions:
        allowed |= _DEMUXERS_BY_EXTENSION.get(ext.lower().lstrip("."), {ext.lower().lstrip(".")})
    return bool(demuxers & allowed)
