"""The few differences between CPython and MicroPython, each shim with its reason. Nothing else branches on runtime."""

try:
    from micropython import const  # noqa: F401  (MicroPython: folded at compile time)
except ImportError:  # CPython: a plain identity keeps the same source valid

    def const(x):
        return x


# ticks arithmetic with the ESP32's period (2^30), on every runtime. The unix port's native ticks wrap at 2^62,
# so its ticks_diff would misread a board clock that wraps at 2^30 (the simulator's does, on purpose). The firmware
# only ever takes ticks from board.clock.ticks_ms(), never from the runtime directly.
TICKS_PERIOD = const(1 << 30)
_TICKS_MASK = const((1 << 30) - 1)
_TICKS_HALF = const(1 << 29)


try:
    from time import ticks_ms as _native_ticks_ms  # MicroPython
except ImportError:  # CPython
    import time as _time

    def _native_ticks_ms():
        return int(_time.monotonic() * 1000)


def ticks_ms():
    """The runtime's monotonic ms, folded to the 2^30 period. For drivers (board clocks) only."""
    return _native_ticks_ms() & _TICKS_MASK


def ticks_add(t, delta):
    return (t + delta) & _TICKS_MASK


def ticks_diff(a, b):
    return ((a - b + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF


try:
    from sys import print_exception  # noqa: F401  (MicroPython)
except ImportError:  # CPython spells it through traceback
    import traceback as _traceback

    def print_exception(exc, file=None):
        _traceback.print_exception(type(exc), exc, exc.__traceback__, file=file)


try:
    from uctypes import addressof as _addressof, bytearray_at as _bytearray_at  # MicroPython

    def head(buf, n):
        """The first n bytes of buf as a bytearray that shares its memory (no copy: on a fragmented heap a copy of
        a few KB may find no room). Valid until buf is written again."""
        return _bytearray_at(_addressof(buf), n)
except ImportError:  # CPython has no aliasing bytearray; a copy is fine on the host

    def head(buf, n):
        return bytearray(buf[:n])


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
