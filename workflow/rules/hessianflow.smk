"""Study `hessianflow` (seed 002): the dominant-eigenvalue table and the figures from every run's per-epoch estimates
and final trace and density (its per-run jobs: hessian_spectra.studies.hessianflow)."""

from hessian_spectra.studies.hessianflow import FIGURES as HESSIANFLOW_FIGURES

HESSIANFLOW_RUNS = study_runs("hessianflow")
# what the table and the figures read, every run's files in one order
HESSIANFLOW_INPUTS = {
    "runs": [layout.run_files(run["key"]).run_json for run in HESSIANFLOW_RUNS],
    "histories": [layout.run_files(run["key"]).history for run in HESSIANFLOW_RUNS],
    "eigen": [layout.dominant_eigen(run["key"]) for run in HESSIANFLOW_RUNS],
    "final": [
        layout.final_trace_density(run["key"], "tsv") for run in HESSIANFLOW_RUNS
    ],
}
HESSIANFLOW_FLAGS = "--runs {input.runs} --histories {input.histories} --eigen {input.eigen} --final {input.final}"


localrules:
    hessianflow_table,
    hessianflow_figures,


rule hessianflow_table:
    input:
        **HESSIANFLOW_INPUTS,
    output:
        config_table("hessianflow", STUDIES["hessianflow"].table),
    log:
        config_log("hessianflow/table"),
    conda:
        ENV
    shell:
        f"hessian-spectra hessianflow table {HESSIANFLOW_FLAGS} --out {{output}} > {{log}} 2>&1"


rule hessianflow_figures:
    input:
        **HESSIANFLOW_INPUTS,
        densities=[
            layout.final_trace_density(run["key"], "npz") for run in HESSIANFLOW_RUNS
        ],
    output:
        **{
            Path(name).stem: study_figure("hessianflow", name)
            for name in HESSIANFLOW_FIGURES
        },
    log:
        config_log("hessianflow/figures"),
    conda:
        ENV
    shell:
        f"hessian-spectra hessianflow figures {HESSIANFLOW_FLAGS} --densities {{input.densities}} "
        "--dominant-eigenvalue {output.dominant_eigenvalue} --absa-schedule {output.absa_schedule} "
        "--esd-final {output.esd_final} > {log} 2>&1"
