"""The findings scorecard: each source's claims checked against a run's tables, with a verdict rule stated in words,
so that a claim that does not reproduce says so with its numbers (torch-free).

Diverged runs and unconverged estimates never count as evidence; a difference smaller than its estimates' stated
error, or (with one seed, whose spread is unknown) than ``MIN_GAP`` of the larger value, is inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from hessian_spectra import layout
from hessian_spectra.data.catalog import dataset_info
from hessian_spectra.divergence import divergence
from hessian_spectra.evidence import Evidence

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
VERDICTS = (HOLDS, FAILS, UNSURE)
COLUMNS = ("study", "source", "seed", "claim", "metric", "value", "verdict", "rule", "why")
SOURCES = {
    "large_batch": "000",
    "sharpest_directions": "001",
    "hessianflow": "002",
    "init_chain_rule": "003",
    "layerhessians": "004",
}
MIN_GAP = 0.05  # with one seed, a relative difference below this is not told apart from seed-to-seed noise
ACC_GAP = 0.05  # validation or test accuracies this close count as "similar" / "near"
ONE_SEED = "one seed: the seed spread is unknown"
NOT_RUN = "study not run (disabled in the config, or its tables are missing)"


@dataclass(frozen=True)
class Verdict:
    """A claim's outcome on one seed: the value(s) it computed, the verdict and the numbers behind it."""

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
    check: Callable[[Evidence, list[dict]], Verdict]


@dataclass(frozen=True)
class Point:
    """One value of an ordered comparison, and whether it can count as evidence."""

    label: str
    value: float
    stderr: float = math.nan
    excluded: str = ""  # why it cannot count (diverged, unconverged), empty when it can


def fmt(value: float) -> str:
    """A number as the scorecard spells it."""
    return f"{value:.4g}"


def spell(points: Sequence[Point]) -> str:
    """The values of a comparison, labelled, with their standard errors where stated."""
    return "; ".join(
        f"{p.label}: {fmt(p.value)}" + (f" +- {fmt(p.stderr)}" if math.isfinite(p.stderr) else "") for p in points
    )


def within_error(a: Point, b: Point) -> bool:
    """Whether two values are not told apart: within two combined standard errors, or (no error stated) within
    ``MIN_GAP`` of the larger magnitude."""
    if math.isfinite(a.stderr) and math.isfinite(b.stderr):
        return abs(a.value - b.value) <= 2 * math.hypot(a.stderr, b.stderr)
    return abs(a.value - b.value) <= MIN_GAP * max(abs(a.value), abs(b.value))


def ordered(points: Sequence[Point], increasing: bool, what: str) -> Verdict:
    """The verdict on ``points`` (in the order of their x) rising (or falling) at every step."""
    value = spell(points)
    if len(points) < 2:
        return Verdict(value, UNSURE, f"fewer than two {what} to compare; {ONE_SEED}")
    excluded = [f"{p.label} {p.excluded}" for p in points if p.excluded]
    if excluded:
        return Verdict(value, UNSURE, f"not evidence: {', '.join(excluded)}; {ONE_SEED}")
    steps = list(zip(points, points[1:]))
    wrong = [(a, b) for a, b in steps if (b.value < a.value) == increasing and not within_error(a, b)]
    if wrong:
        broken = ", ".join(f"{a.label} {fmt(a.value)} -> {b.label} {fmt(b.value)}" for a, b in wrong)
        return Verdict(value, FAILS, f"order broken at {broken}; {ONE_SEED}")
    close = [(a, b) for a, b in steps if within_error(a, b)]
    if close:
        ties = ", ".join(f"{a.label}/{b.label}" for a, b in close)
        return Verdict(value, UNSURE, f"differences within error at {ties}; {ONE_SEED}")
    return Verdict(value, HOLDS, f"{'rises' if increasing else 'falls'} at every step; {ONE_SEED}")


def load_runs(ev: Evidence, study: str) -> list[dict]:
    """The config's planned runs of ``study``, each with its history and why it diverged (empty when it did not)."""
    runs = []
    for planned in ev.runs.get(study, []):
        files = layout.run_files(planned["key"])
        run = ev.read_json(files.run_json)
        history = ev.read_table(files.history).sort_values("epoch")
        run["history"] = history
        run["diverged"] = divergence(history, dataset_info(run["dataset"]).num_classes)
        runs.append(run)
    return runs


def table(ev: Evidence, path: str, runs: Sequence[dict] | None = None) -> pd.DataFrame:
    """A declared table; a study table keeps only the rows of ``runs`` (one seed's)."""
    rows = ev.read_table(path)
    return rows if runs is None else rows[rows["run"].isin([run["key"] for run in runs])]


def study_table(ev: Evidence, study: str, name: str, runs: Sequence[dict]) -> pd.DataFrame:
    """The config's table ``name`` of ``study``, the rows of ``runs``."""
    return table(ev, layout.study_table(study, name, ev.config), runs)


