"""Portable CPU bits: what a workflow job exports, that torch honours each pinned variable, and that the pinned
thread count wins over a job's --threads (which Snakemake lowers to --cores)."""

import json
import os
import platform
import subprocess
import sys

import pytest

from hessian_spectra.portable import PINNED, THREADS_VARIABLE, TORCH_CAPABILITY, job_environment, shell_exports

KERNELS = """
import json, torch, torch.nn.functional as F
x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)
F.conv2d(x, w)
torch.randn(64, 64) @ torch.randn(64, 64)
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "mkl": torch.backends.mkl.is_available(),
                  "onednn": torch.backends.mkldnn.is_available()}))
"""


def test_a_job_exports_the_pinned_variables_unless_the_config_opts_out():
    assert shell_exports({"portable_cpu": True, "threads": 4}) == (
        "export ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE ONEDNN_MAX_CPU_ISA=SSE41 HESSIAN_SPECTRA_THREADS=4; "
    )
    assert shell_exports({"portable_cpu": False, "threads": 4}) == ""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the pinned values are x86-64's")
def test_torch_honours_every_pinned_variable():
    """ATen reports its capability; MKL and oneDNN say which code path they took in their verbose output."""
    environment = {**job_environment(1), "MKL_VERBOSE": "1", "ONEDNN_VERBOSE": "1"}
    result = subprocess.run([sys.executable, "-c", KERNELS], capture_output=True, text=True, timeout=300,
                            env={**_clean_environment(), **environment})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    found = json.loads(lines[-1])
    assert found == {"capability": TORCH_CAPABILITY, "mkl": True, "onednn": True}
    assert any(line.startswith("MKL_VERBOSE SGEMM") and "CNR:COMPATIBLE" in line for line in lines)
    assert "onednn_verbose,v1,info,cpu,isa:Intel SSE4.1" in lines
    assert any(",primitive,exec,cpu,convolution," in line for line in lines), "convolutions go through oneDNN"


def _clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in (*PINNED, THREADS_VARIABLE)}


def test_the_pinned_thread_count_wins_over_threads():
    code = (
        "import argparse, torch; from hessian_spectra.runtime import add_runtime_arguments, setup_runtime; "
        "p = argparse.ArgumentParser(); add_runtime_arguments(p); setup_runtime(p.parse_args(['--threads', '2'])); "
        "print(torch.get_num_threads())"
    )
    for pinned, expected in (("3", "3"), (None, "2")):
        environment = _clean_environment() | ({THREADS_VARIABLE: pinned} if pinned else {})
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                                timeout=300)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [expected]


def test_a_malformed_thread_count_is_named():
    code = "from hessian_spectra.portable import pinned_threads; pinned_threads()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=_clean_environment() | {THREADS_VARIABLE: "two"})
    assert f"{THREADS_VARIABLE}='two': must be a positive integer" in result.stderr
