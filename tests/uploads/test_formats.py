"""uploads.formats: which ffprobe containers the allowed extensions stand for (pure)."""

from uploads.formats import container_allowed

DEFAULT = ["mp4", "webm", "avi", "mov", "mkv"]


def test_common_containers():
    assert container_allowed("mov,mp4,m4a,3gp,3g2,mj2", DEFAULT)
    assert container_allowed("matroska,webm", DEFAULT)
    assert container_allowed("avi", DEFAULT)
    assert not container_allowed("mpegts", DEFAULT)
    assert not container_allowed("png_pipe", DEFAULT)
    assert not container_allowed("", DEFAULT)


def test_narrow_lists():
    assert not container_allowed("avi", ["mp4"])
    assert container_allowed("matroska,webm", ["webm"])
    assert not container_allowed("mov,mp4,m4a,3gp,3g2,mj2", ["webm"])
    assert container_allowed("mpegts", ["ts"])
