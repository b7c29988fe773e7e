"""Where a result comes from: commit, software, machine, threads, date and command.

Every benchmark that writes a result file stores `provenance()` in it under the key
`provenance`, so that any figure the project states can be traced to the code and machine that
produced it (`python benchmarks/make_index.py` lists them in `benchmarks/results/README.md`).
"""

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]


def _git(args: List[str]) -> Optional[str]:
    """Output of a git command in the repository, or None where git or the repository is absent."""
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def cpu_model() -> str:
    """The processor's model name (Linux /proc/cpuinfo; `platform.processor()` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> Optional[str]:
    """The first CUDA device's name, or None without one (torch is imported only if loaded)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def provenance(command: Optional[str] = None) -> Dict[str, Any]:
    """Commit, software versions, machine, thread count, date and command of this process.

    Args:
        command: the command line to record; default: this process's argv.

    Returns:
        A JSON-serialisable dict: commit (with `dirty` True when tracked files differ from it),
        python, torch, numpy, cpu, cpu_count, threads (torch's intra-op threads where torch is
        loaded, else OMP_NUM_THREADS), gpu, date (UTC, ISO 8601) and command.
    """
    import numpy

    torch = sys.modules.get("torch")
    status = _git(["status", "--porcelain", "--untracked-files=no"])
    threads = torch.get_num_threads() if torch is not None else os.environ.get("OMP_NUM_THREADS")
    if torch is None:
        try:
            from importlib.metadata import version

            torch_version = version("torch")
        except Exception:  # noqa: BLE001 - any metadata failure means "unknown"
            torch_version = None
    else:
        torch_version = torch.__version__
    return dict(
        commit=_git(["rev-parse", "HEAD"]), dirty=bool(status) if status is not None else None,
        python=platform.python_version(), torch=torch_version, numpy=numpy.__version__,
        cpu=cpu_model(), cpu_count=os.cpu_count(), threads=threads, gpu=gpu_name(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        command=command if command is not None else " ".join([sys.executable.split("/")[-1],
                                                               *sys.argv]),
    )
