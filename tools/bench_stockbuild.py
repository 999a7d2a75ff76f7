"""The esp32-shaped MicroPython without our firmware frozen in: the shape of the stock ESP32 image, for measuring
code that comes from `.mpy` files (the README's stock-image path).

    python3 tools/bench_stockbuild.py        # prints the binary's path (builds it once, about a minute)

Why not the frozen build with the files first on sys.path: there every name of the firmware is already a qstr in
the image's ROM pool, so loading the same code from `.mpy` interns none of them in the heap, and the figure comes
out better than on a stock image. This is tools/mpbuild.py's esp32-shaped build (same tree, patch and flags) with
an empty frozen manifest, as its native build has; it uses mpbuild's own pieces and a build folder of its own.
mpbuild.build_esp32_stock, when that exists, is used instead.
"""

import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import mpbuild  # noqa: E402

BUILD = "build-esp32stock"  # not build-esp32*-: mpbuild's own folder stays its own


def stock_key():
    """Names the binary: what goes into it (the tarball, mpbuild's patch and flags); no frozen code."""
    h = hashlib.sha256()
    h.update((mpbuild.TARBALL_SHA256 + getattr(mpbuild, "PATCH", "")).encode())
    h.update(" ".join(mpbuild.COMMON_ARGS + (mpbuild.ESP32_CFLAGS, mpbuild.ESP32_LDFLAGS, mpbuild.CROSS)).encode())
    return h.hexdigest()[:16]


def build_stock(log=sys.stderr):
    """The stock-shaped binary's path (built when missing); None without the i686 compiler or when mpbuild's pieces
    are not there (the caller then measures on the frozen build and says so)."""
    own = getattr(mpbuild, "build_esp32_stock", None)
    if own is not None:
        return own(log=log)
    if not mpbuild.have_cross_compiler():
        return None
    try:
        lock, build_unix = mpbuild._Lock, mpbuild._build_unix
    except AttributeError:
        return None
    out = os.path.join(mpbuild.cache_dir(), "bin", "micropython-esp32stock-" + stock_key())
    with lock():
        if os.path.exists(out):
            return out
        tree = mpbuild.source_tree(log)
        log.write("bench: building the stock-shaped esp32 MicroPython (no firmware frozen in; about a minute)\n")
        build_unix(tree, BUILD, ["CROSS_COMPILE=" + mpbuild.CROSS, "FROZEN_MANIFEST=",
                                 "CFLAGS_EXTRA=" + mpbuild.ESP32_CFLAGS, "LDFLAGS_EXTRA=" + mpbuild.ESP32_LDFLAGS],
                   out, log)
        return out


if __name__ == "__main__":
    path = build_stock()
    if path is None:
        sys.exit(mpbuild.missing_cross_message())
    print(path)
