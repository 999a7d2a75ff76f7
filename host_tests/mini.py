"""The little a test needs that runs on both CPython (pytest) and the MicroPython unix port (mp_runner.py)."""


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception it raised; fail when it raises nothing or another type."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("%s not raised by %s" % (exc_type.__name__, getattr(fn, "__name__", fn)))


def approx(a, b, tol):
    return abs(a - b) <= tol
