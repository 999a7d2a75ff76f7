"""tools/console_bench.py's methods on a small scale: the flood reaches the database through the broker and the
console's ingest, and a day of posts grows the database by what it stored (SQLite; the full run adds PostgreSQL)."""

import os

import console  # noqa: F401  (puts tools/ on sys.path)
import console_bench

# The flood is the benchmark's own stand-in telemetry (a few fields of a real message), published by a bare paho
# client: not a node's message, so not the contract's business.
CONTRACT_CHECK = False


def test_flood_and_day_growth_small(broker, tmp_path):
    sample = {"t": 0, "level": 100.0, "lux": 0.4, "v": 229.8, "a": 0.27, "w": 60.1, "pf": 0.96,
              "energy_wh": 1000.0, "rssi": -62}
    fl = console_bench.measure_flood(broker, str(tmp_path / "flood.db"), 20, 1.0, sample)
    assert fl["published"] > 0 and fl["ingested_messages"] > 0 and not fl["db_errors"]
    assert fl["tele_rows"] == fl["ingested_messages"]  # every telemetry message the console got is a raw row
    assert fl["rows"] >= 2 * fl["tele_rows"]  # and an hourly sum at least
    written, grown, rows = console_bench.measure_day(str(tmp_path / "day.db"), 3, sample, tele_s=3600)
    assert rows["tele_raw"] == 3 * 24 and rows["state_log"] == 3 * 4 and rows["status_log"] == 3
    assert grown == written > 0
    assert os.path.exists(tmp_path / "day.db")
