"""Study init_chain_rule end to end: the `init-chain-rule track` command on trained runs, the torch-free figures,
the plan of the default run, and (slow) the tiny workflow."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, make_subset, run_checkpoints, snakemake, training_jobs, write_config
from hessian_spectra import cli
from hessian_spectra.chain_rule import COLUMNS, TERMS
from hessian_spectra.commands.init_chain_rule import RUN_COLUMNS
from hessian_spectra.layout import RunFiles
from hessian_spectra.models import build_model
from hessian_spectra.plots.init_chain_rule import all_sds_figure, chain_rule_terms_figure, init_sd_figure
from hessian_spectra.runs import load_yaml, plan_runs, plan_subsets
from hessian_spectra.studies.init_chain_rule.table import build_table
from hessian_spectra.train.loop import train_run

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
TINY = REPO / "tests" / "configs" / "tiny.yaml"
STEPS, EPOCHS = 3, 2
PNG = b"\x89PNG\r\n\x1a\n"


def test_tracked_block_default_is_a_parameter_of_the_mlp():
    block = SCHEMA["$defs"]["init_chain_rule"]["properties"]["tracking"]["properties"]["block"]["default"]
    assert block in dict(build_model("mlp", 1, 28, 10).named_parameters())


def walk_args(run_dir) -> list[str]:
    """--run-json, --checkpoints and --subset of a run trained by the ``trained`` fixture."""
    return ["--run-json", RunFiles(str(run_dir)).run_json, "--checkpoints", *run_checkpoints(run_dir),
            "--subset", str(run_dir / "subset.pt")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tiny trained runs (relu at sd 0.01, tanh at sd 1) on 8x8 digits, and their chain-rule tables."""
    root = tmp_path_factory.mktemp("runs")
    study = {
        "defaults": {
            "model": "mlp",
            "dataset": "digits",
            "image_size": 8,
            "batch_size": 32,
            "lr": 0.01,
            "momentum": 0.0,
            "epochs": EPOCHS,
            "steps_per_epoch": STEPS,
        },
        "runs": [
            {"model_options": {"init_sd": 0.01, "activation": "relu"}},
            {"model_options": {"init_sd": 1.0, "activation": "tanh"}},
        ],
        "hessian_subset": {"size": 64},
    }
    runs = list(plan_runs({"studies": {"init_chain_rule": study}}, SCHEMA).values())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tables = []
    try:
        for run in runs:
            run_dir = root / run["key"]
            train_run(run, run_dir)
            make_subset(run, run_dir / "subset.pt")
            table = run_dir / "chain_rule.tsv"
            args = [
                "init-chain-rule",
                "track",
                *walk_args(run_dir),
                "--out",
                str(table),
                "--frobenius-probes",
                "4",
                "--max-steps",
                "40",
                "--batch-size",
                "40",
            ]
            assert cli.main(args) == 0
            tables.append(table)
    finally:
        torch.set_num_threads(threads)
    return runs, tables


def test_chain_rule_table_has_every_quantity_at_every_checkpoint(trained):
    runs, tables = trained
    for run, path in zip(runs, tables):
        table = pd.read_csv(path, sep="\t")
        assert tuple(table.columns) == RUN_COLUMNS + COLUMNS
        assert set(table["run"]) == {run["key"]}
        assert set(table["sd"]) == {run["model_options"]["init_sd"]}
        assert set(table["activation"]) == {run["model_options"]["activation"]}
        per_step = table.groupby(["epoch", "step"]).size()
        assert per_step.index.tolist() == [(epoch, epoch * STEPS) for epoch in range(EPOCHS + 1)]
        assert per_step.eq(1 + 2 * 2 * len(TERMS)).all()  # loss + 2 blocks x (norm + top-1) x terms
        assert set(table["block"]) == {"dense1", "full"}
        assert table["converged"].all() and (table.loc[table["quantity"] == "loss", "value"] > 0).all()


def test_relu_first_layer_curvature_term_is_exactly_zero_and_tanh_is_not(trained):
    relu, tanh = (pd.read_csv(path, sep="\t") for path in trained[1])
    for table, zero in ((relu, True), (tanh, False)):
        for quantity in ("frobenius_H_minus_G", "top_eig_H_minus_G"):
            values = table.loc[(table["block"] == "dense1") & (table["quantity"] == quantity), "value"]
            assert (values.eq(0) if zero else values.abs() > 0).all(), quantity
        full = table.loc[(table["block"] == "full") & (table["quantity"] == "frobenius_H_minus_G"), "value"]
        assert (full > 0).all()


