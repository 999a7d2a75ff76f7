"""A tiny declarative validator: config and commands are described once, checked on the node and in the host tools.

Each field type checks one JSON value and returns it normalised (defaults filled in). A bad value raises
`Invalid` whose text names the field and the reason, e.g. "photocell.on_lux: must be < off_lux". Validation
never changes its input; callers apply the returned copy only when the whole document passed, so a bad document
leaves the old state in force.

`to_json_schema()` on every field emits the same rules as JSON Schema, so the published contract (docs/) is
generated from the code that enforces it and cannot drift from it.
"""

from firmware.compat import is_finite

REQUIRED = object()  # marker: no default, the field must be given


class Invalid(ValueError):
    def __init__(self, path, reason):
        super().__init__(path + ": " + reason if path else reason)
        self.path = path
        self.reason = reason


def _join(path, key):
    return path + "." + key if path else key


class Field:
    """Base of every field type. `check(value, path)` → normalised value or raises Invalid."""

    json_type = None

    def __init__(self, default=REQUIRED, doc=""):
        self.default = default
        self.doc = doc

    def has_default(self):
        return self.default is not REQUIRED

    def make_default(self):
        # Lists and dicts are copied so two documents never share a mutable default.
        d = self.default
        if isinstance(d, list):
            return [x for x in d]
        if isinstance(d, dict):
            return dict(d)
        return d

    def check(self, value, path=""):
        raise NotImplementedError

    def to_json_schema(self):
        s = {"type": self.json_type} if self.json_type else {}
        if self.doc:
            s["description"] = self.doc
        if self.has_default() and not isinstance(self.default, (list, dict)):
            s["default"] = self.default
        return s


class Bool(Field):
    json_type = "boolean"

    def check(self, value, path=""):
        if value is True or value is False:
            return value
        raise Invalid(path, "must be true or false")


class _Range(Field):
    """A number between lo and hi (inclusive); Int and Float differ only in what they accept as a number."""

    def __init__(self, lo, hi, default=REQUIRED, doc=""):
        Field.__init__(self, default, doc)
        self.lo = lo
        self.hi = hi

    def check(self, value, path=""):
        value = self.number(value, path)
        if value < self.lo or value > self.hi:
            raise Invalid(path, self.range_text)
        return value

    def to_json_schema(self):
        s = Field.to_json_schema(self)
        s["minimum"] = self.lo
        s["maximum"] = self.hi
        return s


class Int(_Range):
    json_type = "integer"

    @property
    def range_text(self):
        return "must be in %d..%d" % (self.lo, self.hi)

    def number(self, value, path):
        # bool is an int subclass in Python; JSON true is not a number. A whole float (2.0) is an int in JSON.
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and is_finite(value) and value == int(value):
                return int(value)
            raise Invalid(path, "must be an integer")
        return value


class Float(_Range):
    json_type = "number"

    @property
    def range_text(self):
        return "must be in %s..%s" % (self.lo, self.hi)

    def number(self, value, path):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(path, "must be a number")
        try:
            value = float(value)
        except OverflowError:  # CPython: an integer of hundreds of digits (MicroPython gives inf instead)
            raise Invalid(path, "must be a finite number")
        if not is_finite(value):
            raise Invalid(path, "must be a finite number")
        return value


class Str(Field):
    """A string of at most `maxlen` characters; `charset`, when given, lists every allowed character."""

    json_type = "string"

    def __init__(self, maxlen, default=REQUIRED, charset=None, minlen=0, doc=""):
        Field.__init__(self, default, doc)
        self.maxlen = maxlen
        self.minlen = minlen
        self.charset = charset

    def check(self, value, path=""):
        if not isinstance(value, str):
            raise Invalid(path, "must be a string")
        if len(value) > self.maxlen or len(value) < self.minlen:
            raise Invalid(path, "length must be %d..%d" % (self.minlen, self.maxlen))
        # Checked without iterating: MicroPython interns every character a str iterator yields, and interned strings
        # are never freed, so refused input with ever new characters would fill the heap one command at a time.
        # strip() leaves something exactly when a character is outside the set; lstrip() finds the first one.
        if self.charset is not None and value.strip(self.charset):
            raise Invalid(path, "character %r not allowed" % value.lstrip(self.charset)[:1])
        return value

    def to_json_schema(self):
        s = Field.to_json_schema(self)
        s["maxLength"] = self.maxlen
        if self.minlen:
            s["minLength"] = self.minlen
        if self.charset is not None:
            s["pattern"] = "^[" + "".join("\\" + c if c in "-]\\^" else c for c in self.charset) + "]*$"
        return s


class Enum(Field):
    def __init__(self, choices, default=REQUIRED, doc=""):
        Field.__init__(self, default, doc)
        self.choices = tuple(choices)

    def check(self, value, path=""):
        if isinstance(value, str) and value in self.choices:
            return value
        raise Invalid(path, "must be one of " + ", ".join(self.choices))

    def to_json_schema(self):
        s = Field.to_json_schema(self)
        s["enum"] = list(self.choices)
        return s


class Nullable(Field):
    """`inner` or null."""

    def __init__(self, inner, default=None, doc=""):
        Field.__init__(self, default, doc or inner.doc)
        self.inner = inner

    def check(self, value, path=""):
        return None if value is None else self.inner.check(value, path)

    def to_json_schema(self):
        s = {"anyOf": [self.inner.to_json_schema(), {"type": "null"}]}
        if self.doc:
            s["description"] = self.doc
        return s


