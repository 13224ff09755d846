#!/usr/bin/env bash
# Set up and run the test suite. Uses SQLite unless DATABASE_URL is set. Extra args go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh" requirements-dev.txt

# The web front's tests start Debian's nginx, as scripts/run.sh does.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "test: installing nginx with apt-get"
  apt_install nginx
fi

# The browser tests drive Debian's chromium through Playwright (never `playwright install`).
if [ ! -x /usr/bin/chromium ]; then
  echo "test: installing chromium with apt-get"
  apt_install chromium
fi

if [ -f tests/js/package-lock.json ] && command -v npm >/dev/null 2>&1; then
  if [ ! -d tests/js/node_modules ] || [ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; then
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi

python manage.py makemigrations --check --dry-run >/dev/null || { echo "test: models changed without migrations (run manage.py makemigrations)"; exit 1; }
# Static checks first (ruff, import-linter contracts, mypy): scripts/lint.sh; LINT=0 skips them.
if [ "${LINT:-1}" != 0 ]; then
  bash scripts/lint.sh
fi
exec python -m pytest "$@"
