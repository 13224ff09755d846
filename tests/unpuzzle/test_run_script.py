"""scripts/run.sh as an operator runs it: the product answers through its nginx front whatever
folder the deployment's VAR_DIR is in."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_api_answers_through_nginx_when_var_dir_is_in_a_private_folder(tmp_path):
    # A private parent (0700, as mkdtemp and TemporaryDirectory make them): nginx's workers run as
    # another user when nginx is started as root. Found by bench/api_fuzz.py: every request was 502.
    # A short path, so run.sh keeps the socket in VAR_DIR (long ones move to a folder of their own).
    private = Path(tempfile.mkdtemp(prefix="unpuzzle-run-"))
    shared_tmp_mode = Path(tempfile.gettempdir()).stat().st_mode
    port = free_port()
    env = {
        **os.environ,
        "VAR_DIR": str(private / "var"),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WEB_FRONT": "nginx",
        "TRANSCODE_WORKERS": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
    }
    env.pop("DATABASE_URL", None)  # its own SQLite in VAR_DIR
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen(
        ["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        status = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(requests.RequestException):
                status = requests.get(f"http://127.0.0.1:{port}/api/v1/", timeout=5).status_code
                if status == 200:
                    break
            time.sleep(0.5)
        assert status == 200, (status, (tmp_path / "run.log").read_text()[-3000:])
        # A body larger than nginx's buffer is written to its temp folder first (was a 500 from
        # nginx: its workers could not write below the private folder).
        large = requests.post(
            f"http://127.0.0.1:{port}/api/v1/auth/token/", json={"username": "x" * 70_000, "password": "y"}, timeout=10
        )
        assert large.status_code == 400, large.text[:300]
        # The socket went to a fresh folder in the temp dir; the shared temp dir kept its mode.
        assert Path(tempfile.gettempdir()).stat().st_mode == shared_tmp_mode
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(private, ignore_errors=True)
