#!/bin/sh
# t0031-run.sh -- the engine's command-line contract: ad-hoc `zql -c`, `zql run` (dry run,
# --from/--to, --only, -o FILE.bson), `zql compile` and running the .zqlc file,
# `zql explain` (--analyze, --dump=plan), output formats, and the guarantees a user relies
# on: the same bytes for every thread count and with every group spilled to disk, ERROR
# cells as warnings or (--strict) failures, clear errors for bad input.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

D=$TEST_TMP/data
"$ZQL" --data "$D" -q gen --events 3000 --seed 5 >/dev/null 2>&1 ||
  skip_all "cannot generate events"

# ---- ad-hoc queries ----
expect_exit 0 'zql -c runs a grouped query' \
  "$ZQL" --data "$D" -c 'from event group by type compute n = count()' --format csv
stdout_matches 'csv has a header line' '^type,n$'
stdout_matches 'and a pageview row' '^pageview,[0-9]+$'
total=$(awk -F, 'NR > 1 { s += $2 } END { print s }' "$TEST_TMP/stdout")
ok 'the counts add up to the 3000 events' test "$total" = 3000

expect_exit 0 'the final semicolon is optional and options may come first' \
  "$ZQL" --format ndjson --data "$D" -c 'from event compute n = count();'
expect_output '{"n":3000}' 'a whole-input query gives one ndjson row' \
  "$ZQL" --data "$D" -c 'from event compute n = count()' --format ndjson
expect_output '{"n":0,"s":0,"a":null}' 'on empty input: count 0, sum 0, avg null' \
  "$ZQL" --data "$D" -c 'from event where type == "nope" compute n = count(), s = sum(extra.bytes), a = avg(extra.bytes)' --format ndjson
expect_exit 0 'json output' "$ZQL" --data "$D" -c 'from event group by type compute n = count() order by n desc limit 2' --format json
stdout_matches 'json is an array of objects' '^\[$'
expect_exit 0 'table output' "$ZQL" --data "$D" -c 'from event group by type compute n = count() limit 3'
stdout_matches 'the table ends with a row count' '^\(3 rows\)$'
expect_exit 0 'a row query returns events' \
  "$ZQL" --data "$D" -c 'from event where type == "download" order by _seq desc limit 2' --format ndjson
stdout_matches 'with their fields' '"type":"download"'

expect_exit 1 'a syntax error exits 1' "$ZQL" --data "$D" -c 'from event group by'
stderr_matches 'with a location and a code' '^<command line>:1:[0-9]+: error: .*\[E2001\]'
expect_exit 1 'an unknown field name in order by is an error' \
  "$ZQL" --data "$D" -c 'from event group by type compute n = count() order by m'
expect_exit 2 'an unknown format is a usage error' \
  "$ZQL" --data "$D" -c 'from event compute n = count()' --format xml
expect_exit 2 'so is a bad --threads' "$ZQL" --data "$D" -c 'from event compute n = count()' --threads 0
expect_exit 1 'a data directory without a log is an error' \
  "$ZQL" --data "$TEST_TMP/empty" -c 'from event compute n = count()'
stderr_matches 'which says how to add events' 'no event log in .*import'

# ---- determinism: threads and spilling (resolved point 14) ----
Q='from event group by context.user as u, type compute n = count(), b = sum(extra.bytes), p = quantile(extra.ms, 0.9), d = distinct_count(context.project), f = first(extra.file), s = sample(_seq, 3)'
"$ZQL" --data "$D" -c "$Q" --format ndjson --threads 1 >"$TEST_TMP/t1" 2>/dev/null
for v in "--threads 2" "--threads 8" "--threads 3 --mem-limit 4K"; do
  # shellcheck disable=SC2086
  "$ZQL" --data "$D" -c "$Q" --format ndjson $v >"$TEST_TMP/tv" 2>/dev/null
  ok "byte-identical output with $v" cmp -s "$TEST_TMP/t1" "$TEST_TMP/tv"
done
ok 'the determinism query returned rows' test -s "$TEST_TMP/t1"

# ---- zql run ----
cat >"$TEST_TMP/daily.zql" <<'ZQL'
aggregate daily from event group by type, bucket(timestamp, day) as day
  compute n = count(), users = hll(context.user);
aggregate weekly from agg daily group by type
  compute n = sum(n), users = merge(users);
