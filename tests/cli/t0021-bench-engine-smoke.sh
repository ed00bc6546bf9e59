#!/bin/sh
# t0021-bench-engine-smoke.sh -- the engine benchmark (bench/bench_engine.c) and its
# hand-written baseline (bench/handwritten.c) build, run and print their table, so that
# they cannot rot between `make bench` runs. A --quick run only: timings are printed by the
# benchmark and never asserted here; the baseline's answers are checked on 10000 events.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

BENCH=$ZQL_BUILDDIR/bench/bench_engine
HAND=$ZQL_BUILDDIR/bench/handwritten
if [ ! -x "$BENCH" ] || [ ! -x "$HAND" ]; then
  skip_all "bench/bench_engine or bench/handwritten is not built (make check builds them)"
fi

expect_exit 0 'bench_engine --quick generates its log and runs' \
  "$BENCH" --quick --dir "$TEST_TMP/data" --zql "$ZQL"
stdout_matches 'it prints the exact command line' '^command: .*bench_engine --quick --dir '
stdout_matches 'and the machine' '^machine: [0-9]+ cores \(nproc\), CPU '
stdout_matches 'it generated 10000 events' '^log: .*: 10000 events in .*generated now$'
stdout_matches 'the table has its header' '^query +events +zql s +zql Mev/s +zql MB/s +zql RSS +zql anon +hand s '
for q in count_by_type pageviews_daily users_exact users_hll latency top_downloads \
  bytes_by_nbhd one_project groups_1m; do
  stdout_matches "a row for $q with the hand-written figures" "^$q +10000 .* [0-9]+\.[0-9]{3} +[0-9]+\.[0-9]{2} "
done
stdout_matches 'groups_1m runs zql with --mem-limit' 'groups_1m .*\[--mem-limit 512M\]'
stdout_matches 'it finishes' '^done$'
ok 'it kept the results of both programs' test -s "$TEST_TMP/data/out/latency.hand.ndjson"

expect_exit 0 'a second run reuses the log' "$BENCH" --quick --dir "$TEST_TMP/data" \
  --zql "$ZQL" --only count_by_type
stdout_matches 'the stamp matched' '^log: .*reused \(the stamp matches\)$'

expect_exit 0 'handwritten --print counts by type' \
  "$HAND" --data "$TEST_TMP/data" --query count_by_type --threads 2 --print
ok 'the counts add up to the events' \
  sh -c "sed 's/.*\"n\":\([0-9]*\)}/\1/' '$TEST_TMP/stdout' | awk '{ s += \$1 } END { exit s != 10000 }'"
expect_exit 0 'handwritten groups_1m' "$HAND" --data "$TEST_TMP/data" --query groups_1m --threads 3
stdout_matches 'has one group per event of 10000' '^groups_1m: 10000 events, 10000 rows, checksum '
run "$HAND" --data "$TEST_TMP/data" --query latency --threads 1
sum1=$(sed 's/.*checksum \([0-9a-f]*\),.*/\1/' "$TEST_TMP/stdout")
run "$HAND" --data "$TEST_TMP/data" --query latency --threads 3
sum3=$(sed 's/.*checksum \([0-9a-f]*\),.*/\1/' "$TEST_TMP/stdout")
ok 'its results do not depend on the thread count' test -n "$sum1" -a "$sum1" = "$sum3"

expect_exit 2 'an unknown option is a usage error' "$BENCH" --bogus
expect_exit 2 'an unknown query too' "$HAND" --data "$TEST_TMP/data" --query bogus
done_testing