def unconverged(row: Mapping) -> str:
    """Why an eigenvalue row cannot count (empty when converged)."""
    if bool(row["converged"]):
        return ""
    return f"unconverged (relative residual {fmt(row['relative_residual'])} > {fmt(row['tolerance'])})"


def excluded(run: dict, row: Mapping | None = None) -> str:
    """Why a run's value cannot count: the run diverged, or the eigenvalue is unconverged."""
    if run["diverged"]:
        return f"diverged ({run['diverged']})"
    return "" if row is None else unconverged(row)


def at_convergence(verdict: Verdict, runs: Sequence[dict]) -> Verdict:
    """A verdict about minima is inconclusive when the compared runs' final training accuracies differ by more than
    ``ACC_GAP`` (some did not finish training); the steps and accuracies are added to its why either way."""
    accuracies = [run["history"]["train_acc"].iloc[-1] for run in runs]
    why = verdict.why + steps_note(runs)
    if verdict.verdict != UNSURE and accuracies and max(accuracies) - min(accuracies) > ACC_GAP:
        return Verdict(verdict.value, UNSURE, f"runs not equally trained (train acc differs by more than {ACC_GAP}); "
                       + why)
    return Verdict(verdict.value, verdict.verdict, why)


def steps_note(runs: Sequence[dict]) -> str:
    """Optimizer steps, final training accuracy and loss of compared runs: an unfinished run is a known cause, and
    so is one trained to a far lower loss (the cross-entropy's curvature shrinks as its loss goes to zero)."""
    return "; steps (train acc, train loss): " + ", ".join(
        f"bs{run['batch_size']} {int(run['history']['steps'].iloc[-1])} ({fmt(run['history']['train_acc'].iloc[-1])}, "
        f"{fmt(run['history']['train_loss'].iloc[-1])})"
        for run in runs
    )


# --- seed 000: large_batch -------------------------------------------------------------------------------------


def large_batch_eigenvalues(ev: Evidence, runs: list[dict]) -> Verdict:
    """Seed 000: lambda_1 at the final checkpoint against the batch size."""
    top = study_table(ev, "large_batch", layout.STUDY_TABLES["large_batch"], runs)
    hessian = "full" if (top["hessian"] == "full").any() else "last_layer"
    by_key = {run["key"]: run for run in runs}
    rows = top[(top["hessian"] == hessian) & (top["index"] == 1)].sort_values("batch_size")
    points = [Point(f"bs{r.batch_size}", r.value, excluded=excluded(by_key[r.run], r._asdict()))
              for r in rows.itertuples()]
    verdict = ordered(points, True, "batch sizes")
    verdict = at_convergence(verdict, [by_key[key] for key in rows["run"]])
    return Verdict(f"{hessian} lambda_1: {verdict.value}", verdict.verdict, verdict.why)


def loss_rise(landscape: pd.DataFrame) -> tuple[float, str]:
    """Mean loss over the top-2 eigenvector grid minus the loss at theta, and why it cannot count."""
    eigen = landscape[landscape["direction"] == "eigen"]
    centre = eigen.loc[(eigen["c1"].abs() + eigen["c2"].abs()).idxmin(), "loss"]
    first = eigen.iloc[0]
    why = "" if bool(first["converged1"]) and bool(first["converged2"]) else "eigenvectors unconverged"
    return float(eigen["loss"].mean() - centre), why


def large_batch_surface(ev: Evidence, runs: list[dict]) -> Verdict:
    """Seed 000: the loss rise over the top-2 eigenvector grid against the batch size."""
    points, compared = [], []
    for run in sorted(runs, key=lambda run: run["batch_size"]):
        rise, why = loss_rise(ev.read_table(layout.landscape(run["key"])))
        points.append(Point(f"bs{run['batch_size']}", rise, excluded=excluded(run) or why))
        compared.append(run)
    return at_convergence(ordered(points, True, "loss surfaces"), compared)


# --- seed 001: sharpest_directions ------------------------------------------------------------------------------


def sharpness(ev: Evidence, runs: list[dict]) -> pd.DataFrame:
    """sharpest_directions' study table, the rows of ``runs``."""
    return study_table(ev, "sharpest_directions", layout.STUDY_TABLES["sharpest_directions"], runs)


def sharp_excluded(row: Mapping) -> str:
    """Why a sharpness-table row cannot count (empty when it can)."""
    if bool(row["diverged"]):
        return f"diverged ({row['diverged_because']})"
    return "" if bool(row["peak_converged"]) else "peak unconverged"


