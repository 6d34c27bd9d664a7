"""Redaction's worst case: how the time grows with the input, on inputs built to backtrack.

Redaction runs on every prompt and response before it reaches Slack, so it must stay linear:
for each input, 10 KB and then 100 KB (x10) should take at most about x20 the time. Prints one
row per input: the two times, their ratio, and whether it stays within that bound.

    .venv/bin/python benchmarks/redaction.py
"""

from __future__ import annotations

import statistics
import time

from bot.alerts.redaction import Redactor

UNITS = {
    "PEM begin, never ended": "-----BEGIN RSA PRIVATE KEY-----\n",
    "at-signs (e-mail starts)": "a@",
    "plus and digit (phone starts)": "+1 ",
    "random base64": "aB3/",
    "digits and spaces (cards)": "1 ",
    "sk- prefixes": "sk-",
    "password: labels": "password: ",
    "dotted labels (e-mail domains)": "a.",
    "prose with an e-mail and a key": "mail bob@example.com, key sk-abcdefghijklmnopqrstu. ",
}
SIZES = (10_000, 100_000)
RUNS = 3
BOUND = 20.0


def seconds(redactor: Redactor, text: str) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        redactor.redact(text)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    redactor = Redactor()
    print(f"{'input':34} {'10 KB':>9} {'100 KB':>9} {'ratio':>7}  within x{BOUND:g}")
    worst = 0.0
    for name, unit in UNITS.items():
        small, large = (seconds(redactor, unit * (size // len(unit))) for size in SIZES)
        ratio = large / small if small else float("inf")
        worst = max(worst, ratio)
        row = f"{name:34} {small * 1e3:7.1f}ms {large * 1e3:7.1f}ms {ratio:6.1f}x"
        print(f"{row}  {ratio <= BOUND}")
    print(f"worst ratio x{worst:.1f} for x10 input (linear is x10; the bound is x{BOUND:g})")


if __name__ == "__main__":
    main()
