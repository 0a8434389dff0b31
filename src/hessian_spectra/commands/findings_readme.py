"""``hessian-spectra findings-readme``: the README's verdict tables, generated from kept findings.tsv files.

``record`` keeps a run's scorecard as ``docs/findings/<name>.tsv`` with ``<name>.json`` beside it (config, commit,
processor, date); ``render`` writes every kept scorecard's table into README.md between the markers
``<!-- findings:<name> start -->`` and ``<!-- findings:<name> end -->``, and every claim's rule into the report's
caption of the scorecard (``--check``: write nothing, fail if either is out of date). For example, after ``make run``:
``hessian-spectra findings-readme record --findings results/tables/findings.tsv --name default --config config.yaml``
then ``hessian-spectra findings-readme render``.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)
DOCS = "docs/findings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``hessian-spectra findings-readme`` and its actions ``record`` and ``render``."""
    commands = parser.add_subparsers(dest="what", required=True)
    record = commands.add_parser("record", help="keep a run's findings.tsv with its commit, processor and date")
    record.add_argument("--findings", required=True, help="the run's findings.tsv")
    record.add_argument("--name", required=True, help="the name of its README table (e.g. default, cpu)")
    record.add_argument("--config", required=True, help="the config file(s) the run used, as typed")
    record.add_argument("--docs", default=DOCS, help=f"where scorecards are kept (default {DOCS})")
    render = commands.add_parser("render", help="write every kept scorecard's table into the README")
    render.add_argument("--readme", default="README.md")
    render.add_argument("--docs", default=DOCS, help=f"where scorecards are kept (default {DOCS})")
    render.add_argument("--caption", default=None, help="the report caption of findings.tsv (default: the workflow's)")
    render.add_argument("--check", action="store_true", help="write nothing; fail if README or caption is out of date")


def processor() -> str:
    """This machine's processor model and logical core count."""
    import os
    from pathlib import Path

    models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
              if line.startswith("model name")] if Path("/proc/cpuinfo").exists() else []
    return f"{models[0] if models else 'an unknown processor'}, {os.cpu_count()} logical cores"


def commit() -> str:
    """The checkout's commit (with ``+changes`` when its tracked files differ from it)."""
    import subprocess

    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           check=True)
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def kept(docs: str) -> dict[str, tuple]:
    """name -> (scorecard, record) of every kept scorecard."""
    import json
    from pathlib import Path

    from hessian_spectra.tables import read_table

    found = {}
    for path in sorted(Path(docs).glob("*.tsv")):
        record = path.with_suffix(".json")
        if not record.exists():
            raise FileNotFoundError(f"{record}: the record of {path} is missing (hessian-spectra findings-readme "
                                    "record writes both)")
        found[path.stem] = (read_table(path, required=("source", "seed", "claim", "verdict", "why")),
                            json.loads(record.read_text()))
    if not found:
        raise FileNotFoundError(f"{docs}: no kept scorecard (*.tsv)")
    return found


def run(args: argparse.Namespace) -> None:
    """``record``: keep a scorecard with its record under ``docs/findings``; ``render``: write (or ``--check``)
    the README's verdict tables and the scorecard's caption."""
    import datetime
    import json
    import shutil
    from pathlib import Path

    from hessian_spectra.atomic import atomic_write
    from hessian_spectra.findings.render import CAPTION, place, render, report_caption

    if args.what == "record":
        record = {"config": args.config, "commit": commit(), "processor": processor(),
                  "date": datetime.date.today().isoformat()}
        docs = Path(args.docs)
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.findings, docs / f"{args.name}.tsv")
        text = json.dumps(record, indent=1) + "\n"
        atomic_write(docs / f"{args.name}.json", lambda tmp: Path(tmp).write_text(text))
        log.info("kept %s as %s with %s", args.findings, docs / f"{args.name}.tsv", record)
        return
    readme = Path(args.readme).read_text()
    tables = readme
    for name, (table, record) in kept(args.docs).items():
        tables = place(tables, name, render(name, table, record))
    caption = Path(args.caption or CAPTION)
    for path, old, new in ((Path(args.readme), readme, tables),
                           (caption, caption.read_text() if caption.exists() else "", report_caption())):
        if old == new:
            log.info("%s: up to date", path)
        elif args.check:
            raise ValueError(f"{path}: out of date with {args.docs} and the claims' rules; run "
                             "`hessian-spectra findings-readme render`")
        else:
            atomic_write(path, lambda tmp, text=new: Path(tmp).write_text(text))
            log.info("wrote %s", path)
