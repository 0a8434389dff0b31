"""The findings scorecard: each source's claims checked against a config's runs and tables, each by a rule stated
in words, so that a claim that does not reproduce says so with its numbers (torch-free).

Every compared number carries a standard error (from its estimator, the seeds, or both); two values are told apart
only beyond two combined standard errors (with one seed, whose spread is unknown, also only beyond ``MIN_GAP`` of
the larger value), and an undecided comparison is inconclusive, saying which number would have to change. Runs
that diverged or did not learn, and unconverged estimates, never count as evidence. Each claim is judged on every
seed alone and, with several seeds, on their means (seed ``all``), which decides.
"""

from __future__ import annotations

import pandas as pd

from hessian_spectra.evidence import Evidence
from hessian_spectra.findings.core import (
    ACC_GAP,
    FAILS,
    HOLDS,
    MIN_GAP,
    UNSURE,
    VERDICTS,
    WINDOW,
    Claim,
    Verdict,
    Z,
)
from hessian_spectra.findings.inputs import load_runs, seed

COLUMNS = ("study", "source", "seed", "claim", "metric", "value", "verdict", "rule", "why")
ALL_SEEDS = "all"
NOT_RUN = "study not run (disabled in the config, or its tables are missing)"
ERRORS = (
    f"Every compared number carries a standard error: an estimator's (Lanczos or power-iteration residual, "
    f"Hutchinson or SLQ probes, a binomial error sqrt(p(1-p)/n) for an accuracy), the spread of consecutive epochs "
    f"where a mean over {WINDOW} epochs is used, and over seeds the larger of the seeds' spread over sqrt(n) and "
    f"their propagated errors. Two values are told apart only when their difference exceeds {Z:g} combined standard "
    f"errors (two means over the same seeds: {Z:g} standard errors of their seed-by-seed differences, as runs of one "
    f"seed share their initial weights), and with one seed (spread unknown) also {MIN_GAP:.0%} of the larger value; "
    f"accuracies are 'similar' or 'near' when their gap plus {Z:g} standard errors is at most {ACC_GAP}. Undecided "
    f"comparisons are inconclusive and say which number would have to change."
)

__all__ = ["ALL_SEEDS", "COLUMNS", "ERRORS", "FAILS", "HOLDS", "NOT_RUN", "UNSURE", "VERDICTS", "judge",
           "scorecard"]


def judge(claim: Claim, ev: Evidence, runs: list[dict]) -> Verdict:
    """``claim``'s verdict on ``runs``; a missing table means the study did not run, and tables that cannot answer
    the claim (a config without the runs it compares) leave it inconclusive, saying why."""
    try:
        return claim.check(ev, runs)
    except FileNotFoundError:
        return Verdict("", UNSURE, NOT_RUN)
    except (KeyError, ValueError, IndexError) as err:
        return Verdict("", UNSURE, f"not computable from this run's tables ({type(err).__name__}: {err})")


def scorecard(ev: Evidence) -> pd.DataFrame:
    """One row per claim of every study of the registry and seed of the config's planned runs, and with several
    seeds one more (seed ``all``) on their means; a study the config does not run is inconclusive."""
    rows = []
    for study in ev.studies.values():
        runs = load_runs(ev, study.name)
        seeds = sorted({seed(run) for run in runs})
        for claim in study.claims:
            judged = [(s, judge(claim, ev, [run for run in runs if seed(run) == s])) for s in seeds]
            if len(seeds) > 1:
                judged.append((ALL_SEEDS, judge(claim, ev, runs)))
            for s, verdict in judged or [(None, Verdict("", UNSURE, NOT_RUN))]:
                rows.append({"study": study.name, "source": study.source, "seed": s, "claim": claim.claim,
                             "metric": claim.metric, "value": verdict.value or "none", "verdict": verdict.verdict,
                             "rule": claim.rule, "why": verdict.why})
    return pd.DataFrame(rows, columns=list(COLUMNS))

