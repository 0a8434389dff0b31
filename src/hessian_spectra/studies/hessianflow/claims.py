"""Seed 002 (HessianFlow / ABSA): what grows ABSA's batch, ABSA against SGD, and the source's power iteration
against a converged Lanczos estimate."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from hessian_spectra import layout
from hessian_spectra.data.catalog import dataset_info
from hessian_spectra.evidence import Evidence
from hessian_spectra.findings.core import (
    ACC_GAP,
    FAILS,
    HOLDS,
    MIN_GAP,
    UNSURE,
    Claim,
    Measure,
    Verdict,
    Z,
    binomial,
    combine,
    difference,
    fmt,
    within,
)
from hessian_spectra.findings.inputs import configurations, excluded, final, pooled, seed, table

STUDY = "hessianflow"
LAMBDA_RULE, PATIENCE_RULE = "lambda", "patience"


def optimizer(run: dict) -> str:
    """The run's optimizer name."""
    return run["optimizer"]["name"]


def growths(run: dict) -> tuple[list[dict], list[str]]:
    """Each growth of an ABSA run's batch with its cause, read from its history, and what contradicts its schedule.

    A history row holds the batch trained with in that epoch and the lambda measured after it; that lambda decided
    the next epoch's batch: it doubled because lambda fell to half the reference (the lambda of the last change, or
    the first one measured) or because ``patience`` checks passed without a change.
    """
    history = run["history"]
    history = history[history["epoch"] > 0].reset_index(drop=True)
    patience = int(run["optimizer"].get("patience", 10))
    found, wrong = [], []
    reference = reference_error = math.nan
    quiet = 0
    for i in range(len(history) - 1):
        row, after = history.iloc[i], history.iloc[i + 1]
        grew = after["effective_batch_size"] > row["effective_batch_size"]
        if after["effective_batch_size"] < row["effective_batch_size"]:
            wrong.append(f"the batch shrank for epoch {int(after['epoch'])}")
        if not math.isfinite(row["lambda"]):
            continue
        lam = Measure(row["lambda"], row["lambda_residual"])
        quiet += 1
        halved = math.isfinite(reference) and lam.value <= reference / 2
        cause = LAMBDA_RULE if halved else PATIENCE_RULE if quiet >= patience else ""
        if grew and not cause:
            wrong.append(f"the batch grew for epoch {int(after['epoch'])} with neither rule met")
        elif cause and not grew and row["ratio"] < run["optimizer"].get("max_ratio", math.inf):
            wrong.append(f"the {cause} rule was met after epoch {int(row['epoch'])} but the batch did not grow")
        if grew:
            beyond = halved and lam.value + Z * lam.error < (reference - Z * reference_error) / 2
            found.append({"epoch": int(after["epoch"]), "size": int(after["effective_batch_size"]), "cause": cause,
                          "lambda": lam, "reference": Measure(reference, reference_error), "beyond": beyond})
        if grew or not math.isfinite(reference):
            reference, reference_error, quiet = lam.value, lam.error, 0 if grew else quiet
    return found, wrong


def spell_growth(growth: dict) -> str:
    """One growth and its cause, with the numbers."""
    head = f"bs {growth['size']} for epoch {growth['epoch']}"
    if growth["cause"] == PATIENCE_RULE:
        return f"{head} by the patience rule"
    lam, ref = growth["lambda"], growth["reference"]
    within_error = "" if growth["beyond"] else ", within error"
    return f"{head} by lambda {lam} <= half its reference {ref}{within_error}"


