"""Plan training runs from the workflow config: defaults, grids, run directories, clear config errors.

Torch-free: the Snakefile imports it at parse time, before any job runs, so a bad config stops there.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from hessian_spectra import layout
from hessian_spectra.data.catalog import DatasetInfo, dataset_info
from hessian_spectra.data.files import inspect_data, is_data_path
from hessian_spectra.layout import RUN_PATTERN
from hessian_spectra.models.catalog import MODEL_OPTIONS, is_factory, layer_block_count

REQUIRED_RUN_KEYS = ("model", "dataset", "batch_size", "epochs", "lr")
# optimizers whose training reads the study's Hessian subset (NSGD's per-epoch eigenvectors): for them the
# subset is part of the run's identity
SUBSET_OPTIMIZERS = ("nsgd",)
# defaults of the data keys that name a run directory only when changed
DATA_DEFAULTS = {"image_size": 32, "normalization": "unit", "valid_size": 0, "augment": False, "steps_per_epoch": None}
PLAN_ONLY = ("subset", "layer_blocks")  # planning fields of a run that are not part of its training identity


class ConfigError(ValueError):
    """A configuration problem, reported with the key path it concerns."""


def deep_merge(base: dict, override: dict) -> dict:
    """Recursive dict merge; ``override`` wins, nested dicts merge, other values are replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _set_dotted(target: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def _grid_points(grid: dict[str, list], where: str) -> list[dict]:
    """Cartesian product of a run's ``grid`` (dotted keys -> lists of values) as override dicts."""
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.grid.{key}: must be a non-empty list of values, got {values!r}")
    points = []
    for combo in itertools.product(*grid.values()):
        point: dict = {}
        for key, value in zip(grid, combo):
            _set_dotted(point, key, value)
        points.append(point)
    return points


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "x".join(_fmt(v) for v in value)
    if value is None:
        return "none"
    return str(value)


_DATA_TAGS = {"image_size": "img", "normalization": "", "valid_size": "valid", "augment": "aug", "steps_per_epoch": "spe"}


def subset_tag(spec: dict) -> str:
    """The selection part of a Hessian subset's key, e.g. ``train-random-n256-seed0``."""
    count = f"n{spec['size']}" if spec["size"] is not None else f"pc{spec['per_class']}"
    return f"{spec['split']}-{spec['selection']}-{count}-seed{spec['seed']}"


def variant_name(run: dict) -> str:
    """The run's directory name below ``seed{seed}``: every training setting not in the path.

    The optimizer and its hyper-parameters, the epochs, the schedule, the model options, the data settings that
    differ from their defaults, and (for optimizers that train on it) the Hessian subset: two runs whose weights
    can differ never share a directory.
    """
    optimizer = run["optimizer"]
    parts = [optimizer["name"], f"lr{_fmt(run['lr'])}", f"m{_fmt(run['momentum'])}", f"wd{_fmt(run['l2'])}"]
    parts += [f"{key}{_fmt(optimizer[key])}" for key in sorted(optimizer) if key != "name"]
    parts.append(f"e{run['epochs']}")
    schedule = run["schedule"]
    if schedule["kind"] != "constant":
        parts.append(schedule["kind"])
        parts += [f"{key}{_fmt(schedule[key])}" for key in sorted(schedule) if key != "kind"]
    parts += [f"{key}{_fmt(value)}" for key, value in sorted(run["model_options"].items())]
    for key, default in DATA_DEFAULTS.items():
        if run[key] != default:
            parts.append(_DATA_TAGS[key] + ("" if isinstance(run[key], bool) else _fmt(run[key])))
    if optimizer["name"] in SUBSET_OPTIMIZERS:
        parts.append("hs" + subset_tag(run["hessian_subset"]))
    return "-".join(parts)


def subset_spec(run: dict, selection: dict) -> dict:
    """Everything that defines a run's Hessian subset: the dataset as the run loads it, and the selection."""
    data = {key: run[key] for key in ("dataset", "image_size", "normalization", "valid_size")}
    data["split_seed"] = run["seed"] if run["valid_size"] else 0
    return {**data, **selection}


def model_key(model: str) -> str:
    """A model's name in paths: a built-in name as is, a factory ``module:function`` as ``function``."""
    return model.partition(":")[2] if is_factory(model) else model


def dataset_key(dataset: str) -> str:
    """A dataset's name in paths: a built-in name as is, a path with every run of other characters as ``-``
    (``resources/images/digits`` -> ``resources-images-digits``)."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", dataset).strip("-") if is_data_path(dataset) else dataset


def subset_key(spec: dict) -> str:
    """The subset's file key below ``results/subsets/``: dataset, preprocessing, selection."""
    data = f"{spec['image_size']}px-{spec['normalization']}"
    if spec["valid_size"]:
        data += f"-valid{spec['valid_size']}-seed{spec['split_seed']}"
    return f"{dataset_key(spec['dataset'])}/{data}/{subset_tag(spec)}"


def run_key(run: dict) -> str:
    """Path of the run below ``results/`` (the workflow's wildcards, filled in)."""
    return RUN_PATTERN.format(**{**run, "model": model_key(run["model"]), "dataset": dataset_key(run["dataset"])})


def data_info(dataset: str) -> DatasetInfo | None:
    """What a run's dataset holds, or None for a path that is not there yet and that no rule of ours makes.

    A folder the workflow exports from a built-in dataset (``layout.exported_images``) is known before it exists.
    """
    if not is_data_path(dataset):
        return dataset_info(dataset)
    info = inspect_data(dataset)
    if info is None:
        source = layout.exported_source(dataset)
        if source is not None:
            built_in = dataset_info(source)
            info = DatasetInfo(dataset, built_in.num_classes, built_in.in_channels, built_in.native_size, "folder",
                               built_in.train_size, built_in.test_size)
    return info


def block_count(run: dict) -> int:
    """The number of layer blocks of a planned run's model: those listed or found at parse time, or the catalogue's."""
    if "layer_blocks" in run:
        return len(run["layer_blocks"])
    return layer_block_count(run["model"], run["model_options"])


def _check_required(run: dict, where: str) -> None:
    missing = [key for key in REQUIRED_RUN_KEYS if key not in run]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)} (set them in the run or in the study's defaults)")


def _train_samples(run: dict, info: DatasetInfo) -> int:
    return info.train_size - run["valid_size"]


def _run_data(run: dict, where: str) -> DatasetInfo | None:
    try:
        return data_info(run["dataset"])
    except ValueError as err:
        raise ConfigError(f"{where}.dataset: {err}") from None


@lru_cache(maxsize=None)
def _model_facts(model: str, in_channels: int, image_size: int, num_classes: int, options: str) -> tuple:
    """Build the model once at parse time: (output shape on two zero images, Conv/Linear weights, parameters)."""
    import torch

    from hessian_spectra.models import build_model, layer_blocks

    net = build_model(model, in_channels, image_size, num_classes, **json.loads(options)).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, in_channels, image_size, image_size))
    return tuple(out.shape), tuple(layer_blocks(net)), tuple(name for name, _ in net.named_parameters())


