"""The project's own MicroPython builds (tools/mpbuild.py) for the tests: built on first use, shared by the workers.

`esp32_binary()` returns the esp32-shaped binary for the sources as they are now — built when missing, which takes
about a minute once; pytest-xdist workers that ask at the same time wait on mpbuild's file lock for that one build.
Without the i686 cross compiler the tier is skipped with one line naming the Debian package; any other build failure
(no network for the source, a compile error) fails the test, because in CI this tier must run.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))

import mpbuild  # noqa: E402

_built = {}


def esp32_binary():
    if "esp32" not in _built:
        if not mpbuild.have_cross_compiler():
            pytest.skip(mpbuild.missing_cross_message())
        try:
            _built["esp32"] = mpbuild.build_esp32()
        except mpbuild.BuildError as e:
            pytest.fail("tools/mpbuild.py esp32: %s" % e, pytrace=False)
    return _built["esp32"]


def native_binary():
    """The native host build (built when missing; never skipped: it needs only the C compiler the venv needs)."""
    if "native" not in _built:
        try:
            _built["native"] = mpbuild.build_native()
        except mpbuild.BuildError as e:
            pytest.fail("tools/mpbuild.py native: %s" % e, pytrace=False)
    return _built["native"]
