"""The study registry: every study the pipeline runs, each one object (``Study``) in one module of its own.

The built-in studies are the packages of this folder, each defining ``STUDY``; a config adds studies of its own
with ``study_modules``, Python files that define ``STUDY`` likewise (see CONTRIBUTING.md). Everything else asks the
registry: the config schema's study sections, the per-run jobs and targets of the workflow, the scorecard's claims
and sources, the report's tables. Torch-free.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.util
import pkgutil
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

from hessian_spectra.studies.base import (
    INPUT_KINDS,
    RunJob,
    Study,
    job_inputs,
    job_settings,
    section_settings,
    spectrum_job,
    walk_job,
)

__all__ = ["INPUT_KINDS", "RunJob", "Study", "built_in", "config_schema", "job_inputs", "job_settings", "registry",
           "section_settings", "spectrum_job", "walk_job", "workflow_schema"]


@cache
def built_in() -> tuple[Study, ...]:
    """The built-in studies, by source."""
    studies = [importlib.import_module(f"{__name__}.{module.name}").STUDY
               for module in pkgutil.iter_modules(__path__) if module.ispkg]
    return tuple(sorted(studies, key=lambda study: study.source))


@cache
def _from_file(path: str) -> Study:
    """The ``STUDY`` a Python file defines, its rule file made absolute beside it."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"study_modules: {path}: no such file (a Python file defining STUDY)")
    spec = importlib.util.spec_from_file_location(f"hessian_spectra_study_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    study = getattr(module, "STUDY", None)
    if not isinstance(study, Study):
        raise ValueError(f"study_modules: {path}: defines no STUDY (a hessian_spectra.studies.Study)")
    rules = (file.parent / study.rules).resolve()
    if not rules.is_file():
        raise ValueError(f"study_modules: {path}: its rule file {rules} does not exist")
    return dataclasses.replace(study, rules=str(rules))


def registry(modules: Sequence[str] = ()) -> dict[str, Study]:
    """Study name -> study: the built-in ones, then those of ``modules`` (files, a config's ``study_modules``)."""
    studies = {study.name: study for study in built_in()}
    for path in modules:
        study = _from_file(path)
        if study.name in studies:
            raise ValueError(f"study_modules: {path}: a study named {study.name} exists already; rename it")
        studies[study.name] = study
    return studies


def config_schema(base: dict, studies: Mapping[str, Study]) -> dict:
    """The config schema ``base`` with one section under ``studies`` per registered study: its own ``schema``, or
    ``base``'s ``$defs/<name>``; any other study name is refused, naming the registered ones."""
    schema = copy.deepcopy(base)
    sections = {}
    for name, study in studies.items():
        if study.schema is not None:
            schema["$defs"][name] = study.schema
        elif name not in schema["$defs"]:
            raise ValueError(f"study {name}: defines no schema and the config schema has no $defs/{name}")
        sections[name] = {"$ref": f"#/$defs/{name}"}
    schema["properties"]["studies"] = {**schema["properties"]["studies"], "properties": sections,
                                       "additionalProperties": False}
    return schema


def workflow_schema(path: str | Path, modules: Sequence[str] = ()) -> dict:
    """The config schema file ``path`` with a section for every study of the registry (and of ``modules``)."""
    from hessian_spectra.runs import load_yaml

    return config_schema(load_yaml(path), registry(modules))
