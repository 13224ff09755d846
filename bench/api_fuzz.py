#!/usr/bin/env python
"""schemathesis over the whole API of a live ``scripts/run.sh`` (nginx, gunicorn, both clusters idle).

Every phase (examples, coverage of every parameter's boundary values, fuzzing, stateful chains),
as a superuser (reaches every operation) and as a user who may upload (the instructor's view:
403s and scoping), with the checks of ``tests/unpuzzle/api_fuzz.py``. Prints, per user: operations
tested, test cases generated, failures (server errors, status codes, content types, headers or
bodies the schema does not allow, wrong answers to undeclared methods) and how long it took.
The suite runs the same command with a small budget (tests/unpuzzle/test_openapi.py).

Usage: .venv/bin/python bench/api_fuzz.py [--max-examples 50]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abuse import product  # noqa: E402

from tests.unpuzzle.api_fuzz import schemathesis_command, schemathesis_env  # noqa: E402

# schemathesis' full report of the last run, per user (bench/.cache is not tracked).
LOGS = ROOT / "bench" / ".cache" / "api_fuzz"

MAKE_TOKENS = (
    "from tests.factories import make_superuser, make_user, make_video\n"
    "from unpuzzle.tokens import api_token_create\n"
    "root = make_superuser(username='fuzz-root')\n"
    "make_video(owner=root, title='A lecture')\n"
    "print('root', api_token_create(owner=root, name='fuzz')[1])\n"
    "print('uploader', api_token_create(owner=make_user(username='fuzz-uploader'), name='fuzz')[1])\n"
)


def run(base: str, token: str, max_examples: int, workdir: Path, who: str) -> dict:
    started = time.monotonic()
    result = subprocess.run(
        schemathesis_command(base, token, max_examples=max_examples, phases="examples,coverage,fuzzing,stateful"),
        env=schemathesis_env(),
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    out = result.stdout
    tested = re.search(r"Tested: (\d+)", out)
    cases = re.search(r"(\d+) generated", out)
    failures = re.search(r"(\d+) found (\d+) unique failures", out)
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / f"schemathesis-{who}.log").write_text(out)
    return {
        "exit": result.returncode,
        "operations": int(tested[1]) if tested else 0,
        "cases": int(cases[1]) if cases else 0,
        "failures": int(failures[2]) if failures else 0,
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="api-fuzz-") as tmp:
        workdir = Path(tmp)
        with product(workdir, front="nginx", threads=8, transcode=False) as p:
            tokens = dict(line.split() for line in p.manage(MAKE_TOKENS).splitlines() if line.count(" ") == 1)
            status = 0
            for _ in range(30):
                status = requests.get(f"{p.base}/api/schema/", timeout=60).status_code
                if status == 200:
                    break
                time.sleep(2)
            else:
                p.log.flush()
                web = [line for line in Path(p.log.name).read_text().splitlines() if "django-q" not in line]
                sys.exit(f"api_fuzz: /api/schema/ answered {status}:\n" + "\n".join(web[-40:]))
            print(f"api_fuzz: {p.base}, max examples {args.max_examples}, phases examples+coverage+fuzzing+stateful")
            failed = False
            for who in ("root", "uploader"):
                figures = run(p.base, tokens[who], args.max_examples, workdir, who)
                print(
                    f"  {who:9s} operations {figures['operations']:3d}  cases {figures['cases']:6d}  "
                    f"failures {figures['failures']:3d}  exit {figures['exit']}  {figures['seconds']:.0f} s"
                )
                if figures["exit"]:
                    failed = True
                    print(f"    report: {LOGS / f'schemathesis-{who}.log'}")
            p.log.flush()
            LOGS.mkdir(parents=True, exist_ok=True)
            (LOGS / "product.log").write_bytes(Path(p.log.name).read_bytes())
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
