"""Building blocks of the end-to-end tests: a virtual node's config, and an operator connected to the broker."""

import os
import sys

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))

from vnode import VirtualNode  # noqa: E402

from firmware.timebase import days_from_civil  # noqa: E402

# 2026-11-28 12:00 local in Padang (05:00 UTC): broad daylight, the default program keeps the lamp off.
NOON_T2K = days_from_civil(2026, 11, 28) * 86400 + 5 * 3600
# 2026-11-28 21:00 local: night, the default program runs the lamp at 100 %.
NIGHT_T2K = days_from_civil(2026, 11, 28) * 86400 + 14 * 3600


def node_config(broker, node_id, groups=(), keepalive_s=10, brokers=None, **sections):
    cfg = {
        "node": {"id": node_id, "groups": list(groups)},
        "mqtt": {"brokers": brokers or [{"host": broker.host, "port": broker.port}], "keepalive_s": keepalive_s,
                 "backoff_min_s": 1, "backoff_max_s": 2, "ack_timeout_s": 2},
        "system": {"control_ms": 200},
    }
    for k, v in sections.items():
        cfg.setdefault(k, {})
        cfg[k].update(v)
    return cfg


def make_node(path, broker, node_id, sim=None, config=None, groups=(), **kw):
    cfg = config or node_config(broker, node_id, groups)
    sim_doc = {"speed": 1, "start_t2k": NIGHT_T2K, "seed": 7, "rtc_valid_at_boot": True}
    sim_doc.update(sim or {})
    return VirtualNode(path, cfg, sim_doc, **kw)


def esp32_frozen(binary, heap="112K"):
    """VirtualNode options that run a node the way the city's ESP32 image does: the esp32-shaped binary (the
    `esp32_micropython` fixture), the firmware from its frozen image, the heap in two areas (112K: 2 x 56 KB)."""
    return {"micropython": binary, "placement": "frozen", "mp_args": ["-X", "heapsize=" + heap]}
