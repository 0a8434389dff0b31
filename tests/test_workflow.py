"""The workflow as users run it: planning the default run, and targeted runs on tiny configs."""

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, TINY, planned_jobs, snakemake
from hessian_spectra import audit, job_settings, layout
from hessian_spectra.portable import TORCH_CAPABILITY, job_environment
from hessian_spectra.runs import load_yaml, plan_runs, with_defaults

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")


def train_as_one(jobs: dict[str, int]) -> dict[str, int]:
    """The per-epoch-count training rules (train_N_epochs) counted as `train`."""
    merged: dict[str, int] = {}
    for rule, count in jobs.items():
        rule = "train" if re.fullmatch(r"train_\d+_epochs", rule) else rule
        merged[rule] = merged.get(rule, 0) + count
    return merged


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


def recorded_jobs(workdir) -> dict[str, dict]:
    """Log file -> the rule, outputs and inputs of every job of the tiny run, as Snakemake recorded them when the
    job ran (``--detailed-summary``, from its metadata)."""
    result = snakemake(workdir, "--detailed-summary", configfile=TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("output_file\tdate\trule\tlog-file(s)\t"))
    jobs: dict[str, dict] = {}
    for line in lines[start + 1 :]:
        output, _date, rule, logs, inputs, *_ = line.split("\t")
        job = jobs.setdefault(logs, {"rule": rule, "outputs": set(), "inputs": set(inputs.split(",")) - {"-"}})
        job["outputs"].add(output)
    return jobs


def undeclared_reads(record: dict, job: dict, workdir: Path) -> list[str]:
    """Files inside ``workdir`` that a job's process opened for reading that are neither its declared inputs nor
    its own outputs (a file, or one inside an output folder or a walking job's resume folder) or log."""
    root = workdir.resolve()
    own = [root / path for path in job["outputs"]] + [root / layout.resume_dir(path) for path in job["outputs"]]
    undeclared = []
    for path, mode, flags in record["opened"]:
        path = Path(path).resolve()
        if not audit.is_read(mode, flags) or not path.is_relative_to(root) or path.is_dir():
            continue
        relative = path.relative_to(root).as_posix()
        if relative in job["inputs"] or any(path == out or path.is_relative_to(out) for out in own):
            continue
        undeclared.append(relative)
    return sorted(set(undeclared))


@pytest.mark.slow
def test_every_job_of_the_tiny_run_reads_only_its_declared_inputs(tiny_run, tiny_audit):
    """Proved by what each job's process opened (an audit hook in every job), not by reading the code."""
    jobs = recorded_jobs(tiny_run)
    records = audit.load_records(tiny_audit)
    logs = [Path(record["stdout"]).resolve().relative_to(tiny_run.resolve()).as_posix() for record in records]
    assert sorted(logs) == sorted(jobs), "one record per job, each job's output going to its log"
    undeclared = {
        f"{jobs[log]['rule']} ({log})": reads
        for log, record in zip(logs, records)
        if (reads := undeclared_reads(record, jobs[log], tiny_run))
    }
    assert not undeclared, f"jobs read files they do not declare: {undeclared}"
    assert {job["rule"] for job in jobs.values()} >= {"findings", "hessian_subset", "layerhessians_spectrum"}


@pytest.mark.slow
def test_every_job_of_the_tiny_run_pins_its_cpu_kernels_and_threads(tiny_run, tiny_audit):
    """ATen's, MKL's and oneDNN's kernel choices and the thread count, as each job's process saw them."""
    threads = with_defaults(yaml.safe_load(TINY.read_text()), SCHEMA)["threads"]
    records = audit.load_records(tiny_audit)
    assert records
    for record in records:
        record["flags"] = job_settings.expand(record["argv"])
        assert record["environment"] == {**record["environment"], **job_environment(threads)}, record["argv"]
        if record["torch"] is not None:
            assert record["torch"]["cpu_capability"] == TORCH_CAPABILITY, record["argv"]
            assert record["torch"]["threads"] == (threads if "--threads" in record["flags"] else 1), record["argv"]
    computed = [record for record in records if record["torch"] is not None and "--threads" in record["flags"]]
    assert len(computed) > 10, "training and curvature jobs ran with torch"


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
    """findings.tsv: one row per claim of the sources and seed, and with several seeds one on their means (the tiny
    config runs init_chain_rule with two seeds, the other studies with one), each with a valid verdict, its rule and
    the numbers behind it."""
    from hessian_spectra.findings import COLUMNS, VERDICTS
    from hessian_spectra.studies import built_in

    CLAIMS = [claim for study in built_in() for claim in study.claims]
    SOURCES = {study.name: study.source for study in built_in()}

    table = pd.read_csv(tiny_run / layout.findings(), sep="\t", keep_default_na=False, dtype={"seed": str})
    assert list(table.columns) == list(COLUMNS)
    seeds = {claim.claim: ["0", "1", "all"] if claim.study == "init_chain_rule" else ["0"] for claim in CLAIMS}
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
            assert table["distance_stderr"].isna().eq(table["probes"] == 1).all(), f"{path}: error NaN iff one probe"
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
