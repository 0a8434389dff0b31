"""The paper DAG rehearsed end to end (slow): configs/paper.yaml through `hessian-spectra rehearse`, every rule,
model at full width, dataset, optimizer, schedule and figure of the catalogue, on the CPU.

MNIST, FashionMNIST, SVHN and CIFAR-10 are made in their torchvision download formats (tests/torchvision_files.py),
with at least the paper's largest batch of training images where a study uses it (CIFAR-10: 1,024 plus the
validation hold-out), served on 127.0.0.1 as the config's `data_mirror`, and downloaded, md5-checked and read by
torchvision's own code in the workflow's jobs.

Environment: HESSIAN_SPECTRA_REHEARSAL_DIR runs it in (and keeps) a folder of your own, e.g. for
benchmarks/paper_memory.py and paper_cost.py; HESSIAN_SPECTRA_REHEARSAL_STUDIES (comma-separated) rehearses those
studies only, a shard; HESSIAN_SPECTRA_REHEARSAL_DEVICE=cuda runs it on one GPU (`--resources gpu=1`;
benchmarks/gpu_check.sh does).
"""

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from benchmarks.paper_cost import DATA_SIZES_FILE
from conftest import REPO, planned_jobs, snakemake
from hessian_spectra import layout
from hessian_spectra.cli import main as cli
from hessian_spectra.runs import load_yaml, plan_runs
from test_paper_config import CATALOGUE
from torchvision_files import LocalServer, make_synthetic, md5_site

# images (train, test) per dataset: the largest batch of a paper run on it (CIFAR-10: 1,024; the others: 256) plus the
# rehearsal's validation hold-out (100); 50 test images (hessianflow's Hessian subset is the first 4 of CIFAR-10's)
DATA_SIZES = {"mnist": (356, 50), "fashionmnist": (356, 50), "svhn": (356, 50), "cifar10": (1124, 50)}
TIMEOUT = 1500
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """(workdir, the rehearsal config, its parsed YAML, Snakemake's run): the whole rehearsal, run once."""
    kept = os.environ.get("HESSIAN_SPECTRA_REHEARSAL_DIR")
    workdir = Path(kept).resolve() if kept else tmp_path_factory.mktemp("rehearsal")
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "paper-rehearsal.yaml"
    assert cli(["rehearse", str(REPO / "configs" / "paper.yaml"), "--out", str(configfile),
                "--schema", str(REPO / "workflow" / "schemas" / "config.schema.yaml")]) == 0
    studies = os.environ.get("HESSIAN_SPECTRA_REHEARSAL_STUDIES")
    config = shard(yaml.safe_load(configfile.read_text()), studies.split(",") if studies else None)
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    device = os.environ.get("HESSIAN_SPECTRA_REHEARSAL_DEVICE", "cpu")
    datasets = [make_synthetic(name, seed=i, n_train=n_train, n_test=n_test)
                for i, (name, (n_train, n_test)) in enumerate(DATA_SIZES.items())]
    server = LocalServer()
    try:
        for synthetic in datasets:
            server.serve(synthetic)
        site = md5_site(workdir / "md5-site", datasets)
        (workdir / DATA_SIZES_FILE).write_text(json.dumps(DATA_SIZES))
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
        done = snakemake(workdir, *run_flags(device, f"{server.base}/{{name}}/"), configfile=configfile,
                         timeout=TIMEOUT, env=env)
    finally:
        server.close()
    return workdir, configfile, config, done


def shard(config: dict, studies: list[str] | None) -> dict:
    """The rehearsal with only ``studies`` enabled (None: all of them)."""
    unknown = set(studies or []) - set(config["studies"])
    if unknown:
        raise ValueError(f"HESSIAN_SPECTRA_REHEARSAL_STUDIES: not a study of the rehearsal: {', '.join(sorted(unknown))}")
    for name, study in config["studies"].items():
        study["enabled"] = study["enabled"] and (studies is None or name in studies)
    return config


def run_flags(device: str, mirror: str) -> list[str]:
    """Snakemake's flags for the rehearsal on ``device`` (cuda: one GPU job at a time) with data from ``mirror``."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"HESSIAN_SPECTRA_REHEARSAL_DEVICE: cpu or cuda, got {device!r}")
    flags = ["--cores", "2", "--keep-going", "--config", f"data_mirror={mirror}"]
    return flags + (["device=cuda", "gpus=1", "--resources", "gpu=1"] if device == "cuda" else [])


def test_shards_and_device_flags():
    config = {"studies": {name: {"enabled": True} for name in CATALOGUE}}
    assert [s["enabled"] for s in shard(config, ["hessianflow"])["studies"].values()] == [
        name == "hessianflow" for name in CATALOGUE
    ]
    with pytest.raises(ValueError, match="not a study"):
        shard(config, ["hessianflo"])
    assert run_flags("cuda", "http://m/") == ["--cores", "2", "--keep-going", "--config", "data_mirror=http://m/",
                                              "device=cuda", "gpus=1", "--resources", "gpu=1"]
    assert "--resources" not in run_flags("cpu", "http://m/")


@pytest.mark.slow
def test_the_rehearsal_runs_every_job_of_its_dag(rehearsal):
    workdir, configfile, _, done = rehearsal
    assert done.returncode == 0, done.stderr[-5000:]
    ran = planned_jobs(done.stderr)
    device = os.environ.get("HESSIAN_SPECTRA_REHEARSAL_DEVICE", "cpu")
    plan = snakemake(workdir, "-n", "--forceall", *run_flags(device, "http://127.0.0.1:9/{name}/"), configfile=configfile)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert ran == planned_jobs(plan.stdout), "every job of the rehearsal's DAG ran"
    # up to date: nothing newer than what was made from it (a dry run's mirror differs from the run's, a parameter)
    again = snakemake(workdir, "-n", "--cores", "2", "--rerun-triggers", "mtime", configfile=configfile)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]


@pytest.mark.slow
def test_every_catalogue_figure_and_the_scorecard(rehearsal):
    workdir, _, config, done = rehearsal
    assert done.returncode == 0, done.stderr[-5000:]
    enabled = [study for study in CATALOGUE if config["studies"][study]["enabled"]]
    missing = [
        layout.figure(study, name, config["name"])
        for study in enabled
        for name in CATALOGUE[study]
        if not (workdir / layout.figure(study, name, config["name"])).is_file()
    ]
    assert not missing, f"figures the rehearsal did not make: {missing}"
    findings = (workdir / layout.findings(config["name"])).read_text()
    assert all(f"{study}\t" in findings for study in enabled)


@pytest.mark.slow
def test_datasets_came_through_the_mirror_with_md5s_and_every_job_was_measured(rehearsal):
    workdir, _, config, done = rehearsal
    assert done.returncode == 0, done.stderr[-5000:]
    for name in sorted({run["dataset"] for run in plan_runs(config, load_yaml(SCHEMA)).values()}):
        ready = yaml.safe_load((workdir / "resources" / "data" / name / "READY.json").read_text())
        assert ready["files"] and all(re.fullmatch(r"[0-9a-f]{32}", f["md5"]) for f in ready["files"])
    benchmarks = list((workdir / "results" / "benchmarks").rglob("*.tsv"))
    compute = sum(count for rule, count in planned_jobs(done.stderr).items()
                  if rule.startswith("train_") or rule in BENCHMARKED)
    assert len(benchmarks) == compute


BENCHMARKED = {"layerhessians_spectrum", "large_batch_spectrum", "large_batch_landscape", "sharpest_directions_trajectory",
               "hessianflow_eigen", "hessianflow_final", "init_chain_rule_track"}