def sharpest_peak(ev: Evidence, runs: list[dict]) -> Verdict:
    """Seed 001: each SGD run's lambda_max from epoch 0 to its peak and its end."""
    rows = sharpness(ev, runs)
    rows = rows[rows["optimizer"] == "sgd"]
    values, late, flat, out = [], [], [], []
    for r in rows.itertuples():
        first = table(ev, layout.trajectory(r.run))
        first = first[(first["block"] == "full") & (first["quantity"] == "eigenvalue") & (first["index"] == 1)]
        start = float(first.sort_values("epoch")["value"].iloc[0])
        label = f"lr{r.lr:g} bs{r.batch_size}"
        values.append(f"{label}: {fmt(start)} -> peak {fmt(r.peak_lambda_max)} at epoch {r.peak_epoch}/{r.epoch}"
                      f" -> {fmt(r.lambda_max)}")
        if sharp_excluded(r._asdict()):
            out.append(f"{label} {sharp_excluded(r._asdict())}")
        elif r.peak_lambda_max <= start * (1 + MIN_GAP):
            flat.append(label)
        elif r.peak_epoch >= r.epoch:
            late.append(label)
    value = "; ".join(values)
    if out:
        return Verdict(value, UNSURE, f"not evidence: {', '.join(out)}; {ONE_SEED}")
    if flat:
        return Verdict(value, FAILS, f"lambda_max never rises above its epoch-0 value: {', '.join(flat)}; {ONE_SEED}")
    if late:
        return Verdict(value, UNSURE, f"peak at the last epoch (training may stop before the peak): "
                       f"{', '.join(late)}; {ONE_SEED}")
    if not values:
        return Verdict(value, UNSURE, "no SGD run")
    return Verdict(value, HOLDS, f"every SGD run rises, peaks before its last epoch, then falls; {ONE_SEED}")


def grid(rows: pd.DataFrame, vary: str, fixed: str) -> pd.DataFrame:
    """The SGD runs of the largest group that shares ``fixed`` and varies ``vary``."""
    rows = rows[rows["optimizer"] == "sgd"]
    if rows.empty:
        return rows
    sizes = rows.groupby(fixed)[vary].nunique()
    return rows[rows[fixed] == sizes.idxmax()].sort_values(vary)


def sharpest_order(vary: str, fixed: str, increasing: bool) -> Callable[[Evidence, list[dict]], Verdict]:
    """Seed 001: the check that the peak lambda_max falls (rises) along the ``vary`` grid."""

    def check(ev: Evidence, runs: list[dict]) -> Verdict:
        rows = grid(sharpness(ev, runs), vary, fixed)
        prefix = "lr" if vary == "lr" else "bs"
        points = [Point(f"{prefix}{getattr(r, vary):g}", r.peak_lambda_max, excluded=sharp_excluded(r._asdict()))
                  for r in rows.itertuples()]
        return ordered(points, increasing, f"{'learning rates' if vary == 'lr' else 'batch sizes'}")

    return check


def nsgd_versus_sgd(sharper: bool) -> Callable[[Evidence, list[dict]], Verdict]:
    """Seed 001: the check that NSGD with gamma < 1 (``sharper``) or > 1 ends sharper (flatter) than SGD."""

    def check(ev: Evidence, runs: list[dict]) -> Verdict:
        rows = sharpness(ev, runs)
        nsgd = rows[(rows["optimizer"] == "nsgd") & ((rows["gamma"] < 1) if sharper else (rows["gamma"] > 1))]
        if nsgd.empty:
            return Verdict("", UNSURE, f"no NSGD run with gamma {'<' if sharper else '>'} 1 in this config")
        values, verdicts, whys = [], [], []
        for r in nsgd.itertuples():
            sgd = rows[(rows["optimizer"] == "sgd") & (rows["lr"] == r.lr) & (rows["batch_size"] == r.batch_size)]
            label = f"gamma{r.gamma:g}"
            if sgd.empty:
                verdicts.append(UNSURE)
                whys.append(f"{label}: no SGD run at lr {r.lr:g}, bs {r.batch_size}")
                continue
            s = next(sgd.itertuples())
            values.append(f"{label}: lambda_max {fmt(r.lambda_max)} (valid acc {fmt(r.final_valid_acc)}) vs SGD "
                          f"{fmt(s.lambda_max)} ({fmt(s.final_valid_acc)})")
            bad = [why for why in (sharp_excluded(r._asdict()), sharp_excluded(s._asdict())) if why]
            bad += [] if bool(r.lambda_max_converged) and bool(s.lambda_max_converged) else ["final unconverged"]
            if bad:
                verdicts.append(UNSURE)
                whys.append(f"{label}: not evidence ({', '.join(bad)})")
            elif abs(r.final_valid_acc - s.final_valid_acc) > ACC_GAP:
                verdicts.append(UNSURE)
                whys.append(f"{label}: validation accuracies differ by more than {ACC_GAP}")
            else:
                a, b = Point(label, r.lambda_max), Point("sgd", s.lambda_max)
                if within_error(a, b):
                    verdicts.append(UNSURE)
                    whys.append(f"{label}: within {MIN_GAP:.0%} of SGD")
                else:
                    verdicts.append(HOLDS if (r.lambda_max > s.lambda_max) == sharper else FAILS)
                    whys.append(f"{label}: {'sharper' if r.lambda_max > s.lambda_max else 'flatter'} than SGD")
        verdict = FAILS if FAILS in verdicts else UNSURE if UNSURE in verdicts else HOLDS
        return Verdict("; ".join(values), verdict, "; ".join(whys) + f"; {ONE_SEED}")

    return check


