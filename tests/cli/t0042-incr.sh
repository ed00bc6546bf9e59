#!/bin/sh
# t0042-incr.sh -- `zql agg`: incremental aggregates in the results store (R12-R16, R19).
# The output modes with exact values on hand-written events, replaying a run, a rebuild
# while events are being imported, late events under each policy (exact `_late` counts),
# backfill (and its refusal past the log's retention), definition changes (E0013), drop,
# errors, `on_error fail`, and retention of output buckets.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

# ev TIME PROJECT [V [S]]: one NDJSON event (extra.v a number, extra.s a string)
ev() {
  printf '{"timestamp":{"$date":"%s"},"type":"t","context":{"project":"%s","user":"u-%s"},"extra":{"v":%s,"s":"%s"}}\n' \
    "$1" "$2" "$2" "${3:-1}" "${4:-0}"
}

# meta DATA NAME ID: "rev=R late=L" of document ID (from `agg dump --raw`)
meta() {
  "$ZQL" --data "$1" agg dump "$2" --raw 2>/dev/null | grep -F "{ \"_id\" : \"$3\"," >"$TEST_TMP/doc"
  _rev=$(sed -n 's/.*"_rev" : { "$numberLong" : "\([0-9]*\)" }.*/\1/p' "$TEST_TMP/doc")
  _late=$(sed -n 's/.*"_late" : { "$numberLong" : "\([0-9]*\)" }.*/\1/p' "$TEST_TMP/doc")
  echo "rev=$_rev late=$_late"
}

# ==== output modes ====
# One definition in the four modes. It counts the events of the last day before the run's
# now(), so that the modes part ways: reduce adds the new events to the stored counts,
# merge overwrites a touched document with the new events only, upsert recomputes a
# touched document over every event, replace recomputes every document.
D=$TEST_TMP/modes
for m in reduce merge upsert replace; do
  cat <<EOF
aggregate recent_$m
  from event
  where timestamp >= now() - 1d
  group by context.project as project
  compute n = count(), v = sum(extra.v)
  mode $m;
EOF
done >"$TEST_TMP/modes.zql"
{
  ev 2024-01-01T10:00:00Z a 1 # never in the window
  ev 2024-01-01T13:00:00Z b 2
  ev 2024-01-02T09:00:00Z a 4
  ev 2024-01-02T11:00:00Z a 8
} >"$TEST_TMP/m1.ndjson"
{
  ev 2024-01-02T15:00:00Z a 16
  ev 2024-01-02T16:00:00Z c 32
} >"$TEST_TMP/m2.ndjson"
"$ZQL" --data "$D" -q import "$TEST_TMP/m1.ndjson" >/dev/null 2>&1 || skip_all "cannot import events"
expect_exit 0 'agg add stores four aggregates' "$ZQL" --data "$D" agg add "$TEST_TMP/modes.zql"
ok 'each is "added"' test "$(grep -c ': added$' "$TEST_TMP/stdout")" -eq 4
expect_exit 0 'the first run (now = 2024-01-02T12:00Z)' \
  "$ZQL" --data "$D" agg run --all --now 2024-01-02T12:00:00Z
stdout_matches 'a reduce run is incremental' '^recent_reduce: run 1 incremental \(0, 4\]: '
stdout_matches 'a replace run is full' '^recent_replace: run 1 full \(0, 4\]: '
first='{"project":"a","n":2,"v":12}
{"project":"b","n":1,"v":2}'
for m in reduce merge upsert replace; do
  expect_output "$first" "$m: the first run counts the day before now()" \
    "$ZQL" --data "$D" -c "from agg recent_$m" --format ndjson
done
"$ZQL" --data "$D" -q import "$TEST_TMP/m2.ndjson" >/dev/null 2>&1
expect_exit 0 'the second run (now = 2024-01-03T10:00Z)' \
  "$ZQL" --data "$D" agg run --all --now 2024-01-03T10:00:00Z
stdout_matches 'reduce: 2 new events, a updated and c inserted' \
  '^recent_reduce: run 2 incremental \(4, 6\]: 2 events, 1 inserted, 1 updated'
stdout_matches 'upsert: an incremental run over the new events' \
  '^recent_upsert: run 2 incremental \(4, 6\]: 2 events, 1 inserted, 1 updated'
