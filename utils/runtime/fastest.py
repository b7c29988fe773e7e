"""The `fastest` setting: bf16 autocast and the compiled head wherever the machine runs them fast.

With `fastest=True` the run decides once, at its start, the two speed settings that depend on
the hardware and sets them in the config:

- `amp` (bf16 autocast of the model forward): on a GPU that supports bf16; on a CPU only with
  bf16 matrix units (AMX or AVX-512 BF16), where elsewhere bf16 is emulated and slower.
- `compile_head` (the fast head's batch-norm kernels through `torch.compile`): on a GPU when
  triton is installed; on a CPU when the C++ compiler torch's inductor calls is on the PATH and
  the CPU has AVX-512. On an AVX2-only CPU the compiled kernels were measured slower than eager,
  so it stays off there; on the one AVX-512 CPU measured they were level with eager
  (docs/performance.md, `python -m benchmarks.bench_compare --compile-head`).

`choose` is the rule, a pure function of what the machine has; `detect` reads the machine;
`apply_fastest` does both for a run and logs one line saying what was chosen and why. A config
that sets `fastest=True` together with `amp` or `compile_head` is refused when it is loaded
(`utils/config/config.py`): the switch owns both settings.
"""

import os
import shutil
import sys
from typing import Any, MutableMapping, NamedTuple, Optional

import torch

from utils.runtime.logger import logger

__all__ = ["Choice", "Machine", "apply_fastest", "choose", "detect"]


class Machine(NamedTuple):
    """What the run's device offers for the fast paths (`detect`)."""

    device_type: str  # 'cpu' or 'cuda'
    bf16_units: bool  # CPU: AMX or AVX-512 BF16; GPU: torch.cuda.is_bf16_supported()
    compiler: Optional[str]  # the C++ compiler inductor would call, None if not found
    triton: bool  # triton importable (what torch.compile needs on a GPU)
    hardware: str = ""  # CPU: its bf16 units or vector capability (e.g. 'AVX2'); GPU: its name
    avx512: bool = False  # CPU: AVX-512 vector units (where the compiled head pays off)


class Choice(NamedTuple):
    """The settings `fastest` picks and the reason, as logged."""

    amp: bool
    compile_head: bool
    reason: str


def choose(device_type: str, bf16_units: bool, compiler: Optional[str], triton: bool,
           hardware: str = "", avx512: bool = False) -> Choice:
    """The fastest supported path for a machine: bf16 autocast and the compiled head, or not.

    Args:
        device_type: 'cpu' or 'cuda'.
        bf16_units: the device computes bf16 natively (CPU: AMX or AVX-512 BF16 units).
        compiler: the C++ compiler found for inductor's CPU kernels, or None.
        triton: triton is installed (inductor's GPU kernels).
        hardware: words for the reason (the CPU's units or capability, the GPU's name).
        avx512: the CPU has AVX-512 (the compiled head is slower than eager without it).
    Returns:
        `Choice(amp, compile_head, reason)`; reason reads like
        "bf16 autocast off (this CPU has no bf16 units: AVX2), compiled head off (slower than
        eager on a CPU without AVX-512)".
    """
    on_off = {True: "on", False: "off"}
    named = f": {hardware}" if hardware else ""
    if device_type == "cuda":
        gpu = hardware or "this GPU"
        amp_why = f"{gpu} supports bf16" if bf16_units else f"{gpu} has no bf16 support"
        compile_head = triton
        compile_why = "triton found" if triton else "triton is not installed"
    else:
        amp_why = (f"this CPU has bf16 units{named}" if bf16_units
                   else f"this CPU has no bf16 units{named}")
        compile_head = compiler is not None and avx512
        if not compiler:
            compile_why = f"no C++ compiler found ({default_compiler()} is not on the PATH)"
        elif not avx512:
            compile_why = "slower than eager on a CPU without AVX-512"
        else:
            compile_why = f"C++ compiler {compiler} found, AVX-512 CPU"
    reason = (f"bf16 autocast {on_off[bf16_units]} ({amp_why}), "
              f"compiled head {on_off[compile_head]} ({compile_why})")
    return Choice(amp=bf16_units, compile_head=compile_head, reason=reason)


def default_compiler() -> str:
    """The C++ compiler torch's inductor calls for CPU kernels: $CXX, else g++ (clang++ on
    macOS, cl on Windows)."""
    fallback = {"darwin": "clang++", "win32": "cl"}.get(sys.platform, "g++")
    return os.environ.get("CXX") or fallback


def cpu_bf16_units() -> list:
    """Names of the CPU's bf16 matrix units ('AMX', 'AVX-512 BF16'); empty without any.

    Reads `torch.cpu`'s capability probes where this torch has them (each guarded, so that
    another torch version answers 'none' instead of failing).
    """
    probes = (("AMX", "_is_amx_tile_supported"), ("AVX-512 BF16", "_is_avx512_bf16_supported"))
    found = []
    for name, probe in probes:
        fn = getattr(torch.cpu, probe, None) or getattr(torch._C._cpu, probe, None)
        try:
            if fn is not None and fn():
                found.append(name)
        except (RuntimeError, AttributeError):
            continue
    return found


def detect(device: Any = "cpu") -> Machine:
    """Read what the device offers: bf16 units, a C++ compiler, triton.

    Args:
        device: a torch.device or its name ('cpu', 'cuda', 'cuda:1').
    Returns:
        The `Machine`, to pass to `choose` (`choose(*detect(device))`).
    """
    device = torch.device(device)
    try:
        from torch.utils._triton import has_triton

        triton = bool(has_triton())
    except ImportError:
        triton = False
    compiler = shutil.which(default_compiler())
    compiler = os.path.basename(compiler) if compiler else None
    if device.type == "cuda":
        return Machine("cuda", bool(torch.cuda.is_bf16_supported()), compiler, triton,
                       torch.cuda.get_device_name(device))
    units = cpu_bf16_units()
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()
    return Machine("cpu", bool(units), compiler, triton, " and ".join(units) or capability,
                   capability == "AVX512" or bool(units))


def apply_fastest(cfg: MutableMapping[str, Any], device: Any) -> Optional[Choice]:
    """With `cfg['fastest']`, set `amp` and `compile_head` for the device and log why.

    Args:
        cfg: the run's settings (changed in place).
        device: the run's resolved device.
    Returns:
        The `Choice`, or None when `fastest` is off (the config is then left as it is).
    """
    if not cfg.get("fastest"):
        return None
    choice = choose(*detect(device))
    cfg["amp"], cfg["compile_head"] = choice.amp, choice.compile_head
    logger.info("fastest: " + choice.reason)
    return choice
