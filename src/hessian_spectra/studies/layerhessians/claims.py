"""Seed 004 (LayerHessians): which layer block's spectrum is closest to the full Hessian's, and how the full
Hessian's top eigenvalue and trace move over training; with a consistency check of the traces."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from hessian_spectra import layout
from hessian_spectra.evidence import Evidence
from hessian_spectra.findings.core import (
    FAILS,
    HOLDS,
    TOLD_APART,
    UNSURE,
    WINDOW,
    Claim,
    Measure,
    Verdict,
    Z,
    combine,
    ending,
    gap,
    pool,
)
from hessian_spectra.findings.inputs import configurations, excluded, seed, study_table
from hessian_spectra.matching import SOURCE
from hessian_spectra.tables import FULL

STUDY = "layerhessians"
SOURCE_EPOCHS = 50  # the source trains every run for 50 epochs
PROFILE = "wasserstein"  # the profile summed over training (the source's match_distros_wasserstein)


def name(group: Sequence[dict]) -> str:
    """A group of runs' model and dataset, as ``model/dataset``."""
    return f"{group[0]['model']}/{group[0]['dataset']}"


def u_shape(ev: Evidence, runs: list[dict]) -> Verdict:
    """The source's distance of each layer block's spectrum to the full one, summed over training: the closest
    layer against the first and the last."""
    profiles = study_table(ev, STUDY, runs, layout.MATCH_PROFILES)
    profiles = profiles[(profiles["metric"] == SOURCE) & (profiles["kind"] == PROFILE)]
    values, verdicts, whys = [], [], []
    for group in configurations(runs):
        rows = profiles[profiles["run"].isin([run["key"] for run in group])]
        layers = sorted(rows["layer"].unique())
        seeds = {run["key"]: seed(run) for run in group}
        distance = {}
        for layer in layers:
            own = rows[rows["layer"] == layer].sort_values("run", key=lambda keys: keys.map(seeds))
            distance[layer] = pool([Measure(r.distance, r.distance_stderr) for r in own.itertuples()],
                                   [seeds[key] for key in own["run"]])
        values.append(f"{name(group)}: " + ", ".join(f"L{layer} {distance[layer]}" for layer in layers))
        probes = int(rows["probes"].min()) if len(rows) else 0
        bad = excluded(group)
        if bad:
            verdicts.append(UNSURE)
            whys.append(f"{name(group)} not evidence: {bad}")
        elif len(layers) < 3:
            verdicts.append(UNSURE)
            whys.append(f"{name(group)}: fewer than three layers")
        elif len(group) < 2 and probes < 2:
            verdicts.append(UNSURE)
            whys.append(f"{name(group)}: densities from {probes} probe, so distances carry no error (needs at least "
                        "2 probes or 2 seeds)")
        else:
            verdict, why = closest_layer(distance, layers)
            verdicts.append(verdict)
            whys.append(f"{name(group)}: {why}")
    if not verdicts:
        return Verdict("", UNSURE, "no matching profile")
    return Verdict("; ".join(values), combine(verdicts), "; ".join(whys))


def closest_layer(distance: dict[int, Measure], layers: list[int]) -> tuple[str, str]:
    """Whether the closest middle layer is closer than both end layers beyond error (holds), an end layer is
    closer than every middle one beyond error (does not hold), or neither."""
    middle = min(layers[1:-1], key=lambda layer: distance[layer].value)
    ends = {layer: gap(distance[middle], distance[layer]) for layer in (layers[0], layers[-1])}
    closer_end = [layer for layer, g in ends.items() if g.decided and g.difference < 0]
    undecided = [f"L{layer}: {g.needs}" for layer, g in ends.items() if not g.decided]
    if closer_end:
        end = closer_end[0]
        beats_all = all(gap(distance[m], distance[end]).decided for m in layers[1:-1])
        if beats_all:
            return FAILS, f"end layer L{end} closer than every middle layer beyond error"
        return UNSURE, f"end layer L{end} closer than the best middle layer L{middle}, not beyond error of them all"
    if undecided:
        return UNSURE, f"closest middle layer L{middle} not told apart from {'; '.join(undecided)}"
    return HOLDS, f"middle layer L{middle} closer than both end layers beyond error"


def spectra(ev: Evidence, run: dict) -> pd.DataFrame:
    """Every epoch's full and layer-block rows of one run."""
    return pd.concat([ev.read_table(layout.layer_spectrum(run["key"], epoch, "tsv"))
                      for epoch in range(run["epochs"] + 1)], ignore_index=True)


def full_curve(rows: pd.DataFrame, quantity: str) -> tuple[list[tuple[int, Measure]], str]:
    """The full Hessian's lambda_1 (residual as error) or trace (probe standard error) per epoch, and why it
    cannot count (unconverged epochs)."""
    full = rows[(rows["block"] == FULL) & (rows["quantity"] == quantity)]
    if quantity == "eigenvalue":
        full = full[full["index"] == 1]
        bad = [str(int(r.epoch)) for r in full.itertuples() if not bool(r.converged)]
        error = "residual"
    else:
        bad, error = [], "stderr"
    full = full.sort_values("epoch")
    why = f"unconverged at epoch(s) {', '.join(bad)}" if bad else ""
    return [(int(r.epoch), Measure(r.value, getattr(r, error))) for r in full.itertuples()], why


