"""Run one dual-runtime test module under the MicroPython unix port.

Usage (from the repo root): micropython host_tests/mp_runner.py test_schema
Every top-level function whose name starts with test_ and that takes no argument is called. The last line printed
is "micropython: N passed, N failed", which host_tests/test_dual_runtime.py reads.
"""

import sys

sys.path.insert(0, "host_tests")
sys.path.insert(0, "lib")
sys.path.insert(0, "")


def main(name):
    mod = __import__(name)
    passed = failed = 0
    for attr in sorted(dir(mod)):
        fn = getattr(mod, attr)
        if not attr.startswith("test_") or not callable(fn):
            continue
        try:
            fn()
            passed += 1
        except Exception as e:  # report every failure, then go on with the next test
            failed += 1
            print("FAIL", name + "." + attr)
            sys.print_exception(e)
    print("micropython: %d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not passed else 0)


main(sys.argv[1])
