"""Lets `python research/<script>.py` import the repository packages like `python -m` does.

As `benchmarks/_path.py`: the sys.path change is confined to the scripts, so both invocations
(`python research/x.py` and `python -m research.x`) work from the repo root.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
