"""Resident-memory readings of the current process (Linux ``/proc``), for the benchmarks."""

from __future__ import annotations


def status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field in MB: ``VmRSS`` now, ``VmHWM`` the peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_peak_rss() -> None:
    """Reset the peak (``VmHWM``) to the current RSS: writing 5 to ``clear_refs``."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
