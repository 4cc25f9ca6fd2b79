#!/usr/bin/env bash
# Installs what the Docker provider's end-to-end tests need: Podman (its Docker-compatible API
# service), runc (the runtime that works in sandboxes where crun cannot handle the cgroup
# layout) and busybox-static (the one binary the test image is built from; no registry is
# reachable, so nothing can be pulled).
#
# Idempotent: does nothing when all three are present. Uses sudo when not run as root.
set -euo pipefail

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
# busybox-static installs /bin/busybox; a dynamically linked busybox would not run in the image.
if ! { [ -x /bin/busybox ] && dpkg -s busybox-static >/dev/null 2>&1; }; then
    missing+=(busybox-static)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-podman: podman, runc and busybox-static are already installed ($(podman --version))"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-podman: error: apt-get not found; install ${missing[*]} with your package manager" >&2
    exit 1
fi

sudo=()
shown=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-podman: error: not root and sudo is not available; run as root: apt-get install -y podman runc busybox-static" >&2
        exit 1
    fi
    sudo=(sudo)
    shown="sudo "
fi

echo "install-podman: missing: ${missing[*]}"
echo "install-podman: running: ${shown}apt-get update"
if ! "${sudo[@]}" apt-get update; then
    echo "install-podman: error: apt-get update failed (is a package mirror reachable?)" >&2
    exit 1
fi
echo "install-podman: running: ${shown}apt-get install -y podman runc busybox-static"
if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y podman runc busybox-static; then
    echo "install-podman: error: apt-get install -y podman runc busybox-static failed" >&2
    exit 1
fi
echo "install-podman: installed $(podman --version)"
