"""config.change(cfg, patch) must be validate(merge(cfg, patch)) exactly — the same config, or the same error —
while checking only the sections the patch names (the node uses it for every live change: less heap).

CPython only: compiling the whole config schema from source needs more than the 256 KB heap the dual-runtime
runner gives MicroPython. The node runs config.change in every e2e config test (test_e2e_node.py)."""

from firmware import config

VALUES = (None, True, False, 0, 1, -1, 7, 30, 100, 101, 65536, 0.5, -3.25, 1e9, "", "x", "sunset", "23:00",
          "12-24", "bh1750", [], [1], [{"at": "sunset", "offset_min": 0, "level": 50}], {}, {"a": 1})


class Rand:
    """A small deterministic generator (the same cases on both runtimes)."""

    def __init__(self, seed):
        self.x = seed

    def below(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x % n


def _paths(v, prefix):
    out = [prefix]
    if isinstance(v, dict):
        for k in v:
            out += _paths(v[k], prefix + (k,))
    return out


def _patch(path, value):
    doc = value
    for k in reversed(path):
        doc = {k: doc}
    return doc


def _outcome(fn):
    try:
        return ("ok", fn())
    except config.Invalid as e:
        return ("invalid", str(e))


def _cases(base, rnd, n):
    paths = [p for p in _paths(base, ()) if p]
    for _ in range(n):
        patch = {}
        for _ in range(1 + rnd.below(3)):
            p = paths[rnd.below(len(paths))]
            part = _patch(p, VALUES[rnd.below(len(VALUES))])
            patch[p[0]] = config.merge(patch[p[0]], part[p[0]], p[0]) \
                if isinstance(patch.get(p[0]), dict) and isinstance(part[p[0]], dict) else part[p[0]]
        yield patch


def test_change_equals_validate_of_merge():
    base = config.defaults()
    rnd = Rand(20261202)
    seen = {"ok": 0, "invalid": 0}
    for patch in _cases(base, rnd, 800):
        want = _outcome(lambda: config.validate(config.merge(base, patch)))
        got = _outcome(lambda: config.change(base, patch))
        assert got == want, (patch, got, want)
        seen[want[0]] += 1
    # Both kinds were really exercised (the counts differ by runtime: dict order decides which paths come up).
    assert seen["ok"] >= 25 and seen["invalid"] >= 100, seen


def test_change_refuses_what_validate_refuses_at_the_top():
    base = config.defaults()
    for patch in (None, [], "x", {"nosuch": {}}, {"report": 5}, {"programs": {"default": []}}):
        got = _outcome(lambda: config.change(base, patch))
        assert got[0] == "invalid", (patch, got)
    deep = {"report": {}}
    d = deep["report"]
    for _ in range(20):
        d["x"] = {}
        d = d["x"]
    assert _outcome(lambda: config.change(base, deep)) == ("invalid", "nested too deeply")


def test_change_shares_untouched_sections():
    base = config.defaults()
    new = config.change(base, {"report": {"telemetry_s": 900}})
    assert new["report"]["telemetry_s"] == 900 and base["report"]["telemetry_s"] == 300
    assert new["lamp"] is base["lamp"] and new["mqtt"] is base["mqtt"]  # not copied


def test_sections_the_command_schema_checked_are_taken_as_they_are():
    from firmware import program

    base = config.defaults()
    progs = program.PROGRAMS_SCHEMA.check({"default": [{"at": "sunset", "level": 80}, {"at": "sunrise", "level": 0}],
                                           "late": [{"at": "22:00", "level": 40}]}, "programs")
    cal = program.CALENDAR_SCHEMA.check([{"program": "late", "weekdays": [4]}], "calendar")
    patch = {"programs": progs, "calendar": cal}
    new = config.change(base, patch, checked=("programs", "calendar"))
    assert new == config.validate(config.merge(base, patch))
    assert new["programs"] is progs  # not copied again
    # The checks across sections still run: a calendar naming a program that is not there is refused.
    bad = {"calendar": program.CALENDAR_SCHEMA.check([{"program": "nosuch"}], "calendar")}
    got = _outcome(lambda: config.change(base, bad, checked=("calendar",)))
    assert got == _outcome(lambda: config.validate(config.merge(base, bad))) and got[0] == "invalid", got
