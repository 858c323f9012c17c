"""Use a trained run: load its model with its recipe and predict on data it has not seen.

:func:`geounet.inference.runs.load_run` rebuilds any run's model and task from its
checkpoint; :mod:`geounet.inference.forecast` loads a forecast run and rolls it out.
"""
