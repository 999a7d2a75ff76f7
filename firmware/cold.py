"""Cold features: code loaded when it is needed and dropped after, so that it takes no RAM while the lamp just runs.

Commands other than the few the loop needs (config, programs, OTA, calibration, `get`) are rare: an operator sends
one a day. Loaded from `.mpy` files, each module's bytecode and function objects would otherwise sit in the heap for
good. `call` imports a module, runs one of its functions and removes the module again (from `sys.modules` and from
its package), so the GC can take it back. Frozen or ROMFS code costs little to import again; a `.mpy` costs a file
read, which is nothing next to an operator's round trip. Names a module brings stay interned (MicroPython never
frees qstrs), so loading the same module again grows nothing.
"""

import sys


def load(name):
    """Import `name` (a dotted module path) and return the module itself."""
    return __import__(name, None, None, ("_",))


def drop(name):
    """Forget module `name`: once nothing else holds it, the GC takes its code and globals back."""
    if sys.modules.pop(name, None) is None:
        return
    # Runs after a command has done its work, often on a nearly full heap: nothing here may raise MemoryError
    # (dir() built a list, and a program push that was stored came back as refused for its 256 bytes).
    try:
        package, _, leaf = name.rpartition(".")
        parent = sys.modules.get(package)
        if parent is not None:
            delattr(parent, leaf)
    except (AttributeError, MemoryError):
        pass  # not bound there, or no room to look: the package's reference goes with the next load


def call(name, function, *args):
    """`name.function(*args)` with the module loaded only for the call (one loaded before stays loaded)."""
    loaded = name in sys.modules
    try:
        return getattr(load(name), function)(*args)
    finally:
        if not loaded:
            drop(name)
