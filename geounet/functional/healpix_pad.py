"""HEALPix neighbour padding of face images: each face continued by its neighbours' pixels.

A HEALPix map in the ``"face"`` layout (:mod:`geounet.geometry.healpix`) is 12 images of
``n x n`` pixels. Padding face ``f`` by ``p`` pixels puts around it the pixels of the faces
glued to it, in their orientation on the sphere (:func:`~geounet.geometry.healpix.face_padding_index`),
so a ``k x k`` convolution with ``p = k // 2`` sees every pixel's true neighbours, across face
edges too. Beyond each of the 8 vertices where only three faces meet (z = ±2/3) the
``p x p`` corner block has no pixel on the sphere; the padding puts **zero** there, which is
what the neighbour-table operators give a missing neighbour (a masked slot weighs zero), so
the face-image and NEST forms of one operator agree exactly.

The padding is a zero pad (one copy of the interior) and one gather of the ``~48 n p`` border
pixels written into it, with index tensors computed once per grid
(:func:`face_padding_gather`): standard operators only, traced by torch.compile and export;
its backward pass is the adjoint written out (:class:`FacePad`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from geounet.geometry.healpix import face_padding_index, nside_of


def face_padding_gather(nside: int, pad: int) -> tuple[Tensor, Tensor]:
    """``(positions, sources)``, each ``[P]`` int64: the border pixels of the padded images
    ``[12, n + 2p, n + 2p]`` (flat positions) that hold a pixel, and the flattened ``"face"``
    node each reads (the padding's interior is the images themselves, its empty corners zero)."""
    index = face_padding_index(nside, pad).reshape(-1)  # [12 (n + 2p)²]
    border = torch.ones(12, nside + 2 * pad, nside + 2 * pad, dtype=torch.bool)
    border[:, pad:-pad, pad:-pad] = False
    positions = (border.reshape(-1) & (index >= 0)).nonzero().squeeze(1)
    return positions, index[positions]


def pad_faces(images: Tensor, positions: Tensor, sources: Tensor, pad: int) -> Tensor:
    """Channels-last face images ``[B, 12, n, n, C]`` padded to ``[B, 12, n + 2p, n + 2p, C]``
    (contiguous) with the gather of :func:`face_padding_gather` for ``(n, pad)``."""
    return FacePad.apply(images, positions, sources, pad)


class FacePad(torch.autograd.Function):
    """:func:`pad_faces` with its adjoint as the backward pass: the gradient of the images is the
    padded gradient's interior plus its border summed onto the pixels each border pixel copies
    (one copy and one ``index_add_``; autograd through the in-place border write would clone the
    padded gradient twice and fill a zero tensor of its size)."""

    @staticmethod
    def forward(ctx, images: Tensor, positions: Tensor, sources: Tensor, pad: int) -> Tensor:
        batch, channels = images.shape[0], images.shape[-1]
        padded = F.pad(images, (0, 0, pad, pad, pad, pad))  # zeros around every face
        border = images.reshape(batch, -1, channels).index_select(1, sources)  # [B, P, C]
        padded.view(batch, -1, channels).index_copy_(1, positions, border)
        ctx.save_for_backward(positions, sources)
        ctx.pad = pad
        return padded

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        positions, sources = ctx.saved_tensors
        pad = ctx.pad
        batch, channels = grad.shape[0], grad.shape[-1]
        grad_images = grad[:, :, pad:-pad, pad:-pad].contiguous()  # [B, 12, n, n, C]
        border = grad.reshape(batch, -1, channels).index_select(1, positions)  # [B, P, C]
        grad_images.view(batch, -1, channels).index_add_(1, sources, border)
        return grad_images, None, None, None


def pad_face_images(images: Tensor, pad: int) -> Tensor:
    """HEALPix padding of ``"face"`` images ``[B * 12, C, n, n]`` (DLWP's batch-of-faces form) to
    ``[B * 12, C, n + 2p, n + 2p]``, returned with channels-last strides (a view of
    :func:`pad_faces`' result); builds the index tensors on every call."""
    batch_faces, channels, side = images.shape[0], images.shape[1], images.shape[-1]
    nside = nside_of(images.reshape(-1, 12, side, side), "face")
    positions, sources = (t.to(images.device) for t in face_padding_gather(nside, pad))
    faces = images.reshape(batch_faces // 12, 12, channels, side, side).permute(0, 1, 3, 4, 2)  # [B, 12, n, n, C]
    padded = pad_faces(faces, positions, sources, pad)  # [B, 12, n + 2p, n + 2p, C]
    return padded.permute(0, 1, 4, 2, 3).flatten(0, 1)
