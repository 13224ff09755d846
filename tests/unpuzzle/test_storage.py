"""Storage helpers on local files and on a real S3-compatible endpoint over loopback."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from tests.conftest import S3_KEY_ID, S3_REGION, S3_SECRET
from unpuzzle import storage as st

MIB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def any_storage(request):
    """Run a test once on local storage and once on the loopback S3 endpoint."""
    if request.param == "local":
        return st.get_storage()
    return request.getfixturevalue("s3_storage")


def _write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, MIB))
            digest.update(block)
            fh.write(block)
            remaining -= len(block)
    return digest.hexdigest()


def _s3_client(storage):
    return boto3.client(
        "s3",
        endpoint_url=storage.endpoint_url,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    )


def test_save_and_open_local_copy_roundtrip(any_storage, tmp_path):
    source = tmp_path / "big.bin"
    digest = _write_random(source, 3 * MIB + 17)
    key = "originals/abc/lecture one.mp4"

    assert st.save_file(key, source) == key
    assert st.object_exists(key)

    with st.open_local_copy(key) as local:
        assert hashlib.sha256(local.read_bytes()).hexdigest() == digest
        copy_dir = local.parent
    if not st.is_local(any_storage):
        assert not copy_dir.exists(), "the temp copy of a remote object must be removed"


def test_save_overwrites_same_key(any_storage):
    st.save_stream("videos/v/hls/1/master.m3u8", io.BytesIO(b"#EXTM3U\n# first\n"))
    st.save_stream("videos/v/hls/1/master.m3u8", io.BytesIO(b"#EXTM3U\n# second\n"))
    with st.open_local_copy("videos/v/hls/1/master.m3u8") as local:
        assert local.read_bytes() == b"#EXTM3U\n# second\n"


def test_open_missing_object_raises(any_storage):
    with pytest.raises((FileNotFoundError, ClientError)):
        with st.open_local_copy("originals/missing/file.mp4"):
            pass


def test_delete_prefix_removes_only_that_prefix(any_storage):
    for name in ("master.m3u8", "480p/index.m3u8", "480p/seg_00000.ts"):
        st.save_stream(f"videos/v1/hls/1/{name}", io.BytesIO(b"x" * 10))
    st.save_stream("videos/v1/hls/10/master.m3u8", io.BytesIO(b"y"))
    st.save_stream("videos/v1/poster.jpg", io.BytesIO(b"z"))

    assert st.delete_prefix("videos/v1/hls/1/") == 3

    remaining = sorted(key for key, _ in st.iter_objects("videos/v1/"))
    assert remaining == ["videos/v1/hls/10/master.m3u8", "videos/v1/poster.jpg"]


@pytest.mark.parametrize("prefix", ["", "videos", "/videos/", "videos/../", "../x/"])
def test_delete_prefix_refuses_dangerous_prefixes(prefix):
    with pytest.raises(ValueError, match="refusing to delete prefix"):
        st.delete_prefix(prefix)


def test_iter_objects_reports_sizes(any_storage):
    st.save_stream("videos/v2/hls/1/a.ts", io.BytesIO(b"a" * 5))
    st.save_stream("videos/v2/hls/1/b.ts", io.BytesIO(b"b" * 7))
    assert sorted(st.iter_objects("videos/v2/")) == [("videos/v2/hls/1/a.ts", 5), ("videos/v2/hls/1/b.ts", 7)]


@pytest.mark.parametrize(
    ("key", "content_type", "cache_control"),
    [
        (
            "videos/v/hls/1/master.m3u8",
            "application/vnd.apple.mpegurl",
            "public, max-age=3600, stale-while-revalidate=86400",
        ),
        ("videos/v/hls/1/480p/seg_00001.ts", "video/mp2t", "public, max-age=31536000, immutable"),
        ("videos/v/poster.jpg", "image/jpeg", "public, max-age=604800"),
    ],
)
def test_s3_objects_carry_content_type_and_cache_control(s3_storage, key, content_type, cache_control):
    st.save_stream(key, io.BytesIO(b"data"))
    head = _s3_client(s3_storage).head_object(Bucket=s3_storage.bucket_name, Key=key)
    assert head["ContentType"] == content_type
    assert head["CacheControl"] == cache_control


def test_s3_explicit_headers_override_the_extension(s3_storage):
    st.save_stream("exports/report.bin", io.BytesIO(b"{}"), content_type="application/json", cache_control="no-store")
    head = _s3_client(s3_storage).head_object(Bucket=s3_storage.bucket_name, Key="exports/report.bin")
    assert (head["ContentType"], head["CacheControl"]) == ("application/json", "no-store")


def test_s3_multipart_upload_without_checksum_headers(s3_storage, tmp_path):
    """A >16 MiB object goes up in parts, and no request carries the checksum headers B2 rejects."""
    sent = []

    def capture(request, **kwargs):
        sent.append((request.method, request.url, dict(request.headers)))

    s3_storage.connection.meta.client.meta.events.register("before-send.s3", capture)
    source = tmp_path / "lecture.mp4"
    digest = _write_random(source, 17 * MIB + 3)

    st.save_file("originals/m1/lecture.mp4", source)

    part_requests = [url for method, url, _ in sent if method == "PUT" and "partNumber=" in url]
    assert len(part_requests) >= 3, f"expected a multipart upload, saw {[(m, u) for m, u, _ in sent]}"
    assert any("uploads" in url and method == "POST" for method, url, _ in sent)
    for _, url, headers in sent:
        lowered = {name.lower() for name in headers}
        assert not any(name.startswith("x-amz-checksum-") for name in lowered), (url, lowered)
        assert "x-amz-sdk-checksum-algorithm" not in lowered, (url, lowered)
    with st.open_local_copy("originals/m1/lecture.mp4") as local:
        assert hashlib.sha256(local.read_bytes()).hexdigest() == digest


def test_s3_presigned_url_is_sigv4_and_fetches(s3_storage):
    st.save_stream("videos/v/poster.jpg", io.BytesIO(b"\xff\xd8poster"))
    url = st.storage_url("videos/v/poster.jpg", expire_seconds=120)

    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    assert "X-Amz-Expires=120" in url
    assert f"/{S3_REGION}/s3/aws4_request" in requests.utils.unquote(url)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"\xff\xd8poster"
    assert response.headers["Content-Type"] == "image/jpeg"


def test_s3_url_without_signature_is_refused_by_the_endpoint(s3_storage):
    st.save_stream("videos/v/private.ts", io.BytesIO(b"secret"))
    url = st.storage_url("videos/v/private.ts").split("?")[0]
    client = _s3_client(s3_storage)
    client.put_public_access_block(
        Bucket=s3_storage.bucket_name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    assert requests.get(url, timeout=10).status_code in (401, 403)


def test_local_url_uses_media_url():
    assert st.storage_url("videos/v/poster.jpg") == "/media/videos/v/poster.jpg"
