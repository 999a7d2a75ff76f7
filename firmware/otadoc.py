"""What the node knows of updates while none runs: the `ota` config section's schema, the schema of a manifest
(what ota_begin carries), and whether ota.json leaves the update agent anything to do after a boot.

The agent itself (firmware/ota.py, with firmware/signing.py for the manifest's signature) is cold: the node loads it
for an update command or chunk, a version on trial, or an outcome not yet reported, and lets it go when none of that
is left (firmware/node.py, `ota_agent`). Imported at every boot, from `.mpy` files it would hold ~10 KB of bytecode
in the heap for the months between two updates.
"""

import json

from firmware.compat import const
from firmware.schema import Dict, Int, Lazy, List, Nullable, Str

OTA_FILE = "ota.json"
MAX_FILES = const(64)  # a full image is ~50 files; its ota_begin (~126 bytes a file) must fit mqtt.max_payload
MAX_FILE_BYTES = const(262144)
HEX = "0123456789abcdef"
SEGMENT_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"


def _ota():
    return Dict({
        "update_key": Nullable(Str(128, minlen=16), doc="fleet update key (hex or text) that signs manifests; "
                                                        "null: updates refused. Never reported"),
        "confirm_s": Int(10, 3600, 60, doc="a new version is confirmed once connected and running this long"),
        "trial_max_s": Int(60, 86400, 900, doc="not confirmed after this long: roll back to the previous version"),
        "max_bytes": Int(16384, 4194304, 1048576, doc="largest update accepted (sum of file sizes)"),
    })


OTA_SCHEMA = Lazy(_ota)


def _file():
    return Dict({
        "path": Str(64, minlen=4, charset=SEGMENT_CHARS + "./", doc="e.g. firmware/node.mpy (relative, no ..)"),
        "size": Int(0, MAX_FILE_BYTES),
        "sha256": Str(64, minlen=64, charset=HEX),
    })


def _manifest():
    return Dict({
        "format": Int(1, 1, 1),
        "version": Str(20, minlen=5, charset="0123456789.", doc="MAJOR.MINOR.PATCH"),
        "files": List(_file(), MAX_FILES, min_len=1),
    })


MANIFEST_SCHEMA = Lazy(_manifest)


def agent_needed(root):
    """True when ota.json (in the data directory `root`) says a version is on trial or an update's outcome has not
    been reported yet. A transfer left on flash needs nothing now: the agent finds it when the sender goes on."""
    try:
        with open(root + "/" + OTA_FILE if root not in ("", ".") else OTA_FILE) as f:
            doc = json.loads(f.read())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and leaves_work(doc)


def leaves_work(doc):
    """True when the ota.json document `doc` has a version on trial or an outcome not yet reported."""
    result = doc.get("result")
    return doc.get("trial") is True or (isinstance(result, dict) and result.get("reported") is False)
