"""Training: one job per run, a checkpoint every epoch (resumable), history, and the run's Hessian subset."""

import json


rule train:
    input:
        dataset_input,
    output:
        final=f"{RUN_DIR}/final.pt",
        history=f"{RUN_DIR}/history.tsv",
        subset=f"{RUN_DIR}/hessian_subset.pt",
        run=f"{RUN_DIR}/run.json",
    log:
        f"{LOG_DIR}/train.log",
    benchmark:
        f"{BENCHMARK_DIR}/train.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_request,
    params:
        run=lambda wildcards: run_json(run_of(wildcards)),
        data_root=lambda wildcards: dataset_root(run_of(wildcards)["dataset"]),
        runtime=RUNTIME_FLAGS,
    shell:
        "hessian-spectra train --run {params.run:q} --out-dir $(dirname {output.final}) "
        "--data-root {params.data_root} {params.runtime} --threads {threads} > {log} 2>&1"
