"""What this machine computes with: CPU model and flags, GPUs, and the precision a run resolves to.

``config.choose_precision`` is the pure rule (tested with given flag sets); this module reads the
machine (/proc/cpuinfo, TensorFlow's GPU list) and applies it.
"""
from __future__ import annotations

import os
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(name: str) -> str:
    try:
        for line in CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return ""


def cpu_flags() -> set:
    """The CPU's feature flags (the first "flags" line of /proc/cpuinfo; empty elsewhere)."""
    return set(_cpuinfo_field("flags").split())


def cpu_model() -> str:
    """The CPU's model name, or the platform's processor string."""
    import platform

    return _cpuinfo_field("model name") or platform.processor() or "unknown"


def has_gpu() -> bool:
    """A GPU TensorFlow can use (asks TensorFlow only when it is already loaded: pages stay TF-free;
    before that, an NVIDIA device node counts)."""
    import sys

    if "tensorflow" in sys.modules:
        return bool(sys.modules["tensorflow"].config.list_physical_devices("GPU"))
    return any(Path("/dev").glob("nvidia[0-9]*"))


def resolve_precision(setting: str) -> str:
    """``mixed_precision`` setting (auto | float32 | bfloat16, or an old bool) -> float32 | bfloat16 here."""
    from noisycore.config import choose_precision

    return choose_precision(setting, cpu_flags=cpu_flags(), has_gpu=has_gpu())


def precision_note(setting: str) -> str:
    """One line for the Train page: what ``setting`` resolves to on this machine, and why."""
    chosen, auto = resolve_precision(setting), resolve_precision("auto")
    if setting != "auto":
        return f"Computing in {chosen} (set under Speed; auto would pick {auto} on this machine)."
    flags = sorted(cpu_flags() & {"amx_bf16", "avx512_bf16"})
    why = "a GPU" if has_gpu() else (f"CPU flags {', '.join(flags)}" if flags else "no native bfloat16 on this CPU")
    return f"Precision auto → {chosen} on this machine ({why})."


def describe() -> dict:
    """CPU model, core count, the bfloat16-related flags and the load average (for benchmark records)."""
    flags = cpu_flags()
    return {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
            "bf16_flags": sorted(flags & {"amx_bf16", "amx_tile", "avx512_bf16", "avx512f"}),
            "load_average": [round(v, 2) for v in os.getloadavg()]}
