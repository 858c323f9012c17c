"""One autoregressive forecast model for every forecasting task (shallow water, ``forecast``).

**Inputs.** A forecast batch is structured, never packed (:class:`ForecastInputs`): the
``T_in`` latest states ``x_{t-T_in+1..t}`` in physical units, the forcings of the
``S T_out`` output times and the constant fields. The model rolls ``S`` steps out, as
many as the forcings cover; one step maps the ``T_in`` states, the ``T_out`` forcings of
its outputs and the constants to the ``T_out`` next states.

**Units.** The model owns the normalisation (:class:`Normalisation`, buffers saved with
the weights): per variable c the training mean μ_c, standard deviation σ_c and increment
scale σ_Δ,c, and the pixel mask ``valid [N, C]``. The network sees the states
standardised, z = (x - μ) / σ (0 where not valid), and predicts the increment over the last
input state in units of σ_Δ, so one step is

    z_{t+j} = z_t + r ⊙ net([z_{t-T_in+1..t}, F_{t+1..t+T_out}, K], cond = lead),   j = 1..T_out,
    r = σ_Δ / σ,

fed back for the next step (the last ``T_in`` states). The output, what the loss and the
relative L2 compare with the targets, is the change since the initial state in units of
σ_Δ,

    y_j = (x_{t+j} - x_t) / σ_Δ = (z_{t+j} - z_t) / r,       ``[B, N, S T_out C]``,

so that a zero network (persistence) has relative L2 error 1, and the squared error is
that of the forecast states, |x̂ - x|² / σ_Δ². :meth:`Autoregressive.physical` maps y back
to states, x_t + σ_Δ y. A task with σ_Δ = σ (``forecast``) trains on standardised state
errors. Where ``valid`` is False every output is 0 (as the targets there): those pixels
count in no loss.

**Lead conditioning.** A network with FiLM layers (a conditioned U-Net) gets ``cond =
min(s, k) / k`` at step s = 1, 2, ..., the lead in units of the trained horizon of k steps,
held at 1 beyond it; a network without them sees the same inputs without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.models.sizing import parameter_counts


@dataclass
class ForecastInputs:
    """What one forecast needs besides the model, each part a separate field."""

    state: Tensor  # [B, T_in, N, C] physical units, anything (NaN) where not valid
    forcings: Tensor  # [B, S, T_out, N, F] at the valid times of the S T_out outputs
    constants: Tensor  # [N, K] standardised constant fields

    @property
    def steps(self) -> int:
        """The autoregressive steps S the forcings cover."""
        return self.forcings.shape[1]

    def to(self, device: torch.device | str) -> ForecastInputs:
        return ForecastInputs(self.state.to(device), self.forcings.to(device), self.constants.to(device))


class Normalisation(nn.Module):
    """The units of a forecast model (module docstring): buffers ``mean``, ``std``,
    ``increment_std`` ``[C]`` (physical units) and ``valid [N, C]`` (bool)."""

    def __init__(self, mean: Tensor, std: Tensor, increment_std: Tensor, valid: Tensor) -> None:
        super().__init__()
        channels = mean.shape[0]
        if not std.shape == increment_std.shape == (channels,) or valid.shape[-1] != channels:
            raise GeounetError(f"statistics of {channels} variables need std and increment_std [{channels}] and "
                               f"valid [N, {channels}], got {tuple(std.shape)}, {tuple(increment_std.shape)}, "
                               f"{tuple(valid.shape)}")
        if not (bool((std > 0).all()) and bool((increment_std > 0).all())):
            raise GeounetError("the training statistics have a zero standard deviation; a variable is constant over "
                               "the training data: drop it from task.variables")
        for name, value in (("mean", mean), ("std", std), ("increment_std", increment_std)):
            self.register_buffer(name, value.detach().float().clone())
        self.register_buffer("valid", valid.detach().bool().clone())

    @classmethod
    def identity(cls, channels: int, nodes: int) -> Normalisation:
        """μ = 0, σ = σ_Δ = 1, every pixel valid: the shape a checkpoint's statistics are loaded into."""
        return cls(torch.zeros(channels), torch.ones(channels), torch.ones(channels),
                   torch.ones(nodes, channels, dtype=torch.bool))

    @property
    def ratio(self) -> Tensor:
        """r = σ_Δ / σ ``[C]``: an increment in units of σ_Δ, in standard units."""
        return self.increment_std / self.std

    def standardise(self, states: Tensor) -> Tensor:
        """Physical ``[..., N, C]`` -> z = (x - μ) / σ, 0 where not valid."""
        return torch.where(self.valid, (states - self.mean) / self.std, 0.0)

    def changes(self, states: Tensor, initial: Tensor) -> Tensor:
        """The model's targets: ``(states - initial) / σ_Δ`` ``[..., N, C]`` (``initial``
        broadcast against ``states``), 0 where not valid."""
        return torch.where(self.valid, (states - initial) / self.increment_std, 0.0)


