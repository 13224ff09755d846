"""media_library.filenames: storage-safe original names (pure)."""

import pytest

from media_library.filenames import file_extension, safe_filename


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("Lecture 1.mp4", "lecture-1.mp4"),
        ("Woche 3 – Übung.MP4", "woche-3-übung.mp4"),
        ("講義 第1回.mov", "講義-第1回.mov"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\talk.mkv", "talk.mkv"),
        ("a.b.c.webm", "a-b-c.webm"),
        ("???.mp4", "video.mp4"),
        ("", "video"),
        ("name.with space", "name-with-space"),
    ],
)
def test_safe_filename(name, safe):
    assert safe_filename(name) == safe


def test_long_names_are_cut_but_keep_the_extension():
    result = safe_filename("x" * 500 + ".mp4")
    assert result.endswith(".mp4") and len(result) <= 104


def test_file_extension():
    assert file_extension("Talk.MP4") == "mp4"
    assert file_extension("noext") == ""
    assert file_extension(".hidden") == ""
    assert file_extension("dir.v2/file") == ""
