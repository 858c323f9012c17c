#!/bin/sh
# Darcy flow on the 300 random domains, Dirichlet Laplacian eigenbases (exact zero boundary): the
# three U-Nets and the strongest baseline of RESULTS §3a (the flat message-passing ResNet on the
# mesh's vertices, sized to the Multi-ResNet's parameter count, its output zero on the boundary like
# every model's), 5 seeds, each trained under the config's cosine schedule for 1200, 2400 and 4800
# steps at batch 8 (40, 80 and 160 epochs of the 240 training domains), the held-out domains' error
# every 120 steps. The gain of doubling the budget is 1 - L(2N) / L(N) per seed (experiments/budget_gains.py).
# At a constant learning rate, as on the square, the error here swings by up to 20 % from one
# evaluation to the next and by 24-47 % over a run's second half (seed 0, converged/constant_rate/),
# too much for one run's curve to tell the gain of a doubling, so the budgets are separate runs.
# At 2400 steps the three U-Nets also run in the FINEST layout, which asks why the flat ResNet wins:
# width 32 on every level instead of 16-32-64 and a second residual block per decoder, so the
# Multi-ResNet's parameters move to the mesh's vertices (73,441 against 73,569; 44 % of them in the
# finest decoder against 7 %).
# Run from the repository root with OMP_NUM_THREADS=1.
#   sh converge.sh run MODEL SEED STEPS   one run into runs/darcy_converge/steps<STEPS>
#   sh converge.sh table [STEPS...]       the tables of these budgets (default: every budget) from
#                                         the finished runs, every run's metrics (the loss of every
#                                         10th step and every evaluation), then the gains of every
#                                         doubling whose two tables are in place
#   sh converge.sh                        every run, budget after budget, then the tables
SETTINGS="--set task.hierarchy='spectral' --set task.band_limits=[8,32,64] --set task.resolution_transfer=false
 --set train.eval_every=120 --set train.checkpoint_every=1200"
COMPARE="python experiments/compare.py --config experiments/darcy_mesh/config.toml"
MODELS="unet:residual unet:multiresnet unet:multiresnet_matched flat_resnet"
FINEST="|model.width=32|model.channel_mult=[1]|model.decoder_blocks=1"
BUDGETS="1200 2400 4800"
RUNS=runs/darcy_converge
OUT=experiments/darcy_mesh/converged
. experiments/budgets.sh  # run_budget, table_of_budget, models_at, gains_of_doublings
models_of() {  # models_at STEPS, and at 2400 steps the U-Nets in the FINEST layout
  models_at "$1"
  [ "$1" = 2400 ] && for variant in residual multiresnet multiresnet_matched; do printf "%s " "unet:$variant$FINEST"; done
}
case "$1" in
  run) run_budget "$2" "$3" "$4" ;;
  table)
    shift; for steps in ${*:-$BUDGETS}; do table_of_budget $steps --models $(models_of $steps); done
    gains_of_doublings $OUT $BUDGETS ;;
  *)
    for steps in $BUDGETS; do for seed in 0 1 2 3 4; do for model in $(models_of $steps); do
      sh "$0" run $model $seed $steps; done; done; done
    sh "$0" table ;;
esac
