"""Training: one job per run, every epoch's checkpoint an output (epoch 0 = initial weights), resumable.

A rule's outputs are fixed when it is defined, so there is one training rule per epoch count in the config
(`train_{N}_epochs`, constrained to the runs of N epochs). They all take the resources the profile sets for
`train`. Training also keeps its checkpoints in the run's store (hard links, not outputs), from which a rerun
resumes: Snakemake removes a job's outputs before it runs and after it fails.
"""

for _epochs, _variants in PLAN.training_variants.items():

    rule:
        name:
            f"train_{_epochs}_epochs"
        input:
            data=lambda wildcards: dataset_ready(run_of(wildcards)["dataset"]),
            subset=training_subset,
        output:
            checkpoints=RUN_FILES.checkpoints(_epochs),
            history=RUN_FILES.history,
            run=RUN_FILES.run_json,
        log:
            run_log("train"),
        benchmark:
            run_benchmark("train")
        wildcard_constraints:
            variant="|".join(re.escape(v) for v in _variants),
        conda:
            ENV
        threads: config["threads"]
        resources:
            **train_profile_resources(),
            gpu=gpu_request,
        params:
            settings=train_settings,
        shell:
            "hessian-spectra train --settings {params.settings:q} > {log} 2>&1"
