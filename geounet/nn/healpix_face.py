"""Spatial operators on HEALPix face images: padded ``"face"`` images in channels-last memory.

On a :class:`~geounet.hierarchy.healpix_face.HealpixFaceHierarchy` level the features
``[B, 12 n², C]`` are the channels-last face images ``[B, 12, n, n, C]`` (no copy). Padding
each face by one pixel with its neighbours' pixels (:func:`~geounet.functional.healpix_pad.pad_faces`,
zero beyond the 8 vertices where three faces meet) puts every pixel's 8 HEALPix neighbours
around it, in the same places as in its neighbour-table row: the neighbour in healpy slot
``k``, at face offset ``(dx, dy)`` of :data:`~geounet.geometry.healpix.NEIGHBOUR_OFFSETS`,
sits at image offset ``(dh, dw) = (-dx, -dy)`` (the layout has ``h = n-1-x``, ``w = n-1-y``).
So an operator over the 3 x 3 neighbourhood is shifted views of one padded tensor, and
``[B * 12, C, n + 2, n + 2]`` with channels-last strides (a view) is what ``conv2d`` reads
fastest. Two operators, each with a NEST twin of identical parameters:

- :class:`FaceKernelConv`, the geometric linear-kernel operator of
  :class:`~geounet.nn.message_passing.KernelConv` (``kernel="linear"``), realised as the 8
  shifted views times precomputed per-pixel weights ``phi_m(e_st) / deg_t`` (the masked
  slots weigh zero); its NEST twin is ``KernelConv`` itself;
- :class:`HealpixConv3x3`, a dense 3 x 3 convolution, on face images ``nn.Conv2d`` on the
  padded images (as DLWP-HEALPix does), on NEST grids a 9-point stencil over the neighbour
  table with each slot at the kernel position of its image offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geounet.errors import GeounetError
from geounet.functional.healpix_pad import face_padding_gather, pad_faces
from geounet.geometry.healpix import NEIGHBOUR_OFFSETS
from geounet.hierarchy.base import Hierarchy
from geounet.nn.message_passing import KernelConv, MessagePassingFactory, prepared_graph


@dataclass(frozen=True)
class FacePadding:
    """The gather of one-pixel HEALPix padding (:func:`~geounet.functional.healpix_pad.face_padding_gather`)."""

    positions: Tensor  # [P] int64, border pixels of the padded images [12, n + 2, n + 2]
    sources: Tensor  # [P] int64, the face-order node each reads


def face_padding(hierarchy: Hierarchy, level: int, nside: int) -> FacePadding:
    """The one-pixel padding gather of ``level`` (face side ``nside``), memoised on ``hierarchy``."""

    def build() -> FacePadding:
        return FacePadding(*(t.to(hierarchy.device) for t in face_padding_gather(nside, 1)))

    return hierarchy.cached("face_padding", level, build)


def padded_images(x: Tensor, hierarchy: Hierarchy, level: int, nside: int) -> Tensor:
    """``x [B, 12 n², C]`` as padded channels-last face images ``[B, 12, n + 2, n + 2, C]``."""
    padding = face_padding(hierarchy, level, nside)
    images = x.reshape(x.shape[0], 12, nside, nside, x.shape[-1])  # a view of contiguous features
    return pad_faces(images, padding.positions, padding.sources, 1)


def shifted(padded: Tensor, dx: int, dy: int, nside: int) -> Tensor:
    """``[B, 12, n, n, C]`` view of ``padded`` holding every pixel's neighbour at face offset ``(dx, dy)``."""
    return padded[:, :, 1 - dx: 1 - dx + nside, 1 - dy: 1 - dy + nside]


