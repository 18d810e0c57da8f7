#!/usr/bin/env bash
# Download the wheels the GPU machine lacks, for its CPython 3.12 on manylinux x86_64, into .whl/
# (git-ignored), so that bench/gpu_check.py can install dsprof there with no network.
#
#   bash bench/gpu_wheels.sh                      # -> .whl/: what the GPU image lacks
#   bash bench/gpu_wheels.sh --with-transformers  # also transformers and its tokenizers etc.
#   PYVER=3.11 bash bench/gpu_wheels.sh /tmp/whl311   # the same set for another Python (rehearsal)
#
# The GPU image (the device tool's KINDS.md) already holds torch, triton, numpy, pandas, pyarrow,
# psutil, rich, click, nvidia-ml-py, jinja2, transformers, tokenizers, safetensors,
# huggingface-hub and regex. What dsprof needs beyond them is `bench/gpu_check.py --carried`
# (pydantic, orjson, libcst, plotly, dash; jinja2 and setuptools, small, for a build of dsprof
# without index). Each is pinned to the version installed here, where the tests pass; their
# dependencies resolve for the target. Wheels of packages the image has and that are large
# (numpy, torch, CUDA libraries, pandas, pyarrow) are removed again: a device call carries 64 MiB
# in all, the working tree included. At the end it resolves the carried set from the folder
# alone, offline, for the target Python (a dry run: nothing is installed), and prints the size.
set -euo pipefail
cd "$(dirname "$0")/.."

with_transformers=0
dest=.whl
for arg in "$@"; do
  case "$arg" in
    --with-transformers) with_transformers=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) dest=$arg ;;
  esac
done
pyver=${PYVER:-3.12}
py=${PYTHON:-python}
abi="cp${pyver/./}"

names=$("$py" bench/gpu_check.py --carried)
if [ "$with_transformers" = 1 ]; then
  names="$names $("$py" bench/gpu_check.py --carried-transformers)"
fi
# pin each to the version installed here (unpinned when it is not installed here)
reqs=$("$py" - $names <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
out = []
for name in sys.argv[1:]:
    try:
        out.append(f"{name}=={version(name)}")
    except PackageNotFoundError:
        out.append(name)
print(" ".join(out))
EOF
)
platforms=()
for p in manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_24_x86_64 manylinux_2_27_x86_64 \
         manylinux_2_28_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64; do
  platforms+=(--platform "$p")
done
target=(--only-binary=:all: --python-version "$pyver" --implementation cp --abi "$abi" "${platforms[@]}")

mkdir -p "$dest"
rm -f "$dest"/*.whl
echo "downloading for CPython $pyver manylinux x86_64 into $dest: $reqs" >&2
# shellcheck disable=SC2086  # $reqs is a list of requirement words
"$py" -m pip download -q --disable-pip-version-check "${target[@]}" -d "$dest" $reqs
# large packages the GPU image already has (their versions there satisfy dsprof's requirements)
for big in numpy torch triton pandas pyarrow 'nvidia_*' sympy networkx; do
  rm -f "$dest"/${big}-*.whl
done

echo "checking that the carried set resolves from $dest alone (dry run, no index)" >&2
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
# pip's own configuration (find-links, extra indexes of this machine) is set aside for the check
# shellcheck disable=SC2086
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
  "$py" -m pip install -q --disable-pip-version-check --dry-run --ignore-installed --no-index \
  --find-links "$dest" "${target[@]}" --target "$check" $("$py" bench/gpu_check.py --carried)
ls -1 "$dest"
du -cb "$dest"/*.whl | tail -1 | awk '{printf "%.1f MiB in %s\n", $1 / 1048576, "'"$dest"'"}'
