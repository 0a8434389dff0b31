"""Study `large_batch` (seed 000): the top-eigenvalue table and the figures from every run's final spectra and loss
surfaces (its per-run jobs and plan: hessian_spectra.studies.large_batch)."""

from hessian_spectra.studies.large_batch.plan import SPECTRAL_FIGURE, surface_figure

LARGE_BATCH_PLAN = PLANS["large_batch"]
LARGE_BATCH_RUNS = study_runs("large_batch")
LARGE_BATCH_TABLE = config_table("large_batch", STUDIES["large_batch"].table)


localrules:
    large_batch_table,
    large_batch_spectral_figure,
    large_batch_surface_figure,


rule large_batch_table:
    input:
        runs=[layout.run_files(run["key"]).run_json for run in LARGE_BATCH_RUNS],
        histories=[layout.run_files(run["key"]).history for run in LARGE_BATCH_RUNS],
        spectra=[
            layout.final_spectrum(run["key"], hessian, "tsv")
            for run in LARGE_BATCH_RUNS
            for hessian in study_settings("large_batch")["spectrum"]["hessians"]
        ],
    output:
        LARGE_BATCH_TABLE,
    log:
        config_log("large_batch/top_eigenvalues"),
    conda:
        ENV
    params:
        top_k=lambda wildcards: study_settings("large_batch")["spectrum"]["top_k"],
    shell:
        "hessian-spectra large-batch table --runs {input.runs} --histories {input.histories} "
        "--spectra {input.spectra} --top-k {params.top_k} --out {output} > {log} 2>&1"


rule large_batch_spectral_figure:
    input:
        LARGE_BATCH_TABLE,
    output:
        study_figure("large_batch", SPECTRAL_FIGURE),
    log:
        config_log("large_batch/hessian_spectral"),
    conda:
        ENV
    params:
        hessians=lambda wildcards: study_settings("large_batch")["spectrum"]["hessians"],
    shell:
        "hessian-spectra large-batch spectral --table {input} --hessians {params.hessians} "
        "--out {output} > {log} 2>&1"


rule large_batch_surface_figure:
    input:
        runs=lambda wildcards: [
            layout.run_files(key).run_json
            for key in LARGE_BATCH_PLAN.surface_runs(wildcards.batch_size, CONFIG_NAME)
        ],
        landscapes=lambda wildcards: [
            layout.landscape(key)
            for key in LARGE_BATCH_PLAN.surface_runs(wildcards.batch_size, CONFIG_NAME)
        ],
    output:
        study_figure("large_batch", surface_figure("{batch_size}"), "loss_surface"),
    log:
        config_log("large_batch/loss_surface_bs{batch_size}"),
    conda:
        ENV
    params:
        kind=lambda wildcards: study_settings("large_batch")["landscape"]["plot"],
    shell:
        "hessian-spectra large-batch surface --runs {input.runs} --landscapes {input.landscapes} "
        "--kind {params.kind} --out {output} > {log} 2>&1"