class Autoregressive(nn.Module):
    """``net`` rolled out over the steps its :class:`ForecastInputs` cover (module docstring).

    ``forward(inputs, hierarchy) -> [B, N, S T_out C]``: the changes y since the last input
    state in units of σ_Δ; :meth:`physical` turns them into states.
    """

    def __init__(self, net: nn.Module, normalisation: Normalisation, input_steps: int, output_steps: int,
                 train_rollout: int) -> None:
        super().__init__()
        self.net, self.normalisation = net, normalisation
        self.input_steps, self.output_steps, self.train_rollout = input_steps, output_steps, train_rollout
        self.conditioned = any(getattr(m, "film", None) is not None for m in net.modules())

    @property
    def channels(self) -> int:
        return self.normalisation.mean.shape[0]

    def parameter_counts(self) -> dict[str, int]:
        """The wrapped network's per-part counts (the wrapper itself has no parameters)."""
        return parameter_counts(self.net)

    def _check(self, inputs: ForecastInputs) -> None:
        b, t_in, n, c = inputs.state.shape
        f = inputs.forcings
        if (t_in, c) != (self.input_steps, self.channels) or f.dim() != 5 or f.shape[0] != b \
                or f.shape[2:4] != (self.output_steps, n) or inputs.constants.shape[0] != n:
            raise GeounetError(f"forecast inputs of shapes state {tuple(inputs.state.shape)}, forcings "
                               f"{tuple(f.shape)}, constants {tuple(inputs.constants.shape)} do not fit the model's "
                               f"[B, {self.input_steps}, N, {self.channels}], [B, S, {self.output_steps}, N, F], "
                               "[N, K]")

    def forward(self, inputs: ForecastInputs, hierarchy: Hierarchy) -> Tensor:
        self._check(inputs)
        b, t_in, n, c = inputs.state.shape
        units = self.normalisation
        ratio, valid = units.ratio, units.valid
        state = units.standardise(inputs.state)  # [B, T_in, N, C]
        constants = inputs.constants.to(state.dtype).expand(b, -1, -1)  # [B, N, K]
        initial = state[:, -1:]  # [B, 1, N, C]
        change = torch.zeros_like(initial)  # of the latest state since the initial one
        changes = []
        for s in range(inputs.steps):
            forcing = inputs.forcings[:, s].permute(0, 2, 1, 3).reshape(b, n, -1)  # [B, N, T_out F]
            x = torch.cat([state.permute(0, 2, 1, 3).reshape(b, n, t_in * c), forcing, constants], dim=-1)
            if self.conditioned:
                lead = torch.full((b, 1), min(s + 1, self.train_rollout) / self.train_rollout, device=x.device,
                                  dtype=x.dtype)
                increment = self.net(x, hierarchy, lead)
            else:
                increment = self.net(x, hierarchy)
            increment = increment.reshape(b, n, self.output_steps, c).transpose(1, 2)  # [B, T_out, N, C]
            step = torch.where(valid, change + ratio * increment, 0.0)  # [B, T_out, N, C] standard units
            changes.append(step)
            state = torch.cat([state, initial + step], dim=1)[:, -t_in:]
            change = step[:, -1:]
        y = torch.cat(changes, dim=1) / ratio  # [B, S T_out, N, C] in units of σ_Δ
        return y.permute(0, 2, 1, 3).reshape(b, n, -1)  # [B, N, S T_out C]

    def physical(self, y: Tensor, inputs: ForecastInputs) -> Tensor:
        """Outputs ``y [B, N, S T_out C]`` -> physical states ``[B, S T_out, N, C]``, x_t + σ_Δ y
        (NaN where not valid when the input state is)."""
        b, n, _ = y.shape
        changes = y.reshape(b, n, -1, self.channels).transpose(1, 2)  # [B, L, N, C]
        return inputs.state[:, -1:].to(y.device) + self.normalisation.increment_std * changes