# --- seed 002: hessianflow --------------------------------------------------------------------------------------


def by_optimizer(runs: list[dict], name: str) -> list[dict]:
    """The runs trained with optimizer ``name``."""
    return [run for run in runs if run["optimizer"]["name"] == name]


def absa_schedule(ev: Evidence, runs: list[dict]) -> Verdict:
    """Seed 002: ABSA's batch size against its own lambda estimate, epoch by epoch."""
    absa = by_optimizer(runs, "absa")
    if not absa:
        return Verdict("", UNSURE, "no ABSA run in this config")
    values, verdicts, whys = [], [], []
    for run in absa:
        history = run["history"].dropna(subset=["lambda"])
        sizes, lambdas = history["effective_batch_size"].tolist(), history["lambda"].tolist()
        values.append("epochs " + ", ".join(f"{int(e)}: bs {int(b)} lambda {fmt(v)}" for e, b, v in
                                             zip(history["epoch"], sizes, lambdas)))
        grows = [i for i in range(1, len(sizes)) if sizes[i] > sizes[i - 1]]
        shrinks = [i for i in range(1, len(sizes)) if sizes[i] < sizes[i - 1]]
        if run["diverged"]:
            verdicts.append(UNSURE)
            whys.append(f"not evidence: diverged ({run['diverged']})")
        elif shrinks:
            verdicts.append(FAILS)
            whys.append("the batch shrank")
        elif not grows:
            fell = min(lambdas) < lambdas[0] / run["optimizer"].get("max_ratio", 1)
            verdicts.append(FAILS if fell else UNSURE)
            whys.append("the batch never grew" + (" though lambda fell" if fell else " and lambda did not fall"))
        elif all(i >= 2 and lambdas[i - 1] < max(lambdas[: i - 1]) for i in grows):
            verdicts.append(HOLDS)
            whys.append(f"the batch grew for epoch(s) {', '.join(str(int(history['epoch'].iloc[i])) for i in grows)},"
                        " each after a lambda below an earlier one")
        else:
            verdicts.append(FAILS)
            whys.append("the batch grew after a lambda that had not fallen")
        worst = run["history"]["lambda_relative_residual"].max()
        whys[-1] += f" (lambda is the schedule's own power-iteration estimate, relative residual up to {fmt(worst)})"
    verdict = FAILS if FAILS in verdicts else UNSURE if UNSURE in verdicts else HOLDS
    return Verdict("; ".join(values), verdict, "; ".join(whys) + f"; {ONE_SEED}")


def absa_versus_sgd(ev: Evidence, runs: list[dict]) -> Verdict:
    """Seed 002: ABSA's final test accuracy and optimizer steps against SGD's."""
    absa, sgd = by_optimizer(runs, "absa"), by_optimizer(runs, "sgd")
    if not absa or not sgd:
        return Verdict("", UNSURE, "needs an ABSA and an SGD run")
    a, s = absa[0], sgd[0]
    acc = [run["history"]["test_acc"].iloc[-1] for run in (a, s)]
    steps = [int(run["history"]["steps"].iloc[-1]) for run in (a, s)]
    value = f"test acc ABSA {fmt(acc[0])} vs SGD {fmt(acc[1])}; steps ABSA {steps[0]} vs SGD {steps[1]}"
    if a["diverged"] or s["diverged"]:
        return Verdict(value, UNSURE, f"not evidence: a run diverged ({a['diverged'] or s['diverged']})")
    near = acc[0] >= acc[1] - ACC_GAP
    fewer = steps[0] < steps[1]
    if near and fewer:
        return Verdict(value, HOLDS, f"within {ACC_GAP} of SGD's accuracy in fewer steps; {ONE_SEED}")
    return Verdict(value, FAILS, ("accuracy more than {ACC_GAP} below SGD's" if not near else "not fewer steps")
                   .format(ACC_GAP=ACC_GAP) + f"; {ONE_SEED}")


