"""Runs every dual-runtime test module (marked `# runtimes: cpython micropython` on its first line) under the
real MicroPython unix port too, so the firmware logic is proven on the interpreter that ships, not only on CPython."""

import os
import re
import subprocess

import pytest
from conftest import ROOT
from harness import MICROPYTHON

HERE = os.path.join(ROOT, "host_tests")
MARK = "# runtimes: cpython micropython"


def dual_modules():
    out = []
    for name in sorted(os.listdir(HERE)):
        if name.startswith("test_") and name.endswith(".py"):
            with open(os.path.join(HERE, name)) as f:
                if f.readline().strip() == MARK:
                    out.append(name[:-3])
    return out


def test_there_are_dual_runtime_modules():
    assert len(dual_modules()) >= 3


@pytest.mark.parametrize("module", dual_modules())
def test_module_under_micropython(module):
    # 256 KB heap: far below the unix port's default, close to what an ESP32 application gets.
    r = subprocess.run([MICROPYTHON, "-X", "heapsize=256K", "host_tests/mp_runner.py", module],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    m = re.search(r"micropython: (\d+) passed, (\d+) failed", r.stdout)
    assert m, r.stdout + r.stderr
    assert int(m.group(2)) == 0 and r.returncode == 0, r.stdout + r.stderr
    assert int(m.group(1)) > 0
