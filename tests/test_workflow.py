"""The workflow as users run it: lint/format, planning the default run, and targeted runs on tiny configs."""

import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import REPO, TINY, planned_jobs, snakemake
from hessian_spectra import layout
from hessian_spectra.runs import load_yaml, plan_runs

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")


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
def test_tiny_run_end_to_end_and_report(tiny_run):
    """Every study's figures from one run of the tiny config, all of them in `snakemake --report`."""
    tmp_path = tiny_run
    dry = snakemake(tmp_path, "-n", "--cores", "2", configfile=TINY)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    figures = sorted((tmp_path / "results" / "figures").rglob("*.*"))
    assert {p.parent.name for p in figures} == {"layerhessians", "large_batch", "sharpest_directions",
                                                  "hessianflow", "init_chain_rule", "findings"}
    assert all(p.stat().st_size > (10_000 if p.suffix == ".png" else 0) for p in figures)
    report = snakemake(tmp_path, "--report", "report.html", configfile=TINY)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    missing = [p.name for p in figures if p.name not in html]
    assert not missing, f"not in the report: {missing}"
    assert "findings.tsv" in html


@pytest.mark.slow
def test_tiny_run_findings_scorecard(tiny_run):
    """findings.tsv: one row per claim of the sources and seed (the tiny config runs init_chain_rule with two seeds,
    the other studies with one), each with a valid verdict, its rule and the numbers behind it."""
    from hessian_spectra.findings import CLAIMS, COLUMNS, SOURCES, VERDICTS

    table = pd.read_csv(tiny_run / layout.findings(), sep="\t", keep_default_na=False)
    assert list(table.columns) == list(COLUMNS)
    seeds = {claim.claim: [0, 1] if claim.study == "init_chain_rule" else [0] for claim in CLAIMS}
    assert table["claim"].tolist() == [claim.claim for claim in CLAIMS for _ in seeds[claim.claim]]
    assert table.groupby("claim", sort=False)["seed"].apply(list).to_dict() == seeds
    assert set(table["verdict"]) <= set(VERDICTS)
    assert (table["source"].astype(str).str.zfill(3) == table["study"].map(SOURCES)).all()
    assert (table["rule"] != "").all() and (table["why"] != "").all()
    # every study ran, so no claim is left at "study not run"
    assert not table["why"].str.contains("study not run").any()


STOCHASTIC = ("trace", "frobenius", "density_")  # quantity prefixes of the estimates drawn from random probes


def _truthy(column: pd.Series) -> pd.Series:
    return column.astype(str).str.lower().eq("true")


@pytest.mark.slow
def test_every_table_of_the_tiny_run_is_honest_about_convergence_and_error(tiny_run):
    """No row claims convergence its relative residual denies; every eigenvalue states its relative residual and
    tolerance; every stochastic estimate states its probes and a standard error (NaN exactly when one probe)."""
    tables = sorted(p for p in (tiny_run / "results" / "tables").rglob("*") if p.suffix in (".tsv", ".csv"))
    assert len(tables) > 10
    flagged = stochastic = 0
    for path in tables:
        table = pd.read_csv(path, sep="," if path.suffix == ".csv" else "\t", keep_default_na=False,
                            na_values=["nan", ""])
        for column in [c for c in table.columns if "converged" in c]:
            relative, tolerance = column.replace("converged", "relative_residual"), "tolerance"
            assert {relative, tolerance} <= set(table.columns), f"{path}: {column} without {relative}, {tolerance}"
            claimed = _truthy(table[column])
            bad = table[claimed & ~(table[relative] <= table[tolerance])]
            assert bad.empty, f"{path}: converged with relative residual above tolerance:\n{bad.head()}"
            flagged += int(claimed.sum())
        if "distance" in table.columns:  # layer-vs-full distances of stochastic densities
            assert "probes" in table.columns and (table["probes"] >= 1).all(), path
        if "quantity" not in table.columns:
            continue
        eigen = table["quantity"].str.contains("eig")
        assert table.loc[eigen, ["relative_residual", "tolerance"]].notna().all().all(), path
        random = table["quantity"].str.startswith(STOCHASTIC)
        if random.any():
            assert {"probes", "stderr"} <= set(table.columns), f"{path}: stochastic rows without probes/stderr"
            rows = table[random]
            assert (rows["probes"] >= 1).all(), path
            assert rows["stderr"].isna().eq(rows["probes"] == 1).all(), f"{path}: stderr NaN iff one probe"
            stochastic += len(rows)
    assert flagged and stochastic, "the tiny run has converged eigenvalues and stochastic estimates to check"