class List(Field):
    json_type = "array"

    def __init__(self, item, max_len, default=REQUIRED, min_len=0, check=None, doc=""):
        Field.__init__(self, default, doc)
        self.item = item
        self.max_len = max_len
        self.min_len = min_len
        self.extra = check

    def check(self, value, path=""):
        if not isinstance(value, list):
            raise Invalid(path, "must be a list")
        if len(value) > self.max_len or len(value) < self.min_len:
            raise Invalid(path, "must have %d..%d items" % (self.min_len, self.max_len))
        out = [self.item.check(v, "%s[%d]" % (path, i)) for i, v in enumerate(value)]
        if self.extra:
            self.extra(out, path)
        return out

    def to_json_schema(self):
        s = Field.to_json_schema(self)
        s["items"] = self.item.to_json_schema()
        s["maxItems"] = self.max_len
        if self.min_len:
            s["minItems"] = self.min_len
        return s


class Dict(Field):
    """An object with known keys. Unknown keys are refused (a typo must not be silently ignored).

    `check`, when given, is called as check(normalised_dict, path) for cross-field rules and raises Invalid.
    A Dict whose every field has a default has itself a default: the dict of those defaults.
    """

    json_type = "object"

    def __init__(self, fields, check=None, doc="", default=REQUIRED):
        if default is REQUIRED and all(f.has_default() for f in fields.values()):
            default = {}
        Field.__init__(self, default, doc)
        self.fields = fields
        self.extra = check

    def make_default(self):
        return self.check(self.default, "")

    def check(self, value, path=""):
        if not isinstance(value, dict):
            raise Invalid(path, "must be an object")
        for key in value:
            if key not in self.fields:
                raise Invalid(_join(path, str(key)), "unknown field")
        out = {}
        for key, field in self.fields.items():
            sub = _join(path, key)
            if key in value:
                out[key] = field.check(value[key], sub)
            elif field.has_default():
                out[key] = field.make_default()
            else:
                raise Invalid(sub, "is required")
        if self.extra:
            self.extra(out, path)
        return out

    def to_json_schema(self):
        s = Field.to_json_schema(self)
        s["properties"] = {k: f.to_json_schema() for k, f in self.fields.items()}
        s["additionalProperties"] = False
        req = [k for k, f in self.fields.items() if not f.has_default()]
        if req:
            s["required"] = req
        return s


class Map(Field):
    """An object whose keys are names chosen by the user (e.g. program names), each value of one field type."""

    json_type = "object"

    def __init__(self, key, value, max_len, default=REQUIRED, doc=""):
        Field.__init__(self, default, doc)
        self.key = key
        self.value = value
        self.max_len = max_len

    def check(self, value, path=""):
        if not isinstance(value, dict):
            raise Invalid(path, "must be an object")
        if len(value) > self.max_len:
            raise Invalid(path, "at most %d entries" % self.max_len)
        out = {}
        for k, v in value.items():
            self.key.check(k, _join(path, "<key>"))
            out[k] = self.value.check(v, _join(path, k))
        return out

    def to_json_schema(self):
        s = Field.to_json_schema(self)
        s["additionalProperties"] = self.value.to_json_schema()
        s["maxProperties"] = self.max_len
        s["propertyNames"] = self.key.to_json_schema()
        return s


class OneOf(Field):
    """A tagged union: `value[tag]` picks which Dict checks the object (used for commands)."""

    json_type = "object"

    def __init__(self, tag, variants, doc=""):
        Field.__init__(self, REQUIRED, doc)
        self.tag = tag
        self.variants = variants

    def check(self, value, path=""):
        if not isinstance(value, dict):
            raise Invalid(path, "must be an object")
        kind = value.get(self.tag)
        if not isinstance(kind, str) or kind not in self.variants:
            raise Invalid(_join(path, self.tag), "must be one of " + ", ".join(sorted(self.variants)))
        return self.variants[kind].check(value, path)

    def to_json_schema(self):
        return {"oneOf": [v.to_json_schema() for _, v in sorted(self.variants.items())]}


class Lazy(Field):
    """A schema that exists only while it checks a document: `build()` makes it, the check uses it, the GC frees it.

    Schema objects cost RAM for as long as they exist: about 120 bytes per field on the 64-bit unix port, and the
    node's schemas, built once at import, held about 40 KB there. They are needed only when a config or a command
    arrives, so every section and every command is declared as `Lazy(build)`: the node holds one small object per
    schema instead of the whole tree, and a config is checked one section at a time (only that section's fields
    exist at once).
    `build` must return an equal schema on every call. Built once here to learn whether it has a default.
    """

    def __init__(self, build):
        schema = build()
        Field.__init__(self, schema.default)
        self.json_type = schema.json_type
        self.build = build

    def make_default(self):
        return self.build().make_default()

    def check(self, value, path=""):
        return self.build().check(value, path)

    def to_json_schema(self):
        return self.build().to_json_schema()


def built(field):
    """The schema itself, whether declared directly or as Lazy (host tools and tests that inspect the fields)."""
    return field.build() if isinstance(field, Lazy) else field


# Character sets used across the API. Names that become MQTT topic segments must never carry '/', '+', '#'.
NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"


def depth_ok(value, limit):
    """True when a decoded JSON value nests objects/arrays no deeper than `limit` (checked before validation, so a
    hostile document cannot exhaust the stack of a recursive walk)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            children = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        if d > limit:
            return False
        for x in children:
            stack.append((x, d + 1))
    return True
