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


def peak_step_bytes(step, device) -> int:
    """Peak memory of one call of ``step`` after a warm-up call (one-time library and allocator
    initialisation): ``torch.cuda.max_memory_allocated`` over the allocation before the call
    on CUDA; on the CPU the rise of the peak resident set (VmHWM, reset first) over the
    resident set before the call."""
    import torch

    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = reset_peak()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else status_bytes("VmHWM")
    return max(peak - base, 0)
