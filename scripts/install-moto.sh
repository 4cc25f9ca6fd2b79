#!/usr/bin/env bash
# Installs moto's server (`moto_server`), the local AWS emulator the grace-aws tests run
# against. Idempotent: does nothing when `moto_server` is already there.
#
# Looks where the tests look (grace_testkit::moto): PATH, ~/.local/bin, ~/.pyenv/shims.
# Installs with `python3 -m pip install 'moto[server]'`; where the system Python refuses pip
# (PEP 668, "externally managed"), into a virtual environment under ~/.local/share/grace/moto
# instead. Either way `moto_server` ends up where the tests find it.

set -euo pipefail

say() { printf 'install-moto: %s\n' "$*"; }
fail() { printf 'install-moto: error: %s\n' "$*" >&2; exit 1; }

local_bin="$HOME/.local/bin"
venv="${GRACE_MOTO_VENV:-$HOME/.local/share/grace/moto}"

find_moto() {
    local dir
    if command -v moto_server >/dev/null 2>&1; then
        command -v moto_server
        return 0
    fi
    for dir in "$local_bin" "$HOME/.pyenv/shims"; do
        if [ -x "$dir/moto_server" ]; then
            printf '%s\n' "$dir/moto_server"
            return 0
        fi
    done
    return 1
}

describe() { say "moto_server is at $1"; }

if found=$(find_moto); then
    describe "$found"
    say "already installed, nothing to do"
    exit 0
fi

command -v python3 >/dev/null 2>&1 ||
    fail "python3 is not installed; install Python 3 (e.g. apt-get install -y python3 python3-pip python3-venv) and run this again"

say "moto_server not found; running: python3 -m pip install 'moto[server]'"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if python3 -m pip install 'moto[server]' 2>&1 | tee "$log"; then
    # pip's scripts directory may be off PATH (a user install, a pyenv version): link it
    # where the tests look.
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
    if ! find_moto >/dev/null; then
        for dir in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')" \
            "$(python3 -m site --user-base 2>/dev/null)/bin"; do
            if [ -x "$dir/moto_server" ]; then
                mkdir -p "$local_bin"
                ln -sf "$dir/moto_server" "$local_bin/moto_server"
                say "linked $local_bin/moto_server -> $dir/moto_server"
                break
            fi
        done
    fi
elif grep -q 'externally-managed-environment' "$log"; then
    say "this Python refuses system-wide pip installs (PEP 668); using a virtual environment at $venv"
    python3 -m venv "$venv" ||
        fail "cannot create a virtual environment at $venv (on Debian/Ubuntu: apt-get install -y python3-venv)"
    say "running: $venv/bin/pip install 'moto[server]'"
    "$venv/bin/pip" install 'moto[server]' ||
        fail "pip could not install moto[server] into $venv (see its output above)"
    mkdir -p "$local_bin"
    ln -sf "$venv/bin/moto_server" "$local_bin/moto_server"
    say "linked $local_bin/moto_server -> $venv/bin/moto_server"
else
    python3 -m pip --version >/dev/null 2>&1 ||
        fail "pip is not available for python3 (e.g. apt-get install -y python3-pip, or python3 -m ensurepip)"
    fail "pip could not install moto[server] (see its output above)"
fi

found=$(find_moto) ||
    fail "moto[server] was installed but moto_server is not on PATH, in $local_bin or in ~/.pyenv/shims"
describe "$found"
say "installed"
