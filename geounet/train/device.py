"""Device names checked before a run starts: a typo or a missing GPU is one line, not a traceback."""

from __future__ import annotations

import torch

from geounet.errors import GeounetError

DEVICE_TYPES = ("cpu", "cuda", "mps")


def usable_device(name: str | torch.device, option: str = "train.device") -> torch.device:
    """``name`` as a ``torch.device`` after checking that this machine has it; ``option`` names the
    setting in the message (``train.device``, ``--device``)."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise GeounetError(f"{option} = {str(name)!r} is not a device; use 'cpu', 'cuda' (or 'cuda:N', the N-th GPU) "
                           "or 'mps'")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GeounetError(f"{option} = {str(name)!r} but this machine has no usable CUDA GPU "
                               "(torch.cuda.is_available() is False); use 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise GeounetError(f"{option} = {str(name)!r} but this machine has {torch.cuda.device_count()} CUDA "
                               f"GPU(s), cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise GeounetError(f"{option} = {str(name)!r} but this machine has no Apple GPU (MPS); use 'cpu'")
    return device
