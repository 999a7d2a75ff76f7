"""Runs after boot.py: build this platform's board (ESP32 hardware or the simulated lamp post) and run the node."""

import sys

from drivers.filestore import FileStore
from firmware import startup

if sys.platform == "esp32":
    from drivers.esp32 import make_board, seed
else:
    from drivers.sim import make_board, seed

startup.main(FileStore("."), make_board, seed())
