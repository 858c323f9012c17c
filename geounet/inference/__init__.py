"""Use a trained run: load its model with its recipe and predict on data it has not seen.

:func:`geounet.inference.runs.load_run` rebuilds any run's model and task from its
checkpoint; :class:`Forecaster` (:mod:`geounet.inference.forecast`) loads a forecast run
from its folder alone and forecasts from any data holding its variables.
:func:`compile_unet`, :func:`export` and :func:`export_onnx` (:mod:`geounet.inference.export`)
compile a U-Net for one geometry or export it with that geometry bound.
"""

from geounet.inference.export import compile_unet, export, export_onnx, prepare_geometry
from geounet.inference.forecast import Forecaster

__all__ = ["Forecaster", "compile_unet", "export", "export_onnx", "prepare_geometry"]
