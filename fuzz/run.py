"""Run the property checks of tests/fuzzing.py with many examples, to find what the test
suite's few examples do not.

    python fuzz/run.py --examples 100000            # every target
    python fuzz/run.py --examples 5000 intake bounces

Each target runs until its examples are used up or it fails; a failure prints the smallest
input Hypothesis could shrink it to, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fuzzing import TARGETS  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402


def run(name: str, examples: int) -> bool:
    check, strategies = TARGETS[name]
    test = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )(given(*strategies)(check))
    started = time.monotonic()
    try:
        test()
    except Exception:
        print(f"{name}: FAILED after {time.monotonic() - started:.0f} s")
        traceback.print_exc()
        return False
    print(f"{name}: {examples} examples passed in {time.monotonic() - started:.0f} s")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("targets", nargs="*", choices=[[], *TARGETS], default=[])
    args = parser.parse_args()
    results = [run(name, args.examples) for name in args.targets or TARGETS]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
