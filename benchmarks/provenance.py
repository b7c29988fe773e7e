"""Where a result comes from: commit, software, machine, threads, date and command.

Every benchmark that writes a result file stores `provenance()` in it under the key
`provenance`, so that any figure the project states can be traced to the code and machine that
produced it (`python -m benchmarks.make_index` lists them in `benchmarks/results/README.md`).
A JSON result holds it as a field; a text result (.txt, .jsonl, .md, .log) starts with a line
that holds `provenance: {...}` or `{"provenance": {...}}` (`header_line`).

    python -m benchmarks.provenance [--command CMD]   # one JSON line, for shell scripts
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]


def _git(args: List[str]) -> Optional[str]:
    """Output of a git command in the repository, or None where git or the repository is absent."""
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's model name, with its x86 family and model numbers where Linux gives them
    (/proc/cpuinfo; a virtual machine may show only "AMD EPYC", and the numbers then tell one
    generation from another); `platform.processor()` elsewhere."""
    try:
        fields: Dict[str, str] = {}
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                break  # the first processor's block is enough
            fields.setdefault(key.strip(), value.strip())
        name = fields.get("model name")
        if name:
            ids = [f"{label} {fields[key]}" for key, label in
                   (("cpu family", "family"), ("model", "model")) if key in fields]
            return f"{name} ({', '.join(ids)})" if ids else name
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> Optional[str]:
    """The first CUDA device's name, or None without one (torch is imported only if loaded)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def load_average() -> Optional[float]:
    """The 1-minute load average (None where the system does not report one)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


# What the benchmarks write: a change there is not a change to the code that produced a result.
OUTPUTS = (":(exclude)benchmarks/results", ":(exclude)imgs")


def command_line(argv: Optional[List[str]] = None) -> str:
    """This process's command as it reruns from the repository root, quoting kept.

    A script run as a module (`python -m benchmarks.bench_x ...`) is recorded in that form;
    otherwise the script's path relative to the root.

    Args:
        argv: the arguments after the script; default `sys.argv[1:]`.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name != "__main__":
        head = ["python", "-m", spec.name]
    elif sys.argv and sys.argv[0] not in ("", "-c"):
        script = Path(sys.argv[0]).resolve()
        head = ["python", str(script.relative_to(ROOT)) if script.is_relative_to(ROOT)
                else str(script)]
    else:
        head = ["python"]
    return shlex.join(head + args)


def provenance(command: Optional[str] = None) -> Dict[str, Any]:
    """Commit, software versions, machine, thread count, date and command of this process.

    Args:
        command: the command line to record; default: `command_line()`.

    Returns:
        A JSON-serialisable dict: commit (with `dirty` True when tracked files differ from it,
        result files and figures aside: a script that rewrites one leaves the code it ran as
        committed),
        python, torch, numpy, cpu, cpu_count, threads (torch's intra-op threads where torch is
        loaded, else OMP_NUM_THREADS), load (the 1-minute load average when it started: other
        work on the machine slows a timing down), gpu, date (UTC, ISO 8601) and command.
    """
    import numpy

    torch = sys.modules.get("torch")
    status = _git(["status", "--porcelain", "--untracked-files=no", "--", ".", *OUTPUTS])
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
        cpu=cpu_model(), cpu_count=os.cpu_count(), threads=threads, load=load_average(),
        gpu=gpu_name(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        command=command if command is not None else command_line(),
    )


def header_line(record: Dict[str, Any], comment: str = "# ") -> str:
    """The first line of a text result: `<comment>provenance: {...}` (for markdown, pass
    `comment="<!-- "`: the line is then closed as an HTML comment, invisible when rendered).

    Args:
        record: a `provenance()` dict.
        comment: what starts the line.
    Returns:
        The line, without a newline.
    """
    end = " -->" if comment.startswith("<!--") else ""
    return f"{comment}provenance: {json.dumps(record)}{end}"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (`argv`: the arguments after the script; default sys.argv)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--command", default=None, help="the command to record")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    import torch  # noqa: F401  (so that threads and the GPU are recorded)

    print(json.dumps(provenance(args.command)))


if __name__ == "__main__":
    main()
