"""Shared test helpers: the repository root and a Snakemake runner working in a scratch directory."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from hessian_spectra.checkpoint import FORMAT_VERSION, build_from_spec, save_atomic

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"


def snakemake(
    workdir: Path, *args: str, configfile: Path | None = None, timeout: int = 1500, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run Snakemake on the repository's Snakefile with ``workdir`` as working directory (``env``: variables added
    to this process's environment); past ``timeout`` seconds Snakemake and its jobs are killed."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    command += list(args)
    if configfile is not None:  # last: --configfile takes several values and would swallow targets
        command += ["--configfile", str(configfile)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                          env={**os.environ, **(env or {})}) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # Snakemake and the jobs it started, not Snakemake alone
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.fixture(scope="session")
def tiny_audit(tmp_path_factory) -> Path:
    """Where every job of the tiny run recorded what it read (``hessian_spectra.audit``)."""
    return tmp_path_factory.mktemp("tiny-audit")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_audit) -> Path:
    """A scratch directory where the tiny config has run to the end, once per session: the slow tests that read its
    outputs share it (and must not change them). Every job of that run records its file reads into ``tiny_audit``."""
    from hessian_spectra.audit import VARIABLE

    workdir = tmp_path_factory.mktemp("tiny")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(VARIABLE, str(tiny_audit))
        result = snakemake(workdir, "--cores", "2", configfile=TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """In-process tests use one torch thread: subprocess tests and the other thread share two cores anyway."""
    torch.set_num_threads(1)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def default_config() -> dict:
    """The default run's config as a dict (tests derive variants of it)."""
    return yaml.safe_load((REPO / "config.yaml").read_text())


def saved_model(spec: dict, path: Path, epoch: int) -> nn.Module:
    """A freshly initialised model of ``spec`` (seed torch first), saved at ``path`` as the checkpoint of ``epoch``."""
    model = build_from_spec(spec)
    ckpt = {"format": FORMAT_VERSION, "model": spec, "state_dict": model.state_dict(), "epoch": epoch, "run": {},
            "trainer": {}}
    save_atomic(ckpt, path)
    return model


def make_subset(run: dict, path: Path) -> Path:
    """The Hessian subset of a planned run (``run["subset"]``, a ``runs.subset_spec``), saved at ``path`` as the
    workflow's `subset` rule saves it."""
    from hessian_spectra.data.subset import build_subset, save_subset

    x, y, indices = build_subset(run["subset"])
    save_subset(path, x, y, indices, run["subset"])
    return path


def final_checkpoint(run_dir: Path) -> Path:
    """The last checkpoint of a trained run directory (``checkpoints/epoch_{epochs:04d}.pt``)."""
    from hessian_spectra.layout import RunFiles
    from hessian_spectra.tables import load_run

    files = RunFiles(str(run_dir))
    return Path(files.checkpoint(load_run(files.run_json)["epochs"]))


def run_checkpoints(run_dir: Path) -> list[str]:
    """Every checkpoint of a trained run directory, epoch 0 first (what the walking commands' --checkpoints take)."""
    from hessian_spectra.layout import RunFiles
    from hessian_spectra.tables import load_run

    files = RunFiles(str(run_dir))
    return files.checkpoints(load_run(files.run_json)["epochs"])


def training_jobs(runs) -> dict[str, int]:
    """The training jobs a dry run plans for ``runs``: one rule per epoch count, ``train_{N}_epochs``."""
    from collections import Counter

    return dict(Counter(f"train_{run['epochs']}_epochs" for run in runs))


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from the first job-stats table of a Snakemake dry run (it prints the table twice)."""
    import re

    table = output.split("Job stats:", 1)[-1].split("\ntotal", 1)[0]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}
