#!/bin/sh
# The `forecast` task (forecast.toml, RESULTS §4b) trained to a plateau: the Multi-ResNet, SFNO and
# physicsnemo's DLWP-HEALPix U-Net with its plain blocks and with its ConvNeXt blocks (each baseline
# sized to the Multi-ResNet's parameter count), one-step training (k = 1), 5 seeds, each under the
# config's cosine schedule for 800 and 1600 steps at batch 8 (the Multi-ResNet and SFNO also for
# 3200), the test error every 40 steps. The gain of doubling the budget is 1 - L(2N) / L(N) per
# seed (experiments/budget_gains.py). A DLWP step costs 2.0-2.1x a Multi-ResNet step
# (dlwp/step_cost_converge.json), so a DLWP run of N steps has the CPU time of a Multi-ResNet run
# of 2N: `table` pairs the rollout scores at equal steps (paired_scores.json of each budget) and at
# equal CPU time (equal_time_<2N>.json).
# Run from the repository root with OMP_NUM_THREADS=1 and the data made (COMMANDS.md step 0).
#   sh converge.sh run MODEL SEED STEPS   one run into runs/forecast_converge/steps<STEPS>
#   sh converge.sh table [STEPS...]       the tables and paired scores of these budgets (default: every
#                                         budget) from the finished runs, every run's metrics (the loss
#                                         of every 10th step, every evaluation), the gains of every
#                                         doubling and the pairs at equal CPU time
#   sh converge.sh                        every run, the longest budget first, then the tables
SETTINGS="--set task.train_rollout=1 --set train.eval_every=40 --set train.checkpoint_every=400"
COMPARE="python experiments/compare.py --config experiments/forecast_shallow_water/forecast.toml
 --lead-scores rmse_z500 acc_z500 acc_vo"
MODELS="unet:multiresnet sfno dlwp dlwp|model.dlwp_block=convnext"
BUDGETS="800 1600 3200"
DLWP_UP_TO=1600  # the DLWP U-Nets' largest budget (its CPU time: the Multi-ResNet's 3200 steps)
RUNS=runs/forecast_converge
OUT=experiments/forecast_shallow_water/converged
. experiments/budgets.sh  # run_budget, table_of_budget, models_at, finished, gains_of_doublings
# one-step error, z500 RMSE at 24 h and at 48 h (the longest lead), ACC of z500 and vorticity at 48 h,
# each model paired with the Multi-ResNet (the first group): paired_with_multiresnet OUT MR_STEPS DLWP_STEPS
paired_with_multiresnet() {  # a model without finished runs is left out
  out=$1 runs=$RUNS/steps$2/forecast dlwp=$RUNS/steps$3/forecast
  sfno=$([ "$2" = "$3" ] && finished $runs/sfno-seed*)  # SFNO: equal steps only
  plain=$(finished $dlwp/dlwp-seed*)
  convnext=$(finished $dlwp/dlwp-model.dlwp_block-convnext-seed*)
  set -- --model "Multi-ResNet" $(finished $runs/unet-multiresnet-seed*)
  [ -n "$sfno" ] && set -- "$@" --model SFNO $sfno
  [ -n "$plain" ] && set -- "$@" --model "DLWP, plain blocks" $plain
  [ -n "$convnext" ] && set -- "$@" --model "DLWP, ConvNeXt blocks" $convnext
  PYTHONPATH=$PWD python experiments/paired_scores.py \
    --scores rel_l2_mean model_rmse_z500@24 model_rmse_z500@last model_acc_z500@last model_acc_vo@last \
    "$@" --out "$out"
}
case "$1" in
  run) run_budget "$2" "$3" "$4" ;;
  table)
    shift; for steps in ${*:-$BUDGETS}; do
      table_of_budget $steps --models $(models_at $steps)
      paired_with_multiresnet $OUT/steps$steps/paired_scores.json $steps $steps
    done
    gains_of_doublings $OUT $BUDGETS
    set -- $BUDGETS
    while [ $# -ge 2 ]; do  # the Multi-ResNet at 2N steps against DLWP at N
      [ -d $RUNS/steps$1 ] && [ -d $RUNS/steps$2 ] && paired_with_multiresnet $OUT/equal_time_$2.json $2 $1
      shift
    done ;;
  *)
    for steps in 1600 800 3200; do for seed in 0 1 2 3 4; do for model in $(models_at $steps); do
      sh "$0" run $model $seed $steps; done; done; done
    sh "$0" table ;;
esac
