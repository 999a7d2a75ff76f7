"""Every file that goes onto the ESP32 compiles for it, and the layering rules hold.

`mpy-cross -march=xtensawin` is the ESP32's own compiler front end: a file it rejects would not load on the device,
whatever CPython and the unix port think of it.
"""

import os
import re
import subprocess

import pytest
from conftest import ROOT
from harness import MPY_CROSS


def device_files():
    out = ["boot.py", "main.py", "lib/umqtt/simple.py"]
    for pkg in ("firmware", "drivers"):
        for name in sorted(os.listdir(os.path.join(ROOT, pkg))):
            if name.endswith(".py"):
                out.append(pkg + "/" + name)
    return out


@pytest.mark.parametrize("path", device_files())
def test_compiles_for_the_esp32(path, tmp_path):
    r = subprocess.run([MPY_CROSS, "-march=xtensawin", "-o", str(tmp_path / "out.mpy"), path], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.mpy").read_bytes()[:1] == b"M"  # an .mpy file, version header first


HARDWARE = re.compile(r"^\s*(import|from)\s+(machine|network|esp32)\b", re.M)
CPYTHON_ONLY = re.compile(r"^\s*(import|from)\s+(typing|dataclasses|pathlib|logging|enum|datetime|subprocess|"
                          r"threading|abc|argparse)\b", re.M)


def test_only_drivers_touch_the_hardware():
    offenders = []
    for path in device_files():
        with open(os.path.join(ROOT, path)) as f:
            src = f.read()
        if HARDWARE.search(src) and not path.startswith("drivers/"):
            offenders.append(path)
    assert offenders == []
    with open(os.path.join(ROOT, "drivers", "esp32.py")) as f:
        assert HARDWARE.search(f.read())  # the check can see an import when there is one


def test_device_code_uses_no_cpython_only_modules():
    offenders = [p for p in device_files() if CPYTHON_ONLY.search(open(os.path.join(ROOT, p)).read())]
    assert offenders == []
