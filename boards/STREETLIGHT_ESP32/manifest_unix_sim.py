# The esp32-shaped unix binary (tools/mpbuild.py esp32): the board's own manifest, plus the simulated drivers that
# turn the binary into a virtual lamp post. Nothing else: no asyncio, ssl or mip, which the unix port would freeze by
# default — the binary must hold exactly what the board freezes, so a module the board forgets is missing here too.
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "..", "..", "tools"))  # manifests run in their own folder
import mpbuild  # noqa: E402

include("manifest.py", esp32_port=False)  # noqa: F821  (manifest API; no ESP32 port modules on unix)
module("drivers/sim.py", base_path=mpbuild.stage_sim())  # noqa: F821
