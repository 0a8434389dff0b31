"""Seed 000 (Hessian-based analysis of large-batch training): the top Hessian eigenvalues and the loss surface at
the points of convergence reached by momentum SGD, against the batch size."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from hessian_spectra import layout
from hessian_spectra.evidence import Evidence
from hessian_spectra.findings.core import TOLD_APART, Claim, Measure, Point, Verdict, fmt, ordered
from hessian_spectra.findings.inputs import configurations, excluded, final, pooled, study_table

STUDY = "large_batch"
# "At convergence": a run counts as at a minimum when its mean training loss over its last epoch is at most this.
LOSS_AT_MINIMUM = 0.01


def not_at_minimum(group: Sequence[dict]) -> str:
    """Why a configuration is not at a minimum (some seed's final training loss above ``LOSS_AT_MINIMUM``)."""
    losses = [final(run, "train_loss") for run in group]
    if max(losses) <= LOSS_AT_MINIMUM:
        return ""
    return f"not at a minimum (needs its final training loss {fmt(max(losses))} at most {LOSS_AT_MINIMUM:g})"


def training_note(groups: Sequence[Sequence[dict]]) -> str:
    """Optimizer steps, final training accuracy and loss of each compared batch size (the worst seed's)."""
    parts = []
    for group in groups:
        run = max(group, key=lambda r: final(r, "train_loss"))
        parts.append(f"bs{run['batch_size']} {int(final(run, 'steps'))} ({fmt(final(run, 'train_acc'))}, "
                     f"{fmt(final(run, 'train_loss'))})")
    return "; steps (train acc, train loss over the last epoch" + (", worst seed" if len(groups[0]) > 1 else "") \
        + "): " + ", ".join(parts)


def by_batch_size(runs: list[dict]) -> list[list[dict]]:
    """The runs' configurations in the order of their batch size."""
    return sorted(configurations(runs), key=lambda group: group[0]["batch_size"])


def cannot_count(group: Sequence[dict], why: str = "") -> str:
    """Why a batch size's value is no evidence: a seed diverged or did not learn, the estimate, or not at a minimum."""
    return excluded(group) or why or not_at_minimum(group)


def eigenvalues(ev: Evidence, runs: list[dict]) -> Verdict:
    """lambda_1 at the final checkpoint against the batch size."""
    top = study_table(ev, STUDY, runs)
    hessian = "full" if (top["hessian"] == "full").any() else "last_layer"
    rows = top[(top["hessian"] == hessian) & (top["index"] == 1)].set_index("run")
    groups, points = by_batch_size(runs), []
    for group in groups:
        found = rows.loc[[run["key"] for run in group]]
        bad = ", ".join(f"unconverged (relative residual {fmt(r.relative_residual)} > {fmt(r.tolerance)})"
                        for r in found.itertuples() if not bool(r.converged))
        measure = pooled(group, lambda run: Measure(rows.loc[run["key"], "value"], rows.loc[run["key"], "residual"]))
        points.append(Point(f"bs{group[0]['batch_size']}", measure, cannot_count(group, bad)))
    verdict = ordered(points, True, "batch sizes")
    return Verdict(f"{hessian} lambda_1: {verdict.value}", verdict.verdict, verdict.why + training_note(groups))


def loss_rise(landscape: pd.DataFrame) -> tuple[float, str]:
    """Mean loss over the top-2 eigenvector grid minus the loss at theta, and why it cannot count."""
    eigen = landscape[landscape["direction"] == "eigen"]
    centre = eigen.loc[(eigen["c1"].abs() + eigen["c2"].abs()).idxmin(), "loss"]
    first = eigen.iloc[0]
    why = "" if bool(first["converged1"]) and bool(first["converged2"]) else "eigenvectors unconverged"
    return float(eigen["loss"].mean() - centre), why


def surface(ev: Evidence, runs: list[dict]) -> Verdict:
    """The loss rise over the top-2 eigenvector grid against the batch size."""
    groups, points = by_batch_size(runs), []
    for group in groups:
        rises = {run["key"]: loss_rise(ev.read_table(layout.landscape(run["key"]))) for run in group}
        bad = ", ".join(sorted({why for _, why in rises.values() if why}))
        measure = pooled(group, lambda run: Measure(rises[run["key"]][0]))
        points.append(Point(f"bs{group[0]['batch_size']}", measure, cannot_count(group, bad)))
    verdict = ordered(points, True, "loss surfaces")
    return Verdict(verdict.value, verdict.verdict, verdict.why + training_note(groups))


AT_MINIMUM = (f"compared runs must be at a minimum (the source: 'at the points of convergence'): each seed's mean "
              f"training loss over its last epoch at most {LOSS_AT_MINIMUM:g}, else inconclusive")
CLAIMS = (
    Claim(STUDY, "at convergence the top Hessian eigenvalues grow with the batch size",
          "lambda_1 of the full (else last-layer) Hessian at the final checkpoint, per batch size (mean over seeds)",
          f"holds if lambda_1 rises at every step of the batch-size order and does not hold if it falls at a step, "
          f"each step {TOLD_APART}; {AT_MINIMUM}",
          eigenvalues),
    Claim(STUDY, "the loss along the top-2 eigenvectors rises faster for larger batches",
          "mean loss over the top-2 eigenvector grid minus the loss at theta, per batch size (mean over seeds)",
          f"holds if the rise grows at every step of the batch-size order and does not hold if it shrinks at a step, "
          f"each step {TOLD_APART}; {AT_MINIMUM}", surface),
)
