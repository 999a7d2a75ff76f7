"""The lighting engineer's console: a web app over the broker, with the fleet's history in a database (docs/CONSOLE.md).

The console reuses the host tools (tools/fleet.py, operator_client.py, energy_report.py) and the firmware's own
schemas, which import each other as top-level modules: the repository root and tools/ go on sys.path here, once,
for every console module.
"""

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (_ROOT, os.path.join(_ROOT, "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)
