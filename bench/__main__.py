"""``make bench`` / ``python -m bench [names...]``: run benchmarks, print a table, write JSON.

Every registered benchmark runs (or only those named), its figures go into one table on
stdout, and the list of figures is written to ``bench/results/latest.json`` and to a dated
copy ``bench/results/YYYY-MM-DD.json``. Exit status: 0 when every benchmark ran (whether
or not its goals were met: see the ``met`` column), 1 when one failed, 2 for unknown names.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import sys
import time
import traceback

import psutil

from bench.common import (
    REGISTRY,
    RESULTS_DIR,
    BenchUnavailableError,
    Figure,
    install_cleanup,
    log,
    machine_summary,
)

#: Modules that register benchmarks, in the order they run.
MODULES = (
    "bench.ingest",
    "bench.playable",
    "bench.restart",
    "bench.recordings",
    "bench.chat",
    "bench.hls",
    "bench.viewers",
    "bench.llhls_load",
    "bench.glass",
)


def load() -> None:
    for module in MODULES:
        importlib.import_module(module)


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0 or 0.01 <= abs(x) < 100_000:
        return f"{x:.4g}" if abs(x) < 1000 else f"{x:.0f}"
    return f"{x:.3g}"


def table(figures: list[Figure]) -> str:
    head = ("benchmark", "value", "unit", "peer", "peer value", "ratio", "goal", "met")
    rows = [head] + [
        (
            f.name,
            _num(f.value),
            f.unit,
            f.peer or "-",
            _num(f.peer_value),
            _num(f.ratio),
            f.goal_text() or "-",
            "-" if f.met is None else ("yes" if f.met else "NO"),
        )
        for f in figures
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    numeric = {1, 4, 5}
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i in numeric and n else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write(figures: list[Figure]) -> list[str]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps([f.to_json() for f in figures], indent=2) + "\n"
    paths = [RESULTS_DIR / "latest.json", RESULTS_DIR / f"{datetime.date.today().isoformat()}.json"]
    for path in paths:
        path.write_text(text)
    return [str(p) for p in paths]


def main(argv: list[str] | None = None) -> int:
    load()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (all: {', '.join(REGISTRY)})")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--no-write", action="store_true", help="print only, write no JSON")
    args = parser.parse_args(argv)
    if args.list:
        for bench in REGISTRY.values():
            print(f"{bench.name:12} {bench.description}")
        return 0
    unknown = [n for n in args.names if n not in REGISTRY]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}",
            file=sys.stderr,
        )
        return 2
    install_cleanup()
    machine = machine_summary()
    log(
        f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"Python {machine['python']}, kernel {machine['kernel']}"
    )
    busy = psutil.cpu_percent(interval=1.0)
    if busy > 10:
        log(
            f"warning: the machine is {busy:.0f} % busy before the benchmarks start; "
            "other load skews every figure (close it and run again for clean numbers)"
        )
    figures: list[Figure] = []
    failed = []
    for name in args.names or list(REGISTRY):
        log(f"running {name}")
        started = time.monotonic()
        try:
            figures += REGISTRY[name].run()
        except BenchUnavailableError as e:
            failed.append(name)
            log(f"{name}: cannot run here: {e}")
        except Exception:
            failed.append(name)
            log(f"{name} failed:\n{traceback.format_exc()}")
        log(f"{name} took {time.monotonic() - started:.0f} s")
    print(table(figures))
    if not args.no_write and figures:
        for path in write(figures):
            log(f"wrote {path}")
    if failed:
        log(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
