"""Signed commands: HMAC-SHA256 over a canonical form of a command, bound to its target, with expiry and replay checks.

What is signed (the host signer in tools/signing.py uses this very module, so both sides make the same bytes):

    <target> "\\n" <canonical JSON of the command without "sig">

- target: "node:<id>" for a node's own topic, "group:<name>" or "all" for group and broadcast topics. A command
  signed for one node does not verify on another, nor on a group, even when the key is shared by mistake.
- canonical JSON: objects with keys sorted, no spaces, strings ASCII-only (every character outside 0x20..0x7e as
  a lower-case \\uXXXX escape, surrogate pairs above 0xFFFF), integers as digits, floats as "%.6g", true/false/null.
  MicroPython's json.dumps has no sort_keys and formats floats differently, hence our own writer. Floats get six
  significant digits because an ESP32 parses JSON numbers into 32-bit floats: the host signer rounds every float to
  six digits before it signs and sends (tools/signing.py), and any 6-digit decimal reads back, as a float32 or a
  double, to the same "%.6g". A float that is not finite cannot be signed.
- key: a string of 32 or more hex digits is used as the bytes it spells; any other string of 16 or more characters
  as its UTF-8 bytes. node_key signs commands on the node's own topic, group_key those on group/broadcast topics.

Checks, in order (the first failure is the reply text; none of them ever contains a key):
"unsigned command refused", "signed commands need ts", "not addressed to this node" (only when the caller names
an exact target this node does not answer to; the node never does, it subscribes to its own targets only: a
command signed for another node or group fails as "bad signature", the target being signed, not sent),
"no key for node commands" / "no key for group commands", "bad signature",
"no valid time: only a signed time command is accepted", "expired" (ts older than max_age_s or more than 120 s
ahead), "signed before the replay window", "replayed" (an id accepted within the window).

Replay protection, with no hole and without a flash write per command (SECURITY.md, "Replays"):
- Every accepted id stays remembered until its signed ts is older than max_age_s (its replay would be refused as
  expired anyway). The memory is a preallocated table of REPLAY_IDS slots (a 6-byte digest of the id and ts);
  when every slot holds a command still inside max_age_s, the oldest is dropped and the window's floor rises past
  its ts. Invariant: every command accepted since boot is in the table or has ts below the floor.
- After a restart the table is empty. The floor then starts at the highest ts saved in state.json ("sig_floor":
  every state save carries it for free, and a restart the node chooses always saves first) and at the node's
  boot instant: a command accepted before the boot was made no later than its acceptance (ts <= node time then).
  What that leaves: a command dated ahead of the node's clock (up to 120 s), whose ts can lie after the next boot.
  Its ts is written before it acts (`pending_floor`; the node saves the state file, within its budget). With
  synchronised clocks that is rare; a node whose clock runs behind its operators' spends a write per such command.
  Times are whole seconds, so the boot instant is taken 2 s early: a command accepted less than 2 s before a reset
  the node did not choose (a crash, a power cut) and not saved since could be replayed once after it.
- Without valid time no age and no boot instant can be judged, so only `time` is accepted (how an operator gives a
  clock to a node without NTP); its ts is written like a command dated ahead.

The caller says where a command came from: the exact target of its topic (`target_for_topic`), or just
False/True for "own topic"/"group or broadcast topic", in which case every target the node answers to is tried.
"""

import binascii
import hashlib

from firmware.compat import const

_BLOCK = const(64)  # SHA-256 block size: RFC 2104's B
_FUTURE_SLACK_S = const(120)  # same slack as commands.py: a sender's clock may run a little ahead of the node's
_T2K_UNIX = const(946684800)  # Unix seconds at 2000-01-01 (ts is Unix time; the node's clock counts from 2000)
REPLAY_IDS = const(64)  # commands remembered at once inside max_age_s (64 per 5 min at the default max_age_s)
_DIGEST = const(6)  # bytes of SHA-256(id) kept per remembered command: 2^48 makes a false "replayed" negligible
_CHUNK = const(128)  # canonical text is hashed in pieces of about this many characters
_HEX = "0123456789abcdefABCDEF"
# Printable ASCII but '"' and '\\': what canonical strings carry unescaped.
_PLAIN = " !#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~"


def hmac_sha256(key, msg):
    """RFC 2104 HMAC with SHA-256 (MicroPython has hashlib.sha256 but no hmac module). key: bytes; msg: bytes, or
    an iterable of bytes pieces hashed as they come (no joined copy in RAM)."""
    mac = _Mac(key)
    inner = mac.start()
    if isinstance(msg, (bytes, bytearray)):
        inner.update(msg)
    else:
        for piece in msg:
            inner.update(piece)
    return mac.finish(inner)


