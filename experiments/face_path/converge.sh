#!/bin/sh
# The main job (shallow water on HEALPix nside 32, the 12 face images, 3 x 3 convolutions, width 12,
# sin(latitude) as an input) to larger budgets: the three U-Nets, SFNO (the strongest baseline of
# RESULTS §2) and physicsnemo's DLWP-HEALPix U-Net (the `dlwp` extra), 5 seeds, each trained under the
# config's cosine schedule for 900 steps (the main job's budget), for 1800 and for 3600 (DLWP: 900 and
# 1800), the test error every 300 steps. The gain of doubling the budget is
# 1 - L(2N) / L(N) per seed (experiments/budget_gains.py); under a cosine schedule a run's own curve
# cannot tell it, so the budgets are separate runs (as for Darcy, experiments/darcy_mesh/converge.sh).
# The Multi-ResNet's 900-step runs are the main job's (RESULTS §5): `run` reuses them when their
# metrics are in place (run_budget's `--resume` reads a run whose stored config is this one).
# Run from the repository root with OMP_NUM_THREADS=1.
#   sh converge.sh run MODEL SEED STEPS   one run into runs/sphere_converge/steps<STEPS>
#   sh converge.sh table [STEPS...]       the tables of these budgets (default: every budget), the
#                                         paired scores, every run's metrics (the loss of every 10th
#                                         step, every evaluation), then the gains of every doubling
#                                         whose two tables are in place
#   sh converge.sh                        every run, budget after budget, then the tables
SETTINGS="--set train.eval_every=300 --set train.checkpoint_every=300"
COMPARE="python experiments/compare.py --config experiments/face_path/config.toml"
MODELS="unet:residual unet:multiresnet unet:multiresnet_matched sfno dlwp"
BUDGETS="900 1800 3600"
DLWP_UP_TO=1800  # DLWP's largest budget
RUNS=runs/sphere_converge
OUT=experiments/face_path/converged
. experiments/budgets.sh  # run_budget, table_of_budget, models_at, finished, gains_of_doublings
case "$1" in
  run) run_budget "$2" "$3" "$4" ;;
  table)
    shift; for steps in ${*:-$BUDGETS}; do
      table_of_budget $steps --models $(models_at $steps) --reference "persistence=1"
      runs=$RUNS/steps$steps/shallow_water_healpix
      # one-step error, 1-h and 24-h RMSE of h (m), 24-h ACC of vorticity, paired against the residual
      # U-Net (the reference of compare.py's table)
      dlwp=""; [ $steps -le $DLWP_UP_TO ] && dlwp="--model DLWP $(finished $runs/dlwp-seed*)"
      PYTHONPATH=$PWD python experiments/paired_scores.py \
        --scores rel_l2_mean model_rmse_h@1 model_rmse_h@24 model_acc_vorticity@24 \
        --model "Residual U-Net" $(finished $runs/unet-residual-seed*) \
        --model Multi-ResNet $(finished $runs/unet-multiresnet-seed*) \
        --model "Multi-ResNet, saved params" $(finished $runs/unet-multiresnet_matched-seed*) \
        --model SFNO $(finished $runs/sfno-seed*) \
        $dlwp --out $OUT/steps$steps/paired_scores.json
    done
    gains_of_doublings $OUT $BUDGETS ;;
  *)
    for steps in $BUDGETS; do for seed in 0 1 2 3 4; do for model in $(models_at $steps); do
      sh "$0" run $model $seed $steps; done; done; done
    sh "$0" table ;;
esac
