"""Runs first at every reset: the crash-loop guard decides normal or safe mode. Tiny, and it cannot stop the boot."""

try:
    import sys

    from drivers.filestore import FileStore
    from firmware import bootguard

    if sys.platform == "esp32":
        from drivers.esp32 import reset_cause
    else:
        from drivers.sim import reset_cause
    bootguard.at_boot(FileStore("."), reset_cause())
except Exception as e:  # noqa: BLE001 — whatever fails here, main.py must still run (normal mode by default)
    print("boot.py:", repr(e))
