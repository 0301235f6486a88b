"""gymnax's render-only imports (seaborn, pyplot) wait until they are used, and
``import jaxpg`` leaves JAX's backend unstarted (gymnax's import starts it)."""

import subprocess
import sys

CHECK = """
import sys
import jax
import jaxpg
# The backend gymnax's import started is dropped: JAX can still be set up.
jax.config.update("jax_num_cpu_devices", 3)
assert len(jax.devices()) == 3, jax.devices()
# An array gymnax made at import works in a computation on the new backend.
from gymnax.environments.misc import frozen_lake
assert int(jax.jit(lambda d: d.sum())(frozen_lake._DIRECTIONS)) == 0
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


def test_import_jaxpg_defers_plotting_and_leaves_the_backend_unstarted():
    env = {"MPLBACKEND": "Agg", "PATH": "", "PYTHONPATH": ":".join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
