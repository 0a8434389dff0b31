"""The DAG knows its files: checkpoints are outputs, analysis settings never retrain, damaged files are noticed,
longer runs get their own directory. Each test works on a copy of one finished run of a one-study config."""

import copy
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, planned_jobs, snakemake, write_config
from hessian_spectra import layout
from hessian_spectra.runs import load_yaml, plan_runs

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
TINY = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
FIGURE = "results/figures/layerhessians/training_eigvals_epochwise_lenet_digits_1.png"

pytestmark = pytest.mark.slow


def one_study_config() -> dict:
    """The tiny config's layerhessians study alone (one LeNet run, 2 epochs)."""
    return {"device": "cpu", "threads": 1, "studies": {"layerhessians": copy.deepcopy(TINY["studies"]["layerhessians"])}}


def the_run(config: dict) -> dict:
    (run,) = plan_runs(config, SCHEMA).values()
    return run


def fingerprint(root: Path) -> dict[str, tuple[int, str]]:
    """mtime and SHA-256 of every checkpoint below ``root``."""
    return {
        str(path.relative_to(root)): (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(root.rglob("checkpoints/*.pt"))
    }


def relink_store(root: Path) -> None:
    """Restore the hard links between published checkpoints and training's store that a copy breaks."""
    for stored in root.rglob(".checkpoint-store/*.pt"):
        published = stored.parent.parent / "checkpoints" / stored.name
        published.unlink()
        os.link(stored, published)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A working directory with the one-study config run to the end."""
    workdir = tmp_path_factory.mktemp("finished")
    config = write_config(workdir / "config.yaml", one_study_config())
    result = snakemake(workdir, "--cores", "2", configfile=config)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.fixture
def workdir(finished, tmp_path) -> Path:
    """A private copy of the finished run (mtimes kept, hard links restored)."""
    copy = tmp_path / "work"
    shutil.copytree(finished, copy, copy_function=shutil.copy2)
    relink_store(copy)
    return copy


def test_changing_the_hessian_subset_never_retrains(workdir):
    config = one_study_config()
    config["studies"]["layerhessians"]["hessian_subset"] = {"per_class": 4}
    path = write_config(workdir / "config.yaml", config)
    before = fingerprint(workdir)
    dry = snakemake(workdir, "-n", configfile=path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "train_" not in dry.stdout and "hessian_subset" in dry.stdout and "layerhessians_spectrum" in dry.stdout
    result = snakemake(workdir, "--cores", "2", configfile=path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert fingerprint(workdir) == before
    assert (workdir / "results/subsets/digits/32px-unit/train-random-pc4-seed0.pt").is_file()


def test_a_deleted_checkpoint_comes_back_equal_and_what_was_built_from_it_stays_valid(workdir):
    """Restored from training's store before the DAG is built: the same bytes, so the figure is up to date."""
    run = the_run(one_study_config())
    checkpoint = workdir / layout.run_files(run["key"]).checkpoint(1)
    original = torch.load(checkpoint, weights_only=True)
    figure_mtime = (workdir / FIGURE).stat().st_mtime_ns
    checkpoint.unlink()
    config = write_config(workdir / "config.yaml", one_study_config())
    result = snakemake(workdir, "--cores", "2", FIGURE, configfile=config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "restored from the run's checkpoint store" in result.stdout + result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr
    regenerated = torch.load(checkpoint, weights_only=True)
    for key, value in original["state_dict"].items():
        assert torch.equal(regenerated["state_dict"][key], value), key
    assert (workdir / FIGURE).stat().st_mtime_ns == figure_mtime


def test_a_lost_middle_epoch_is_retrained_from_the_intact_prefix_and_its_figure_rebuilt(workdir):
    """A checkpoint gone from the store too: the default run retrains epochs 1.. from epoch 0, bit for bit, and
    rebuilds the figures."""
    run = the_run(one_study_config())
    files = layout.run_files(run["key"])
    originals = {e: torch.load(workdir / files.checkpoint(e), weights_only=True) for e in (1, 2)}
    figure_mtime = (workdir / FIGURE).stat().st_mtime_ns
    (workdir / files.checkpoint(1)).unlink()
    (workdir / files.stored(1)).unlink()
    config = write_config(workdir / "config.yaml", one_study_config())
    dry = snakemake(workdir, "-n", FIGURE, configfile=config)
    said = dry.stdout + dry.stderr
    assert f"{files.checkpoint(1)}: checkpoint lost" in said and f"--forcerun {files.checkpoint(1)}" in said
    result = snakemake(workdir, "--cores", "2", configfile=config)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (workdir / layout.log(f"{run['key']}/train")).read_text()
    assert "resuming after epoch 0" in log
    for epoch, original in originals.items():
        again = torch.load(workdir / files.checkpoint(epoch), weights_only=True)
        for key, value in original["state_dict"].items():
            assert torch.equal(again["state_dict"][key], value), (epoch, key)
    assert (workdir / FIGURE).stat().st_mtime_ns > figure_mtime


def truncate(path: Path, workdir: Path) -> str:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    return "truncated or corrupt"


def copy_epoch_0_over_it(path: Path, workdir: Path) -> str:
    """`cp epoch_0000.pt epoch_0001.pt`: a valid checkpoint of the wrong epoch (written into the same inode, so
    training's stored copy, a hard link, holds it too)."""
    shutil.copyfile(path.with_name("epoch_0000.pt"), path)
    key = the_run(one_study_config())["key"]
    return f"holds epoch 0 of run {key}, but its path names epoch 1 of run {key}"


@pytest.mark.parametrize(
    "damaged, damage",
    [("checkpoint", truncate), ("subset", truncate), ("checkpoint", copy_epoch_0_over_it)],
    ids=["truncated-checkpoint", "truncated-subset", "wrong-epoch-checkpoint"],
)
def test_a_damaged_file_is_named_in_one_line_and_what_stays_is_outdated(workdir, damaged, damage):
    """The jobs that read it stop with one line naming it; figures built from it earlier stay as they were, older
    than it, and a dry run plans the failed jobs and the figures again (as the README says); `--forcerun` rebuilds
    it and them."""
    run = the_run(one_study_config())
    if damaged == "checkpoint":
        path = workdir / layout.run_files(run["key"]).checkpoint(1)
    else:
        path = workdir / layout.subset("digits/32px-unit/train-random-pc3-seed0")
    original = path.read_bytes()
    figures = {p: p.stat().st_mtime_ns for p in (workdir / "results" / "figures").rglob("*.png")}
    said = damage(path, workdir)
    config = write_config(workdir / "config.yaml", one_study_config())
    result = snakemake(workdir, "--cores", "2", configfile=config)
    assert result.returncode != 0
    logs = "".join(p.read_text() for p in (workdir / "results" / "logs").rglob("*.log"))
    relative = path.relative_to(workdir)
    assert f"{relative}: " in logs and said in logs and f"--forcerun {relative}" in logs
    assert "Traceback" not in logs
    stayed = {p: mtime for p, mtime in figures.items() if p.is_file()}
    assert stayed and all(p.stat().st_mtime_ns == mtime < path.stat().st_mtime_ns for p, mtime in stayed.items())
    planned = planned_jobs(snakemake(workdir, "-n", configfile=config).stdout)
    assert {"layerhessians_spectrum", "layerhessians_epochwise_figures_5_layers", "layerhessians_match_figure"} <= set(
        planned
    ), planned
    # what the message says to do rebuilds the file and everything made from it
    again = snakemake(workdir, "--cores", "2", "--forcerun", str(relative), configfile=config)
    assert again.returncode == 0, again.stderr[-3000:]
    if damaged == "checkpoint":  # trained again (its history records new wall times): the same weights
        weights = torch.load(io.BytesIO(original), weights_only=True)["state_dict"]
        assert all(torch.equal(torch.load(path, weights_only=True)["state_dict"][k], v) for k, v in weights.items())
    else:
        assert path.read_bytes() == original
    assert all(p.stat().st_mtime_ns > path.stat().st_mtime_ns for p in figures)


def test_forcerun_of_a_checkpoint_republishes_and_deleting_the_run_retrains(workdir):
    """As the README says: `--forcerun` of an intact checkpoint reruns its training job, which trains nothing (the
    store holds every epoch) and rebuilds what was made from it; deleting the run's directory and forcing its
    run.json trains it again, bit for bit (Snakemake alone ignores a deleted file whose products are there)."""
    run = the_run(one_study_config())
    files = layout.run_files(run["key"])
    checkpoint = workdir / files.checkpoint(1)
    originals = {e: torch.load(workdir / files.checkpoint(e), weights_only=True) for e in range(3)}
    figure_mtime = (workdir / FIGURE).stat().st_mtime_ns
    config = write_config(workdir / "config.yaml", one_study_config())
    forced = snakemake(workdir, "--cores", "2", "--forcerun", files.checkpoint(1), configfile=config)
    assert forced.returncode == 0, forced.stderr[-3000:]
    log = (workdir / layout.log(f"{run['key']}/train")).read_text()
    assert "resuming after epoch 2" in log and "epoch 1/2" not in log, "nothing was trained again"
    assert (workdir / FIGURE).stat().st_mtime_ns > figure_mtime
    shutil.rmtree(workdir / layout.run_dir(run["key"]))
    ignored = snakemake(workdir, "-n", configfile=config)
    assert "Nothing to be done" in ignored.stdout + ignored.stderr
    retrained = snakemake(workdir, "--cores", "2", "--forcerun", files.run_json, configfile=config)
    assert retrained.returncode == 0, retrained.stderr[-3000:]
    log = (workdir / layout.log(f"{run['key']}/train")).read_text()
    assert "initial weights saved" in log and "epoch 2/2" in log
    for epoch, original in originals.items():
        again = torch.load(workdir / files.checkpoint(epoch), weights_only=True)
        assert all(torch.equal(again["state_dict"][k], v) for k, v in original["state_dict"].items()), epoch
    assert checkpoint.is_file()


def test_after_kill_9_of_snakemake_unlock_and_rerun_incomplete_finish_the_run(finished, tmp_path):
    """Snakemake and its jobs killed (a lost login session) while training, in a first run: the README's two
    commands, with the killed run's targets (none), finish it; training resumes from its store, bit for bit."""
    run = the_run(one_study_config())
    files = layout.run_files(run["key"])
    originals = {e: torch.load(finished / files.checkpoint(e), weights_only=True) for e in range(3)}
    workdir = tmp_path / "fresh"
    workdir.mkdir()
    config = write_config(workdir / "config.yaml", one_study_config())
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--cores", "2", "--configfile", str(config)]
    snake = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    initial = workdir / files.stored(0)
    deadline = time.monotonic() + 600
    while not initial.is_file() and snake.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert initial.is_file(), "training saved the initial weights"
    os.killpg(snake.pid, signal.SIGKILL)
    snake.wait()
    incomplete = snakemake(workdir, "--cores", "2", configfile=config)
    assert incomplete.returncode != 0 and "--rerun-incomplete" in incomplete.stderr
    locked = snakemake(workdir, "--cores", "2", "--rerun-incomplete", configfile=config)
    assert locked.returncode != 0 and "--unlock" in locked.stderr
    assert snakemake(workdir, "--unlock", configfile=config).returncode == 0
    finished = snakemake(workdir, "--cores", "2", "--rerun-incomplete", configfile=config)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "resuming after epoch" in (workdir / layout.log(f"{run['key']}/train")).read_text()
    for epoch, original in originals.items():
        again = torch.load(workdir / files.checkpoint(epoch), weights_only=True)
        assert all(torch.equal(again["state_dict"][k], v) for k, v in original["state_dict"].items()), epoch


def test_more_epochs_make_a_new_run_and_keep_the_old_one(workdir):
    old = the_run(one_study_config())
    before = fingerprint(workdir)
    config = one_study_config()
    config["studies"]["layerhessians"]["defaults"]["epochs"] = 3
    config["studies"]["layerhessians"]["matching"] = {"peak_epoch": {"lenet/digits": 3}}
    new = the_run(config)
    assert new["key"] == old["key"].replace("-e2-", "-e3-") != old["key"]
    path = write_config(workdir / "config.yaml", config)
    result = snakemake(workdir, "--cores", "2", configfile=path)
    assert result.returncode == 0, result.stderr[-3000:]
    after = fingerprint(workdir)
    assert {k: v for k, v in after.items() if k in before} == before
    assert len(layout.run_files(new["key"]).checkpoints(3)) == 4
    assert all((workdir / p).is_file() for p in layout.run_files(new["key"]).checkpoints(3))
