"""`python -m console`: see console/app.py."""

import sys

from console.app import main

sys.exit(main())