def _errors(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]


def test_missing_checkpoint_is_an_error_naming_it(trained, tmp_path, caplog):
    runs, tables = trained
    run_dir = tables[0].parent
    args = walk_args(run_dir)
    missing = RunFiles(str(run_dir)).checkpoint(1)
    Path(missing).rename(tmp_path / "epoch_0001.pt")
    try:
        with caplog.at_level("ERROR"):
            assert cli.main(["init-chain-rule", "track", *args, "--out", str(tmp_path / "t.tsv")]) == 2
    finally:
        (tmp_path / "epoch_0001.pt").rename(missing)
    assert not (tmp_path / "t.tsv").exists()
    (error,) = _errors(caplog)
    assert "\n" not in error and missing in error


def test_unreadable_checkpoint_is_an_error_naming_it(trained, tmp_path, caplog):
    runs, tables = trained
    run_dir = tables[0].parent
    args = walk_args(run_dir)
    damaged = tmp_path / "epoch_0001.pt"
    damaged.write_bytes(Path(args[args.index("--checkpoints") + 2]).read_bytes()[:200])
    args[args.index("--checkpoints") + 2] = str(damaged)
    with caplog.at_level("ERROR"):
        assert cli.main(["init-chain-rule", "track", *args, "--out", str(tmp_path / "t.tsv")]) == 2
    assert not (tmp_path / "t.tsv").exists()
    (error,) = _errors(caplog)
    assert "\n" not in error and str(damaged) in error and "checkpoint" in error


