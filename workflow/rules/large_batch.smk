"""Study `large_batch` (seed 000): top-k spectra of the last-layer and full Hessians at the final checkpoint, loss
surfaces along the top-2 eigenvectors and filter-normalised random directions, and their figures.

The last-layer spectrum is an exact dense eigh, the full one Lanczos top-k; eigenvectors are kept for the Hessian
whose top-2 the landscape follows (`landscape.hessian`). Random directions move that Hessian's parameters
(`landscape.random_params: hessian`) or all of them. Settings are read inside the rules' functions, which run only
for the study's jobs.
"""

from hessian_spectra.inputs import config_entry

LARGE_BATCH = config["studies"].get("large_batch", {})
LARGE_BATCH_RUNS = runs_of(RUNS, "large_batch")
LARGE_BATCH_TABLE = config_table("large_batch", STUDIES["large_batch"].table)
LARGE_BATCH_BY_SIZE = {
    str(size): [r["key"] for r in LARGE_BATCH_RUNS if r["batch_size"] == size]
    for size in sorted({r["batch_size"] for r in LARGE_BATCH_RUNS})
}

# a loss-surface figure's runs; a batch size the config does not train is answered with the sizes it does
LARGE_BATCH_SURFACE_RUNS = lambda wildcards: config_entry(
    LARGE_BATCH_BY_SIZE,
    wildcards.batch_size,
    config_figure("large_batch", f"loss_surface_bs{wildcards.batch_size}.png"),
    "batch size",
    "this config's large_batch runs",
)


localrules:
    large_batch_table,
    large_batch_spectral_figure,
    large_batch_surface_figure,


rule large_batch_table:
    input:
        runs=[layout.run_files(run["key"]).run_json for run in LARGE_BATCH_RUNS],
        histories=[layout.run_files(run["key"]).history for run in LARGE_BATCH_RUNS],
        spectra=lambda wildcards: [
            layout.final_spectrum(run["key"], hessian, "tsv")
            for run in LARGE_BATCH_RUNS
            for hessian in LARGE_BATCH["spectrum"]["hessians"]
        ],
    output:
        LARGE_BATCH_TABLE,
    log:
        config_log("large_batch/top_eigenvalues"),
    conda:
        ENV
    params:
        top_k=lambda wildcards: LARGE_BATCH["spectrum"]["top_k"],
    shell:
        "hessian-spectra large-batch table --runs {input.runs} --histories {input.histories} "
        "--spectra {input.spectra} --top-k {params.top_k} --out {output} > {log} 2>&1"


rule large_batch_spectral_figure:
    input:
        LARGE_BATCH_TABLE,
    output:
        report(
            config_figure("large_batch", "hessian_spectral.png"),
            caption="../report/large_batch/hessian_spectral.rst",
            category="large_batch",
        ),
    log:
        config_log("large_batch/hessian_spectral"),
    conda:
        ENV
    params:
        hessians=lambda wildcards: LARGE_BATCH["spectrum"]["hessians"],
    shell:
        "hessian-spectra large-batch spectral --table {input} --hessians {params.hessians} "
        "--out {output} > {log} 2>&1"


rule large_batch_surface_figure:
    input:
        runs=lambda wildcards: [
            layout.run_files(key).run_json
            for key in LARGE_BATCH_SURFACE_RUNS(wildcards)
        ],
        landscapes=lambda wildcards: [
            layout.landscape(key) for key in LARGE_BATCH_SURFACE_RUNS(wildcards)
        ],
    output:
        report(
            config_figure("large_batch", "loss_surface_bs{batch_size}.png"),
            caption="../report/large_batch/loss_surface.rst",
            category="large_batch",
        ),
    log:
        config_log("large_batch/loss_surface_bs{batch_size}"),
    conda:
        ENV
    params:
        kind=lambda wildcards: LARGE_BATCH["landscape"]["plot"],
    shell:
        "hessian-spectra large-batch surface --runs {input.runs} --landscapes {input.landscapes} "
        "--kind {params.kind} --out {output} > {log} 2>&1"
