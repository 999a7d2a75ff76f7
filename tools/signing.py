"""Host-side command signer: the same canonical form and HMAC as the node (it imports firmware/signing.py).

    from tools.signing import sign, Signer
    doc = sign({"id": "a1", "cmd": "set", "level": 40}, key, "node:pdg-0001")   # adds ts (now) and sig
    op = Operator(host, port, signer=Signer(node_keys={"pdg-0001": key}, group_key=gkey))

Before signing, every float is rounded to six significant digits and `ts` is made an int (filled in with the
current Unix time when missing): what is sent is then exactly what the node, parsing JSON into 32-bit floats on
an ESP32, reconstructs and checks (see firmware/signing.py). Floats beyond what a float32 holds are refused.
"""

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from firmware.signing import sign_hex  # noqa: E402

_F32_MAX = 3.0e38  # a little under float32's 3.4e38, so rounding up cannot overflow on the node
_F32_TINY = 1.0e-30  # below float32's normal range the node would lose digits


def portable(value, path="doc"):
    """A copy of `value` whose floats have six significant digits; ValueError for floats a node cannot hold."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        r = float("%.6g" % value)
        if r - r != 0.0 or abs(r) > _F32_MAX or (r != 0.0 and abs(r) < _F32_TINY):
            raise ValueError("%s: %r cannot be signed portably (outside float32 range or not finite)" % (path, value))
        return r
    if isinstance(value, dict):
        return {k: portable(v, "%s.%s" % (path, k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v, "%s[%d]" % (path, i)) for i, v in enumerate(value)]
    raise ValueError("%s: cannot sign a %s" % (path, type(value).__name__))


def sign(doc, key, target, now=None):
    """A signed copy of the command `doc` for `target` ("node:<id>", "group:<name>" or "all")."""
    out = portable(dict(doc))
    out.pop("sig", None)
    ts = out.get("ts")
    out["ts"] = int(now if now is not None else time.time()) if ts is None else int(ts)
    out["sig"] = sign_hex(out, key, target)
    return out


def target_for(dest):
    """What Operator.send passes as `node` → signing target: "all", "group:<g>" / "group/<g>", or a node id."""
    if dest == "all":
        return "all"
    if dest.startswith("group:") or dest.startswith("group/"):
        return "group:" + dest[6:]
    return "node:" + dest


class Signer:
    """A `signer` for tools/operator_client.Operator: picks the node's key (or the group key) by destination."""

    def __init__(self, node_keys=None, group_key=None, default_node_key=None):
        self.node_keys = node_keys or {}
        self.group_key = group_key
        self.default_node_key = default_node_key

    def __call__(self, doc, dest):
        target = target_for(dest)
        if target.startswith("node:"):
            key = self.node_keys.get(target[5:], self.default_node_key)
        else:
            key = self.group_key
        if key is None:
            raise ValueError("no key to sign for %s" % target)
        return sign(doc, key, target)