stdout_matches 'replace: a full run over every event' '^recent_replace: run 2 full \(0, 6\]: '
expect_output '{"project":"a","n":3,"v":28}
{"project":"b","n":1,"v":2}
{"project":"c","n":1,"v":32}' 'reduce merges the new counts into the stored ones' \
  "$ZQL" --data "$D" -c "from agg recent_reduce" --format ndjson
expect_output '{"project":"a","n":1,"v":16}
{"project":"b","n":1,"v":2}
{"project":"c","n":1,"v":32}' 'merge overwrites a touched document with the new events only' \
  "$ZQL" --data "$D" -c "from agg recent_merge" --format ndjson
expect_output '{"project":"a","n":2,"v":24}
{"project":"b","n":1,"v":2}
{"project":"c","n":1,"v":32}' 'upsert recomputes the touched documents and keeps the others' \
  "$ZQL" --data "$D" -c "from agg recent_upsert" --format ndjson
expect_output '{"project":"a","n":2,"v":24}
{"project":"c","n":1,"v":32}' 'replace recomputes everything (b left the window)' \
  "$ZQL" --data "$D" -c "from agg recent_replace" --format ndjson
ok 'upsert rewrote a (rev 2) and left b alone (rev 1)' \
  test "$(meta "$D" recent_upsert a)/$(meta "$D" recent_upsert b)" = "rev=2 late=0/rev=1 late=0"

# ==== replaying: a run with nothing new changes nothing ====
for m in reduce merge upsert replace; do
  "$ZQL" --data "$D" agg dump "recent_$m" --raw >"$TEST_TMP/before.$m" 2>/dev/null
done
expect_output 'recent_merge: up to date
recent_reduce: up to date
recent_replace: up to date
recent_upsert: up to date' 'a run with no new events: every aggregate is up to date' \
  "$ZQL" --data "$D" agg run --all --now 2024-01-03T10:00:00Z
expect_output 'recent_reduce: up to date' 'so is a run of one name' \
  "$ZQL" --data "$D" agg run recent_reduce
for m in reduce merge upsert replace; do
  "$ZQL" --data "$D" agg dump "recent_$m" --raw >"$TEST_TMP/after.$m" 2>/dev/null
  ok "$m: the documents are unchanged, bookkeeping included" \
    cmp -s "$TEST_TMP/before.$m" "$TEST_TMP/after.$m"
done
run "$ZQL" --data "$D" agg runs recent_reduce
ok 'and no run was recorded' test "$(wc -l <"$TEST_TMP/stdout")" -eq 2
expect_exit 0 'agg list' "$ZQL" --data "$D" agg list
stdout_matches 'lists mode, last _seq, runs and documents' \
  '^recent_upsert +upsert +1 +6 +2 +3 +zagg\.recent_upsert$'
# the name column is as wide as the longest name
cat >"$TEST_TMP/names.zql" <<'EOF'
aggregate a_name_longer_than_twenty_four_characters from event compute n = count();
aggregate short from event compute n = count() mode merge;
EOF
expect_exit 0 'agg add: a 41-character name' "$ZQL" --data "$TEST_TMP/names" agg add "$TEST_TMP/names.zql"
run "$ZQL" --data "$TEST_TMP/names" agg list
ok "agg list: every row's mode is in the header's mode column" awk '
  NR == 1 { c = index($0, " mode ") + 1; next }
  substr($0, c, length($2) + 1) != $2 " " { bad = 1 }
  END { exit bad || NR != 3 }' "$TEST_TMP/stdout"

# ==== late events under each policy (R13) ====
# lateness 1h: a day bucket is closed once an earlier run saw an event 1h past its end
D=$TEST_TMP/late
for p in merge drop sidecar; do
  side=
  [ $p = sidecar ] && side=' "zagg.late_side"'
  cat <<EOF
aggregate late_$p
  from event
  group by context.project as project, bucket(timestamp, day) as day
  compute n = count(), v = sum(extra.v)
  key "{project}/{day:%m-%d}"
  lateness 1h late $p$side;
EOF
done >"$TEST_TMP/late.zql"
# side_view is never run: it only makes the sidecar collection readable with agg dump
cat >>"$TEST_TMP/late.zql" <<'EOF'
aggregate side_view
  from event
  where type == "never"
  group by type
  compute n = count()
  into "zagg.late_side";
