#!/bin/sh
# Forced turbulence trained at a constant learning rate, 5 seeds, with a budget-doubling check:
# 32 x 32, 256 training / 64 test pairs, width 8, batch 8, lr 2e-3 constant after a 50-step
# warm-up (train.min_lr_ratio=1), 600 steps, the test error every 30 steps. With a constant rate
# the first 300 steps of a run are the 300-step run, so the column "gain N/2 -> N" of
# converged/results.md is the gain from doubling the budget (geounet.analysis.convergence.
# doubling_gain). Run from the repository root with OMP_NUM_THREADS=1.
#   sh converge.sh run MODEL SEED   one run into runs/converge (what two worker slots pulled from a
#                                   seed-ordered queue here: residual and Multi-ResNet seeds 1-4
#                                   first, then the saved-params Multi-ResNet and ChebConv ones)
#   sh converge.sh table            the table of the finished runs (--finished-only lists the
#                                   others), the curves, and a copy of every run's metrics.json
#   sh converge.sh                  every run, seed after seed, then the table
SETTINGS="--set task.resolution=32 --set task.num_train=256 --set task.num_test=64 --set model.width=8
 --set train.batch_size=8 --set train.steps=600 --set train.warmup_steps=50 --set train.min_lr_ratio=1.0
 --set train.eval_every=30 --set train.checkpoint_every=600"
COMPARE="python experiments/compare.py --config experiments/square_forced_turbulence/config.toml --runs runs/converge"
MODELS="unet:residual unet:multiresnet unet:multiresnet_matched cheb_unet"
OUT=experiments/square_forced_turbulence/converged
case "$1" in
  run) PYTHONPATH=$PWD $COMPARE --results runs/converge/partial --models "$2" --seeds "$3" $SETTINGS ;;
  table)
    PYTHONPATH=$PWD $COMPARE --results $OUT --finished-only --models $MODELS --seeds 0 1 2 3 4 $SETTINGS \
      --reference "persistence (test pairs, converged/data.json)=0.1966"
    mkdir -p $OUT/runs
    for run in runs/converge/navier_stokes_forced/*/; do
      [ -f "$run/metrics.json" ] && cp "$run/metrics.json" "$OUT/runs/$(basename "$run").json"
    done ;;
  *)
    for seed in 0 1 2 3 4; do for model in $MODELS; do sh "$0" run $model $seed; done; done
    sh "$0" table ;;
esac