def power_agrees(ev: Evidence, runs: list[dict]) -> Verdict:
    """Seed 002: power iteration against converged Lanczos lambda_max at every checkpoint."""
    values, bad, compared = [], [], 0
    for run in runs:
        eigen = table(ev, layout.dominant_eigen(run["key"]))
        eigen = eigen[(eigen["block"] == "full") & (eigen["index"] == 1)]
        lanczos = eigen[eigen["quantity"] == "eigenvalue"].set_index("epoch")
        power = eigen[eigen["quantity"] == "power_eigenvalue"].set_index("epoch")
        for epoch in lanczos.index.intersection(power.index):
            ref, est = lanczos.loc[epoch], power.loc[epoch]
            if not bool(ref["converged"]) or run["diverged"]:
                continue
            compared += 1
            gap = abs(est["value"] - ref["value"]) / abs(ref["value"])
            if gap > MIN_GAP:
                label = f"{run['optimizer']['name']} epoch {epoch}"
                bad.append(label)
                values.append(f"{label}: power {fmt(est['value'])} vs Lanczos {fmt(ref['value'])}")
    value = "; ".join(values) or f"{compared} converged epochs compared"
    if not compared:
        return Verdict(value, UNSURE, "no converged Lanczos estimate to compare with")
    if bad:
        return Verdict(value, FAILS, f"power iteration off by more than {MIN_GAP:.0%} at {len(bad)} of {compared}"
                       " epochs (it stalls when |lambda_min| is close to lambda_max)")
    return Verdict(value, HOLDS, f"within {MIN_GAP:.0%} at all {compared} epochs")


# --- seed 003: init_chain_rule ----------------------------------------------------------------------------------


def chain_rule(ev: Evidence, runs: list[dict]) -> pd.DataFrame:
    """init_chain_rule's study table, the rows of ``runs``."""
    return study_table(ev, "init_chain_rule", layout.STUDY_TABLES["init_chain_rule"], runs)


def init_frobenius(ev: Evidence, runs: list[dict]) -> Verdict:
    """Seed 003: ||H||_F of dense1 at initialisation against the init sd."""
    rows = chain_rule(ev, runs)
    rows = rows[(rows["block"] == "dense1") & (rows["quantity"] == "frobenius_H") & (rows["epoch"] == 0)]
    loss = chain_rule(ev, runs)
    loss = loss[(loss["quantity"] == "loss") & (loss["epoch"] == 0)].set_index("run")["value"]
    values, verdicts, whys = [], [], []
    for activation, group in rows.groupby("activation"):
        group = group.sort_values("sd")
        points = [Point(f"sd{r.sd:g}", r.value, r.stderr) for r in group.itertuples()]
        verdict = ordered(points, True, f"init sds ({activation})")
        values.append(f"{activation}: {verdict.value}")
        verdicts.append(verdict.verdict)
        losses = ", ".join(f"sd{r.sd:g} {fmt(loss[r.run])}" for r in group.itertuples())
        whys.append(f"{activation}: {verdict.why.removesuffix(f'; {ONE_SEED}')}; initial loss {losses}")
    if not verdicts:
        return Verdict("", UNSURE, "no dense1 Frobenius norm at epoch 0")
    verdict = FAILS if FAILS in verdicts else UNSURE if UNSURE in verdicts else HOLDS
    why = "; ".join(whys)
    if verdict == FAILS:
        why += " (a large init can saturate the softmax: a high initial loss, small gradients and curvature)"
    why += f"; {ONE_SEED}"
    return Verdict("; ".join(values), verdict, why)


def tiny_init(ev: Evidence, runs: list[dict]) -> Verdict:
    """Seed 003: the smallest init sd's final loss against the larger sds'."""
    rows = chain_rule(ev, runs)
    rows = rows[rows["quantity"] == "loss"]
    final = rows[rows["epoch"] == rows.groupby("run")["epoch"].transform("max")]
    by_key = {run["key"]: run for run in runs}
    values, verdicts, whys = [], [], []
    for activation, group in final.groupby("activation"):
        group = group.sort_values("sd")
        if len(group) < 2:
            continue
        tiny, others = group.iloc[0], group.iloc[1:]
        losses = ", ".join(f"sd{r.sd:g} {fmt(r.value)}" for r in group.itertuples())
        values.append(f"{activation}: final loss {losses}")
        bad = [f"sd{r.sd:g}" for r in group.itertuples() if by_key[r.run]["diverged"]]
        if bad:
            verdicts.append(UNSURE)
            whys.append(f"{activation}: diverged {', '.join(bad)}")
            continue
        slower = all(tiny["value"] > o.value and not within_error(Point("", tiny["value"]), Point("", o.value))
                     for o in others.itertuples())
        verdicts.append(HOLDS if slower else FAILS)
        whys.append(f"{activation}: sd{tiny['sd']:g} ends {'above' if slower else 'not clearly above'} every larger sd")
    if not verdicts:
        return Verdict("; ".join(values), UNSURE, "fewer than two init sds per activation")
    verdict = FAILS if FAILS in verdicts else UNSURE if UNSURE in verdicts else HOLDS
    return Verdict("; ".join(values), verdict, "; ".join(whys) + f"; {ONE_SEED}")


