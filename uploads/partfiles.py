"""Part files of tus uploads: where they live, one writer at a time, writing and removing them.

Bytes of a tus upload go to ``UPLOAD_TEMP_DIR/<id>.part``. One writer at a time per upload
is guaranteed by an exclusive ``flock`` on the part file, taken without waiting: the kernel
drops it when the writing request's file is closed or its process dies, so a dead connection
never leaves a stale lock, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from unpuzzle.exceptions import Gone, Locked, TooManyRequests

BUFFER_BYTES = 1024 * 1024


def part_path(upload_id: uuid.UUID | str) -> Path:
    """Where the bytes of tus upload ``upload_id`` are kept while it is unfinished."""
    return Path(settings.UPLOAD_TEMP_DIR) / f"{upload_id}.part"


def part_files_dir() -> Path:
    """The directory holding every part file of this deployment."""
    return Path(settings.UPLOAD_TEMP_DIR)


def part_files_free_bytes() -> int:
    """Free bytes on the filesystem holding the part files."""
    directory = part_files_dir()
    directory.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(directory).free


def remove_part_file(path: str) -> None:
    """Delete a part file; an empty path or a file already gone is fine."""
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def locked_part_file(path: str, *, upload_id: uuid.UUID) -> Iterator[BinaryIO]:
    """Open the part file with an exclusive, non-blocking flock; 423 if another request holds it."""
    try:
        # Unbuffered: each 1 MiB block goes straight to the kernel, no second copy in Python.
        fh = open(path, "r+b", buffering=0)
    except FileNotFoundError:
        raise Gone(f"upload {upload_id} has no stored bytes any more (it was terminated or expired)") from None
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise Locked(
                    f"upload {upload_id} is being written by another request; wait for it to finish "
                    "(or for its connection to drop), then HEAD the upload and resume from its offset"
                ) from None
            raise
        yield fh
    finally:
        fh.close()  # closing the file releases the flock


@contextlib.contextmanager
def patch_slot(*, user_id: int | str, slots: int) -> Iterator[None]:
    """Hold one of ``user_id``'s ``slots`` body-writing slots for the duration; 429 when all are taken.

    A slot is an exclusive ``flock`` on ``.patch-slots/<user>/<n>`` beside the part files, so the
    count holds across every thread and process writing there, and a killed process frees its
    slot with its file descriptors.
    """
    directory = part_files_dir() / ".patch-slots" / str(user_id)
    directory.mkdir(parents=True, exist_ok=True)
    for number in range(slots):
        fd = os.open(directory / str(number), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                continue
            raise
        try:
            yield
        finally:
            os.close(fd)  # releases the flock
        return
    raise TooManyRequests(
        f"you are already sending the bytes of {slots} uploads at once (UPLOAD_MAX_PATCHES_PER_USER); "
        "wait for one of them to finish, then send this one"
    )


def write_all(fh: BinaryIO, data: bytes | memoryview) -> None:
    """Write every byte of ``data`` (an unbuffered file may take fewer per call)."""
    view = memoryview(data)
    while view:
        view = view[fh.write(view) :]
