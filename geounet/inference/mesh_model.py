"""A trained mesh model, ready for new meshes: ``geounet.load_model(run_dir)``.

A run of the ``mesh_files`` task (:mod:`geounet.tasks.mesh_files`) holds in its
checkpoint the architecture (its config), the hierarchy recipe (``task.recipe`` and its
options) and the normalisation (the model's buffers). :func:`load_model` rebuilds all
three; :meth:`MeshModel.predict` builds the recipe's hierarchy on any mesh and maps
fields in the files' units to fields in the targets' units::

    trained = geounet.load_model("runs/my_meshes")
    prediction = trained.predict("new_part.vtu")              # [N, C_out], N faces or vertices
    trained.predict_file("new_part.vtu", "new_part_pred.vtu")  # inputs and predictions for ParaView
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from geounet.data.mesh_dataset import HierarchyRecipe, cached_hierarchy
from geounet.data.mesh_fields import read_mesh_fields, write_mesh_fields
from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.base import Hierarchy
from geounet.models.standardised import Standardised
from geounet.tasks import mesh_files
from geounet.train.device import usable_device


@dataclass
class MeshModel:
    """A trained model (:class:`~geounet.models.standardised.Standardised`, in eval mode), its
    hierarchy recipe and its task config (field names, where they live)."""

    model: Standardised
    recipe: HierarchyRecipe
    config: mesh_files.Config
    target_widths: list[int]
    device: torch.device = torch.device("cpu")
    _hierarchies: dict[str, Hierarchy] = field(default_factory=dict, repr=False)

    def hierarchy(self, mesh: Mesh) -> Hierarchy:
        """The recipe's hierarchy on ``mesh`` (built once per distinct mesh)."""
        if mesh.content_hash not in self._hierarchies:
            self._hierarchies[mesh.content_hash] = cached_hierarchy(mesh, self.recipe).to(self.device)
        return self._hierarchies[mesh.content_hash]

    def read(self, path: str | Path) -> tuple[Mesh, dict[str, np.ndarray]]:
        """``(mesh, {input name: [N, k]})`` of a mesh file with the run's input fields."""
        return read_mesh_fields(path, self.config.inputs, self.config.at)

    def predict(self, mesh: Mesh | str | Path, inputs: Tensor | np.ndarray | None = None) -> Tensor:
        """The prediction ``[N, C_out]`` (targets' units, float32, on the CPU) on a mesh file
        (inputs read from it), or on ``mesh`` with ``inputs [N, C_in]`` in the inputs' units."""
        if not isinstance(mesh, Mesh):
            mesh, fields = self.read(mesh)
            inputs = np.concatenate([fields[name] for name in self.config.inputs], axis=1)
        elif inputs is None:
            raise GeounetError("predict(mesh, inputs) needs the inputs [N, C_in] on a Mesh (or pass a file)")
        x = torch.as_tensor(inputs, dtype=torch.float32)
        rows = mesh.num_faces if self.config.at == "face" else mesh.num_vertices
        channels = self.model.input_mean.numel()
        if x.shape != (rows, channels):
            raise GeounetError(f"inputs must be [{rows}, {channels}] ({self.config.at} values of "
                               f"{', '.join(self.config.inputs)}), got {tuple(x.shape)}")
        with torch.no_grad():
            return self.model.physical(x[None].to(self.device), self.hierarchy(mesh))[0].cpu()

    def predict_file(self, mesh_file: str | Path, out: str | Path) -> Path:
        """Write ``mesh_file``'s mesh with its input fields and the predicted targets (under the
        target names) to ``out`` (any meshio format; ``.vtu`` for ParaView)."""
        mesh, fields = self.read(mesh_file)
        prediction = self.predict(mesh, np.concatenate([fields[n] for n in self.config.inputs], axis=1)).numpy()
        parts = np.split(prediction, np.cumsum(self.target_widths)[:-1], axis=1)
        predicted = {name: part[:, 0] if part.shape[1] == 1 else part
                     for name, part in zip(self.config.targets, parts, strict=True)}
        inputs = {name: values[:, 0] if values.shape[1] == 1 else values for name, values in fields.items()}
        return write_mesh_fields(out, mesh, {**inputs, **predicted}, self.config.at)


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> MeshModel:
    """The model of a ``geounet train`` run of the ``mesh_files`` task, with its recipe and
    normalisation (see the module docstring); the run folder is all it reads."""
    from geounet.experiment.config import config_from_dict
    from geounet.experiment.runner import build_model
    from geounet.train.checkpoint import load_checkpoint, load_model_state, run_config

    path = Path(run_dir) / "checkpoint.pt"
    state = load_checkpoint(path)
    cfg = config_from_dict(run_config(state, path))
    if cfg.task.name != mesh_files.Config.name:
        raise GeounetError(f"{run_dir} is a {cfg.task.name!r} run; load_model loads runs of the "
                           f"{mesh_files.Config.name!r} task (geounet.inference.runs.load_run loads any run)")
    if "task_state" not in state or "mesh_dim" not in state["task_state"]:
        raise GeounetError(f"{path} predates self-contained mesh runs (no task_state); train the run again")
    task_state = state["task_state"]
    structure = mesh_files.structure(cfg.task, cfg.model.num_levels, state=task_state)
    model = build_model(cfg, structure)
    load_model_state(model, state["model"], path)  # weights and the training statistics
    device = usable_device(device, "--device")
    return MeshModel(model.to(device).eval(), mesh_files.recipe(cfg.task, cfg.model.num_levels), cfg.task,
                     list(task_state["target_widths"]), device)
