# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Whether this CPU multiplies in bf16 in hardware (AVX512-BF16 or AMX),
which is when bf16 autocast on the CPU is faster than float32."""
import os
import os.path as osp
import platform
from typing import Tuple

#: CPU flags (as /proc/cpuinfo lists them) of bf16 arithmetic in hardware
BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


def cpuinfo_path() -> str:
    """``/proc/cpuinfo``, or the file that ``MMDYNAMIXER_CPUINFO`` names (to
    check another CPU's flags, e.g. in tests)."""
    return os.environ.get('MMDYNAMIXER_CPUINFO', '/proc/cpuinfo')


def cpu_flags(cpuinfo: str = None) -> set:
    """The flags of the first processor listed in ``cpuinfo`` (Linux)."""
    cpuinfo = cpuinfo or cpuinfo_path()
    if not osp.isfile(cpuinfo):
        return set()
    with open(cpuinfo) as f:
        for line in f:
            if line.startswith('flags'):
                return set(line.split(':', 1)[1].split())
    return set()


def cpu_bf16_support(cpuinfo: str = None) -> Tuple[bool, str]:
    """``(supported, why)``: whether the CPU has bf16 instructions, and a
    sentence that says which (or that it has none) for the log."""
    cpuinfo = cpuinfo or cpuinfo_path()
    flags = cpu_flags(cpuinfo)
    found = [f for f in BF16_FLAGS if f in flags]
    if found:
        return True, f'the CPU has {" and ".join(found)}'
    if not flags:
        return False, (f'no CPU flags could be read ({cpuinfo}, '
                       f'{platform.system()})')
    return False, (f'the CPU has none of {", ".join(BF16_FLAGS)} (bf16 '
                   'would run emulated, slower than float32)')


__all__ = ['BF16_FLAGS', 'cpu_bf16_support', 'cpu_flags', 'cpuinfo_path']
