"""geounet's figures leave the caller's matplotlib alone, come back to the caller, and draw HEALPix
maps in the geographic convention."""

import os
import subprocess
import sys

import healpy
import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from geounet.plot.fields import plot_healpix_predictions, plot_loss_curves
from geounet.plot.figure import mollweide_image

NSIDE = 8


def test_importing_geounet_keeps_the_backend_the_caller_chose():
    """A notebook's or application's backend must survive ``import geounet...`` (the plotting
    modules used to switch every process that imported them to Agg)."""
    modules = ["geounet", "geounet.experiment.runner", "geounet.tasks", "geounet.cli.command", "geounet.plot.fields",
               "geounet.plot.meshes", "geounet.plot.segmentation", "geounet.plot.samples", "geounet.plot.noise"]
    script = ("import importlib, matplotlib\n"
              f"for name in {modules!r}:\n"
              "    importlib.import_module(name)\n"
              "print(matplotlib.get_backend())\n")
    env = {**os.environ, "MPLBACKEND": "svg"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split()[-1] == "svg"


def test_figures_are_returned_and_not_registered_with_pyplot(tmp_path, assert_drawn_png):
    open_before = plt.get_fignums()
    maps = torch.randn(1, healpy.nside2npix(NSIDE), 2, dtype=torch.float64)  # [S, N, C]
    figures = [
        plot_loss_curves({"run": [{"step": s, "loss": 1.0 / s} for s in range(1, 50)]}, str(tmp_path / "loss.png")),
        plot_healpix_predictions(maps, maps, maps + 0.1, ["h", "vorticity"], str(tmp_path / "maps.png")),
    ]
    assert all(isinstance(fig, Figure) for fig in figures)
    assert plt.get_fignums() == open_before  # no pyplot figure left open, none closed
    assert_drawn_png(tmp_path / "loss.png")
    assert_drawn_png(tmp_path / "maps.png")


@pytest.mark.parametrize("nest", [True, False])
def test_mollweide_image_puts_north_up_and_east_to_the_right(nest):
    """Maps of z = sin(latitude) and y = cos(latitude) sin(longitude) must read +1 at the north
    pole and at longitude +90° on the equator (x = +1 of the extent [-2, 2]), -1 opposite."""
    x, y, z = healpy.pix2vec(NSIDE, np.arange(healpy.nside2npix(NSIDE)), nest=nest)
    north = mollweide_image(z, nest=nest, width=200)  # [100, 200]
    east = mollweide_image(y, nest=nest, width=200)
    rows, cols = north.shape
    assert (rows, cols) == (100, 200)
    tolerance = 0.15  # one pixel of nside 8 spans about 7 degrees
    assert north[-2, cols // 2] == pytest.approx(1.0, abs=tolerance)  # the row below the top of the ellipse
    assert north[1, cols // 2] == pytest.approx(-1.0, abs=tolerance)
    assert north[rows // 2, cols // 2] == pytest.approx(0.0, abs=tolerance)
    assert east[rows // 2, 3 * cols // 4] == pytest.approx(1.0, abs=tolerance)
    assert east[rows // 2, cols // 4] == pytest.approx(-1.0, abs=tolerance)
    assert east.mask[0, 0] and east.mask[-1, -1]  # the corners are outside the ellipse
    assert not east.mask[rows // 2, 1:-1].any()  # the equator is inside from edge to edge
