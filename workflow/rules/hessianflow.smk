"""Study `hessianflow` (seed 002): the dominant eigenvalue after every epoch (power iteration as the source does,
and Lanczos with its residual), SGD vs ABSA; Hutchinson trace and SLQ density at the final checkpoint.
"""

HESSIANFLOW = config["studies"].get("hessianflow", {})
HESSIANFLOW_FIGURES = "results/figures/hessianflow"
HESSIANFLOW_RUN_DIRS = [run_dir(run) for run in runs_of(RUNS, "hessianflow")]
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
        f"{HESSIANFLOW_FIGURES}/{name}.png"
        for name in ("dominant_eigenvalue", "absa_schedule", "esd_final")
    ]


localrules:
    hessianflow_figures,


rule hessianflow_eigen:
    input:
        history=f"{RUN_DIR}/history.tsv",
        run=f"{RUN_DIR}/run.json",
        subset=f"{RUN_DIR}/hessian_subset.pt",
    output:
        f"{RUN_DIR}/dominant_eigen.tsv",
    log:
        f"{LOG_DIR}/hessianflow_eigen.log",
    benchmark:
        f"{BENCHMARK_DIR}/hessianflow_eigen.tsv"
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
        "hessian-spectra dominant-eigen --run-dir $(dirname {input.run}) --out {output} {params.flags} "
        "{params.runtime} --threads {threads} > {log} 2>&1"


rule hessianflow_final:
    input:
        checkpoint=f"{RUN_DIR}/final.pt",
        subset=f"{RUN_DIR}/hessian_subset.pt",
    output:
        table=f"{RUN_DIR}/final_trace_density.tsv",
        npz=f"{RUN_DIR}/final_trace_density.npz",
    log:
        f"{LOG_DIR}/hessianflow_final.log",
    benchmark:
        f"{BENCHMARK_DIR}/hessianflow_final.tsv"
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
        run=[f"{d}/run.json" for d in HESSIANFLOW_RUN_DIRS],
        history=[f"{d}/history.tsv" for d in HESSIANFLOW_RUN_DIRS],
        eigen=[f"{d}/dominant_eigen.tsv" for d in HESSIANFLOW_RUN_DIRS],
        final=[f"{d}/final_trace_density.tsv" for d in HESSIANFLOW_RUN_DIRS],
        density=[f"{d}/final_trace_density.npz" for d in HESSIANFLOW_RUN_DIRS],
    output:
        dominant=report(
            f"{HESSIANFLOW_FIGURES}/dominant_eigenvalue.png",
            caption="../report/hessianflow/dominant_eigenvalue.rst",
            category="hessianflow",
        ),
        schedule=report(
            f"{HESSIANFLOW_FIGURES}/absa_schedule.png",
            caption="../report/hessianflow/absa_schedule.rst",
            category="hessianflow",
        ),
        esd=report(
            f"{HESSIANFLOW_FIGURES}/esd_final.png",
            caption="../report/hessianflow/esd_final.rst",
            category="hessianflow",
        ),
    log:
        "results/logs/hessianflow/figures.log",
    conda:
        ENV
    params:
        runs=HESSIANFLOW_RUN_DIRS,
    shell:
        "hessian-spectra plot-hessianflow --runs {params.runs} --dominant-eigenvalue {output.dominant} "
        "--absa-schedule {output.schedule} --esd-final {output.esd} > {log} 2>&1"
