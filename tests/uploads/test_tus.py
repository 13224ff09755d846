"""uploads.tus: header parsing and formatting (pure)."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from uploads import tus
from uploads.tus import TusHeaderError


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_metadata_round_trip_with_non_ascii_and_empty_values():
    header = f"filename {_b64('Übung 1 – 講義.mp4')},filetype {_b64('video/mp4')},is_confidential"
    parsed = tus.parse_metadata(header)
    assert parsed == {"filename": "Übung 1 – 講義.mp4", "filetype": "video/mp4", "is_confidential": ""}
    assert tus.parse_metadata(tus.format_metadata(parsed)) == parsed
    assert tus.parse_metadata(None) == {} and tus.parse_metadata("  ") == {}


@pytest.mark.parametrize(
    "header",
    [
        "filename not*base64",
        f"filename {_b64('a')},filename {_b64('b')}",
        f"filename {_b64('a')},,x",
        "filename " + base64.b64encode(b"\xff\xfe").decode(),
    ],
)
def test_metadata_rejections(header):
    with pytest.raises(TusHeaderError) as exc:
        tus.parse_metadata(header)
    assert exc.value.status == 400


def test_tus_resumable_version_check():
    tus.check_tus_resumable("1.0.0")
    for value in (None, "", "0.2.2", "1.0"):
        with pytest.raises(TusHeaderError) as exc:
            tus.check_tus_resumable(value)
        assert exc.value.status == 412


def test_non_negative_ints_are_64_bit():
    assert tus.parse_non_negative_int("Upload-Length", "5368709120") == 5 * 1024**3
    assert tus.parse_non_negative_int("Upload-Length", str(2**63 - 1)) == 2**63 - 1
    assert tus.parse_non_negative_int("Upload-Length", None) is None
    for bad in ("-1", "1.5", "abc", "", "١٢"):
        with pytest.raises(TusHeaderError):
            tus.parse_non_negative_int("Upload-Offset", bad)
    with pytest.raises(TusHeaderError) as exc:
        tus.parse_non_negative_int("Upload-Length", str(2**63))
    assert exc.value.status == 413
    with pytest.raises(TusHeaderError):
        tus.parse_non_negative_int("Upload-Offset", None, required=True)


def test_defer_length():
    assert tus.parse_defer_length("1") is True
    assert tus.parse_defer_length(None) is False
    with pytest.raises(TusHeaderError):
        tus.parse_defer_length("0")


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
def test_checksum_parsing(algorithm):
    digest = hashlib.new(algorithm, b"hello world").digest()
    parsed = tus.parse_checksum(f"{algorithm} {base64.b64encode(digest).decode()}")
    assert parsed.algorithm == algorithm and parsed.digest == digest
    hasher = parsed.new_hasher()
    hasher.update(b"hello world")
    assert hasher.digest() == digest


@pytest.mark.parametrize("header", ["crc32 AAAA", "SHA1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=", "sha1 !!!", "sha1 AAAA"])
def test_checksum_rejections(header):
    with pytest.raises(TusHeaderError) as exc:
        tus.parse_checksum(header)
    assert exc.value.status == 400


def test_spec_example_checksum():
    parsed = tus.parse_checksum("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=")
    assert parsed.digest == hashlib.sha1(b"hello world").digest()


def test_concat_parsing_and_formatting():
    assert tus.parse_concat("partial") == tus.Concat(partial=True)
    final = tus.parse_concat("final;/files/a https://tus.example.org/files/b")
    assert final == tus.Concat(partial=False, urls=("/files/a", "https://tus.example.org/files/b"))
    assert tus.format_concat(partial=False, urls=["/files/a", "/files/b"]) == "final;/files/a /files/b"
    assert tus.parse_concat(None) is None
    for bad in ("final;", "final", "whole;/a", "partial;x"):
        with pytest.raises(TusHeaderError):
            tus.parse_concat(bad)


def test_http_date_is_rfc_7231():
    moment = datetime(2014, 6, 25, 18, 0, tzinfo=timezone(timedelta(hours=2)))
    assert tus.format_http_date(moment) == "Wed, 25 Jun 2014 16:00:00 GMT"
    with pytest.raises(ValueError):
        tus.format_http_date(datetime(2014, 6, 25))


def test_method_override():
    assert tus.parse_method_override("POST", "patch") == "PATCH"
    assert tus.parse_method_override("post", None) == "POST"
    assert tus.parse_method_override("POST", " ") == "POST"


def test_a_number_with_thousands_of_digits_is_too_large_not_a_crash():
    for digits in ("9" * 5000, "1" + "0" * 19, "0" * 30 + "1" * 20):
        with pytest.raises(TusHeaderError) as exc:
            tus.parse_non_negative_int("Upload-Length", digits)
        assert exc.value.status == 413
        assert str(exc.value) == (
            f"Upload-Length has {len(digits.lstrip('0'))} digits: it is larger than the largest "
            f"supported size {2**63 - 1}"
        )
    assert tus.parse_non_negative_int("Upload-Offset", "0" * 5000) == 0
    assert tus.parse_non_negative_int("Upload-Offset", "0" * 40 + "42") == 42


def test_metadata_values_with_a_nul_or_control_character_are_refused():
    for text in ("lecture\x00.mp4", "week\x1b[31m1"):
        with pytest.raises(TusHeaderError) as exc:
            tus.parse_metadata(f"filename {_b64(text)}")
        assert exc.value.status == 400
        assert str(exc.value) == "Upload-Metadata value of 'filename' contains control characters; send plain text"
    tabbed = "Week 1\tpart 2"
    assert tus.parse_metadata(f"title {_b64(tabbed)}") == {"title": tabbed}