EOF
{
  ev 2024-01-01T10:00:00Z a 1
  ev 2024-01-02T01:00:00Z a 2  # W = 2024-01-02T00:00Z: the bucket of 01-01 is closed
} >"$TEST_TMP/l1.ndjson"
{
  ev 2024-01-01T20:00:00Z a 4  # late
  ev 2024-01-01T21:00:00Z a 8  # late
  ev 2024-01-02T05:00:00Z a 16 # on time
  ev 2024-01-03T00:30:00Z a 32 # W = 2024-01-02T23:30Z
} >"$TEST_TMP/l2.ndjson"
{
  ev 2024-01-02T23:00:00Z a 64  # on time: the bucket of 01-02 ends after W
  ev 2024-01-01T23:59:00Z a 128 # late
} >"$TEST_TMP/l3.ndjson"
LATE="late_merge late_drop late_sidecar"
"$ZQL" --data "$D" -q import "$TEST_TMP/l1.ndjson" >/dev/null 2>&1
expect_exit 0 'late: agg add' "$ZQL" --data "$D" agg add "$TEST_TMP/late.zql"
# shellcheck disable=SC2086
expect_exit 0 'late: the first run' "$ZQL" --data "$D" agg run $LATE
"$ZQL" --data "$D" -q import "$TEST_TMP/l2.ndjson" >/dev/null 2>&1
# shellcheck disable=SC2086
expect_exit 0 'late: the second run' "$ZQL" --data "$D" agg run $LATE
stdout_matches 'late merge: 2 late events merged' \
  '^late_merge: run 2 incremental \(2, 6\]: 4 events, 1 inserted, 2 updated, 2 late merged( \(|, 0 late dropped)'
stdout_matches 'late drop: 2 late events dropped' \
  '^late_drop: run 2 incremental \(2, 6\]: 4 events, 1 inserted, 1 updated, (0 late merged, )?2 late dropped'
stdout_matches 'late sidecar: 2 late events dropped' \
  '^late_sidecar: run 2 incremental \(2, 6\]: 4 events, 1 inserted, 1 updated, (0 late merged, )?2 late dropped'
"$ZQL" --data "$D" -q import "$TEST_TMP/l3.ndjson" >/dev/null 2>&1
# shellcheck disable=SC2086
expect_exit 0 'late: the third run' "$ZQL" --data "$D" agg run $LATE
stdout_matches 'the watermark moved: one more late event' \
  '^late_drop: run 3 incremental \(6, 8\]: 2 events, 0 inserted, 1 updated, (0 late merged, )?1 late dropped'
expect_output '{"project":"a","day":"2024-01-01T00:00:00.000Z","n":4,"v":141}
{"project":"a","day":"2024-01-02T00:00:00.000Z","n":3,"v":82}
{"project":"a","day":"2024-01-03T00:00:00.000Z","n":1,"v":32}' 'late merge folds late events in' \
  "$ZQL" --data "$D" -c "from agg late_merge" --format ndjson
dropped='{"project":"a","day":"2024-01-01T00:00:00.000Z","n":1,"v":1}
{"project":"a","day":"2024-01-02T00:00:00.000Z","n":3,"v":82}
{"project":"a","day":"2024-01-03T00:00:00.000Z","n":1,"v":32}'
expect_output "$dropped" 'late drop leaves them out' \
  "$ZQL" --data "$D" -c "from agg late_drop" --format ndjson
expect_output "$dropped" 'so does late sidecar' \
  "$ZQL" --data "$D" -c "from agg late_sidecar" --format ndjson
ok 'late merge: _late 3 and _rev 3 on the reopened bucket' \
  test "$(meta "$D" late_merge a/01-01)" = "rev=3 late=3"
ok 'late drop: _late 3 counted on the closed bucket' \
  test "$(meta "$D" late_drop a/01-01 | sed 's/.* //')" = "late=3"
ok 'late sidecar: _late 3 too' test "$(meta "$D" late_sidecar a/01-01 | sed 's/.* //')" = "late=3"
for p in merge drop sidecar; do
  ok "late $p: no late event in an open bucket" \
    test "$(meta "$D" "late_$p" a/01-02 | sed 's/.* //')" = "late=0"
