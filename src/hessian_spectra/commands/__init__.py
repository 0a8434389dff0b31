"""Subcommands of the ``hessian-spectra`` CLI, one module each (found automatically; ``-`` in a command name is
``_`` in its module name). A module has a docstring whose first paragraph reads ``hessian-spectra NAME``: what
it does (``hessian-spectra --help`` lists that paragraph whole), plus ``add_arguments(parser)`` and
``run(args)``, and imports torch inside ``run`` only, so that ``hessian-spectra --help`` stays fast. Here: what
the commands share.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

Request = TypeVar("Request")


def request_from_args(request: type[Request], args: argparse.Namespace, **fixed: Any) -> Request:
    """The dataclass ``request`` (its field names follow the flags) from every flag of ``args`` it has a field for,
    and ``fixed`` for the fields a command sets itself."""
    names = [field.name for field in dataclasses.fields(request)]
    return request(**{**{name: getattr(args, name) for name in names if hasattr(args, name)}, **fixed})
