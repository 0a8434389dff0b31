"""Study `sharpest_directions` (seed 001): top-K eigenvalues along training, lr / batch-size grids, NSGD's gamma."""

SHARPEST_RUNS = runs_of(RUNS, "sharpest_directions")
SHARPEST_FIGURES = ["spectrum_trajectory", "lr_grid", "bs_grid", "nsgd_gamma"]
SHARPEST_TABLE = config_table(
    "sharpest_directions", layout.STUDY_TABLES["sharpest_directions"]
)
TARGETS["sharpest_directions"] = (
    [config_figure("sharpest_directions", f"{name}.png") for name in SHARPEST_FIGURES]
    + [SHARPEST_TABLE]
    if SHARPEST_RUNS
    else []
)


# the study's Lanczos settings as `trajectory` flags
SHARPEST_SPECTRUM = (
    "--top-k {top_k} --tol {tol} --max-steps {max_steps} --batch-size {batch_size}".format(
        **config["studies"]["sharpest_directions"]["spectrum"]
    )
    if SHARPEST_RUNS
    else ""
)
# what the table and the figures read: every run's run.json, history and trajectory, in one order
SHARPEST_INPUTS = {
    "runs": [layout.run_files(run["key"]).run_json for run in SHARPEST_RUNS],
    "histories": [layout.run_files(run["key"]).history for run in SHARPEST_RUNS],
    "trajectories": [layout.trajectory(run["key"]) for run in SHARPEST_RUNS],
}
SHARPEST_FLAGS = "--runs {input.runs} --histories {input.histories} --trajectories {input.trajectories}"


localrules:
    sharpest_figures,
    sharpest_table,


rule sharpest_trajectory:
    input:
        run=RUN_FILES.run_json,
        checkpoints=run_checkpoints,
        subset=run_subset,
    output:
        layout.trajectory(RUN_PATTERN),
    log:
        run_log("trajectory"),
    benchmark:
        run_benchmark("trajectory")
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
        "hessian-spectra sharpest-directions trajectory --run-json {input.run} --checkpoints {input.checkpoints} "
        "--subset {input.subset} --out {output} {params.spectrum} {params.runtime} --threads {threads} "
        "> {log} 2>&1"


rule sharpest_figures:
    input:
        **SHARPEST_INPUTS,
    output:
        trajectory=report(
            config_figure("sharpest_directions", "spectrum_trajectory.png"),
            caption="../report/sharpest_directions/spectrum_trajectory.rst",
            category="sharpest_directions",
        ),
        lr_grid=report(
            config_figure("sharpest_directions", "lr_grid.png"),
            caption="../report/sharpest_directions/lr_grid.rst",
            category="sharpest_directions",
        ),
        bs_grid=report(
            config_figure("sharpest_directions", "bs_grid.png"),
            caption="../report/sharpest_directions/bs_grid.rst",
            category="sharpest_directions",
        ),
        nsgd_gamma=report(
            config_figure("sharpest_directions", "nsgd_gamma.png"),
            caption="../report/sharpest_directions/nsgd_gamma.rst",
            category="sharpest_directions",
        ),
    log:
        config_log("sharpest_directions/figures"),
    conda:
        ENV
    shell:
        f"hessian-spectra sharpest-directions figures {SHARPEST_FLAGS} "
        "--out-dir $(dirname {output.trajectory}) > {log} 2>&1"


rule sharpest_table:
    input:
        **SHARPEST_INPUTS,
    output:
        report(
            SHARPEST_TABLE,
            caption="../report/sharpest_directions/sharpness_table.rst",
            category="sharpest_directions",
        ),
    log:
        config_log("sharpest_directions/table"),
    conda:
        ENV
    shell:
        f"hessian-spectra sharpest-directions table {SHARPEST_FLAGS} --out {{output}} > {{log}} 2>&1"