ZQL
expect_exit 0 'zql run prints every aggregate' "$ZQL" --data "$D" run "$TEST_TMP/daily.zql" --format csv
stdout_matches 'with a header per aggregate' '^-- aggregate daily into "zagg.daily"$'
stdout_matches 'the from-agg rollup runs after its source' '^-- aggregate weekly into "zagg.weekly"$'
weekly=$(awk -F, '/^-- aggregate weekly/ { on = 1; next } on && NR > 1 && $2 ~ /^[0-9]+$/ { s += $2 } END { print s }' "$TEST_TMP/stdout")
ok 'the rollup sums to the 3000 events' test "$weekly" = 3000
expect_exit 0 '--dry-run --limit' "$ZQL" --data "$D" run "$TEST_TMP/daily.zql" --dry-run --limit 2 --only daily --format ndjson
n=$(wc -l <"$TEST_TMP/stdout")
ok '--limit 2 shows two rows' test "$n" -eq 2
stderr_matches 'and says how many there were' 'daily: 2 of [0-9]+ rows shown'
expect_exit 0 '--from/--to select events by time' "$ZQL" --data "$D" -c 'from event compute n = count()' --format ndjson
all=$(cat "$TEST_TMP/stdout")
run "$ZQL" --data "$D" run "$TEST_TMP/daily.zql" --only daily --from 2024-01-02 --to 2024-01-03 --format csv
ok 'a one-day window gives one day' test "$(grep -c '2024-01-0[13]' "$TEST_TMP/stdout")" -eq 0
expect_exit 2 '--from after --to is a usage error' "$ZQL" --data "$D" run "$TEST_TMP/daily.zql" --from 2024-01-03 --to 2024-01-02
expect_exit 1 '--only with an unknown name fails' "$ZQL" --data "$D" run "$TEST_TMP/daily.zql" --only nope
expect_exit 0 'run -o writes output documents' "$ZQL" --data "$D" run "$TEST_TMP/daily.zql" --only daily -o "$TEST_TMP/out.bson"
ok 'the .bson file is not empty' test -s "$TEST_TMP/out.bson"
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import bson' 2>/dev/null; then
  run /usr/bin/python3 -c 'import bson,sys; d=bson.decode_all(open(sys.argv[1],"rb").read()); print(len(d), sorted(d[0]))' "$TEST_TMP/out.bson"
  stdout_matches 'documents have _id, value and k' "'_id'.*'k'.*'value'"
else
  skip 'python3-bson is not installed'
fi

cat >"$TEST_TMP/keyed.zql" <<'ZQL'
aggregate keyed from event group by type, bucket(timestamp, day) as day
  compute n = count() key "{type}/{day:%Y-%m-%d}";
ZQL
expect_exit 0 'run -o renders the key template as _id' \
  "$ZQL" --data "$D" run "$TEST_TMP/keyed.zql" -o "$TEST_TMP/keyed.bson"
"$ZQL" --data "$TEST_TMP/kd" -q import "$TEST_TMP/keyed.bson" >/dev/null 2>&1
run "$ZQL" --data "$TEST_TMP/kd" export
stdout_matches 'the _id is "TYPE/YYYY-MM-DD"' '"_id" : "pageview/2024-01-0[1-7]"'
stdout_matches 'the keys are kept under k' '"k" : \{ "type" : "pageview", "day" : \{ "\$date"'

# ---- compile and run the plan file ----
expect_exit 0 'zql compile writes a .zqlc' "$ZQL" compile "$TEST_TMP/daily.zql"
ok 'next to the source' test -s "$TEST_TMP/daily.zqlc"
"$ZQL" --data "$D" run "$TEST_TMP/daily.zql" --format ndjson >"$TEST_TMP/a" 2>/dev/null
"$ZQL" --data "$D" run "$TEST_TMP/daily.zqlc" --format ndjson >"$TEST_TMP/b" 2>/dev/null
ok 'the compiled plan gives the same rows as the source' cmp -s "$TEST_TMP/a" "$TEST_TMP/b"
expect_exit 0 'explain reads a .zqlc too' "$ZQL" explain "$TEST_TMP/daily.zqlc"
stdout_matches 'and prints its plan' '^explain aggregate weekly$'
head -c 200 "$TEST_TMP/daily.zqlc" >"$TEST_TMP/cut.zqlc"
expect_exit 1 'a truncated .zqlc is refused' "$ZQL" --data "$D" run "$TEST_TMP/cut.zqlc"
stderr_matches 'with E0010' '\[E0010\]'
printf 'not bson at all' >"$TEST_TMP/junk.zqlc"
expect_exit 1 'so is a file that is not a plan' "$ZQL" --data "$D" run "$TEST_TMP/junk.zqlc"

# ---- explain ----
expect_exit 0 'zql explain prints logical and physical plans' "$ZQL" explain "$TEST_TMP/daily.zql"
stdout_matches 'the logical part' '^logical:$'
stdout_matches 'the scan of the rollup' 'Scan\(agg daily\)'
stdout_matches 'the physical part' '^  REDUCE  merge 2 states per group'
expect_exit 0 'explain --analyze runs the plan' "$ZQL" --data "$D" explain "$TEST_TMP/daily.zql" daily --analyze
stdout_matches 'and reports the map stage' '^  MAP     3000 events, [0-9]+ bytes -> 3000 rows'
expect_exit 0 '--dump=plan shows the bytecode' "$ZQL" --dump=plan "$TEST_TMP/daily.zql"
stdout_matches 'one instruction per line' '^  [0-9]{4} GROUP '

# ---- ERROR cells ----
cat >"$TEST_TMP/err.zql" <<'ZQL'
aggregate capped from event group by type compute users = distinct_count(context.user) limit 3;
ZQL
expect_exit 0 'an aggregate that yields ERROR prints null and warns' "$ZQL" --data "$D" run "$TEST_TMP/err.zql" --format ndjson
stderr_matches 'the warning names the column and the message' 'column users: [0-9]+ cells? yielded ERROR \("distinct_count: '
stdout_matches 'the cell is null' '"users":null'
expect_exit 1 '--strict makes it an error' "$ZQL" --data "$D" run "$TEST_TMP/err.zql" --strict
stderr_matches 'E0012' '\[E0012\]'

done_testing