def gauss_newton(ev: Evidence, runs: list[dict]) -> Verdict:
    """Seed 003: ||G||_F against ||H - G||_F of dense1 at each run's final checkpoint."""
    rows = chain_rule(ev, runs)
    rows = rows[(rows["block"] == "dense1") & rows["quantity"].isin(["frobenius_G", "frobenius_H_minus_G"])]
    final = rows[rows["epoch"] == rows.groupby("run")["epoch"].transform("max")]
    by_key = {run["key"]: run for run in runs}
    values, verdicts = [], []
    for _, group in final.groupby("run"):
        sd, activation = group["sd"].iloc[0], group["activation"].iloc[0]
        g = group.set_index("quantity")
        a = Point("G", g.loc["frobenius_G", "value"], g.loc["frobenius_G", "stderr"])
        b = Point("H-G", g.loc["frobenius_H_minus_G", "value"], g.loc["frobenius_H_minus_G", "stderr"])
        values.append(f"sd{sd:g} {activation}: {spell([a, b])}")
        if by_key[group["run"].iloc[0]]["diverged"]:
            values[-1] += f" (diverged: {by_key[group['run'].iloc[0]]['diverged']})"
            verdicts.append(UNSURE)
        else:
            verdicts.append(UNSURE if within_error(a, b) else HOLDS if a.value > b.value else FAILS)
    if not verdicts:
        return Verdict("", UNSURE, "no chain-rule split in the table")
    verdict = FAILS if FAILS in verdicts else UNSURE if UNSURE in verdicts else HOLDS
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in VERDICTS if v in verdicts)
    return Verdict("; ".join(values), verdict, f"per run at the final checkpoint: {counts}; {ONE_SEED}")


# --- seed 004: layerhessians ------------------------------------------------------------------------------------


def u_shape(ev: Evidence, runs: list[dict]) -> Verdict:
    """Seed 004: which layer block's spectrum is closest to the full one."""
    profiles = study_table(ev, "layerhessians", layout.MATCH_PROFILES, runs)
    if profiles.empty:
        return Verdict("", UNSURE, "no matching profile")
    metric = "source" if (profiles["metric"] == "source").any() else profiles["metric"].iloc[0]
    profiles = profiles[(profiles["metric"] == metric) & (profiles["kind"] == "peak")]
    values, verdicts, whys = [], [], []
    by_key = {run["key"]: run for run in runs}
    for key, group in profiles.groupby("run"):
        group = group.sort_values("layer")
        best = group.loc[group["distance"].idxmin()]
        distances = ", ".join(f"L{r.layer} {fmt(r.distance)}" for r in group.itertuples())
        values.append(f"{group['model'].iloc[0]}: {distances}")
        if by_key[key]["diverged"]:
            verdicts.append(UNSURE)
            whys.append(f"{group['model'].iloc[0]} diverged ({by_key[key]['diverged']})")
        elif "probes" in group and group["probes"].min() < 2:
            verdicts.append(UNSURE)
            whys.append(f"{group['model'].iloc[0]}: densities from {int(group['probes'].min())} probe (no error)")
        elif len(group) < 3:
            verdicts.append(UNSURE)
            whys.append(f"{group['model'].iloc[0]}: fewer than three layers")
        else:
            middle = group["layer"].iloc[0] < best["layer"] < group["layer"].iloc[-1]
            verdicts.append(HOLDS if middle else FAILS)
            whys.append(f"{group['model'].iloc[0]}: closest layer L{int(best['layer'])} "
                        f"({'a middle' if middle else 'an end'} layer)")
    if not verdicts:
        return Verdict("", UNSURE, "no matching profile")
    verdict = FAILS if FAILS in verdicts else UNSURE if UNSURE in verdicts else HOLDS
    why = "; ".join(whys)
    return Verdict("; ".join(values), verdict, f"distance {metric} at the peak epoch; {why}; {ONE_SEED}")


