"""The benchmark harness at its smoke size: every section is written, the engine's top-5 eigenvalues agree with
the float64 reference, and the default run's benchmark files are read by rule (correctness, not time)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
HEADINGS = (
    "## Targets",
    "## Checkpoints",
    "## 1. Product cost",
    "## 2. Top-5 eigenvalues at equal accuracy",
    "## 3. Spectral density",
    "## 4. Scaling",
    "## 5. The default run",
    "## Peer patches",
)
BENCHMARK_TSV = (
    "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    "7.87\t0:00:07\t839.90\t3691.27\t809.14\t822.95\t0.77\t4.07\t91.78\t7.71\n"
)
RUN_DIR = "layerhessians/runs/lenet/digits/bs32/seed0/sgd-lr0.01-m0.9-wd0"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("benchmarks")
    bench = tmp / "results" / "benchmarks" / RUN_DIR
    bench.mkdir(parents=True)
    (bench / "train.tsv").write_text(BENCHMARK_TSV)
    out = tmp / "RESULTS.md"
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "run.py"),
        "--smoke",
        "--threads",
        "1",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp / "cache"),
        "--results",
        str(tmp / "results"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-4000:]
    text = out.read_text()
    assert done.stdout.strip() == text.strip()
    return text


def _section(report: str, heading: str) -> str:
    start = report.index(heading)
    end = report.find("\n## ", start + 1)
    return report[start : end if end >= 0 else None]


def _rows(section: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| ---")
    ]


def test_every_section_and_the_run_circumstances_are_written(report):
    positions = [report.index(heading) for heading in HEADINGS]
    assert positions == sorted(positions)
    for label in ("| machine |", "| torch threads | 1 |", "| torch | ", "| date (UTC) |", "| size | smoke |"):
        assert label in report


def test_every_target_has_a_verdict(report):
    rows = _rows(_section(report, "## Targets"))[1:]
    names = " ".join(row[0] for row in rows)
    for kind in (
        "single-probe product",
        "batched probes",
        "top-5 speed-up vs PyHessian",
        "top-5 speed-up vs curvlinops",
        "top-5 speed-up vs hessian-eigenthings",
        "SLQ overhead",
        "log-log slope",
    ):
        assert kind in names
    assert all(row[3] == "met" or row[3].startswith(("missed by", "not measured")) for row in rows)


def test_engine_top5_matches_the_converged_reference(report):
    section = _section(report, "## 2. Top-5")
    assert "reference converged" in section
    values = {row[1]: np.array([float(v) for v in row[-1].split(",")]) for row in _rows(section)[1:]}
    reference = values["float64 reference"]
    assert len(reference) == 5 and np.all(np.diff(reference) <= 0)
    for method in ("this engine", "this engine, 8 coupled starts"):
        np.testing.assert_allclose(values[method], reference, rtol=1e-3)


def test_default_run_times_are_read_by_rule(report):
    rows = {row[0]: row for row in _rows(_section(report, "## 5. The default run"))}
    assert rows["train"][1:3] == ["1", "7.9"]
    assert "import torch, torchvision" in rows
