"""Shared helpers: the planned runs and subsets, wildcard constraints, paths, and per-rule resources."""

import re
import sys
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from hessian_spectra import job_settings, layout
from hessian_spectra.data.catalog import needs_download
from hessian_spectra.data.files import is_data_path
from hessian_spectra.layout import RUN_PATTERN
from hessian_spectra.portable import shell_exports
from hessian_spectra.runs import plan_subsets, runs_of, subset_key, training_config
from hessian_spectra.studies import job_inputs
from hessian_spectra.studies import job_settings as study_job_settings
from hessian_spectra.workflow_plan import plan_workflow
from hessian_spectra.verify import restore_checkpoints

# The studies (the built-in ones and the config's `study_modules`), the config checked against the schema's section
# for each, its planned runs and each study's plan.
try:
    PLAN = plan_workflow(
        config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
    )
except ValueError as err:
    raise WorkflowError(f"invalid config: {err}") from None
validate(config, "../schemas/config.schema.yaml")
config.update(PLAN.config)
STUDIES, RUNS, PLANS = PLAN.studies, PLAN.runs, PLAN.plans
SUBSETS = plan_subsets(RUNS)

# Deleted checkpoints of trained runs come back from the training store; those that cannot are lost and become
# targets of the default run, which retrains their runs from the last intact checkpoint and rebuilds what follows.
LOST_CHECKPOINTS = []
for _run in RUNS.values():
    _restored, _lost = restore_checkpoints(_run["key"], _run["epochs"])
    for _path in _restored:
        logger.info(
            f"{_path}: deleted; restored from the run's checkpoint store (same bytes)"
        )
    for _path in _lost:
        logger.warning(
            f"{_path}: checkpoint lost (no intact copy in the run's store); `snakemake` without targets "
            f"retrains the run from its last intact checkpoint, or add `--forcerun {_path}` to a target"
        )
    LOST_CHECKPOINTS += _lost

# Rules call the library's CLI as `hessian-spectra`: a shell function running it with the interpreter that
# runs Snakemake (no venv needs to be active), or under --sdm conda with the rule environment's python and the
# library on PYTHONPATH. Portable jobs first export the CPU kernel choices and threads (hessian_spectra.portable).
# (shell.prefix formats its argument, hence the doubled braces.)
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    _CLI = f"PYTHONPATH={Path(workflow.basedir) / 'src'} python -m hessian_spectra"
else:
    _CLI = f"{sys.executable} -m hessian_spectra"
shell.prefix(
    f"set -euo pipefail; {shell_exports(config)}"
    f'hessian-spectra() {{{{ {_CLI} "$@"; }}}}; '
)
ENV = "../../envs/hessian-spectra.yaml"

RUN_FILES = layout.run_files(RUN_PATTERN)
# Trained runs and their per-run tables are shared by every config in this folder; what a config makes of them
# (study tables, figures, scorecard, their logs) lives under its own `name` (layout.config_root).
CONFIG_NAME = config["name"]


def config_figure(study, name):
    """A figure of this config."""
    return layout.figure(study, name, CONFIG_NAME)


def report_entry(path, category, caption):
    """`path` in the report under `category`, with the caption workflow/report/<category>/<caption>.rst (a path
    relative to the rule files)."""
    return report(
        path, caption=f"../report/{category}/{caption}.rst", category=category
    )


def study_figure(study, name, caption=None):
    """A figure of this config in the report, under its study, captioned by <caption or the figure's stem>.rst."""
    return report_entry(config_figure(study, name), study, caption or Path(name).stem)


def config_table(study, name):
    """A study table of this config."""
    return layout.study_table(study, name, CONFIG_NAME)


def config_log(name):
    """The log of one of this config's study-table or figure jobs."""
    return layout.log(name, CONFIG_NAME)


wildcard_constraints:
    study="|".join(STUDIES),
    model=r"[A-Za-z0-9_]+",
    dataset=r"[A-Za-z0-9_-]+",
    batch_size=r"\d+",
    seed=r"\d+",
    variant=r"[A-Za-z0-9_.+-]+",
    epoch=r"\d{4}",
    subset="|".join(re.escape(key) for key in SUBSETS),


def run_of(wildcards):
    """The planned run a job's wildcards name."""
    key = RUN_PATTERN.format(
        **{
            name: wildcards[name]
            for name in ("study", "model", "dataset", "batch_size", "seed", "variant")
        }
    )
    if key not in RUNS:
        raise WorkflowError(f"results/{key} is not a run of this config")
    return RUNS[key]


