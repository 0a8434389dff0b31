"""Seed 003 (weight initialisation and the Hessian chain rule): ||H||_F of dense1 at initialisation against the init
scale, how a tiny init trains, and the Gauss-Newton term against the curvature term at initialisation.

The source builds its network with ReLU (``build_network('relu', sd)``) and speaks of the Hessian at
initialisation, so ReLU runs at step 0 decide; other activations are reported apart, as extensions. With ReLU (or
no activation) the network is piecewise linear in dense1, so the curvature term of dense1's own block is exactly
zero: an automatic result that is no evidence, and the full Hessian's split decides instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from hessian_spectra.data.catalog import dataset_info
from hessian_spectra.evidence import Evidence
from hessian_spectra.findings.core import (
    FAILS,
    HOLDS,
    TOLD_APART,
    UNSURE,
    Claim,
    Measure,
    Point,
    Verdict,
    combine,
    fmt,
    gap,
    ordered,
)
from hessian_spectra.findings.inputs import configurations, excluded, pooled, study_table

STUDY = "init_chain_rule"
SOURCE_ACTIVATION = "relu"
MLP_DEFAULT = "relu"  # the mlp's activation when a run names none
BLOCK = "dense1"


def chain_rule(ev: Evidence, runs: list[dict]) -> pd.DataFrame:
    """The study table's rows of ``runs``."""
    return study_table(ev, STUDY, runs)


def by_activation(runs: list[dict]) -> dict[str, list[list[dict]]]:
    """The configurations of each activation (the source's first), each list in the order of the init sd."""
    groups: dict[str, list[list[dict]]] = {}
    for group in configurations(runs):
        groups.setdefault(group[0]["model_options"].get("activation", MLP_DEFAULT), []).append(group)
    order = sorted(groups, key=lambda a: (a != SOURCE_ACTIVATION, a))
    return {a: sorted(groups[a], key=lambda g: g[0]["model_options"]["init_sd"]) for a in order}


def sd_label(group: Sequence[dict]) -> str:
    """A group of runs' init sd as a label, e.g. ``sd0.1``."""
    return f"sd{group[0]['model_options']['init_sd']:g}"


def measure_at(rows: pd.DataFrame, block: str, quantity: str, epoch: int | None) -> Callable[[dict], Measure]:
    """A run's value of ``quantity`` in ``block`` at ``epoch`` (None: its last tracked epoch), with its error."""

    def measure(run: dict) -> Measure:
        own = rows[(rows["run"] == run["key"]) & (rows["block"] == block) & (rows["quantity"] == quantity)]
        row = own.loc[own["epoch"].idxmax()] if epoch is None else own[own["epoch"] == epoch].iloc[0]
        return Measure(row["value"], row["stderr"])

    return measure


def upscaled(runs: Sequence[dict]) -> str:
    """A note when the inputs are upscaled: they span fewer directions than dense1 has inputs."""
    run = runs[0]
    native, size = dataset_info(run["dataset"]).native_size, run.get("image_size")
    if not size or size <= native:
        return ""
    return (f"; note: {run['dataset']} is upscaled from {native}x{native} to {size}x{size}, so its inputs span at "
            f"most {native * native} of dense1's {size * size} input directions (its Hessian has rank at most "
            f"{native * native / (size * size):.0%} of full)")


def decide(parts: dict[str, Verdict]) -> Verdict:
    """The source activation's verdict decides; the other activations are reported apart as extensions."""
    source = parts.get(SOURCE_ACTIVATION)
    extensions = "; ".join(f"{a}: {v.verdict} ({v.why})" for a, v in parts.items() if a != SOURCE_ACTIVATION)
    extra = f"; extensions, not deciding: {extensions}" if extensions else ""
    values = "; ".join(f"{a}: {v.value}" for a, v in parts.items())
    if source is None:
        return Verdict(values, UNSURE, f"no run with the source's activation ({SOURCE_ACTIVATION}){extra}")
    return Verdict(values, source.verdict, f"{SOURCE_ACTIVATION} (the source's): {source.why}{extra}")


def init_frobenius(ev: Evidence, runs: list[dict]) -> Verdict:
    """||H||_F of dense1 at initialisation against the init sd."""
    rows = chain_rule(ev, runs)
    norm = measure_at(rows, BLOCK, "frobenius_H", 0)
    loss = measure_at(rows, "full", "loss", 0)
    parts = {}
    for activation, groups in by_activation(runs).items():
        verdict = ordered([Point(sd_label(g), pooled(g, norm)) for g in groups], True, "init sds")
        losses = ", ".join(f"{sd_label(g)} {fmt(pooled(g, loss).value)}" for g in groups)
        parts[activation] = Verdict(verdict.value, verdict.verdict, f"{verdict.why}; initial loss {losses}")
    verdict = decide(parts)
    return Verdict(verdict.value, verdict.verdict, verdict.why + upscaled(runs))


