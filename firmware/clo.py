"""Constant light output (TALQ CLO): scale the level by burn hours to compensate lumen depreciation."""

from firmware.schema import Bool, Dict, Float, Invalid, Lazy, List


def _check_curve(curve, path):
    # Points must rise strictly in hours so interpolation is well defined; a factor over 1.5 is a typo, not a lamp.
    last = -1.0
    for i, p in enumerate(curve):
        if p[0] <= last:
            raise Invalid("%s[%d]" % (path, i), "burn hours must increase strictly")
        if p[1] > 1.5:
            raise Invalid("%s[%d]" % (path, i), "factor must be in 0..1.5")
        last = p[0]


def _schema():
    return Dict(
        {
            "enabled": Bool(False, doc="apply constant light output compensation"),
            "curve": List(
                List(Float(0, 1000000), 2, min_len=2),
                16,
                default=[[0, 0.85], [50000, 1.0]],
                min_len=1,
                check=_check_curve,
                doc="[burn_hours, factor] points; factor multiplies the level (new lamp over-lit: < 1)",
            ),
        },
        doc="constant light output",
    )


SCHEMA = Lazy(_schema)


def factor(burn_h, curve):
    """Factor at burn_h by linear interpolation; flat beyond the first and last points."""
    if burn_h <= curve[0][0]:
        return curve[0][1]
    for i in range(1, len(curve)):
        h1, f1 = curve[i]
        if burn_h <= h1:
            h0, f0 = curve[i - 1]
            return f0 + (f1 - f0) * (burn_h - h0) / (h1 - h0)
    return curve[-1][1]


def clo_level(level, burn_h, clo_cfg):
    """Level (0..100) after CLO. Disabled or level 0 → unchanged: CLO dims, it never switches a lamp on."""
    if not clo_cfg["enabled"] or level <= 0:
        return level
    out = level * factor(burn_h, clo_cfg["curve"])
    if out < 0:
        return 0.0
    if out > 100:
        return 100.0
    return out