def run_log(name):
    """Log file pattern of a per-run job."""
    return layout.log(f"{RUN_PATTERN}/{name}")


def run_benchmark(name):
    """Benchmark file pattern of a per-run job."""
    return layout.benchmark(f"{RUN_PATTERN}/{name}")


def subset_file(run):
    """The Hessian subset file of a planned run."""
    return layout.subset(subset_key(run["subset"]))


def run_subset(wildcards):
    """The Hessian subset a per-run curvature job reads."""
    return subset_file(run_of(wildcards))


def run_checkpoints(wildcards):
    """Every checkpoint of the run a job walks, epoch 0 first."""
    run = run_of(wildcards)
    return layout.run_files(run["key"]).checkpoints(run["epochs"])


def last_checkpoint(wildcards):
    """The final checkpoint of a job's run."""
    run = run_of(wildcards)
    return layout.run_files(run["key"]).checkpoint(run["epochs"])


def dataset_root(dataset):
    """The torchvision root a job reads `dataset` from: `data_root`, or the downloaded copy under resources/."""
    return config["data_root"] or f"resources/data/{dataset}"


def dataset_ready(dataset):
    """What a job reading `dataset` waits for: a verified download or `data_root`, or the user's folder or file
    (which a rule may make); none for the embedded digits and mnist5k."""
    if is_data_path(dataset):
        return dataset
    if not needs_download(dataset):
        return []
    if config["data_root"]:
        return f"results/data_root/{dataset}.READY.json"
    return f"resources/data/{dataset}/READY.json"


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


def gpu_request(wildcards):
    """One GPU per job when the config's device is CUDA, none on CPU."""
    return 1 if config["device"] == "cuda" else 0


# what every training and curvature job takes from the config besides its own settings
RUNTIME = job_settings.runtime(config)


def check_device():
    """Before any job runs locally: `device: cuda` needs a CUDA device (a dry run cannot tell where jobs will run,
    so the check waits for the real run; cluster executors are not checked here)."""
    if config["device"] != "cuda" or not workflow.local_exec:
        return
    import torch

    if not torch.cuda.is_available():
        raise WorkflowError(
            "invalid config: device: cuda, but torch sees no CUDA device on this machine; set `device: cpu`, "
            "or run on a GPU machine or through a cluster profile (profiles/slurm)"
        )


onstart:
    check_device()


def study_enabled(study):
    """Whether the config has `study` and does not switch it off."""
    return study in config["studies"] and config["studies"][study]["enabled"]


def study_rule_file(study):
    """The rules of a study: a built-in study's file under workflow/, the file beside a `study_modules` module."""
    return str(Path(workflow.basedir) / "workflow" / study.rules)


def study_runs(study):
    """The planned runs of `study`."""
    return runs_of(RUNS, study)


def study_settings(study):
    """The config section of `study` (its defaults filled in), empty if the config has none."""
    return config["studies"].get(study, {})


def study_targets(study):
    """A study's figures and table, if the config runs it."""
    runs = study_runs(study.name)
    if not runs:
        return []
    figures = study.figures(runs, study_settings(study.name))
    table = [config_table(study.name, study.table)] if study.table else []
    return [config_figure(study.name, name) for name in figures] + table


def job_json(settings):
    """A job's settings as its `--settings` argument."""
    return job_settings.to_json(settings)


def run_job_inputs(study, job):
    """The input function of a per-run job: its files by flag."""
    return lambda wildcards: job_inputs(
        job, study_settings(study.name), run_of(wildcards), wildcards.get("epoch")
    )


def run_job_settings(study, job):
    """The params function of a per-run job: every flag of its command as one JSON object."""
    return lambda wildcards, input, output, threads: job_settings.to_json(
        study_job_settings(
            job,
            study_settings(study.name),
            run_of(wildcards),
            wildcards,
            input,
            output,
            {**RUNTIME, "threads": threads},
        )
    )


def all_targets():
    """Every figure and table of the enabled studies, the findings scorecard, and any lost checkpoint (the default
    target)."""
    return (
        [
            target
            for study in STUDIES.values()
            if study_enabled(study.name)
            for target in study_targets(study)
        ]
        + [layout.findings(CONFIG_NAME)]
        + LOST_CHECKPOINTS
    )
