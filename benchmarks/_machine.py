"""What machine a benchmark ran on: printed before its figures."""

from __future__ import annotations

import os
import platform


def machine_lines() -> list[str]:
    import numba
    import numpy
    import pyarrow

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            kb = int(fh.readline().split()[1])
            mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return [
        f"machine: {cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.machine()}",
        f"python {platform.python_version()}, numpy {numpy.__version__}, numba {numba.__version__},"
        f" pyarrow {pyarrow.__version__}",
        "load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
        + " (other work on the machine skews the figures)",
    ]
