"""``"SUITE/NAME"`` names: validated by Config without importing the suite,
built by make_env, and a missing suite named with its extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

import jaxpg

SUITE_MODULES = {  # suite prefix -> the module its adapter imports
    "brax": "brax.envs",
    "playground": "mujoco_playground",
    "jumanji": "jumanji",
    "navix": "navix",
    "xminigrid": "xminigrid",
    "pgx": "pgx",
}

CHECK = """
import sys
import jaxpg
for name in ("brax/ant", "playground/CartpoleBalance", "jumanji/Snake-v1",
             "navix/Navix-Empty-5x5-v0", "xminigrid/MiniGrid-Empty-5x5", "pgx/2048"):
    assert jaxpg.Config(env=name).env == name
loaded = [m for m in ("brax", "mujoco_playground", "jumanji", "navix", "xminigrid",
                      "pgx") if m in sys.modules]
assert not loaded, loaded
print("ok")
"""


def test_config_accepts_suite_names_without_importing_the_suites():
    env = {"PATH": "", "PYTHONPATH": ":".join(sys.path), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_every_suite_has_an_adapter_module():
    assert set(jaxpg.envs.SUITES) == set(SUITE_MODULES)


@pytest.mark.parametrize("name", ["nosuch/env", "brax/", "brax", "/ant"])
def test_config_rejects_unknown_names_listing_the_suites(name):
    with pytest.raises(
        ValueError, match="SUITE/NAME with SUITE one of brax, playground"
    ):
        jaxpg.Config(env=name)


@pytest.mark.parametrize("suite", sorted(SUITE_MODULES))
def test_missing_suite_is_an_import_error_naming_the_extra(suite, monkeypatch):
    monkeypatch.setitem(sys.modules, SUITE_MODULES[suite], None)
    with pytest.raises(ImportError, match=rf"pip install 'jaxpg\[{suite}\]'"):
        jaxpg.envs.make_env(f"{suite}/Anything")
