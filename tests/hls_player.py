"""What a player does with a playback URL: fetch the master and everything it references."""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def response_body(response) -> bytes:
    """The body of a Django test response, streamed or not."""
    return b"".join(response.streaming_content) if response.streaming else response.content


def playlist_uris(playlist: str) -> list[str]:
    """Every URI an m3u8 playlist references (URI lines and ``URI="…"`` attributes)."""
    uris = [line.strip() for line in playlist.splitlines() if line.strip() and not line.startswith("#")]
    uris += re.findall(r'URI="([^"]+)"', playlist)
    return uris


def follow_playlists(client, master_url: str, *, fetch_external=None) -> list[str]:
    """Fetch a master and everything it references; assert each fetch is 200.

    App URLs go through the Django test ``client``; other hosts (presigned storage URLs)
    through ``fetch_external(url)``, which returns a ``requests`` response.
    """
    fetched, queue = [], [master_url]
    while queue:
        url = queue.pop()
        parts = urlsplit(url)
        if parts.netloc in ("", "testserver"):
            response = client.get(parts.path)
            assert response.status_code == 200, (url, response.status_code)
            body = response_body(response)
            content_type = response["Content-Type"]
        else:
            response = fetch_external(url)
            assert response.status_code == 200, (url, response.status_code, response.text[:200])
            body, content_type = response.content, response.headers["Content-Type"]
        fetched.append(url)
        if content_type == "application/vnd.apple.mpegurl":
            base = url.rsplit("/", 1)[0]
            for uri in playlist_uris(body.decode()):
                queue.append(uri if "://" in uri or uri.startswith("/") else f"{base}/{uri}")
    return fetched
