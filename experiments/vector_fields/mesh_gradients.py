"""Vector-valued regression on many meshes under random rigid rotations at test time.

Data: screened Poisson -Δ_S u + u = f on random closed surfaces of genus 0, 1 and 2
(:class:`geounet.datagen.mesh_families.SurfaceFamily`, P1 finite elements). The input is
the forcing f per face (a scalar), the target the surface gradient ∇_S u per face (a 3-D
vector in world coordinates, :func:`geounet.datagen.fem.face_gradients`): a non-local,
vector-valued map that rotates with the mesh. Train / test split by geometry.

Models on the cluster hierarchy of each mesh (4 levels), trained with the same loop:

- ``equivariant``: :func:`geounet.models.build_equivariant_unet`, scalar in, vector out;
- ``scalar``: the default message-passing Multi-ResNet with 3 output channels (its edge
  features hold world-coordinate displacements, so it sees the mesh's orientation);
- ``scalar_augmented``: the same, each training mesh randomly rotated at every step.

The scalar models' width is chosen to match the equivariant model's parameter count.
Scores: area-weighted relative L2 error of ∇u on the test meshes as generated and with a
random rotation per test mesh; CPU time per training step (one thread, process time).

    PYTHONPATH=$PWD python experiments/vector_fields/mesh_gradients.py --seeds 0 1 2 \
        --out experiments/vector_fields/mesh_gradients.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from common import metric_names, parameters, summarise

from geounet.datagen.fem import face_gradients
from geounet.datagen.mesh_families import SurfaceFamily
from geounet.functional.fields import FieldSpec
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.mesh_clusters import ClusterHierarchy
from geounet.models import build_equivariant_unet, build_unet

MODELS = ("equivariant", "scalar", "scalar_augmented")
LEVELS = 4


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


class Surface:
    """One mesh: its hierarchy, per-face area weights, input f [S, F, 1] and target ∇u [S, F, 3]."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, f_face: np.ndarray, gradient: np.ndarray):
        self.vertices, self.faces = vertices, faces
        self.hierarchy = ClusterHierarchy(Mesh(vertices, faces), num_levels=LEVELS)
        self.area = self.hierarchy.mass(LEVELS - 1).float()  # [F]
        self.x = torch.from_numpy(f_face).float()[..., None]
        self.y = torch.from_numpy(gradient).float()

    def rotated(self, rotation: np.ndarray) -> Surface:
        return Surface(self.vertices @ rotation.T, self.faces, self.x[..., 0].numpy(), self.y.numpy() @ rotation.T)


def load_surfaces(family: SurfaceFamily, ids, x_scale: float | None = None, y_scale: float | None = None):
    raw = [family.sample(int(i)) for i in ids]
    gradients = [face_gradients(d["vertices"], d["faces"], d["u_vertex"]) for d in raw]
    x_scale = x_scale or float(np.sqrt(np.mean(np.concatenate([d["f_face"].ravel() for d in raw]) ** 2)))
    y_scale = y_scale or float(np.sqrt(np.mean(np.concatenate([g.ravel() for g in gradients]) ** 2)))
    surfaces = [Surface(d["vertices"], d["faces"], d["f_face"] / x_scale, g / y_scale)
                for d, g in zip(raw, gradients, strict=True)]
    return surfaces, x_scale, y_scale


def make_model(name: str, hierarchy, width: int, scalar_width: int) -> torch.nn.Module:
    if name == "equivariant":
        return build_equivariant_unet(hierarchy, FieldSpec(scalars=1), FieldSpec(vectors=1), width=width)
    return build_unet(hierarchy, 1, 3, width=scalar_width, channel_mult=[1])  # one width on every level


def matched_scalar_width(hierarchy, width: int) -> int:
    """The scalar U-Net width whose parameter count is nearest the equivariant model's."""
    target = parameters(make_model("equivariant", hierarchy, width, 1))
    return min(range(4, 129), key=lambda w: abs(parameters(make_model("scalar", hierarchy, width, w)) - target))


def relative_error(model, surfaces) -> float:
    """Mean over test samples of the area-weighted relative L2 error of the predicted ∇u."""
    errors = []
    with torch.no_grad():
        for s in surfaces:
            residual = (model(s.x, s.hierarchy) - s.y).square().sum(-1)  # [S, F]
            norm = s.y.square().sum(-1)
            errors += ((residual * s.area).sum(-1) / (norm * s.area).sum(-1)).sqrt().tolist()
    return float(np.mean(errors))


def train(name: str, seed: int, train_set, args, scalar_width: int):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = make_model(name, train_set[0].hierarchy, args.width, scalar_width)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1 - step / args.steps)
    step_times = []
    for _ in range(args.steps):
        surface = train_set[rng.integers(len(train_set))]
        if name == "scalar_augmented":
            surface = surface.rotated(random_rotation(rng))
        start = time.process_time()
        loss = ((model(surface.x, surface.hierarchy) - surface.y).square().sum(-1) * surface.area).sum(-1).mean()
        optimiser.zero_grad()
        (loss / surface.area.sum()).backward()
        optimiser.step()
        schedule.step()
        step_times.append(time.process_time() - start)
    return model, statistics.median(step_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--num-meshes", type=int, default=30)
    parser.add_argument("--samples-per-mesh", type=int, default=4)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--width", type=int, default=12, help="scalar channels of the equivariant model")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="experiments/vector_fields/mesh_gradients.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    family = SurfaceFamily(num_meshes=args.num_meshes, samples_per_mesh=args.samples_per_mesh, seed=0)
    train_ids, test_ids = family.split()
    train_set, x_scale, y_scale = load_surfaces(family, train_ids)
    test_set, _, _ = load_surfaces(family, test_ids, x_scale, y_scale)
    test_rotated = [s.rotated(random_rotation(np.random.default_rng([1000, i]))) for i, s in enumerate(test_set)]
    scalar_width = matched_scalar_width(train_set[0].hierarchy, args.width)

    runs = []
    for seed in args.seeds:
        for name in args.models:  # interleaved: every model of a seed before the next seed
            model, step_time = train(name, seed, train_set, args, scalar_width)
            run = {"model": name, "seed": seed, "parameters": parameters(model), "cpu_s_per_step": step_time,
                   "test_rel_l2": relative_error(model, test_set),
                   "rotated_test_rel_l2": relative_error(model, test_rotated)}
            print(json.dumps(run), flush=True)
            runs.append(run)

    summary = summarise(runs, metric_names(runs[0]))
    with open(args.out, "w") as handle:
        json.dump({"args": vars(args), "train_meshes": len(train_ids), "test_meshes": len(test_ids),
                   "runs": runs, "summary": summary}, handle, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
