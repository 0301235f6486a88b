"""``python -m jaxpg``: the same command line as the ``jaxpg`` script."""

import sys

from jaxpg.cli.main import main

sys.exit(main())
