"""The ``jaxpg`` command line: ``train``, ``eval``, ``compare``, ``sweep``, ``lm``.

Only argument parsing and printing live here; every computation is a library
function of the layers below.
"""

from jaxpg.cli.main import main

__all__ = ["main"]
