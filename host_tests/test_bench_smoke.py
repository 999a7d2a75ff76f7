"""tools/bench.py --quick: every figure is measured, with a number, a baseline, a goal field and a status."""

import json
import os
import subprocess
import sys

from conftest import ROOT

from broker import available_kinds

FIGURES = ("code_size", "romfs_image", "sim_year", "boot_online", "boot_decision", "latency_p50", "latency_p99",
           "idle_cpu", "mqtt_bytes_day", "flash_writes_day", "heap_growth_7d", "heap_need_src", "heap_live_src",
           "heap_need_mpy", "heap_live_mpy", "heap_need_rom", "heap_live_rom",
           # issue 14: the esp32-shaped runtime
           "esp32_need_frozen", "esp32_live_frozen", "esp32_free112_frozen",
           "esp32_need_mpy", "esp32_live_mpy", "esp32_free112_mpy")
# Measured again on every other broker installed (the first is mosquitto when installed).
SECOND_BROKER = ("latency_p50", "latency_p99", "esp32_free112_frozen")


def test_quick_bench_reports_every_figure_with_a_baseline(tmp_path, esp32_micropython):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench.py"), "--quick", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    doc = json.loads(out.read_text())
    assert doc["errors"] == {}, doc["errors"]
    assert r.returncode == 0, r.stdout + r.stderr
    assert doc["quick"] is True
    figs = doc["figures"]
    kinds = available_kinds()
    expected = list(FIGURES) + ["%s@%s" % (n, k) for k in kinds[1:] for n in SECOND_BROKER]
    assert doc["brokers"] == kinds
    assert sorted(figs) == sorted(expected)
    for name in expected:
        f = figs[name]
        # Values are numbers (no timing asserts here: speed lives in the benchmark, not in the tests) — or none for
        # a heap figure the scenario gives no number for (it fails at every heap tried, or at 112 KB): then the
        # reason is in the detail, and with a goal the status reads "miss".
        if f["value"] is None:
            why = f["detail"].get("why") or f["detail"].get("why_failed") or f["detail"].get("failed_step")
            assert name.startswith(("esp32_", "heap_need_")) and why, (name, f)
            assert f["status"] == ("info" if f["goal"] is None else "miss"), (name, f)
        else:
            assert isinstance(f["value"], (int, float)) and not isinstance(f["value"], bool), (name, f)
        if name not in ("esp32_free112_frozen@" + k for k in kinds):
            assert isinstance(f["baseline"], (int, float)) and not isinstance(f["baseline"], bool), (name, f)
        assert f["unit"] and f["how"], name
        assert f["status"] in ("pass", "miss", "info"), name
        if f["goal"] is None:
            assert f["status"] == "info", name
        elif f["value"] is not None:
            ok = f["value"] <= f["goal"] if f["goal_op"] == "<=" else f["value"] >= f["goal"]
            assert f["status"] == ("pass" if ok else "miss"), name
        assert name in r.stdout  # the printed table names every figure too
