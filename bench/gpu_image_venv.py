"""Rehearse the GPU machine's offline install here: a throwaway venv that sees only the packages
the GPU image holds.

    PYVER=3.11 bash bench/gpu_wheels.sh /tmp/whl311         # the carried set, for this Python
    python bench/gpu_image_venv.py /tmp/img /tmp/whl311     # the venv, seeing the image's packages
    env -u PYTHONPATH /tmp/img/bin/python bench/gpu_check.py --rehearse --install \\
        --wheels /tmp/whl311 /tmp/gpu-check-img             # install offline, then every step

The venv (this interpreter's Python, no system site-packages) gets one .pth line pointing at a
folder of symbolic links to this environment's copies of the packages that the GPU image lists
(IMAGE_PACKAGES, from the device tool's KINDS.md, read 2026-11-17) and of what their versions here
require: torch, triton, pandas, numpy, transformers and the rest are importable, and what the
wheel folder brings (pydantic, orjson, libcst, plotly, dash ...) is not, as on the GPU machine. What this cannot show: the image's own
versions of those packages, its Python 3.12, and CUDA.
"""

from __future__ import annotations

import re
import sys
import venv
from importlib import metadata
from pathlib import Path

_IMAGE_LIST = """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
    botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
    coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython
    diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic
    frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
    hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
    jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
    linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl
    meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind
    narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti
    nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile
    nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
    nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime
    onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
    orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
    prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
    pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
    pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich
    sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn
    sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
    statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
    tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric
    torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions
    typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
    """
IMAGE_PACKAGES = set(_IMAGE_LIST.split())
OWN_INSTALLER = {"pip", "setuptools", "wheel"}  # the venv has its own: two copies confuse pip


def canonical(name: str) -> str:
    """PEP 503 normalised name: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def image_closure(carried: set[str]) -> dict[str, metadata.Distribution]:
    """Installed image packages and, recursively, what they require here (their versions here
    may need more than the image's own versions do), never a package the wheels must bring."""
    from packaging.requirements import Requirement

    installed = {canonical(d.metadata["Name"]): d for d in metadata.distributions()}
    todo = [n for n in IMAGE_PACKAGES if n in installed and n not in carried]
    chosen: dict[str, metadata.Distribution] = {}
    while todo:
        name = todo.pop()
        if name in chosen or name in OWN_INSTALLER:
            continue
        chosen[name] = installed[name]
        for line in installed[name].requires or []:
            req = Requirement(line)
            dep = canonical(req.name)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if dep in installed and dep not in carried:
                todo.append(dep)
    return chosen


def link_image_packages(farm: Path, carried: set[str]) -> list[str]:
    """Symbolic links in farm to the top-level files of the image's packages (image_closure)."""
    farm.mkdir(parents=True, exist_ok=True)
    for dist in image_closure(carried).values():
        base = Path(str(dist.locate_file("")))
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in sorted(tops):
            if top.endswith(".pth") or top == "__pycache__" or (farm / top).exists():
                continue
            if (base / top).exists():
                (farm / top).symlink_to(base / top)
    return sorted(image_closure(carried))


def carried_names(wheels: Path | None) -> set[str]:
    """What only the wheels bring: names of the folder's wheels that the image does not list."""
    if wheels is None:
        return set()
    return {canonical(w.name.split("-")[0]) for w in wheels.glob("*.whl")} - IMAGE_PACKAGES


def main() -> int:
    """Create the venv named on the command line (replacing it)."""
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    dest = Path(sys.argv[1]).resolve()
    carried = carried_names(Path(sys.argv[2]) if len(sys.argv) == 3 else None)
    venv.create(dest, with_pip=True, clear=True)
    site = (
        dest / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )
    linked = link_image_packages(dest / "image-site", carried)
    (site / "gpu-image.pth").write_text(f"{dest / 'image-site'}\n")
    print(f"{dest}: {len(linked)} image packages linked: {', '.join(linked)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