def _check_model(run: dict, info: DatasetInfo | None, where: str) -> None:
    """Factories and listed layer blocks are checked by building the model on the data's shape, where it is known."""
    if is_factory(run["model"]):
        from hessian_spectra.models.factory import load_factory

        try:
            load_factory(run["model"])
        except ValueError as err:
            raise ConfigError(f"{where}.model: {err}") from None
    if not is_factory(run["model"]) and "layer_blocks" not in run:
        return
    if info is None:
        if "layer_blocks" not in run and run["study"] == "layerhessians":
            raise ConfigError(
                f"{where}.layer_blocks: {run['dataset']} is not there yet, so the model's layer blocks are unknown; "
                "list them, or make the data before running Snakemake"
            )
        return
    size, classes = run["image_size"], info.num_classes
    try:
        shape, weights, params = _model_facts(
            run["model"], info.in_channels, size, classes, json.dumps(run["model_options"], sort_keys=True)
        )
    except Exception as err:  # the user's factory or forward pass failed on the data's shape
        raise ConfigError(
            f"{where}.model: {run['model']} with in_channels={info.in_channels}, image_size={size}, "
            f"num_classes={classes}, model_options={run['model_options']} failed: {type(err).__name__}: {err}"
        ) from None
    if shape != (2, classes):
        raise ConfigError(
            f"{where}.model: {run['model']} maps 2 images of {info.in_channels}x{size}x{size} ({run['dataset']}) to "
            f"outputs of shape {list(shape)}; expected [2, {classes}] (one logit per class)"
        )
    for index, name in enumerate(run.get("layer_blocks", [])):
        if name not in params:
            raise ConfigError(
                f"{where}.layer_blocks[{index}]: {name!r} is not a parameter of {run['model']}; "
                f"its Conv/Linear weights: {', '.join(weights)}"
            )
    run.setdefault("layer_blocks", list(weights))


