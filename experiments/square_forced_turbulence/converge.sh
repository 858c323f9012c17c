#!/bin/sh
# The long run for when the CPU is free: the packaged setting (256 / 64 pairs, width 16), 5 seeds,
# trained until the plateau criterion holds (results.md column "plateaued": the test error did not
# improve by > 1 % over the last 20 % of the steps; curves in results.json). Raise train.steps and
# rerun with --reuse kept out if a model has not plateaued. Run from the repository root.
PYTHONPATH=$PWD python experiments/compare.py --config experiments/square_forced_turbulence/config.toml \
    --results experiments/square_forced_turbulence/converged --runs runs/converge \
    --models unet:residual unet:multiresnet unet:multiresnet_matched cheb_unet --seeds 0 1 2 3 4 \
    --set train.steps=8000 --set train.eval_every=200 --set train.checkpoint_every=1000 --set train.warmup_steps=200
