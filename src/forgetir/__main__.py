"""``python -m forgetir``: the same command line as the ``forgetir`` script."""

import sys

from forgetir.cli.main import main

sys.exit(main())
