"""The scorecard's vocabulary and arithmetic: verdicts, a value with its standard error, pooling over seeds, and
the one rule by which two values are told apart (torch-free).

Two values are told apart only when their difference exceeds two combined standard errors (two means over the same
seeds: two standard errors of their seed-by-seed differences); with one seed, whose spread is unknown, it must also
exceed ``MIN_GAP`` of the larger value. Every undecided comparison says which
number would have to change (``Gap.needs``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
VERDICTS = (HOLDS, FAILS, UNSURE)
Z = 2.0  # standard errors a difference must exceed
MIN_GAP = 0.05  # with one seed, a relative difference below this is not told apart from seed-to-seed noise
ACC_GAP = 0.05  # accuracies closer than this (beyond their errors) are "similar" / "near"
WINDOW = 3  # epochs averaged so that no single epoch's value decides a peak or an order
TOLD_APART = (f"told apart only beyond {Z:g} combined standard errors (over several seeds, of the seed-by-seed "
              f"differences; with one seed also beyond {MIN_GAP:.0%} of the larger value)")


@dataclass(frozen=True)
class Verdict:
    """A claim's outcome on some runs: the values it computed, the verdict and the numbers behind it."""

    value: str
    verdict: str
    why: str


@dataclass(frozen=True)
class Claim:
    """One claim of a source, what is computed for it and the rule that turns the numbers into a verdict."""

    study: str
    claim: str
    metric: str
    rule: str
    check: Callable[..., Verdict]


def fmt(value: float) -> str:
    """A number as the scorecard spells it."""
    return f"{value:.4g}"


@dataclass(frozen=True)
class Measure:
    """A value, its standard error (NaN: none known) and the number of seeds it is the mean of; a mean over seeds
    keeps each seed's own (value, error) in ``parts``, so that two such means compare seed by seed."""

    value: float
    stderr: float = math.nan
    seeds: int = 1
    parts: tuple[tuple[int, float, float], ...] = ()  # (seed, value, error) of each seed

    def __str__(self) -> str:
        return fmt(self.value) + (f" +- {fmt(self.stderr)}" if math.isfinite(self.stderr) else "")

    @property
    def error(self) -> float:
        """The standard error, zero where none is known."""
        return self.stderr if math.isfinite(self.stderr) else 0.0


def _mean(values: Sequence[float], errors: Sequence[float]) -> tuple[float, float]:
    """The mean of ``values`` and the larger of two standard errors: their spread over sqrt(n), and their own
    ``errors`` propagated to the mean."""
    values = np.asarray(values, dtype=float)
    spread = float(values.std(ddof=1)) / math.sqrt(len(values))
    propagated = math.sqrt(sum(e**2 for e in errors)) / len(values)
    return float(values.mean()), max(spread, propagated)


def pool(measures: Sequence[Measure], seeds: Sequence[int]) -> Measure:
    """The mean over the ``seeds`` (one measure each, ``_mean``), each seed's part kept; one measure is returned as it
    is."""
    if len(measures) == 1:
        return measures[0]
    parts = tuple((s, m.value, m.error) for s, m in zip(seeds, measures))
    return Measure(*_mean([m.value for m in measures], [m.error for m in measures]), len(measures), parts)


def mean_of(measures: Sequence[Measure]) -> Measure:
    """The mean of values along one run or seed mean, e.g. consecutive epochs (``_mean``): one outlying value widens
    its error rather than moving a verdict. Means over the same seeds keep each seed's mean as its part."""
    if len(measures) == 1:
        return measures[0]
    value, stderr = _mean([m.value for m in measures], [m.error for m in measures])
    seeds = [tuple(s for s, _, _ in m.parts) for m in measures]
    parts = ()
    if seeds[0] and all(s == seeds[0] for s in seeds):
        parts = tuple((s, *_mean([m.parts[i][1] for m in measures], [m.parts[i][2] for m in measures]))
                      for i, s in enumerate(seeds[0]))
    return Measure(value, stderr, min(m.seeds for m in measures), parts)


