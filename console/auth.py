"""Users, passwords and sessions. Two roles: an operator may command posts, a viewer may only look.

Passwords are stored as scrypt hashes (hashlib, stdlib) with a per-user salt, never in clear. A session is a random
token in an HttpOnly, SameSite=Strict cookie; each carries its own CSRF token, which every form that changes
something must send back (checked in constant time), so a page on another site cannot post a command with the
operator's cookie.
"""

import hashlib
import hmac
import os
import secrets
import time

ROLES = ("operator", "viewer")
SESSION_IDLE_S = 12 * 3600  # a console left open over a shift stays logged in; one left overnight does not
MAX_FAILURES = 5  # wrong passwords for one user name in a row ...
LOCKOUT_S = 60  # ... then that name is refused this long: guessing costs a minute per five tries
_N, _R, _P = 2 ** 14, 8, 1  # scrypt cost: ~50 ms per login on this machine, 16 MB of memory


def hash_password(password, salt=None):
    salt = salt or os.urandom(16)
    h = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "scrypt$%d$%d$%d$%s$%s" % (_N, _R, _P, salt.hex(), h.hex())


def check_password(password, stored):
    try:
        kind, n, r, p, salt, h = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(h) // 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), h)


def check_new_user(name, password, role):
    """A reason the user cannot be made, or None."""
    if not name or len(name) > 32 or not all(c.isalnum() or c in "-_." for c in name):
        return "user names are 1-32 letters, digits, '-', '_' or '.'"
    if role not in ROLES:
        return "role must be one of %s" % ", ".join(ROLES)
    if len(password) < 8:
        return "passwords have at least 8 characters"
    return None


class Auth:
    def __init__(self, store):
        self.store = store
        self.failures = {}  # user name → (wrong passwords in a row, time of the last one); in memory on purpose

    def add_user(self, name, password, role):
        problem = check_new_user(name, password, role)
        if problem:
            raise ValueError(problem)
        self.store.add_user(name, hash_password(password), role)

    def locked(self, name, now=None):
        """Seconds until this user name may try again (0: now)."""
        n, last = self.failures.get(name, (0, 0.0))
        if n < MAX_FAILURES:
            return 0
        return max(0, int(last + LOCKOUT_S - (time.time() if now is None else now)) + 1)

    def login(self, name, password, now=None):
        """(session token, csrf token) for good credentials, else None (also while the name is locked out)."""
        now = time.time() if now is None else now
        if self.locked(name, now):
            return None
        user = self.store.user(name)
        if user is None:
            hash_password(password)  # the same work as a real check: no timing hint about which names exist
            ok = False
        else:
            ok = check_password(password, user["pw_hash"])
        if not ok:
            n, last = self.failures.get(name, (0, 0.0))
            if n >= MAX_FAILURES:
                n = 0  # the lockout has passed: a fresh count
            if len(self.failures) > 10000:
                self.failures.clear()  # names made up by a guesser must not fill the memory
            self.failures[name] = (n + 1, now)
            return None
        self.failures.pop(name, None)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        self.store.add_session(token, name, csrf, now)
        return token, csrf

    def session(self, token, now=None):
        """{user, role, csrf} of a live session, or None."""
        if not token:
            return None
        s = self.store.session(token)
        now = time.time() if now is None else now
        if s is None or now - s["last_rx"] > SESSION_IDLE_S:
            return None
        if now - s["last_rx"] > 60:  # one write a minute per user, not one per request
            self.store.touch_session(token, now)
        return s

    def logout(self, token):
        self.store.drop_session(token)


def csrf_ok(session, sent):
    return session is not None and isinstance(sent, str) and hmac.compare_digest(session["csrf"], sent)
