"""The workflow through profiles/slurm on a real one-node Slurm cluster (tests/slurm/setup.sh, needs root):
every non-local job runs as a Slurm job, and the outputs equal those of a local run."""

import csv
import math
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, TINY, snakemake
from hessian_spectra import layout
from hessian_spectra.runs import load_yaml, plan_runs

pytestmark = pytest.mark.slurm

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
SCRIPTS = REPO / "tests" / "slurm"
# Fast polling on an idle one-node cluster without an accounting database (squeue instead of sacct), and
# the Slurm logs of successful jobs kept to show what ran inside them.
SLURM_TEST_FLAGS = (
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "1",
    "--slurm-keep-successful-logs",
)
NOT_COMPARED = ("results/logs", "results/benchmarks")
WALL_CLOCK = "seconds"  # per-epoch wall time in training histories: the one value two runs cannot share
SUBMITTED = re.compile(r"^Job \S+ has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.$", re.M)
JOB_HEADER = re.compile(r"^\s*(local)?(?:rule|checkpoint) (\w+):$")
OUTPUT_LINE = re.compile(r"^\s+output: (.+)$")


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running one-node cluster for the module's tests, stopped and removed afterwards even on failure."""
    if os.geteuid() != 0:
        pytest.skip("the Slurm test installs and starts slurmctld/slurmd/munged: run it as root")
    try:
        subprocess.run(["bash", SCRIPTS / "setup.sh"], check=True, timeout=900)
        yield
    finally:
        subprocess.run(["bash", SCRIPTS / "teardown.sh"], timeout=120)


def job_outputs(log: str) -> tuple[set[str], set[str]]:
    """Output files of the (remote, local) jobs a Snakemake log announces."""
    remote: set[str] = set()
    local: set[str] = set()
    current = None
    for line in log.splitlines():
        if header := JOB_HEADER.match(line):
            current = local if header.group(1) else remote
        elif current is not None and (output := OUTPUT_LINE.match(line)):
            current.update(output.group(1).split(", "))
            current = None
    return remote, local


def slurm_states(job_ids: list[str]) -> dict[str, str]:
    """Slurm job id -> state, from slurmctld (finished jobs stay listed for MinJobAge)."""
    listing = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i|%T", f"--jobs={','.join(job_ids)}"],
        capture_output=True, text=True, check=True,
    ).stdout
    return dict(line.split("|") for line in listing.split())


def without_wall_clock(path: Path) -> object:
    """The file's content with every wall-clock field dropped (tables: columns; checkpoints: dict keys)."""
    if path.suffix == ".tsv":
        with open(path, newline="") as handle:
            return [{k: v for k, v in row.items() if k != WALL_CLOCK} for row in csv.DictReader(handle, delimiter="\t")]
    return drop_key(torch.load(path, map_location="cpu", weights_only=True), WALL_CLOCK)


def drop_key(obj: object, key: str) -> object:
    if isinstance(obj, dict):
        return {k: drop_key(v, key) for k, v in obj.items() if k != key}
    if isinstance(obj, (list, tuple)):
        return type(obj)(drop_key(v, key) for v in obj)
    return obj


def identical(a: object, b: object) -> bool:
    """Exact equality of loaded content: tensors bit for bit (dtype, shape, values), NaN equal to NaN, the rest
    with ==."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(identical, a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)  # e.g. ABSA's eigenvalue once the batch ratio is capped
    return type(a) is type(b) and a == b


def same_content(a: Path, b: Path) -> bool:
    """Equal bytes; for checkpoints (whose zip records name the temporary file) and tables, equal content
    apart from wall-clock fields."""
    if a.read_bytes() == b.read_bytes():
        return True
    return a.suffix in (".pt", ".tsv") and identical(without_wall_clock(a), without_wall_clock(b))


def compared_files(root: Path) -> list[Path]:
    """Every output under results/ but logs, benchmarks and TensorBoard events (named by host, time and process: see
    ``event_scalars``)."""
    return sorted(
        path.relative_to(root)
        for path in (root / layout.RESULTS).rglob("*")
        if path.is_file()
        and not any(path.relative_to(root).is_relative_to(skip) for skip in NOT_COMPARED)
        and "tensorboard" not in path.relative_to(root).parts
    )


def event_scalars(root: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Events folder -> tag -> (step, value), read with TensorBoard's reader; wall time left out."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = {}
    for folder in sorted({path.parent for path in root.rglob("*tfevents*")}):
        events = EventAccumulator(str(folder))
        events.Reload()
        scalars[str(folder.relative_to(root))] = {
            tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]
            if tag != f"train/{WALL_CLOCK}"
        }
    return scalars


def test_slurm_run_equals_local_run(slurm_cluster, tiny_run, tmp_path):
    """The tiny config through Slurm equals the session's local run of it (``tiny_run``)."""
    config = yaml.safe_load(TINY.read_text())
    finals = [layout.run_files(key).checkpoint(run["epochs"]) for key, run in plan_runs(config, SCHEMA).items()]
    targets = ["all", *finals]

    cluster = snakemake(
        tmp_path / "slurm", *targets, "--workflow-profile", str(REPO / "profiles" / "slurm"), *SLURM_TEST_FLAGS,
        configfile=TINY,
    )
    assert cluster.returncode == 0, cluster.stderr[-5000:]

    submitted = dict(SUBMITTED.findall(cluster.stderr))
    assert submitted, "no job was submitted to Slurm"
    assert set(slurm_states(list(submitted)).values()) == {"COMPLETED"}
    remote, local_only = job_outputs(cluster.stderr)
    ran_in_slurm = set().union(*(job_outputs(Path(log).read_text())[0] for log in submitted.values()))
    assert remote == ran_in_slurm, "every non-local job, and nothing else, ran inside a Slurm job"
    assert set(finals) <= remote
    assert not local_only & ran_in_slurm

    expected = compared_files(tiny_run)
    assert set(finals) <= {str(path) for path in expected}
    missing = [str(p) for p in expected if not (tmp_path / "slurm" / p).is_file()]
    assert not missing, f"outputs of the local run missing from the Slurm run: {missing}"
    differing = [str(p) for p in expected if not same_content(tiny_run / p, tmp_path / "slurm" / p)]
    assert not differing, f"outputs differing between the local and the Slurm run: {differing}"
    events = event_scalars(tiny_run / layout.RESULTS)
    assert events and event_scalars(tmp_path / "slurm" / layout.RESULTS) == events, "the same TensorBoard scalars"