done
run "$ZQL" --data "$D" agg dump side_view
ok 'the sidecar holds one document per run with late events' test "$(wc -l <"$TEST_TMP/stdout")" -eq 2
ok 'recording the aggregate and the late counts 2 and 1' \
  test "$(grep -c '"agg" : "late_sidecar"' "$TEST_TMP/stdout")" -eq 2 -a \
  "$(grep -c '"n" : { "$numberLong" : "2" }, "doc"' "$TEST_TMP/stdout")" -eq 1 -a \
  "$(grep -c '"n" : { "$numberLong" : "1" }, "doc"' "$TEST_TMP/stdout")" -eq 1

# ==== backfill (R15) ====
expect_exit 0 'backfill brings the dropped events in' \
  "$ZQL" --data "$D" agg backfill late_drop --from 2024-01-01 --to 2024-01-02
stdout_matches 'as a backfill run up to the watermark' '^late_drop: run 4 backfill \(0, 8\]: '
expect_output '{"project":"a","day":"2024-01-01T00:00:00.000Z","n":4,"v":141}
{"project":"a","day":"2024-01-02T00:00:00.000Z","n":3,"v":82}
{"project":"a","day":"2024-01-03T00:00:00.000Z","n":1,"v":32}' 'the closed bucket now has every event' \
  "$ZQL" --data "$D" -c "from agg late_drop" --format ndjson
same_as_scratch 'late drop + backfill equals a from-scratch store' "$D" "$TEST_TMP/late.zql" late_drop
run "$ZQL" --data "$D" agg runs late_drop
ok 'the backfill run is committed' test "$(tail -n 1 "$TEST_TMP/stdout" | awk '{ print $2, $3 }')" = "backfill committed"
expect_exit 0 'backfill of the sidecar aggregate' \
  "$ZQL" --data "$D" agg backfill late_sidecar --from 2024-01-01T00:00:00Z --to 2024-01-03T00:00:00Z
expect_output '' 'clears the sidecar documents of the range' "$ZQL" --data "$D" agg dump side_view
same_as_scratch 'late sidecar + backfill equals a from-scratch store' "$D" "$TEST_TMP/late.zql" late_sidecar
expect_exit 0 'a backfill of a range without events' \
  "$ZQL" --data "$D" agg backfill late_merge --from 2023-06-01 --to 2023-06-03
same_as_scratch 'changes nothing' "$D" "$TEST_TMP/late.zql" late_merge
cat >"$TEST_TMP/nobucket.zql" <<'EOF'
aggregate per_project from event group by context.project as project compute n = count();
EOF
"$ZQL" --data "$D" -q agg add "$TEST_TMP/nobucket.zql" >/dev/null 2>&1
expect_exit 1 'a backfill needs a bucket() key' \
  "$ZQL" --data "$D" agg backfill per_project --from 2024-01-01 --to 2024-01-02
stderr_matches 'and says so' 'no time bucket key'

# E0015: a backfill older than the raw events the log kept. Retention drops whole sealed
# segments (64 MiB), so this needs a log of more than one segment.
D=$TEST_TMP/retained
cat >"$TEST_TMP/hourly.zql" <<'EOF'
aggregate hourly from event group by bucket(timestamp, hour) as hour compute n = count();
EOF
if "$ZQL" --data "$D" -q gen --events 250000 --seed 7 --start 2024-01-01 --days 30 >/dev/null 2>&1 &&
  "$ZQL" --data "$D" -q agg add "$TEST_TMP/hourly.zql" >/dev/null 2>&1 &&
  "$ZQL" --data "$D" -q agg run hourly >/dev/null 2>&1 &&
  "$ZQL" --data "$D" log retain 30d 2>/dev/null | grep -q '^dropped [1-9]'; then
  expect_exit 1 'a backfill of a range the log no longer has is refused' \
    "$ZQL" --data "$D" agg backfill hourly --from 2024-01-02 --to 2024-01-03
  stderr_matches 'with E0015' '\[E0015\]'
  expect_exit 0 'a range after the oldest kept event is fine' \
    "$ZQL" --data "$D" agg backfill hourly --from 2024-01-30T12:00:00Z --to 2024-01-30T14:00:00Z
  stdout_matches 'and recomputes its two buckets' '^hourly: run 2 backfill .* 0 inserted, 2 updated'
else
  skip 'a backfill of a range the log no longer has is refused' 'cannot build a retained log'
fi
rm -rf "$D"

