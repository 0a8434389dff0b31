"""Where every file of a workflow run lives: the one definition that the rules, the commands and the plots use.

Torch-free (the Snakefile imports it at parse time). Training owns ``results/{study}/runs/<run>/`` and nothing
else; each Hessian subset has a file of its own, keyed by what defines it; every per-run curvature table lives under
``results/tables/{study}/runs/``. What a config makes of its runs (study tables, figures, the scorecard, their logs)
lives under its own root, ``results/`` for the unnamed default config and ``results/configs/<name>/`` for a config
with a ``name``, so that configs sharing one folder share trained runs and never each other's figures.
Functions take plain strings, so a Snakemake wildcard pattern such as ``"{study}/runs/..."`` goes in and comes out
as a pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RESULTS = "results"
RESOURCES = "resources"
RUN_PATTERN = "{study}/runs/{model}/{dataset}/bs{batch_size}/seed{seed}/{variant}"
SEED_PART = re.compile(r"/seed(\d+)/")  # RUN_PATTERN's seed directory in a run key
CHECKPOINT_FILE = re.compile(r"epoch_(\d{4})\.pt")  # checkpoint_name's file name
SUBSET_FILE = re.compile(rf"(?:^|/){RESULTS}/subsets/(.+)\.pt$")  # subset(), key captured
RUN_DIR = re.compile(rf"(?:^|/){RESULTS}/({re.sub(r'{[a-z_]+}', '[^/]+', RUN_PATTERN)})$")  # run_dir, key captured


def seed_of(key: str) -> int:
    """The training seed in a run key (``.../seed{n}/...``)."""
    return int(SEED_PART.search(key).group(1))


def without_seed(key: str) -> str:
    """A run key with its seed left out: the same string for every seed of one configuration."""
    return SEED_PART.sub("/seed*/", key)


@dataclass(frozen=True)
class RunFiles:
    """The files of one run directory (a real path, or a Snakemake pattern)."""

    root: str

    @property
    def run_json(self) -> str:
        """The run's training configuration: everything that changes its weights."""
        return f"{self.root}/run.json"

    @property
    def history(self) -> str:
        """The run's per-epoch training record."""
        return f"{self.root}/history.tsv"

    def checkpoint(self, epoch: int | str) -> str:
        """The checkpoint after ``epoch`` (0: initial weights); a wildcard string passes through."""
        return f"{self.root}/checkpoints/{checkpoint_name(epoch)}"

    def checkpoints(self, epochs: int) -> list[str]:
        """Every checkpoint of a run of ``epochs`` epochs, epoch 0 first."""
        return [self.checkpoint(epoch) for epoch in range(epochs + 1)]

    @property
    def events(self) -> str:
        """TensorBoard event files of the run's training curves (training rewrites the folder every epoch)."""
        return f"{self.root}/tensorboard"

    def stored(self, epoch: int) -> str:
        """Training's own copy (a hard link) of a checkpoint: not a workflow output, so it survives Snakemake
        removing a job's outputs, and training resumes from it."""
        return f"{self.root}/.checkpoint-store/{checkpoint_name(epoch)}"


def checkpoint_name(epoch: int | str) -> str:
    """File name of the checkpoint after ``epoch``."""
    return f"epoch_{epoch:04d}.pt" if isinstance(epoch, int) else f"epoch_{epoch}.pt"


def checkpoint_claim(path: str | Path) -> tuple[str | None, int] | None:
    """(run key, epoch) that a checkpoint's path names: the epoch of ``.../checkpoints/epoch_NNNN.pt``, and the run
    key where that is a run directory under ``results/``; None for a path outside the layout."""
    path = Path(path)
    match = CHECKPOINT_FILE.fullmatch(path.name)
    if match is None or path.parent.name != "checkpoints":
        return None
    run = RUN_DIR.search(path.parent.parent.as_posix())
    return (run.group(1) if run else None), int(match.group(1))


def subset_claim(path: str | Path) -> str | None:
    """The subset key a Hessian subset's path names (``results/subsets/<key>.pt``), or None outside the layout."""
    match = SUBSET_FILE.search(Path(path).as_posix())
    return match.group(1) if match else None


def run_dir(key: str) -> str:
    """A run's directory (training outputs only)."""
    return f"{RESULTS}/{key}"


