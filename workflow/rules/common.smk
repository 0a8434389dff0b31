"""Shared helpers: the planned runs, wildcard constraints, paths, and per-rule resources."""

import sys
from pathlib import Path

from snakemake.utils import validate
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from hessian_spectra.data.catalog import needs_download
from hessian_spectra.runs import (
    RUN_PATTERN,
    STUDIES,
    ConfigError,
    check_config,
    load_yaml,
    plan_runs,
    run_json,
    runs_of,
)

SCHEMA = load_yaml(
    Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
)

try:
    check_config(config, SCHEMA)
    validate(config, "../schemas/config.schema.yaml")
    RUNS = plan_runs(config, SCHEMA)
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}") from None

# Rules call the library's CLI as `hessian-spectra`: a shell function running it with the interpreter that
# runs Snakemake (no venv needs to be active), or under --sdm conda with the rule environment's python and the
# library on PYTHONPATH. (shell.prefix formats its argument, hence the doubled braces.)
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    _CLI = f"PYTHONPATH={Path(workflow.basedir) / 'src'} python -m hessian_spectra"
else:
    _CLI = f"{sys.executable} -m hessian_spectra"
shell.prefix(f'set -euo pipefail; hessian-spectra() {{{{ {_CLI} "$@"; }}}}; ')
ENV = "../../envs/hessian-spectra.yaml"

RUN_DIR = f"results/{RUN_PATTERN}"
LOG_DIR = f"results/logs/{RUN_PATTERN}"
BENCHMARK_DIR = f"results/benchmarks/{RUN_PATTERN}"
TARGETS = {}


wildcard_constraints:
    study="|".join(STUDIES),
    model=r"[a-z0-9_]+",
    dataset=r"[a-z0-9]+",
    batch_size=r"\d+",
    seed=r"\d+",
    variant=r"[A-Za-z0-9_.+-]+",
    epoch=r"\d{4}",


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


def run_dir(run):
    """Directory of a planned run."""
    return f"results/{run['key']}"


def dataset_root(dataset):
    """The torchvision root a job reads `dataset` from: `data_root`, or the downloaded copy under resources/."""
    return config["data_root"] or f"resources/data/{dataset}"


def dataset_input(wildcards):
    """The marker a training job waits for: a verified download, or a verified `data_root` (none for digits)."""
    dataset = run_of(wildcards)["dataset"]
    if not needs_download(dataset):
        return []
    if config["data_root"]:
        return f"results/data_root/{dataset}.READY.json"
    return f"resources/data/{dataset}/READY.json"


def gpu_request(wildcards):
    """One GPU per job when the config's device is CUDA, none on CPU."""
    return 1 if config["device"] == "cuda" else 0


RUNTIME_FLAGS = f"--device {config['device']} --gpus {config['gpus']}" + (
    f" --gpu-lock-dir {config['gpu_lock_dir']}" if config["gpu_lock_dir"] else ""
)


def study_enabled(study):
    """Whether the config has `study` and does not switch it off."""
    return study in config["studies"] and config["studies"][study]["enabled"]


def all_targets():
    """Every figure and table of the enabled studies (the default target)."""
    return [
        target
        for study in STUDIES
        if study_enabled(study)
        for target in TARGETS.get(study, [])
    ]
