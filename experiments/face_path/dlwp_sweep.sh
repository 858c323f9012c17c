#!/bin/sh
# Why is DLWP-HEALPix behind on the main job? RESULTS §2a trains every model at the config's lr 2e-3,
# tuned for none of them, and sizes every baseline to the Multi-ResNet's parameter count, which gives
# physicsnemo's DLWP-HEALPix U-Net 7 channels on its finest level. 900 steps (the protocol of
# converge.sh's 900-step budget) under the same cosine schedule, seed 0 for every variant and seeds
# 0-4 for the last (SEEDS_OF_LAST), so that it pairs with the U-Nets' 900-step runs:
#   lr=X     the learning rate X at the matched size (lr=2e-3 is the config's own run)
#   width=W  lr 2e-3, DLWP sized to the Multi-ResNet of width W instead of 12 (W = 24: 13 channels
#            on the finest level, 3.4x the parameters)
#   block=B  physicsnemo's block B (model.dlwp_block): the runs above use `basic` (two plain 3x3
#            convolutions per level); `convnext` is the residual ConvNeXt block of the DLWP-HEALPix
#            models (2 channels on the finest level at the matched size, 4 with width=24)
# DLWP needs the `dlwp` extra (physicsnemo), which `make install` installs with the dev extra.
# Run from the repository root with OMP_NUM_THREADS=1.
#   sh dlwp_sweep.sh run VARIANT [SEED]   one run (seed 0 unless given) into runs/dlwp_sweep
#   sh dlwp_sweep.sh table         the table of every variant's seed 0 and the metrics of every finished run
#                                  into face_path/dlwp_sweep/, and the last variant's seeds paired with
#                                  the stored 900-step runs of converge.sh (against_900_step_runs.{md,json})
#   sh dlwp_sweep.sh               every run, then the table
SETTINGS="--set train.eval_every=300 --set train.checkpoint_every=300 --set train.steps=900"
COMPARE="python experiments/compare.py --config experiments/face_path/config.toml"
VARIANTS="lr=5e-4 lr=1e-3 lr=2e-3 lr=4e-3 width=24 block=convnext block=convnext,width=24"
SEEDS_OF_LAST="0 1 2 3 4"
. experiments/budgets.sh  # finished
RUNS=runs/dlwp_sweep
OUT=experiments/face_path/dlwp_sweep
model() {  # the model spec of a variant: key=value pairs joined by commas
  spec=dlwp
  for pair in $(printf %s "$1" | tr , ' '); do
    case "$pair" in
      lr=2e-3) ;;  # the config's own rate
      lr=*) spec="$spec|train.lr=${pair#lr=}" ;;
      width=*) spec="$spec|model.width=${pair#width=}" ;;
      block=*) spec="$spec|model.dlwp_block=${pair#block=}" ;;
      *) echo "unknown setting $pair in variant $1: lr=, width= or block=" >&2; exit 2 ;;
    esac
  done
  printf %s "$spec"
}
case "$1" in
  run) spec=$(model "$2") || exit 2
       PYTHONPATH=$PWD $COMPARE --runs $RUNS --results $RUNS/partial-"$2"-"${3:-0}" --models "$spec" \
         --seeds "${3:-0}" $SETTINGS --reuse ;;
  table)
    models=""; for variant in $VARIANTS; do models="$models $(model "$variant")"; done
    # shellcheck disable=SC2086  # one word per model
    PYTHONPATH=$PWD $COMPARE --runs $RUNS --results $OUT --finished-only --models $models --seeds 0 $SETTINGS \
      --reference "persistence=1"
    python experiments/thin_metrics.py --every 10 --out $OUT/runs $(finished $RUNS/shallow_water_healpix/*)
    stored=converged/steps900/runs  # relative to experiments/face_path
    PYTHONPATH=$PWD python experiments/face_path/main_job_table.py --runs experiments/face_path --seeds $SEEDS_OF_LAST \
      --models "Residual U-Net=$stored/unet-residual" "Multi-ResNet=$stored/unet-multiresnet" \
      "Multi-ResNet, saved params in dec.=$stored/unet-multiresnet_matched" "SFNO=$stored/sfno" \
      "DLWP-HEALPix, basic blocks, matched size=$stored/dlwp" \
      "DLWP-HEALPix, ConvNeXt blocks, 3.9x params=dlwp_sweep/runs/dlwp-model.dlwp_block-convnext-model.width-24" \
      --out $OUT/against_900_step_runs ;;
  *)
    for variant in $VARIANTS; do sh "$0" run "$variant"; done
    last=${VARIANTS##* }
    for seed in $SEEDS_OF_LAST; do [ "$seed" = 0 ] || sh "$0" run "$last" "$seed"; done
    sh "$0" table ;;
esac
