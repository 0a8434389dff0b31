"""A rehearsal of a workflow config: its whole DAG with everything structural kept and only what sets the time
scaled down, so that a crash, a shape error or a missing memory request shows up in minutes instead of hours.

Kept as the config has them: every study, run and grid, the models with their options (full width), datasets,
image sizes, normalisation, augmentation, batch sizes, optimizers with all their parameters, layer blocks,
Hessian kinds, landscape directions, top-k counts, seeds and the memory budget. Scaled (``scale_config``): the
epochs and steps per epoch, the validation hold-out, step-schedule milestones and plateau / ABSA patience (so
that every rule of a schedule fires at least once), Hessian subset sizes and their batch sizes, Lanczos steps
(SLQ steps, ``max_steps``, NSGD's per-epoch Lanczos), probes, landscape grid points, and where and how the jobs run
(``device: cpu``, one GPU slot, one thread, and this processor's fastest kernels: ``portable_cpu: false``, since
pinned SSE4.1 kernels cost full-width convolutions several times their time and a rehearsal's bits matter to no one).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hessian_spectra.runs import data_info, deep_merge, plan_runs, with_defaults

SUFFIX = "-rehearsal"
# Per study, its curvature sections: (section, key) -> what the key is (a kind of ``_scale_curvature``).
CURVATURE_KEYS: dict[str, dict[tuple[str, str], str]] = {
    "layerhessians": {
        ("spectrum", "lanczos_steps"): "lanczos_steps",
        ("spectrum", "probes"): "probes",
        ("spectrum", "max_steps"): "max_steps",
        ("spectrum", "batch_size"): "batch_size",
    },
    "large_batch": {
        ("spectrum", "max_steps"): "max_steps",
        ("spectrum", "batch_size"): "batch_size",
        ("landscape", "grid_points"): "grid_points",
        ("landscape", "batch_size"): "batch_size",
    },
    "sharpest_directions": {
        ("spectrum", "max_steps"): "max_steps",
        ("spectrum", "batch_size"): "batch_size",
    },
    "hessianflow": {
        ("eigen", "max_steps"): "max_steps",
        ("eigen", "batch_size"): "batch_size",
        ("final", "trace_probes"): "probes",
        ("final", "density_steps"): "lanczos_steps",
        ("final", "density_probes"): "probes",
        ("final", "batch_size"): "batch_size",
    },
    "init_chain_rule": {
        ("tracking", "frobenius_probes"): "probes",
        ("tracking", "max_steps"): "max_steps",
        ("tracking", "batch_size"): "batch_size",
    },
}
# The top-k each study's Lanczos looks for (its max_steps is scaled to top_k + extra_steps); hessianflow: lambda_1.
TOP_K = {
    "layerhessians": ("spectrum", "top_k"),
    "large_batch": ("spectrum", "top_k"),
    "sharpest_directions": ("spectrum", "top_k"),
    "init_chain_rule": ("tracking", "top_k"),
}


@dataclass(frozen=True)
class Scale:
    """The rehearsal's sizes: each scaled key becomes at most this (epochs at least this)."""

    epochs: int = 2
    steps_per_epoch: int = 1
    valid_size: int = 100
    subset_size: int = 4
    per_class: int = 1
    lanczos_steps: int = 2
    probes: int = 1
    extra_steps: int = 0
    grid_points: int = 5
    max_batches: int = 2  # Hessian batches per subset, where the config splits its subset into several

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "extra_steps" else 1):
                raise ValueError(f"rehearsal scale {name}: must be an integer >= {int(name != 'extra_steps')}, got {value!r}")


def rehearsal_name(name: str) -> str:
    """The rehearsal's config name: the original's with ``-rehearsal`` (``rehearsal`` for an unnamed config)."""
    return f"{name}{SUFFIX}" if name else SUFFIX.lstrip("-")


def _rank_map(values: list, first: int, keep: Callable[[Any], bool] = lambda v: False) -> dict:
    """Distinct values (``None`` first) -> first, first + 1, ... in order; values ``keep`` accepts map to themselves."""
    scaled = sorted({v for v in values if not keep(v)}, key=lambda v: (v is not None, v if v is not None else 0))
    return {**{v: v for v in values if keep(v)}, **{v: first + i for i, v in enumerate(scaled)}}


def _field_values(study_cfg: dict, key: str) -> list:
    """Every value a run field takes in a study's defaults, run entries and grids."""
    sections = [study_cfg.get("defaults", {})] + study_cfg["runs"]
    values = [section[key] for section in sections if key in section]
    values += [v for section in study_cfg["runs"] for v in section.get("grid", {}).get(key, [])]
    return values


def _map_field(study_cfg: dict, key: str, mapping: Callable[[Any], Any]) -> None:
    """Replace a run field (a top-level run key or a dotted ``schedule.x`` / ``optimizer.x``) wherever it is set."""
    head, _, tail = key.partition(".")
    for section in [study_cfg.setdefault("defaults", {})] + study_cfg["runs"]:
        if tail and isinstance(section.get(head), dict) and tail in section[head]:
            section[head][tail] = mapping(section[head][tail])
        elif not tail and key in section:
            section[key] = mapping(section[key])
        grid = section.get("grid", {})
        if key in grid:
            grid[key] = [mapping(v) for v in grid[key]]
        if tail and head in grid:
            grid[head] = [{**v, tail: mapping(v[tail])} if isinstance(v, dict) and tail in v else v for v in grid[head]]


