#!/bin/sh
# t0044-incr-threads.sh -- an incremental commit that merges hundreds of stored documents
# does it on the run's threads (runtime/incr.c, commit_incremental): with 1 thread and with
# 4, runs over successive slices of a generated log give the documents of one run over all
# of it, byte for byte -- hll (sparse and dense), exact distinct sets (two stored sets
# merged by one walk), topk, quantiles.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

EX=$ZQL_SRCDIR/examples
DEFS="$EX/pageviews.zql $EX/uniques.zql $EX/latency.zql $EX/downloads.zql"
AGGS="pageviews_daily users_daily api_latency_hourly top_downloads_daily"

S=$TEST_TMP/scratch
"$ZQL" --data "$S" -q gen --events 60000 --seed 7 --days 3 --projects 40 --users 3000 --log \
  >/dev/null 2>&1 || skip_all "cannot generate events"
# shellcheck disable=SC2086
"$ZQL" --data "$S" -q agg add $DEFS >/dev/null 2>&1 || skip_all "cannot add the examples"
# shellcheck disable=SC2086
expect_exit 0 'one run over every event' "$ZQL" --data "$S" agg run $AGGS

for t in 1 4; do
  D=$TEST_TMP/t$t
  mkdir -p "$D" && cp -r "$S/events" "$D/"
  # shellcheck disable=SC2086
  "$ZQL" --data "$D" -q agg add $DEFS >/dev/null 2>&1
  for upto in 20000 35000 50000 60000; do
    # shellcheck disable=SC2086
    expect_exit 0 "threads $t: a run up to _seq $upto" \
      "$ZQL" --data "$D" agg run $AGGS --upto $upto --threads $t
  done
  stdout_matches "threads $t: the last run merged stored documents" \
    '^users_daily: run 4 incremental \(50000, 60000\]: 10000 events, [0-9]+ inserted, [0-9]{2,} updated'
  for a in $AGGS; do
    "$ZQL" --data "$D" agg dump "$a" >"$TEST_TMP/inc.dump" # (without _hw, _rev, _late)
    "$ZQL" --data "$S" agg dump "$a" >"$TEST_TMP/ref.dump"
    ok "threads $t: $a equals the one run, byte for byte" \
      cmp -s "$TEST_TMP/inc.dump" "$TEST_TMP/ref.dump"
  done
done

done_testing