def tiny_init(ev: Evidence, runs: list[dict]) -> Verdict:
    """The smallest init sd's final loss against the best (lowest) final loss of the larger sds."""
    rows = chain_rule(ev, runs)
    loss = measure_at(rows, "full", "loss", None)
    parts = {}
    for activation, groups in by_activation(runs).items():
        points = [Point(sd_label(g), pooled(g, loss), excluded(g)) for g in groups]
        value = "final loss " + "; ".join(f"{p.label} {p.measure}" for p in points)
        tiny, larger = points[0], [p for p in points[1:] if not p.excluded]
        dropped = "".join(f"; {p.label} left out: {p.excluded}" for p in points[1:] if p.excluded)
        if tiny.excluded:
            parts[activation] = Verdict(value, UNSURE, f"not evidence: {tiny.label} {tiny.excluded}")
            continue
        if not larger:
            parts[activation] = Verdict(value, UNSURE, f"no larger init sd that counts{dropped}")
            continue
        best = min(larger, key=lambda p: p.measure.value)
        slower = gap(best.measure, tiny.measure)
        if not slower.decided:
            verdict = Verdict(value, UNSURE, f"{tiny.label} not told apart from the best larger sd, {best.label} "
                              f"({slower.needs})")
        elif slower.difference > 0:
            verdict = Verdict(value, HOLDS, f"{tiny.label} ends above the best larger sd, {best.label}, beyond error")
        else:
            verdict = Verdict(value, FAILS, f"{tiny.label} ends below every larger sd beyond error (the best of them: "
                              f"{best.label})")
        parts[activation] = Verdict(verdict.value, verdict.verdict, verdict.why + dropped)
    return decide(parts)


def automatic(measure: Measure) -> bool:
    """A curvature term that is exactly zero with zero error: the network is piecewise linear in the block."""
    return measure.value == 0 and measure.error == 0


def gauss_newton(ev: Evidence, runs: list[dict]) -> Verdict:
    """||G||_F against ||H - G||_F at initialisation, of dense1's block where its curvature term is not identically
    zero, and of the full Hessian."""
    rows = chain_rule(ev, runs)
    parts = {}
    for activation, groups in by_activation(runs).items():
        values, verdicts, whys = [], [], []
        for group in groups:
            bad = excluded(group)
            for block in (BLOCK, "full"):
                g = pooled(group, measure_at(rows, block, "frobenius_G", 0))
                c = pooled(group, measure_at(rows, block, "frobenius_H_minus_G", 0))
                name = f"{sd_label(group)} {block}"
                values.append(f"{name}: G {g}, H-G {c}")
                apart = gap(c, g)
                if bad:
                    verdicts.append(UNSURE)
                    whys.append(f"{name} not evidence: {bad}")
                elif automatic(c):
                    whys.append(f"{name}: curvature term exactly 0 (piecewise linear in the block: automatic, "
                                "not evidence)")
                elif not apart.decided:
                    verdicts.append(UNSURE)
                    whys.append(f"{name}: {apart.needs}")
                else:
                    verdicts.append(HOLDS if apart.difference > 0 else FAILS)
                    whys.append(f"{name}: {'G' if apart.difference > 0 else 'H-G'} larger beyond error")
        if not verdicts:
            whys.append("needs a block whose curvature term is not identically zero")
        parts[activation] = Verdict("; ".join(values), combine(verdicts), "; ".join(whys))
    verdict = decide(parts)
    return Verdict(verdict.value, verdict.verdict, verdict.why + upscaled(runs))


SOURCE = (f"judged on the source's activation ({SOURCE_ACTIVATION}); other activations are reported apart as "
          "extensions and do not decide")
CLAIMS = (
    Claim(STUDY, "||H||_F of the first layer grows with the init scale",
          "||H||_F of dense1 at initialisation (Hutchinson, its standard error), per init sd",
          f"holds if it rises at every step of the sd order, does not hold if it falls at a step, each step "
          f"{TOLD_APART}, else inconclusive; {SOURCE}", init_frobenius),
    Claim(STUDY, "a tiny init learns slowly",
          "final loss on the Hessian subset per init sd",
          f"holds if the smallest sd ends above the best (lowest) final loss of the larger sds beyond error: some "
          f"larger init trains faster; does not hold if it ends below it beyond error; inconclusive if within "
          f"error, with fewer than two sds, or if the smallest sd's run diverged or did not learn (larger sds that "
          f"did are left out, and named); values are {TOLD_APART}; {SOURCE}", tiny_init),
    Claim(STUDY, "the Gauss-Newton term dominates the curvature term",
          "||G||_F vs ||H - G||_F at initialisation (Hutchinson, standard errors), of dense1's block and of the "
          "full Hessian",
          f"holds if ||G||_F exceeds ||H - G||_F beyond error in every block and sd that can show it; does not hold "
          f"if it is below in one; inconclusive if within error; a curvature term exactly zero (ReLU or no "
          f"activation make dense1's block piecewise linear) is automatic and not evidence, so there the full "
          f"Hessian decides; values are {TOLD_APART}; {SOURCE}", gauss_newton),
)
