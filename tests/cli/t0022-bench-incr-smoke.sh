#!/bin/sh
# t0022-bench-incr-smoke.sh -- the incremental-run benchmark (bench/bench_incr.sh) still
# runs and prints a row per example aggregate, so that it cannot rot between `make bench`
# runs. A --quick run only: the timings are printed by the benchmark, never asserted here.
# It wipes a kept directory's results store before each measurement, so it refuses one
# whose event log it did not generate. --tail-repeat times the incremental run on copies of
# one store set up, after an untimed run on the store itself.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

B="$ZQL_SRCDIR/bench/bench_incr.sh"
expect_exit 0 'bench_incr.sh --quick runs in a kept directory' sh "$B" "$ZQL" --quick --keep "$TEST_TMP/b"
stdout_matches 'the table has its header' '^aggregate +full s +incr s +full us/event +incr us/event +ratio$'
for a in pageviews_daily users_daily api_latency_hourly top_downloads_daily; do
  stdout_matches "a row for $a with a ratio" "^$a +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+\$"
done
stdout_matches 'and what the figures are' \
  '^\(N = 200000 events, tail T = 2000, best of 1 full runs and of 1 incremental ones; ratio'
ok 'it marked the directory as its own' test -f "$TEST_TMP/b/.bench-incr"
expect_exit 0 'a second run reuses the kept directory (2 incremental runs per store)' \
  sh "$B" "$ZQL" --quick --tail-repeat 2 --keep "$TEST_TMP/b"
stdout_matches 'and measures again' '^top_downloads_daily +[0-9.]+'
stdout_matches 'the best of 2 incremental runs' 'best of 1 full runs and of 2 incremental ones'
ok 'the copies of the store it timed them on are gone' \
  sh -c 'for f in "$1"/results.*; do test ! -e "$f" || exit 1; done' sh "$TEST_TMP/b"
ok 'the last timed store is in place' test -f "$TEST_TMP/b/results/data.mdb"

# a data directory with a log of its own: refused, its results store left alone
expect_exit 0 'zql gen writes a log' "$ZQL" --data "$TEST_TMP/d" -q gen --events 100 --seed 1 --log
expect_exit 0 'an aggregate is stored there' "$ZQL" --data "$TEST_TMP/d" -q agg add "$ZQL_SRCDIR/examples/pageviews.zql"
expect_exit 2 'bench_incr.sh refuses that directory' sh "$B" "$ZQL" --quick --keep "$TEST_TMP/d"
stderr_matches 'and says why' 'did not generate; give --keep a new directory'
expect_exit 0 'zql agg list' "$ZQL" --data "$TEST_TMP/d" agg list
stdout_matches 'the stored aggregate is still there' '^pageviews_daily'
expect_exit 2 'an unknown option is a usage error' sh "$B" "$ZQL" --bogus
done_testing
