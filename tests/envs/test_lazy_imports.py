"""gymnax's render-only imports (seaborn, pyplot) wait until they are used."""

import subprocess
import sys

CHECK = """
import sys
import jaxpg
import gymnax
loaded = [m for m in ("seaborn", "scipy.stats", "matplotlib.pyplot")
          if m in sys.modules and type(sys.modules[m]).__name__ != "Deferred"]
assert not loaded, loaded
# Pong's render palette, through the name its module bound:
from gymnax.environments.misc import pong
palette = pong.sns.color_palette("cubehelix", 3)
assert len(palette) == 3, palette
import seaborn, matplotlib, matplotlib.pyplot as plt
assert type(sys.modules["seaborn"]).__name__ == "module"
assert seaborn.color_palette is sys.modules["seaborn"].color_palette
# pyplot, both as a name and as the package's attribute:
assert plt.figure is matplotlib.pyplot.figure
assert type(sys.modules["matplotlib.pyplot"]).__name__ == "module"
import seaborn.objects
print("ok")
"""


def test_import_jaxpg_defers_plotting_and_they_work_when_used():
    env = {"MPLBACKEND": "Agg", "PATH": "", "PYTHONPATH": ":".join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