class _Mac:
    """An HMAC key prepared once: the padded inner and outer keys are kept, not the key text."""

    def __init__(self, key):
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key + bytes(_BLOCK - len(key))
        self._ipad = bytes(b ^ 0x36 for b in key)
        self._opad = bytes(b ^ 0x5C for b in key)

    def start(self):
        """The inner hash, keyed: feed the message to its update()."""
        return hashlib.sha256(self._ipad)

    def finish(self, inner):
        outer = hashlib.sha256(self._opad)
        outer.update(inner.digest())
        return outer.digest()


def key_bytes(key):
    """Config key text → bytes, or None when it is not a usable key (too short, not text)."""
    if not isinstance(key, str):
        return None
    # strip(), not a loop over the characters: MicroPython interns every character a str iterator yields.
    if len(key) >= 32 and len(key) % 2 == 0 and not key.strip(_HEX):
        return binascii.unhexlify(key)
    if len(key) >= 16:
        return key.encode("utf-8")
    return None


# --- canonical form ------------------------------------------------------------------------------------------------


class _Writer:
    """Gathers canonical text in small pieces and hands it on as bytes (to a hash's update, or a list's append).

    Streaming keeps the memory of signing a large command (a full program set) to a few hundred bytes: a list of
    every piece, as a first version had, grew to 32 KB for a 6 KB command."""

    def __init__(self, sink):
        self.sink = sink
        self.parts = []
        self.n = 0

    def write(self, text):
        self.parts.append(text)
        self.n += len(text)
        if self.n >= _CHUNK or len(self.parts) >= 32:
            self.flush()

    def flush(self):
        if self.parts:
            self.sink("".join(self.parts).encode())
            self.parts = []
            self.n = 0


def _string(s, w):
    # Walks the UTF-8 bytes, not the characters: MicroPython interns every character taken out of a str (s[i] or
    # an iterator), for good, and the strings here come from whoever published the command (SECURITY.md).
    w.write('"')
    if not s.strip(_PLAIN):  # the usual case: nothing to escape, nothing to copy
        w.write(s)
        w.write('"')
        return
    b = s.encode("utf-8", "surrogatepass")  # CPython: a lone surrogate (from a JSON escape) is still escaped as one
    start = 0
    i = 0
    n = len(b)
    while i < n:
        o = b[i]
        if 0x20 <= o <= 0x7E and o != 0x22 and o != 0x5C:
            i += 1
            continue
        if start < i:
            w.write(b[start:i].decode())
        if o == 0x22:
            w.write('\\"')
            i += 1
        elif o == 0x5C:
            w.write("\\\\")
            i += 1
        else:
            i = _escape(b, i, w)
        start = i
    if start < n:
        w.write(b[start:].decode() if start else s)
    w.write('"')


def _escape(b, i, w):
    """Writes the character whose UTF-8 bytes start at b[i] as \\uXXXX (a surrogate pair above 0xFFFF, as JSON
    spells it); returns the index after it. The str came from decoding valid UTF-8, so the sequence is whole."""
    o = b[i]
    if o < 0x80:
        k = 1
    elif o >= 0xF0:
        k = 4
        o &= 0x07
    elif o >= 0xE0:
        k = 3
        o &= 0x0F
    else:
        k = 2
        o &= 0x1F
    for j in range(i + 1, i + k):
        o = (o << 6) | (b[j] & 0x3F)
    if o > 0xFFFF:
        o -= 0x10000
        w.write("\\u%04x\\u%04x" % (0xD800 + (o >> 10), 0xDC00 + (o & 0x3FF)))
    else:
        w.write("\\u%04x" % o)
    return i + k


def _value(v, w):
    if v is None:
        w.write("null")
    elif v is True:
        w.write("true")
    elif v is False:
        w.write("false")
    elif isinstance(v, int):
        w.write(str(v))
    elif isinstance(v, float):
        if v - v != 0.0:  # inf and nan: no JSON spelling both runtimes agree on
            raise ValueError("non-finite number")
        w.write("%.6g" % v)
    elif isinstance(v, str):
        _string(v, w)
    elif isinstance(v, dict):
        _object(v, w, None)
    elif isinstance(v, (list, tuple)):
        w.write("[")
        first = True
        for x in v:
            if not first:
                w.write(",")
            first = False
            _value(x, w)
        w.write("]")
    else:
        raise ValueError("cannot sign a %s" % type(v).__name__)


