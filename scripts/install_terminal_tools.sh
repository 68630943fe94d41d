#!/usr/bin/env bash
# Installs what the terminal tests (tests/test_chat_terminal.py) need: Debian's tmux package,
# which gives `rag chat` a real pseudo-terminal that the tests type into and read back.
# Without tmux those tests skip; nothing is downloaded from outside the package manager.
set -euo pipefail

if ! command -v tmux >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        sudo=sudo
    else
        sudo=
    fi
    if ! { $sudo apt-get update && DEBIAN_FRONTEND=noninteractive \
            $sudo apt-get install -y --no-install-recommends tmux; }; then
        echo "install_terminal_tools.sh: could not install tmux; the terminal tests will skip" >&2
        exit 0
    fi
fi

tmux -V
