"""The ``hessian-spectra`` command: one entry point whose subcommands the workflow's rules call."""

from __future__ import annotations

import argparse
import ast
import importlib
import logging
import pkgutil
import sys
from pathlib import Path

import hessian_spectra.commands


def available_commands() -> dict[str, str]:
    """Command name -> first docstring line, for every module in ``hessian_spectra.commands`` (not imported)."""
    commands = {}
    for module in pkgutil.iter_modules(hessian_spectra.commands.__path__):
        source = Path(hessian_spectra.commands.__path__[0], f"{module.name}.py").read_text()
        doc = ast.get_docstring(ast.parse(source)) or ""
        commands[module.name.replace("_", "-")] = doc.split("\n")[0].split(": ", 1)[-1]
    return dict(sorted(commands.items()))


def _top_parser(commands: dict[str, str]) -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<22} {text}" for name, text in commands.items())
    parser = argparse.ArgumentParser(
        prog="hessian-spectra",
        description="Hessian spectra of neural networks: training, curvature, landscapes, matching, figures.",
        epilog=f"commands:\n{listing}\n\n`hessian-spectra COMMAND --help` describes one command.",
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
    args = parser.parse_args(top.arguments)
    logging.basicConfig(
        level=top.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        module.run(args)
    except (ValueError, FileNotFoundError, RuntimeError, TimeoutError) as err:
        logging.getLogger("hessian_spectra").error("%s: %s", type(err).__name__, err)
        logging.getLogger("hessian_spectra").debug("traceback", exc_info=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
