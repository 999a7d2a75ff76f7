"""Programs (steps at fixed or astro times) and the calendar that picks one per night → the scheduled lamp level.

Semantics
---------
* **A program governs one night.** The program chosen for local date D rules from local noon of D to local noon of
  D+1 (the "night of D"). Steps at "HH:MM" ≥ 12:00 and "sunset"/"civil_dusk" fall on D; "HH:MM" < 12:00 and
  "sunrise"/"civil_dawn" fall on D+1. `offset_min` (-180..180) shifts a step; a step shifted outside the night is
  clamped to its edge so it still takes effect in the night it belongs to.
* **Level inside the night.** The level at time T is the level of the latest step at or before T (steps sorted by
  time; at equal times the one written later wins). Before the first step the *last* step's level applies: the
  program is cyclic, so the Padang default is 0 from noon until sunset.
* **Calendar choice for D.** An entry with `dates` or a `from`/`to` range is a *special day* entry; one with only
  `weekdays` (or with no condition at all: every day) is a *weekly* entry. Every condition an entry gives must hold
  (weekdays AND dates AND range). Matching special-day entries win over weekly ones; within a class higher `priority`
  first, ties by order in the list. Nothing matches → the program "default". "MM-DD" dates repeat every year.
* **Fixed steps stay in the night.** When a program has an evening astro step and a morning one, fixed-time steps
  are clamped between them (see `_clamp_fixed_into_night`): a morning step never relights a lamp after sunrise.
* **Polar days and nights** (an astro event does not exist that day): fail toward light. If the sun stays down, dusk
  is placed at the start of the night and dawn at its end (the night never ends, lights stay on). If the sun stays
  up, dusk is placed at the end of the night (it never comes) and dawn at its start (it already happened).
  `sun_events` reports such events as None; which case applies is judged from the sun's elevation at local noon.

The chosen night's steps are resolved once and cached, and so is the current segment between two steps, so calling
`level_at` every minute costs two comparisons almost every time.
"""

from firmware import astro, timebase
from firmware.compat import const
from firmware.schema import NAME_CHARS, Dict, Field, Int, Invalid, Lazy, List, Map, Nullable, Str

MAX_STEPS = const(10)  # TALQ / Telensa nodes allow 10 switching steps per program
MAX_PROGRAMS = const(16)
MAX_ENTRIES = const(32)
DEFAULT_PROGRAM = "default"

_NOON = const(43200)
_DAY = const(86400)

# Step kinds, resolved once from the config strings.
K_FIXED = const(0)
K_SUNSET = const(1)
K_SUNRISE = const(2)
K_CDUSK = const(3)
K_CDAWN = const(4)
_ASTRO_KINDS = {"sunset": K_SUNSET, "sunrise": K_SUNRISE, "civil_dusk": K_CDUSK, "civil_dawn": K_CDAWN}

SUN_DEPRESSION = 0.833  # refraction + solar disc
CIVIL_DEPRESSION = 6.0


# ---------------------------------------------------------------- parsing (shared by the schema and the Schedule)


def _num(b, i, n):
    # Parse n decimal digits at b[i:i+n] (UTF-8 bytes), or -1. Done by hand: int() accepts " 7", "+7" and "٣", we
    # must not. Bytes, not the str: MicroPython interns every character taken out of a str (s[i]), for good, and
    # these texts come from commands (SECURITY.md).
    v = 0
    for k in range(i, i + n):
        c = b[k]
        if c < 0x30 or c > 0x39:
            return -1
        v = v * 10 + c - 0x30
    return v


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _month_days(y, m):
    if m == 2:
        return 29 if y is None or _leap(y) else 28  # y None: a yearly "MM-DD" date, Feb 29 allowed
    return 30 if m in (4, 6, 9, 11) else 31


def parse_hhmm(s):
    """'HH:MM' → minutes after midnight, or -1 when not a valid time."""
    if not isinstance(s, str):
        return -1
    b = s.encode()
    if len(b) != 5 or b[2] != 0x3A:  # ":"
        return -1
    h = _num(b, 0, 2)
    m = _num(b, 3, 2)
    if h < 0 or m < 0 or h > 23 or m > 59:
        return -1
    return h * 60 + m


def parse_date(s, yearly_ok):
    """'YYYY-MM-DD' → (y, m, d); 'MM-DD' (when yearly_ok) → (None, m, d); None when invalid."""
    if not isinstance(s, str):
        return None
    b = s.encode()
    if len(b) == 10 and b[4] == 0x2D and b[7] == 0x2D:  # "-"
        y = _num(b, 0, 4)
        m = _num(b, 5, 2)
        d = _num(b, 8, 2)
        if y < 2000 or y > 2099:  # t2k dates: the firmware's epoch and 32-bit small-int range
            return None
    elif yearly_ok and len(b) == 5 and b[2] == 0x2D:
        y = None
        m = _num(b, 0, 2)
        d = _num(b, 3, 2)
    else:
        return None
    if m < 1 or m > 12 or d < 1 or d > _month_days(y, m):
        return None
    return (y, m, d)


