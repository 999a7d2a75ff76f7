"""The fleet as it is now, in memory: one `Post` per lamp post, updated from the broker, read by the pages.

Every change bumps a sequence number and names the post that changed, so a page's live stream (SSE) asks "what
changed since N" and gets only those posts — a city of 50,000 posts does not resend the whole map each second.
"""

import collections
import threading
import time

LOOKS = ("lit", "dimmed", "off", "fault", "offline", "unknown")
_CHANGES_KEPT = 20000  # a stream further behind than this gets the whole fleet again


def look_of(status, state):
    """What colour a post is on the map: offline, fault, lit (100 %), dimmed (1-99 %), off (0 %) or unknown."""
    if status is not None and status.get("online") is False:
        return "offline"
    if state is None:
        return "unknown"
    if state.get("faults"):
        return "fault"
    level = state.get("level")
    if not isinstance(level, (int, float)):
        return "unknown"
    if level <= 0:
        return "off"
    return "lit" if level >= 100 else "dimmed"


class Post:
    __slots__ = ("id", "status", "state", "tele", "config", "lat", "lon", "groups", "fw", "heard", "energy_wh")

    def __init__(self, node_id):
        self.id = node_id
        self.status = None
        self.state = None
        self.tele = None
        self.config = None
        self.lat = None
        self.lon = None
        self.groups = []
        self.fw = None
        self.heard = None  # console time of the last live (not retained) message
        self.energy_wh = None

    def look(self):
        return look_of(self.status, self.state)

    def level(self):
        if self.state is not None and isinstance(self.state.get("level"), (int, float)):
            return self.state["level"]
        return None

    def faults(self):
        return list((self.state or {}).get("faults") or [])

    def summary(self):
        """The post as the map and the fleet table show it (also the live stream's payload)."""
        return {"id": self.id, "look": self.look(), "level": self.level(), "faults": self.faults(),
                "online": None if self.status is None else bool(self.status.get("online")),
                "reason": (self.state or {}).get("reason"), "groups": list(self.groups), "fw": self.fw,
                "lat": self.lat, "lon": self.lon, "heard": self.heard, "energy_wh": self.energy_wh,
                "safe_mode": bool((self.status or {}).get("safe_mode"))}


class Fleet:
    def __init__(self):
        self.posts = {}
        self.cond = threading.Condition()
        self.seq = 0
        self.changes = collections.deque(maxlen=_CHANGES_KEPT)  # (seq, post id or a topic like "!alarms")

    def post(self, node_id):
        """The post, created on first mention. Call with self.cond held."""
        p = self.posts.get(node_id)
        if p is None:
            p = self.posts[node_id] = Post(node_id)
        return p

    def changed(self, what):
        """Record a change (call with self.cond held) and wake the streams."""
        self.seq += 1
        self.changes.append((self.seq, what))
        self.cond.notify_all()

    def since(self, seq, timeout):
        """(new seq, set of what changed after `seq`, or None for "everything") — waits up to `timeout` for news."""
        with self.cond:
            if self.seq == seq:
                self.cond.wait(timeout)
            if self.seq == seq:
                return seq, set()
            if not self.changes or self.changes[0][0] > seq + 1:
                return self.seq, None
            out = set()
            for s, what in reversed(self.changes):
                if s <= seq:
                    break
                out.add(what)
            return self.seq, out

    def snapshot(self):
        with self.cond:
            return [p.summary() for p in sorted(self.posts.values(), key=lambda p: p.id)]

    def summaries(self, ids):
        with self.cond:
            return [self.posts[i].summary() for i in sorted(ids) if i in self.posts]

    def get(self, node_id):
        """A copy of what is known about one post, or None."""
        with self.cond:
            p = self.posts.get(node_id)
            if p is None:
                return None
            out = p.summary()
            out.update(status=p.status, state=p.state, tele=p.tele, config=p.config)
            return out

    def members(self, group):
        """(online, offline) ids of a group ("all": every post), from the posts' birth messages."""
        online, offline = [], []
        with self.cond:
            for p in sorted(self.posts.values(), key=lambda p: p.id):
                if group != "all" and group not in p.groups:
                    continue
                (online if (p.status or {}).get("online") else offline).append(p.id)
        return online, offline

    def groups(self):
        """{group: member count}."""
        out = {}
        with self.cond:
            for p in self.posts.values():
                for g in p.groups:
                    out[g] = out.get(g, 0) + 1
        return dict(sorted(out.items()))

    def counts(self):
        out = {k: 0 for k in LOOKS}
        with self.cond:
            for p in self.posts.values():
                out[p.look()] += 1
            out["total"] = len(self.posts)
        return out

    def touch(self, node_id, now=None):
        with self.cond:
            self.post(node_id).heard = time.time() if now is None else now