def _object(d, w, skip):
    keys = []
    for k in d:
        if not isinstance(k, str):
            raise ValueError("object keys must be strings")
        if k != skip:
            keys.append(k)
    keys.sort()  # UTF-8 byte order (MicroPython) equals code point order (CPython)
    w.write("{")
    first = True
    for k in keys:
        if not first:
            w.write(",")
        first = False
        _string(k, w)
        w.write(":")
        _value(d[k], w)
    w.write("}")


def _feed(doc, sink):
    if not isinstance(doc, dict):
        raise ValueError("a command is an object")
    w = _Writer(sink)
    _object(doc, w, "sig")
    w.flush()


def canonical(doc):
    """The command `doc` (a dict) without its "sig", as canonical ASCII bytes. ValueError for unsignable values."""
    chunks = []
    _feed(doc, chunks.append)
    return b"".join(chunks)


def signed_bytes(doc, target):
    """Exactly the bytes the HMAC covers (for tests and for reading; signing streams them instead)."""
    return target.encode() + b"\n" + canonical(doc)


def _digest(mac, doc, target):
    inner = mac.start()
    inner.update(target.encode() + b"\n")
    _feed(doc, inner.update)
    return mac.finish(inner)


def sign_hex(doc, key, target):
    """The "sig" value for `doc` sent to `target` ("node:<id>", "group:<name>" or "all") with the key text `key`."""
    kb = key_bytes(key)
    if kb is None:
        raise ValueError("key must be >= 32 hex digits or >= 16 characters")
    return binascii.hexlify(_digest(_Mac(kb), doc, target)).decode()


def target_for_topic(topic, prefix):
    """Topic (str or bytes) → the target a command on it must be signed for, or None when it is no command topic."""
    if isinstance(topic, bytes):
        topic = topic.decode()
    head = prefix + "/"
    if not topic.startswith(head) or not topic.endswith("/cmd"):
        return None
    parts = topic[len(head):-4].split("/")
    if parts == ["all"]:
        return "all"
    if len(parts) == 2 and parts[0] == "group" and parts[1]:
        return "group:" + parts[1]
    if len(parts) == 1 and parts[0] and parts[0] != "group":
        return "node:" + parts[0]
    return None


def _same(a, b):
    # Constant-time comparison: the time taken must not tell an attacker how many leading bytes were right.
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