def test_figures_are_drawn_without_torch(trained, tmp_path):
    tables = [str(path) for path in trained[1]]
    table_args = ["init-chain-rule", "table", "--tables", *tables, "--out", str(tmp_path / "all.tsv")]
    figure_args = ["init-chain-rule", "figures", "--table", str(tmp_path / "all.tsv"), "--out-dir", str(tmp_path)]
    code = (
        f"import sys; from hessian_spectra import cli; assert cli.main({table_args!r}) == 0; "
        f"rc = cli.main({figure_args!r}); "
        "assert 'torch' not in sys.modules, 'the plot command imported torch'; sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in ("init_sd_0.01.png", "init_sd_1.png", "init_sd_all.png", "chain_rule_terms.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name
    combined = pd.read_csv(tmp_path / "all.tsv", sep="\t")
    assert len(combined) == sum(len(pd.read_csv(path, sep="\t")) for path in tables)


def synthetic_table(path: Path, seed: int, sd: float, activation: str) -> Path:
    """A chain-rule table of one run in the command's format, its values scaled by the seed and init sd."""
    key = f"init_chain_rule/runs/mlp/digits/bs32/seed{seed}/sgd-lr0.01-activation{activation}-init_sd{sd:g}"
    rows = []
    for epoch in range(EPOCHS + 1):
        base = {"run": key, "sd": sd, "activation": activation, "epoch": epoch, "step": epoch * STEPS, "index": 0}
        rows.append({**base, "block": "full", "quantity": "loss", "value": (2 + seed) / (1 + epoch)})
        for block in ("dense1", "full"):
            for i, term in enumerate(TERMS):
                value = sd * (1 + epoch) * (1 + seed) * (i + 1)
                rows.append({**base, "block": block, "quantity": f"frobenius_{term}", "value": value,
                             "stderr": 0.1 * value, "probes": 4})
    pd.DataFrame(rows, columns=RUN_COLUMNS + COLUMNS).to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture
def seeds_table(tmp_path) -> pd.DataFrame:
    """The study table of two configurations (sd 0.01 relu, sd 1 tanh), two seeds each."""
    paths = [synthetic_table(tmp_path / f"{sd}-{seed}.tsv", seed, sd, activation)
             for sd, activation in ((0.01, "relu"), (1.0, "tanh")) for seed in (0, 1)]
    out = tmp_path / "chain_rule.tsv"
    assert cli.main(["init-chain-rule", "table", "--tables", *map(str, paths), "--out", str(out)]) == 0
    return pd.read_csv(out, sep="\t")


def test_study_table_has_every_seed_in_a_seed_column(seeds_table):
    assert list(seeds_table.columns[:2]) == ["run", "seed"]
    assert seeds_table.groupby("sd")["seed"].unique().map(sorted).tolist() == [[0, 1], [0, 1]]
    assert len(seeds_table) == 4 * (EPOCHS + 1) * (1 + 2 * len(TERMS))


def _mean_and_range(table: pd.DataFrame, sd: float, block: str, quantity: str) -> pd.DataFrame:
    rows = table[(table["sd"] == sd) & (table["block"] == block) & (table["quantity"] == quantity)]
    return rows.groupby("step")["value"].agg(["mean", "min", "max"])


def _band(ax, index: int) -> np.ndarray:
    return ax.collections[index].get_paths()[0].vertices[:, 1]


def _legend(legend) -> list[str]:
    return [text.get_text() for text in legend.get_texts()]


def test_all_sds_figure_draws_the_mean_over_seeds_with_their_range(seeds_table, tmp_path):
    table = build_table([tmp_path / "chain_rule.tsv"])
    fig = all_sds_figure(table)
    ax_loss, ax_h = fig.axes
    for i, sd in enumerate((0.01, 1.0)):
        for ax, block, quantity in ((ax_loss, "full", "loss"), (ax_h, "dense1", "frobenius_H")):
            expected = _mean_and_range(table, sd, block, quantity)
            line = ax.get_lines()[i]
            np.testing.assert_allclose(line.get_xdata(), expected.index)
            np.testing.assert_allclose(line.get_ydata(), expected["mean"])
            band = _band(ax, i)
            assert band.min() == pytest.approx(expected["min"].min()) and band.max() == pytest.approx(expected["max"].max())
    assert "range over 2 seeds (line: mean)" in _legend(fig.legends[0]) and "$\\pm$ 1 standard error" not in _legend(fig.legends[0])


def test_one_seed_draws_the_estimates_standard_error(seeds_table, tmp_path):
    table = build_table([tmp_path / "chain_rule.tsv"])
    one = table[table["seed"] == 1]
    fig = all_sds_figure(one)
    ax_loss, ax_h = fig.axes
    assert not ax_loss.collections
    rows = one[(one["sd"] == 1.0) & (one["block"] == "dense1") & (one["quantity"] == "frobenius_H")]
    np.testing.assert_allclose(ax_h.get_lines()[1].get_ydata(), rows["value"])
    band = _band(ax_h, 1)
    assert band.min() == pytest.approx(0.9 * rows["value"].min()) and band.max() == pytest.approx(1.1 * rows["value"].max())
    assert "$\\pm$ 1 standard error" in _legend(fig.legends[0])
    sd_fig = init_sd_figure(one, 1.0)
    assert len(sd_fig.axes[1].collections) == 1 and not sd_fig.axes[0].collections


def test_chain_rule_terms_average_each_seeds_ratio(seeds_table, tmp_path):
    table = build_table([tmp_path / "chain_rule.tsv"])
    fig = chain_rule_terms_figure(table)
    assert "range over 2 seeds (line: mean)" in _legend(fig.legends[0])
    block_ax, ratio_ax = fig.axes[1], fig.axes[5]  # sd = 1: dense1 block (row 0) and ratio (row 2)
    ggn = _mean_and_range(table, 1.0, "dense1", "frobenius_G")
    np.testing.assert_allclose(block_ax.get_lines()[0].get_ydata(), ggn["mean"])
    assert _band(block_ax, 0).max() == pytest.approx(ggn["max"].max())
    np.testing.assert_allclose(ratio_ax.get_lines()[0].get_ydata(), 1.5)  # every seed's ||H-G|| / ||G|| = 3 / 2


def only_init_chain_rule(config: dict) -> dict:
    for study, section in config["studies"].items():
        section["enabled"] = study == "init_chain_rule"
    return config


def planned_jobs(output: str) -> dict[str, int]:
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.M) if rule != "total"}


def test_default_run_plans_one_tracking_job_per_run(tmp_path, default_config):
    config = only_init_chain_rule(default_config)
    configfile = write_config(tmp_path / "config.yaml", config)
    result = snakemake(tmp_path, "-n", configfile=configfile)
    assert result.returncode == 0, result.stderr
    planned = plan_runs(config, SCHEMA)
    assert len(planned) == 9 and len(plan_subsets(planned)) == 1
    upstream = {**training_jobs(planned.values()), "hessian_subset": 1, "init_chain_rule_track": 9, "init_chain_rule_table": 1}
    assert sum(training_jobs(planned.values()).values()) == 9
    report = {"report_table": 1, "report_scorecard": 1}  # the report's pages of chain_rule.tsv and the scorecard
    assert planned_jobs(result.stdout) == {**upstream, "init_chain_rule_figures": 1, "findings": 1, **report, "all": 1}
    figures = "results/figures/init_chain_rule"
    for name in ("init_sd_1e-05.png", "init_sd_0.01.png", "init_sd_1.png", "init_sd_all.png", "chain_rule_terms.png"):
        assert f"{figures}/{name}" in result.stdout
    one = snakemake(tmp_path, "-n", f"{figures}/init_sd_1e-05.png", configfile=configfile)
    assert one.returncode == 0, one.stderr
    assert planned_jobs(one.stdout) == {**upstream, "init_chain_rule_figures": 1}