def _epochs_needed(run: dict, scale: Scale) -> int:
    """Epochs in which every rule of the run's schedule fires: each step milestone (scaled to 1, 2, ...) is passed,
    and ABSA (patience 1: the ratio doubles every epoch) reaches its cap and trains one epoch there."""
    needed = scale.epochs
    schedule = run["schedule"]
    if schedule["kind"] == "step":
        needed = max(needed, len(set(schedule.get("milestones", []))) + 1)
    if run["optimizer"]["name"] == "absa":
        from hessian_spectra.train.absa import DEFAULTS

        max_ratio = {**DEFAULTS, **run["optimizer"]}["max_ratio"]
        needed = max(needed, math.ceil(math.log2(max_ratio)) + 1)
    return needed


def _scale_nsgd(study_cfg: dict, scale: Scale) -> None:
    """NSGD's per-epoch Lanczos: at most kk + ``extra_steps`` steps (the largest kk of each run entry's grid)."""
    from hessian_spectra.train.nsgd import LANCZOS_MAX_STEPS

    defaults = study_cfg["defaults"]
    for entry in [defaults] + study_cfg["runs"]:
        optimizer = deep_merge(defaults, entry).get("optimizer", {})
        if optimizer.get("name") != "nsgd":
            continue
        kk = max([optimizer.get("kk", 1)] + list(entry.get("grid", {}).get("optimizer.kk", [])))
        steps = min(optimizer.get("max_steps", LANCZOS_MAX_STEPS), kk + scale.extra_steps)
        entry.setdefault("optimizer", {})["max_steps"] = steps


def _subset_samples(run: dict, num_classes: int) -> int:
    spec = run["subset"]
    return spec["size"] if spec["size"] is not None else spec["per_class"] * num_classes


def _scale_runs(study_cfg: dict, runs: list[dict], scale: Scale) -> None:
    """Epochs, steps per epoch, validation hold-out, schedule milestones and patience of a study's runs."""
    first = max(_epochs_needed(run, scale) for run in runs)
    epochs = _rank_map(_field_values(study_cfg, "epochs"), first)
    _map_field(study_cfg, "epochs", epochs.__getitem__)
    study_cfg.setdefault("defaults", {}).setdefault("steps_per_epoch", None)  # the schema's default: a pass
    steps = _rank_map(_field_values(study_cfg, "steps_per_epoch"), scale.steps_per_epoch)
    _map_field(study_cfg, "steps_per_epoch", steps.__getitem__)
    valid = _rank_map(_field_values(study_cfg, "valid_size"), scale.valid_size, keep=lambda v: v == 0)
    _map_field(study_cfg, "valid_size", valid.__getitem__)
    _map_field(study_cfg, "schedule.milestones", lambda ms: [sorted(set(ms)).index(m) + 1 for m in ms])
    _map_field(study_cfg, "schedule.patience", lambda v: 0)
    _map_field(study_cfg, "optimizer.patience", lambda v: 1)
    _scale_nsgd(study_cfg, scale)


def _scale_curvature(study: str, study_cfg: dict, runs: list[dict], scale: Scale) -> None:
    """Hessian subset sizes, the batches they are split into, Lanczos steps, probes and grid points."""
    classes = {run["key"]: data_info(run["dataset"]).num_classes for run in runs}
    before = max(_subset_samples(run, classes[run["key"]]) for run in runs)
    subset = study_cfg["hessian_subset"]
    if subset["size"] is not None:
        subset["size"] = min(subset["size"], scale.subset_size)
    if subset["per_class"] is not None:
        subset["per_class"] = min(subset["per_class"], scale.per_class)
    after = max(
        subset["size"] if subset["size"] is not None else subset["per_class"] * classes[run["key"]] for run in runs
    )
    top_k = study_cfg[TOP_K[study][0]][TOP_K[study][1]] if study in TOP_K else 1
    for (section, key), kind in CURVATURE_KEYS[study].items():
        value = study_cfg[section][key]
        if kind == "batch_size":
            batches = min(math.ceil(before / value), scale.max_batches)
            scaled = math.ceil(after / batches)
        elif kind == "max_steps":
            scaled = max(top_k + scale.extra_steps, 1)
        else:
            scaled = getattr(scale, kind)
        study_cfg[section][key] = min(value, scaled)


def scale_config(config: dict, schema: dict, scale: Scale | None = None) -> dict:
    """The rehearsal of ``config``: a complete config (schema defaults filled in) with the same studies, runs and
    structure, and only the keys named in the module docstring scaled by ``scale``."""
    scale = scale or Scale()
    out = with_defaults(config, schema)
    planned = plan_runs(out, schema)
    out.update(name=rehearsal_name(out["name"]), device="cpu", gpus=1, threads=1, portable_cpu=False)
    for study in out["studies"]:
        study_cfg = out["studies"][study]
        runs = [run for run in planned.values() if run["study"] == study]
        if study_cfg is None or not runs:
            continue
        _scale_runs(study_cfg, runs, scale)
        _scale_curvature(study, study_cfg, runs, scale)
    out = {**{key: value for key, value in out.items() if key != "studies"}, "studies": out["studies"]}
    rehearsed = plan_runs(copy.deepcopy(out), schema)
    if len(rehearsed) != len(planned):
        raise ValueError(f"the rehearsal plans {len(rehearsed)} runs, the config {len(planned)}: a scaled key merged runs")
    return out
