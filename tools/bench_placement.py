"""Where a measured node's code lives (the benchmark and the operator scenario share it): the environment that
tools/bench_codepath.py reads inside the node, and the files it needs, built once per work directory.

* "src"    — source files on MICROPYPATH, compiled into the heap at import (the unix-port default);
* "mpy"    — a tree of .mpy files laid out as a `provision.py build` bundle gives them: bytecode read into RAM;
* "rom"    — the bundle's ROMFS image mounted at /rom: bytecode and constants used in place (in flash on an ESP32;
             in this heap here, so its size is added to the trial heap and subtracted from "live"). Only sound with
             a heap in one area: a split heap (the esp32-shaped binary) must hold the image in one of its areas;
* "frozen" — the code frozen into the micropython binary itself (tools/mpbuild.py): nothing to build here, and
             the repo's sources are taken off sys.path inside the node so a module the image lacks fails loudly
             instead of being compiled from source behind the measurement's back.
"""

import os
import shutil
import tempfile

import provision  # tools/: the device code exactly as bundles ship it

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PLACEMENTS = ("src", "mpy", "rom", "frozen")


def device_code(work):
    """{bundle path: .mpy bytes} of what tools/provision.py ships (docs stripped, xtensawin: no native code, so the
    unix port imports it too), plus drivers/sim.mpy, which the unix-port node needs in place of drivers/esp32.py."""
    files = provision.compile_common(work)
    files["drivers/sim.mpy"] = provision.compile_source(
        os.path.join(ROOT, "drivers", "sim.py"), "drivers/sim.py", os.path.join(work, "sim.mpy"))
    return files


def build_romfs(dst):
    """The ROMFS image of device_code(), as `provision.py build` writes it (code.romfs)."""
    work = tempfile.mkdtemp(prefix="place-romfs-")
    try:
        image = provision.romfs_image(device_code(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(dst, "wb") as f:
        f.write(image)
    return dst


def build_host_mpy(dst):
    """device_code() as a tree of .mpy files, laid out as in a bundle (umqtt/ at the top)."""
    work = tempfile.mkdtemp(prefix="place-mpy-")
    try:
        files = device_code(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for rel, data in files.items():
        if rel.endswith(".mpy"):
            out = os.path.join(dst, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "wb") as f:
                f.write(data)
    return dst


class CodePlacements:
    """Builds each placement's files at most once under `work`; `env(kind)` is what the node's environment needs."""

    def __init__(self, work):
        self.work = work
        self._mpy = None
        self._romfs = None

    def env(self, kind):
        if kind not in PLACEMENTS:
            raise ValueError("code placement must be one of %s, not %r" % (", ".join(PLACEMENTS), kind))
        if kind == "mpy":
            if self._mpy is None:
                self._mpy = build_host_mpy(os.path.join(self.work, "mpy"))
            return {"BENCH_MPY_DIR": self._mpy}
        if kind == "rom":
            if self._romfs is None:
                os.makedirs(self.work, exist_ok=True)
                self._romfs = build_romfs(os.path.join(self.work, "code.romfs"))
            return {"BENCH_ROMFS": self._romfs}
        if kind == "frozen":
            return {"BENCH_FROZEN": "1"}
        return {}

    def held_k(self, kind):
        """KB the placement takes in this heap but not on an ESP32: the ROMFS image and its bytearray header."""
        if kind != "rom":
            return 0
        return (os.path.getsize(self.env("rom")["BENCH_ROMFS"]) + 64 + 1023) // 1024
