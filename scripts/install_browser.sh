#!/usr/bin/env bash
# Installs what the browser tests need, without ever downloading a browser from the web:
#   - Debian's chromium package (apt), when /usr/bin/chromium is missing;
#   - the Python Playwright client into the project's virtual environment.
# Playwright is pointed at /usr/bin/chromium by tests/test_web_browser.py, so
# `playwright install` is never run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -ne 0 ]; then
        sudo=sudo
    else
        sudo=
    fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium
fi

if ! "$python" -c "import playwright" 2>/dev/null; then
    "$python" -m pip install "playwright>=1.45"
fi

/usr/bin/chromium --version
"$python" -c "from importlib.metadata import version; print('playwright', version('playwright'))"
