"""Subcommands of the ``hessian-spectra`` CLI, one module each (found automatically; ``-`` in a command name is
``_`` in its module name). A module has a docstring whose first line reads ``hessian-spectra NAME``: what it
does, plus ``add_arguments(parser)`` and ``run(args)``, and imports torch inside ``run`` only, so that
``hessian-spectra --help`` stays fast.
"""
