#!/bin/sh
# CI-machine-sized comparison on forced turbulence, 3 seeds: the packaged setting at 32 x 32
# (64 training / 32 test pairs), width 8, 100 steps. Scale resolution / num_train / steps / seeds
# up for a real comparison (converge.sh). Run from the repository root. The two halves of the
# models may run in parallel once the data are cached; the last command reads the finished runs.
# On a shared machine run it with OMP_NUM_THREADS=1 (idle threads spin and waste CPU time).
SETTINGS="--set task.resolution=32 --set task.num_train=64 --set task.num_test=32 --set model.width=8
 --set train.steps=100 --set train.batch_size=8 --set train.warmup_steps=10 --set train.eval_every=20
 --set train.checkpoint_every=100"
COMPARE="python experiments/compare.py --config experiments/square_forced_turbulence/config.toml
 --results experiments/square_forced_turbulence --reuse --seeds 0 1 2"
MODELS="unet:residual unet:multiresnet unet:multiresnet_matched cheb_unet"
case "$1" in
  first) PYTHONPATH=$PWD $COMPARE --models unet:residual unet:multiresnet $SETTINGS ;;
  second) PYTHONPATH=$PWD $COMPARE --models unet:multiresnet_matched cheb_unet $SETTINGS ;;
  *) PYTHONPATH=$PWD $COMPARE --models $MODELS $SETTINGS ;;
esac
