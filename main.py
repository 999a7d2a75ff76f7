"""Runs after boot.py: build this platform's board (ESP32 hardware or the simulated lamp post) and run the node."""

import sys

from drivers.filestore import FileStore
from firmware import startup

if sys.platform == "esp32":
    from drivers.esp32 import board_for, seed
else:
    from drivers.sim import board_for, seed

startup.main(FileStore("."), board_for, seed())
