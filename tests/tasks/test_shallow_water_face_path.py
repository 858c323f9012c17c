"""The shallow-water task on the HEALPix face path (``task.node_order = "face"``) against the NEST path.

The two paths hold the same spaces with the pixels in another order, so the data must be the
same up to that permutation, a model with the same weights must compute the same function,
and every score must be the same: the scores, plots and data a user reads stay NEST.
"""

import dataclasses

import pytest
import torch

from geounet.errors import GeounetError
from geounet.experiment.config import config_from_dict
from geounet.experiment.runner import build_model, run_experiment
from geounet.hierarchy import HealpixFaceHierarchy, HealpixHaarHierarchy
from geounet.hierarchy.healpix_face import face_nodes_from_nest, nest_from_face_nodes
from geounet.inference.runs import load_run
from geounet.models.autoregressive import ForecastInputs
from geounet.nn.healpix_face import FaceKernelConv, HealpixConv3x3
from geounet.tasks.shallow_water_healpix import Config, prepare, structure

MODEL = {"width": 4, "num_levels": 2, "channel_mult": [1, 1]}


def tiny(tmp_path, **overrides) -> Config:
    """The task at toy size (nside 4, 2 + 1 trajectories of 3 steps), data cached under ``tmp_path``."""
    values = dict(nside=4, nlat=16, nlon=32, num_train=2, num_test=1, steps=3, rollout_steps=2,
                  spinup_hours=1.0, cache_dir=str(tmp_path / "data"))
    return Config(**{**values, **overrides})


def experiment(config: Config, operator: str = "message_passing", steps: int = 2):
    raw = {"task": {"name": "shallow_water_healpix", **dataclasses.asdict(config)},
           "model": {**MODEL, "operator": operator},
           "train": {"steps": steps, "batch_size": 2, "eval_every": steps, "checkpoint_every": steps}}
    return config_from_dict(raw)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    """The tiny task prepared on both paths: ``{"nest": (config, task), "face": (config, task)}``."""
    root = tmp_path_factory.mktemp("face_task")
    configs = {order: tiny(root, node_order=order) for order in ("nest", "face")}
    return {order: (config, prepare(config, num_levels=2)) for order, config in configs.items()}


def test_the_face_path_holds_the_nest_data_with_the_pixels_permuted(tasks):
    (_, nest), (_, face) = tasks["nest"], tasks["face"]
    assert isinstance(nest.structure.hierarchy, HealpixHaarHierarchy)
    assert isinstance(face.structure.hierarchy, HealpixFaceHierarchy)
    for split in ("train", "test"):
        nest_data, face_data = getattr(nest, split).trajectories, getattr(face, split).trajectories  # [S, T, N, C]
        torch.testing.assert_close(face_data, face_nodes_from_nest(nest_data), rtol=0, atol=0)
        assert not torch.equal(face_data, nest_data)  # a permutation that moves pixels
    for name, value in nest.train.normalisation.state_dict().items():
        torch.testing.assert_close(face.train.normalisation.state_dict()[name], value, rtol=0, atol=0)
    nest_batch, face_batch = nest.test.batch([0, 1]), face.test.batch([0, 1])
    torch.testing.assert_close(face_batch.targets, face_nodes_from_nest(nest_batch.targets), rtol=0, atol=0)


@pytest.mark.parametrize(("operator", "face_operator"), [("message_passing", FaceKernelConv),
                                                         ("conv3x3", HealpixConv3x3)])
def test_one_state_dict_gives_the_same_forecasts_and_scores_on_both_paths(tasks, operator, face_operator):
    """Weights trained on one path forecast the same on the other (float64), and the rollout
    scores, taken on NEST pixels, agree."""
    (nest_config, nest), (face_config, face) = tasks["nest"], tasks["face"]
    torch.manual_seed(0)
    nest_model = build_model(experiment(nest_config, operator), nest.structure)
    face_model = build_model(experiment(face_config, operator), face.structure)
    assert any(type(module) is face_operator for module in face_model.modules())
    face_model.load_state_dict(nest_model.state_dict())  # strict: same names and shapes
    report = {order: task.evaluate_extra(model, torch.device("cpu"))
              for order, task, model in (("nest", nest, nest_model), ("face", face, face_model))}
    for key, value in report["nest"].items():
        if key.startswith(("model_", "persistence_", "galewsky_")):
            torch.testing.assert_close(torch.tensor(report["face"][key]), torch.tensor(value), rtol=1e-4, atol=1e-6)
    assert report["face"]["model_rmse_h"] != report["face"]["persistence_rmse_h"]  # the model is not persistence

    batch = nest.test.batch([0, 1])
    state = batch.inputs.state.double()  # [B, 1, N, C]
    empty = state.new_zeros(state.shape[0], 1, 1, state.shape[2], 0)
    inputs = {"nest": ForecastInputs(state, empty, state.new_zeros(state.shape[2], 0)),
              "face": ForecastInputs(face_nodes_from_nest(state), empty, state.new_zeros(state.shape[2], 0))}
    with torch.no_grad():
        nest_out = nest_model.double()(inputs["nest"], nest.structure.hierarchy)  # [B, 1, N, C]
        face_out = face_model.double()(inputs["face"], face.structure.hierarchy)
    torch.testing.assert_close(nest_from_face_nodes(face_out), nest_out, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(face_out, nest_out)  # the outputs are in the face order, not NEST


def test_a_face_path_run_trains_evaluates_and_loads_from_another_directory(tmp_path, monkeypatch):
    config = tiny(tmp_path, node_order="face")
    cfg = experiment(config, "conv3x3", steps=3)
    metrics = run_experiment(cfg, tmp_path / "run", progress=False)
    assert metrics["config"]["task"]["node_order"] == "face"
    assert metrics["test"]["rel_l2_mean"] > 0 and metrics["seconds"]["train_cpu"] > 0
    assert metrics["test"]["score_grids"] == {"": "HEALPix NEST nside 4, equal-area pixels"}
    assert (tmp_path / "run" / "predictions.png").stat().st_size > 0

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg, _, task, model, device = load_run(tmp_path / "run", None)
    assert cfg.task.node_order == "face" and cfg.model.operator == "conv3x3"
    assert isinstance(task.structure.hierarchy, HealpixFaceHierarchy)
    report = task.evaluate_extra(model, device)  # a 2-step forecast from every test trajectory's first state
    for key in ("model_rmse_h", "model_acc_vorticity", "galewsky_model_rmse_h"):
        torch.testing.assert_close(torch.tensor(report[key]), torch.tensor(metrics["test"][key]))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"node_order": "face", "hierarchy": "spectral"}, "the 'spectral' hierarchy has no face form: use task.hierarchy"),
    ({"node_order": "ring"}, r"task.node_order must be one of \('nest', 'face'\)"),
])
def test_bad_face_path_settings_are_rejected(tmp_path, overrides, message):
    with pytest.raises(GeounetError, match=message):
        tiny(tmp_path, **overrides).validate()


def test_the_face_path_needs_nside_a_power_of_two(tmp_path):
    with pytest.raises(GeounetError, match="nside must be a power of two.*got 12"):
        structure(tiny(tmp_path, nside=12, node_order="face"), num_levels=2)


def test_the_operator_is_a_checked_model_key(tmp_path):
    with pytest.raises(GeounetError, match=r"model.operator must be one of \('message_passing', 'conv3x3'\)"):
        experiment(tiny(tmp_path), "conv5x5")
