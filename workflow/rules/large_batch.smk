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
LARGE_BATCH_TABLE = config_table("large_batch", layout.STUDY_TABLES["large_batch"])
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


rule large_batch_spectrum:
    input:
        final=last_checkpoint,
        subset=run_subset,
    output:
        table=layout.final_spectrum(RUN_PATTERN, "{hessian}", "tsv"),
        npz=layout.final_spectrum(RUN_PATTERN, "{hessian}", "npz"),
    log:
        run_log("large_batch_spectrum_{hessian}"),
    benchmark:
        run_benchmark("large_batch_spectrum_{hessian}")
    wildcard_constraints:
        study="large_batch",
        hessian="last_layer|full",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_request,
    params:
        top_k=lambda wildcards: LARGE_BATCH["spectrum"]["top_k"],
        batch_size=lambda wildcards: LARGE_BATCH["spectrum"]["batch_size"],
        method=lambda wildcards: (
            "--params last_layer --dense --max-lanes 64"
            if wildcards.hessian == "last_layer"
            else f"--params all --tol {LARGE_BATCH['spectrum']['tol']} "
            f"--max-steps {LARGE_BATCH['spectrum']['max_steps']}"
        ),
        eigenvectors=lambda wildcards: (
            "--eigenvectors"
            if "eigen" in LARGE_BATCH["landscape"]["directions"]
            and wildcards.hessian == LARGE_BATCH["landscape"]["hessian"]
            else ""
        ),
        runtime=RUNTIME_FLAGS,
    shell:
        "hessian-spectra spectrum --checkpoint {input.final} --data {input.subset} --out {output.table} "
        "--npz {output.npz} --top-k {params.top_k} --batch-size {params.batch_size} {params.method} "
        "{params.eigenvectors} {params.runtime} --threads {threads} > {log} 2>&1"


rule large_batch_landscape:
    input:
        final=last_checkpoint,
        subset=run_subset,
        eigenvectors=lambda wildcards: (
            layout.final_spectrum(
                run_of(wildcards)["key"], LARGE_BATCH["landscape"]["hessian"], "npz"
            )
            if "eigen" in LARGE_BATCH["landscape"]["directions"]
            else []
        ),
    output:
        layout.landscape(RUN_PATTERN),
    log:
        run_log("large_batch_landscape"),
    benchmark:
        run_benchmark("large_batch_landscape")
    wildcard_constraints:
        study="large_batch",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_request,
    params:
        directions=lambda wildcards: LARGE_BATCH["landscape"]["directions"],
        grid=lambda wildcards: (
            f"--grid-points {LARGE_BATCH['landscape']['grid_points']} "
            f"--extent {LARGE_BATCH['landscape']['extent']} "
            f"--batch-size {LARGE_BATCH['landscape']['batch_size']}"
        ),
        eigenvectors=lambda wildcards, input: (
            f"--eigenvectors {input.eigenvectors}" if input.eigenvectors else ""
        ),
        random_params=lambda wildcards: (
            "last_layer"
            if LARGE_BATCH["landscape"]["random_params"] == "hessian"
            and LARGE_BATCH["landscape"]["hessian"] == "last_layer"
            else "all"
        ),
        runtime=RUNTIME_FLAGS,
    shell:
        "hessian-spectra landscape --checkpoint {input.final} --data {input.subset} --out {output} "
        "--directions {params.directions} {params.grid} {params.eigenvectors} "
        "--random-params {params.random_params} --seed {wildcards.seed} {params.runtime} --threads {threads} "
        "> {log} 2>&1"


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


if LARGE_BATCH_RUNS:
    TARGETS["large_batch"] = [
        config_figure("large_batch", "hessian_spectral.png"),
        LARGE_BATCH_TABLE,
    ] + [
        config_figure("large_batch", f"loss_surface_bs{size}.png")
        for size in LARGE_BATCH_BY_SIZE
    ]
