"""Whether bf16 matmuls are native here, for `matmul_dtype="auto"` (chapter 3, benchmarks)."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

# x86 flags (Linux /proc/cpuinfo) of the instructions that make a bf16 matmul fast: AVX-512-BF16
# (Cooper Lake, Zen 4 and later) and AMX (Sapphire Rapids and later). Without either, torch
# emulates bf16 and a matmul is many times slower than in fp32.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags listed on the `flags` lines of /proc/cpuinfo text (x86 Linux)."""
    if not isinstance(cpuinfo, str):
        raise TypeError(f"cpuinfo must be the text of /proc/cpuinfo, got {type(cpuinfo).__name__}")
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            flags.update(value.split())
    return flags


def native_bf16(cpuinfo: str | None = None, system: str | None = None) -> bool:
    """True when this CPU has AVX-512-BF16 or AMX-BF16 (read from /proc/cpuinfo on Linux).

    `cpuinfo` and `system` (as `platform.system()` names it) stand in for the machine's in tests.
    Other systems answer False: bf16 is then used only on CUDA, never guessed on a CPU.
    """
    system = platform.system() if system is None else system
    if system != "Linux":
        return False
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            return False
    return any(flag in cpu_flags(cpuinfo) for flag in NATIVE_BF16_FLAGS)


def auto_matmul_dtype(device: str | torch.device) -> torch.dtype:
    """bfloat16 on CUDA and on CPUs with native bf16, float32 elsewhere (`matmul_dtype="auto"`)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16
    if device.type == "cpu" and native_bf16():
        return torch.bfloat16
    return torch.float32


def describe_cpu() -> str:
    """One line for benchmark output: CPU model, native bf16 yes/no, torch's vector ISA, threads."""
    model = platform.processor() or platform.machine()
    try:
        for line in CPUINFO.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    bf16 = "yes" if native_bf16() else "no (emulated)"
    capability = torch.backends.cpu.get_cpu_capability()
    return (
        f"CPU {model}; native bf16: {bf16}; torch ISA {capability}; "
        f"{torch.get_num_threads()} threads"
    )
