# Shell helpers shared by the converge.sh scripts (sourced from the repository root). A script sets
# COMPARE (experiments/compare.py with its --config), SETTINGS (the --set options of every run), RUNS
# (the runs' folder) and OUT (the tables' folder under experiments/) before calling them.
# run_budget MODEL SEED STEPS [OPTION...]
#                               one compare.py run of MODEL and SEED for STEPS steps into
#                               RUNS/steps<STEPS> (its own table into RUNS/partial-*); a run that
#                               was stopped continues from its last checkpoint, a finished one is read
# table_of_budget STEPS OPTION...
#                               compare.py's table of the finished runs of STEPS steps (seeds 0-4; the
#                               OPTIONs name the --models) into OUT/steps<STEPS>, then every run's
#                               metrics thinned to the loss of every 10th step into OUT/steps<STEPS>/runs
# models_at STEPS               MODELS without the DLWP ones (dlwp*) when STEPS exceeds DLWP_UP_TO
#                               (the scripts that set it train DLWP on fewer budgets)
# finished RUN...               the runs that have their metrics.json (a run still training has not)
# gains_of_doublings OUT N...   experiments/budget_gains.py for every consecutive pair of budgets
#                               whose two tables OUT/steps<N>/results.json are in place, into
#                               OUT/budget_gains_<N>_<2N>.json

run_budget() {
  model=$1 seed=$2 steps=$3; shift 3
  PYTHONPATH=$PWD $COMPARE --runs "$RUNS/steps$steps" --results "$RUNS/partial-$model-$seed-$steps" \
    --models "$model" --seeds "$seed" --resume $SETTINGS --set train.steps="$steps" "$@"
}

table_of_budget() {
  steps=$1; shift
  PYTHONPATH=$PWD $COMPARE --runs "$RUNS/steps$steps" --results "$OUT/steps$steps" --finished-only \
    --seeds 0 1 2 3 4 $SETTINGS --set train.steps="$steps" "$@"
  python experiments/thin_metrics.py --every 10 --out "$OUT/steps$steps/runs" $(finished "$RUNS/steps$steps"/*/*)
}

models_at() {
  for m in $MODELS; do
    case $m in dlwp*) [ -n "$DLWP_UP_TO" ] && [ "$1" -gt "$DLWP_UP_TO" ] && continue ;; esac
    printf '%s ' "$m"
  done
}

finished() { for run in "$@"; do [ -f "$run/metrics.json" ] && printf '%s ' "$run"; done; }

gains_of_doublings() {
  out=$1; shift
  while [ $# -ge 2 ]; do
    if [ -f "$out/steps$1/results.json" ] && [ -f "$out/steps$2/results.json" ]; then
      PYTHONPATH=$PWD python experiments/budget_gains.py "$out/steps$1/results.json" "$out/steps$2/results.json" \
        --out "$out/budget_gains_$1_$2.json"
    fi
    shift
  done
}
