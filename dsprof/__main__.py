"""`python -m dsprof`."""

import sys

from dsprof.cli.main import main

sys.exit(main())