# ---------------------------------------------------------------- schema


class _At(Field):
    """A step time: an astro event name or "HH:MM"."""

    json_type = "string"

    def check(self, value, path=""):
        if isinstance(value, str) and (value in _ASTRO_KINDS or parse_hhmm(value) >= 0):
            return value
        raise Invalid(path, "must be sunset, sunrise, civil_dusk, civil_dawn or HH:MM")

    def to_json_schema(self):
        s = Field.to_json_schema(self)
        s["pattern"] = "^(sunset|sunrise|civil_dusk|civil_dawn|([01][0-9]|2[0-3]):[0-5][0-9])$"
        return s


class _Date(Field):
    json_type = "string"

    def __init__(self, yearly_ok, default=None, doc=""):
        Field.__init__(self, default, doc)
        self.yearly_ok = yearly_ok

    def check(self, value, path=""):
        if parse_date(value, self.yearly_ok) is None:
            raise Invalid(path, "must be a valid date " + ("MM-DD or YYYY-MM-DD" if self.yearly_ok else "YYYY-MM-DD"))
        return value

    def to_json_schema(self):
        # The month's length is in the pattern; only Feb 29 of a year that is not a leap year is left to the node.
        s = Field.to_json_schema(self)
        md = "(0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|[12][0-9])"
        s["pattern"] = "^(20[0-9]{2}-)%s(%s)$" % ("?" if self.yearly_ok else "", md)
        return s


class _Programs(Map):
    """The program map; a program named "default" must exist (it is what a night falls back to)."""

    def make_default(self):
        return self.check(self.default, "")  # a fresh deep copy: no config ever shares PADANG_DEFAULT's lists

    def check(self, value, path=""):
        out = Map.check(self, value, path)
        if DEFAULT_PROGRAM not in out:
            raise Invalid(path, "a program named 'default' is required")
        return out

    def to_json_schema(self):
        s = Map.to_json_schema(self)
        s["required"] = [DEFAULT_PROGRAM]
        return s


def _name():
    return Str(16, charset=NAME_CHARS, minlen=1)


def _step():
    return Dict(
        {
            "at": _At(doc="sunset, sunrise, civil_dusk, civil_dawn or local HH:MM"),
            "offset_min": Int(-180, 180, default=0, doc="minutes added to the time"),
            "level": Int(0, 100, doc="lamp level in %"),
        }
    )


PADANG_DEFAULT = {
    DEFAULT_PROGRAM: [
        {"at": "sunset", "offset_min": 0, "level": 100},
        {"at": "23:00", "offset_min": 0, "level": 60},
        {"at": "04:30", "offset_min": 0, "level": 100},
        {"at": "sunrise", "offset_min": 0, "level": 0},
    ]
}


def _programs():
    return _Programs(
        _name(),
        List(_step(), MAX_STEPS, min_len=1),
        MAX_PROGRAMS,
        default=PADANG_DEFAULT,
        doc="name → 1..10 steps; the program 'default' must exist",
    )


PROGRAMS_SCHEMA = Lazy(_programs)


def _check_entry(e, path):
    if e["from"] is not None and e["to"] is not None:
        f = parse_date(e["from"], False)
        t = parse_date(e["to"], False)
        if timebase.days_from_civil(f[0], f[1], f[2]) > timebase.days_from_civil(t[0], t[1], t[2]):
            raise Invalid(path + ".from" if path else "from", "must be <= to")


def _entry():
    return Dict(
        {
            "program": _name(),
            "priority": Int(0, 100, default=0, doc="higher wins among entries of the same class"),
            "weekdays": Nullable(List(Int(0, 6), 7, min_len=1), doc="0 = Monday"),
            "dates": Nullable(List(_Date(True), 32, min_len=1), doc="MM-DD (every year) or YYYY-MM-DD"),
            "from": Nullable(_Date(False), doc="first date of a range, YYYY-MM-DD"),
            "to": Nullable(_Date(False), doc="last date of a range, YYYY-MM-DD"),
        },
        check=_check_entry,
    )


def _calendar():
    return List(_entry(), MAX_ENTRIES, default=[], doc="which program rules each night")


CALENDAR_SCHEMA = Lazy(_calendar)


