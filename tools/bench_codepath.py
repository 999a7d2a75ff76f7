"""Where a benchmark script running under the MicroPython unix port loads its code from (tools/bench.py sets one):

* BENCH_MPY_DIR — a tree of .mpy files: bytecode is read from files into the GC heap, as on a device with .mpy
  files on its LittleFS;
* BENCH_ROMFS — a ROMFS image (tools/romfs.py) mounted at /rom: bytecode and its constant data are used in place,
  as on an ESP32 whose code sits in its romfs flash partition. Here the image itself has to live in the GC heap,
  which on the device it does not, so `place()` returns its size for the samples to subtract;
* neither — source files from MICROPYPATH, compiled into the heap at import; or, with a binary that has the code
  frozen in (BENCH_FROZEN=1, MICROPYPATH without the repo), the frozen modules: bytecode and constants in flash.
"""

import gc
import os
import sys


def place():
    """Put the code on sys.path; returns the heap bytes the placement holds here but not on an ESP32.

    First the running script's folder (tools/, which MicroPython put at sys.path[0]) gives way to "" (the current
    folder: the node's flash), the device's own first entry — that is where boot.py and main.py are found when
    the code is frozen (tools/vnode.py copies them there), and tools/ must shadow nothing on the node."""
    sys.path[0] = ""
    tree = os.getenv("BENCH_MPY_DIR")
    if tree:
        sys.path.insert(0, tree)
        return 0
    image = os.getenv("BENCH_ROMFS")
    if not image:
        return 0
    import vfs

    gc.collect()
    before = gc.mem_alloc()
    buf = bytearray(os.stat(image)[6])  # exact size: f.read() would grow a buffer and fragment the heap
    with open(image, "rb") as f:
        f.readinto(buf)
    vfs.mount(vfs.VfsRom(buf), "/rom")
    sys.path.insert(0, "/rom")
    gc.collect()
    return gc.mem_alloc() - before
