#!/bin/sh
# t0041-from-agg-store.sh -- `from agg NAME` reads the results store (issue 5): an
# aggregate added with `zql agg add` and run with `zql agg run` is read back by ad-hoc
# queries and by `zql run` of other files, with the values `zql run` computes from the
# events (resolved point 6), rollups by merge() exact against a direct query (R17), after
# an incremental run too; explain and explain analyze over it; a .zqlc reading it; an
# aggregate of the files run still read within the run; clear errors (E3019 with its
# place and a hint, E0014 at run time) when the store does not have it.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

D=$TEST_TMP/data
"$ZQL" --data "$D" -q gen --events 3000 --seed 7 >/dev/null 2>&1 ||
  skip_all "cannot generate events"

cat >daily.zql <<'ZQL'
aggregate pv_daily from event where type == "pageview"
  group by context.project as project, bucket(timestamp, day) as day
  compute views = count(), users = hll(context.user), ms = avg(extra.ms),
          p90 = quantile(extra.ms, 0.9)
  key "{project}/{day:%Y-%m-%d}";
ZQL
cat >monthly.zql <<'ZQL'
aggregate pv_monthly from agg pv_daily
  group by project, bucket(day, month) as month
  compute views = sum(views), users = merge(users), ms = merge(ms), p90 = merge(p90);
ZQL
DIRECT_MONTHLY='from event where type == "pageview"
  group by context.project as project, bucket(timestamp, month) as month
  compute views = count(), users = hll(context.user), ms = avg(extra.ms),
          p90 = quantile(extra.ms, 0.9)'

# ---- before `zql agg add` ----
expect_exit 1 'from agg of an aggregate nobody added fails' \
  "$ZQL" --data "$D" -c 'from agg pv_daily'
stderr_matches 'with the analyzer error at its place' \
  "^<command line>:1:6: error: unknown aggregate 'pv_daily' \[E3019\]"
stderr_matches 'and a hint that names the data directory' 'results store of the data directory .* has none'
ok 'the query created no results store' test ! -e "$D/results"
expect_exit 1 'zql run of a file reading it fails the same way' "$ZQL" --data "$D" run monthly.zql
stderr_matches 'at the from agg of the file' "^monthly.zql:1:27: error: unknown aggregate 'pv_daily' \[E3019\]"

# ---- stored, then read back ----
expect_exit 0 'zql agg add' "$ZQL" --data "$D" agg add daily.zql
expect_exit 0 'zql agg run' "$ZQL" --data "$D" agg run pv_daily

"$ZQL" --data "$D" run daily.zql --format ndjson 2>/dev/null | sort >run.out
expect_exit 0 'from agg NAME reads the stored documents' \
  "$ZQL" --data "$D" -c 'from agg pv_daily' --format ndjson
sort stdout >agg.out
ok 'there are rows' test "$(wc -l <agg.out)" -gt 100
ok 'one per document, with the values zql run computes' cmp -s run.out agg.out
stdout_matches 'key fields, then final values' \
  '^\{"project":"[^"]*","day":"2024-01-0[1-7]T00:00:00\.000Z","views":[0-9]+,"users":[0-9]+,"ms":[^,]*,"p90":[^,]*\}$'
ok 'and no states' test "$(grep -c state stdout)" -eq 0

expect_exit 0 'where, order by and limit' "$ZQL" --data "$D" -c \
  'from agg pv_daily where views >= 2 order by views desc, project limit 3' --format csv
stdout_matches 'csv with the columns of the aggregate' '^project,day,views,users,ms,p90$'
ok 'three rows' test "$(wc -l <stdout)" -eq 4
top=$(sed -n 2p stdout | cut -d, -f3)
ok 'the first has the most views' \
  test "$top" = "$(sed 's/.*"views":\([0-9]*\).*/\1/' run.out | sort -n | tail -1)"

"$ZQL" --data "$D" -c 'from event where type == "pageview" group by context.project as project
  compute n = count(), u = hll(context.user)' --format ndjson >direct.out 2>/dev/null
expect_exit 0 'a grouped query over the stored aggregate' "$ZQL" --data "$D" -c \
  'from agg pv_daily group by project compute n = sum(views), u = merge(users)' --format ndjson
ok 'gives the direct query over the events' cmp -s stdout direct.out

# ---- a rollup in a file (R17) ----
"$ZQL" --data "$D" -c "$DIRECT_MONTHLY" --format ndjson >direct.out 2>/dev/null
expect_exit 0 'zql run of a file whose aggregate reads the stored one' \
  "$ZQL" --data "$D" run monthly.zql --format ndjson
ok 'merges the stored states exactly: the direct monthly query' cmp -s stdout direct.out
ok 'which is not empty' test -s direct.out

