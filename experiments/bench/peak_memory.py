"""Resident-memory readings for the CPU benchmarks (Linux /proc)."""

from __future__ import annotations


def status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status; CPU peak memory needs Linux")


def reset_peak() -> int:
    """Reset the peak resident set (VmHWM) to the resident set now, and return that."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return status_bytes("VmRSS")