def _check_run(run: dict, where: str) -> DatasetInfo | None:
    if not is_factory(run["model"]):
        allowed = MODEL_OPTIONS[run["model"]]
        for option in run["model_options"]:
            if option not in allowed:
                raise ConfigError(
                    f"{where}.model_options.{option}: not an option of {run['model']}; allowed: {', '.join(allowed)}"
                )
    info = _run_data(run, where)
    _check_model(run, info, where)
    if info is None:
        return None
    if run["valid_size"] >= info.train_size:
        raise ConfigError(
            f"{where}.valid_size: {run['valid_size']} leaves no training data ({run['dataset']} has "
            f"{info.train_size} training samples); allowed: 0 to {info.train_size - 1}"
        )
    train = _train_samples(run, info)
    if run["batch_size"] > train and run["steps_per_epoch"] is None:
        raise ConfigError(
            f"{where}.batch_size: {run['batch_size']} is larger than the {train} training samples of "
            f"{run['dataset']} (every step would be full-batch); allowed: 1 to {train}"
        )
    return info


def _check_subset(selection: dict, run: dict, info: DatasetInfo | None, where: str) -> None:
    if (selection["per_class"] is None) == (selection["size"] is None):
        raise ConfigError(f"{where}: set exactly one of per_class and size")
    if info is None:
        return
    available = _train_samples(run, info) if selection["split"] == "train" else info.test_size
    if selection["size"] is not None and selection["size"] > available:
        raise ConfigError(
            f"{where}.size: {selection['size']} is more than the {available} samples of the {selection['split']} "
            f"split of {run['dataset']}; allowed: 1 to {available}"
        )
    most = available // info.num_classes
    if selection["per_class"] is not None and selection["per_class"] > most:
        raise ConfigError(
            f"{where}.per_class: {selection['per_class']} per class is more than the {selection['split']} split of "
            f"{run['dataset']} holds ({available} samples, {info.num_classes} classes); allowed: 1 to about {most}"
        )


