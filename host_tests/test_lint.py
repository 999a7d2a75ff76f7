"""ruff (pyflakes + pycodestyle rules, ruff.toml) over every Python file we write: unused imports and variables,
undefined names and overlong lines are defects here, on the device as on the host."""

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


def test_ruff_finds_nothing():
    import os

    ruff = os.path.join(os.path.dirname(sys.executable), "ruff")
    if not os.path.exists(ruff):
        ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: it is in requirements-dev.txt, run `make venv`")
    r = subprocess.run([ruff, "check", "boot.py", "main.py", "firmware", "drivers", "tools", "host_tests", "console"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
