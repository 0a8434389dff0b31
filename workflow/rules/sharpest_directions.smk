"""Study `sharpest_directions` (seed 001): the sharpness table and figures from every run's top-K eigenvalues along
training (its per-run job: hessian_spectra.studies.sharpest_directions)."""

from hessian_spectra.studies.sharpest_directions import FIGURES as SHARPEST_FIGURES

SHARPEST_RUNS = study_runs("sharpest_directions")
SHARPEST_TABLE = config_table(
    "sharpest_directions", STUDIES["sharpest_directions"].table
)

# what the table and the figures read: every run's run.json, history and trajectory, in one order
SHARPEST_INPUTS = {
    "runs": [layout.run_files(run["key"]).run_json for run in SHARPEST_RUNS],
    "histories": [layout.run_files(run["key"]).history for run in SHARPEST_RUNS],
    "trajectories": [layout.trajectory(run["key"]) for run in SHARPEST_RUNS],
}
SHARPEST_FLAGS = "--runs {input.runs} --histories {input.histories} --trajectories {input.trajectories}"


localrules:
    sharpest_directions_figures,
    sharpest_directions_table,


rule sharpest_directions_figures:
    input:
        **SHARPEST_INPUTS,
    output:
        **{
            Path(name).stem: study_figure("sharpest_directions", name)
            for name in SHARPEST_FIGURES
        },
    log:
        config_log("sharpest_directions/figures"),
    conda:
        ENV
    shell:
        f"hessian-spectra sharpest-directions figures {SHARPEST_FLAGS} "
        "--out-dir $(dirname {output.spectrum_trajectory}) > {log} 2>&1"


rule sharpest_directions_table:
    input:
        **SHARPEST_INPUTS,
    output:
        report_entry(SHARPEST_TABLE, "sharpest_directions", "sharpness_table"),
    log:
        config_log("sharpest_directions/table"),
    conda:
        ENV
    shell:
        f"hessian-spectra sharpest-directions table {SHARPEST_FLAGS} --out {{output}} > {{log}} 2>&1"
