"""Storage helpers every app uses: save, open locally, list, delete a prefix, URLs.

Works on local files (``FileSystemStorage``) and on B2/S3 (``MediaS3Storage``) without
reading whole objects into memory and without ``FieldFile.path`` outside local storage.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeGuard, overload

from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

if TYPE_CHECKING:
    # django-storages ships no type information: its S3 backend (bucket, boto3 resources) is Any.
    from storages.backends.s3 import S3Storage

logger = logging.getLogger(__name__)

COPY_BUFFER_BYTES = 1024 * 1024
S3_BACKEND_MODULE = "storages.backends.s3"


def __getattr__(name: str):
    # boto3 and botocore (~22 MiB per process) load only where the S3 backend is used:
    # STORAGES names "unpuzzle.storage.MediaS3Storage", which resolves here on first use.
    if name == "MediaS3Storage":
        from unpuzzle.s3_storage import MediaS3Storage

        return MediaS3Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@overload
def is_s3() -> bool: ...
@overload
def is_s3(storage: Storage) -> TypeGuard[S3Storage]: ...
@overload
def is_s3(storage: None) -> bool: ...
def is_s3(storage: Storage | None = None) -> bool:
    """True when the backend is django-storages' S3 backend (B2), without importing boto3 to ask."""
    module = sys.modules.get(S3_BACKEND_MODULE)
    return module is not None and isinstance(_backend(storage), module.S3Storage)


class StoredContent(File):
    """A stream to save, with the headers it must be served with."""

    def __init__(self, stream: IO[bytes], *, content_type: str | None = None, cache_control: str | None = None):
        super().__init__(stream)
        self.forced_content_type = content_type
        self.cache_control = cache_control


def get_storage() -> Storage:
    """The default storage backend (local or B2), resolved at call time so tests can swap it."""
    return storages["default"]


def is_local(storage: Storage | None = None) -> bool:
    """True when objects are plain files on this machine."""
    return isinstance(storage or get_storage(), FileSystemStorage)


def _backend(storage: Storage | None) -> Storage:
    return storage or get_storage()


def save_stream(
    key: str,
    stream: IO[bytes],
    *,
    content_type: str | None = None,
    cache_control: str | None = None,
    storage: Storage | None = None,
) -> str:
    """Store ``stream`` under exactly ``key`` (overwriting) and return the key.

    Content-Type and Cache-Control default to the ones for the key's extension. S3 uploads
    go through boto3's managed transfer, so large streams become multipart uploads.
    """
    backend = _backend(storage)
    content = StoredContent(stream, content_type=content_type, cache_control=cache_control)
    if isinstance(backend, FileSystemStorage) and backend.exists(key):
        backend.delete(key)
    saved = backend.save(key, content)
    if saved != key:
        raise RuntimeError(f"storage saved {key!r} as {saved!r}; keys must be written as given")
    return saved


def save_file(key: str, path: str | os.PathLike, *, storage: Storage | None = None, **headers: str | None) -> str:
    """Store the local file at ``path`` under ``key``."""
    with open(path, "rb") as fh:
        return save_stream(key, fh, storage=storage, **headers)


def save_directory(
    prefix: str,
    directory: str | os.PathLike,
    *,
    storage: Storage | None = None,
    on_saved: Callable[[str, int], None] | None = None,
) -> list[tuple[str, int]]:
    """Store every file under ``directory`` below ``prefix``; return ``(key, size)`` pairs.

    ``on_saved(key, size)`` runs after each file, so a long upload can report liveness
    (or stop by raising).
    """
    stored = []
    root = Path(directory)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = f"{prefix.rstrip('/')}/{path.relative_to(root).as_posix()}"
        save_file(key, path, storage=storage)
        size = path.stat().st_size
        stored.append((key, size))
        if on_saved is not None:
            on_saved(key, size)
    return stored


class StoredObjectMissing(FileNotFoundError):
    """The storage has no object under this key (not a local file that went missing)."""


def is_storage_outage(exc: BaseException) -> bool:
    """True for a failure to reach storage that waiting can cure: connection refused or reset,
    timeouts, 5xx and throttling, and boto3's managed transfer giving up after its own retries
    (s3transfer's ``RetriesExceededError``, boto3's ``S3UploadFailedError``: not botocore errors). A
    missing object is not one. Tells by the class's module, so boto3 is never imported here.
    """
    if isinstance(exc, StoredObjectMissing):
        return False
    if isinstance(exc, OSError):
        return True
    return any(
        cls.__module__ in ("botocore.exceptions", "boto3.exceptions", "s3transfer.exceptions")
        for cls in type(exc).__mro__
    )


