"""The README's quick start as a newcomer runs it: a fresh clone, then `python main.py CONFIG`.

    python -m benchmarks.bench_quickstart [--configs synthetic_lidc synthetic_lidc_paper]
        [--threads 2] [--out benchmarks/results/quickstart.json]

Clones the repository's committed HEAD into a temporary folder (no synthetic data, no run
folders, no caches), runs every config there one after the other with the machine's default
environment (or `--threads`), and records for each the line it prints last (the test summary),
its wall-clock seconds and the CPU seconds of the command and its children. On a quiet machine
the wall-clock is the time a user waits; on a shared one it is longer, and the CPU seconds are
the figure that carries over. Writes the JSON with `provenance` (commit, software, CPU, load).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from benchmarks.provenance import ROOT, command_line, provenance


def children_cpu_s() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_config(clone: Path, config: str, env: Dict[str, str]) -> Dict[str, Any]:
    """Run `python main.py experiments/<config>.py` in the clone; its last line and times."""
    cpu0, t0 = children_cpu_s(), time.perf_counter()
    proc = subprocess.run([sys.executable, "main.py", f"experiments/{config}.py"], cwd=clone,
                          env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, children_cpu_s() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{config} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    lines = [line.split(" INFO ", 1)[-1] for line in proc.stdout.splitlines()
             if " INFO test: GED " in line]  # the logger's console line, after its time stamp
    return dict(config=config, line=lines[-1].strip() if lines else None,
                wall_s=round(wall, 1), cpu_s=round(cpu, 1))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (`argv`: the arguments after the script; default sys.argv)."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["synthetic_lidc", "synthetic_lidc_paper"])
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: unset)")
    p.add_argument("--out", default="benchmarks/results/quickstart.json")
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    command = command_line()
    prov = provenance(command)
    env = dict(os.environ)
    if args.threads is not None:
        env["OMP_NUM_THREADS"] = str(args.threads)
    prov["threads"] = env.get("OMP_NUM_THREADS", f"default ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        runs = [run_config(clone, config, env) for config in args.configs]
    result = dict(provenance=prov, runs=runs)
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
