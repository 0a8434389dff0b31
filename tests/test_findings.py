"""The findings scorecard's verdict rules on small hand-made tables: each claim's holds, does not hold and
inconclusive, and the cases that used to decide wrongly: a run not at a minimum, a last-epoch spike, an accuracy
threshold met only by rounding, a shared initial checkpoint, an automatic zero, a single probe."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from hessian_spectra import findings, layout
from hessian_spectra.evidence import Evidence
from hessian_spectra.findings import FAILS, HOLDS, UNSURE
from hessian_spectra.findings.inputs import load_runs
from hessian_spectra.studies import built_in
from hessian_spectra.studies.hessianflow import claims as flow
from hessian_spectra.studies.init_chain_rule import claims as icr
from hessian_spectra.studies.large_batch import claims as lb
from hessian_spectra.studies.layerhessians import claims as lh
from hessian_spectra.studies.sharpest_directions import claims as sd

CLAIMS = [claim for study in built_in() for claim in study.claims]
from hessian_spectra.tables import write_table

NAN = float("nan")
HEALTHY = {"train_loss": [2.3, 0.001], "train_acc": [0.1, 1.0], "test_acc": [0.1, 0.9]}
DIVERGED = {"train_loss": [2.3, 9.0], "train_acc": [0.1, 0.1], "test_acc": [0.1, 0.1]}
STALLED = {"train_loss": [2.3046, 2.2986], "train_acc": [0.1, 0.11], "test_acc": [0.1, 0.11]}


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """The scorecard reads the workflow's relative paths: each test's tables are made under its own folder."""
    monkeypatch.chdir(tmp_path)


def make_run(study, variant, history=HEALTHY, batch_size=32, seed=0, optimizer="sgd", epochs=None, **extra):
    """A trained run's run.json and history.tsv (``history``: columns over epochs 0..n); returns its key."""
    key = f"{study}/runs/m/digits/bs{batch_size}/seed{seed}/{variant}"
    files = layout.run_files(key)
    history = pd.DataFrame(history)
    history.insert(0, "epoch", range(len(history)))
    if "steps" not in history:
        history.insert(1, "steps", [e * 1000 // batch_size for e in history["epoch"]])
    epochs = len(history) - 1 if epochs is None else epochs
    options = extra.pop("optimizer_options", {})
    run = {"key": key, "dataset": "digits", "batch_size": batch_size, "epochs": epochs, "seed": seed, "lr": 0.05,
           "optimizer": {"name": optimizer, **options}}
    run.update(extra)
    Path(files.run_json).parent.mkdir(parents=True, exist_ok=True)
    Path(files.run_json).write_text(json.dumps(run))
    write_table(history, files.history)
    return key


def evidence(*studies):
    """The scorecard's evidence: the runs made so far of each of ``studies``, as a config plans them."""
    runs = {}
    for study in studies:
        paths = sorted(Path(layout.RESULTS, study, "runs").rglob("run.json"))
        runs[study] = [{"key": str(p.parent.relative_to(layout.RESULTS)), "epochs": json.loads(p.read_text())["epochs"]}
                       for p in paths]
    return Evidence("", runs)


def check(rule, study):
    """``rule``'s verdict on every run of ``study`` made so far."""
    ev = evidence(study)
    return rule(ev, load_runs(ev, study))


# --- 000: large_batch ------------------------------------------------------------------------------------------


def top_eigenvalues(rows):
    """large_batch's study table from (key, batch_size, lambda_1, converged) rows."""
    table = pd.DataFrame([
        {"run": key, "batch_size": bs, "hessian": "full", "block": "full", "index": 1, "value": value,
         "residual": 1e-4, "relative_residual": 0.0 if ok else 0.5, "tolerance": 1e-3, "converged": ok}
        for key, bs, value, ok in rows
    ])
    write_table(table, layout.study_table("large_batch", "top_eigenvalues.tsv"))


@pytest.mark.parametrize(
    "values, converged, last, verdict, reason",
    [
        ((1.0, 3.0), (True, True), HEALTHY, HOLDS, "rises at every step, each beyond its error"),
        ((3.0, 1.0), (True, True), HEALTHY, FAILS, "order broken at bs16 3 +- 0.0001 -> bs256 1 +- 0.0001"),
        ((1.0, 1.03), (True, True), HEALTHY, UNSURE, "needs the gap 0.03 to exceed 5% of the larger value"),
        ((1.0, 3.0), (True, False), HEALTHY, UNSURE, "bs256 unconverged (relative residual 0.5 > 0.001)"),
        ((1.0, 3.0), (True, True), DIVERGED, UNSURE, "bs256 diverged: training loss rose from 2.3 to 9"),
        ((1.0, 3.0), (True, True), STALLED, UNSURE, "bs256 did not learn: final test_acc 0.11"),
    ],
)
def test_large_batch_eigenvalues(values, converged, last, verdict, reason):
    keys = [make_run("large_batch", "a", batch_size=16), make_run("large_batch", "a", last, batch_size=256)]
    top_eigenvalues([(k, bs, v, ok) for k, bs, v, ok in zip(keys, (16, 256), values, converged)])
    result = check(lb.eigenvalues, "large_batch")
    assert result.verdict == verdict, result.why
    assert reason in result.why
    assert "bs16 62 (1, 0.001)" in result.why


def test_a_run_not_at_a_minimum_leaves_at_convergence_inconclusive():
    """Seed 000 compares batch sizes at their points of convergence: a run that ended at loss 0.04 is not one."""
    unfinished = {**HEALTHY, "train_loss": [2.3, 0.04]}
    keys = [make_run("large_batch", "a", batch_size=16), make_run("large_batch", "a", unfinished, batch_size=256)]
    top_eigenvalues([(keys[0], 16, 1.0, True), (keys[1], 256, 3.0, True)])
    result = check(lb.eigenvalues, "large_batch")
    assert result.verdict == UNSURE
    assert "bs256 not at a minimum (needs its final training loss 0.04 at most 0.01)" in result.why


# --- 001: sharpest_directions ----------------------------------------------------------------------------------


def sharpest_run(variant, lambdas, batch_size=32, lr=0.05, optimizer="sgd", gamma=None, valid=0.9, valid_size=200,
                 seed=0):
    """A sharpest_directions run with a lambda_max trajectory (epoch 0..n) and a final validation accuracy."""
    n = len(lambdas)
    hist = {"train_loss": [2.3] + [0.5] * (n - 1), "train_acc": [0.1] + [0.9] * (n - 1),
            "test_acc": [0.1] + [valid] * (n - 1), "valid_acc": [0.1] + [valid] * (n - 1)}
    options = {} if gamma is None else {"gamma": gamma, "kk": 3}
    key = make_run("sharpest_directions", f"{variant}-lr{lr:g}", hist, batch_size=batch_size, optimizer=optimizer,
                   seed=seed, optimizer_options=options, valid_size=valid_size, lr=lr)
    rows = [{"epoch": e, "block": "full", "quantity": "eigenvalue", "index": 1, "value": v, "residual": 1e-3,
             "converged": True} for e, v in enumerate(lambdas)]
    path = layout.trajectory(key)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_table(pd.DataFrame(rows), path)
    return key


PLATEAU = [2.0, 40.0, 60.0, 55.0, 50.0, 52.0, 48.0, 50.0, 49.0, 51.0, 50.0]


def test_sharpest_peak_rises_then_settles():
    sharpest_run("a", PLATEAU)
    result = check(sd.peaks, "sharpest_directions")
    assert result.verdict == HOLDS, result.why
    assert "peak epochs 2-4 55 +-" in result.value


def test_a_last_epoch_spike_decides_neither_the_peak_nor_the_order():
    """One epoch's spike at the end neither makes a run 'still rising' nor gives it the highest peak."""
    sharpest_run("a", PLATEAU[:-1] + [120.0], batch_size=16)
    result = check(sd.peaks, "sharpest_directions")
    assert result.verdict == HOLDS, result.why
    sharpest_run("a", [2.0, 90.0, 100.0, 104.0, 98.0, 95.0, 100.0, 97.0, 99.0, 101.0, 100.0], batch_size=128)
    order = check(sd.peak_order("batch_size", "lr", True), "sharpest_directions")
    assert order.verdict == UNSURE, order.why  # the spiked run's last window 73 +- 23 is not told apart from 100
    assert "bs16 -> bs128 needs the gap" in order.why


def test_a_run_still_rising_has_not_reached_its_peak():
    sharpest_run("a", [2.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0])
    result = check(sd.peaks, "sharpest_directions")
    assert result.verdict == UNSURE
    assert "still rising (epochs 8-10 above every earlier window beyond error): needs training past the peak" \
        in result.why
    never = [10.0, 2.0, 2.1, 1.9, 2.0, 2.0, 2.1, 2.0, 1.9, 2.0, 2.0]
    sharpest_run("a", never, batch_size=64)
    assert check(sd.peaks, "sharpest_directions").verdict == FAILS


def test_learning_rate_order_on_window_peaks():
    sharpest_run("a", [2.0, 200.0, 210.0, 205.0, 150.0, 140.0, 150.0, 145.0, 150.0, 148.0, 150.0], lr=0.01)
    sharpest_run("b", PLATEAU, lr=0.05)
    result = check(sd.peak_order("lr", "batch_size", False), "sharpest_directions")
    assert result.verdict == HOLDS, result.why
    assert result.value.startswith("lr0.01: 205 +- ")


def test_nsgd_at_accuracies_similar_only_by_rounding_is_inconclusive():
    """0.855 - 0.805 on 200 validation images: not shown similar, so the sharpness is not compared."""
    sharpest_run("sgd", PLATEAU, valid=0.855)
    sharpest_run("nsgd", [2.0] + [300.0] * 10, optimizer="nsgd", gamma=0.1, valid=0.805)
    result = check(sd.nsgd_versus_sgd(True), "sharpest_directions")
    assert result.verdict == UNSURE
    assert "gamma0.1: accuracies not shown similar (validation accuracy gap 0.05 +- 0.03" in result.why
    assert "to be at most 0.05" in result.why


@pytest.mark.parametrize("nsgd_lambda, verdict", [(300.0, HOLDS), (10.0, FAILS), (51.0, UNSURE)])
def test_nsgd_sharper_than_sgd_at_similar_accuracy(nsgd_lambda, verdict):
    sharpest_run("sgd", PLATEAU, valid=0.900, valid_size=10000)
    sharpest_run("nsgd", [2.0] + [nsgd_lambda] * 10, optimizer="nsgd", gamma=0.1, valid=0.895, valid_size=10000)
    result = check(sd.nsgd_versus_sgd(True), "sharpest_directions")
    assert result.verdict == verdict, result.why


# --- 002: hessianflow ------------------------------------------------------------------------------------------


def dominant(key, rows):
    """A run's dominant_eigen table from (epoch, lanczos, power, lanczos converged) rows."""
    table = pd.DataFrame([
        {"epoch": e, "block": "full", "quantity": q, "index": 1, "value": v, "residual": 1e-3, "converged": ok}
        for e, lanczos, power, ok in rows for q, v in (("eigenvalue", lanczos), ("power_eigenvalue", power))
    ])
    Path(layout.dominant_eigen(key)).parent.mkdir(parents=True, exist_ok=True)
    write_table(table, layout.dominant_eigen(key))


def test_the_shared_initial_checkpoint_is_counted_once_and_apart():
    """SGD and ABSA runs of one seed start from the same weights: epoch 0 is one checkpoint, and not one the source
    measures (it runs power iteration after every epoch)."""
    for variant in ("sgd", "absa"):
        key = make_run("hessianflow", variant, {**HEALTHY, "train_loss": [2.3, 0.5, 0.4]} | {
            "train_acc": [0.1, 0.8, 0.9], "test_acc": [0.1, 0.8, 0.9]}, optimizer=variant)
        dominant(key, [(0, 0.34, 0.048, True), (1, 40.5, 40.4, True), (2, 20.0, 19.9, True)])
    result = check(flow.power_agrees, "hessianflow")
    assert result.verdict == HOLDS, result.why
    assert "within 5% beyond error at all 4 checkpoints after a training epoch, each counted once" in result.why
    assert result.why.count("power 0.048 vs Lanczos 0.34") == 1


def test_power_iteration_off_at_a_trained_checkpoint_does_not_hold():
    key = make_run("hessianflow", "sgd", {"train_loss": [2.3, 0.5, 0.4], "train_acc": [0.1, 0.8, 0.9],
                                          "test_acc": [0.1, 0.8, 0.9]})
    dominant(key, [(0, 0.34, 0.048, True), (1, 40.5, 30.0, True), (2, 10.0, 1.0, False)])
    result = check(flow.power_agrees, "hessianflow")
    assert result.verdict == FAILS
    assert "off by more than 5% beyond error at 1 of 1 checkpoints after a training epoch" in result.why
    assert "(1 left out: no converged Lanczos reference" in result.why


def absa_history(sizes, lambdas, refs):
    """An ABSA history over epochs 0..n: batch trained with, lambda measured after, reference after it."""
    n = len(sizes)
    return {"train_loss": [2.3] + [1.0] * n, "train_acc": [0.1] + [0.8] * n, "test_acc": [0.1] + [0.8] * n,
            "effective_batch_size": [NAN, *sizes], "ratio": [NAN, *[s // 16 for s in sizes]],
            "lambda": [NAN, *lambdas], "lambda_residual": [NAN] + [0.1] * n, "lambda_ref": [NAN, *refs],
            "lambda_relative_residual": [NAN] + [0.01] * n}


@pytest.mark.parametrize(
    "sizes, lambdas, refs, verdict, reason",
    [
        # lambda 10 -> 4 (halved): the batch doubles for epoch 3, by lambda
        ([16, 16, 32, 32], [10.0, 4.0, 5.0, 5.0], [10.0, 4.0, 4.0, 4.0], HOLDS,
         "1 of 1 growths after lambda fell to half its reference beyond error (0 by patience)"),
        # lambda never halves; patience 3 grows it after the third check: not lambda's doing
        ([16, 16, 16, 32], [10.0, 9.0, 8.0, 7.0], [10.0, 10.0, 8.0, 8.0], UNSURE,
         "no growth after lambda fell to half its reference beyond error (lowest lambda / reference 0.8"),
        ([16, 32, 16, 16], [10.0, 4.0, 5.0, 5.0], [10.0, 4.0, 4.0, 4.0], FAILS, "the batch shrank for epoch 3"),
        ([16, 32, 32, 32], [10.0, 9.0, 9.0, 9.0], [10.0, 9.0, 9.0, 9.0], FAILS,
         "the batch grew for epoch 2 with neither rule met"),
    ],
)
def test_absa_growths_are_attributed_to_their_cause(sizes, lambdas, refs, verdict, reason):
    make_run("hessianflow", "absa", absa_history(sizes, lambdas, refs), batch_size=16, optimizer="absa",
             optimizer_options={"patience": 3, "max_ratio": 8})
    result = check(flow.schedule, "hessianflow")
    assert result.verdict == verdict, result.why
    assert reason in result.why


def test_absa_patience_growth_is_named():
    make_run("hessianflow", "absa", absa_history([16, 16, 16, 32, 64], [10.0, 9.0, 8.0, 3.0, 3.0],
                                                 [10.0, 10.0, 8.0, 3.0, 3.0]),
             batch_size=16, optimizer="absa", optimizer_options={"patience": 3, "max_ratio": 8})
    result = check(flow.schedule, "hessianflow")
    assert "bs 32 for epoch 4 by the patience rule" in result.value
    assert "bs 64 for epoch 5 by lambda 3 +- 0.1 <= half its reference 8 +- 0.1" in result.value
    assert result.verdict == HOLDS


@pytest.mark.parametrize("absa_acc, steps, verdict", [(0.96, 100, HOLDS), (0.80, 100, FAILS), (0.96, 500, FAILS),
                                                      (0.92, 100, UNSURE)])
def test_absa_versus_sgd_accuracy_with_its_binomial_error(absa_acc, steps, verdict):
    make_run("hessianflow", "sgd", {"train_loss": [2.3, 0.1], "train_acc": [0.1, 1.0], "test_acc": [0.1, 0.97],
                                    "steps": [0, 400]})
    make_run("hessianflow", "absa", {"train_loss": [2.3, 0.1], "train_acc": [0.1, 1.0], "test_acc": [0.1, absa_acc],
                                     "steps": [0, steps]}, optimizer="absa")
    result = check(flow.versus_sgd, "hessianflow")
    assert result.verdict == verdict, result.why
    assert "SGD's accuracy minus ABSA's" in result.why or verdict == FAILS


# --- 003: init_chain_rule --------------------------------------------------------------------------------------


def chain_rule(rows):
    """init_chain_rule's study table from (key, epoch, block, quantity, value, stderr) rows."""
    table = pd.DataFrame([{"run": k, "epoch": e, "block": b, "quantity": q, "index": 0, "value": v, "stderr": s}
                          for k, e, b, q, v, s in rows])
    write_table(table, layout.study_table("init_chain_rule", "chain_rule.tsv"))


def init_run(sd, activation, seed=0):
    return make_run("init_chain_rule", f"{activation}-sd{sd:g}", seed=seed,
                    model_options={"init_sd": sd, "activation": activation}, image_size=28)


def split_rows(key, epoch, dense1, full):
    """G and H-G rows of dense1 and the full Hessian: (G, H-G) each with stderr 0.1."""
    return [(key, epoch, block, f"frobenius_{q}", v, 0.1 if v else 0.0)
            for block, pair in (("dense1", dense1), ("full", full)) for q, v in zip(("G", "H_minus_G"), pair)]


def test_an_automatic_zero_is_no_evidence_and_the_claim_is_judged_at_initialisation():
    """With ReLU dense1's curvature term is exactly zero; the full Hessian decides, at step 0, not at the end."""
    relu, tanh = init_run(1.0, "relu"), init_run(1.0, "tanh")
    chain_rule(split_rows(relu, 0, (5.0, 0.0), (5.0, 2.0)) + split_rows(relu, 1, (5.0, 0.0), (1.0, 9.0))
               + split_rows(tanh, 0, (2.0, 6.0), (2.0, 6.0)))
    result = check(icr.gauss_newton, "init_chain_rule")
    assert result.verdict == HOLDS, result.why
    assert "sd1 dense1: curvature term exactly 0 (piecewise linear in the block: automatic, not evidence)" in result.why
    assert "sd1 full: G larger beyond error" in result.why
    assert "extensions, not deciding: tanh: does not hold" in result.why
    assert "upscaled from 8x8 to 28x28" in result.why


def test_only_automatic_zeros_leave_gauss_newton_inconclusive():
    relu = init_run(0.01, "relu")
    chain_rule(split_rows(relu, 0, (5.0, 0.0), (5.0, 0.0)))
    result = check(icr.gauss_newton, "init_chain_rule")
    assert result.verdict == UNSURE and "needs a block whose curvature term is not identically zero" in result.why


def test_tiny_init_is_judged_with_the_source_activation():
    keys = {(sd_, act): init_run(sd_, act) for sd_ in (1e-5, 0.01) for act in ("relu", "tanh")}
    losses = {(1e-5, "relu"): 0.48, (0.01, "relu"): 0.24, (1e-5, "tanh"): 0.274, (0.01, "tanh"): 0.273}
    chain_rule([(keys[k], 1, "full", "loss", v, NAN) for k, v in losses.items()]
               + [(keys[k], 0, "full", "loss", 2.3, NAN) for k in losses])
    result = check(icr.tiny_init, "init_chain_rule")
    assert result.verdict == HOLDS, result.why
    assert result.why.startswith("relu (the source's): sd1e-05 ends above the best larger sd, sd0.01, beyond error")
    assert "tanh: inconclusive (sd1e-05 not told apart from the best larger sd, sd0.01 (needs the gap 0.001" \
        in result.why


@pytest.mark.parametrize(
    "losses, verdict, reason",
    [
        # a too-large init trains slowest of all: the tiny one is compared with the best larger init
        ((0.4454, 0.40, 1.035), HOLDS, "sd1e-05 ends above the best larger sd, sd0.01, beyond error"),
        ((0.4454, 0.4394, 1.035), UNSURE, "not told apart from the best larger sd, sd0.01 (needs the gap 0.006"),
        ((0.20, 0.4394, 1.035), FAILS, "sd1e-05 ends below every larger sd beyond error (the best of them: sd0.01)"),
    ],
)
def test_a_tiny_init_against_the_best_larger_one(losses, verdict, reason):
    keys = [init_run(sd_, "relu") for sd_ in (1e-5, 0.01, 1.0)]
    chain_rule([(k, 1, "full", "loss", v, NAN) for k, v in zip(keys, losses)])
    result = check(icr.tiny_init, "init_chain_rule")
    assert result.verdict == verdict, result.why
    assert reason in result.why


def test_init_frobenius_at_initialisation_per_activation():
    keys = [init_run(s, "relu") for s in (1e-5, 0.01, 1.0)]
    chain_rule([(k, 0, "dense1", "frobenius_H", v, 0.5) for k, v in zip(keys, (9.0, 9.2, 2.0))]
               + [(k, 0, "full", "loss", 2.3, NAN) for k in keys]
               + [(k, 1, "dense1", "frobenius_H", v, 0.5) for k, v in zip(keys, (1.0, 5.0, 50.0))])
    result = check(icr.init_frobenius, "init_chain_rule")
    assert result.verdict == FAILS, result.why
    assert "order broken at sd0.01 9.2 +- 0.5 -> sd1 2 +- 0.5" in result.why
    assert "sd1e-05 -> sd0.01 needs" not in result.why  # the failure is reported; ties only when nothing broke


# --- 004: layerhessians ----------------------------------------------------------------------------------------


def profiles(key, distances, stderr, probes, kind="wasserstein"):
    table = pd.DataFrame([{"run": key, "metric": "source", "kind": kind, "layer": i + 1, "distance": d,
                           "distance_stderr": stderr, "probes": probes} for i, d in enumerate(distances)])
    write_table(table, layout.study_table("layerhessians", layout.MATCH_PROFILES))


@pytest.mark.parametrize(
    "distances, stderr, probes, verdict, reason",
    [
        ((3.0, 1.0, 1.2, 3.5), 0.1, 4, HOLDS, "middle layer L2 closer than both end layers beyond error"),
        ((1.0, 3.0, 3.2, 3.5), 0.1, 4, FAILS, "end layer L1 closer than every middle layer beyond error"),
        ((3.0, 1.0, 1.2, 1.1), 0.1, 4, UNSURE, "L4: needs the gap 0.1 to exceed 2 standard errors 0.2828"),
        ((3.0, 1.0, 1.2, 3.5), NAN, 1, UNSURE, "densities from 1 probe, so distances carry no error"),
    ],
)
def test_u_shape_with_distance_errors(distances, stderr, probes, verdict, reason):
    key = make_run("layerhessians", "a", model="lenet")
    profiles(key, distances, stderr, probes)
    result = check(lh.u_shape, "layerhessians")
    assert result.verdict == verdict, result.why
    assert reason in result.why


def layer_spectra(key, lambdas, traces, layer_traces=None, probes=4, stderr=0.01):
    """layerhessians' per-epoch tables: the full Hessian's lambda_1 and trace, and the layer blocks' traces."""
    for epoch, (lam, trace) in enumerate(zip(lambdas, traces)):
        rows = [{"epoch": epoch, "block": "full", "quantity": "eigenvalue", "index": 1, "value": lam,
                 "stderr": NAN, "probes": NAN, "residual": 1e-3, "converged": True},
                {"epoch": epoch, "block": "full", "quantity": "density_trace", "index": 0, "value": trace,
                 "stderr": stderr * trace if probes > 1 else NAN, "probes": probes, "residual": NAN,
                 "converged": NAN}]
        for i, value in enumerate((layer_traces or {}).get(epoch, [])):
            rows.append({"epoch": epoch, "block": f"l{i}.weight", "quantity": "density_trace", "index": 0,
                         "value": value, "stderr": stderr * value, "probes": probes, "residual": NAN,
                         "converged": NAN})
        path = layout.layer_spectrum(key, epoch, "tsv")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_table(pd.DataFrame(rows), path)


RISE_FALL = [0.3, 2.0, 30.0, 40.0, 38.0, 35.0, 30.0, 25.0, 20.0]


def layer_run(lambdas, **kwargs):
    key = make_run("layerhessians", "a", {"train_loss": [2.3] + [0.5] * (len(lambdas) - 1),
                                          "train_acc": [0.1] + [0.9] * (len(lambdas) - 1),
                                          "test_acc": [0.1] + [0.9] * (len(lambdas) - 1)}, model="lenet")
    layer_spectra(key, lambdas, [v * 10 for v in lambdas], **kwargs)
    return key


def test_top_eigenvalue_and_trace_fall_from_their_peak():
    layer_run(RISE_FALL)
    result = check(lh.layer_falls, "layerhessians")
    assert result.verdict == HOLDS, result.why
    assert "lenet/digits lambda_1: epochs 6-8 below epochs 3-5 beyond error" in result.why


def test_still_rising_in_a_short_run_is_inconclusive():
    layer_run([0.3, 1.0, 2.0, 5.0])
    result = check(lh.layer_falls, "layerhessians")
    assert result.verdict == UNSURE
    assert "still rising: epoch 3 above every earlier window beyond error (needs training past the peak" in result.why


def test_a_single_probe_trace_is_no_evidence():
    layer_run(RISE_FALL, probes=1)
    result = check(lh.layer_falls, "layerhessians")
    assert result.verdict == UNSURE
    assert "trace: from 1 probe: no standard error (needs at least 2 probes or 2 seeds)" in result.why


def test_a_full_trace_below_its_layer_blocks_is_flagged():
    """The full Hessian also holds blocks no layer block covers (biases, BatchNorm), so the check is a flag."""
    layer_run(RISE_FALL, layer_traces={3: [300.0, 200.0], 4: [200.0, 150.0]})  # epoch 3: 400 +- 4 vs 500 +- 3.6
    result = check(lh.layer_falls, "layerhessians")
    assert result.verdict == HOLDS
    assert "trace: epochs 6-8 below epochs 3-5 beyond error (flag: epoch 3: full trace 400 +- 4 below the layer " \
        "blocks' sum 500 +- 3.606;" in result.why
    assert "epoch 4" not in result.why  # 380 +- 3.8 against 350 +- 2.9: consistent


# --- the scorecard ---------------------------------------------------------------------------------------------


def test_scorecard_without_studies_is_inconclusive_per_claim():
    table = findings.scorecard(evidence())
    assert list(table.columns) == list(findings.COLUMNS)
    assert len(table) == len(CLAIMS) == 15
    assert set(table["verdict"]) == {UNSURE}
    assert set(table["why"]) == {findings.NOT_RUN}
    assert table.set_index("study")["source"].to_dict() == {study.name: study.source for study in built_in()}


def test_scorecard_judges_each_seed_and_their_means():
    """Each seed alone (one seed: 5% margins), and all seeds' means with the seeds' spread as error."""
    keys = {(s, bs): make_run("large_batch", "a", batch_size=bs, seed=s) for s in (0, 1, 2) for bs in (16, 256)}
    lams = {0: (1.0, 1.04), 1: (1.01, 1.05), 2: (0.99, 1.03)}
    top_eigenvalues([(keys[s, bs], bs, lams[s][i], True) for s in lams for i, bs in enumerate((16, 256))])
    table = findings.scorecard(evidence("large_batch"))
    claim = table[table["claim"] == lb.CLAIMS[0].claim].set_index("seed")
    assert list(claim.index) == [0, 1, 2, "all"]
    assert set(claim.loc[[0, 1, 2], "verdict"]) == {UNSURE}  # 4% apart: within one seed's 5%
    assert claim.loc["all", "verdict"] == HOLDS, claim.loc["all", "why"]  # 1.0 +- 0.006 vs 1.04 +- 0.006


def test_tables_that_cannot_answer_a_claim_leave_it_inconclusive():
    key = make_run("large_batch", "a", batch_size=16)
    write_table(pd.DataFrame({"run": [key], "batch_size": [16]}),
                layout.study_table("large_batch", "top_eigenvalues.tsv"))
    table = findings.scorecard(evidence("large_batch"))
    rows = table[table["study"] == "large_batch"]
    assert set(rows["verdict"]) == {UNSURE}
    assert rows["why"].iloc[0].startswith("not computable from this run's tables (KeyError")


def test_every_rule_states_its_errors():
    for claim in CLAIMS:
        assert "error" in claim.rule, claim.claim
    assert math.isclose(findings.core.Z, 2.0)