# What S3 and B2 answer for a key that does not exist.
_MISSING_OBJECT_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def _is_missing_object(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") in _MISSING_OBJECT_CODES


@contextlib.contextmanager
def open_local_copy(
    key: str, *, storage: Storage | None = None, suffix: str = "", directory: Path | None = None
) -> Iterator[Path]:
    """Yield a local path holding the object's bytes; treat it as read-only.

    Local storage yields the file itself; remote storage streams the object into a temp
    directory (inside ``directory`` when given, so a caller's own sweep covers it) that is
    removed afterwards. Raises StoredObjectMissing when there is no object under ``key``.
    """
    backend = _backend(storage)
    if isinstance(backend, FileSystemStorage):
        path = Path(backend.path(key))
        if not path.is_file():
            raise StoredObjectMissing(f"stored object {key!r} does not exist")
        yield path
        return
    tmpdir = tempfile.mkdtemp(prefix="unpuzzle-obj-", dir=directory)
    try:
        target = Path(tmpdir) / f"object{suffix or Path(key).suffix}"
        with open(target, "wb") as out:
            try:
                if is_s3(backend):
                    backend.bucket.Object(backend._normalize_name(key)).download_fileobj(
                        out, Config=backend.transfer_config
                    )
                else:
                    with backend.open(key, "rb") as src:
                        shutil.copyfileobj(src, out, COPY_BUFFER_BYTES)
            except Exception as exc:
                if isinstance(exc, FileNotFoundError) or _is_missing_object(exc):
                    raise StoredObjectMissing(f"stored object {key!r} does not exist") from exc
                raise
        yield target
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


@contextlib.contextmanager
def open_for_ranges(
    key: str, *, expire_seconds: int, storage: Storage | None = None, directory: Path | None = None
) -> Iterator[Path | str]:
    """Yield what a reader that seeks (ffmpeg) opens to read parts of the object: the file itself on
    local storage, a presigned URL on S3/B2 (byte-range GETs, valid ``expire_seconds``; nothing is
    copied), else a local copy (``open_local_copy``). Raises StoredObjectMissing when there is no object."""
    backend = _backend(storage)
    if is_s3(backend):
        if not backend.exists(key):
            raise StoredObjectMissing(f"stored object {key!r} does not exist")
        yield storage_url(key, expire_seconds=expire_seconds, storage=backend)
        return
    with open_local_copy(key, storage=backend, directory=directory) as path:
        yield path


def iter_objects(prefix: str, *, storage: Storage | None = None) -> Iterator[tuple[str, int]]:
    """Yield ``(key, size)`` for every object whose key starts with ``prefix``."""
    backend = _backend(storage)
    if is_s3(backend):
        for obj in backend.bucket.objects.filter(Prefix=backend._normalize_name(prefix)):
            yield obj.key, obj.size
        return
    if isinstance(backend, FileSystemStorage):
        root = Path(backend.location)
        base = root / prefix
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return
        for path in sorted(p for p in start.rglob("*") if p.is_file()):
            key = path.relative_to(root).as_posix()
            if key.startswith(prefix):
                yield key, path.stat().st_size
        return
    raise NotImplementedError(f"listing is not supported on {type(backend).__name__}")


def delete_prefix(prefix: str, *, storage: Storage | None = None) -> int:
    """Delete every object under ``prefix`` (a folder-like key ending in '/'); return the count."""
    if not prefix or not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix.split("/"):
        raise ValueError(f"refusing to delete prefix {prefix!r}: it must be a relative folder ending in '/'")
    backend = _backend(storage)
    if is_s3(backend):
        deleted = 0
        for response in backend.bucket.objects.filter(Prefix=backend._normalize_name(prefix)).delete():
            deleted += len(response.get("Deleted", []))
            for error in response.get("Errors", []):
                logger.error("could not delete %s: %s", error.get("Key"), error.get("Message"))
        return deleted
    if isinstance(backend, FileSystemStorage):
        folder = Path(backend.path(prefix))
        if not folder.is_dir():
            return 0
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        shutil.rmtree(folder)
        return count
    keys = [key for key, _ in iter_objects(prefix, storage=backend)]
    for key in keys:
        backend.delete(key)
    return len(keys)


def delete_key(key: str, *, storage: Storage | None = None) -> None:
    """Delete one object; a missing object is not an error."""
    if key:
        _backend(storage).delete(key)


def storage_url(key: str, *, expire_seconds: int | None = None, storage: Storage | None = None) -> str:
    """A URL that fetches the object: presigned (SigV4) on S3/B2, MEDIA_URL-based locally."""
    backend = _backend(storage)
    if is_s3(backend):
        return backend.url(key, expire=expire_seconds)
    return backend.url(key)


def object_exists(key: str, *, storage: Storage | None = None) -> bool:
    """True when an object is stored under ``key``."""
    return bool(key) and _backend(storage).exists(key)
