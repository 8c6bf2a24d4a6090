#!/usr/bin/env python3
"""Checks a Prometheus text exposition (format 0.0.4) read from a file; prints one line per
problem and exits 1 if there is any, else prints "ok N families M samples" and exits 0.

    prom_check.py FILE

Checked: every line is a comment (# HELP NAME TEXT, # TYPE NAME TYPE, other # lines) or a sample
NAME{LABELS} VALUE [TIMESTAMP]; metric and label names match the format's grammar; label values
are quoted with only \\\\, \\" and \\n escapes; values are floats; each family has at most one
HELP and one TYPE, its TYPE comes before its samples, and its samples are contiguous; a counter's
name ends in _total; no sample (name and labels) appears twice.
"""
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
VALUE_STR = r'"(?:[^"\\\n]|\\\\|\\"|\\n)*"'
SAMPLE = re.compile(
    r"^(" + NAME + r")(\{(?:" + LABEL + r"=" + VALUE_STR + r"(?:," + LABEL + r"=" + VALUE_STR +
    r")*,?)?\})? ([^ ]+)(?: (-?[0-9]+))?$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def main():
    errors = []
    helps, types, seen_samples, families_done = {}, {}, set(), set()
    current = None
    nsamples = 0
    with open(sys.argv[1], encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    else:
        errors.append("the exposition does not end with a newline")
    for no, line in enumerate(lines, 1):
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not re.fullmatch(NAME, name):
                    errors.append(f"line {no}: bad metric name in {parts[1]}: {name!r}")
                table = helps if parts[1] == "HELP" else types
                if name in table:
                    errors.append(f"line {no}: second {parts[1]} for {name}")
                if parts[1] == "TYPE":
                    if len(parts) != 4 or parts[3] not in TYPES:
                        errors.append(f"line {no}: bad TYPE line: {line!r}")
                    if name in families_done or name == current:
                        errors.append(f"line {no}: TYPE for {name} after its samples")
                    table[name] = parts[3] if len(parts) == 4 else None
                else:
                    table[name] = parts[3] if len(parts) == 4 else ""
            continue
        if not line.strip():
            errors.append(f"line {no}: empty line")
            continue
        m = SAMPLE.match(line)
        if not m:
            errors.append(f"line {no}: not a sample: {line!r}")
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        try:
            float(value)
        except ValueError:
            if value not in ("NaN", "+Inf", "-Inf"):
                errors.append(f"line {no}: bad value {value!r}")
        if name != current:
            if name in families_done:
                errors.append(f"line {no}: samples of {name} are not together")
            if current:
                families_done.add(current)
            current = name
        if (name, labels) in seen_samples:
            errors.append(f"line {no}: duplicate sample {name}{labels}")
        seen_samples.add((name, labels))
        if types.get(name) == "counter" and not name.endswith("_total"):
            errors.append(f"line {no}: counter {name} does not end in _total")
        nsamples += 1
    for e in errors:
        print(e)
    if errors:
        return 1
    print(f"ok {len(types)} families {nsamples} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