# ==== a rebuild while events are imported ====
D=$TEST_TMP/ingest
F=$ZQL_SRCDIR/tests/cli/incr/crash.zql
AGGS="by_type_hour country_up sk_daily top_daily traffic types_all"
"$ZQL" --data "$D" -q gen --events 5000 --seed 11 --days 4 >/dev/null 2>&1
"$ZQL" --data "$D" -q agg add "$F" >/dev/null 2>&1
expect_exit 0 'rebuild while ingesting: a first run' "$ZQL" --data "$D" agg run --all
i=0
while [ $i -lt 8 ]; do
  i=$((i + 1))
  "$ZQL" -q gen --events 400 --seed $((20 + i)) --start "2024-01-0$i" --days 2 \
    -o "$TEST_TMP/imp$i.ndjson" >/dev/null 2>&1
done
(
  i=0
  while [ $i -lt 8 ]; do
    i=$((i + 1))
    "$ZQL" --data "$D" -q import "$TEST_TMP/imp$i.ndjson" >/dev/null 2>&1 || echo "import $i failed"
    sleep 0.05
  done
) >"$TEST_TMP/importer.out" &
ipid=$!
rebuilds=0
failed=
while kill -0 "$ipid" 2>/dev/null; do
  for a in sk_daily traffic country_up; do
    "$ZQL" --data "$D" agg rebuild "$a" >>"$TEST_TMP/rebuilds" 2>/dev/null || failed="$failed $a"
    rebuilds=$((rebuilds + 1))
  done
