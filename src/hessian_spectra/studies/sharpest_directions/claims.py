"""Seed 001 (sharpest directions and the SGD step length): lambda_max along training, its peak against the
learning rate and the batch size, and where NSGD ends against SGD.

lambda_max swings by tens of percent from one epoch to the next, so no single epoch decides: peaks and final
values are means over ``WINDOW`` consecutive epochs, with their spread as error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hessian_spectra import layout
from hessian_spectra.evidence import Evidence
from hessian_spectra.findings.core import (
    ACC_GAP,
    FAILS,
    HOLDS,
    TOLD_APART,
    UNSURE,
    WINDOW,
    Claim,
    Measure,
    Point,
    Verdict,
    binomial,
    combine,
    ending,
    gap,
    ordered,
    pool,
    separation,
    within,
)
from hessian_spectra.findings.inputs import configurations, excluded, final, pooled, seed, table

STUDY = "sharpest_directions"


def curve(ev: Evidence, run: dict) -> tuple[list[tuple[int, Measure]], str]:
    """A run's lambda_max per epoch (with its Lanczos residual as error), and its unconverged epochs."""
    traj = table(ev, layout.trajectory(run["key"]))
    top = traj[(traj["block"] == "full") & (traj["quantity"] == "eigenvalue") & (traj["index"] == 1)]
    top = top.sort_values("epoch")
    bad = [str(int(r.epoch)) for r in top.itertuples() if not bool(r.converged)]
    why = f"lambda_max unconverged at epoch(s) {', '.join(bad)}" if bad else ""
    return [(int(r.epoch), Measure(r.value, r.residual)) for r in top.itertuples()], why


def group_curve(ev: Evidence, group: Sequence[dict]) -> tuple[list[tuple[int, Measure]], str]:
    """A configuration's lambda_max per epoch pooled over its seeds, and why it cannot count."""
    curves, whys = [], [excluded(group)]
    for run in group:
        points, why = curve(ev, run)
        curves.append(dict(points))
        whys.append(why)
    epochs = sorted(set.intersection(*(set(c) for c in curves)))
    seeds = [seed(run) for run in group]
    return [(e, pool([c[e] for c in curves], seeds)) for e in epochs], ", ".join(w for w in whys if w)


def label(run: dict) -> str:
    """An SGD run's name in a verdict."""
    return f"lr{run['lr']:g} bs{run['batch_size']}"


def optimizer(run: dict) -> str:
    """The run's optimizer name."""
    return run["optimizer"]["name"]


def peaks(ev: Evidence, runs: list[dict]) -> Verdict:
    """Each SGD configuration's lambda_max from epoch 0 to its peak window and its last window."""
    values, verdicts, whys = [], [], []
    for group in configurations([run for run in runs if optimizer(run) == "sgd"]):
        name = label(group[0])
        points, bad = group_curve(ev, group)
        start, s = points[0][1], ending(points)
        values.append(f"{name}: epoch 0 {start} -> peak {s.peak[0]} {s.peak[1]} -> last {s.last[0]} {s.last[1]}")
        rise = gap(start, s.peak[1])
        if bad:
            verdicts.append(UNSURE)
            whys.append(f"{name} not evidence: {bad}")
        elif not rise.decided:
            verdicts.append(UNSURE)
            whys.append(f"{name}: rise from epoch 0 not told apart ({rise.needs})")
        elif rise.difference < 0:
            verdicts.append(FAILS)
            whys.append(f"{name}: never rises above its epoch-0 value")
        elif s.rising():
            verdicts.append(UNSURE)
            whys.append(f"{name}: still rising ({s.last[0]} above every earlier window beyond error): needs training "
                        "past the peak")
        else:
            verdicts.append(HOLDS)
            whys.append(f"{name}: rises, then falls or settles")
    if not verdicts:
        return Verdict("", UNSURE, "no SGD run")
    return Verdict("; ".join(values), combine(verdicts), "; ".join(whys))


def sgd_grid(runs: list[dict], vary: str, fixed: str) -> list[list[dict]]:
    """The SGD configurations of the largest group that shares ``fixed`` and varies ``vary``, in ``vary``'s order."""
    groups = configurations([run for run in runs if optimizer(run) == "sgd"])
    by_fixed: dict = {}
    for group in groups:
        by_fixed.setdefault(group[0][fixed], []).append(group)
    if not by_fixed:
        return []
    best = max(by_fixed.values(), key=lambda gs: len({g[0][vary] for g in gs}))
    return sorted(best, key=lambda g: g[0][vary])


def peak_order(vary: str, fixed: str, increasing: bool) -> Callable[[Evidence, list[dict]], Verdict]:
    """The check that the peak lambda_max (highest window mean) falls (rises) along the ``vary`` grid."""
    prefix, what = ("lr", "learning rates") if vary == "lr" else ("bs", "batch sizes")

    def check(ev: Evidence, runs: list[dict]) -> Verdict:
        points = []
        for group in sgd_grid(runs, vary, fixed):
            curve_points, bad = group_curve(ev, group)
            s = ending(curve_points)
            if not bad and s.rising():
                bad = f"peak not reached ({s.last[0]} above every earlier window beyond error)"
            points.append(Point(f"{prefix}{group[0][vary]:g}", s.peak[1], bad))
        return ordered(points, increasing, what)

    return check


def final_lambda(ev: Evidence, group: Sequence[dict]) -> tuple[Measure, str]:
    """A configuration's final lambda_max: the mean of its last window, and why it cannot count."""
    points, bad = group_curve(ev, group)
    return ending(points).last[1], bad


def valid_accuracy(group: Sequence[dict]) -> Measure:
    """A configuration's final validation accuracy with its binomial error (n = the run's validation split)."""
    return pooled(group, lambda run: binomial(final(run, "valid_acc"), int(run["valid_size"])))


