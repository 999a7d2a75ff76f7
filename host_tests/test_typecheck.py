"""mypy on the drivers, boot.py and main.py against the MicroPython ESP32 stubs: catches a wrong machine/network/esp32
call on the host.

Needs `mypy` and `micropython-esp32-esp32-generic-stubs` (1.29) in the venv; skips with the reason when absent.
"""

import glob
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

STUBS_DIST = "micropython_esp32_esp32_generic_stubs-*.dist-info"
# boot.py and main.py are the ESP32's entry points: they are checked with the same stubs as the drivers.
FILES = ["boot.py", "main.py", "drivers/esp32.py", "drivers/ina219.py", "drivers/ina226.py",
         "drivers/bh1750.py", "drivers/veml7700.py", "drivers/acs712.py", "drivers/ldr.py"]


def _site_with_stubs():
    for p in sys.path:
        if p and os.path.isdir(p) and glob.glob(os.path.join(p, STUBS_DIST)):
            return p
    return None


def _link_stubs(site, dest):
    """The stubs are top-level .pyi files in site-packages, which mypy ignores there (and refuses site-packages on
    MYPYPATH): link exactly the files the stubs distribution installed into a directory of their own."""
    record = glob.glob(os.path.join(site, STUBS_DIST, "RECORD"))[0]
    n = 0
    with open(record) as f:
        for line in f:
            rel = line.split(",")[0]
            if not rel.endswith(".pyi"):
                continue
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.path.join(site, rel), target)
            n += 1
    shed = os.path.join(site, "_mpy_shed")  # shared helper stubs from micropython-stdlib-stubs
    if os.path.isdir(shed):
        os.symlink(shed, os.path.join(dest, "_mpy_shed"))
    return n


def _mypy_env(tmp_path):
    mypy = os.path.join(os.path.dirname(sys.executable), "mypy")
    if not os.path.exists(mypy):
        mypy = shutil.which("mypy")
    if not mypy:
        pytest.skip("mypy not installed (pip install mypy)")
    site = _site_with_stubs()
    if site is None:
        pytest.skip("ESP32 stubs not installed (pip install micropython-esp32-esp32-generic-stubs==1.29.0.post1)")
    stubs = str(tmp_path / "stubs")
    assert _link_stubs(site, stubs) > 20
    env = dict(os.environ, MYPYPATH=stubs)
    args = [mypy, "--config-file", os.path.join(ROOT, "mypy.ini"), "--no-incremental"]
    if os.path.exists(os.path.join(site, "stdlib", "VERSIONS")):
        args += ["--custom-typeshed-dir", site]  # micropython-stdlib-stubs: MicroPython's own stdlib
    return args, env


def test_drivers_typecheck_against_esp32_stubs(tmp_path):
    args, env = _mypy_env(tmp_path)
    r = subprocess.run(args + FILES, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


def test_typecheck_catches_a_wrong_machine_call(tmp_path):
    # The check must be able to fail: a copy of esp32.py with a misspelt ADC constant and a str frequency.
    args, env = _mypy_env(tmp_path)
    pkg = tmp_path / "bad" / "drivers"
    pkg.mkdir(parents=True)
    with open(os.path.join(ROOT, "drivers", "esp32.py")) as f:
        src = f.read()
    bad = src.replace("machine.ADC.ATTN_11DB", "machine.ADC.ATTN_11DBX").replace(
        'freq=cfg["pwm_freq"]', 'freq=str(cfg["pwm_freq"])')
    assert bad != src
    (pkg / "__init__.py").write_text("")
    (pkg / "esp32.py").write_text(bad)
    env["MYPYPATH"] = env["MYPYPATH"] + os.pathsep + ROOT  # firmware/ from the repo
    r = subprocess.run(args + ["drivers/esp32.py"], cwd=str(tmp_path / "bad"), env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ATTN_11DBX" in r.stdout
    assert 'Argument "freq" to "PWM" has incompatible type "str"' in r.stdout