# ---- after more events and an incremental run ----
"$ZQL" --data "$D" -q gen --events 1500 --seed 8 --start 2024-01-05 --days 4 >/dev/null 2>&1
expect_exit 0 'an incremental run' "$ZQL" --data "$D" agg run pv_daily
stdout_matches 'merges into stored documents' 'run 2 incremental .* [1-9][0-9]* updated'
"$ZQL" --data "$D" run daily.zql --format ndjson 2>/dev/null | sort >run.out
"$ZQL" --data "$D" -c 'from agg pv_daily' --format ndjson 2>/dev/null | sort >agg.out
ok 'from agg shows the merged values' cmp -s run.out agg.out
"$ZQL" --data "$D" -c "$DIRECT_MONTHLY" --format ndjson >direct.out 2>/dev/null
"$ZQL" --data "$D" run monthly.zql --format ndjson >monthly.out 2>/dev/null
ok 'the rollup still equals the direct query' cmp -s monthly.out direct.out
docs=$(wc -l <agg.out)

# ---- explain ----
expect_exit 0 'zql check of the file finds pv_daily in the store' \
  "$ZQL" --data "$D" check monthly.zql
stdout_matches 'and says it is fine' '^monthly.zql: ok: 1 aggregate'
expect_exit 0 '--dump=checked too' "$ZQL" --data "$D" --dump=checked monthly.zql
expect_exit 1 'without the store, zql check reports the unknown aggregate' \
  "$ZQL" --data "$TEST_TMP/nostore" check monthly.zql
stderr_matches 'with its location' "^monthly.zql:1:27: error: unknown aggregate 'pv_daily' \[E3019\]"
expect_exit 0 'explain of the file' "$ZQL" --data "$D" explain monthly.zql
stdout_matches 'scans the stored aggregate' 'Scan\(agg pv_daily\)'
stdout_matches 'and reads its states' 'extract \[project, day, views, __state\.users, __state\.ms, __state\.p90\]'
expect_exit 0 'explain --analyze' "$ZQL" --data "$D" explain monthly.zql --analyze
stdout_matches 'reads one row per stored document' "^  MAP     $docs events, [0-9]+ bytes -> $docs rows"
expect_exit 0 'explain analyze in a query' "$ZQL" --data "$D" -c \
  'explain analyze from agg pv_daily group by project compute n = sum(views)'
stdout_matches 'runs it over the store' "^  MAP     $docs events"

# ---- a compiled plan reads the store too ----
expect_exit 0 'zql compile of the rollup' "$ZQL" --data "$D" compile monthly.zql -o monthly.zqlc
expect_exit 0 'zql run of the .zqlc' "$ZQL" --data "$D" run monthly.zqlc --format ndjson
ok 'gives the same rows' cmp -s stdout monthly.out

# ---- an aggregate of the files run is read within the run ----
cat >own.zql <<'ZQL'
aggregate pv_daily from event group by context.project as project, bucket(timestamp, day) as day
  compute views = count();
aggregate total from agg pv_daily compute views = sum(views);
ZQL
expect_exit 0 'zql run of a file that defines pv_daily itself' \
  "$ZQL" --data "$D" run own.zql --format ndjson
ok 'reads its own pv_daily (all 4500 events), not the stored one' \
  test "$(tail -1 stdout)" = '{"views":4500}'
expect_exit 1 'unless --only leaves it out' "$ZQL" --data "$D" run own.zql --only total
stderr_matches 'which is said' 'from agg pv_daily: the aggregate is defined in the files given but not run'

# ---- errors ----
expect_exit 1 'a typo of a stored name' "$ZQL" --data "$D" -c 'from agg pv_dialy'
stderr_matches 'is E3019' "unknown aggregate 'pv_dialy' \[E3019\]"
stderr_matches 'with the stored name as a hint' "did you mean 'pv_daily'\? \(an aggregate of the results store\)"
expect_exit 1 'a name the store does not have' "$ZQL" --data "$D" -c 'from agg nothing_like_it'
stderr_matches 'says the store has none' 'results store of .* \(it has no such aggregate\)'
expect_exit 1 'a .zqlc run where the store has no results' \
  "$ZQL" --data "$TEST_TMP/other" run monthly.zqlc
stderr_matches 'fails with E0014' "pv_monthly: from agg pv_daily: .* has no results store .*\[E0014\]"
expect_exit 0 'zql agg drop' "$ZQL" --data "$D" agg drop pv_daily
expect_exit 1 'a .zqlc run after the aggregate was dropped' "$ZQL" --data "$D" run monthly.zqlc
stderr_matches 'fails with E0014 naming it' "from agg pv_daily: .*has no aggregate 'pv_daily'.*\[E0014\]"

done_testing
