"""The workflow as users run it: lint/format, planning the default run, and targeted runs on tiny configs."""

import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, planned_jobs, snakemake
from hessian_spectra import layout
from hessian_spectra.runs import load_yaml, plan_runs

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
TINY = REPO / "tests" / "configs" / "tiny.yaml"


def train_as_one(jobs: dict[str, int]) -> dict[str, int]:
    """The per-epoch-count training rules (train_N_epochs) counted as `train`."""
    merged: dict[str, int] = {}
    for rule, count in jobs.items():
        rule = "train" if re.fullmatch(r"train_\d+_epochs", rule) else rule
        merged[rule] = merged.get(rule, 0) + count
    return merged


def test_lint_is_clean(tmp_path):
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_snakefmt_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_default_run_is_planned(tmp_path):
    result = snakemake(tmp_path, "-n", configfile=REPO / "config.yaml")
    assert result.returncode == 0, result.stderr
    jobs = train_as_one(planned_jobs(result.stdout))
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert jobs["train"] == len(plan_runs(config, SCHEMA))


@pytest.mark.slow
def test_one_final_checkpoint_trains_only_that_run(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    runs = plan_runs(config, SCHEMA)
    target_key = next(key for key in runs if key.startswith("large_batch/"))
    target = layout.run_files(target_key).checkpoint(runs[target_key]["epochs"])
    result = snakemake(tmp_path, target, "--cores", "2", configfile=TINY)
    assert result.returncode == 0, result.stderr
    assert train_as_one(planned_jobs(result.stderr)) == {"train": 1}
    assert (tmp_path / target).is_file()
    trained = sorted(p.parent.relative_to(tmp_path / "results") for p in (tmp_path / "results").rglob("run.json"))
    assert [str(p) for p in trained] == [target_key]
    # asking again does nothing
    again = snakemake(tmp_path, target, "--cores", "2", configfile=TINY)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_tiny_run_end_to_end_and_report(tmp_path):
    """Every study's figures from one run of the tiny config, all of them in `snakemake --report`."""
    result = snakemake(tmp_path, "--cores", "2", configfile=TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    dry = snakemake(tmp_path, "-n", "--cores", "2", configfile=TINY)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    figures = sorted((tmp_path / "results" / "figures").rglob("*.*"))
    assert {p.parent.name for p in figures} == {"layerhessians", "large_batch", "sharpest_directions",
                                                  "hessianflow", "init_chain_rule"}
    assert all(p.stat().st_size > (10_000 if p.suffix == ".png" else 0) for p in figures)
    report = snakemake(tmp_path, "--report", "report.html", configfile=TINY)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    missing = [p.name for p in figures if p.name not in html]
    assert not missing, f"not in the report: {missing}"
