# Shell helpers shared by the converge.sh scripts (sourced from the repository root).
# finished RUN...               the runs that have their metrics.json (a run still training has not)
# gains_of_doublings OUT N...   experiments/budget_gains.py for every consecutive pair of budgets
#                               whose two tables OUT/steps<N>/results.json are in place, into
#                               OUT/budget_gains_<N>_<2N>.json

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
