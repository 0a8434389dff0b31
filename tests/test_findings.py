"""The findings scorecard's verdict rules on small hand-made tables: holds, does not hold, and inconclusive
(diverged, unconverged, within error, study not run)."""

import json

import pandas as pd
import pytest

from hessian_spectra import findings, layout
from hessian_spectra.evidence import Evidence
from hessian_spectra.findings import FAILS, HOLDS, UNSURE, Point, ordered
from hessian_spectra.tables import write_table

HEALTHY = {"train_loss": [2.3, 0.5], "train_acc": [0.1, 0.9], "test_acc": [0.1, 0.9]}
DIVERGED = {"train_loss": [2.3, 9.0], "train_acc": [0.1, 0.1], "test_acc": [0.1, 0.1]}


def make_run(root, study, batch_size, history=HEALTHY, optimizer="sgd", seed=0, **extra):
    """A trained run's run.json and history.tsv under ``root``; returns its key."""
    key = f"{study}/runs/m/digits/bs{batch_size}/seed{seed}/{optimizer}-e1"
    files = layout.run_files(key)
    (root / files.run_json).parent.mkdir(parents=True)
    run = {"key": key, "dataset": "digits", "batch_size": batch_size, "epochs": 1, "optimizer": {"name": optimizer}}
    (root / files.run_json).write_text(json.dumps({**run, **extra}))
    write_table(pd.DataFrame({"epoch": [0, 1], "steps": [0, 1000 // batch_size], **history}), root / files.history)
    return key


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """The scorecard reads the workflow's relative paths: each test's tables are made under its own folder."""
    monkeypatch.chdir(tmp_path)


def evidence(root, *studies, config=""):
    """The scorecard's evidence: the runs made under ``root`` of each of ``studies``, as a config plans them."""
    runs = {
        study: [{"key": str(path.parent.relative_to(root / layout.RESULTS)), "epochs": json.loads(path.read_text())["epochs"]}
                for path in sorted((root / layout.RESULTS / study / "runs").rglob("run.json"))]
        for study in studies
    }
    return Evidence(config, runs)


def check(rule, root, study):
    """``rule``'s verdict on the runs of ``study`` made under ``root``."""
    ev = evidence(root, study)
    return rule(ev, findings.load_runs(ev, study))


def top_eigenvalues(root, rows):
    """large_batch's study table from (key, batch_size, lambda_1, converged) rows."""
    table = pd.DataFrame(
        [{"run": key, "batch_size": bs, "hessian": "full", "block": "full", "index": 1, "value": value,
          "residual": 0.0, "relative_residual": 0.0 if ok else 0.5, "tolerance": 1e-3, "converged": ok,
          "products": 10} for key, bs, value, ok in rows]
    )
    write_table(table, root / layout.study_table("large_batch", layout.STUDY_TABLES["large_batch"]))


def test_ordered_rules():
    rising = [Point("a", 1.0), Point("b", 2.0), Point("c", 4.0)]
    assert ordered(rising, True, "x").verdict == HOLDS
    assert ordered(rising, False, "x").verdict == FAILS
    assert "a 1 -> b 2" in ordered(rising, False, "x").why
    assert ordered([Point("a", 1.0), Point("b", 1.02)], True, "x").verdict == UNSURE  # within 5%, no error stated
    assert ordered([Point("a", 1.0, 0.5), Point("b", 2.0, 0.5)], True, "x").verdict == UNSURE  # within 2 stderr
    assert ordered([Point("a", 1.0, 0.1), Point("b", 2.0, 0.1)], True, "x").verdict == HOLDS
    excluded = ordered([Point("a", 1.0), Point("b", 2.0, excluded="diverged (loss rose)")], True, "x")
    assert excluded.verdict == UNSURE and "b diverged" in excluded.why
    assert ordered([Point("a", 1.0)], True, "x").verdict == UNSURE
    assert "seed spread is unknown" in ordered(rising, True, "x").why


@pytest.mark.parametrize(
    "values, converged, history, verdict, reason",
    [
        ((1.0, 3.0), (True, True), HEALTHY, HOLDS, "rises at every step"),
        ((3.0, 1.0), (True, True), HEALTHY, FAILS, "order broken at bs16 3 -> bs256 1"),
        ((1.0, 3.0), (True, False), HEALTHY, UNSURE, "bs256 unconverged"),
        ((1.0, 3.0), (True, True), DIVERGED, UNSURE, "bs256 diverged"),
    ],
)
def test_large_batch_eigenvalues(tmp_path, values, converged, history, verdict, reason):
    keys = [make_run(tmp_path, "large_batch", 16), make_run(tmp_path, "large_batch", 256, history)]
    top_eigenvalues(tmp_path, [(k, bs, v, ok) for k, bs, v, ok in zip(keys, (16, 256), values, converged)])
    result = check(findings.large_batch_eigenvalues, tmp_path, "large_batch")
    assert result.verdict == verdict
    assert reason in result.why
    assert "steps (train acc, train loss): bs16 62 (" in result.why


def test_power_iteration_disagreeing_does_not_hold(tmp_path):
    key = make_run(tmp_path, "hessianflow", 32)
    rows = [
        {"epoch": epoch, "block": "full", "quantity": quantity, "index": 1, "value": value, "converged": ok}
        for epoch, quantity, value, ok in [
            (0, "eigenvalue", 0.34, True), (0, "power_eigenvalue", 0.048, True),
            (1, "eigenvalue", 40.5, True), (1, "power_eigenvalue", 40.4, True),
            (2, "eigenvalue", 10.0, False), (2, "power_eigenvalue", 1.0, True),
        ]
    ]
    write_table(pd.DataFrame(rows), tmp_path / layout.dominant_eigen(key))
    result = check(findings.power_agrees, tmp_path, "hessianflow")
    assert result.verdict == FAILS
    assert "1 of 2 epochs" in result.why  # the unconverged epoch 2 is no evidence either way
    assert "power 0.048 vs Lanczos 0.34" in result.value


def test_gauss_newton_term(tmp_path):
    key = make_run(tmp_path, "init_chain_rule", 32)
    def table(g, curvature, stderr):
        rows = [{"run": key, "sd": 0.01, "activation": "relu", "epoch": 1, "block": "dense1", "quantity": q,
                 "value": v, "stderr": stderr} for q, v in (("frobenius_G", g), ("frobenius_H_minus_G", curvature))]
        write_table(pd.DataFrame(rows), tmp_path / layout.study_table("init_chain_rule", "chain_rule.tsv"))
        return check(findings.gauss_newton, tmp_path, "init_chain_rule").verdict

    assert table(5.0, 1.0, 0.1) == HOLDS
    assert table(1.0, 5.0, 0.1) == FAILS
    assert table(5.0, 4.0, 1.0) == UNSURE  # within two standard errors


def test_scorecard_without_studies_is_inconclusive_per_claim(tmp_path):
    table = findings.scorecard(evidence(tmp_path))
    assert list(table.columns) == list(findings.COLUMNS)
    assert len(table) == len(findings.CLAIMS)
    assert set(table["verdict"]) == {UNSURE}
    assert set(table["why"]) == {findings.NOT_RUN}
    assert table.set_index("study")["source"].to_dict() == findings.SOURCES


def test_scorecard_rows_per_seed_and_disagreeing_seeds(tmp_path):
    keys = [make_run(tmp_path, "large_batch", bs, seed=seed) for seed in (0, 1) for bs in (16, 256)]
    top_eigenvalues(tmp_path, [(keys[0], 16, 1.0, True), (keys[1], 256, 3.0, True),
                               (keys[2], 16, 3.0, True), (keys[3], 256, 1.0, True)])
    table = findings.scorecard(evidence(tmp_path, "large_batch"))
    claim = table[table["claim"] == findings.CLAIMS[0].claim]
    assert claim["seed"].tolist() == [0, 1]
    assert set(claim["verdict"]) == {UNSURE}
    assert all(why.endswith("seeds disagree") for why in claim["why"])
    assert not any("seed spread is unknown" in why for why in claim["why"])


def layer_spectra(root, key, lambdas, converged=(True, True, True)):
    """layerhessians' per-epoch full-Hessian tables: lambda_1 per epoch, density means from 4 probes."""
    for epoch, (value, ok) in enumerate(zip(lambdas, converged)):
        rows = [
            {"epoch": epoch, "block": "full", "quantity": "eigenvalue", "index": 1, "value": value,
             "stderr": float("nan"), "probes": float("nan"), "relative_residual": 0.0 if ok else 0.5,
             "tolerance": 1e-3, "converged": ok},
            {"epoch": epoch, "block": "full", "quantity": "density_mean", "index": 0, "value": value / 100,
             "stderr": 1e-4, "probes": 4, "relative_residual": float("nan"), "tolerance": float("nan"),
             "converged": float("nan")},
        ]
        path = root / layout.layer_spectrum(key, epoch, "tsv")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_table(pd.DataFrame(rows), path)


@pytest.mark.parametrize(
    "lambdas, converged, verdict",
    [
        ((1.0, 5.0, 2.0), (True, True, True), HOLDS),
        ((1.0, 2.0, 5.0), (True, True, True), FAILS),
        ((1.0, 5.0, 2.0), (True, False, True), UNSURE),
    ],
)
def test_layer_eigenvalue_and_trace_fall(tmp_path, lambdas, converged, verdict):
    key = make_run(tmp_path, "layerhessians", 32, model="lenet", epochs=2)
    layer_spectra(tmp_path, key, lambdas, converged)
    result = check(findings.layer_falls, tmp_path, "layerhessians")
    assert result.verdict == verdict, result.why


def test_tiny_init_training_as_well_does_not_hold(tmp_path):
    keys = [make_run(tmp_path, "init_chain_rule", 32, optimizer=f"sd{sd}") for sd in ("1e-05", "0.01")]
    rows = [{"run": key, "sd": sd, "activation": "relu", "epoch": epoch, "block": "full", "quantity": "loss",
             "value": value, "stderr": float("nan")}
            for key, sd, values in zip(keys, (1e-5, 0.01), ((2.3, 0.50), (2.3, 0.49)))
            for epoch, value in enumerate(values)]
    write_table(pd.DataFrame(rows), tmp_path / layout.study_table("init_chain_rule", "chain_rule.tsv"))
    result = check(findings.tiny_init, tmp_path, "init_chain_rule")
    assert result.verdict == FAILS
    assert "sd1e-05 0.5, sd0.01 0.49" in result.value


def test_absa_schedule(tmp_path):
    absa = {**HEALTHY, "effective_batch_size": [float("nan"), 32], "lambda": [float("nan"), 10.0],
            "lambda_relative_residual": [float("nan"), 0.01]}
    make_run(tmp_path, "hessianflow", 32, absa, optimizer="absa")
    result = check(findings.absa_schedule, tmp_path, "hessianflow")
    assert result.verdict == UNSURE and "did not fall" in result.why  # lambda never fell: nothing to grow on


def sharpness_table(root, rows):
    """sharpest_directions' study table from (optimizer, gamma, lambda_max, valid_acc, diverged_because) rows."""
    table = pd.DataFrame(
        [{"run": make_run(root, "sharpest_directions", 32, optimizer=f"{name}{gamma}"), "optimizer": name,
          "gamma": gamma, "lr": 0.05, "batch_size": 32, "epoch": 2, "lambda_max": value, "lambda_max_converged": True,
          "peak_lambda_max": value, "peak_epoch": 1, "peak_converged": True, "final_valid_acc": acc,
          "diverged": bool(why), "diverged_because": why} for name, gamma, value, acc, why in rows]
    )
    write_table(table, root / layout.study_table("sharpest_directions", "sharpness_table.csv"))
    return findings.load_runs(evidence(root, "sharpest_directions"), "sharpest_directions")


def test_nsgd_versus_sgd(tmp_path):
    runs = sharpness_table(tmp_path, [("sgd", float("nan"), 10.0, 0.9, ""), ("nsgd", 0.1, 20.0, 0.88, ""),
                                      ("nsgd", 5.0, 1.0, 0.2, "final valid_acc 0.2")])
    sharper = findings.nsgd_versus_sgd(True)(evidence(tmp_path, "sharpest_directions"), runs)
    assert sharper.verdict == HOLDS and "gamma0.1: sharper than SGD" in sharper.why
    flatter = findings.nsgd_versus_sgd(False)(evidence(tmp_path, "sharpest_directions"), runs)
    assert flatter.verdict == UNSURE and "diverged (final valid_acc 0.2)" in flatter.why


def test_large_batch_unequally_trained_is_inconclusive(tmp_path):
    unfinished = {**HEALTHY, "train_acc": [0.1, 0.7]}
    keys = [make_run(tmp_path, "large_batch", 16), make_run(tmp_path, "large_batch", 256, unfinished)]
    top_eigenvalues(tmp_path, [(keys[0], 16, 1.0, True), (keys[1], 256, 3.0, True)])
    result = check(findings.large_batch_eigenvalues, tmp_path, "large_batch")
    assert result.verdict == UNSURE
    assert "runs not equally trained" in result.why and "bs16 62 (0.9, 0.5), bs256 3 (0.7, 0.5)" in result.why


def test_tables_that_cannot_answer_a_claim_leave_it_inconclusive(tmp_path):
    key = make_run(tmp_path, "large_batch", 16)
    write_table(pd.DataFrame({"run": [key], "batch_size": [16]}),
                tmp_path / layout.study_table("large_batch", layout.STUDY_TABLES["large_batch"]))
    table = findings.scorecard(evidence(tmp_path, "large_batch"))
    rows = table[table["study"] == "large_batch"]
    assert set(rows["verdict"]) == {UNSURE}
    assert rows["why"].iloc[0].startswith("not computable from this run's tables (KeyError")


@pytest.mark.parametrize("lambdas, verdict", [((10.0, 4.0, 5.0), HOLDS), ((10.0, 12.0, 13.0), FAILS)])
def test_absa_batch_grows_after_lambda_falls(tmp_path, lambdas, verdict):
    """A history row's batch size is the one trained with; the lambda measured after the epoch before decided it."""
    absa = {"train_loss": [2.3, 1.0, 0.5, 0.4], "train_acc": [0.1, 0.8, 0.9, 0.9], "test_acc": [0.1, 0.8, 0.9, 0.9],
            "effective_batch_size": [float("nan"), 32, 32, 64], "lambda": [float("nan"), *lambdas],
            "lambda_relative_residual": [float("nan"), 0.01, 0.01, 0.01]}
    key = make_run(tmp_path, "hessianflow", 32, optimizer="absa")
    files = layout.run_files(key)
    write_table(pd.DataFrame({"epoch": [0, 1, 2, 3], "steps": [0, 10, 20, 25], **absa}), tmp_path / files.history)
    result = check(findings.absa_schedule, tmp_path, "hessianflow")
    assert result.verdict == verdict, result.why
