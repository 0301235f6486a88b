"""``python -m jaxpg``: the same command line as the ``jaxpg`` script."""

import sys

from jaxpg.cli import main

sys.exit(main())
