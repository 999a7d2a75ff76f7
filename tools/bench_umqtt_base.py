"""Benchmark baseline (MicroPython unix port): the least an MQTT lamp post could be — a bare umqtt.simple client.

Run by tools/bench.py with MICROPYPATH=<repo>/lib (code placement: tools/bench_codepath.py) and these settings:
BENCH_HOST, BENCH_PORT (the broker), BENCH_ID (topic segment), BENCH_HEAP_OUT (sample file, default
bench_heap.jsonl), BENCH_SAMPLE_MS (default 200).

It connects with a retained Last Will, publishes a retained {"online": true} on bench/<id>/status, subscribes to
bench/<id>/cmd and echoes every message to bench/<id>/reply, and publishes a small telemetry-like message once a
second — until it is killed. Every BENCH_SAMPLE_MS it collects garbage and appends {"ms", "live", "free"} to the
sample file, exactly as tools/bench_heapwrap.py does for the node, so both figures are measured the same way.
"""

import gc
import os
import time

import bench_codepath  # noqa: E402  (tools/, next to this script)

held = bench_codepath.place()

from umqtt.simple import MQTTClient  # noqa: E402

host = os.getenv("BENCH_HOST") or "127.0.0.1"
port = int(os.getenv("BENCH_PORT") or "1883")
name = os.getenv("BENCH_ID") or "base"
out = os.getenv("BENCH_HEAP_OUT") or "bench_heap.jsonl"
every = int(os.getenv("BENCH_SAMPLE_MS") or "200")
base = b"bench/" + name.encode() + b"/"
t_reply = base + b"reply"


def on_msg(topic, msg):
    c.publish(t_reply, msg)


c = MQTTClient(name, host, port, keepalive=60)
c.set_callback(on_msg)
c.set_last_will(base + b"status", b'{"online": false}', True, 1)
c.connect()
c.publish(base + b"status", b'{"online": true}', True)
c.subscribe(base + b"cmd", 1)
last_sample = time.ticks_ms()
last_tele = last_sample
n = 0
while True:
    c.check_msg()
    now = time.ticks_ms()
    if time.ticks_diff(now, last_tele) >= 1000:
        last_tele = now
        n += 1
        c.publish(base + b"tele", b'{"n": %d, "heap_free": %d}' % (n, gc.mem_free()))
    if time.ticks_diff(now, last_sample) >= every:
        last_sample = now
        gc.collect()
        with open(out, "a") as f:
            f.write('{"ms": %d, "live": %d, "free": %d}\n' % (now, gc.mem_alloc() - held, gc.mem_free()))
    time.sleep_ms(5)
