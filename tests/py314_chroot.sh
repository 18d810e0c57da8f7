#!/usr/bin/env bash
# A real CPython 3.14 with torch on a Debian 12 machine (root), for tests/test_live_inject.py:
# Debian sid's python3.14 in a chroot (it needs a newer glibc than bookworm's), a venv in it
# with dsprof's dependencies from PyPI (torch's cp314 wheel there is the CUDA build: ~3.5 GB
# with its nvidia-* wheels; it runs on the CPU), and DIR/python, which runs that interpreter
# inside the chroot in the caller's directory and environment, with /proc, /dev, /tmp and the
# directories in $PY314_BIND (default: /work) bind-mounted at the same paths.
#
#   bash tests/py314_chroot.sh /opt/dsprof-py314
#   DSPROF_PYTHON314=/opt/dsprof-py314/python python -m pytest tests/test_live_inject.py
#
# Measured on the project's machine (2026-12-07, load 6-7): ~6 min in all, 5.6 GB.
# The wrapper leaves DIR/proc, DIR/dev, DIR/tmp and DIR/work mounted: the host's own directories.
# To remove DIR, unmount them first (umount DIR/work DIR/tmp DIR/dev DIR/proc), then
# rm -rf --one-file-system DIR: a plain rm -rf of a mounted DIR deletes the host's /work and /tmp.
set -euo pipefail
DIR=$(realpath -m "${1:-/opt/dsprof-py314}")
MIRROR=${MIRROR:-http://deb.debian.org/debian}
REPO=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$DIR/usr/bin/python3.14" ]; then
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
    debootstrap --variant=minbase --include=python3.14,python3.14-venv,ca-certificates \
        sid "$DIR" "$MIRROR"
fi
# the host's certificates (a proxy's CA included) and name servers, for pip inside
cp /etc/ssl/certs/ca-certificates.crt "$DIR/etc/ssl/certs/ca-certificates.crt"
cp /etc/resolv.conf "$DIR/etc/resolv.conf"
cat > "$DIR/python" <<'WRAPPER'
#!/bin/sh
# the chroot's Python 3.14 (the directory of this file), in the caller's directory and environment
root=$(dirname "$(readlink -f "$0")")
for d in /proc /dev /tmp ${PY314_BIND:-/work}; do
    [ -d "$d" ] || continue
    mkdir -p "$root$d"
    mountpoint -q "$root$d" || mount --bind "$d" "$root$d"
done
exec chroot "$root" /bin/sh -c 'cd "$1" && shift && exec /opt/venv/bin/python "$@"' sh "$PWD" "$@"
WRAPPER
chmod +x "$DIR/python"
# dsprof's dependencies (and the serve/examples extras), read from its pyproject.toml
deps=$(python3 -c '
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = p["optional-dependencies"]
print(" ".join(p["dependencies"] + extras["serve"] + extras["examples"]))' "$REPO/pyproject.toml")
chroot "$DIR" /bin/sh -c "[ -x /opt/venv/bin/python ] || python3.14 -m venv /opt/venv"
# shellcheck disable=SC2086 # one word per requirement
env -u PIP_FIND_LINKS chroot "$DIR" /opt/venv/bin/pip install --progress-bar off -q torch==2.13.0 $deps
"$DIR/python" -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, hasattr(sys, "remote_exec"))'
