"""Study `sharpest_directions` (seed 001): top-K eigenvalues along training, lr / batch-size grids, NSGD's gamma."""

SHARPEST_RUN_DIRS = [run_dir(run) for run in runs_of(RUNS, "sharpest_directions")]
SHARPEST_OUT = "results/figures/sharpest_directions"
SHARPEST_FIGURES = ["spectrum_trajectory", "lr_grid", "bs_grid", "nsgd_gamma"]
TARGETS["sharpest_directions"] = (
    [f"{SHARPEST_OUT}/{name}.png" for name in SHARPEST_FIGURES]
    + [f"{SHARPEST_OUT}/sharpness_table.csv"]
    if SHARPEST_RUN_DIRS
    else []
)


# the study's Lanczos settings as `trajectory` flags
SHARPEST_SPECTRUM = (
    "--top-k {top_k} --tol {tol} --max-steps {max_steps} --batch-size {batch_size}".format(
        **config["studies"]["sharpest_directions"]["spectrum"]
    )
    if SHARPEST_RUN_DIRS
    else ""
)
# per kind, that file of every run of the study
SHARPEST_INPUTS = {
    kind: [f"{directory}/{name}" for directory in SHARPEST_RUN_DIRS]
    for kind, name in (
        ("trajectories", "trajectory.tsv"),
        ("histories", "history.tsv"),
        ("runs", "run.json"),
    )
}


localrules:
    sharpest_figures,
    sharpest_table,


rule sharpest_trajectory:
    input:
        history=f"{RUN_DIR}/history.tsv",
        subset=f"{RUN_DIR}/hessian_subset.pt",
        run=f"{RUN_DIR}/run.json",
    output:
        f"{RUN_DIR}/trajectory.tsv",
    log:
        f"{LOG_DIR}/trajectory.log",
    benchmark:
        f"{BENCHMARK_DIR}/trajectory.tsv"
    wildcard_constraints:
        study="sharpest_directions",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_request,
    params:
        spectrum=SHARPEST_SPECTRUM,
        runtime=RUNTIME_FLAGS,
    shell:
        "hessian-spectra trajectory --run-dir $(dirname {input.run}) --out {output} {params.spectrum} "
        "{params.runtime} --threads {threads} > {log} 2>&1"


rule sharpest_figures:
    input:
        **SHARPEST_INPUTS,
    output:
        trajectory=report(
            f"{SHARPEST_OUT}/spectrum_trajectory.png",
            caption="../report/sharpest_directions/spectrum_trajectory.rst",
            category="sharpest_directions",
        ),
        lr_grid=report(
            f"{SHARPEST_OUT}/lr_grid.png",
            caption="../report/sharpest_directions/lr_grid.rst",
            category="sharpest_directions",
        ),
        bs_grid=report(
            f"{SHARPEST_OUT}/bs_grid.png",
            caption="../report/sharpest_directions/bs_grid.rst",
            category="sharpest_directions",
        ),
        nsgd_gamma=report(
            f"{SHARPEST_OUT}/nsgd_gamma.png",
            caption="../report/sharpest_directions/nsgd_gamma.rst",
            category="sharpest_directions",
        ),
    log:
        "results/logs/sharpest_directions/figures.log",
    conda:
        ENV
    params:
        run_dirs=SHARPEST_RUN_DIRS,
    shell:
        "hessian-spectra plot-sharpest-directions --run-dirs {params.run_dirs} "
        "--out-dir $(dirname {output.trajectory}) > {log} 2>&1"


rule sharpest_table:
    input:
        **SHARPEST_INPUTS,
    output:
        report(
            f"{SHARPEST_OUT}/sharpness_table.csv",
            caption="../report/sharpest_directions/sharpness_table.rst",
            category="sharpest_directions",
        ),
    log:
        "results/logs/sharpest_directions/table.log",
    conda:
        ENV
    params:
        run_dirs=SHARPEST_RUN_DIRS,
    shell:
        "hessian-spectra sharpness-table --run-dirs {params.run_dirs} --out {output} > {log} 2>&1"
