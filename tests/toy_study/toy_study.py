"""A toy study, added as CONTRIBUTING.md says (this module and toy_study.smk beside it, nothing else): the largest
eigenvalue and the trace of the Hessian at each run's final checkpoint, one table, one figure and one claim."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from hessian_spectra import layout
from hessian_spectra.findings.core import FAILS, HOLDS, UNSURE, Claim, Measure, Verdict, Z, gap
from hessian_spectra.findings.inputs import study_table
from hessian_spectra.studies import RunJob, Study
from hessian_spectra.tables import read_table

NAME = "toy"
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["runs"],
    "properties": {
        "enabled": {"$ref": "#/$defs/enabled", "default": True},
        "seeds": {"$ref": "#/$defs/positive_int"},
        "defaults": {"$ref": "#/$defs/run_fields"},
        "runs": {"$ref": "#/$defs/runs"},
        "hessian_subset": {"$ref": "#/$defs/hessian_subset", "default": {"split": "train", "per_class": None,
                                                                        "size": 64, "selection": "first", "seed": 0}},
        "trace_probes": {"$ref": "#/$defs/positive_int", "default": 16},
    },
}


def final_spectrum(key: str) -> str:
    """A run's final-checkpoint spectrum."""
    return f"{layout.run_tables(key)}/toy_final.tsv"


def spectrum_settings(settings: dict, run: dict, wildcards, input) -> dict:
    """lambda_max by Lanczos and the Hutchinson trace."""
    return {"top_k": 1, "trace_probes": settings["trace_probes"], "seed": run["seed"]}


def build_table(runs: list[dict], tables: list[str]) -> pd.DataFrame:
    """One row per run: lambda_max with its Ritz residual, the trace with its standard error."""
    rows = []
    for run, path in zip(runs, tables, strict=True):
        spectrum = read_table(path).set_index("quantity")
        rows.append({"run": run["key"], "lambda_max": spectrum.loc["eigenvalue", "value"],
                     "lambda_residual": spectrum.loc["eigenvalue", "residual"],
                     "trace": spectrum.loc["trace", "value"], "trace_stderr": spectrum.loc["trace", "stderr"]})
    return pd.DataFrame(rows)


def draw(table: pd.DataFrame, name: str) -> plt.Figure:
    """lambda_max and the trace of every run, with their errors."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    runs = range(len(table))
    ax.errorbar(runs, table["trace"], yerr=Z * table["trace_stderr"], fmt="o", label=f"trace (+- {Z:g} s.e.)")
    ax.errorbar(runs, table["lambda_max"], yerr=table["lambda_residual"], fmt="s",
                label=r"$\lambda_{max}$ (+- Ritz residual)")
    ax.set(xticks=list(runs), xlim=(-0.5, len(table) + 0.5), xlabel="run", ylabel="final Hessian")
    ax.legend()
    fig.tight_layout()
    return fig


def top_below_trace(ev, runs: list[dict]) -> Verdict:
    """The trace minus lambda_max, told apart from zero by ``findings.core.gap``, in every run."""
    table = study_table(ev, NAME, runs)
    gaps = [gap(Measure(row.lambda_max, row.lambda_residual), Measure(row.trace, row.trace_stderr))
            for row in table.itertuples()]
    value = "; ".join(f"lambda_max {row.lambda_max:.4g}, trace {row.trace:.4g}" for row in table.itertuples())
    if any(g.decided and g.difference < 0 for g in gaps):
        return Verdict(value, FAILS, "the trace is below lambda_max beyond errors in a run")
    if gaps and all(g.decided for g in gaps):
        return Verdict(value, HOLDS, "the trace exceeds lambda_max beyond errors in every run")
    return Verdict(value, UNSURE, "; ".join(g.needs for g in gaps if not g.decided) or "no run")


STUDY = Study(
    name=NAME,
    source="toy",
    title="a toy study: lambda_max and the trace at the end of training",
    claims=(Claim(NAME, "lambda_max is below the trace", "lambda_max (Lanczos) and the trace (Hutchinson)",
                  "holds if the trace exceeds lambda_max beyond 2 combined standard errors (the error of each) in "
                  "every run", top_below_trace),),
    jobs=(RunJob("final", "spectrum", {"checkpoint": "last_checkpoint", "data": "subset"}, {"out": final_spectrum},
                 spectrum_settings, log="toy_final"),),
    table="toy.tsv",
    scorecard_tables=("toy.tsv",),
    run_tables=lambda run: [],
    figures=lambda runs, settings: ["toy.png"],
    rules="toy_study.smk",
    schema=SCHEMA,
    build_table=build_table,
    draw=draw,
)
