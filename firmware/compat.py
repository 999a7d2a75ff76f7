"""The few differences between CPython and MicroPython, each shim with its reason. Nothing else may branch on runtime."""

try:
    from micropython import const  # noqa: F401  (MicroPython: folded at compile time)
except ImportError:  # CPython: a plain identity keeps the same source valid

    def const(x):
        return x


try:
    from time import ticks_add, ticks_diff, ticks_ms  # noqa: F401  (MicroPython)
except ImportError:  # CPython has no ticks_*; emulate the 2^30 wrap so host code meets what devices meet
    import time as _time

    _TICKS_PERIOD = 1 << 30
    _TICKS_HALF = _TICKS_PERIOD >> 1

    def ticks_ms():
        return int(_time.monotonic() * 1000) & (_TICKS_PERIOD - 1)

    def ticks_add(t, delta):
        return (t + delta) & (_TICKS_PERIOD - 1)

    def ticks_diff(a, b):
        return ((a - b + _TICKS_HALF) & (_TICKS_PERIOD - 1)) - _TICKS_HALF


try:
    from sys import print_exception  # noqa: F401  (MicroPython)
except ImportError:  # CPython spells it through traceback
    import traceback as _traceback

    def print_exception(exc, file=None):
        _traceback.print_exception(type(exc), exc, exc.__traceback__, file=file)


def mem_free():
    """Free GC heap in bytes, or -1 where the runtime cannot tell (CPython)."""
    try:
        import gc

        return gc.mem_free()
    except AttributeError:
        return -1


def is_finite(x):
    # MicroPython has no math.isfinite on every port build; x - x is 0.0 only for finite floats.
    return x - x == 0.0
