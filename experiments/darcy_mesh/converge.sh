#!/bin/sh
# Darcy flow on the 300 random domains, Dirichlet Laplacian eigenbases (exact zero boundary),
# trained at a constant learning rate with a budget-doubling check: the three U-Nets, 5 seeds,
# 2400 steps at batch 8 (80 epochs of the 240 training domains), lr 2e-3 constant after the
# config's 20-step warm-up (train.min_lr_ratio=1), the held-out domains' error every 120 steps.
# With a constant rate the first N/2 steps of a run are the N/2-step run, so one run's curve
# gives the gain of every doubling (experiments/doublings.py).
# Run from the repository root with OMP_NUM_THREADS=1.
#   sh converge.sh run MODEL SEED   one run into runs/darcy_converge
#   sh converge.sh table            the table of the finished runs, the curves, every run's metrics
#   sh converge.sh                  every run, seed after seed, then the table
SETTINGS="--set task.hierarchy='spectral' --set task.band_limits=[8,32,64] --set task.resolution_transfer=false
 --set train.steps=2400 --set train.min_lr_ratio=1.0 --set train.eval_every=120 --set train.checkpoint_every=1200"
COMPARE="python experiments/compare.py --config experiments/darcy_mesh/config.toml --runs runs/darcy_converge"
MODELS="unet:residual unet:multiresnet unet:multiresnet_matched"
OUT=experiments/darcy_mesh/converged
case "$1" in
  run) PYTHONPATH=$PWD $COMPARE --results runs/darcy_converge/partial-"$2"-"$3" --models "$2" --seeds "$3" $SETTINGS ;;
  table)
    PYTHONPATH=$PWD $COMPARE --results $OUT --finished-only --models $MODELS --seeds 0 1 2 3 4 $SETTINGS
    mkdir -p $OUT/runs
    for run in runs/darcy_converge/darcy_mesh/*/; do
      [ -f "$run/metrics.json" ] && cp "$run/metrics.json" "$OUT/runs/$(basename "$run").json"
    done ;;
  *)
    for seed in 0 1 2 3 4; do for model in $MODELS; do sh "$0" run $model $seed; done; done
    sh "$0" table ;;
esac
