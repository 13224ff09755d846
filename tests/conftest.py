"""Shared fixtures: isolated storage, a loopback S3 endpoint, generated clips, users and clients."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import boto3
import pytest
from django.conf import settings as django_settings
from django.db import connection
from rest_framework.test import APIClient

from tests import clips
from tests.factories import make_staff, make_superuser, make_user
from tests.tcp_proxy import TcpProxy
from unpuzzle.storage_options import s3_storage_options

S3_REGION = "us-west-002"
S3_KEY_ID = "test-key-id"
S3_SECRET = "test-application-key"


# A test that uses one of these fixtures runs ffmpeg, a live server, moto or a browser: it is
# marked slow, so `-m "not slow"` is the fast loop of pure and database tests.
SLOW_FIXTURES = frozenset(
    {
        "live_server",
        "start_gunicorn",
        "start_cluster",
        "s3_server",
        "s3_bucket",
        "s3_storage",
        "s3_proxy",
        "chromium",
        "page",
        "clip_dir",
        "landscape_clip",
        "no_audio_clip",
        "rotated_portrait_clip",
        "native_portrait_clip",
        "below_ladder_clip",
        "interlaced_clip",
        "dv_pal_clip",
        "hlg_clip",
        "truncated_faststart_clip",
        "cut_before_moov_clip",
        "not_video_clip",
        "png_clip",
        "audio_only_clip",
        "slides_clip",
        "upload_clip",
        "small_clip",
        "lecture_clip",
        "hls_source",
        "timestamp_bomb_clip",
        "huge_sps_clip",
        "lying_sps_clip",
    }
)
# Programs a fast test must not start: the guard below turns a missing mark into a failure.
SLOW_PROGRAMS = frozenset({"ffmpeg", "ffprobe", "gunicorn", "node", "chromium", "qcluster"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("browser") or SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def fast_tests_start_no_slow_programs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail a test not marked slow that starts ffmpeg, ffprobe, gunicorn, a qcluster, node or a browser."""
    if request.node.get_closest_marker("slow"):
        return
    original = subprocess.Popen

    class GuardedPopen(original):  # type: ignore[misc, valid-type]
        def __init__(self, args, *rest, **kwargs):
            argv = [args] if isinstance(args, str | bytes | os.PathLike) else list(args)
            started = {os.path.basename(os.fsdecode(arg)) for arg in argv} & SLOW_PROGRAMS
            if started:
                raise AssertionError(f"{request.node.nodeid} starts {sorted(started)}: mark it @pytest.mark.slow")
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", GuardedPopen)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def isolated_var(settings, tmp_path):
    """Every test gets its own media root, upload directory and transcode work dir."""
    media_root = tmp_path / "media"
    settings.MEDIA_ROOT = media_root
    settings.UPLOAD_TEMP_DIR = tmp_path / "uploads"
    settings.TRANSCODE_WORK_DIR = tmp_path / "transcode"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(media_root), "base_url": "/media/", "allow_overwrite": True},
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    return tmp_path


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Users are created in nearly every test; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible HTTP endpoint (moto) on 127.0.0.1 for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh, empty bucket on the loopback endpoint."""
    name = f"unpuzzle-test-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    )
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": S3_REGION})
    return name


def use_s3_storage(settings, *, endpoint: str, bucket_name: str, **options) -> None:
    """Make the default storage MediaS3Storage at ``endpoint``/``bucket_name``, as STORAGE_BACKEND=b2 does
    (``options``: the timeouts and attempts of ``s3_storage_options``)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "unpuzzle.storage.MediaS3Storage",
            "OPTIONS": s3_storage_options(
                key_id=S3_KEY_ID,
                application_key=S3_SECRET,
                endpoint=endpoint,
                region=S3_REGION,
                bucket_name=bucket_name,
                **options,
            ),
        },
    }


