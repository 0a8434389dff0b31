"""Study `hessianflow` (seed 002): the dominant eigenvalue after every epoch (power iteration as the source does,
and Lanczos with its residual), SGD vs ABSA; Hutchinson trace and SLQ density at the final checkpoint.
"""

from hessian_spectra.studies.hessianflow import FIGURES as HESSIANFLOW_FIGURES

HESSIANFLOW_RUNS = study_runs("hessianflow")


localrules:
    hessianflow_figures,


rule hessianflow_figures:
    input:
        run=[layout.run_files(run["key"]).run_json for run in HESSIANFLOW_RUNS],
        history=[layout.run_files(run["key"]).history for run in HESSIANFLOW_RUNS],
        eigen=[layout.dominant_eigen(run["key"]) for run in HESSIANFLOW_RUNS],
        final=[
            layout.final_trace_density(run["key"], "tsv") for run in HESSIANFLOW_RUNS
        ],
        density=[
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
        "hessian-spectra hessianflow figures --runs {input.run} --histories {input.history} "
        "--eigen {input.eigen} --final {input.final} --densities {input.density} "
        "--dominant-eigenvalue {output.dominant_eigenvalue} --absa-schedule {output.absa_schedule} --esd-final {output.esd_final} "
        "> {log} 2>&1"