def check_references(cfg):
    """Config-level cross-check: every calendar entry names an existing program."""
    programs = cfg["programs"]
    for i, e in enumerate(cfg["calendar"]):
        if e["program"] not in programs:
            raise Invalid("calendar[%d].program" % i, "unknown program '%s'" % e["program"])


# ---------------------------------------------------------------- schedule


def _round(x):
    # Nearest int for floats of either sign (int() truncates toward zero).
    i = int(x)
    if i > x:
        i -= 1
    return i + 1 if x - i >= 0.5 else i


def _is_special(e):
    return e["dates"] is not None or e["from"] is not None or e["to"] is not None


def _clamp_fixed_into_night(out, steps):
    """Keep fixed-time steps inside the astro night of their program, in place.

    A program written for one place and season can meet a night it was not written for: in Oslo in June the sun rises
    at 03:55, so the Padang default's "04:30 → 100 %" would relight the lamp after sunrise and leave it burning all
    day. When a program has both an evening astro step (sunset/civil dusk) and a morning one (sunrise/civil dawn),
    every fixed step is clamped between the earliest evening one and the latest morning one. A step clamped onto the
    morning edge sorts before the astro step there (which then wins: "04:30 → 100" clamped onto "sunrise → 0" leaves
    the lamp off); one clamped onto the evening edge sorts after it (a dimming step still dims from dusk on).
    """
    lo = hi = None
    for i, (t, n, level) in enumerate(out):
        kind = steps[n][0]
        if kind == K_SUNSET or kind == K_CDUSK:
            lo = t if lo is None or t < lo else lo
        elif kind == K_SUNRISE or kind == K_CDAWN:
            hi = t if hi is None or t > hi else hi
    if lo is None or hi is None or lo > hi:
        return
    for i in range(len(out)):
        t, n, level = out[i]
        if steps[n][0] == K_FIXED:
            if t < lo:
                out[i] = (lo, n + MAX_STEPS, level)
            elif t > hi:
                out[i] = (hi, n - MAX_STEPS, level)