@contextlib.contextmanager
def mounted_tmpfs(path: Path, *, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (a real full disk); skips the test unless root can mount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.fixture
def s3_storage(settings, s3_server, s3_bucket):
    """Switch the default storage to MediaS3Storage on the loopback endpoint, as STORAGE_BACKEND=b2 does."""
    from django.core.files.storage import storages

    use_s3_storage(settings, endpoint=s3_server, bucket_name=s3_bucket)
    return storages["default"]


@pytest.fixture
def s3_proxy(settings, s3_server, s3_bucket) -> Iterator[TcpProxy]:
    """S3 storage reached through a proxy the test can cut (one try per request, short timeouts)."""
    target = urlsplit(s3_server)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 80)
    use_s3_storage(
        settings, endpoint=proxy.url, bucket_name=s3_bucket, connect_timeout=1, read_timeout=1, max_attempts=1
    )
    yield proxy
    proxy.close()


@pytest.fixture
def monitor_headers(settings) -> dict[str, str]:
    """Headers of a monitor holding ``HEALTH_TOKEN``: it sees what each /healthz check found."""
    settings.HEALTH_TOKEN = "monitor-token-for-tests"
    return {"Authorization": "Bearer monitor-token-for-tests"}


def shared_database_url() -> str:
    """DATABASE_URL of the test database, for processes started by a test."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def process_env(transactional_db, isolated_var) -> dict[str, str]:
    """Environment of a product process that shares this test's database and storage."""
    return {
        **os.environ,
        "DATABASE_URL": shared_database_url(),
        "VAR_DIR": str(isolated_var),  # media/ and uploads/ are the test's own folders
        # One deployment's processes share its key (django-q2 signs the tasks they pass on).
        "SECRET_KEY": django_settings.SECRET_KEY,
        "HLS_LADDER": "240p:300k",
        "HLS_SEGMENT_SECONDS": "2",
        "Q_SYNC": "0",
        "Q_CLUSTER_NAME": "",
    }


@pytest.fixture
def start_gunicorn(process_env) -> Iterator[Callable[..., str]]:
    """Start the product's web server as production runs it (gunicorn, gthread) on this test's
    database and folders, with extra settings as environment variables; returns its base URL."""
    started: list[subprocess.Popen] = []

    def start(*, unix_socket: Path | None = None, **env: str) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "unpuzzle.wsgi:application",
                "--bind",
                f"unix:{unix_socket}" if unix_socket else f"127.0.0.1:{port}",
                "--worker-class",
                "gthread",
                "--workers",
                "1",
                "--threads",
                env.pop("WEB_THREADS", "8"),
                "--no-control-socket",
            ],
            cwd=Path(__file__).resolve().parents[1],
            env={**process_env, **env},
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ.get("GUNICORN_TEST_LOG", os.devnull), "ab"),
            start_new_session=True,
        )
        started.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if unix_socket is not None and unix_socket.exists():
                return f"unix:{unix_socket}"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return f"http://127.0.0.1:{port}"
            assert proc.poll() is None, f"gunicorn exited with {proc.returncode}"
            time.sleep(0.1)
        raise AssertionError("gunicorn did not start listening within 60 s")

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture
def clusters_alive(transactional_db) -> None:
    """Both task clusters have just reported, as running ones do (committed: ``/healthz`` reads it from its own threads)."""
    from unpuzzle.workers import cluster_beat, clusters

    for cluster in clusters():
        cluster_beat(cluster=cluster)


@pytest.fixture
def user(db):
    return make_user()


@pytest.fixture
def other_user(db):
    return make_user()


@pytest.fixture
def staff_user(db):
    return make_staff()


@pytest.fixture
def admin_user(db):
    return make_superuser()


@pytest.fixture
def api_client(user) -> APIClient:
    """An API client authenticated as ``user``."""
    client = APIClient()
    client.force_authenticate(user)
    return client