class Verifier:
    """Checks signed commands for one node. `verify()` → None when the command may run, else the refusal text.

    node_key / group_key: key text from config (None: commands on that path are refused). node_id and groups say
    which targets this node answers to; the node's own topic verifies against "node:<node_id>" with node_key, a
    group or broadcast topic against "all" or "group:<g>" for each of its groups, with group_key.
    `saved_floor`: the floor written to flash by an earlier boot (state.json "sig_floor"), or None.
    """

    def __init__(self, node_key, group_key, max_age_s, node_id=None, groups=(), saved_floor=None):
        kb = key_bytes(node_key)
        self._node_mac = None if kb is None else _Mac(kb)
        kb = key_bytes(group_key)
        self._group_mac = None if kb is None else _Mac(kb)
        self.max_age_s = max_age_s
        self.node_id = node_id
        self.groups = tuple(groups)
        # Preallocated: 64 x 6 bytes of id digests and 64 ts (t2k, 0 = free). No list grows with the traffic.
        self._ids = bytearray(REPLAY_IDS * _DIGEST)
        self._ts = [0] * REPLAY_IDS
        self._low = 0  # t2k: lowest ts not yet dropped from the table (everything dropped lies below it)
        # The floor earlier boots left in state.json: nothing below it may run in this boot. (Within the boot the
        # table decides; what this boot saves is for the next one.)
        self.prior_floor = saved_floor if isinstance(saved_floor, int) else 0
        self.saved_floor = self.prior_floor  # what state.json holds now
        self.pending_floor = None  # set by verify(): the node must save it before the command acts
        self._max_ts = 0  # highest ts accepted + 1: every state save carries it for free (floor_to_save)

    def verify(self, doc, now_t2k, time_valid, route, uptime_s):
        """route: False for the node's own topic, True for a group/broadcast topic (the target is then any the node
        answers to), or an exact target string ("node:<id>", "group:<name>", "all"). uptime_s: seconds since
        this boot (monotonic), so that now_t2k - uptime_s is the boot instant on the node's clock."""
        self.pending_floor = None
        sig = doc.get("sig")
        if sig is None:
            return "unsigned command refused"
        ts = doc.get("ts")
        if ts is None:
            return "signed commands need ts"
        if isinstance(route, str):
            if route != "all" and route != "node:%s" % self.node_id and \
                    not (route.startswith("group:") and route[6:] in self.groups):
                return "not addressed to this node"
            targets = (route,)
            group = not route.startswith("node:")
        elif route:
            targets = ["all"] + ["group:" + g for g in self.groups]
            group = True
        elif self.node_id is None:
            return "no node id for signed commands"
        else:
            targets = ("node:" + self.node_id,)
            group = False
        mac = self._group_mac if group else self._node_mac
        if mac is None:
            return "no key for group commands" if group else "no key for node commands"
        if not isinstance(sig, str) or len(sig) != 64:
            return "bad signature"
        ok = False
        try:
            want = binascii.unhexlify(sig)
            # One streamed pass per candidate target (hashlib on MicroPython cannot copy a hash state); with an
            # exact target from the topic there is only one.
            for t in targets:
                if _same(_digest(mac, doc, t), want):
                    ok = True
                    break
        except ValueError:
            return "bad signature"
        if not ok:
            return "bad signature"
        ts = int(ts) - _T2K_UNIX  # the schema already checked it is integral; a float ts must not make floats
        if not time_valid:
            if doc.get("cmd") != "time":
                return "no valid time: only a signed time command is accepted"
        else:
            age = now_t2k - ts
            if age > self.max_age_s or age < -_FUTURE_SLACK_S:
                return "expired"
            self._forget_expired(now_t2k)
        d = hashlib.sha256(doc.get("id", "").encode()).digest()[:_DIGEST]
        if self._find(d) >= 0:
            return "replayed"
        floor = self._low
        if self.prior_floor > floor:
            floor = self.prior_floor
        # The boot instant on the node's clock, rounded down (both now and uptime are whole seconds): commands
        # made after the boot are never refused; one accepted before it is, unless it was accepted less than 2 s
        # before a reset the node did not choose (a planned restart saves the floor first, see floor_to_save).
        if time_valid and now_t2k - uptime_s - 1 > floor:
            floor = now_t2k - uptime_s - 1
        if ts < floor:
            return "signed before the replay window"
        self._remember(d, ts)
        if ts >= self._max_ts:
            self._max_ts = ts + 1
        if not time_valid or ts > now_t2k:
            # Dated ahead of the node's clock (or no clock at all): the boot floor of a later boot would not cover
            # it, so it goes to flash before it acts.
            self.pending_floor = ts + 1
        return None

    def floor_to_save(self):
        """The floor for the state file: above every ts accepted so far. Any save carries it (a planned restart
        always saves), so the boot floor only has to cover what was accepted after the last save."""
        return self._max_ts if self._max_ts > self.saved_floor else self.saved_floor

    def floor_saved(self, floor):
        """The node wrote `floor` (a pending_floor) to flash."""
        if floor > self.saved_floor:
            self.saved_floor = floor
        self.pending_floor = None

    def _find(self, d):
        ids = self._ids
        i = ids.find(d)
        while i >= 0:
            if i % _DIGEST == 0 and self._ts[i // _DIGEST]:
                return i // _DIGEST
            i = ids.find(d, i + 1)
        return -1

    def _drop(self, slot):
        t = self._ts[slot]
        if t + 1 > self._low:
            self._low = t + 1  # keeps the invariant: whatever leaves the table is below the floor
        self._ts[slot] = 0

    def _forget_expired(self, now):
        for slot in range(REPLAY_IDS):
            t = self._ts[slot]
            if t and now - t > self.max_age_s:
                self._drop(slot)

    def _remember(self, d, ts):
        free = -1
        oldest = 0
        for slot in range(REPLAY_IDS):
            t = self._ts[slot]
            if not t:
                free = slot
                break
            if t < self._ts[oldest]:
                oldest = slot
        if free < 0:
            # Every slot holds a command still inside max_age_s: the oldest goes, the floor rises past it (a
            # command delivered later than 64 newer ones must then be signed again).
            self._drop(oldest)
            free = oldest
        self._ts[free] = ts if ts > 0 else 1  # 0 marks a free slot; no real ts is that early
        self._ids[free * _DIGEST:free * _DIGEST + _DIGEST] = d

    def remembered(self):
        """How many commands the replay table holds (for tests and counters)."""
        n = 0
        for t in self._ts:
            if t:
                n += 1
        return n

    def floor(self):
        """The lowest ts (t2k) the window accepts apart from the boot instant (for tests)."""
        return self._low if self._low > self.prior_floor else self.prior_floor
