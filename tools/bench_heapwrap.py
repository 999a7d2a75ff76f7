"""Benchmark harness (MicroPython unix port): boots the real node like boot+main, sampling its GC heap as it runs.

Run by tools/bench.py as the node's script (VirtualNode(main=this file)), with cwd = the node's data directory:

    micropython tools/bench_heapwrap.py

It does what `micropython -c "import boot; import main"` does, after wrapping `firmware.node.Node.tick` — here, in
this harness only; the firmware is not changed — so that every BENCH_SAMPLE_MS of real time (default 200) the
wrapper runs gc.collect() and appends one JSON line to BENCH_HEAP_OUT (default bench_heap.jsonl in the cwd):

    {"ms": the board ticks given to that tick, "now": the node's RTC t2k, "live": gc.mem_alloc() after the collect,
     "free": gc.mem_free(), "writes": store.writes, "tx": link.tx_bytes, "conn": link.connects}

`live` is the heap the node really holds (garbage removed) at a quiet point between ticks. (micropython.mem_peak()
is not used: on the unix port it sums m_malloc calls and never subtracts what the GC frees, so it only grows.)
A device never sees these collections, so they cost some CPU here: do not measure CPU with this wrapper.

Where the code comes from (source, a .mpy tree or a ROMFS image) is set by tools/bench_codepath.py; each sample
also carries "held", the bytes a ROMFS image takes in this heap (on an ESP32 it stays in flash), which `live`
already excludes.
"""

import gc
import os
import sys

import bench_codepath  # noqa: E402  (tools/, next to this script)

_held = bench_codepath.place()

_out = os.getenv("BENCH_HEAP_OUT") or "bench_heap.jsonl"
_every = int(os.getenv("BENCH_SAMPLE_MS") or "200")
_last = [None]


def _sample(node, now_ms):
    gc.collect()
    live = gc.mem_alloc() - _held
    free = gc.mem_free()
    link = node.link
    line = '{"ms": %d, "now": %d, "live": %d, "held": %d, "free": %d, "writes": %d, "tx": %d, "conn": %d}\n' % (
        now_ms, node.board.clock.now(), live, _held, free, node.store.writes,
        link.tx_bytes if link is not None else 0, link.connects if link is not None else 0)
    with open(_out, "a") as f:
        f.write(line)


import boot  # noqa: E402, F401  (the crash-loop guard, as on the device: before main)


def _patch_node():
    """Called by main.py right before startup.main: the firmware is imported by then (main.py's own loop), so
    wrapping Node.tick here costs nothing the node would not hold anyway."""
    from firmware import node as _nodemod
    from firmware.compat import ticks_diff  # board ticks wrap at 2^30; the native one at 2^62

    _tick = _nodemod.Node.tick

    def _tick_sampled(self, now_ms):
        _tick(self, now_ms)
        last = _last[0]
        if last is None or ticks_diff(now_ms, last) >= _every:
            _last[0] = now_ms
            _sample(self, now_ms)

    _nodemod.Node.tick = _tick_sampled  # the loop looks tick up on every call: the wrapped one runs from now on


# main.py runs as on the device (compiled from its source, its receive buffer made before the firmware is
# imported), with one call added before startup.main. Importing firmware.node here first, as this harness once did,
# put 30 KB of the firmware ahead of that buffer: below 84 KB the 8 KB run was gone and the node could not boot in
# the harness, while the node itself does (measured on the esp32-shaped build).
_HOOK = "    startup.main("


def _main_source():
    """main.py's text from the first folder of sys.path that has it (the node's flash, or a code tree), or None
    where main comes as bytecode only."""
    for d in sys.path:
        try:
            with open(d + "/main.py" if d else "main.py") as f:
                return f.read()
        except OSError:
            pass
    return None


_src = _main_source()
if _src is None:
    _patch_node()  # main as bytecode: the firmware is imported ahead of main.py's buffer (see above)
    import main  # noqa: E402, F401  (runs the node forever)
elif _HOOK not in _src:
    raise SystemExit("bench_heapwrap: main.py no longer calls %r: update the hook" % _HOOK.strip())
else:
    _code = compile(_src.replace(_HOOK, "    _bench_patch()\n" + _HOOK), "main.py", "exec")
    _src = None
    gc.collect()
    exec(_code, {"__name__": "main", "_bench_patch": _patch_node})  # runs the node forever