# --- Clips generated once per session with ffmpeg's lavfi sources -----------------------
@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding the generated clips."""
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def landscape_clip(clip_dir: Path) -> Path:
    """320x180 30 fps, 6 s, mono AAC."""
    return clips.make_landscape(clip_dir)


@pytest.fixture(scope="session")
def no_audio_clip(clip_dir: Path) -> Path:
    """320x180, 4 s, no audio track."""
    return clips.make_no_audio(clip_dir)


@pytest.fixture(scope="session")
def rotated_portrait_clip(clip_dir: Path) -> Path:
    """Coded 320x180 with rotate=90: displays 180x320."""
    return clips.make_rotated_portrait(clip_dir)


@pytest.fixture(scope="session")
def native_portrait_clip(clip_dir: Path) -> Path:
    """Coded 180x320, no rotation metadata."""
    return clips.make_native_portrait(clip_dir)


@pytest.fixture(scope="session")
def below_ladder_clip(clip_dir: Path) -> Path:
    """160x90, below the lowest default tier."""
    return clips.make_tiny(clip_dir)


@pytest.fixture(scope="session")
def interlaced_clip(clip_dir: Path) -> Path:
    """320x180 H.264 interlaced, top field first, 25 frames/s, 2 s."""
    return clips.make_interlaced(clip_dir)


@pytest.fixture(scope="session")
def dv_pal_clip(clip_dir: Path) -> Path:
    """720x576 PAL DV in AVI, bottom field first, no field order on the stream, 2 s."""
    return clips.make_dv_pal(clip_dir)


@pytest.fixture(scope="session")
def hlg_clip(clip_dir: Path) -> Path:
    """320x180 HEVC Main 10 tagged HLG / BT.2020, like a phone's HDR clip, 2 s."""
    return clips.make_ten_bit(
        clip_dir / "hlg.mp4", encoder="libx265", primaries="bt2020", transfer="arib-std-b67", matrix="bt2020nc"
    )


@pytest.fixture(scope="session")
def truncated_faststart_clip(clip_dir: Path) -> Path:
    """moov at the front, then cut: passes ffprobe, fails the stream-copy pass."""
    return clips.make_truncated_faststart(clip_dir)


@pytest.fixture(scope="session")
def cut_before_moov_clip(clip_dir: Path) -> Path:
    """moov at the end, cut before it."""
    return clips.make_cut_before_moov(clip_dir)


@pytest.fixture(scope="session")
def not_video_clip(clip_dir: Path) -> Path:
    """Text renamed .mp4."""
    return clips.make_not_video(clip_dir)


@pytest.fixture(scope="session")
def png_clip(clip_dir: Path) -> Path:
    """A PNG renamed .mp4."""
    return clips.make_png_as_mp4(clip_dir)


@pytest.fixture(scope="session")
def audio_only_clip(clip_dir: Path) -> Path:
    """AAC in MP4 without video."""
    return clips.make_audio_only(clip_dir)


@pytest.fixture(scope="session")
def slides_clip(clip_dir: Path) -> Path:
    """320x180 stills changing every 2 s, 6 s, with audio."""
    return clips.make_slides(clip_dir / "slides.mp4", slide_seconds=2.0, slides=3)


@pytest.fixture(scope="session")
def timestamp_bomb_clip(clip_dir: Path) -> Path:
    """1.4 KB MKV whose two frames are 36,000 s apart: it declares 10 h."""
    return clips.make_timestamp_bomb(clip_dir)


@pytest.fixture(scope="session")
def huge_sps_clip(clip_dir: Path) -> Path:
    """1 KB MP4 whose SPS declares 8192x8192 over 160x96 slices."""
    return clips.make_sps_lie(clip_dir / "huge_sps.mp4", width=8192, height=8192)


@pytest.fixture(scope="session")
def lying_sps_clip(clip_dir: Path) -> Path:
    """1 KB MP4 whose SPS declares 1920x1088 (within any size cap) over 160x96 slices."""
    return clips.make_sps_lie(clip_dir / "lying_sps.mp4", width=1920, height=1088)