def layer_falls(ev: Evidence, runs: list[dict]) -> Verdict:
    """Seed 004: the full Hessian's lambda_1 and density mean from their maximum to the last epoch."""
    values, verdicts, whys = [], [], []
    for run in runs:
        spectra = pd.concat([ev.read_table(layout.layer_spectrum(run["key"], epoch, "tsv"))
                             for epoch in range(run["epochs"] + 1)], ignore_index=True)
        full = spectra[spectra["block"] == "full"]
        top = full[(full["quantity"] == "eigenvalue") & (full["index"] == 1)].sort_values("epoch")
        mean = full[full["quantity"] == "density_mean"].sort_values("epoch")
        for name, rows in (("lambda_1", top), ("trace/n", mean)):
            if rows.empty:
                continue
            points = [Point(f"epoch{int(r.epoch)}", r.value, r.stderr if "stderr" in rows else math.nan,
                            excluded=unconverged(r._asdict()) if name == "lambda_1" else "")
                      for r in rows.itertuples()]
            peak = max(range(len(points)), key=lambda i: points[i].value)
            out = [f"{p.label} {p.excluded}" for p in points if p.excluded]
            if run["diverged"]:
                verdict = Verdict("", UNSURE, f"not evidence: diverged ({run['diverged']})")
            elif out:
                verdict = Verdict("", UNSURE, f"not evidence: {', '.join(out)}")
            elif name == "trace/n" and "probes" in rows and rows["probes"].min() < 2:
                verdict = Verdict("", UNSURE, "from 1 probe: no standard error")
            elif peak == len(points) - 1:
                verdict = Verdict("", FAILS, "its maximum is at the last epoch")
            else:
                verdict = ordered([points[peak], points[-1]], False, "epochs")
            values.append(f"{run['model']} {name}: {spell(points)}")
            verdicts.append(verdict.verdict)
            whys.append(f"{run['model']} {name}: {verdict.why.split(';')[0]}")
    if not verdicts:
        return Verdict("", UNSURE, "no layer spectra")
    verdict = FAILS if FAILS in verdicts else UNSURE if UNSURE in verdicts else HOLDS
    return Verdict("; ".join(values), verdict, "; ".join(whys) + f"; {ONE_SEED}")


EXCLUSIONS = "diverged runs and unconverged estimates do not count (inconclusive)"
CLAIMS = (
    Claim("large_batch", "at convergence the top Hessian eigenvalues grow with the batch size",
          "lambda_1 of the full (else last-layer) Hessian at the final checkpoint, per batch size",
          f"holds if lambda_1 rises at every step of the batch-size order; does not hold if it falls at a step by "
          f"more than {MIN_GAP:.0%}; inconclusive if a difference is within {MIN_GAP:.0%} (seed spread unknown), "
          f"final training accuracies differ by more than {ACC_GAP} (not all at convergence), or {EXCLUSIONS}",
          large_batch_eigenvalues),
    Claim("large_batch", "the loss along the top-2 eigenvectors rises faster for larger batches",
          "mean loss over the top-2 eigenvector grid minus the loss at theta, per batch size",
          f"holds if the rise grows at every step of the batch-size order; does not hold if it shrinks at a step by "
          f"more than {MIN_GAP:.0%}; inconclusive within {MIN_GAP:.0%}, if final training accuracies differ by more "
          f"than {ACC_GAP}, or if {EXCLUSIONS}", large_batch_surface),
    Claim("sharpest_directions", "lambda_max rises early, peaks, then falls or settles",
          "lambda_max at epoch 0, its peak (epoch) and its final value, per SGD run",
          f"holds if every SGD run's peak exceeds its epoch-0 value by {MIN_GAP:.0%} and lies before its last epoch; "
          f"does not hold if a run never rises; inconclusive if a run peaks at its last epoch or {EXCLUSIONS}",
          sharpest_peak),
    Claim("sharpest_directions", "a larger learning rate gives a lower lambda_max peak",
          "peak lambda_max per learning rate (SGD, one batch size)",
          f"holds if the peak falls at every step of the lr order; does not hold if it rises by more than "
          f"{MIN_GAP:.0%}; inconclusive within {MIN_GAP:.0%} or if {EXCLUSIONS}", sharpest_order("lr", "batch_size",
                                                                                                 False)),
    Claim("sharpest_directions", "a smaller batch gives a lower lambda_max peak",
          "peak lambda_max per batch size (SGD, one learning rate)",
          f"holds if the peak rises at every step of the batch-size order; does not hold if it falls by more than "
          f"{MIN_GAP:.0%}; inconclusive within {MIN_GAP:.0%} or if {EXCLUSIONS}", sharpest_order("batch_size", "lr",
                                                                                                 True)),
    Claim("sharpest_directions", "NSGD with gamma < 1 ends in sharper regions than SGD at similar validation accuracy",
          "final lambda_max of each NSGD gamma < 1 run and of SGD at its lr and batch size",
          f"holds if every such run ends above SGD by more than {MIN_GAP:.0%} with validation accuracies within "
          f"{ACC_GAP}; does not hold if one ends below; inconclusive otherwise or if {EXCLUSIONS}",
          nsgd_versus_sgd(True)),
    Claim("sharpest_directions", "NSGD with gamma > 1 ends in flatter regions than SGD at similar validation accuracy",
          "final lambda_max of each NSGD gamma > 1 run and of SGD at its lr and batch size",
          f"holds if every such run ends below SGD by more than {MIN_GAP:.0%} with validation accuracies within "
          f"{ACC_GAP}; does not hold if one ends above; inconclusive otherwise or if {EXCLUSIONS}",
          nsgd_versus_sgd(False)),
    Claim("hessianflow", "ABSA grows the batch as lambda falls",
          "ABSA's effective batch size and lambda at every epoch",
          "holds if the batch never shrinks, grows at least once, and every growth follows a lambda (the schedule's "
          "own estimate, measured after the epoch before) below an earlier one; does not hold if it shrinks, grows "
          "otherwise, or never grows though lambda fell by the max ratio; inconclusive if lambda never fell or the "
          "run diverged", absa_schedule),
    Claim("hessianflow", "ABSA ends near SGD's accuracy in fewer optimizer steps",
          "final test accuracy and optimizer steps of ABSA and SGD",
          f"holds if ABSA's test accuracy is within {ACC_GAP} of SGD's (or above) and it took fewer steps; does not "
          "hold otherwise; inconclusive if a run diverged", absa_versus_sgd),
    Claim("hessianflow", "the power-iteration estimate agrees with the converged one",
          "power iteration vs converged Lanczos lambda_max at every checkpoint",
          f"holds if within {MIN_GAP:.0%} at every checkpoint whose Lanczos estimate converged; does not hold if off "
          f"by more at any; inconclusive if none converged or {EXCLUSIONS}", power_agrees),
    Claim("init_chain_rule", "||H||_F of the first layer grows with the init scale",
          "||H||_F of dense1 at initialisation, per init sd (within each activation)",
          "holds if it rises at every step of the sd order; does not hold if it falls by more than two standard "
          "errors; inconclusive if within two standard errors or fewer than two sds", init_frobenius),
    Claim("init_chain_rule", "a tiny init learns slowly",
          "final training loss per init sd (within each activation)",
          f"holds if the smallest sd ends above every larger sd by more than {MIN_GAP:.0%}; does not hold otherwise; "
          f"inconclusive with fewer than two sds or if {EXCLUSIONS}", tiny_init),
    Claim("init_chain_rule", "the Gauss-Newton term dominates the curvature term",
          "||G||_F vs ||H - G||_F of dense1 at each run's final checkpoint",
          "holds if ||G||_F exceeds ||H - G||_F by more than two standard errors in every run; does not hold if it is "
          "below in any; inconclusive if within two standard errors or the run diverged", gauss_newton),
    Claim("layerhessians", "layer-block spectra resemble the full one, middle layers the most (the U-shaped curve)",
          "distance of each layer block's spectrum to the full one at the peak epoch (matching profile)",
          "holds if every run's closest layer is a middle one (not first or last); does not hold if it is an end "
          "layer; inconclusive with fewer than three layers, densities from one probe, or a diverged run", u_shape),
    Claim("layerhessians", "the top eigenvalue and the trace fall as training goes on",
          "full-Hessian lambda_1 and density mean (trace / n) per epoch",
          f"holds if each ends below its maximum over epochs (beyond its error, else {MIN_GAP:.0%}); does not hold if "
          f"the maximum is at the last epoch or it ends above; inconclusive within error, from one probe, or if "
          f"{EXCLUSIONS}", layer_falls),
)


