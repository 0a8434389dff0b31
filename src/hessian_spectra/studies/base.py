"""What a study is to the rest of the code: one ``Study`` object says it all (torch-free; the Snakefile reads it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hessian_spectra import layout
from hessian_spectra.findings.core import Claim
from hessian_spectra.runs import subset_key

# What a per-run job reads, by the kind of input: the run's record, its Hessian subset, its final checkpoint, every
# checkpoint (epoch 0 first), or the checkpoint of the job's own {epoch} (one job per epoch).
INPUT_KINDS = ("run_json", "subset", "last_checkpoint", "checkpoints", "epoch_checkpoint")


@dataclass(frozen=True)
class RunJob:
    """A per-run curvature job: one rule ``<study>_<name>``, one job per planned run of the study (and per value of
    its own wildcards), calling one ``hessian-spectra`` command with all its flags as one JSON ``--settings``.

    Args:
        name: the rule's name after the study's.
        command: the command and subcommand it calls, e.g. ``"spectrum"``.
        inputs: the command's input flag (its ``dest``) -> what it reads, one of ``INPUT_KINDS``.
        outputs: the command's output flag -> the file, a function of the run key (a pattern in the rule).
        settings: ``(study settings, run, wildcards, input) -> `` the command's other flags (``dest`` -> value).
        log: the log and benchmark name under the run's logs (may hold the job's wildcards).
        wildcards: constraints of the job's own wildcards (those its outputs hold beyond the run's).
        extra_inputs: ``(study settings, run) -> `` more input flags and their files (none: ``{}``).
        group: the Snakemake group its jobs join (they then run in one process slot), or None.
    """

    name: str
    command: str
    inputs: Mapping[str, str]
    outputs: Mapping[str, Callable[[str], str]]
    settings: Callable[[dict, dict, Mapping[str, str], Any], dict]
    log: str
    wildcards: Mapping[str, str] = field(default_factory=dict)
    extra_inputs: Callable[[dict, dict], dict] | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.inputs.values()) - set(INPUT_KINDS))
        if unknown:
            raise ValueError(f"RunJob {self.name}: unknown input kind(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(INPUT_KINDS)}")


@dataclass(frozen=True)
class Study:
    """One study of a source: its runs' curvature jobs, its table, figures and claims, and its rule file.

    Args:
        name: the key of its config section (``studies.<name>``) and of its folders.
        source: the source it reproduces (its folder under the shared seeds, e.g. ``"000"``).
        title: the source in a few words.
        claims: what the scorecard checks, each with its rule.
        jobs: its per-run curvature jobs.
        table: the file name of its study table, or None.
        scorecard_tables: the study tables its claims read (file names).
        run_tables: ``(planned run {"key", "epochs"}) -> `` the per-run tables its claims read.
        figures: ``(planned runs, study settings) -> `` its figures' file names.
        rules: its rule file: relative to the workflow's folder for a built-in study, to the module's for one a
            config adds (``study_modules``).
        schema: the JSON schema of its config section (``$defs`` of the config schema resolve in it); None: the
            config schema's ``$defs/<name>``.
        plan: ``(planned runs, study settings) -> `` what its rule file groups its runs by, computed once when the
            workflow is parsed; it raises ``ConfigError`` for a config the study cannot run (None: no plan).
        build_table: ``(run records, per-run tables) -> `` its table, for ``hessian-spectra study table`` (a study
            with a command of its own builds it there: None).
        draw: ``(study table, figure file name) -> `` a matplotlib figure, for ``hessian-spectra study figure``
            (likewise None for a study with a command of its own).
    """

    name: str
    source: str
    title: str
    claims: tuple[Claim, ...]
    jobs: tuple[RunJob, ...]
    table: str | None
    scorecard_tables: tuple[str, ...]
    run_tables: Callable[[Mapping[str, Any]], list[str]]
    figures: Callable[[list[dict], dict], list[str]]
    rules: str
    schema: dict | None = None
    plan: Callable[[list[dict], dict], Any] | None = None
    build_table: Callable[[list[dict], list[str]], Any] | None = None
    draw: Callable[[Any, str], Any] | None = None

    def __post_init__(self) -> None:
        strangers = sorted({claim.study for claim in self.claims} - {self.name})
        if strangers:
            raise ValueError(f"study {self.name}: claims of another study ({', '.join(strangers)})")


def section_settings(section: str) -> Callable[[dict, dict, Mapping[str, str], Any], dict]:
    """A job's ``settings`` that are one section of the study's config, every key a flag of its command."""
    return lambda settings, run, wildcards, input: dict(settings[section])


def walk_job(name: str, command: str, out: Callable[[str], str], section: str, log: str) -> RunJob:
    """A job whose command walks every checkpoint of a run (``--run-json``, ``--checkpoints``, ``--subset``) and
    writes one table, its settings the study's config section ``section``."""
    inputs = {"run_json": "run_json", "checkpoints": "checkpoints", "subset": "subset"}
    return RunJob(name, command, inputs, {"out": out}, section_settings(section), log=log)


def spectrum_job(name: str, checkpoint: str, path: Callable[[str, str], str],
                 settings: Callable[[dict, dict, Mapping[str, str], Any], dict], log: str, **options: Any) -> RunJob:
    """A ``spectrum`` job of one checkpoint (``last_checkpoint`` or ``epoch_checkpoint``) on the run's subset, its
    table (``--out``) and arrays (``--npz``) at ``path(key, suffix)``; ``options``: ``RunJob``'s own."""
    outputs = {"out": lambda key: path(key, "tsv"), "npz": lambda key: path(key, "npz")}
    return RunJob(name, "spectrum", {"checkpoint": checkpoint, "data": "subset"}, outputs, settings, log=log, **options)


def job_inputs(job: RunJob, settings: dict, run: dict, epoch: str | None = None) -> dict[str, str | list[str]]:
    """The files one job of ``job`` reads for ``run`` (at checkpoint ``epoch`` for a per-epoch job), by flag."""
    files = layout.run_files(run["key"])
    kinds = {"run_json": lambda: files.run_json, "subset": lambda: layout.subset(subset_key(run["subset"])),
             "last_checkpoint": lambda: files.checkpoint(run["epochs"]),
             "checkpoints": lambda: files.checkpoints(run["epochs"]), "epoch_checkpoint": lambda: files.checkpoint(epoch)}
    inputs = {flag: kinds[kind]() for flag, kind in job.inputs.items()}
    return {**inputs, **(job.extra_inputs(settings, run) if job.extra_inputs else {})}


def job_settings(job: RunJob, settings: dict, run: dict, wildcards: Mapping[str, str], input: Mapping[str, Any],
                 output: Mapping[str, Any], runtime: Mapping[str, Any]) -> dict[str, Any]:
    """Every flag of one job's command: its input and output files, the study's settings for it, and the runtime's
    (``job_settings.runtime`` and threads)."""
    files = {flag: input[flag] for flag in input.keys()} | {flag: output[flag] for flag in job.outputs}
    return {**files, **job.settings(settings, run, wildcards, input), **runtime}