def run_files(key: str) -> RunFiles:
    """The files of the run ``key`` (a ``RUN_PATTERN`` filled in, or the pattern itself)."""
    return RunFiles(run_dir(key))


def subset(subset_key: str) -> str:
    """A Hessian subset's file, keyed by the dataset, its preprocessing and the selection."""
    return f"{RESULTS}/subsets/{subset_key}.pt"


def run_tables(key: str) -> str:
    """Directory of a run's curvature tables and arrays (``results/tables/{study}/runs/...``)."""
    return f"{RESULTS}/tables/{key}"


def config_root(config: str = "") -> str:
    """Where the config named ``config`` keeps its study tables, figures and scorecard (``""``: the default config)."""
    return f"{RESULTS}/configs/{config}" if config else RESULTS


def study_table(study: str, name: str, config: str = "") -> str:
    """A study's table (what its figures read), e.g. ``results/tables/large_batch/top_eigenvalues.tsv``."""
    return f"{config_root(config)}/tables/{study}/{name}"


def figure(study: str, name: str, config: str = "") -> str:
    """A study's figure."""
    return f"{config_root(config)}/figures/{study}/{name}"


def findings(config: str = "") -> str:
    """The findings scorecard of a config: every source's claims with a verdict computed from its tables."""
    return f"{config_root(config)}/tables/findings.tsv"


def log(name: str, config: str = "") -> str:
    """A job's log file (per-run and per-dataset jobs: ``config`` empty; a config's study and figure jobs: its name)."""
    return f"{config_root(config)}/logs/{name}.log"


def benchmark(name: str) -> str:
    """A job's Snakemake benchmark file."""
    return f"{RESULTS}/benchmarks/{name}.tsv"


def table_events(table: str | Path) -> str:
    """TensorBoard event files of a per-run curvature table, beside it: the job that writes the table rewrites
    them after it (``results/tables/{study}/runs/.../tensorboard/<table stem>``)."""
    table = Path(table)
    return str(table.parent / "tensorboard" / table.stem)


def exported_images(dataset: str) -> str:
    """A built-in dataset exported as an ImageFolder tree (``train/``, ``test/``, a folder per class)."""
    return f"{RESOURCES}/images/{dataset}"


def exported_source(path: str) -> str | None:
    """The built-in dataset whose export ``path`` is (``exported_images``), or None."""
    path = Path(path)
    return path.name if path.parent == Path(exported_images("x")).parent else None


def resume_dir(output: str | Path) -> Path:
    """Per-epoch results of a job that walks a run's checkpoints, kept beside its output until it is complete."""
    output = Path(output)
    return output.parent / f".{output.name}.epochs"


# Per-run tables and arrays of each study, under run_tables(key); ``suffix`` is "tsv" or "npz".
def layer_spectrum(key: str, epoch: int | str, suffix: str) -> str:
    """layerhessians: full and layer-block spectra of one checkpoint."""
    stem = checkpoint_name(epoch).removesuffix(".pt")
    return f"{run_tables(key)}/layer_spectra/{stem}.{suffix}"


def final_spectrum(key: str, hessian: str, suffix: str) -> str:
    """large_batch: top-k of the ``last_layer`` or ``full`` Hessian at the final checkpoint."""
    return f"{run_tables(key)}/spectrum_{hessian}.{suffix}"


def landscape(key: str) -> str:
    """large_batch: the loss surface around the final weights."""
    return f"{run_tables(key)}/landscape.tsv"


def trajectory(key: str) -> str:
    """sharpest_directions: top-K eigenvalues at every checkpoint."""
    return f"{run_tables(key)}/trajectory.tsv"


def dominant_eigen(key: str) -> str:
    """hessianflow: the dominant eigenvalue at every checkpoint."""
    return f"{run_tables(key)}/dominant_eigen.tsv"


def final_trace_density(key: str, suffix: str) -> str:
    """hessianflow: trace and density at the final checkpoint."""
    return f"{run_tables(key)}/final_trace_density.{suffix}"


def chain_rule(key: str) -> str:
    """init_chain_rule: loss, Frobenius norms and the chain-rule split at every checkpoint."""
    return f"{run_tables(key)}/chain_rule.tsv"


# layerhessians: each layer's distance against relative depth, what the matching figures draw
MATCH_PROFILES = "match_profiles.tsv"
