"""tools/fleet_sim.py: the district layout, and a short bounded run of five virtual lamp posts."""

import io
import os
import sys

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))

import fleet_sim  # noqa: E402

from drivers.sim import FAULT_KINDS  # noqa: E402


def test_layout_spreads_posts_along_streets_around_padang():
    plan = fleet_sim.layout(40, seed=3)
    assert plan == fleet_sim.layout(40, seed=3)  # deterministic
    ids = [p[0] for p in plan]
    assert ids[0] == "pdg-0001" and ids[-1] == "pdg-0040" and len(set(ids)) == 40
    for node_id, groups, lat, lon, fault in plan:
        assert abs(lat - -0.95) < 0.03 and abs(lon - 100.35) < 0.03
        assert groups[1] == "sim-fleet" and groups[0].startswith("jl-")
        assert fault is None or fault in FAULT_KINDS
    streets = {}
    for p in plan:
        streets.setdefault(p[1][0], []).append(p)
    assert len(streets) == len(fleet_sim.STREETS) and all(len(v) == 8 for v in streets.values())
    assert len(set((p[2], p[3]) for p in plan)) == 40  # no two posts in one spot
    assert sum(1 for p in plan if p[4]) == 4  # N/10 faulty by default
    assert sum(1 for p in fleet_sim.layout(40, seed=3, faulty=0) if p[4]) == 0


def test_bounded_run_of_five_nodes(tmp_path):
    out = io.StringIO()
    rc = fleet_sim.main(["--nodes", "5", "--seconds", "16", "--speed", "40", "--dir", str(tmp_path)], out=out)
    text = out.getvalue()
    assert rc == 0, text
    lines = text.splitlines()
    assert lines[0] == "virtual fleet: 5 nodes, 5 online after 16 s (world x40)"
    assert lines[1].startswith("levels: ")
    # Each node's lamp is decided by its program (the world starts 5 minutes before sunset at x40).
    counts = dict(kv.split(": ") for kv in lines[2][len("reasons: "):].split(", "))
    assert sum(int(v) for v in counts.values()) == 5 and set(counts) == {"program:default"}
    assert lines[3] == "injected faults: pdg-0002=lamp_dead"
    assert "pdg-0002 lamp_failure raised" in text  # the dead lamp was noticed and reported
    assert lines[-1] == "active faults: pdg-0002=lamp_failure"
    assert sorted(os.listdir(tmp_path)) == ["pdg-000%d" % i for i in range(1, 6)]