def judge(claim: Claim, ev: Evidence, runs: list[dict]) -> Verdict:
    """``claim``'s verdict on one seed's runs; a missing table means the study did not run, and tables that cannot
    answer the claim (a config without the runs it compares) leave it inconclusive, saying why."""
    try:
        return claim.check(ev, runs)
    except FileNotFoundError:
        return Verdict("", UNSURE, NOT_RUN)
    except (KeyError, ValueError, IndexError) as err:
        return Verdict("", UNSURE, f"not computable from this run's tables ({type(err).__name__}: {err})")


def scorecard(ev: Evidence) -> pd.DataFrame:
    """One row per claim and seed of the config's planned runs; a study it does not run is inconclusive."""
    rows = []
    studies = {study: load_runs(ev, study) for study in SOURCES}
    for claim in CLAIMS:
        runs = studies[claim.study]
        seeds = sorted({layout.seed_of(run["key"]) for run in runs})
        for seed in seeds or [None]:
            if seed is None:
                verdict = Verdict("", UNSURE, NOT_RUN)
            else:
                verdict = judge(claim, ev, [run for run in runs if layout.seed_of(run["key"]) == seed])
            why = verdict.why if len(seeds) < 2 else verdict.why.replace(ONE_SEED, f"{len(seeds)} seeds")
            rows.append({"study": claim.study, "source": SOURCES[claim.study], "seed": seed, "claim": claim.claim,
                         "metric": claim.metric, "value": verdict.value or "none", "verdict": verdict.verdict,
                         "rule": claim.rule, "why": why})
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return seeds_agree(table)


def seeds_agree(table: pd.DataFrame) -> pd.DataFrame:
    """With several seeds, a claim whose verdicts differ across seeds is inconclusive on every seed."""
    table = table.copy()
    for _, group in table.groupby("claim"):
        if group["seed"].nunique() > 1 and group["verdict"].nunique() > 1:
            table.loc[group.index, "why"] = group["why"] + "; seeds disagree"
            table.loc[group.index, "verdict"] = UNSURE
    return table
