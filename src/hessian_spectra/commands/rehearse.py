"""``hessian-spectra rehearse``: a rehearsal of a config, its whole DAG with only what sets the time scaled down.

Every study, run, model (full width), dataset, optimizer, schedule, layer block and Hessian kind stays; epochs,
steps per epoch, the validation hold-out, milestones and patience, Hessian subsets and their batches, Lanczos
steps, probes and landscape grid points are scaled (``hessian_spectra.rehearsal``), on the CPU. The rehearsal's
name is the config's with ``-rehearsal``, so its figures and scorecard never mix with the config's own (torch-free).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import fields
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra rehearse``: the config, its schema, the output and every scale factor."""
    from hessian_spectra.rehearsal import Scale

    parser.add_argument("config", help="the workflow config to rehearse (e.g. configs/paper.yaml)")
    parser.add_argument("--out", required=True, help="the rehearsal config to write (YAML)")
    parser.add_argument(
        "--schema", default="workflow/schemas/config.schema.yaml",
        help="the workflow's config schema (default: the repository's, from its root)",
    )
    for field in fields(Scale):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=int, default=field.default,
            help=f"rehearsal size: {field.name} (default {field.default})",
        )


def run(args: argparse.Namespace) -> None:
    """Scale the config down (``rehearsal.scale_config``) and write the rehearsal config to ``--out``."""
    import yaml

    from hessian_spectra.atomic import atomic_write
    from hessian_spectra.rehearsal import Scale, scale_config
    from hessian_spectra.runs import load_yaml
    from hessian_spectra.studies import workflow_schema

    if not Path(args.schema).is_file():
        raise FileNotFoundError(f"--schema {args.schema}: no such file; run from the repository's root or give --schema")
    scale = Scale(**{field.name: getattr(args, field.name) for field in fields(Scale)})
    config = load_yaml(args.config)
    if not isinstance(config, dict):
        raise ValueError(f"{args.config}: not a workflow config (a YAML mapping with `studies`)")
    schema = workflow_schema(args.schema, config.get("study_modules", []))
    rehearsal = scale_config(config, schema, scale)
    header = (
        f"# The rehearsal of {args.config}, written by `hessian-spectra rehearse {args.config}`: do not edit, rerun it.\n"
        f"# Scale: {', '.join(f'{f.name}={getattr(scale, f.name)}' for f in fields(Scale))}.\n"
    )
    text = header + yaml.safe_dump(rehearsal, sort_keys=False, default_flow_style=None, width=120)
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(text))
    log.info("wrote %s (config name %s)", args.out, rehearsal["name"])
