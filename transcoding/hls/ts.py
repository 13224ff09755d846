"""MPEG-TS segments as ffmpeg writes them for HLS: codec string, audio type and IDR byte ranges (pure)."""

from __future__ import annotations

import collections
import dataclasses
import os
from pathlib import Path

PathLike = str | os.PathLike[str]


class HlsOutputError(Exception):
    """The files ffmpeg wrote are missing or unusable."""


class HlsOutputIncomplete(HlsOutputError):
    """Files ffmpeg listed were never written or are empty: its writes failed (a full disk: ffmpeg
    5 still exits 0 then), which says nothing about the source."""


@dataclasses.dataclass(frozen=True)
class KeyFrameRange:
    """Bytes of one IDR frame in a segment, including the PAT/PMT written just before it."""

    pts: float
    offset: int
    length: int


@dataclasses.dataclass(frozen=True)
class TsSegmentScan:
    """What a pass over one MPEG-TS segment found."""

    video_codec: str | None
    has_aac: bool
    keyframes: tuple[KeyFrameRange, ...]
    starts_with_keyframe: bool
    first_video_pts: float | None


_TS_PACKET = 188
_STREAM_TYPE_H264 = 0x1B
_AAC_STREAM_TYPES = {0x0F, 0x11}


def _pes_pts(payload: bytes) -> float | None:
    if len(payload) < 14 or payload[:3] != b"\x00\x00\x01" or not payload[7] & 0x80:
        return None
    b = payload[9:14]
    ticks = ((b[0] >> 1) & 0x07) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
    return ticks / 90_000.0


def _avc_codec_from_pes(payload: bytes) -> str | None:
    """``avc1.PPCCLL`` from the SPS at the start of a PES (profile, constraint flags, level)."""
    if len(payload) < 9 or payload[:3] != b"\x00\x00\x01":
        return None
    es = payload[9 + payload[8] :]
    start = 0
    while True:
        start = es.find(b"\x00\x00\x01", start)
        if start < 0 or start + 6 > len(es):
            return None
        if es[start + 3] & 0x1F == 7:
            profile, constraints, level = es[start + 4], es[start + 5], es[start + 6]
            return f"avc1.{profile:02x}{constraints:02x}{level:02x}"
        start += 3


def scan_ts_segment(path: PathLike) -> TsSegmentScan:
    """Read an MPEG-TS segment written by ffmpeg: codec string, audio type, IDR byte ranges."""
    data = Path(path).read_bytes()
    if len(data) % _TS_PACKET or (data and data[0] != 0x47):
        raise HlsOutputError(f"{path} is not an MPEG-TS file made of 188-byte packets")
    pmt_pids: set[int] = set()
    video_pid: int | None = None
    has_aac = False
    codec: str | None = None
    keyframes: list[KeyFrameRange] = []
    first_video_pts: float | None = None
    starts_with_keyframe = False
    pending_pes = bytearray()
    collecting_sps = False
    open_frame: tuple[float, int] | None = None
    last_video_end = 0
    recent_pids: collections.deque[int] = collections.deque(maxlen=3)

    def close_frame() -> None:
        nonlocal open_frame
        if open_frame is not None:
            pts, start = open_frame
            keyframes.append(KeyFrameRange(pts=pts, offset=start, length=last_video_end - start))
            open_frame = None

    for offset in range(0, len(data), _TS_PACKET):
        packet = data[offset : offset + _TS_PACKET]
        if packet[0] != 0x47:
            raise HlsOutputError(f"{path}: lost MPEG-TS sync at byte {offset}")
        pid = (packet[1] & 0x1F) << 8 | packet[2]
        unit_start = bool(packet[1] & 0x40)
        adaptation = (packet[3] >> 4) & 0x3
        payload_at = 4
        random_access = False
        if adaptation & 0x2:
            field_length = packet[4]
            random_access = field_length > 0 and bool(packet[5] & 0x40)
            payload_at = 5 + field_length
        payload = packet[payload_at:] if adaptation & 0x1 else b""

        if pid == 0 and unit_start and payload:
            section = payload[1 + payload[0] :]
            length = ((section[1] & 0x0F) << 8 | section[2]) if len(section) >= 3 else 0
            for at in range(8, 3 + length - 4, 4):
                program = section[at] << 8 | section[at + 1]
                if program:
                    pmt_pids.add((section[at + 2] & 0x1F) << 8 | section[at + 3])
        elif pid in pmt_pids and unit_start and payload:
            section = payload[1 + payload[0] :]
            length = (section[1] & 0x0F) << 8 | section[2]
            at = 12 + ((section[10] & 0x0F) << 8 | section[11])
            while at + 5 <= 3 + length - 4:
                stream_type, es_pid = section[at], (section[at + 1] & 0x1F) << 8 | section[at + 2]
                if stream_type == _STREAM_TYPE_H264 and video_pid is None:
                    video_pid = es_pid
                has_aac = has_aac or stream_type in _AAC_STREAM_TYPES
                at += 5 + ((section[at + 3] & 0x0F) << 8 | section[at + 4])
        elif pid == video_pid:
            if unit_start:
                close_frame()
                pts = _pes_pts(payload)
                if first_video_pts is None:
                    first_video_pts = pts
                    starts_with_keyframe = random_access
                if random_access and pts is not None:
                    # start at the PAT/PMT ffmpeg writes before each keyframe so the range decodes alone
                    start = offset
                    if len(recent_pids) >= 2 and recent_pids[-1] in pmt_pids and recent_pids[-2] == 0:
                        start = offset - 2 * _TS_PACKET
                    open_frame = (pts, start)
                if codec is None:
                    pending_pes = bytearray(payload)
                    collecting_sps = True
            elif collecting_sps and codec is None and len(pending_pes) < 8192:
                pending_pes += payload
            if collecting_sps and codec is None:
                codec = _avc_codec_from_pes(bytes(pending_pes))
            last_video_end = offset + _TS_PACKET
        recent_pids.append(pid)
    close_frame()
    return TsSegmentScan(
        video_codec=codec,
        has_aac=has_aac,
        keyframes=tuple(keyframes),
        starts_with_keyframe=starts_with_keyframe,
        first_video_pts=first_video_pts,
    )