def _check_healpix_level(op: nn.Module, hierarchy: Hierarchy, level: int, x: Tensor, channels: int) -> None:
    if hierarchy.healpix_face_nside(level) is None and hierarchy.healpix_nside(level) is None:
        raise GeounetError(f"{type(op).__name__} runs on HEALPix levels (NEST or 'face' node order), but level "
                           f"{level} of this {hierarchy.kind} is neither; build the model with operator "
                           "'message_passing' for this kind")
    num_nodes = hierarchy.num_nodes(level)
    if x.dim() != 3 or x.shape[1] != num_nodes or x.shape[2] != channels:
        raise GeounetError(f"{type(op).__name__} expects features [batch, {num_nodes}, {channels}], "
                           f"got {tuple(x.shape)}")


class HealpixConv3x3(nn.Module):
    """A dense 3 x 3 convolution on a HEALPix level, ``[B, N, C_in] -> [B, N, C_out]``,

        y_t = b + sum_{i,j} W[:, :, i, j] x_{s(t, i - 1, j - 1)},

    where ``s(t, dh, dw)`` is the pixel at ``"face"`` image offset ``(dh, dw)`` from ``t``,
    continued across face edges (HEALPix padding), and contributes zero where there is none
    (beyond the 8 three-face vertices, one diagonal of the 24 pixels there). On a face
    hierarchy this is ``conv2d`` on the padded channels-last face images; on a NEST hierarchy
    the same sum as a 9-point stencil over the neighbour table (slot at face offset ``(dx, dy)``
    -> kernel position ``(1 - dx, 1 - dy)``), so one state_dict gives equal outputs on both.

    What it gives up against the geometric operator (:class:`FaceKernelConv`), whose kernel
    reads each neighbour's displacement in local (east, north) coordinates: the kernel is tied
    to the face grid's directions. On the equatorial faces the grid diagonals point north-south
    and east-west everywhere, but on the polar faces the meridians converge towards the pole
    corner, so the grid turns relative to local north away from the face's central meridian
    and its axes shear (most near the side corners); one kernel therefore weighs the same
    geographic neighbour differently on polar and equatorial faces and is not equivariant to
    rotations that move one kind of face onto the other. It ignores the grid's distortion (the
    neighbour distances and angles that vary over a face), and at the three-face vertices one
    of its 9 taps reads zero. It keeps the 90° rotations about the polar axis
    (``hierarchy.node_symmetries()["rotate_90"]``), which move whole faces onto faces of the
    same row with the same image orientation.
    """

    def __init__(self, level: int, in_channels: int, out_channels: int):
        super().__init__()
        self.level = level
        self.conv = nn.Conv2d(in_channels, out_channels, 3)

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:  # [B, N, C_in]
        _check_healpix_level(self, hierarchy, self.level, x, self.conv.in_channels)
        nside = hierarchy.healpix_face_nside(self.level)
        if nside is None:
            return self._nest_stencil(x, hierarchy)
        batch, num_nodes, channels = x.shape
        padded = padded_images(x, hierarchy, self.level, nside)  # [B, 12, n + 2, n + 2, C_in]
        images = padded.view(batch * 12, nside + 2, nside + 2, channels).permute(0, 3, 1, 2)  # channels-last view
        out = self.conv(images)  # [B * 12, C_out, n, n], channels-last
        return out.permute(0, 2, 3, 1).reshape(batch, num_nodes, out.shape[1])  # a view: [B, N, C_out]

    def _nest_stencil(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:
        """The same sum on a NEST level: a gather of the 9 stencil pixels and one matmul."""
        stencil = nest_stencil(hierarchy, self.level)
        batch, num_nodes, channels = x.shape
        gathered = x.index_select(1, stencil.sources.reshape(-1)).view(batch, num_nodes, 9, channels)
        gathered = gathered * stencil.present.to(x.dtype)[..., None]  # [B, N, 9, C_in]; absent: zero
        weight = self.conv.weight.permute(0, 2, 3, 1).reshape(self.conv.out_channels, 9 * channels)
        return F.linear(gathered.flatten(2), weight, self.conv.bias)  # [B, N, C_out]


@dataclass(frozen=True)
class NestStencil:
    """The 3 x 3 stencil of every NEST pixel in kernel order (row-major over (i, j))."""

    sources: Tensor  # [N, 9] int64; absent: the pixel itself
    present: Tensor  # [N, 9] bool


def nest_stencil(hierarchy: Hierarchy, level: int) -> NestStencil:
    """:class:`NestStencil` of a NEST ``level`` from its neighbour table, memoised on ``hierarchy``:
    kernel position ``(1, 1)`` is the pixel, ``(1 - dx, 1 - dy)`` its neighbour at face offset ``(dx, dy)``."""

    def build() -> NestStencil:
        graph = hierarchy.graph(level)
        num_nodes = hierarchy.num_nodes(level)
        sources = torch.arange(num_nodes, device=graph.neighbours.device)[:, None].repeat(1, 9)
        present = torch.ones(num_nodes, 9, dtype=torch.bool, device=sources.device)
        for slot, (dx, dy) in enumerate(NEIGHBOUR_OFFSETS):
            position = 3 * (1 - dx) + (1 - dy)
            sources[:, position] = graph.neighbours[:, slot]
            present[:, position] = graph.neighbour_mask[:, slot]
        return NestStencil(sources, present)

    return hierarchy.cached("nest_stencil", level, build)


class HealpixConv3x3Factory:
    """:class:`~geounet.nn.blocks.OperatorFactory` of :class:`HealpixConv3x3` for a HEALPix kind
    (NEST or face node order)."""

    def __init__(self, hierarchy: Hierarchy):
        for level in range(hierarchy.num_levels):
            if hierarchy.healpix_face_nside(level) is None and hierarchy.healpix_nside(level) is None:
                raise GeounetError(f"operator 'conv3x3' needs HEALPix levels (NEST or 'face' node order), but level "
                                   f"{level} of this {hierarchy.kind} is neither; use operator 'message_passing'")
        self.kind = hierarchy.kind

    def __call__(self, level: int, in_channels: int, out_channels: int) -> HealpixConv3x3:
        return HealpixConv3x3(level, in_channels, out_channels)


@dataclass(frozen=True)
class FaceKernelWeights:
    """Per-pixel weights ``A_m(s, t) = phi_m(e_st) / deg_t`` of the linear kernel, slot by slot."""

    weights: Tensor  # [8, 12, n, n, M, 1]; zero in masked slots


class FaceKernelConv(KernelConv):
    """:class:`~geounet.nn.message_passing.KernelConv` that, with the linear kernel on a face-ordered
    level, runs on padded face images:

        agg_m[t] = sum_k A_m(s_k(t), t) x[s_k(t)],     y = W_0 x + b + sum_m W_m agg_m,

    with ``x[s_k(t)]`` the padded images shifted by slot ``k``'s image offset (zero where the
    slot is masked, which also weighs zero) and ``A_m`` the weights of the level's prepared
    neighbour table (:func:`~geounet.nn.message_passing.prepared_graph`), the very numbers the
    table path uses. Same parameters as ``KernelConv`` (``linear``), so a NEST model's
    state_dict loads into the face model.

    The face-image form runs where a compiler traces the model (torch.compile, export), which
    fuses the 8 shifted products into one loop over the pixels and sees no opaque sparse
    product. Eager, each shifted product is a pass over ``[B, N, M, C]`` and together they
    cost more than ``KernelConv``'s one sparse product over the level's (renumbered) neighbour
    table, so eager calls, other kernels and other levels take ``KernelConv``'s paths, which
    give the same sums to rounding (tested against each other).
    """

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:  # [B, N, C_in]
        nside = hierarchy.healpix_face_nside(self.level)
        if nside is None or self.kernel is not None:
            return super().forward(x, hierarchy)
        if not torch.compiler.is_compiling():
            self.prepare_face_path(hierarchy, nside)  # memoised for a later compiled call, which builds nothing
            return super().forward(x, hierarchy)
        return self.face_forward(x, hierarchy, nside)

    def face_forward(self, x: Tensor, hierarchy: Hierarchy, nside: int) -> Tensor:
        """The face-image realisation (linear kernel, face-ordered level)."""
        self._check_features(x, hierarchy.num_nodes(self.level))
        batch, num_nodes, channels = x.shape
        weights = self._face_weights(hierarchy, nside).weights.to(x.dtype)  # a no-op but under autocast
        padded = padded_images(x, hierarchy, self.level, nside)  # [B, 12, n + 2, n + 2, C_in]
        aggregated = WeightedShifts.apply(padded, weights)  # [B, 12, n, n, M, C_in]
        return self._mix(x, aggregated.view(batch, num_nodes, self.num_kernels, channels))  # [B, N, C_out]

    def prepare(self, hierarchy: Hierarchy) -> None:
        """Memoise what :meth:`forward` reads on every path (see ``KernelConv.prepare``)."""
        super().prepare(hierarchy)
        nside = hierarchy.healpix_face_nside(self.level)
        if nside is not None and self.kernel is None:
            self.prepare_face_path(hierarchy, nside)

    def prepare_face_path(self, hierarchy: Hierarchy, nside: int) -> None:
        """Memoise the weights and the padding gather of :meth:`face_forward` on ``hierarchy``."""
        self._face_weights(hierarchy, nside)
        face_padding(hierarchy, self.level, nside)

    def _face_weights(self, hierarchy: Hierarchy, nside: int) -> FaceKernelWeights:
        dtype = self.linear.weight.dtype

        def build() -> FaceKernelWeights:
            graph = prepared_graph(hierarchy, self.level, self.edge_features, "table", dtype)
            weights = self._edge_weights(graph.neighbour_features, graph.neighbour_norm)  # [N, 8, M]
            return FaceKernelWeights(weights.permute(1, 0, 2).reshape(8, 12, nside, nside, -1, 1).contiguous())

        return hierarchy.cached(("face_kernel_weights", self.edge_features, dtype), self.level, build)


class WeightedShifts(torch.autograd.Function):
    """``agg[..., m, :] = sum_k weights[k, ..., m] * shift_k(padded)`` for padded images ``[B, 12, n + 2,
    n + 2, C]`` and constant per-pixel weights ``[8, 12, n, n, M, 1]`` (slot k at face offset
    :data:`~geounet.geometry.healpix.NEIGHBOUR_OFFSETS` ``[k]``): ``[B, 12, n, n, M, C]``.

    The backward pass keeps only the weights and sums ``sum_m weights[k, ..., m] grad[..., m, :]``
    of every slot into one zero tensor of the padded shape, where autograd through 8 slices
    would fill a zero tensor of that shape per slot.
    """

    @staticmethod
    def forward(ctx, padded: Tensor, weights: Tensor) -> Tensor:
        nside = padded.shape[2] - 2
        out = None
        for slot, (dx, dy) in enumerate(NEIGHBOUR_OFFSETS):
            neighbour = shifted(padded, dx, dy, nside)[..., None, :]  # [B, 12, n, n, 1, C]
            out = neighbour * weights[slot] if out is None else out.addcmul_(neighbour, weights[slot])
        ctx.save_for_backward(weights)
        ctx.padded_shape = padded.shape
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (weights,) = ctx.saved_tensors
        nside = ctx.padded_shape[2] - 2
        grad_padded = grad.new_zeros(ctx.padded_shape)
        for slot, (dx, dy) in enumerate(NEIGHBOUR_OFFSETS):
            shifted(grad_padded, dx, dy, nside).add_((grad * weights[slot]).sum(-2))
        return grad_padded, None


class FaceKernelConvFactory(MessagePassingFactory):
    """:class:`~geounet.nn.message_passing.MessagePassingFactory` making :class:`FaceKernelConv`."""

    def __call__(self, level: int, in_channels: int, out_channels: int) -> FaceKernelConv:
        return FaceKernelConv(level, in_channels, out_channels, self._num_features[level], self.kernel,
                              self.num_kernels, self.kernel_hidden, self.backend, self.edge_features)
