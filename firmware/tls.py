"""Builds the TLS client context for the broker link from the `mqtt.tls` config section (certificates as base64 DER).

Why each step is spelled out:
- `verify_mode = CERT_REQUIRED` is set explicitly: on the MicroPython unix port a PROTOCOL_TLS_CLIENT context comes
  up with CERT_NONE and accepts a certificate from any CA for any host (measured; FIELD_NOTES).
- The CA goes in as DER bytes through `cadata=`: the MicroPython port's `cafile=` reads a PEM file into bytes that
  mbedTLS then refuses ("invalid cert"), and certificates in memory need no file on flash.
- The host name is checked by the context when the link wraps the socket with `server_hostname`
  (firmware/umqtt_hardened.py); with CERT_REQUIRED mbedTLS refuses a name that does not match.
- A client certificate and key (DER bytes) go to `load_cert_chain`, which on MicroPython takes bytes. CPython's ssl
  only loads them from files; there the context is still built for server verification, but a configured client
  certificate raises ValueError (the host tools use paho with files instead).
"""

import binascii
import ssl

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def der_from_b64(text, field):
    """base64 text → DER bytes, or ValueError naming `field`. Strict: MicroPython's a2b_base64 silently skips junk."""
    if not isinstance(text, str):
        raise ValueError("%s: must be base64 text" % field)
    s = text.replace("\n", "").replace("\r", "").replace(" ", "")
    if not s or len(s) % 4:
        raise ValueError("%s: not valid base64 (length)" % field)
    if s.strip(_B64):  # not `for c in s`: MicroPython interns every character a str iterator yields (schema.Str)
        raise ValueError("%s: not valid base64 (character %r)" % (field, s.lstrip(_B64)[:1]))
    try:
        der = binascii.a2b_base64(s)
    except ValueError:
        raise ValueError("%s: not valid base64" % field)
    # Every certificate and key in DER is one ASN.1 SEQUENCE (tag 0x30): catches PEM text or a wrong file early.
    if len(der) < 16 or der[0] != 0x30:
        raise ValueError("%s: not a DER certificate or key (base64 of the DER bytes expected)" % field)
    return der


def client_context(tls_cfg):
    """An ssl.SSLContext that requires the broker's certificate to chain to the configured CA. ValueError names the
    config field when a certificate or key cannot be used."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ca = der_from_b64(tls_cfg.get("ca"), "mqtt.tls.ca")
    try:
        ctx.load_verify_locations(cadata=ca)
    except (ValueError, OSError) as e:  # mbedTLS: ValueError("invalid cert"); CPython: ssl.SSLError (an OSError)
        raise ValueError("mqtt.tls.ca: certificate refused (%s)" % _short(e))
    cert = tls_cfg.get("client_cert")
    key = tls_cfg.get("client_key")
    if cert is None and key is not None:
        raise ValueError("mqtt.tls.client_cert: needed with client_key")
    if key is None and cert is not None:
        raise ValueError("mqtt.tls.client_key: needed with client_cert")
    if cert is not None:
        cert_der = der_from_b64(cert, "mqtt.tls.client_cert")
        key_der = der_from_b64(key, "mqtt.tls.client_key")
        try:
            ctx.load_cert_chain(cert_der, key_der)
        except (ValueError, OSError, TypeError) as e:
            # The text of a key error is the library's, never the key's bytes.
            raise ValueError("mqtt.tls.client_cert/client_key: refused (%s)" % _short(e))
    return ctx


def _short(e):
    s = str(e)
    return s[:80] if s else e.__class__.__name__
