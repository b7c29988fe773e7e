"""Lets `python benchmarks/<script>.py` import the repository packages like `python -m` does.

The only sys.path change in the project, confined to the benchmark scripts so both invocations
(`python benchmarks/bench_x.py` and `python -m benchmarks.bench_x`) work from the repo root.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
