"""Study `hessianflow` (seed 002): the dominant eigenvalue after every epoch (power iteration as the source does,
and Lanczos with its residual), SGD vs ABSA; Hutchinson trace and SLQ density at the final checkpoint.
"""

HESSIANFLOW = config["studies"].get("hessianflow", {})
HESSIANFLOW_RUNS = runs_of(RUNS, "hessianflow")
# CLI flags (--key-name value) of the study's `eigen` and `final` sections
HESSIANFLOW_FLAGS = {
    section: " ".join(
        f"--{key.replace('_', '-')} {value}"
        for key, value in HESSIANFLOW.get(section, {}).items()
    )
    for section in ("eigen", "final")
}

if study_enabled("hessianflow"):
    TARGETS["hessianflow"] = [
        config_figure("hessianflow", f"{name}.png")
        for name in ("dominant_eigenvalue", "absa_schedule", "esd_final")
    ]


localrules:
    hessianflow_figures,


rule hessianflow_eigen:
    input:
        run=RUN_FILES.run_json,
        checkpoints=run_checkpoints,
        subset=run_subset,
    output:
        layout.dominant_eigen(RUN_PATTERN),
    log:
        run_log("hessianflow_eigen"),
    benchmark:
        run_benchmark("hessianflow_eigen")
    wildcard_constraints:
        study="hessianflow",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_request,
    params:
        flags=HESSIANFLOW_FLAGS["eigen"],
        runtime=RUNTIME_FLAGS,
    shell:
        "hessian-spectra hessianflow eigen --run-json {input.run} --checkpoints {input.checkpoints} "
        "--subset {input.subset} --out {output} {params.flags} {params.runtime} --threads {threads} > {log} 2>&1"


rule hessianflow_final:
    input:
        checkpoint=last_checkpoint,
        subset=run_subset,
    output:
        table=layout.final_trace_density(RUN_PATTERN, "tsv"),
        npz=layout.final_trace_density(RUN_PATTERN, "npz"),
    log:
        run_log("hessianflow_final"),
    benchmark:
        run_benchmark("hessianflow_final")
    wildcard_constraints:
        study="hessianflow",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_request,
    params:
        flags=HESSIANFLOW_FLAGS["final"],
        runtime=RUNTIME_FLAGS,
    shell:
        "hessian-spectra spectrum --checkpoint {input.checkpoint} --data {input.subset} --out {output.table} "
        "--npz {output.npz} {params.flags} {params.runtime} --threads {threads} > {log} 2>&1"


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
        dominant=report(
            config_figure("hessianflow", "dominant_eigenvalue.png"),
            caption="../report/hessianflow/dominant_eigenvalue.rst",
            category="hessianflow",
        ),
        schedule=report(
            config_figure("hessianflow", "absa_schedule.png"),
            caption="../report/hessianflow/absa_schedule.rst",
            category="hessianflow",
        ),
        esd=report(
            config_figure("hessianflow", "esd_final.png"),
            caption="../report/hessianflow/esd_final.rst",
            category="hessianflow",
        ),
    log:
        config_log("hessianflow/figures"),
    conda:
        ENV
    shell:
        "hessian-spectra hessianflow figures --runs {input.run} --histories {input.history} "
        "--eigen {input.eigen} --final {input.final} --densities {input.density} "
        "--dominant-eigenvalue {output.dominant} --absa-schedule {output.schedule} --esd-final {output.esd} "
        "> {log} 2>&1"
