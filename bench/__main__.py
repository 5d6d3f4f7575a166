"""``make bench``: the benchmark suite lands with the benchmarks issue; until then say so."""

import sys


def main() -> int:
    print("No benchmarks yet: they arrive with the benchmarks issue (see bench/README.md).")
    return 2


if __name__ == "__main__":
    sys.exit(main())