def nsgd_versus_sgd(sharper: bool) -> Callable[[Evidence, list[dict]], Verdict]:
    """The check that NSGD with gamma < 1 (``sharper``) or > 1 ends sharper (flatter) than SGD at its lr and batch
    size, at validation accuracies shown to be within ``ACC_GAP``."""

    def check(ev: Evidence, runs: list[dict]) -> Verdict:
        groups = configurations(runs)
        nsgd = [g for g in groups if optimizer(g[0]) == "nsgd" and (g[0]["optimizer"]["gamma"] < 1) == sharper]
        if not nsgd:
            return Verdict("", UNSURE, f"no NSGD run with gamma {'<' if sharper else '>'} 1 in this config")
        values, verdicts, whys = [], [], []
        for group in nsgd:
            run = group[0]
            name = f"gamma{run['optimizer']['gamma']:g}"
            sgd = [g for g in groups if optimizer(g[0]) == "sgd" and g[0]["lr"] == run["lr"]
                   and g[0]["batch_size"] == run["batch_size"]]
            if not sgd:
                verdicts.append(UNSURE)
                whys.append(f"{name}: no SGD run at lr {run['lr']:g}, bs {run['batch_size']}")
                continue
            (lam, bad), (base, base_bad) = final_lambda(ev, group), final_lambda(ev, sgd[0])
            acc, base_acc = valid_accuracy(group), valid_accuracy(sgd[0])
            values.append(f"{name}: final lambda_max {lam} (valid acc {acc}) vs SGD {base} ({base_acc})")
            similar, acc_text = within(separation(acc, base_acc), ACC_GAP, "validation accuracy gap")
            apart = gap(base, lam)
            if bad or base_bad:
                verdicts.append(UNSURE)
                whys.append(f"{name}: not evidence ({', '.join(w for w in (bad, base_bad) if w)})")
            elif similar is not True:
                verdicts.append(UNSURE)
                whys.append(f"{name}: accuracies not shown similar ({acc_text})")
            elif not apart.decided:
                verdicts.append(UNSURE)
                whys.append(f"{name}: final lambda_max not told apart from SGD's ({apart.needs})")
            else:
                verdicts.append(HOLDS if (apart.difference > 0) == sharper else FAILS)
                whys.append(f"{name}: {'sharper' if apart.difference > 0 else 'flatter'} than SGD beyond error, "
                            f"{acc_text}")
        return Verdict("; ".join(values), combine(verdicts), "; ".join(whys))

    return check


ROBUST = (f"lambda_max is the top Lanczos eigenvalue (its residual as error); a peak is the highest mean over "
          f"{WINDOW} consecutive epochs and a final value the mean of the last {WINDOW} (single epochs for runs "
          f"shorter than {2 * WINDOW}), their spread over the epochs as error, so one epoch's spike decides nothing")
NSGD_RULE = (f"values are {TOLD_APART}; {ROBUST}; validation accuracies count as similar when their gap plus 2 "
             f"binomial standard errors (sqrt(p(1-p)/n), n = the validation split) is at most {ACC_GAP}; "
             f"inconclusive if they are not shown "
             f"similar, the final values are not told apart beyond their errors, or a run diverged or did not learn")
CLAIMS = (
    Claim(STUDY, "lambda_max rises early, peaks, then falls or settles",
          f"lambda_max at epoch 0, its peak ({WINDOW}-epoch mean) and its last {WINDOW}-epoch mean, per SGD run",
          f"holds if every SGD run's peak is above its epoch-0 value beyond error and its last window is not above "
          f"every earlier window beyond error; does not hold if a run's peak is below its epoch-0 value; "
          f"inconclusive if a rise is within error, a run is still rising (needs a longer run), or a run diverged or "
          f"did not learn; values are {TOLD_APART}; {ROBUST}", peaks),
    Claim(STUDY, "a larger learning rate gives a lower lambda_max peak",
          f"peak lambda_max ({WINDOW}-epoch mean) per learning rate (SGD, one batch size)",
          f"holds if the peak falls at every step of the lr order, does not hold if it rises at a step, each step "
          f"{TOLD_APART}; inconclusive if a step is within error or a run has not reached its peak; "
          f"{ROBUST}", peak_order("lr", "batch_size", False)),
    Claim(STUDY, "a smaller batch gives a lower lambda_max peak",
          f"peak lambda_max ({WINDOW}-epoch mean) per batch size (SGD, one learning rate)",
          f"holds if the peak rises at every step of the batch-size order, does not hold if it falls at a step, "
          f"each step {TOLD_APART}; inconclusive if a step is within error or a run has not reached "
          f"its peak; {ROBUST}", peak_order("batch_size", "lr", True)),
    Claim(STUDY, "NSGD with gamma < 1 ends in sharper regions than SGD at similar validation accuracy",
          f"final lambda_max (last {WINDOW}-epoch mean) and validation accuracy of each NSGD gamma < 1 run and of "
          f"SGD at its lr and batch size",
          f"holds if every such run ends above SGD beyond error at similar validation accuracy; does not hold if "
          f"one ends below; {NSGD_RULE}", nsgd_versus_sgd(True)),
    Claim(STUDY, "NSGD with gamma > 1 ends in flatter regions than SGD at similar validation accuracy",
          f"final lambda_max (last {WINDOW}-epoch mean) and validation accuracy of each NSGD gamma > 1 run and of "
          f"SGD at its lr and batch size",
          f"holds if every such run ends below SGD beyond error at similar validation accuracy; does not hold if "
          f"one ends above; {NSGD_RULE}", nsgd_versus_sgd(False)),
)
