"""A user's folder of mesh files: config paths, the task, load_model and ``geounet predict``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import geounet
from geounet.cli import main
from geounet.data.mesh_fields import read_mesh_fields, write_mesh_fields
from geounet.datagen.mesh_families import DarcyFamily
from geounet.experiment.config import load_config
from geounet.experiment.runner import run_experiment
from geounet.geometry.mesh import Mesh

REPO = Path(__file__).resolve().parents[2]
FAMILY = DarcyFamily(num_meshes=6, faces=(150, 300), samples_per_mesh=1)
TINY = ["model.width=4", "model.channel_mult=[1, 2, 2]", "model.num_levels=3", "train.steps=3",
        "train.batch_size=2", "train.warmup_steps=1", "train.eval_every=3", "train.checkpoint_every=3"]


def write_folder(folder: Path, at: str = "face") -> list[Path]:
    """Six Darcy domains as .vtu files with fields ``log_k`` and ``u`` (cell or point data)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for mesh_id in range(6):
        data = FAMILY.sample(mesh_id)
        fields = {"log_k": np.log(data[f"k_{at}"][0]), "u": 30 * data[f"u_{at}"][0]}
        paths.append(write_mesh_fields(folder / f"domain{mesh_id}.vtu", Mesh(data["vertices"], data["faces"]),
                                       fields, at))
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run of the mesh_files task, configured by a TOML file beside its data."""
    root = tmp_path_factory.mktemp("mesh_files")
    write_folder(root / "project" / "meshes")
    config = root / "project" / "config.toml"
    config.write_text('[task]\nname = "mesh_files"\nfolder = "meshes"\ninputs = ["log_k"]\ntargets = ["u"]\n'
                      f'at = "face"\nrecipe = "clusters"\ncache_dir = "{root / "cache"}"\n')
    cfg = load_config(config, TINY)
    run_experiment(cfg, root / "run", progress=False)
    return root, cfg


def test_the_folder_is_resolved_against_the_config_file(trained):
    root, cfg = trained
    assert cfg.task.folder == str((root / "project" / "meshes").resolve())


def test_read_and_write_keep_fields_where_they_are(tmp_path):
    (path,) = write_folder(tmp_path, at="vertex")[:1]
    mesh, fields = read_mesh_fields(path, ["u"], "vertex")
    data = FAMILY.sample(0)
    np.testing.assert_array_equal(mesh.faces, data["faces"])
    np.testing.assert_allclose(fields["u"][:, 0], 30 * data["u_vertex"][0])
    with pytest.raises(ValueError, match="has no face field 'u'.*read it with at='vertex'"):
        read_mesh_fields(path, ["u"], "face")


def test_load_model_predicts_in_the_files_units_like_the_trained_model(trained):
    root, cfg = trained
    model = geounet.load_model(root / "run")
    assert model.recipe.num_levels == 3 and model.config.targets == ["u"]
    path = Path(cfg.task.folder) / "domain0.vtu"
    mesh, fields = read_mesh_fields(path, ["log_k"], "face")
    prediction = model.predict(path)  # [F, 1] in the units of u
    assert prediction.shape == (mesh.num_faces, 1)
    stats = model.model
    standard = (torch.from_numpy(fields["log_k"]).float() - stats.input_mean) / stats.input_std
    with torch.no_grad():
        by_hand = stats.net(standard[None], model.hierarchy(mesh))[0] * stats.target_std + stats.target_mean
    torch.testing.assert_close(prediction, by_hand)
    u = torch.cat([torch.from_numpy(read_mesh_fields(p, ["u"], "face")[1]["u"])
                   for p in sorted(Path(cfg.task.folder).glob("*.vtu"))])
    assert stats.target_mean.item() != 0 and abs(stats.target_std.item() - float(u.std())) < 0.5 * float(u.std())


def test_a_run_predicts_without_its_training_folder_from_another_directory(trained, tmp_path, monkeypatch):
    """The run folder is self-contained: with the training meshes moved away and the working
    directory elsewhere, load_model predicts on a new mesh exactly as before."""
    root, cfg = trained
    (new,) = write_folder(tmp_path / "new")[5:]
    expected = geounet.load_model(root / "run").predict(new)
    folder = Path(cfg.task.folder)
    moved = folder.with_name("moved_away")
    folder.rename(moved)
    try:
        monkeypatch.chdir(tmp_path)
        torch.testing.assert_close(geounet.load_model(root / "run").predict(new), expected, rtol=0, atol=0)
    finally:
        moved.rename(folder)


def test_geounet_predict_writes_the_prediction_on_a_new_mesh(trained, tmp_path):
    root, _ = trained
    (new,) = write_folder(tmp_path / "new")[5:]
    out = tmp_path / "prediction.vtu"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "geounet.cli", "predict", str(root / "run"), "--mesh", str(new), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    mesh, fields = read_mesh_fields(out, ["log_k", "u"], "face")
    np.testing.assert_allclose(fields["u"][:, 0], geounet.load_model(root / "run").predict(new)[:, 0].numpy(),
                               rtol=1e-6)
    assert main(["predict", str(root / "run"), "--mesh", str(new), "--out", str(out)]) == 2  # no silent overwrite


def test_mismatched_recipe_and_place_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="set task.recipe = 'eigenbases' \\(Eigenbases\\)"):
        load_config(None, ["task.name='mesh_files'", f"task.folder='{tmp_path}'", "task.inputs=['a']",
                           "task.targets=['b']", "task.at='vertex'", "task.recipe='clusters'"])
