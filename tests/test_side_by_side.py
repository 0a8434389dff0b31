"""benchmarks/side_by_side.py at a small size: every section is written, and this library's top-5 agree with the
float64 reference, in order and converged (correctness of the harness, not its times)."""

import re
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_side_by_side_smoke(tmp_path):
    out = tmp_path / "SIDE_BY_SIDE.md"
    command = [sys.executable, str(REPO / "benchmarks" / "side_by_side.py"), "--samples", "32", "--rounds", "1",
               "--reference-probes", "50", "--threads", "1", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    text = out.read_text()
    for heading in ("## 1. The defaults of `Hessian`, measured", "## 2. The three calls side by side",
                    "### Top-5 eigenvalues", "### Trace", "### Density"):
        assert heading in text, heading
    ours = re.search(r"^\| this library \| ([^|]+) \| True \| ([0-9.e+-]+) \|", text, flags=re.M)
    assert ours and float(ours.group(2)) < 1e-3, text
    assert "| PyHessian 0.1 |" in text and "load average" in text
