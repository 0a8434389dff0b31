"""Adding a study touches no project file: the toy study of tests/toy_study/ (a module and its rule file, named by
a config's `study_modules`) runs through the DAG, the scorecard and the report like a built-in one."""

import pandas as pd
import pytest

from conftest import REPO, snakemake, write_config
from hessian_spectra import layout, report_pages

TOY = REPO / "tests" / "toy_study"
PROJECT = [REPO / "Snakefile", *(REPO / "src").rglob("*.py"), *(REPO / "workflow").rglob("*.*"),
           *(REPO / "configs").rglob("*.yaml"), REPO / "config.yaml"]


def toy_config() -> dict:
    """Only the toy study: one tiny mlp on the built-in digits, trained for one short epoch."""
    return {"study_modules": [str(TOY / "toy_study.py")],
            "studies": {"toy": {"trace_probes": 8, "runs": [
                {"model": "mlp", "model_options": {"hidden": [16]}, "dataset": "digits", "image_size": 8,
                 "batch_size": 32, "epochs": 1, "steps_per_epoch": 5, "lr": 0.05}]}}}


def test_no_project_file_knows_the_toy_study():
    assert not [path for path in PROJECT if "toy" in path.read_text(errors="replace")]
    assert sorted(path.name for path in TOY.iterdir() if path.is_file()) == ["toy_study.py", "toy_study.smk"]


def test_an_unknown_study_is_refused_with_the_known_ones(tmp_path):
    config = toy_config()
    config.pop("study_modules")
    result = snakemake(tmp_path, "-n", configfile=write_config(tmp_path / "toy.yaml", config))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "invalid config: studies: " in output and "'toy' was unexpected" in output
    assert "allowed keys: hessianflow, init_chain_rule, large_batch, layerhessians" in output


@pytest.mark.slow
def test_the_toy_study_runs_into_the_dag_the_scorecard_and_the_report(tmp_path):
    configfile = write_config(tmp_path / "toy.yaml", toy_config())
    dry = snakemake(tmp_path, "-n", "--quiet", "rules", configfile=configfile)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    assert {"toy_final", "toy_table", "toy_figure", "findings"} <= set(dry.stdout.split())
    result = snakemake(tmp_path, "--cores", "2", configfile=configfile)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    table = pd.read_csv(tmp_path / layout.study_table("toy", "toy.tsv"), sep="\t")
    assert len(table) == 1 and table["lambda_max"].iloc[0] > 0 and table["trace"].iloc[0] > 0
    assert (tmp_path / layout.figure("toy", "toy.png")).stat().st_size > 10_000
    scorecard = pd.read_csv(tmp_path / layout.findings(), sep="\t", keep_default_na=False, dtype={"seed": str})
    toy = scorecard[scorecard["study"] == "toy"]
    assert toy["claim"].tolist() == ["lambda_max is below the trace"]
    assert toy["verdict"].iloc[0] in ("holds", "does not hold", "inconclusive") and toy["value"].iloc[0] != "none"
    assert (tmp_path / report_pages.table_page("toy", "toy.tsv")).is_file()
    report = snakemake(tmp_path, "--report", "report.html", configfile=configfile)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    assert "toy.png" in html and "toy.html" in html
