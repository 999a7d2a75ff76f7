# What the streetlight ESP32 image freezes into flash. Read by ports/esp32 (mpconfigboard.cmake names this file) and,
# through manifest_unix_sim.py, by the esp32-shaped unix build of tools/mpbuild.py: one list of modules for both, so a
# module forgotten here fails the host tests before it fails on a pole.
#
# The code frozen is the doc-stripped text that provision bundles ship as .mpy (tools/mpbuild.py stage_sources):
# the same program, the same line numbers in tracebacks, no JSON-Schema descriptions taking flash. It is staged into
# ${XDG_CACHE_HOME:-~/.cache}/streetlight-mp/stage/ by the Python that runs this manifest.
#
# boot.py, main.py and config.json are NOT frozen: they stay on the filesystem, where provisioning writes them.
import os
import sys

# A manifest runs with the current directory set to its own folder; the repo is two levels up.
_REPO = os.path.abspath(os.path.join(os.getcwd(), "..", ".."))
if os.path.join(_REPO, "tools") not in sys.path:
    sys.path.insert(0, os.path.join(_REPO, "tools"))
import mpbuild  # noqa: E402

options.defaults(esp32_port=True)  # noqa: F821  (manifest API)

if options.esp32_port:  # noqa: F821
    # The port's own frozen modules: _boot.py mounts (and on first boot, via inisetup.py, formats) the filesystem.
    freeze("$(PORT_DIR)/modules")  # noqa: F821
    # `ssl` is a micropython-lib module over the port's built-in `tls` (mbedTLS from ESP-IDF); firmware/tls.py needs
    # it. The stock image gets it through bundle-networking, which this image does not freeze (no mip, webrepl,
    # requests on a lamp post).
    require("ssl")  # noqa: F821

# firmware/, drivers/ (the ESP32 seam and the sensor chips; drivers/sim.py is host-only) and the pinned
# umqtt.simple from lib/umqtt (tools/fetch_umqtt.py checks its sha256; staging refuses an unpinned one).
_STAGE = mpbuild.stage_sources(_REPO)
for _pkg in ("firmware", "drivers", "umqtt"):
    package(_pkg, base_path=_STAGE)  # noqa: F821
