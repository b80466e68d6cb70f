"""The CPU kernels the float work runs on: pinned to AVX2, so a model's bytes do not depend on the CPU.

Every numerical library under torch picks its kernels from the CPU it finds: ATen's vectorized
kernels by the widest vector extension (AVX-512 where there is one), MKL's matrix products by CPU
model and thread count, oneDNN's JIT kernels by ISA, and numpy's OpenBLAS (eval's bootstrap) by core
type. Their sums run in different orders, so training on an AVX-512 machine and on an AVX2 one gives
different weights from the first steps on. `kernels: avx2` (train.kernels, eval.kernels) caps each of
them at AVX2, a level every current x86-64 server has, through the settings they read when they load:

    ATEN_CPU_CAPABILITY=avx2   ATen dispatches its AVX2 kernels
    MKL_CBWR=AVX2,STRICT       MKL's AVX2 code branch; STRICT: gemm gives the same bits for any thread count
    ONEDNN_MAX_CPU_ISA=AVX2    oneDNN generates at most AVX2 code
    OPENBLAS_CORETYPE=Haswell  numpy's and scipy's OpenBLAS use their AVX2 (Haswell) kernels

They are read once, when each library loads, so the stage scripts call `pin` before anything imports
torch or numpy (stages/pin_kernels.py); `check` then verifies, after torch has loaded, that the
kernels in use are the ones the params name, and stops the stage if they are not (a process that loaded
torch first). `native` pins nothing: each library chooses for this CPU, unless the shell sets these
variables itself. On a CPU that is not x86-64 there is nothing to pin: its own kernels run.

What this does and does not cover (docs/reproducibility.md): the thread count does not change the bytes
(ATen's reductions here and MKL's strict gemm do not depend on it); MKL honours a code branch on Intel
CPUs only, and runs its own choice on others (Intel's documentation), so AMD machines agree with each
other's AVX2 runs but not necessarily with Intel's.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from pathlib import Path
from typing import Any

from codex_ml.runtime import StageError

KERNELS = ("avx2", "native")
PINNED = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
}
_MKL_BRANCHES = {0: "unpinned", 1: "unpinned", 2: "auto", 3: "compatible", 10: "AVX2", 12: "AVX-512"}
_MKL_STRICT = 0x10000


def x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def pin(kernels: str) -> None:
    """Set the libraries' settings for `kernels`: call before torch or numpy is imported."""
    if kernels not in KERNELS:
        raise StageError(f"kernels: expected one of {', '.join(KERNELS)}, got {kernels!r}")
    if kernels == "native" or not x86_64():
        return
    loaded = [m for m in ("torch", "numpy") if m in sys.modules]
    if loaded and any(os.environ.get(k) != v for k, v in PINNED.items()):
        raise StageError(f"kernels {kernels}: {' and '.join(loaded)} loaded before the kernels were pinned; "
                         "call codex_ml.kernels.pin first (the stage scripts do)")
    os.environ.update(PINNED)


def pin_from_params(path: str | Path, section: str) -> None:
    """`pin` as `section.kernels` of a params file says (avx2 without the file or the key). Read raw,
    before the params are validated: a value that is not a kernels name is left to the stage's own
    validation, which names it."""
    import yaml

    kernels: object = "avx2"
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) if Path(path).is_file() else {}
        kernels = ((raw or {}).get(section) or {}).get("kernels", "avx2")
    except (OSError, yaml.YAMLError, AttributeError):
        return
    if kernels in KERNELS:
        pin(str(kernels))


def in_use() -> dict[str, str]:
    """The kernels this process runs on (after torch has loaded): ATen's capability and MKL's branch."""
    import torch

    torch.mm(torch.ones(2, 2), torch.ones(2, 2))  # MKL reads its settings at its first call
    out = {"aten": torch.backends.cpu.get_cpu_capability()}
    branch = _mkl_branch(torch)
    if branch is not None:
        out["mkl"] = branch
    return out


def _mkl_branch(torch: Any) -> str | None:
    """MKL's conditional-reproducibility branch, read from the MKL linked into torch; None without it."""
    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        get = lib.mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    value = get(-1)  # MKL_CBWR_ALL: the branch and the STRICT flag
    name = _MKL_BRANCHES.get(value & 0xFFFF, str(value & 0xFFFF))
    return name + (" strict" if value & _MKL_STRICT else "")


def check(kernels: str, key: str) -> str:
    """Verify that the kernels in use are those `kernels` names (`key`: the param, for the message);
    returns them in words for the stage's log."""
    if not x86_64():
        return f"{platform.machine()} CPU: its own kernels ({key} {kernels} pins x86-64 CPUs only)"
    used = in_use()
    words = f"ATen {used['aten']}" + (f", MKL {used['mkl']}" if "mkl" in used else "")
    if kernels == "native":
        return f"native: {words}"
    if used["aten"] != "AVX2":
        why = ("this CPU has no AVX2" if used["aten"] == "DEFAULT"
               else "torch was loaded before the kernels were pinned (codex_ml.kernels.pin)")
        raise StageError(f"{key} {kernels}: the kernels in use are {words}, not AVX2: {why}; "
                         f"set {key}: native to run on this CPU's own kernels (other bytes)")
    if used.get("mkl", "AVX2 strict") != "AVX2 strict" and _intel():
        raise StageError(f"{key} {kernels}: MKL runs its {used['mkl']} branch, not AVX2 strict: "
                         f"MKL_CBWR was set after MKL loaded; pin before importing torch")
    return f"avx2: {words}, oneDNN <= AVX2, OpenBLAS Haswell"


def _intel() -> bool:
    """MKL honours a code branch on Intel CPUs only; elsewhere it reports its own."""
    try:
        return "GenuineIntel" in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
