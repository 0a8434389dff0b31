"""The ``hessian-spectra`` command: one entry point whose subcommands the workflow's rules call."""

from __future__ import annotations

import argparse
import ast
import atexit
import importlib
import logging
import pkgutil
import re
import shutil
import sys
import textwrap
from pathlib import Path

import hessian_spectra.commands
from hessian_spectra import job_settings
from hessian_spectra.runtime import log_resource_use


def available_commands() -> dict[str, str]:
    """Command name -> what it does (its docstring's first paragraph after ``hessian-spectra NAME:``, as one line),
    for every module in ``hessian_spectra.commands`` (not imported)."""
    commands = {}
    for module in pkgutil.iter_modules(hessian_spectra.commands.__path__):
        source = Path(hessian_spectra.commands.__path__[0], f"{module.name}.py").read_text()
        doc = ast.get_docstring(ast.parse(source)) or ""
        summary = " ".join(doc.split("\n\n")[0].split()).split(": ", 1)[-1]
        commands[module.name.replace("_", "-")] = re.sub(r"``(.*?)``", r"`\1`", summary)
    return dict(sorted(commands.items()))


def _listing(commands: dict[str, str]) -> str:
    """One entry per command, its text wrapped to the terminal under the text's first column."""
    width = max(shutil.get_terminal_size().columns, 80) - 2
    indent = " " * 25
    return "\n".join(
        textwrap.fill(
            text, width, initial_indent=f"  {name:<22} ", subsequent_indent=indent, break_on_hyphens=False
        )
        for name, text in commands.items()
    )


def _top_parser(commands: dict[str, str]) -> argparse.ArgumentParser:
    listing = _listing(commands)
    parser = argparse.ArgumentParser(
        prog="hessian-spectra",
        description="Hessian spectra of neural networks: training, curvature, landscapes, matching, figures.",
        epilog=f"commands:\n{listing}\n\n`hessian-spectra COMMAND --help` describes one command; "
        "`--settings JSON` stands for the flags its object names (what workflow jobs pass).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("command", choices=list(commands), metavar="COMMAND")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def command_parser(name: str, description: str) -> tuple[argparse.ArgumentParser, object]:
    """The parser of one command, built by its module (imported only when that command runs)."""
    module = importlib.import_module(f"hessian_spectra.commands.{name.replace('-', '_')}")
    parser = argparse.ArgumentParser(prog=f"hessian-spectra {name}", description=description)
    module.add_arguments(parser)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, configure logging, run the command; expected failures print one line and exit 2."""
    commands = available_commands()
    top = _top_parser(commands).parse_args(argv)
    parser, module = command_parser(top.command, commands[top.command])
    try:
        arguments = job_settings.expand(top.arguments)
    except ValueError as err:
        parser.error(str(err))
    args = parser.parse_args(arguments)
    logging.basicConfig(
        level=top.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        module.run(args)
    except (ValueError, FileNotFoundError, RuntimeError, TimeoutError) as err:
        atexit.unregister(log_resource_use)  # a failed command says one line
        logging.getLogger("hessian_spectra").error("%s: %s", type(err).__name__, err)
        logging.getLogger("hessian_spectra").debug("traceback", exc_info=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
