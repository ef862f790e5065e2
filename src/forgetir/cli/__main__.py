"""``python -m forgetir.cli`` (what ``torchrun ... -m forgetir.cli train`` starts)."""

import sys

from forgetir.cli.main import main

sys.exit(main())