def trace_check(rows: pd.DataFrame) -> list[str]:
    """Epochs whose full-Hessian trace is below the sum of its layer-block traces beyond their errors (the layer
    blocks are diagonal blocks of the full Hessian, so with curvature that is positive where it matters the full
    trace should not be smaller)."""
    traces = rows[rows["quantity"] == "density_trace"]
    flagged = []
    for epoch, part in traces.groupby("epoch"):
        full = part[part["block"] == FULL]
        layers = part[part["block"] != FULL]
        if full.empty or layers.empty:
            continue
        total = Measure(full["value"].iloc[0], full["stderr"].iloc[0])
        summed = Measure(layers["value"].sum(), math.sqrt((layers["stderr"] ** 2).sum()))
        if math.isfinite(total.stderr) and math.isfinite(summed.stderr) and \
                summed.value - total.value > Z * math.hypot(total.stderr, summed.stderr):
            flagged.append(f"epoch {int(epoch)}: full trace {total} below the layer blocks' sum {summed}")
    return flagged


def falls(points: list[tuple[int, Measure]], epochs: int) -> tuple[str, str, str]:
    """(verdict, value, why) of one curve falling as training goes on: its last window below an earlier one beyond
    their errors."""
    s = ending(points)
    value = "; ".join(f"{label} {m}" for label, m in s.means)
    if not s.earlier:
        return UNSURE, value, "too few epochs to compare"
    fallen = s.fallen_from()
    if fallen is not None:
        return HOLDS, value, f"{s.last[0]} below {fallen[0]} beyond error"
    if not s.rising():
        label, nearest = s.nearest()
        return UNSURE, value, f"{s.last[0]} not told apart from any earlier window (from {label}: {nearest.needs})"
    if epochs >= SOURCE_EPOCHS:
        return FAILS, value, f"{s.last[0]} above every earlier window beyond error after {epochs} epochs"
    return UNSURE, value, (f"still rising: {s.last[0]} above every earlier window beyond error (needs training past "
                           f"the peak; the source trains {SOURCE_EPOCHS} epochs, this run {epochs})")


def layer_falls(ev: Evidence, runs: list[dict]) -> Verdict:
    """The full Hessian's lambda_1 and trace over training, and the trace check of every epoch."""
    values, verdicts, whys = [], [], []
    for group in configurations(runs):
        per_run = [spectra(ev, run) for run in group]
        flagged = [f"seed {seed(run)} {flag}" if len(group) > 1 else flag
                   for run, rows in zip(group, per_run) for flag in trace_check(rows)]
        for quantity, label in (("eigenvalue", "lambda_1"), ("density_trace", "trace")):
            curves, bad = [], [excluded(group)]
            for rows in per_run:
                points, why = full_curve(rows, quantity)
                curves.append(dict(points))
                bad.append(why)
            epochs = sorted(set.intersection(*(set(c) for c in curves)))
            points = [(e, pool([c[e] for c in curves], [seed(run) for run in group])) for e in epochs]
            verdict, value, why = falls(points, group[0]["epochs"])
            probes = per_run[0][(per_run[0]["block"] == FULL) & (per_run[0]["quantity"] == quantity)]["probes"]
            bad = ", ".join(w for w in bad if w)
            if bad:
                verdict, why = UNSURE, f"not evidence: {bad}"
            elif quantity == "density_trace" and len(group) < 2 and probes.min() < 2:
                verdict, why = UNSURE, "from 1 probe: no standard error (needs at least 2 probes or 2 seeds)"
            if quantity == "density_trace" and flagged:
                why += (f" (flag: {'; '.join(flagged)}; the full Hessian also holds the bias and BatchNorm blocks, "
                        "whose trace can be negative, or the errors of a few probes are too small)")
            values.append(f"{name(group)} {label}: {value}")
            verdicts.append(verdict)
            whys.append(f"{name(group)} {label}: {why}")
    if not verdicts:
        return Verdict("", UNSURE, "no layer spectra")
    return Verdict("; ".join(values), combine(verdicts), "; ".join(whys))


CLAIMS = (
    Claim(STUDY, "layer-block spectra resemble the full one, middle layers the most (the U-shaped curve)",
          "the source's distance of each layer block's density to the full one, summed over the epochs after the "
          "first (match_distros_wasserstein), its error from the density probes (jackknife) or the seeds",
          "holds if the closest middle layer is closer than both the first and the last layer beyond error; does "
          "not hold if an end layer is closer than every middle layer beyond error; inconclusive otherwise, with "
          "fewer than three layers, densities from one probe and one seed (no error), or a run that diverged or did "
          f"not learn; values are {TOLD_APART}", u_shape),
    Claim(STUDY, "the top eigenvalue and the trace fall as training goes on",
          f"full-Hessian lambda_1 (Lanczos residual as error) and trace (SLQ, probe standard error), as means over "
          f"{WINDOW} consecutive epochs (single epochs for runs shorter than {2 * WINDOW})",
          f"holds if for both the last window is below an earlier window (one that shares no epoch with it) beyond "
          f"error; does not hold if one is above every earlier window beyond error after the source's "
          f"{SOURCE_EPOCHS} epochs; inconclusive if within error, still rising in a shorter run, from one probe and "
          f"one seed, unconverged, or from a run that diverged or did not learn; values are {TOLD_APART}. A "
          f"consistency check flags in the why every epoch whose full trace is below the sum of its layer-block "
          f"traces beyond their errors", layer_falls),
)
