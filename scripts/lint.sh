#!/usr/bin/env bash
# Static checks, run by scripts/test.sh before the tests: lint and format (ruff), the dependency
# direction and cycles (import-linter, .importlinter), types (mypy, pyproject.toml).
# `scripts/lint.sh --fix` applies ruff's fixes and formatting instead of checking them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh" requirements-dev.txt

if [ "${1:-}" = "--fix" ]; then
  ruff check --fix .
  ruff format .
  exit 0
fi
ruff check .
ruff format --check .
lint-imports
mypy