def paired(a: Measure, b: Measure) -> Measure | None:
    """``b - a`` seed by seed, pooled (``_mean``), where both are means over the same two or more seeds; else None.
    Runs of one seed share their initial weights and data order, so their difference varies less than either."""
    if len(a.parts) < 2 or [s for s, _, _ in a.parts] != [s for s, _, _ in b.parts]:
        return None
    differences = [vb - va for (_, va, _), (_, vb, _) in zip(a.parts, b.parts)]
    errors = [math.hypot(ea, eb) for (_, _, ea), (_, _, eb) in zip(a.parts, b.parts)]
    return Measure(*_mean(differences, errors), len(differences))


def binomial(accuracy: float, size: int) -> Measure:
    """An accuracy measured on ``size`` samples, with its binomial standard error sqrt(p (1 - p) / n)."""
    if size < 1:
        raise ValueError(f"an accuracy on {size} samples has no error (no validation or test split?)")
    return Measure(accuracy, math.sqrt(max(accuracy * (1 - accuracy), 0.0) / size))


@dataclass(frozen=True)
class Gap:
    """The difference ``b - a`` of two measures and what its size must exceed to tell them apart."""

    difference: float
    threshold: float
    against: str  # what the threshold is, in words

    @property
    def decided(self) -> bool:
        """Whether the gap exceeds its threshold."""
        return abs(self.difference) > self.threshold

    @property
    def needs(self) -> str:
        """Which number would have to change to decide an undecided gap."""
        return f"needs the gap {fmt(abs(self.difference))} to exceed {self.against} {fmt(self.threshold)}"


def gap(a: Measure, b: Measure) -> Gap:
    """``b - a`` against two standard errors: of the seed-by-seed differences where both are means over the same
    seeds, else the two errors combined (and with one seed also ``MIN_GAP`` of the larger value)."""
    by_seed = paired(a, b)
    if by_seed is not None:
        return Gap(by_seed.value, Z * by_seed.error, f"{Z:g} standard errors of the seeds' differences")
    errors = Z * math.hypot(a.error, b.error)
    if min(a.seeds, b.seeds) < 2:
        relative = MIN_GAP * max(abs(a.value), abs(b.value))
        if relative > errors:
            return Gap(b.value - a.value, relative, f"{MIN_GAP:.0%} of the larger value (one seed)")
    return Gap(b.value - a.value, errors, f"{Z:g} standard errors")


def within(difference: Measure, limit: float, what: str) -> tuple[bool | None, str]:
    """Whether ``difference`` (>= 0 meaning worse) is at most ``limit`` beyond its error (True), above it beyond its
    error (False), or neither (None); with the numbers, and for None what would decide it."""
    margin = Z * difference.error
    text = f"{what} {fmt(difference.value)} +- {fmt(difference.error)}"
    if difference.value + margin <= limit:
        return True, f"{text}: within {fmt(limit)} beyond {Z:g} standard errors"
    if difference.value - margin > limit:
        return False, f"{text}: above {fmt(limit)} beyond {Z:g} standard errors"
    return None, (f"{text}: needs {what} plus {Z:g} standard errors ({fmt(difference.value + margin)}) to be at "
                  f"most {fmt(limit)}, or minus them ({fmt(difference.value - margin)}) above it")


def difference(a: Measure, b: Measure) -> Measure:
    """``a - b`` with their errors combined (independent measures)."""
    return Measure(a.value - b.value, math.hypot(a.error, b.error), min(a.seeds, b.seeds))


def separation(a: Measure, b: Measure) -> Measure:
    """``|a - b|`` with their errors combined."""
    d = difference(a, b)
    return Measure(abs(d.value), d.stderr, d.seeds)


def combine(verdicts: Sequence[str]) -> str:
    """One verdict from several parts: any failure fails, else any doubt leaves it inconclusive."""
    if not verdicts:
        return UNSURE
    return FAILS if FAILS in verdicts else UNSURE if UNSURE in verdicts else HOLDS


@dataclass(frozen=True)
class Point:
    """One value of an ordered comparison and why it cannot count (empty when it can)."""

    label: str
    measure: Measure
    excluded: str = ""


