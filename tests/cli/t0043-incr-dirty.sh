#!/bin/sh
# t0043-incr-dirty.sh -- R14 recompute-dirty: an aggregate whose outputs cannot absorb new
# events by merging (rank within the bucket, having) recomputes only the time buckets its
# new events fall in, and its documents then equal those of a from-scratch run: values,
# documents that leave the ranking or stop passing `having` deleted, late events under
# merge and drop; plans that are not bucket-local still recompute everything.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

# ev TIME PROJECT FILE: one NDJSON event
ev() {
  printf '{"timestamp":{"$date":"%s"},"type":"download","context":{"project":"%s"},"extra":{"file":"%s","v":1}}\n' \
    "$1" "$2" "$3"
}

D=$TEST_TMP/dirty
cat >"$TEST_TMP/dirty.zql" <<'EOF'
aggregate top_daily                              # rank inside the day: recompute-dirty
  from event
  group by context.project as project, bucket(timestamp, day) as day, extra.file as file
  compute n = count()
  rank by n desc limit 2 within (project, day);

aggregate busy_hours                             # having: recompute-dirty
  from event
  group by context.project as project, bucket(timestamp, hour) as hour
  compute n = count()
  having n >= 2;

aggregate top_ever                               # rank across days: every run is full
  from event
  group by context.project as project, bucket(timestamp, day) as day, extra.file as file
  compute n = count()
  rank by n desc limit 1 within (project);

aggregate top_daily_drop                         # late events dropped
  from event
  group by context.project as project, bucket(timestamp, day) as day, extra.file as file
  compute n = count()
  rank by n desc limit 2 within (project, day)
  lateness 1h late drop;
EOF
AGGS="top_daily busy_hours top_ever top_daily_drop"

{
  ev 2024-03-01T10:00:00Z a f1
  ev 2024-03-01T10:10:00Z a f1
  ev 2024-03-01T10:20:00Z a f2
  ev 2024-03-01T11:00:00Z a f3
  ev 2024-03-02T09:00:00Z a f1
  ev 2024-03-02T09:30:00Z a f2
  ev 2024-03-02T09:40:00Z a f2
  ev 2024-03-02T12:00:00Z b f9
  ev 2024-03-03T02:00:00Z a f5 # W = 2024-03-03T01:00Z: 03-01 and 03-02 are closed
} >"$TEST_TMP/d1.ndjson"
{
  ev 2024-03-03T08:00:00Z a f5 # today: f5 twice
  ev 2024-03-03T08:05:00Z a f6
  ev 2024-03-02T23:00:00Z a f3 # late, for 03-02: f3 enters its ranking?
  ev 2024-03-02T23:10:00Z a f3 # late: f3 (2) ties f2 (2), f1 (1) leaves the top 2
  ev 2024-03-02T12:30:00Z b f9 # late: b's 12:00 hour now passes `having`
} >"$TEST_TMP/d2.ndjson"

"$ZQL" --data "$D" -q import "$TEST_TMP/d1.ndjson" >/dev/null 2>&1 || skip_all "cannot import events"
expect_exit 0 'agg add' "$ZQL" --data "$D" agg add "$TEST_TMP/dirty.zql"
expect_exit 0 'explain top_daily' "$ZQL" --data "$D" agg show top_daily
stdout_matches 'explain: top_daily is recompute-dirty' '\[recompute-dirty\]'
expect_exit 0 'explain top_ever' "$ZQL" --data "$D" agg show top_ever
stdout_matches 'explain: ranking across buckets is recompute-full' '\[recompute-full\]'
# shellcheck disable=SC2086
expect_exit 0 'the first run' "$ZQL" --data "$D" agg run $AGGS
stdout_matches 'a first run is full' '^top_daily: run 1 full \(0, 9\]'
same_as_scratch 'after the first run: as from scratch' "$D" "$TEST_TMP/dirty.zql" $AGGS

"$ZQL" --data "$D" -q import "$TEST_TMP/d2.ndjson" >/dev/null 2>&1
# shellcheck disable=SC2086
expect_exit 0 'the second run' "$ZQL" --data "$D" agg run $AGGS
stdout_matches 'rank within the day: a dirty run over the new events' \
  '^top_daily: run 2 dirty \(9, 14\]: 5 events'
stdout_matches 'one document left the ranking: deleted' '^top_daily: run 2 dirty .* 1 deleted'
stdout_matches 'having: a dirty run' '^busy_hours: run 2 dirty \(9, 14\]: 5 events'
stdout_matches 'rank across days: a full run' '^top_ever: run 2 full \(0, 14\]'
stdout_matches 'late drop: 3 late events dropped' \
  '^top_daily_drop: run 2 dirty \(9, 14\]: 5 events.* 3 late dropped'
# shellcheck disable=SC2046
same_as_scratch 'dirty runs equal a from-scratch run' "$D" "$TEST_TMP/dirty.zql" top_daily \
  busy_hours top_ever
expect_output '{"project":"a","day":"2024-03-02T00:00:00.000Z","file":"f2","n":2}
{"project":"a","day":"2024-03-02T00:00:00.000Z","file":"f3","n":2}' \
  'the late events changed the ranking of 03-02' \
  "$ZQL" --data "$D" -c 'from agg top_daily where project == "a" and day == date("2024-03-02T00:00:00Z") order by file' \
  --format ndjson
expect_output '{"project":"a","day":"2024-03-02T00:00:00.000Z","file":"f1","n":1}
{"project":"a","day":"2024-03-02T00:00:00.000Z","file":"f2","n":2}' \
  'late drop: 03-02 as before' \
  "$ZQL" --data "$D" -c 'from agg top_daily_drop where project == "a" and day == date("2024-03-02T00:00:00Z") order by file' \
  --format ndjson
# new events on six separate days (beyond 4 ranges, one read over their span): the days in
# between that no event touched keep their documents
{
  ev 2024-03-05T10:00:00Z a f1
  ev 2024-03-07T10:00:00Z a f2
  ev 2024-03-09T10:00:00Z a f3
  ev 2024-03-11T10:00:00Z b f4
  ev 2024-03-13T10:00:00Z a f5
  ev 2024-03-01T12:00:00Z a f2 # late: 03-01 again
  ev 2024-03-04T10:00:00Z a f6
  ev 2024-03-06T10:00:00Z a f6 # 03-04 and 03-06 stay untouched by the next import
} >"$TEST_TMP/d3.ndjson"
head -6 "$TEST_TMP/d3.ndjson" >"$TEST_TMP/d3a.ndjson"
tail -2 "$TEST_TMP/d3.ndjson" >"$TEST_TMP/d3b.ndjson"
"$ZQL" --data "$D" -q import "$TEST_TMP/d3b.ndjson" >/dev/null 2>&1
expect_exit 0 'a run over two days' "$ZQL" --data "$D" agg run top_daily busy_hours top_ever
"$ZQL" --data "$D" -q import "$TEST_TMP/d3a.ndjson" >/dev/null 2>&1
expect_exit 0 'a run over six separate days' "$ZQL" --data "$D" agg run top_daily busy_hours top_ever
stdout_matches 'a dirty run' '^top_daily: run 4 dirty \(16, 22\]: 6 events'
same_as_scratch 'scattered days: as from scratch' "$D" "$TEST_TMP/dirty.zql" top_daily busy_hours \
  top_ever

# the same run again: nothing new, nothing changes
expect_exit 0 'a run with nothing new' "$ZQL" --data "$D" agg run top_daily
stdout_matches 'is up to date' '^top_daily: up to date'

done_testing
