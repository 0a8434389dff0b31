"""``python -m hessian_spectra``: the same as the ``hessian-spectra`` command."""

import sys

from hessian_spectra.cli import main

sys.exit(main())