def spell(points: Sequence[Point]) -> str:
    """The values of a comparison, labelled, with their standard errors where known."""
    return "; ".join(f"{p.label}: {p.measure}" for p in points)


def ordered(points: Sequence[Point], increasing: bool, what: str) -> Verdict:
    """The verdict on ``points`` (in the order of their x) rising (or falling) at every step: each step told apart
    by ``gap``."""
    value = spell(points)
    if len(points) < 2:
        return Verdict(value, UNSURE, f"fewer than two {what} to compare")
    excluded = [f"{p.label} {p.excluded}" for p in points if p.excluded]
    if excluded:
        return Verdict(value, UNSURE, f"not evidence: {', '.join(excluded)}")
    steps = [(a, b, gap(a.measure, b.measure)) for a, b in zip(points, points[1:])]
    wrong = [(a, b) for a, b, g in steps if g.decided and (g.difference > 0) != increasing]
    if wrong:
        broken = ", ".join(f"{a.label} {a.measure} -> {b.label} {b.measure}" for a, b in wrong)
        return Verdict(value, FAILS, f"order broken at {broken}")
    close = [(a, b, g) for a, b, g in steps if not g.decided]
    if close:
        ties = "; ".join(f"{a.label} -> {b.label} {g.needs}" for a, b, g in close)
        return Verdict(value, UNSURE, f"not told apart: {ties}")
    return Verdict(value, HOLDS, f"{'rises' if increasing else 'falls'} at every step, each beyond its error")


def windows(curve: Sequence[tuple[int, Measure]], width: int) -> list[tuple[str, Measure]]:
    """The means of ``width`` consecutive epochs of ``curve`` (epoch, measure), each labelled by its epochs."""
    means = []
    for start in range(len(curve) - width + 1):
        part = curve[start : start + width]
        label = f"epoch {part[0][0]}" if width == 1 else f"epochs {part[0][0]}-{part[-1][0]}"
        means.append((label, mean_of([m for _, m in part])))
    return means


def window_width(epochs: int) -> int:
    """Epochs per window: ``WINDOW`` when a run has at least two windows' worth, else single epochs (whose errors
    are then only their estimators')."""
    return WINDOW if epochs >= 2 * WINDOW else 1


@dataclass(frozen=True)
class Ending:
    """How a curve ends: its windows after epoch 0 (``windows``), the last one against those that end before it
    starts."""

    means: list[tuple[str, Measure]]
    width: int

    @property
    def last(self) -> tuple[str, Measure]:
        """The last window's label and mean."""
        return self.means[-1]

    @property
    def earlier(self) -> list[tuple[str, Measure]]:
        """The windows that share no epoch with the last."""
        return self.means[: len(self.means) - self.width]

    @property
    def peak(self) -> tuple[str, Measure]:
        """The highest window."""
        return max(self.means, key=lambda w: w[1].value)

    def rising(self) -> bool:
        """Whether the last window is above every earlier one beyond their errors (the peak may lie ahead)."""
        gaps = [gap(m, self.last[1]) for _, m in self.earlier]
        return bool(gaps) and all(g.decided and g.difference > 0 for g in gaps)

    def fallen_from(self) -> tuple[str, Measure] | None:
        """The earlier window the last is furthest below beyond their errors, if any."""
        below = [(w, gap(w[1], self.last[1])) for w in self.earlier]
        below = [(w, g) for w, g in below if g.decided and g.difference < 0]
        return min(below, key=lambda b: b[1].difference)[0] if below else None

    def nearest(self) -> tuple[str, Gap]:
        """The earlier window nearest to being told apart from the last (largest gap over its threshold)."""
        gaps = [(label, gap(m, self.last[1])) for label, m in self.earlier]
        return max(gaps, key=lambda g: abs(g[1].difference) / g[1].threshold if g[1].threshold else math.inf)


def ending(points: Sequence[tuple[int, Measure]]) -> Ending:
    """The ``Ending`` of a curve of (epoch, measure), its windows taken over the epochs after epoch 0."""
    trained = [p for p in points if p[0] > 0]
    width = window_width(len(trained))
    return Ending(windows(trained, width), width)
