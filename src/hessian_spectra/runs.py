"""Plan training runs from the workflow config: defaults, grids, run directories, clear config errors.

Torch-free: the Snakefile imports it at parse time, before any job runs, so a bad config stops there.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

from hessian_spectra.models.catalog import MODEL_OPTIONS

STUDIES = ("layerhessians", "large_batch", "sharpest_directions", "hessianflow", "init_chain_rule")
RUN_PATTERN = "{study}/runs/{model}/{dataset}/bs{batch_size}/seed{seed}/{variant}"
REQUIRED_RUN_KEYS = ("model", "dataset", "batch_size", "epochs", "lr")


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


def variant_name(run: dict) -> str:
    """The run's directory name below ``seed{seed}``: optimizer and every hyper-parameter not in the path."""
    optimizer = run["optimizer"]
    parts = [optimizer["name"], f"lr{_fmt(run['lr'])}", f"m{_fmt(run['momentum'])}", f"wd{_fmt(run['l2'])}"]
    parts += [f"{key}{_fmt(optimizer[key])}" for key in sorted(optimizer) if key != "name"]
    if run["schedule"]["kind"] != "constant":
        parts.append(run["schedule"]["kind"])
    parts += [f"{key}{_fmt(value)}" for key, value in sorted(run["model_options"].items())]
    return "-".join(parts)


def run_key(run: dict) -> str:
    """Path of the run below ``results/`` (the workflow's wildcards, filled in)."""
    return RUN_PATTERN.format(**run)


def _check_required(run: dict, where: str) -> None:
    missing = [key for key in REQUIRED_RUN_KEYS if key not in run]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)} (set them in the run or in the study's defaults)")


def _check_run(run: dict, where: str) -> None:
    allowed = MODEL_OPTIONS[run["model"]]
    for option in run["model_options"]:
        if option not in allowed:
            raise ConfigError(
                f"{where}.model_options.{option}: not an option of {run['model']}; allowed: {', '.join(allowed)}"
            )
    subset = run["hessian_subset"]
    if (subset["per_class"] is None) == (subset["size"] is None):
        raise ConfigError(f"{where.split('.runs')[0]}.hessian_subset: set exactly one of per_class and size")


def _describe(error: Any, prefix: str = "", root: dict | None = None) -> str:
    """One line naming the key path, what is wrong and, for unknown keys, what is allowed."""
    path = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    path = path.lstrip(".") or "(top level)"
    message = error.message
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

    Each run is a complete, self-describing dict (study, model, data, optimisation, Hessian subset) that the
    training command receives and stores with every checkpoint. ``schema`` is the config schema: its
    ``$defs/run`` checks each merged run and fills in run-level defaults.
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
                run = deep_merge(base, point)
                _check_required(run, where)
                _validate_complete(run, validator, where)
                run["study"] = study
                run["hessian_subset"] = copy.deepcopy(study_cfg["hessian_subset"])
                _check_run(run, where)
                run["variant"] = run.pop("name", None) or variant_name(run)
                key = run_key(run)
                if key in runs:
                    raise ConfigError(
                        f"{where}: two runs map to results/{key}; they differ only in keys that are not part "
                        "of the run directory, so give one of them a distinct `name`"
                    )
                run["key"] = key
                runs[key] = run
    return runs


def runs_of(runs: dict[str, dict], study: str) -> list[dict]:
    """The planned runs of one study, in config order."""
    return [run for run in runs.values() if run["study"] == study]


def run_json(run: dict) -> str:
    """Canonical JSON of a run (sorted keys): what the training command receives and stores."""
    return json.dumps(run, sort_keys=True, separators=(",", ":"))


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file (used for the schema outside Snakemake)."""
    import yaml

    with open(path) as handle:
        return yaml.safe_load(handle)