def _check_finite(value: Any, where: str) -> None:
    """Numbers anywhere in the config must be finite: YAML's .nan and .inf pass every schema bound."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, got {value}")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, f"{where}[{index}]")


def _describe(error: Any, prefix: str = "", root: dict | None = None) -> str:
    """One line naming the key path, what is wrong and, for unknown keys, what is allowed."""
    path = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    path = path.lstrip(".") or "(top level)"
    message = error.message
    if error.parent is not None and error.parent.validator == "anyOf":  # a name, or a factory or path
        names = [e.message for e in error.parent.context if e.validator == "enum"]
        alternatives = [e.schema["title"] for e in error.parent.context if "title" in e.schema]
        message = ", nor ".join(names[:1] + alternatives) or message
    if error.validator in ("additionalProperties", "unevaluatedProperties") and root is not None:
        message += f"; allowed keys: {', '.join(sorted(_property_names(error.schema, root)))}"
    return f"{path}: {message}"


def _property_names(schema: dict, root: dict) -> set[str]:
    """Keys a (sub)schema declares, following local ``$ref``s and ``allOf``."""
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return _property_names(target, root)
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        names |= _property_names(part, root)
    return names


def _first_error(validator: Any, instance: Any) -> Any:
    from jsonschema.exceptions import best_match

    return best_match(validator.iter_errors(instance))


def _validate_complete(run: dict, validator: Any, where: str) -> None:
    error = _first_error(validator, run)
    if error is not None:
        raise ConfigError(_describe(error, where, validator.schema))


def check_config(config: dict, schema: dict) -> None:
    """Raise a one-line ``ConfigError`` for the most relevant schema violation of ``config``, if any."""
    from jsonschema import Draft202012Validator

    _check_finite(config, "")
    error = _first_error(Draft202012Validator(schema), config)
    if error is not None:
        raise ConfigError(_describe(error, root=schema))


def defaults_validator(schema: dict, ref: str | None = None) -> Any:
    """A jsonschema validator of ``schema`` (or of its ``$defs`` entry ``ref``) that fills in defaults."""
    from jsonschema import Draft202012Validator, validators

    validate_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for name, prop in properties.items():
                if "default" in prop:
                    instance.setdefault(name, copy.deepcopy(prop["default"]))
        yield from validate_properties(validator, properties, instance, subschema)

    with_defaults = validators.extend(Draft202012Validator, {"properties": set_defaults})
    return with_defaults({"$ref": f"#/$defs/{ref}", "$defs": schema["$defs"]} if ref else schema)


def with_defaults(config: dict, schema: dict) -> dict:
    """A copy of ``config`` with the schema's defaults filled in (what Snakemake's ``validate`` does)."""
    config = copy.deepcopy(config)
    check_config(config, schema)
    defaults_validator(schema).validate(config)
    return config


def plan_runs(config: dict, schema: dict) -> dict[str, dict]:
    """Expand every enabled study's runs (defaults + entry + grid point) into ``{run_key: run}``.

    Each run is a complete, self-describing dict (study, model, data, optimisation) that the training command
    receives and stores with every checkpoint (``training_config``), plus ``subset``: the spec of the study's
    Hessian subset for this run (``subset_spec``; its file is named by ``subset_key``). ``schema`` is the config schema: its ``$defs/run`` checks each
    merged run and fills in run-level defaults.
    """
    config = with_defaults(config, schema)
    validator = defaults_validator(schema, "run")
    runs: dict[str, dict] = {}
    for study, study_cfg in config["studies"].items():
        if not study_cfg.get("enabled", True):
            continue
        defaults = study_cfg.get("defaults", {})
        for index, entry in enumerate(study_cfg["runs"]):
            where = f"studies.{study}.runs[{index}]"
            base = deep_merge(defaults, entry)
            grid = base.pop("grid", {})
            for point in _grid_points(grid, where):
                first = deep_merge(base, point)
                _check_required(first, where)
                _validate_complete(first, validator, where)
                for run in seed_repeats(first, study_cfg.get("seeds") or config["seeds"]):
                    _plan_run(run, study, study_cfg, where, runs)
    return runs


def seed_repeats(run: dict, seeds: int) -> list[dict]:
    """The run with its own ``seed`` s, then with s+1, ..., s+seeds-1: the same training but for the seed."""
    return [{**copy.deepcopy(run), "seed": run["seed"] + offset} for offset in range(seeds)]


def _plan_run(run: dict, study: str, study_cfg: dict, where: str, runs: dict[str, dict]) -> None:
    """Check one complete run, give it its Hessian subset, variant and key, and add it to ``runs``."""
    run["study"] = study
    info = _check_run(run, where)
    selection = copy.deepcopy(study_cfg["hessian_subset"])
    _check_subset(selection, run, info, f"studies.{study}.hessian_subset")
    run["subset"] = subset_spec(run, selection)
    if run["optimizer"]["name"] in SUBSET_OPTIMIZERS:
        run["hessian_subset"] = selection
    run["variant"] = run.pop("name", None) or variant_name(run)
    key = run_key(run)
    if key in runs:
        raise ConfigError(
            f"{where}: two runs map to results/{key}; they differ only in keys that are not part "
            "of the run directory, so give one of them a distinct `name`"
        )
    run["key"] = key
    runs[key] = run


def runs_of(runs: dict[str, dict], study: str) -> list[dict]:
    """The planned runs of one study, in config order."""
    return [run for run in runs.values() if run["study"] == study]


def plan_subsets(runs: dict[str, dict]) -> dict[str, dict]:
    """Every Hessian subset the planned runs need: ``{subset_key: subset_spec}``."""
    return {subset_key(run["subset"]): run["subset"] for run in runs.values()}


def training_config(run: dict) -> dict:
    """The run without its planning fields: everything that changes its weights, and nothing else."""
    return {key: value for key, value in run.items() if key not in PLAN_ONLY}


def run_json(run: dict) -> str:
    """Canonical JSON of a run's training configuration (sorted keys): what training receives and stores."""
    return json.dumps(training_config(run), sort_keys=True, separators=(",", ":"))


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file; a syntax error raises ``ConfigError`` naming the file, line and column."""
    import yaml

    with open(path) as handle:
        try:
            return yaml.safe_load(handle)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
            raise ConfigError(f"{where}: not valid YAML ({err.problem or err.context})") from None
