"""Command-line words → an options dict, for host tools that also run under MicroPython (it has no argparse).

    opts = parse(argv, defaults, usage, flags={"--days": ("days", int)}, switches={"--json": "json"},
                 repeats={"--fault": ("faults", parse_fault)})

`flags` take one value, converted; `switches` set True; `repeats` append each converted value to a list.
Unknown words, a missing value or a conversion error raise ValueError with the reason and the usage text.
"""


def parse(argv, defaults, usage, flags=None, switches=None, repeats=None):
    flags = flags or {}
    switches = switches or {}
    repeats = repeats or {}
    out = dict(defaults)
    for key, _ in repeats.values():
        out[key] = list(out.get(key) or [])
    i = 0
    while i < len(argv):
        w = argv[i]
        if w in ("-h", "--help"):
            raise ValueError(usage)
        if w in switches:
            out[switches[w]] = True
            i += 1
            continue
        if w not in flags and w not in repeats:
            raise ValueError("unknown option %s\n%s" % (w, usage))
        if i + 1 >= len(argv):
            raise ValueError("%s needs a value\n%s" % (w, usage))
        v = argv[i + 1]
        i += 2
        if w in flags:
            key, conv = flags[w]
            out[key] = conv(v)
        else:
            key, conv = repeats[w]
            out[key].append(conv(v))
    return out
