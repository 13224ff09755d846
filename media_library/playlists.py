"""Pure HLS helpers: playlist and WebVTT thumbnail track URI rewriting, and key resolution.

No Django imports: the app-served HLS view calls these with
plain strings. Keys are storage keys (``videos/<id>/hls/1/480p/index.m3u8``), not
URLs, and never start with ``/``.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Callable, Sequence
from urllib.parse import unquote, urlsplit

__all__ = [
    "SUBTITLES_GROUP_ID",
    "URI_ATTRIBUTE_TAGS",
    "SubtitleRendition",
    "master_add_subtitles",
    "resolve_playlist_uri",
    "rewrite_playlist_keys",
    "rewrite_playlist_uris",
    "rewrite_vtt_image_keys",
]

#: Tags whose attribute list may carry a ``URI="…"`` attribute (RFC 8216 and its
#: low-latency additions); every other tag and every comment is left as written.
URI_ATTRIBUTE_TAGS = frozenset(
    {
        "EXT-X-MEDIA",
        "EXT-X-I-FRAME-STREAM-INF",
        "EXT-X-MAP",
        "EXT-X-KEY",
        "EXT-X-SESSION-KEY",
        "EXT-X-SESSION-DATA",
        "EXT-X-PART",
        "EXT-X-PRELOAD-HINT",
        "EXT-X-RENDITION-REPORT",
    }
)

# Playlist lines end in LF or CRLF; the separator is kept so output diffs stay minimal.
_LINE_SPLIT = re.compile(r"(\r\n|\n|\r)")


def rewrite_playlist_uris(text: str, map_uri: Callable[[str], str]) -> str:
    """Return an m3u8 playlist with every URI replaced by ``map_uri(uri)``.

    Rewrites URI lines (variant playlists in a master, segments in a media
    playlist) and ``URI="…"`` attributes of the tags in ``URI_ATTRIBUTE_TAGS``
    (``EXT-X-MEDIA``, ``EXT-X-I-FRAME-STREAM-INF``, ``EXT-X-MAP``, ``EXT-X-KEY``, …).
    Every other tag, comment, blank line and line ending is kept byte for byte.
    ``map_uri`` receives the URI exactly as written in the playlist.

    Raises:
        ValueError: if ``map_uri`` returns a value that cannot be written back
            (empty, or containing a line break, or a ``"`` inside an attribute).
    """
    pieces = _LINE_SPLIT.split(text)
    # Even indexes are line contents, odd ones the separators that followed them.
    for index in range(0, len(pieces), 2):
        line = pieces[index]
        # A byte-order mark is not allowed by RFC 8216 but must not turn #EXTM3U into a URI.
        body = line.lstrip("\ufeff")
        if body.startswith("#"):
            pieces[index] = line[: len(line) - len(body)] + _rewrite_tag(body, map_uri)
        elif line.strip():
            pieces[index] = _checked(map_uri(line.strip()), line.strip(), in_attribute=False)
    return "".join(pieces)


def resolve_playlist_uri(*, playlist_key: str, uri: str, hls_prefix: str) -> str:
    """Resolve a URI written in a playlist to the storage key it points at.

    ``playlist_key="videos/ID/hls/1/480p/index.m3u8"`` and ``uri="seg_00001.ts"``
    give ``videos/ID/hls/1/480p/seg_00001.ts``. The URI must be a relative
    reference (as ffmpeg writes them); percent-escapes are decoded.

    Raises:
        ValueError: if the URI is absolute, carries a query or fragment, or
            resolves (``..`` tricks included) outside ``hls_prefix``, or if the
            playlist itself is outside ``hls_prefix``.
    """
    prefix = hls_prefix.strip("/")
    if not prefix:
        raise ValueError("hls_prefix is empty: give the video's HLS prefix, e.g. 'videos/<id>/hls/'")
    prefix += "/"
    if not _is_within(playlist_key, prefix):
        raise ValueError(f"playlist {playlist_key!r} is not under the HLS prefix {prefix!r}")
    parts = urlsplit(uri)
    if parts.scheme or parts.netloc or uri.startswith("/"):
        raise ValueError(f"playlist URI {uri!r} is not relative; only relative URIs map to storage keys")
    if parts.query or parts.fragment:
        raise ValueError(f"playlist URI {uri!r} has a query or fragment, which storage keys do not have")
    path = unquote(parts.path)
    if not path or "\\" in path or "\x00" in path:
        raise ValueError(f"playlist URI {uri!r} is empty or has a backslash or NUL")
    key = posixpath.normpath(posixpath.join(posixpath.dirname(playlist_key), path))
    if not _is_within(key, prefix):
        raise ValueError(f"playlist URI {uri!r} in {playlist_key!r} escapes the HLS prefix {prefix!r}")
    return key


def rewrite_playlist_keys(
    text: str,
    *,
    playlist_key: str,
    hls_prefix: str,
    url_for_key: Callable[[str], str],
) -> str:
    """Rewrite a stored playlist so each relative URI becomes ``url_for_key(key)``.

    Each URI is resolved against ``playlist_key`` with ``resolve_playlist_uri``
    (so none may leave ``hls_prefix``) and the resulting storage key is handed to
    ``url_for_key``, e.g. a signed CDN URL or a presigned bucket URL.
    """

    def map_uri(uri: str) -> str:
        return url_for_key(resolve_playlist_uri(playlist_key=playlist_key, uri=uri, hls_prefix=hls_prefix))

    return rewrite_playlist_uris(text, map_uri)


#: GROUP-ID of the subtitle renditions every variant of a captioned master refers to.
SUBTITLES_GROUP_ID = "subs"


@dataclasses.dataclass(frozen=True)
class SubtitleRendition:
    """One ``EXT-X-MEDIA:TYPE=SUBTITLES`` line: a caption track's subtitle media playlist."""

    name: str
    language: str
    uri: str
    default: bool = False
    #: Captions for the deaf and hard of hearing (speech and sounds), which Apple players mark as such.
    captions: bool = False


#: Apple's CHARACTERISTICS of a subtitle rendition that is closed captions in WebVTT (HLS authoring spec).
CAPTIONS_CHARACTERISTICS = (
    "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"
)


def master_add_subtitles(text: str, subtitles: Sequence[SubtitleRendition]) -> str:
    """Add subtitle renditions to a master playlist and point every variant at them.

    Writes one ``EXT-X-MEDIA:TYPE=SUBTITLES`` line per track (``GROUP-ID="subs"``, NAME,
    LANGUAGE, DEFAULT, AUTOSELECT, ``FORCED=NO``, URI) before the first variant and adds
    ``SUBTITLES="subs"`` to each ``EXT-X-STREAM-INF`` (not to I-frame playlists, which RFC 8216
    forbids). Subtitle lines and ``SUBTITLES`` attributes already in the playlist are
    replaced, so the result reflects ``subtitles`` only; with none, the master comes back
    without them.

    Raises:
        ValueError: if a name, language or URI cannot be written into a quoted attribute.
    """
    media_lines = [_subtitle_media_line(subtitle) for subtitle in subtitles]
    pieces = _LINE_SPLIT.split(text)
    out: list[str] = []
    inserted = False
    for index in range(0, len(pieces), 2):
        line = pieces[index]
        separator = pieces[index + 1] if index + 1 < len(pieces) else ""
        if line.startswith("#EXT-X-MEDIA:") and "TYPE=SUBTITLES" in line:
            continue
        if line.startswith("#EXT-X-STREAM-INF:"):
            if not inserted:
                out.extend(f"{media}{separator or chr(10)}" for media in media_lines)
                inserted = True
            attributes = re.sub(r',SUBTITLES="[^"]*"', "", line[len("#EXT-X-STREAM-INF:") :])
            if media_lines:
                attributes += f',SUBTITLES="{SUBTITLES_GROUP_ID}"'
            line = "#EXT-X-STREAM-INF:" + attributes
        out.append(line + separator)
    if not inserted and media_lines:
        raise ValueError("the master playlist has no EXT-X-STREAM-INF variant to attach subtitles to")
    return "".join(out)


def _subtitle_media_line(subtitle: SubtitleRendition) -> str:
    for value in (subtitle.name, subtitle.language, subtitle.uri):
        if not value or any(char in value for char in '"\r\n'):
            raise ValueError(f"{value!r} cannot be written into a quoted playlist attribute")
    default = "YES" if subtitle.default else "NO"
    characteristics = f',CHARACTERISTICS="{CAPTIONS_CHARACTERISTICS}"' if subtitle.captions else ""
    return (
        f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{SUBTITLES_GROUP_ID}",NAME="{subtitle.name}",'
        f'LANGUAGE="{subtitle.language}",DEFAULT={default},AUTOSELECT=YES,FORCED=NO{characteristics},'
        f'URI="{subtitle.uri}"'
    )


def rewrite_vtt_image_keys(
    text: str,
    *,
    track_key: str,
    hls_prefix: str,
    url_for_key: Callable[[str], str],
) -> str:
    """Rewrite a stored WebVTT thumbnails track so each cue's image becomes ``url_for_key(key)``.

    A cue text line that is one relative image reference (``sprite-0.jpg#xywh=0,0,160,90``)
    is resolved against ``track_key`` with ``resolve_playlist_uri`` (so none may leave
    ``hls_prefix``) and keeps its ``#xywh`` fragment; every other line is kept as written.

    Raises:
        ValueError: a reference resolves outside ``hls_prefix`` or is absolute.
    """
    pieces = _LINE_SPLIT.split(text)
    for index in range(0, len(pieces), 2):
        line = pieces[index]
        match = _VTT_IMAGE_LINE.match(line)
        if match is None:
            continue
        key = resolve_playlist_uri(playlist_key=track_key, uri=match.group("uri"), hls_prefix=hls_prefix)
        pieces[index] = _checked(url_for_key(key), line, in_attribute=False) + (match.group("fragment") or "")
    return "".join(pieces)


# One image reference alone on a cue text line, with an optional media fragment (#xywh=...).
_VTT_IMAGE_LINE = re.compile(r"^(?P<uri>[^\s#]+\.(?:jpe?g|png|webp))(?P<fragment>#[^\s]*)?$", re.IGNORECASE)


def _rewrite_tag(line: str, map_uri: Callable[[str], str]) -> str:
    """Rewrite the URI attribute of one tag line, or return it unchanged."""
    name, colon, attributes = line[1:].partition(":")
    if not colon or name not in URI_ATTRIBUTE_TAGS:
        return line
    return f"#{name}:{_rewrite_attribute_list(attributes, map_uri)}"


def _rewrite_attribute_list(attributes: str, map_uri: Callable[[str], str]) -> str:
    """Walk an attribute list (``A=1,URI="x",B="y,z"``) and map the URI value.

    Quoted strings may contain commas, so the list is scanned rather than split.
    """
    out: list[str] = []
    position = 0
    length = len(attributes)
    while position < length:
        equals = attributes.find("=", position)
        if equals == -1:
            out.append(attributes[position:])
            break
        name = attributes[position:equals]
        out.append(attributes[position : equals + 1])
        position = equals + 1
        if position < length and attributes[position] == '"':
            closing = attributes.find('"', position + 1)
            if closing == -1:
                # An unterminated quote is malformed; keep the rest untouched.
                out.append(attributes[position:])
                break
            value = attributes[position + 1 : closing]
            if name.strip() == "URI":
                value = _checked(map_uri(value), value, in_attribute=True)
            out.append(f'"{value}"')
            position = closing + 1
        comma = attributes.find(",", position)
        end = length if comma == -1 else comma + 1
        out.append(attributes[position:end])
        position = end
    return "".join(out)


def _checked(new: str, old: str, *, in_attribute: bool) -> str:
    """Refuse a replacement URI that would corrupt the playlist's syntax."""
    if not new or "\n" in new or "\r" in new or (in_attribute and '"' in new):
        raise ValueError(f"replacement for playlist URI {old!r} cannot be written into a playlist: {new!r}")
    return new


def _is_within(key: str, prefix: str) -> bool:
    """Tell whether a normalised relative key lies strictly under ``prefix``."""
    normalised = posixpath.normpath(key)
    return not key.startswith("/") and normalised == key.rstrip("/") and normalised.startswith(prefix)
