# runtimes: cpython micropython
"""The declarative validator: types, ranges, defaults, unknown fields, cross-field checks, error paths."""

from mini import raises

from firmware.schema import (NAME_CHARS, Bool, Dict, Enum, Float, Int, Invalid, Lazy, List, Map, Nullable, OneOf, Str,
                             built, depth_ok)

LAMP = Dict({
    "on_lux": Int(0, 1000, 20),
    "off_lux": Int(0, 1000, 50),
    "name": Str(8, "x", charset=NAME_CHARS),
}, check=lambda v, p: _order(v, p))


def _order(v, path):
    if v["on_lux"] >= v["off_lux"]:
        raise Invalid(path + ".on_lux", "must be < off_lux")


DOC = Dict({"lamp": LAMP, "levels": List(Int(0, 100), 3, [1]), "mode": Enum(("a", "b"), "a"),
            "k": Nullable(Float(0.0, 1.0)), "flag": Bool(False)})


def test_defaults_fill_everything():
    d = DOC.check({})
    assert d == {"lamp": {"on_lux": 20, "off_lux": 50, "name": "x"}, "levels": [1], "mode": "a", "k": None,
                 "flag": False}


def test_defaults_are_not_shared():
    a = DOC.check({})
    a["levels"].append(5)
    assert DOC.check({})["levels"] == [1]


def test_error_names_the_field():
    e = raises(Invalid, DOC.check, {"lamp": {"on_lux": 60}})
    assert str(e) == "lamp.on_lux: must be < off_lux"
    e = raises(Invalid, DOC.check, {"levels": [1, 101]})
    assert str(e) == "levels[1]: must be in 0..100"


def test_unknown_field_refused():
    e = raises(Invalid, DOC.check, {"lamp": {"on_lx": 3}})
    assert e.path == "lamp.on_lx" and e.reason == "unknown field"


def test_types_are_strict():
    raises(Invalid, DOC.check, {"flag": 1})
    raises(Invalid, DOC.check, {"levels": [True]})
    raises(Invalid, DOC.check, {"levels": "1"})
    raises(Invalid, DOC.check, {"k": float("nan")})
    raises(Invalid, DOC.check, {"k": float("inf")})
    raises(Invalid, DOC.check, {"mode": "c"})
    raises(Invalid, DOC.check, {"lamp": {"name": "a/b"}})
    raises(Invalid, DOC.check, {"lamp": {"name": "toolongname"}})
    raises(Invalid, DOC.check, [])
    assert DOC.check({"levels": [2.0]})["levels"] == [2]  # a whole float is an int in JSON


def test_input_not_modified_on_error():
    doc = {"lamp": {"on_lux": 10}, "levels": [1, 2, 3, 4]}
    raises(Invalid, DOC.check, doc)
    assert doc == {"lamp": {"on_lux": 10}, "levels": [1, 2, 3, 4]}


def test_map_and_oneof():
    m = Map(Str(4, minlen=1, charset=NAME_CHARS), Int(0, 9), 2)
    assert m.check({"a": 1}) == {"a": 1}
    raises(Invalid, m.check, {"a": 1, "b": 2, "c": 3})
    raises(Invalid, m.check, {"A": 1})
    u = OneOf("cmd", {"x": Dict({"cmd": Enum(("x",)), "v": Int(0, 1)}), "y": Dict({"cmd": Enum(("y",))})})
    assert u.check({"cmd": "x", "v": 1}) == {"cmd": "x", "v": 1}
    e = raises(Invalid, u.check, {"cmd": "z"})
    assert e.path == "cmd"


def test_depth_limit():
    deep = []
    for _ in range(50):
        deep = [deep]
    assert not depth_ok(deep, 10)
    assert depth_ok({"a": [1, {"b": 2}]}, 3)


def test_huge_integer_for_a_float_field_is_invalid_not_a_crash():
    e = raises(Invalid, Float(0.0, 1.0).check, 10 ** 400, "x")
    assert e.path == "x"


def test_lazy_schema_is_built_for_each_check_and_checks_like_the_schema():
    builds = []

    def build():
        builds.append(1)
        return Dict({"on_lux": Int(0, 1000, 20), "off_lux": Int(0, 1000, 50)}, check=_order)

    section = Lazy(build)
    assert len(builds) == 1  # once, to learn whether it has a default
    assert section.has_default() and section.json_type == "object"
    doc = Dict({"lamp": section})
    assert doc.check({}) == {"lamp": {"on_lux": 20, "off_lux": 50}}
    assert doc.check({"lamp": {"on_lux": 5}}) == {"lamp": {"on_lux": 5, "off_lux": 50}}
    assert str(raises(Invalid, doc.check, {"lamp": {"on_lux": 60}})) == "lamp.on_lux: must be < off_lux"
    assert str(raises(Invalid, doc.check, {"lamp": {"colour": 1}})) == "lamp.colour: unknown field"
    n = len(builds)
    section.check({})
    assert len(builds) == n + 1  # nothing kept between checks: the GC takes each built schema back
    assert section.to_json_schema() == build().to_json_schema()
    assert isinstance(built(section), Dict) and built(LAMP) is LAMP


def test_lazy_without_default_is_required():
    doc = Dict({"need": Lazy(lambda: Int(0, 9))})
    assert str(raises(Invalid, doc.check, {})) == "need: is required"
    assert doc.check({"need": 3}) == {"need": 3}


def test_refused_characters_do_not_pile_up_in_the_heap():
    # Each string brings a character never seen before. MicroPython interns every character a str iterator yields,
    # for good: checking character by character, 3000 such refusals took a 512 KB heap to a MemoryError (measured).
    # On CPython only the messages are checked; the heap part needs MicroPython's gc.mem_alloc.
    import gc
    import sys

    field = Str(40, charset=NAME_CHARS)
    assert str(raises(Invalid, field.check, "ab-c d", "node.id")) == "node.id: character ' ' not allowed"
    assert str(raises(Invalid, field.check, "Abc", "x")) == "x: character 'A' not allowed"
    gc.collect()
    before = gc.mem_alloc() if sys.implementation.name == "micropython" else 0
    for i in range(3000):
        # U+1000.. built from UTF-8 bytes: chr() would intern the character itself.
        odd = bytes([0xE1, 0x80 + ((i >> 6) & 0x3F), 0x80 + (i & 0x3F)]).decode()
        msg = str(raises(Invalid, field.check, "abc" + odd + "d", "id"))
        assert msg.startswith("id: character ") and msg.endswith(" not allowed")
    if sys.implementation.name == "micropython":
        gc.collect()
        assert gc.mem_alloc() - before < 4096, gc.mem_alloc() - before
