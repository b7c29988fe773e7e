"""Find and identify a checkout of the authors' code, and run `worker.py` in its own process."""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

ENV = "MOSE_AUTHORS_CODE"
SOURCE = "https://github.com/gaozhitong/MoSE-AUSeg"
# The digest (`python_digest`) of the Python files of the published commit: a tree without its
# .git folder (a downloaded archive) is still recognised.
KNOWN_DIGESTS = {"07447a31ddb52497524c7af65cd81393304cd1b3edcd9b2211b65c2af3cb43b8": "8261e7d"}
WORKER = Path(__file__).resolve().with_name("worker.py")
# What the authors' code imports beyond this project's requirements (requirements.txt here).
EXTRA_MODULES = {"cv2": "opencv-python-headless"}
MARKERS = ("models/MoSE.py", "utils/OTloss.py", "engine.py", "data/lidc_dataset.py")


class AuthorsCodeUnavailable(FileNotFoundError):
    """No usable checkout of the authors' code (the message says why and how to get one)."""


def find_tree(path: Optional[str] = None) -> Path:
    """The authors' tree: `path`, else $MOSE_AUTHORS_CODE, checked to hold their code.

    Raises:
        AuthorsCodeUnavailable: neither is given, the folder lacks their files, or a package
            their code imports is missing.
    """
    given = path or os.environ.get(ENV)
    if not given:
        raise AuthorsCodeUnavailable(
            f"the authors' code is not given: pass --authors-code PATH or set {ENV}=PATH to a "
            f"checkout of {SOURCE} (git clone {SOURCE} && git -C MoSE-AUSeg checkout 8261e7d)")
    root = Path(given).expanduser().resolve()
    missing = [m for m in MARKERS if not (root / m).is_file()]
    if missing:
        raise AuthorsCodeUnavailable(f"{root} is not a checkout of {SOURCE}: no {missing[0]}")
    absent = [pkg for module, pkg in EXTRA_MODULES.items()
              if importlib.util.find_spec(module) is None]
    if absent:
        raise AuthorsCodeUnavailable(
            f"the authors' code needs {', '.join(absent)}: "
            "pip install -r benchmarks/authors/requirements.txt")
    return root


def python_digest(root: Path) -> str:
    """SHA-256 over the relative path and content of every .py file of the tree, in path order."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if ".git" in path.relative_to(root).parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def identify(root: Path) -> Dict[str, Any]:
    """What the results record of the tree: its commit (git HEAD, else the published commit
    whose Python files it holds, else None), whether git sees local changes, and the digest."""
    digest = python_digest(root)
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                     "--untracked-files=no"], check=True, capture_output=True,
                                    text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = KNOWN_DIGESTS.get(digest), None
    return dict(source=SOURCE, commit=commit, dirty=dirty, python_digest=digest,
                published_files=digest in KNOWN_DIGESTS)


def run_worker(root: Path, mode: str, args: Dict[str, Any], threads: int,
               log: Optional[Path] = None, cwd: Optional[Path] = None) -> Dict[str, Any]:
    """Run `worker.py MODE ARGS` in a new process with the authors' tree on the path.

    Args:
        root: the authors' tree (first on PYTHONPATH; this project is not on the path).
        mode: 'speed' or 'train'.
        args: the mode's arguments, passed as JSON.
        threads: OMP_NUM_THREADS and torch threads of the process.
        log: file for the process's stderr (their logger and progress bars); None: kept in
            memory and shown if the process fails.
        cwd: working folder of the process (default: a temporary folder).
    Returns:
        The JSON object the worker prints last.
    """
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS=str(threads))
    args = dict(args, threads=threads, authors_root=str(root))
    cmd = [sys.executable, str(WORKER), mode, json.dumps(args)]
    with tempfile.TemporaryDirectory() as tmp:
        err = open(log, "w") if log is not None else subprocess.PIPE
        try:
            proc = subprocess.run(cmd, cwd=cwd or tmp, env=env, stdout=subprocess.PIPE,
                                  stderr=err, text=True)
        finally:
            if log is not None:
                err.close()
    if proc.returncode != 0:
        tail = (log.read_text() if log is not None else proc.stderr)[-3000:]
        raise RuntimeError(f"the authors' code failed ({mode}, exit {proc.returncode}):\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def extra_packages() -> List[str]:
    """The packages EXTRA_MODULES names (for the record)."""
    versions = []
    for module, pkg in EXTRA_MODULES.items():
        try:
            versions.append(f"{pkg} {importlib.import_module(module).__version__}")
        except ImportError:
            versions.append(f"{pkg} absent")
    return versions
