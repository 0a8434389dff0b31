"""``python -m hessian_spectra``: the same as the ``hessian-spectra`` command (recording its file reads first when
``HESSIAN_SPECTRA_AUDIT`` is set)."""

import sys

from hessian_spectra.audit import install_from_environment

install_from_environment()

from hessian_spectra.cli import main  # noqa: E402  (after the audit hook, so that it sees every import's reads)

sys.exit(main())
