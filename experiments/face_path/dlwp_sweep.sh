#!/bin/sh
# Is DLWP-HEALPix behind on the main job because of the learning rate? RESULTS §2a trains every model
# at the config's lr 2e-3, tuned for none of them. physicsnemo's DLWP-HEALPix U-Net, seed 0, 900 steps
# (the protocol of converge.sh's 900-step budget), at lr 5e-4, 1e-3, 2e-3 and 4e-3 under the same
# cosine schedule. DLWP needs the `dlwp` extra (.venv/bin/pip install -e '.[dlwp]'), which `make` does
# not install.
# Run from the repository root with OMP_NUM_THREADS=1.
#   sh dlwp_lr.sh run LR    one run into runs/dlwp_lr
#   sh dlwp_lr.sh table     the table of the finished runs and their metrics into face_path/dlwp_lr/
#   sh dlwp_lr.sh           every run, then the table
SETTINGS="--set train.eval_every=300 --set train.checkpoint_every=300 --set train.steps=900"
COMPARE="python experiments/compare.py --config experiments/face_path/config.toml"
RATES="5e-4 1e-3 2e-3 4e-3"
. experiments/budgets.sh  # finished
RUNS=runs/dlwp_lr
OUT=experiments/face_path/dlwp_lr
model() { [ "$1" = 2e-3 ] && printf dlwp || printf 'dlwp|train.lr=%s' "$1"; }  # 2e-3: the config's own
case "$1" in
  run) PYTHONPATH=$PWD $COMPARE --runs $RUNS --results $RUNS/partial-"$2" --models "$(model "$2")" --seeds 0 \
         $SETTINGS --reuse ;;
  table)
    models=""; for lr in $RATES; do models="$models $(model $lr)"; done
    # shellcheck disable=SC2086  # one word per model
    PYTHONPATH=$PWD $COMPARE --runs $RUNS --results $OUT --finished-only --models $models --seeds 0 $SETTINGS \
      --reference "persistence=1"
    python experiments/thin_metrics.py --every 10 --out $OUT/runs $(finished $RUNS/shallow_water_healpix/*) ;;
  *)
    for lr in $RATES; do sh "$0" run $lr; done
    sh "$0" table ;;
esac
