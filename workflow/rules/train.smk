"""Training: one job per run, every epoch's checkpoint an output (epoch 0 = initial weights), resumable.

A rule's outputs are fixed when it is defined, so there is one training rule per epoch count in the config
(`train_{N}_epochs`, constrained to the runs of N epochs). They all take the resources the profile sets for
`train`. Training also keeps its checkpoints in the run's store (hard links, not outputs), from which a rerun
resumes: Snakemake removes a job's outputs before it runs and after it fails.
"""


def training_subset(wildcards):
    """The Hessian subset, for optimizers that train on it (NSGD); none otherwise."""
    run = run_of(wildcards)
    return subset_file(run) if "hessian_subset" in run else []


def train_settings(wildcards, input, output, threads):
    """Every flag of a training job as one JSON object: the run, where it writes, its data and the runtime's."""
    run = run_of(wildcards)
    return job_settings.to_json(
        {
            "run": training_config(run),
            "out_dir": str(Path(output.run).parent),
            "data_root": dataset_root(run["dataset"]),
            "subset": input.subset or None,
            **RUNTIME,
            "threads": threads,
        }
    )


def train_profile_resources():
    """The resources a profile sets for `train` (e.g. profiles/slurm), for every training rule."""
    resources = workflow.resource_settings.overwrite_resources.get("train", {})
    return {name: getattr(value, "value", value) for name, value in resources.items()}


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
