"""``python -m jaxpg.cli``: the ``jaxpg`` command."""

import sys

from jaxpg.cli.main import main

sys.exit(main())
