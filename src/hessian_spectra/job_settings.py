"""A workflow job's settings as one JSON argument (``hessian-spectra COMMAND --settings JSON``) and the flags it
stands for, so that no rule assembles a flag string (torch-free; the Snakefile imports it).

A setting's key is its flag's ``dest`` (``top_k`` for ``--top-k``): true is the bare flag, false, null and [] leave
it out, an object is the flag's JSON value, a list gives the flag its values, and a list of lists repeats the flag
once per inner list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SETTINGS_FLAG = "--settings"


def flags(settings: Mapping[str, Any]) -> list[str]:
    """The command-line flags ``settings`` stands for."""
    argv: list[str] = []
    for key, value in settings.items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            argv.append(flag)
        elif value is False or value is None or value == []:
            continue
        elif isinstance(value, dict):
            argv += [flag, json.dumps(value, sort_keys=True, separators=(",", ":"))]
        elif isinstance(value, list) and value and all(isinstance(item, list) for item in value):
            for item in value:
                argv += [flag, *map(str, item)]
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def expand(argv: list[str]) -> list[str]:
    """``argv`` with every ``--settings JSON`` replaced by the flags it stands for; a malformed one raises
    ``ValueError`` naming the flag."""
    expanded: list[str] = []
    rest = iter(argv)
    for arg in rest:
        if arg != SETTINGS_FLAG:
            expanded.append(arg)
            continue
        text = next(rest, None)
        try:
            settings = json.loads(text) if text is not None else None
        except json.JSONDecodeError as err:
            raise ValueError(f"{SETTINGS_FLAG}: not JSON ({err})") from None
        if not isinstance(settings, dict):
            raise ValueError(f"{SETTINGS_FLAG}: needs a JSON object of flag names and values")
        expanded += flags(settings)
    return expanded


def runtime(config: Mapping[str, Any]) -> dict[str, Any]:
    """The runtime settings every training and curvature job takes from the config: device, GPU slots, memory
    budget and product kind (each left out where it is the command's default)."""
    return {"device": config["device"], "gpus": config["gpus"], "gpu_lock_dir": config["gpu_lock_dir"],
            "memory_budget_mb": config["memory_budget_mb"],
            "products": config["products"] if config["products"] != "cached" else None}


def to_json(settings: Mapping[str, Any]) -> str:
    """``settings`` as the one-line JSON a job receives (null entries dropped)."""
    return json.dumps({key: value for key, value in settings.items() if value is not None}, separators=(",", ":"))