def schedule(ev: Evidence, runs: list[dict]) -> Verdict:
    """ABSA's batch growths, each attributed to its cause."""
    absa = [run for run in runs if optimizer(run) == "absa"]
    if not absa:
        return Verdict("", UNSURE, "no ABSA run in this config")
    values, verdicts, whys = [], [], []
    for run in absa:
        found, wrong = growths(run)
        name = f"seed {seed(run)}" if len({seed(r) for r in absa}) > 1 else "ABSA"
        values.append(f"{name}: " + ("; ".join(spell_growth(g) for g in found) or "the batch never grew"))
        by_lambda = [g for g in found if g["cause"] == LAMBDA_RULE and g["beyond"]]
        if run["failure"] is not None:
            verdicts.append(UNSURE)
            whys.append(f"{name} not evidence: {run['failure']}")
        elif wrong:
            verdicts.append(FAILS)
            whys.append(f"{name}: {'; '.join(wrong)}")
        elif by_lambda:
            verdicts.append(HOLDS)
            whys.append(f"{name}: {len(by_lambda)} of {len(found)} growths after lambda fell to half its reference "
                        f"beyond error ({len([g for g in found if g['cause'] == PATIENCE_RULE])} by patience)")
        else:
            verdicts.append(UNSURE)
            whys.append(f"{name}: no growth after lambda fell to half its reference beyond error "
                        f"({lowest_ratio(run)}; needs a ratio below 0.5 by more than its error)")
    return Verdict("; ".join(values), combine(verdicts), "; ".join(whys))


def lowest_ratio(run: dict) -> str:
    """The lowest lambda over the reference it was compared with, in words."""
    history = run["history"].dropna(subset=["lambda"])
    ratios = history["lambda"].to_numpy()[1:] / history["lambda_ref"].to_numpy()[:-1]
    if len(ratios) == 0:
        return "one lambda measured"
    return f"lowest lambda / reference {fmt(float(ratios.min()))}"


def test_accuracy(group: Sequence[dict]) -> Measure:
    """A configuration's final test accuracy with its binomial error (n = the dataset's test split)."""
    return pooled(group, lambda run: binomial(final(run, "test_acc"), dataset_info(run["dataset"]).test_size))


def versus_sgd(ev: Evidence, runs: list[dict]) -> Verdict:
    """ABSA's final test accuracy and optimizer steps against SGD's."""
    groups = configurations(runs)
    absa = [g for g in groups if optimizer(g[0]) == "absa"]
    sgd = [g for g in groups if optimizer(g[0]) == "sgd"]
    if not absa or not sgd:
        return Verdict("", UNSURE, "needs an ABSA and an SGD run")
    a, s = absa[0], sgd[0]
    acc, base = test_accuracy(a), test_accuracy(s)
    steps = [[int(final(run, "steps")) for run in group] for group in (a, s)]
    value = (f"test acc ABSA {acc} vs SGD {base}; steps ABSA {'/'.join(map(str, steps[0]))} vs SGD "
             f"{'/'.join(map(str, steps[1]))}")
    bad = ", ".join(w for w in (excluded(a), excluded(s)) if w)
    if bad:
        return Verdict(value, UNSURE, f"not evidence: {bad}")
    near, text = within(difference(base, acc), ACC_GAP, "SGD's accuracy minus ABSA's")
    fewer = max(steps[0]) < min(steps[1])
    if near is False or not fewer:
        return Verdict(value, FAILS, text if near is False else "ABSA took not fewer optimizer steps than SGD")
    return Verdict(value, HOLDS if near else UNSURE, f"{text}; fewer steps in every seed")


def checkpoint_gap(power: pd.Series, lanczos: pd.Series) -> tuple[bool | None, str]:
    """Whether the power estimate is within ``MIN_GAP`` of the converged Lanczos one beyond the Lanczos residual (the
    power estimate is what is tested, so its own residual is no error of the comparison)."""
    scale = abs(lanczos["value"])
    off = Measure(abs(power["value"] - lanczos["value"]) / scale, lanczos["residual"] / scale)
    agree, _ = within(off, MIN_GAP, "relative gap")
    return agree, f"power {fmt(power['value'])} vs Lanczos {fmt(lanczos['value'])} (relative gap {off})"


