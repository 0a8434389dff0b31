"""Subcommands of the ``hessian-spectra`` CLI, one module each (found automatically; ``-`` in a command name is
``_`` in its module name). A module has a docstring whose first paragraph reads ``hessian-spectra NAME``: what
it does (``hessian-spectra --help`` lists that paragraph whole), plus ``add_arguments(parser)`` and
``run(args)``, and imports torch inside ``run`` only, so that ``hessian-spectra --help`` stays fast.
"""