done
wait "$ipid"
ok 'the imports succeeded' test ! -s "$TEST_TMP/importer.out"
ok "the $rebuilds rebuilds succeeded" test -z "$failed"
# a rebuild covers (0, hi] with hi the log's end when it started: some must have started
# between two imports
mid=$(awk '/ rebuild \(0, [0-9]+\]/ { sub(/.*\(0, /, ""); sub(/\].*/, ""); if ($0 > 5000 && $0 < 8200) n++ }
  END { print n + 0 }' "$TEST_TMP/rebuilds")
ok "some of the $rebuilds rebuilds ran while events came in" test "$mid" -gt 0
expect_exit 0 'a run after the rebuilds' "$ZQL" --data "$D" agg run --all
# shellcheck disable=SC2086
same_as_scratch 'no event was missed or counted twice' "$D" "$F" $AGGS
total=$("$ZQL" --data "$D" -c 'from event compute n = count()' --format csv 2>/dev/null | tail -n 1)
sum=$("$ZQL" --data "$D" -c 'from agg sk_daily compute n = sum(n)' --format csv 2>/dev/null | tail -n 1)
ok "sk_daily counts the $total events" test "$sum" = "$total" -a "$total" = 8200

# ==== definition changes ====
D=$TEST_TMP/defs
cat >"$TEST_TMP/def.zql" <<'EOF'
aggregate daily
  from event
  group by context.project as project, bucket(timestamp, day) as day
  compute n = count()
  schedule every 1m;
EOF
"$ZQL" --data "$D" -q import "$TEST_TMP/m1.ndjson" >/dev/null 2>&1
expect_output 'daily: added' 'agg add: added' "$ZQL" --data "$D" agg add "$TEST_TMP/def.zql"
expect_output 'daily: unchanged' 'the same file again: unchanged' "$ZQL" --data "$D" agg add "$TEST_TMP/def.zql"
"$ZQL" --data "$D" -q agg run daily >/dev/null 2>&1
change() { # change NAME SED: a copy of def.zql edited by SED
  sed "$2" "$TEST_TMP/def.zql" >"$TEST_TMP/$1.zql"
}
change sched 's/every 1m/every 5m/'
change opts 's/schedule every 1m/lateness 2h late drop settle 1s retain 30d/'
change bucket 's/bucket(timestamp, day)/bucket(timestamp, hour)/'
change tz 's/bucket(timestamp, day)/bucket(timestamp, day tz "Europe\/Paris")/'
change mode 's/schedule every 1m/mode merge/'
change key 's/schedule every 1m/key "{day:%Y%m%d}-{project}"/'
change computed 's/n = count()/n = count(), v = sum(extra.v)/'
expect_output 'daily: updated' 'a schedule change: updated' "$ZQL" --data "$D" agg add "$TEST_TMP/sched.zql"
expect_output 'daily: updated' 'lateness, settle and retention changes: updated' \
  "$ZQL" --data "$D" agg add "$TEST_TMP/opts.zql"
for c in bucket tz mode key computed; do
  expect_exit 1 "a $c change is refused" "$ZQL" --data "$D" agg add "$TEST_TMP/$c.zql"
  stderr_matches "$c: E0013 and the way out" "--rebuild .*\\[E0013\\]"
done
run "$ZQL" --data "$D" agg show daily
stdout_matches 'the stored definition is the last accepted one' '^  file +.*/opts\.zql$'
expect_exit 0 'with --rebuild the change is accepted' \
  "$ZQL" --data "$D" agg add --rebuild "$TEST_TMP/computed.zql"
stdout_matches 'and said so' '^daily: changed: rebuilding$'
stdout_matches 'and the outputs are rebuilt at once' '^daily: run 2 rebuild \(0, 4\]: 4 events'
expect_output '{"project":"a","day":"2024-01-01T00:00:00.000Z","n":1,"v":1}
{"project":"a","day":"2024-01-02T00:00:00.000Z","n":2,"v":12}
{"project":"b","day":"2024-01-01T00:00:00.000Z","n":1,"v":2}' 'by the new definition' \
  "$ZQL" --data "$D" -c "from agg daily" --format ndjson
expect_exit 0 'an identity change with --rebuild' "$ZQL" --data "$D" agg add --rebuild "$TEST_TMP/bucket.zql"
expect_output '{"project":"a","day":"2024-01-01T10:00:00.000Z","n":1}
{"project":"a","day":"2024-01-02T09:00:00.000Z","n":1}
{"project":"a","day":"2024-01-02T11:00:00.000Z","n":1}
{"project":"b","day":"2024-01-01T13:00:00.000Z","n":1}' 'replaces every document (hour buckets now)' \
  "$ZQL" --data "$D" -c "from agg daily" --format ndjson
run "$ZQL" --data "$TEST_TMP/defs2" agg add "$TEST_TMP/def.zql"
expect_exit 0 '--rebuild before any event only marks the rebuild' \
  "$ZQL" --data "$TEST_TMP/defs2" agg add --rebuild "$TEST_TMP/computed.zql"
"$ZQL" --data "$TEST_TMP/defs2" -q import "$TEST_TMP/m1.ndjson" >/dev/null 2>&1
expect_exit 0 'which the next run does' "$ZQL" --data "$TEST_TMP/defs2" agg run daily
stdout_matches 'as a rebuild' '^daily: run 1 rebuild \(0, 4\]: 4 events'

# ==== drop ====
cat >"$TEST_TMP/roll.zql" <<'EOF'
aggregate roll
  from agg recent_reduce
  group by project
  compute n = sum(n);
EOF
D=$TEST_TMP/modes
expect_exit 0 'a rollup of a stored aggregate can be added on its own' \
  "$ZQL" --data "$D" agg add "$TEST_TMP/roll.zql"
# (the same with its source's file, so that what follows runs either way)
"$ZQL" --data "$D" -q agg add "$TEST_TMP/modes.zql" "$TEST_TMP/roll.zql" >/dev/null 2>&1
expect_exit 0 'and run' "$ZQL" --data "$D" agg run roll
expect_output '{"project":"a","n":3}
{"project":"b","n":1}
{"project":"c","n":1}' 'it reads the stored documents of its source' \
  "$ZQL" --data "$D" -c "from agg roll" --format ndjson
expect_exit 1 'agg drop refuses an aggregate another one reads' "$ZQL" --data "$D" agg drop recent_reduce
stderr_matches 'naming the reader' 'is read by roll'
expect_output 'roll: dropped' 'agg drop' "$ZQL" --data "$D" agg drop roll
expect_output 'recent_merge: dropped' 'agg drop of a source that is no longer read' \
  "$ZQL" --data "$D" agg drop recent_merge
run "$ZQL" --data "$D" agg list
ok 'agg list no longer has them' test "$(grep -c '^recent_merge \|^roll ' "$TEST_TMP/stdout")" -eq 0
ok 'and still has the others' test "$(grep -c '^recent_' "$TEST_TMP/stdout")" -eq 3
expect_exit 1 'a dropped aggregate cannot be dumped' "$ZQL" --data "$D" agg dump recent_merge
stderr_matches 'E0014' '\[E0014\]'
expect_exit 1 'nor read' "$ZQL" --data "$D" -c 'from agg recent_merge'
expect_exit 0 'adding it again' "$ZQL" --data "$D" agg add "$TEST_TMP/modes.zql"
stdout_matches 'adds it' '^recent_merge: added$'
expect_exit 0 'starts from the first event' "$ZQL" --data "$D" agg run recent_merge --now 2024-01-03T10:00:00Z
stdout_matches 'with run 1' '^recent_merge: run 1 incremental \(0, 6\]: '

# ==== errors ====
for c in run rebuild show dump runs drop; do
  expect_exit 1 "agg $c of an unknown name fails" "$ZQL" --data "$D" agg $c nope
  stderr_matches "with E0014" "'nope'.*\\[E0014\\]"
done
expect_exit 1 'agg backfill of an unknown name fails' \
  "$ZQL" --data "$D" agg backfill nope --from 2024-01-01 --to 2024-01-02
stderr_matches 'with E0014' '\[E0014\]'
expect_exit 1 'agg run of a known and an unknown name fails' \
  "$ZQL" --data "$D" agg run recent_reduce nope
expect_exit 2 'agg without a command is a usage error' "$ZQL" --data "$D" agg
expect_exit 2 'an unknown command' "$ZQL" --data "$D" agg frob
expect_exit 2 'agg run without names or --all' "$ZQL" --data "$D" agg run
expect_exit 2 'agg run with names and --all' "$ZQL" --data "$D" agg run recent_reduce --all
expect_exit 2 'an unknown option' "$ZQL" --data "$D" agg run recent_reduce --bogus
expect_exit 2 'a bad --threads' "$ZQL" --data "$D" agg run recent_reduce --threads 0
expect_exit 2 'a bad --now' "$ZQL" --data "$D" agg run recent_reduce --now yesterday
expect_exit 2 'a bad --upto' "$ZQL" --data "$D" agg run recent_reduce --upto 0
expect_exit 2 'a bad --mem-limit' "$ZQL" --data "$D" agg run recent_reduce --mem-limit lots
expect_exit 2 'an option of another command (run --from)' \
  "$ZQL" --data "$D" agg run recent_reduce --from 2024-01-01
expect_exit 2 'agg backfill without --from/--to' "$ZQL" --data "$D" agg backfill recent_reduce
expect_exit 2 'agg backfill with a bad time' \
  "$ZQL" --data "$D" agg backfill recent_reduce --from noon --to 2024-01-02
expect_exit 2 'agg backfill with --to before --from' \
  "$ZQL" --data "$TEST_TMP/late" agg backfill late_drop --from 2024-01-03 --to 2024-01-02
expect_exit 2 'agg runs --limit 0' "$ZQL" --data "$D" agg runs recent_reduce --limit 0
expect_exit 2 'agg show without a name' "$ZQL" --data "$D" agg show
expect_exit 2 'agg list with a name' "$ZQL" --data "$D" agg list recent_reduce
expect_exit 2 'agg add without a file' "$ZQL" --data "$D" agg add
expect_exit 1 'agg add of a missing file' "$ZQL" --data "$D" agg add "$TEST_TMP/nope.zql"
printf 'aggregate broken from event group by compute;\n' >"$TEST_TMP/broken.zql"
expect_exit 1 'agg add of an invalid file' "$ZQL" --data "$D" agg add "$TEST_TMP/broken.zql"
printf 'from event compute n = count();\n' >"$TEST_TMP/query.zql"
expect_exit 1 'agg add of a file without aggregates' "$ZQL" --data "$D" agg add "$TEST_TMP/query.zql"

# ==== on_error fail (R5) ====
D=$TEST_TMP/strict
cat >"$TEST_TMP/strict.zql" <<'EOF'
aggregate strict
  from event
  where timestamp >= now() - 1d
  let x = num(extra.s)
  group by context.project as project
  compute n = count(), s = sum(x)
  on_error fail;
EOF
ev 2024-01-01T10:00:00Z a 1 1 >"$TEST_TMP/s1.ndjson"
{
  ev 2024-01-01T11:00:00Z a 1 abc # ERROR while it is in the window
  ev 2024-01-02T10:00:00Z a 1 2
} >"$TEST_TMP/s2.ndjson"
"$ZQL" --data "$D" -q import "$TEST_TMP/s1.ndjson" >/dev/null 2>&1
"$ZQL" --data "$D" -q agg add "$TEST_TMP/strict.zql" >/dev/null 2>&1
expect_exit 0 'on_error fail: a clean run' "$ZQL" --data "$D" agg run strict --now 2024-01-01T12:00:00Z
"$ZQL" --data "$D" -q import "$TEST_TMP/s2.ndjson" >/dev/null 2>&1
expect_exit 1 'a run with an ERROR row fails' "$ZQL" --data "$D" agg run strict --now 2024-01-02T11:00:00Z
stderr_matches 'with E0012 and the error' 'on_error fail: num: .*\[E0012\]'
run "$ZQL" --data "$D" agg runs strict
stdout_matches 'agg runs shows the run failed' '^ +2 +incremental +failed +\(1, 3\] .* error: '
run "$ZQL" --data "$D" agg list
stdout_matches 'the watermark did not move' '^strict +reduce +1 +1 +2 +1 '
expect_output '{"project":"a","n":1,"s":1}' 'nothing was committed' \
  "$ZQL" --data "$D" -c "from agg strict" --format ndjson
expect_exit 1 'the next run retries the same events (and fails again)' \
  "$ZQL" --data "$D" agg run strict --now 2024-01-02T11:00:00Z
run "$ZQL" --data "$D" agg runs strict
stdout_matches 'run 3 covers the same range' '^ +3 +incremental +failed +\(1, 3\] '
expect_exit 0 'once the bad event left the window the retry commits' \
  "$ZQL" --data "$D" agg run strict --now 2024-01-02T12:00:00Z
stdout_matches 'the same range again' '^strict: run 4 incremental \(1, 3\]: '
expect_output '{"project":"a","n":2,"s":3}' 'with the good events' \
  "$ZQL" --data "$D" -c "from agg strict" --format ndjson

# ==== retention (R19) ====
D=$TEST_TMP/retain
cat >"$TEST_TMP/retain.zql" <<'EOF'
aggregate kept
  from event
  group by bucket(timestamp, day) as day
  compute n = count()
  retain 2d;
EOF
for d in 01 02 03 04 05; do ev "2024-01-${d}T10:00:00Z" a; done >"$TEST_TMP/r1.ndjson"
"$ZQL" --data "$D" -q import "$TEST_TMP/r1.ndjson" >/dev/null 2>&1
"$ZQL" --data "$D" -q agg add "$TEST_TMP/retain.zql" >/dev/null 2>&1
expect_exit 0 'retain 2d: a run at 2024-01-05T12:00Z' "$ZQL" --data "$D" agg run kept --now 2024-01-05T12:00:00Z
stdout_matches 'deletes the buckets that start before now - 2d' \
  '^kept: run 1 incremental \(0, 5\]: 5 events, 2 inserted, 0 updated, 3 deleted'
expect_output '{"day":"2024-01-04T00:00:00.000Z","n":1}
{"day":"2024-01-05T00:00:00.000Z","n":1}' 'two days are left' \
  "$ZQL" --data "$D" -c "from agg kept" --format ndjson
ev 2024-01-06T10:00:00Z a >"$TEST_TMP/r2.ndjson"
"$ZQL" --data "$D" -q import "$TEST_TMP/r2.ndjson" >/dev/null 2>&1
expect_exit 0 'a run a day later' "$ZQL" --data "$D" agg run kept --now 2024-01-06T12:00:00Z
expect_output '{"day":"2024-01-05T00:00:00.000Z","n":1}
{"day":"2024-01-06T00:00:00.000Z","n":1}' 'deletes the next day' \
  "$ZQL" --data "$D" -c "from agg kept" --format ndjson
expect_exit 0 'a run with no new events two days later' "$ZQL" --data "$D" agg run kept --now 2024-01-08T12:00:00Z
expect_output '' 'deletes what has aged out as well' \
  "$ZQL" --data "$D" -c "from agg kept" --format ndjson
ev 2024-01-01T11:00:00Z a >"$TEST_TMP/r3.ndjson"
"$ZQL" --data "$D" -q import "$TEST_TMP/r3.ndjson" >/dev/null 2>&1
expect_exit 0 'a late event for a bucket older than the retention' \
  "$ZQL" --data "$D" agg run kept --now 2024-01-08T13:00:00Z
expect_output '' 'does not bring it back' "$ZQL" --data "$D" -c "from agg kept" --format ndjson

done_testing
