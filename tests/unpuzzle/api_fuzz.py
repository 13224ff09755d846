"""The schemathesis command line the API fuzz test and ``bench/api_fuzz.py`` both run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Every check about what the server answers. Left out: negative_data_rejection and
# positive_data_acceptance (DRF accepts JSON 0/1 for booleans, and tus answers 412, not 400, to a
# missing Tus-Resumable: both deliberate); ignored_auth (OPTIONS and the token endpoint take none).
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
)


def schemathesis_command(
    base_url: str, token: str, *, max_examples: int, phases: str = "examples,fuzzing", max_time_s: int | None = None
) -> list[str]:
    """``phases``: the suite runs examples and fuzzing; the bench adds coverage (boundary values of every
    parameter, ~2,000 requests) and stateful (chains of calls following the schema's links)."""
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{base_url}/api/schema/",
        "--header",
        f"Authorization: Token {token}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(max_examples),
        "--workers",
        "1",
        "--phases",
        phases,
        "--suppress-health-check",
        "all",
    ]
    if max_time_s is not None:
        command += ["--max-time", str(max_time_s)]
    return command


def schemathesis_env(base_env: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base_env is None else base_env)
    env["SCHEMATHESIS_HOOKS"] = "tests.unpuzzle.schemathesis_hooks"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env