class Schedule:
    """Scheduled level from programs + calendar + site. Pure: time is always an argument."""

    def __init__(self, programs_cfg, calendar_cfg, site_cfg):
        self.site = site_cfg
        self.programs = {}
        for name, steps in programs_cfg.items():
            out = []
            for s in steps:
                at = s["at"]
                kind = _ASTRO_KINDS.get(at, K_FIXED)
                out.append((kind, parse_hhmm(at) if kind == K_FIXED else 0, s["offset_min"], s["level"]))
            self.programs[name] = out
        # Calendar, compiled and pre-sorted: special before weekly, higher priority first, then list order.
        entries = []
        for i, e in enumerate(calendar_cfg):
            special = _is_special(e)
            dates = None
            if e["dates"] is not None:
                dates = [parse_date(d, True) for d in e["dates"]]
            lo = hi = None
            if e["from"] is not None:
                y, m, d = parse_date(e["from"], False)
                lo = timebase.days_from_civil(y, m, d)
            if e["to"] is not None:
                y, m, d = parse_date(e["to"], False)
                hi = timebase.days_from_civil(y, m, d)
            wd = None if e["weekdays"] is None else tuple(e["weekdays"])
            key = (0 if special else 1, -e["priority"], i)
            entries.append((key, e["program"], special, wd, dates, lo, hi))
        entries.sort(key=lambda x: x[0])
        self._entries = [x[1:] for x in entries]
        # Cache: the resolved night, and the segment of it last answered.
        self._night = None  # local date (days since 2000-01-01) of the cached night
        self._start = 0  # t2k of that night's noon start
        self._end = 0
        self._steps = None  # [(t2k, level)] sorted
        self._sun = None
        self._source = ""
        self._seg_lo = 1  # empty segment: lo > hi
        self._seg_hi = 0
        self._seg_result = None

    # -- calendar

    def program_for(self, days_local):
        """(program name, is_special) chosen for the night of local date `days_local`."""
        y, m, d = timebase.civil_from_days(days_local)
        wday = timebase.weekday(days_local)
        for prog, special, wd, dates, lo, hi in self._entries:
            if wd is not None and wday not in wd:
                continue
            if lo is not None and days_local < lo:
                continue
            if hi is not None and days_local > hi:
                continue
            if dates is not None:
                hit = False
                for dy, dm, dd in dates:
                    if dm == m and dd == d and (dy is None or dy == y):
                        hit = True
                        break
                if not hit:
                    continue
            if prog in self.programs:  # check_references guarantees it; a stale name falls through, never crashes
                return prog, special
        return DEFAULT_PROGRAM, False

    # -- time helpers

    def night_of(self, t2k):
        """Local date (days since 2000-01-01) whose night contains t2k: before local noon it is yesterday's."""
        days, sod = timebase.split(t2k + timebase.local_offset_min(t2k, self.site) * 60)
        return days - 1 if sod < _NOON else days

    def _sun_day(self, days, depression):
        # (rise_t2k or None, set_t2k or None, always_up) for local date `days`.
        site = self.site
        y, m, d = timebase.civil_from_days(days)
        noon = timebase.t2k_from_local(days, 720, site)
        off = timebase.local_offset_min(noon, site)
        r = astro.sun_times(y, m, d, site["lat"], site["lon"], off, depression)
        if r is None:
            # Polar day or night: the sun's elevation at local noon tells which.
            return None, None, astro.sun_elevation(noon, site["lat"], site["lon"]) > -depression
        # Minutes after the local midnight of the offset passed (not t2k_from_local: on a DST day that would read
        # the minutes in another offset than astro used).
        base = days * _DAY - off * 60
        return base + _round(r[0] * 60.0), base + _round(r[1] * 60.0), False

    def sun_events(self, days_local):
        """(sunset, sunrise next morning, civil dusk, civil dawn next morning) of the night, each t2k or None."""
        if days_local == self._night:
            return self._sun
        return self._sun_events(days_local)[0]

    def sun_events_at(self, t2k):
        """sun_events of the night that contains t2k (cheap: the cached night when t2k is inside it)."""
        if self._night is None or t2k < self._start or t2k >= self._end:
            self.level_at(t2k)
        return self._sun

    def _sun_events(self, days_local):
        _, sset, up_d = self._sun_day(days_local, SUN_DEPRESSION)
        srise, _, up_n = self._sun_day(days_local + 1, SUN_DEPRESSION)
        _, cdusk, cup_d = self._sun_day(days_local, CIVIL_DEPRESSION)
        cdawn, _, cup_n = self._sun_day(days_local + 1, CIVIL_DEPRESSION)
        return (sset, srise, cdusk, cdawn), (up_d, up_n, cup_d, cup_n)

    # -- resolution

    def _resolve(self, days_local):
        # → (start, end, [(t2k, level)] sorted, sun tuple, source)
        site = self.site
        start = timebase.t2k_from_local(days_local, 720, site)
        end = timebase.t2k_from_local(days_local + 1, 720, site)
        sun, up = self._sun_events(days_local)
        name, special = self.program_for(days_local)
        out = []
        for n, (kind, minutes, offset, level) in enumerate(self.programs[name]):
            if kind == K_FIXED:
                day = days_local if minutes >= 720 else days_local + 1
                t = timebase.t2k_from_local(day, minutes, site)
            else:
                i = kind - 1  # K_SUNSET..K_CDAWN map to sun[0..3]
                t = sun[i]
                if t is None:
                    dusk = kind == K_SUNSET or kind == K_CDUSK
                    # always up: dusk never comes (end), dawn already happened (start); always down: the reverse.
                    t = end if dusk == up[i] else start
                    offset = 0
            t += offset * 60
            if t < start:
                t = start
            elif t > end:
                t = end
            out.append((t, n, level))
        _clamp_fixed_into_night(out, self.programs[name])
        # The step index breaks ties (MicroPython's sort is not stable): at equal times the later-written step wins.
        out.sort()
        steps = [(t, level) for t, _, level in out]
        return start, end, steps, sun, ("special:" if special else "program:") + name

    def events(self, days_local):
        """That night's sorted [(t2k, level)] (a step at the night's end never takes effect within it)."""
        if days_local == self._night:
            return list(self._steps)
        return self._resolve(days_local)[2]

    def level_at(self, t2k):
        """(level, source) scheduled at t2k; source is "program:<name>" or "special:<name>"."""
        if self._seg_lo <= t2k < self._seg_hi:
            return self._seg_result  # the same tuple every time: no allocation on the minute path
        # Kept out of this function on purpose: MicroPython puts a call's frame on the heap when the function has
        # many locals/stack slots, and this fast path runs every minute (measured: 8 µs vs 0.2 µs per call).
        return self._seek(t2k)

    def _seek(self, t2k):
        if self._night is None or t2k < self._start or t2k >= self._end:
            night = self.night_of(t2k)
            self._start, self._end, self._steps, self._sun, self._source = self._resolve(night)
            self._night = night
        steps = self._steps
        # Latest step at or before t2k; before the first one, the last step's level (the program is cyclic).
        lo = self._start
        hi = self._end
        level = steps[-1][1]
        for t, lv in steps:
            if t <= t2k:
                level = lv
                lo = t
            else:
                hi = t
                break
        self._seg_lo = lo
        self._seg_hi = hi
        self._seg_result = (level, self._source)
        return self._seg_result
