"""`dsprof env`: each collector's availability on this machine, with the reason when it is off."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Availability:
    """One line of `dsprof env`."""

    name: str
    ok: bool
    detail: str


def check_all() -> list[Availability]:
    """Probe every collector and fact source without changing anything."""
    import platform

    from dsprof.collectors import environment

    env = environment.collect_environment()
    rows = [
        Availability(
            "python", True, f"{platform.python_version()} ({platform.python_implementation()})"
        ),
        Availability(
            "cpu",
            True,
            f"{env.cpu_model}; {env.cpu_count_logical} logical / {env.cpu_count_physical} physical, "
            f"{env.usable_cores} usable by this process",
        ),
    ]
    # the sampled collectors of dsprof.collectors.registry, each as it says
    from dsprof.collectors.registry import SAMPLED

    for kind in SAMPLED:
        ok, reason = kind.available()
        label = getattr(kind, "label", kind.name)
        rows.append(Availability(label, ok, kind.describe() if ok else reason))
    try:
        import torch

        rows.append(
            Availability(
                "torch", True, f"{torch.__version__}, {torch.get_num_threads()} intra-op threads"
            )
        )
        prof_ok = True
        cuda = torch.cuda.is_available()
        rows.append(
            Availability(
                "torch.profiler",
                prof_ok,
                "CPU activity"
                + (" + CUDA activity" if cuda else " (CUDA activity: no CUDA device)"),
            )
        )
        rows.append(
            Availability(
                "cuda_memory",
                cuda,
                f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} device(s)"
                if cuda
                else "torch.cuda.is_available() is False (no CUDA GPU or a CPU build of torch)",
            )
        )
    except ImportError as e:
        rows.append(Availability("torch", False, f"cannot import torch: {e}"))
    try:
        import triton

        rows.append(
            Availability(
                "triton", True, f"{triton.__version__} (kernels; on CPU under TRITON_INTERPRET=1)"
            )
        )
    except ImportError:
        rows.append(
            Availability(
                "triton",
                False,
                "not installed (pip install triton): fused kernels use the torch reference",
            )
        )
    return rows
