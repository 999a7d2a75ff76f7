"""pytest set-up shared by every host test: import paths and the locations of the project's tools."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "lib"), os.path.join(ROOT, "host_tests")):
    if p not in sys.path:
        sys.path.insert(0, p)
