#!/bin/sh
# bench_incr.sh -- what an incremental run costs per new event, against a full run.
#
# Issue 5's target: a run over the last TAIL events of an N-event log costs at most 1.5x
# per event what a full run over all N events costs, i.e. incremental runs pay only for
# what is new (not for the size of the log or of the stored outputs).
#
#   sh bench/bench_incr.sh ZQL [--events N] [--tail T] [--threads K] [--repeat R]
#                              [--tail-repeat K] [--keep DIR] [--quick]
#
# Steps (one data directory): generate N events; store the example aggregates; run them up
# to _seq N - T (untimed); then, timed by the runner itself (the seconds in each report
# line, which cover plan loading, execution, the commit and its fsync):
#   incremental  `zql agg run` over the last T events          -> seconds / T
#   full         `zql agg rebuild` over all N events          -> seconds / N
# and prints both per-event costs and their ratio for each aggregate. With --repeat R (5 by
# default) each measurement is taken R times (the incremental one on a store set up anew
# each time) and the best counts: a shared virtual machine's noise only ever adds time.
# The incremental run is short (about 12 ms), so one descheduled millisecond is a tenth of
# its ratio: each store set up is copied, and the run is timed on --tail-repeat K fresh
# copies of it (3 by default; the same run over the same events into the same stored
# outputs each time), so the best is of R * K incremental runs. The K copies are made and
# written back to disk first; then one untimed run on the set-up store itself, then the K
# timed runs back to back. On a virtual machine a run that follows an idle moment (the
# copies, their sync) starts on cold virtual CPUs: the same run mapped 100k events in 13 ms
# after a second of idleness and in 8.5 ms after 300 ms of work (docs/performance.md,
# seventh session). The full run is a second of work, measured warm; the untimed run
# puts the incremental ones in the same state.
set -eu
ZQL=${1:?usage: bench_incr.sh ZQL [--events N] [--tail T] [--threads K] [--keep DIR] [--quick]}
shift
N=10000000
T=100000
THREADS=
KEEP=
REPEAT=5
TREPEAT=3
while [ $# -gt 0 ]; do
  case $1 in
    --events) N=$2; shift 2 ;;
    --tail) T=$2; shift 2 ;;
    --threads) THREADS="--threads $2"; shift 2 ;;
    --keep) KEEP=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --tail-repeat) TREPEAT=$2; shift 2 ;;
    --quick) N=200000; T=2000; REPEAT=1; TREPEAT=1; shift ;;
    *) echo "bench_incr.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$T" -lt "$N" ] || { echo "bench_incr.sh: --tail must be below --events" >&2; exit 2; }
SRC=$(cd "$(dirname "$0")/.." && pwd)
D=${KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/zql-bench-incr.XXXXXX")}
[ -n "$KEEP" ] || trap 'rm -rf "$D"' EXIT INT TERM
mkdir -p "$D"

# the results store is wiped before each measurement: only in a directory this script
# generated (a marker file says so), never in a data directory that holds anything else
if [ ! -d "$D/events" ]; then
  echo "generating $N events in $D ..." >&2
  "$ZQL" --data "$D" -q gen --events "$N" --seed 42 --days 60 --log >/dev/null
  echo "bench_incr.sh: generated $N events; results/ is wiped at will" >"$D/.bench-incr"
elif [ ! -f "$D/.bench-incr" ]; then
  echo "bench_incr.sh: $D has an event log this script did not generate; give --keep a new" \
    "directory (its results store is wiped before each measurement)" >&2
  exit 2
fi
AGGS="pageviews_daily users_daily api_latency_hourly top_downloads_daily"
secs() { sed -n 's/.*(\([0-9.]*\) s)$/\1/p' | tail -1; }
printf '%-22s %12s %12s %14s %14s %7s\n' aggregate "full s" "incr s" "full us/event" \
  "incr us/event" ratio
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }'; }
for a in $AGGS; do
  inc= full=
  r=0
  while [ $r -lt "$REPEAT" ]; do
    r=$((r + 1))
    # each measurement starts from an empty results store holding only the examples: the
    # outputs of earlier repetitions and other aggregates, and the free pages their drops
    # leave behind, are history this measurement is not about (docs/performance.md)
    rm -rf "$D/results" "$D/results".*
    "$ZQL" --data "$D" -q agg add "$SRC/examples/pageviews.zql" "$SRC/examples/uniques.zql" \
      "$SRC/examples/latency.zql" "$SRC/examples/downloads.zql" >/dev/null
    # shellcheck disable=SC2086
    "$ZQL" --data "$D" agg run "$a" --upto $((N - T)) $THREADS >/dev/null
    k=0
    while [ $k -lt "$TREPEAT" ]; do
      k=$((k + 1))
      cp -a "$D/results" "$D/results.$k"
      # the copy's pages are dirty: written back now, or the run's fdatasync of the store
      # file would write the whole copy (5 MB for topk) rather than the pages it changed
      sync "$D/results.$k/data.mdb"
    done
    # shellcheck disable=SC2086
    "$ZQL" --data "$D" agg run "$a" $THREADS >/dev/null # the warm-up, untimed
    k=0
    while [ $k -lt "$TREPEAT" ]; do
      k=$((k + 1))
      rm -rf "$D/results.done"
      mv "$D/results" "$D/results.done"
      mv "$D/results.$k" "$D/results"
      # shellcheck disable=SC2086
      inc=$(min "$inc" "$("$ZQL" --data "$D" agg run "$a" $THREADS | secs)")
    done
    rm -rf "$D/results.done"
    # shellcheck disable=SC2086
    full=$(min "$full" "$("$ZQL" --data "$D" agg rebuild "$a" $THREADS | secs)")
  done
  awk -v a="$a" -v f="$full" -v i="$inc" -v n="$N" -v t="$T" 'BEGIN {
    fe = f / n * 1e6; ie = i / t * 1e6;
    printf "%-22s %12.3f %12.4f %14.3f %14.3f %7.2f\n", a, f, i, fe, ie, ie / fe }'
done
echo "(N = $N events, tail T = $T, best of $REPEAT full runs and of $((REPEAT * TREPEAT))" \
  "incremental ones; ratio = incremental cost per event / full cost per event; target <= 1.5)"