def power_agrees(ev: Evidence, runs: list[dict]) -> Verdict:
    """Power iteration against converged Lanczos lambda_max at every checkpoint after a training epoch (the
    source's power iteration runs after each epoch); the initial checkpoint, which runs of one seed share, once and
    apart."""
    initial, off, unsure, compared, skipped = {}, [], [], 0, 0
    for run in runs:
        eigen = table(ev, layout.dominant_eigen(run["key"]))
        eigen = eigen[(eigen["block"] == "full") & (eigen["index"] == 1)]
        lanczos = eigen[eigen["quantity"] == "eigenvalue"].set_index("epoch")
        power = eigen[eigen["quantity"] == "power_eigenvalue"].set_index("epoch")
        for epoch in lanczos.index.intersection(power.index):
            ref, est = lanczos.loc[epoch], power.loc[epoch]
            if not bool(ref["converged"]) or run["failure"] is not None:
                skipped += 1
                continue
            agree, text = checkpoint_gap(est, ref)
            if epoch == 0:
                initial.setdefault((seed(run), ref["value"], est["value"]), text)
                continue
            compared += 1
            label = f"{optimizer(run)} seed {seed(run)} epoch {epoch}"
            if agree is False:
                off.append(f"{label}: {text}")
            elif agree is None:
                unsure.append(f"{label}: {text}")
    value = "; ".join(off + unsure) or f"{compared} trained checkpoints agree"
    apart = "; initial checkpoint (not one the source measures, counted once per seed): " + "; ".join(
        initial.values()) if initial else ""
    counts = (f"checkpoints after a training epoch, each counted once ({skipped} left out: no converged Lanczos "
              f"reference, or a run that does not count)")
    if not compared:
        return Verdict(value, UNSURE, f"no converged Lanczos estimate after a training epoch to compare with{apart}")
    if off:
        return Verdict(value, FAILS,
                       f"off by more than {MIN_GAP:.0%} beyond error at {len(off)} of {compared} {counts}{apart}")
    if unsure:
        return Verdict(value, UNSURE, f"not decided within {MIN_GAP:.0%} at {len(unsure)} of {compared} {counts}: "
                       f"needs a smaller Lanczos residual{apart}")
    return Verdict(value, HOLDS, f"within {MIN_GAP:.0%} beyond error at all {compared} {counts}{apart}")


CLAIMS = (
    Claim(STUDY, "ABSA grows the batch as lambda falls",
          "each growth of ABSA's batch with its cause: lambda (the schedule's own power-iteration estimate after the "
          "epoch before, its residual as error) at most half its reference, or the patience rule",
          "holds if the batch never shrinks, every growth follows its schedule's rules, and at least one growth came "
          "from lambda falling to half its reference beyond both residuals; does not hold if the batch shrinks or a "
          "growth (or its absence) contradicts the rules; inconclusive if no growth came from lambda (only from the "
          "patience rule, or within error) or the run diverged or did not learn", schedule),
    Claim(STUDY, "ABSA ends near SGD's accuracy in fewer optimizer steps",
          "final test accuracy (binomial error, n = the test split) and optimizer steps of ABSA and SGD",
          f"holds if SGD's accuracy minus ABSA's plus 2 standard errors is at most {ACC_GAP} and ABSA took fewer "
          f"steps in every seed; does not hold if that gap minus 2 standard errors exceeds {ACC_GAP} or ABSA took "
          f"not fewer steps; inconclusive in between or if a run diverged or did not learn", versus_sgd),
    Claim(STUDY, "the power-iteration estimate agrees with the converged one",
          "power iteration vs converged Lanczos lambda_max at every checkpoint after a training epoch",
          f"holds if the relative gap is within {MIN_GAP:.0%} beyond 2 standard errors (the Lanczos residual; the "
          f"power estimate is what is tested) at every such checkpoint with a converged Lanczos estimate, each "
          f"checkpoint counted once (the initial one, shared by runs of one seed and not measured by the source, "
          f"reported apart); does not hold if above {MIN_GAP:.0%} beyond that error at any; inconclusive if one is "
          f"undecided or none converged", power_agrees),
)
