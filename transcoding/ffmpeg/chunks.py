"""The chunked plan of a long source: time ranges that workers encode in parallel (pure).

Chunks are ``chunk_seconds`` long (the last one shorter), a whole number of HLS segments, so every
chunk starts a segment: its segments are numbered on from the chunks before it and, played one after
another, the chunks' segments are the ladder a single process would have written. Shorter sources,
or ``chunk_seconds`` 0, are not chunked.
"""

from __future__ import annotations

import dataclasses
import math

#: Every chunk's timestamps (and the audio rendition's) are its place in the video plus this: enough
#: that neither x264's B-frame delay nor AAC priming goes below zero, where a muxer would shift that
#: one chunk's clock and put it out of step with the others.
CHUNK_TS_OFFSET_S = 1.0
#: The last chunk takes up a remainder shorter than this instead of making a chunk of its own.
MIN_LAST_CHUNK_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class ChunkRange:
    """Chunk ``index``: ``length`` seconds of the source from ``start``."""

    index: int
    start: float
    length: float

    @property
    def end(self) -> float:
        return self.start + self.length

    def first_segment(self, segment_seconds: float) -> int:
        """Number of the chunk's first HLS segment in the whole video."""
        return round(self.start / segment_seconds)


def plan_chunks(
    *, duration: float, chunk_seconds: int, min_seconds: int, segment_seconds: int
) -> list[ChunkRange] | None:
    """The chunks of a ``duration``-second source, or None when it is encoded in one process.

    Raises ValueError when ``chunk_seconds`` is not a whole number of ``segment_seconds``.
    """
    if chunk_seconds <= 0 or duration <= min_seconds or duration <= chunk_seconds:
        return None
    if chunk_seconds % segment_seconds:
        raise ValueError(
            f"chunks of {chunk_seconds} s do not end on {segment_seconds} s segment boundaries; "
            "use a multiple of HLS_SEGMENT_SECONDS"
        )
    count = math.ceil(duration / chunk_seconds)
    if count > 1 and duration - (count - 1) * chunk_seconds < MIN_LAST_CHUNK_SECONDS:
        count -= 1
    chunks = [ChunkRange(index=i, start=float(i * chunk_seconds), length=float(chunk_seconds)) for i in range(count)]
    last = chunks[-1]
    # the last chunk runs to the end (a little past it: ffmpeg stops where the source does)
    chunks[-1] = dataclasses.replace(last, length=max(duration - last.start, 0.0) + 1.0)
    return chunks


def chunk_sprite_template(index: int) -> str:
    """File pattern of chunk ``index``'s preview sheets (``sprite-<index>-<n>.jpg``)."""
    return f"sprite-{index}-%d.jpg"
