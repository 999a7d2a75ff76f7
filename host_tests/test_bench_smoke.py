"""tools/bench.py --quick: every figure is measured, with a number, a baseline, a goal field and a status."""

import json
import os
import subprocess
import sys

from conftest import ROOT

FIGURES = ("code_size", "sim_year", "boot_online", "boot_decision", "latency_p50", "latency_p99", "idle_cpu",
           "mqtt_bytes_day", "flash_writes_day", "heap_growth_7d", "heap_need_src", "heap_live_src", "heap_need_mpy",
           "heap_live_mpy", "heap_need_rom", "heap_live_rom")


def test_quick_bench_reports_every_figure_with_a_baseline(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench.py"), "--quick", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=200)
    doc = json.loads(out.read_text())
    assert doc["errors"] == {}, doc["errors"]
    assert r.returncode == 0, r.stdout + r.stderr
    assert doc["quick"] is True
    figs = doc["figures"]
    assert sorted(figs) == sorted(FIGURES)
    for name in FIGURES:
        f = figs[name]
        # Values are numbers (no timing asserts here: speed lives in the benchmark, not in the tests).
        assert isinstance(f["value"], (int, float)) and not isinstance(f["value"], bool), (name, f)
        assert isinstance(f["baseline"], (int, float)) and not isinstance(f["baseline"], bool), (name, f)
        assert f["unit"] and f["how"], name
        assert f["status"] in ("pass", "miss", "info"), name
        if f["goal"] is None:
            assert f["status"] == "info", name
        else:
            ok = f["value"] <= f["goal"] if f["goal_op"] == "<=" else f["value"] >= f["goal"]
            assert f["status"] == ("pass" if ok else "miss"), name
        assert name in r.stdout  # the printed table names every figure too
