"""Study `large_batch` (seed 000): top-k spectra of the last-layer and full Hessians at the final checkpoint, loss
surfaces along the top-2 eigenvectors and filter-normalised random directions, and their figures.

The last-layer spectrum is an exact dense eigh, the full one Lanczos top-k; eigenvectors are kept for the Hessian
whose top-2 the landscape follows (`landscape.hessian`). Random directions move that Hessian's parameters
(`landscape.random_params: hessian`) or all of them. Settings are read inside the rules' functions, which run only
for the study's jobs.
"""

LARGE_BATCH = config["studies"].get("large_batch", {})
LARGE_BATCH_RUNS = runs_of(RUNS, "large_batch")
LARGE_BATCH_FIGURES = "results/figures/large_batch"
LARGE_BATCH_TABLE = "results/tables/large_batch/top_eigenvalues.tsv"
LARGE_BATCH_SPECTRUM = f"{RUN_DIR}/large_batch_spectrum_{{hessian}}"
LARGE_BATCH_LANDSCAPE = "large_batch_landscape.tsv"
LARGE_BATCH_BY_SIZE = {
    str(size): [run_dir(r) for r in LARGE_BATCH_RUNS if r["batch_size"] == size]
    for size in sorted({r["batch_size"] for r in LARGE_BATCH_RUNS})
}


localrules:
    large_batch_spectral_figure,
    large_batch_surface_figure,


rule large_batch_spectrum:
    input:
        final=f"{RUN_DIR}/final.pt",
        subset=f"{RUN_DIR}/hessian_subset.pt",
    output:
        table=f"{LARGE_BATCH_SPECTRUM}.tsv",
        npz=f"{LARGE_BATCH_SPECTRUM}.npz",
    log:
        f"{LOG_DIR}/large_batch_spectrum_{{hessian}}.log",
    benchmark:
        f"{BENCHMARK_DIR}/large_batch_spectrum_{{hessian}}.tsv"
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
        final=f"{RUN_DIR}/final.pt",
        subset=f"{RUN_DIR}/hessian_subset.pt",
        eigenvectors=lambda wildcards: (
            f"{run_dir(run_of(wildcards))}/large_batch_spectrum_{LARGE_BATCH['landscape']['hessian']}.npz"
            if "eigen" in LARGE_BATCH["landscape"]["directions"]
            else []
        ),
    output:
        f"{RUN_DIR}/{LARGE_BATCH_LANDSCAPE}",
    log:
        f"{LOG_DIR}/large_batch_landscape.log",
    benchmark:
        f"{BENCHMARK_DIR}/large_batch_landscape.tsv"
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


rule large_batch_spectral_figure:
    input:
        runs=[f"{run_dir(run)}/run.json" for run in LARGE_BATCH_RUNS],
        spectra=lambda wildcards: [
            f"{run_dir(run)}/large_batch_spectrum_{hessian}.tsv"
            for run in LARGE_BATCH_RUNS
            for hessian in LARGE_BATCH["spectrum"]["hessians"]
        ],
    output:
        figure=report(
            f"{LARGE_BATCH_FIGURES}/hessian_spectral.png",
            caption="../report/large_batch/hessian_spectral.rst",
            category="large_batch",
        ),
        table=LARGE_BATCH_TABLE,
    log:
        "results/logs/large_batch/hessian_spectral.log",
    conda:
        ENV
    params:
        runs=[run_dir(run) for run in LARGE_BATCH_RUNS],
        hessians=lambda wildcards: LARGE_BATCH["spectrum"]["hessians"],
        top_k=lambda wildcards: LARGE_BATCH["spectrum"]["top_k"],
    shell:
        "hessian-spectra plot-large-batch spectral --runs {params.runs} --hessians {params.hessians} "
        "--top-k {params.top_k} --out {output.figure} --table {output.table} > {log} 2>&1"


rule large_batch_surface_figure:
    input:
        runs=lambda wildcards: [
            f"{d}/run.json" for d in LARGE_BATCH_BY_SIZE[wildcards.batch_size]
        ],
        landscapes=lambda wildcards: [
            f"{d}/{LARGE_BATCH_LANDSCAPE}"
            for d in LARGE_BATCH_BY_SIZE[wildcards.batch_size]
        ],
    output:
        report(
            f"{LARGE_BATCH_FIGURES}/loss_surface_bs{{batch_size}}.png",
            caption="../report/large_batch/loss_surface.rst",
            category="large_batch",
        ),
    log:
        "results/logs/large_batch/loss_surface_bs{batch_size}.log",
    conda:
        ENV
    params:
        runs=lambda wildcards: LARGE_BATCH_BY_SIZE[wildcards.batch_size],
        kind=lambda wildcards: LARGE_BATCH["landscape"]["plot"],
    shell:
        "hessian-spectra plot-large-batch surface --runs {params.runs} --kind {params.kind} --out {output} "
        "> {log} 2>&1"


if LARGE_BATCH_RUNS:
    TARGETS["large_batch"] = [
        f"{LARGE_BATCH_FIGURES}/hessian_spectral.png",
        LARGE_BATCH_TABLE,
    ] + [
        f"{LARGE_BATCH_FIGURES}/loss_surface_bs{size}.png"
        for size in LARGE_BATCH_BY_SIZE
    ]
