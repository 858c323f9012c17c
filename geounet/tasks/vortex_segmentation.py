"""Coherent vortices on the sphere: segment cyclones and anticyclones of shallow-water states from their height.

States come from torch-harmonics' shallow-water solver (:mod:`geounet.datagen.shallow_water`:
random balanced initial conditions, ``spinup_hours`` of spin-up, then ``steps`` states
``dt_hours`` apart per trajectory; every state is a sample). Labels are the Okubo-Weiss
vortex classes {background, cyclonic, anticyclonic} of :mod:`geounet.datagen.vortex_labels`
(W < -``threshold`` σ_W, rotation sense from ζ sin φ, regions under ``min_pixels`` pixels
dropped), computed from the winds on the solver grid and regridded to HEALPix NEST at
``nside``. The model sees only the fields ``inputs`` (default the height h), standardised
with the training mean and standard deviation: the labels depend on second derivatives of
the flow, so they must be read off the neighbourhood (no pointwise threshold of h finds
them; the task reports that baseline). Train and test trajectories come from different
seeds. Boundary distances are great-circle distances in km on the solver's Earth-sized
sphere. Besides ``predictions.png`` a run writes ``test_probabilities.nc`` (class
probabilities of every test state on HEALPix NEST, with pixel latitudes and longitudes)
and ``class_iou.png``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import xarray as xr
from torch import Tensor, nn

from geounet.data.samples import Dataset
from geounet.datagen.shallow_water import VARIABLES, load_or_generate_shallow_water
from geounet.datagen.vortex_labels import CLASSES, okubo_weiss, vortex_labels
from geounet.errors import GeounetError
from geounet.functional.regrid import latlon_to_healpix
from geounet.geometry.healpix import pixel_vectors
from geounet.nn.message_passing import MessagePassingFactory
from geounet.plot.segmentation import plot_class_iou, plot_healpix_classes
from geounet.tasks import PreparedTask, TaskStructure, data_splits
from geounet.tasks.segmentation import Segmentation, SegmentationConfig, trivial_baselines
from geounet.tasks.shallow_water_healpix import HIERARCHIES, sphere_hierarchy


@dataclass(frozen=True)
class Config(SegmentationConfig):
    name: ClassVar[str] = "vortex_segmentation"
    nside: int = 16
    #: "haar" (nested pixels) or "spectral" (spherical-harmonic bands)
    hierarchy: str = "haar"
    #: spectral only: Jacobi refinements of every spherical-harmonic analysis
    sh_iterations: int = 3
    #: the fields the model sees
    inputs: list[str] = field(default_factory=lambda: ["h"])
    #: trajectories per split; each gives steps + 1 samples
    num_train: int = 12
    num_test: int = 4
    steps: int = 6
    dt_hours: float = 4.0
    spinup_hours: float = 12.0
    mach: float = 0.1
    nlat: int = 64
    nlon: int = 128
    #: vortex cores: W < -threshold * std(W)
    threshold: float = 0.5
    #: smaller connected vortex regions are background
    min_pixels: int = 4
    seed: int = 0
    cache_dir: str = "data"

    def validate(self) -> None:
        super().validate()
        if self.hierarchy not in HIERARCHIES:
            raise GeounetError(f"task.hierarchy must be one of {HIERARCHIES}, got {self.hierarchy!r}")
        unknown = sorted(set(self.inputs) - set(VARIABLES))
        if unknown or not self.inputs:
            raise GeounetError(f"task.inputs must be a non-empty subset of {VARIABLES}, got {self.inputs}")
        if self.threshold <= 0 or self.min_pixels < 1:
            raise GeounetError(f"task.threshold must be positive and task.min_pixels >= 1, got {self.threshold}, "
                               f"{self.min_pixels}")
        data_splits(self)


def structure(config: Config, num_levels: int) -> TaskStructure:
    hierarchy = sphere_hierarchy(config, num_levels)
    return TaskStructure(hierarchy, MessagePassingFactory(hierarchy), len(config.inputs), len(CLASSES))


def load_split(config: Config, split: str) -> tuple[Tensor, Tensor, float]:
    """``(inputs [S, N, C] physical float32, labels [S, N] int64, sphere radius in m)`` of ``split``
    on HEALPix NEST: every recorded state of every trajectory is a sample."""
    count, seed = data_splits(config)[split]
    ds = load_or_generate_shallow_water(config.cache_dir, num_trajectories=count, steps=config.steps,
                                        dt_hours=config.dt_hours, nlat=config.nlat, nlon=config.nlon, seed=seed,
                                        mach=config.mach, spinup_hours=config.spinup_hours)
    lat, lon, radius = ds["lat"].values, ds["lon"].values, float(ds.attrs["radius_m"])

    def on_healpix(values: np.ndarray) -> np.ndarray:  # [S, T, H, W] -> [S T, N]
        flat = torch.from_numpy(np.asarray(values, dtype=np.float64)).reshape(-1, len(lat), len(lon))
        return latlon_to_healpix(flat, lat, lon, config.nside).numpy()

    w = on_healpix(okubo_weiss(ds["u"].values, ds["v"].values, lat, lon, radius))
    sin_lat = pixel_vectors(config.nside)[:, 2].numpy()
    labels = vortex_labels(w, on_healpix(ds["vorticity"].values), sin_lat, config.threshold, config.min_pixels)
    inputs = np.stack([on_healpix(ds[name].values) for name in config.inputs], axis=-1)  # [S T, N, C]
    return torch.from_numpy(inputs).float(), torch.from_numpy(labels), radius


def probability_dataset(probabilities: Tensor, labels: Tensor, nside: int, classes: tuple[str, ...]) -> xr.Dataset:
    """Class probabilities ``[S, N, K]`` and true labels ``[S, N]`` on HEALPix NEST as an
    ``xarray.Dataset`` with pixel-centre latitudes and longitudes (degrees)."""
    vectors = pixel_vectors(nside).double()
    lat = torch.rad2deg(torch.asin(vectors[:, 2].clamp(-1, 1))).numpy()
    lon = (torch.rad2deg(torch.atan2(vectors[:, 1], vectors[:, 0])).numpy()) % 360.0
    return xr.Dataset(
        {"probability": (("sample", "pixel", "class"), probabilities.numpy().astype(np.float32),
                         {"long_name": "predicted class probability"}),
         "predicted_class": (("sample", "pixel"), probabilities.argmax(-1).numpy().astype(np.int8)),
         "true_class": (("sample", "pixel"), labels.numpy().astype(np.int8))},
        coords={"pixel": np.arange(len(lat)), "class": list(classes),
                "lat": ("pixel", lat, {"units": "degrees_north"}), "lon": ("pixel", lon, {"units": "degrees_east"})},
        attrs={"healpix_nside": nside, "healpix_order": "nest", "classes": ", ".join(classes),
               "geounet_task": Config.name},
    )


def prepare(config: Config, num_levels: int) -> PreparedTask:
    geometry = structure(config, num_levels)
    (train_inputs, train_labels, radius), (test_inputs, test_labels, _) = (load_split(config, s)
                                                                             for s in ("train", "test"))
    mean, std = train_inputs.mean(dim=(0, 1)), train_inputs.std(dim=(0, 1))  # [C]
    train = Dataset((train_inputs - mean) / std, train_labels[..., None].float(), geometry.hierarchy)
    test = Dataset((test_inputs - mean) / std, test_labels[..., None].float(), geometry.hierarchy)
    segmentation = Segmentation.from_training_data(CLASSES, config, train, "great_circle", radius / 1e3, "km")
    baselines = trivial_baselines(train, test, len(CLASSES))

    def plot(inputs: Tensor, targets: Tensor, predictions: Tensor, path: str) -> None:
        plot_healpix_classes((inputs[0, :, 0] * std[0] + mean[0]).numpy(), targets[0, :, 0].long().numpy(),
                             predictions[0].argmax(-1).numpy(), CLASSES, f"input {config.inputs[0]}", path)

    def write_outputs(model: nn.Module, device: torch.device, out_dir: Path, report: dict) -> list[Path]:
        probabilities = torch.cat([p for _, p in segmentation.predictions(model, test, device)])
        netcdf, bars = out_dir / "test_probabilities.nc", out_dir / "class_iou.png"
        probability_dataset(probabilities, test_labels, config.nside, CLASSES).to_netcdf(netcdf)
        plot_class_iou(segmentation.class_iou(report), report["mean_iou"], CLASSES, str(bars), Config.name)
        return [netcdf, bars]

    shares = np.bincount(train_labels.reshape(-1).numpy(), minlength=len(CLASSES)) / train_labels.numel()
    log = [f"{len(train)} train / {len(test)} test states on HEALPix nside {config.nside}; class shares "
           + ", ".join(f"{n} {s:.3f}" for n, s in zip(CLASSES, shares, strict=True)),
           *segmentation.log(),
           f"trivial baselines (test mean IoU): majority class {baselines['majority_class_mean_iou']:.3f}, "
           f"best pointwise classifier of {', '.join(config.inputs)} {baselines['pointwise_baseline_mean_iou']:.3f}"]
    return PreparedTask(geometry, train, test, plot, evaluate_extra=lambda model, device: dict(baselines), log=log,
                        loss=segmentation.loss, test_metrics=segmentation.test_metrics, write_outputs=write_outputs)
