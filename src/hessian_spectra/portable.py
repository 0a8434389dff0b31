"""Portable CPU arithmetic: the kernel choices and thread count that a workflow job pins so that its CPU results do
not depend on the processor (torch-free: the Snakefile builds every job's shell prefix from it).

Each variable selects code that the lowest common x86-64 processors run: ATen's kernels without AVX2/AVX-512
dispatch, MKL's conditional-numerical-reproducibility path for SSE2 processors, and oneDNN's SSE4.1 kernels (the
lowest instruction set oneDNN accepts). The thread count is the config's ``threads``, whatever ``--cores`` is.
"""

from __future__ import annotations

import os

PINNED = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
}
THREADS_VARIABLE = "HESSIAN_SPECTRA_THREADS"
TORCH_CAPABILITY = "DEFAULT"  # what torch.backends.cpu.get_cpu_capability() reports under ATEN_CPU_CAPABILITY=default


def job_environment(threads: int) -> dict[str, str]:
    """The environment of a portable job whose compute commands use ``threads`` torch threads."""
    return {**PINNED, THREADS_VARIABLE: str(int(threads))}


def shell_exports(config: dict) -> str:
    """The ``export ...;`` that starts every job's shell command, or nothing when the config sets
    ``portable_cpu: false``."""
    if not config["portable_cpu"]:
        return ""
    pairs = " ".join(f"{name}={value}" for name, value in job_environment(config["threads"]).items())
    return f"export {pairs}; "


def pinned_threads() -> int | None:
    """The thread count a portable job pins (``HESSIAN_SPECTRA_THREADS``), or None outside one."""
    value = os.environ.get(THREADS_VARIABLE)
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{THREADS_VARIABLE}={value!r}: must be a positive integer (the config's `threads`)")
    return int(value)