def test_default_run_is_the_source_experiment_on_real_mnist(default_config):
    """Source 003's own scale: the 784-30-30-10 mlp on real 28x28 MNIST digits, 1,000 SGD steps of batch 32 at lr
    0.01, ||H||_F on 1,024 training images, init sd {1e-5, 0.01, 1}; ReLU (the source's) plus tanh and linear."""
    study = default_config["studies"]["init_chain_rule"]
    runs = list(plan_runs(only_init_chain_rule(default_config), SCHEMA).values())
    for run in runs:
        assert (run["model"], run["dataset"], run["image_size"], run["normalization"]) == ("mlp", "mnist5k", 28, "unit")
        assert (run["batch_size"], run["lr"], run["momentum"], run["l2"]) == (32, 0.01, 0.0, 0.0)
        assert run["epochs"] * run["steps_per_epoch"] == 1000
    grid = {(run["model_options"]["init_sd"], run["model_options"]["activation"]) for run in runs}
    assert grid == {(sd, act) for sd in (1e-5, 0.01, 1.0) for act in ("relu", "tanh", "linear")}
    assert study["hessian_subset"] == {"size": 1024} and study["tracking"]["batch_size"] >= 1024


def test_run_without_init_sd_stops_the_workflow(tmp_path, default_config):
    config = only_init_chain_rule(default_config)
    config["studies"]["init_chain_rule"]["runs"] = [{"model_options": {"activation": "relu"}}]
    result = snakemake(tmp_path, "-n", configfile=write_config(tmp_path / "config.yaml", config))
    assert result.returncode != 0
    assert "set no model_options.init_sd" in result.stdout + result.stderr


@pytest.mark.slow
def test_tiny_workflow_draws_every_figure(tiny_run):
    tmp_path = tiny_run
    config = only_init_chain_rule(yaml.safe_load(TINY.read_text()))
    sds = [f"{run['model_options']['init_sd']:g}" for run in config["studies"]["init_chain_rule"]["runs"]]
    for name in [f"init_sd_{sd}.png" for sd in sds] + ["init_sd_all.png", "chain_rule_terms.png"]:
        data = (tmp_path / "results" / "figures" / "init_chain_rule" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name
    table = pd.read_csv(tmp_path / "results" / "tables" / "init_chain_rule" / "chain_rule.tsv", sep="\t")
    seeds = config["studies"]["init_chain_rule"].get("seeds", 1)
    assert table["run"].nunique() == len(sds) * seeds and set(table["block"]) == {"dense1", "full"}
    assert table.groupby("sd")["seed"].nunique().eq(seeds).all()


def test_chain_rule_terms_draw_ratio_one_and_the_ratios_standard_error(seeds_table, tmp_path):
    """One seed: the ratio's band is its standard error from the two Frobenius estimates' (independent probes);
    every ratio panel has a line at 1, where the curvature term equals the Gauss-Newton term."""
    table = build_table([tmp_path / "chain_rule.tsv"])
    fig = chain_rule_terms_figure(table[table["seed"] == 0])
    ratio_axes = [ax for ax in fig.axes if ax.get_title().endswith("ratio")]
    assert len(ratio_axes) == 2
    for ax in ratio_axes:
        (one,) = [line for line in ax.get_lines() if line.get_linestyle() == "-."]
        assert set(one.get_ydata()) == {1.0}
        ratio = ax.get_lines()[0]
        np.testing.assert_allclose(ratio.get_ydata(), 1.5)  # ||H-G|| / ||G|| = 3 / 2 in the synthetic table
        band = _band(ax, 0)
        spread = 0.1 * np.hypot(1.5, 1.5)  # each estimate's error is 10% of it
        assert band.min() == pytest.approx(1.5 - spread) and band.max() == pytest.approx(1.5 + spread)
    labels = _legend(fig.legends[0])
    assert any(label.startswith("ratio = 1") for label in labels) and "$\\pm$ 1 standard error" in labels
