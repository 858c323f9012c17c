"""Validation of model inputs (shape, type, dtype, finite values) and outputs (finite values), with errors
that say the fix."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from geounet.errors import GeounetError

NONFINITE_POLICIES = ("raise", "warn")


class NonFiniteInputWarning(UserWarning):
    """A model input holds NaN or Inf values (issued once per model with ``nonfinite="warn"``)."""


class NonFiniteOutputWarning(UserWarning):
    """A model's output holds NaN or Inf values from a finite input (once per model with ``nonfinite="warn"``)."""


class NonFiniteOutputError(GeounetError, FloatingPointError):
    """A model's output holds NaN or Inf values although its input is finite."""


def check_model_input(x: object, num_nodes: int, channels: int, dtype: torch.dtype, name: str,
                      nonfinite: str = "raise", warned: set | None = None) -> Tensor:
    """Check that ``x`` is a ``[batch, num_nodes, channels]`` tensor of ``dtype`` with finite values.

    A numpy array, a tensor of another floating dtype (float64 into a float32 model) or a
    wrong shape is refused with a ``TypeError`` / ``ValueError`` that names the fix. NaN or
    Inf values raise a ``ValueError`` naming their count and the first position, or, with
    ``nonfinite="warn"``, warn once (``warned`` records that, per model) and pass through.
    Under autocast the model's parameters may differ from the compute dtype, so any
    floating dtype is accepted there. Inside ``torch.compile`` the NaN check is an in-graph
    assertion (``torch._assert_async``), which raises without the count.
    """
    if not isinstance(x, Tensor):
        hint = " with torch.from_numpy(x)" if type(x).__module__ == "numpy" else ""
        raise TypeError(f"{name} takes a torch.Tensor [batch, {num_nodes}, {channels}], got {type(x).__name__}; "
                        f"convert it{hint} and move it to the model's device and dtype")
    if x.dim() != 3 or x.shape[1] != num_nodes or x.shape[2] != channels:
        raise GeounetError(f"{name} expects input of shape [batch, {num_nodes}, {channels}] (batch, nodes of the "
                         f"hierarchy's finest level, in_channels), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} takes floating-point features, got {x.dtype}; convert with x.to({dtype})")
    if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f"{name} has {dtype} parameters but the input is {x.dtype}; convert the input with "
                        f"x.to({dtype}) or the model with model.to({x.dtype})")
    finite = torch.isfinite(x)
    if torch.compiler.is_compiling():  # no data-dependent branch in a graph: an in-graph assertion
        torch._assert_async(finite.all(), f"{name} input holds NaN/Inf values; clean the input")
        return x
    if not bool(finite.all()):
        bad = (~finite).nonzero()
        sample, node, channel = bad[0].tolist()
        message = (f"{name} input holds {len(bad)} NaN/Inf value(s) (first: sample {sample}, node {node}, "
                   f"channel {channel}); every output that depends on them would be NaN. Clean the input")
        _report(message, nonfinite, warned, "nonfinite", GeounetError, NonFiniteInputWarning)
    return x


def check_model_output(y: Tensor, x: Tensor, name: str, nonfinite: str = "raise", warned: set | None = None) -> Tensor:
    """Check that the output ``y`` is finite where the input ``x`` is (see :func:`check_model_input`).

    Finite inputs can still give NaN / Inf outputs: values so large that they overflow
    float32 inside the network (squares in norms overflow from about 1e19), or weights
    that are no longer finite. That raises :class:`NonFiniteOutputError` naming both
    causes, or with ``nonfinite="warn"`` warns once. Outputs of non-finite inputs were
    already reported by the input check and pass; inside ``torch.compile`` nothing is checked.
    """
    if torch.compiler.is_compiling() or bool(torch.isfinite(y).all()):
        return y
    if not bool(torch.isfinite(x).all()):
        return y
    message = (f"{name} output holds {int((~torch.isfinite(y)).sum())} NaN/Inf value(s) from a finite input (largest "
               f"|input| {float(x.abs().max()):.3g}): values that large overflow {x.dtype} inside the network, and "
               "non-finite weights (a diverged training) do the same; standardise the input (mean 0, std 1) or "
               "lower train.lr")
    _report(message, nonfinite, warned, "nonfinite_output", NonFiniteOutputError, NonFiniteOutputWarning)
    return y


def _report(message: str, nonfinite: str, warned: set | None, key: str, error: type[Exception],
            warning: type[Warning]) -> None:
    """Raise ``error(message)`` under ``nonfinite="raise"``; else warn once per model (``key`` in ``warned``)."""
    if nonfinite == "raise":
        raise error(message)
    if warned is not None and key not in warned:
        warned.add(key)
        warnings.warn(message, warning, stacklevel=4)  # at the model's caller
