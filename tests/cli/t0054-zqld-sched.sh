#!/bin/sh
# t0054-zqld-sched.sh -- zqld's scheduler with real processes: on event with a predicate,
# after, every, the agg_complete notifications, status, and SIGHUP picking up a new aggregate.
#
# Stored aggregates: on_x (`schedule on event type == "x"`), after_x (`from agg on_x ...
# schedule after on_x`), ticker (`schedule every 1s`). A SUB listener (tests/fixtures/
# zqld_tool.py sub) records every notification with its arrival time.
# - events of other types never run on_x; ticker picks them up within about a second;
# - one event of type "x" runs on_x within a second of its sending, with (lo, hi] covering
#   it, and after_x runs after it; each run publishes {'$command': 'agg_complete', name, run,
#   lo, hi, docs, kind, events};
# - `zql status --json` shows each aggregate's schedule, watermark, lag and last run;
# - `zql agg add` of a new aggregate plus SIGHUP: zqld schedules it at once (well before its
#   10 s catalog poll) and it runs on its events, each announced within 600 ms even after a
#   quiet spell (the writer wakes the main loop).
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$ZQL_SRCDIR/tests/fixtures/zqld.sh"
zqld_need_python

now_ms() { "$PY" -c 'import time; print(time.time_ns() // 1000000)'; }
# notes NAME: the notifications of aggregate NAME so far, one "run lo hi events docs kind recv_ms" line each
notes() {
  "$PY" - "$1" <<'EOF'
import json, sys
for line in open("sub.out"):
    d = json.loads(line)
    if d.get("$command") == "agg_complete" and d.get("name") == sys.argv[1]:
        print(d["run"], d["lo"], d["hi"], d["events"], d["docs"], d["kind"], d["recv_ns"] // 1000000)
EOF
}
has_notes() { [ "$(notes "$1" | wc -l)" -ge "$2" ]; }
# covered NAME SEQ: some notification of NAME has lo < SEQ <= hi
covered() { notes "$1" | awk -v s="$2" '$2 < s && s <= $3 { f = 1 } END { exit !f }'; }
push() { # push TYPE...: one BSON event per type, PUSHed; waits until they are logged
  for _t in "$@"; do printf '{"type": "%s", "context": {"k": 1}}\n' "$_t"; done >push.ndjson
  "$ZQL" send --to "$BSON_EP" --timeout 5s push.ndjson >/dev/null
}
last_seq() { "$ZQL" --data d export | wc -l; }
logged() { [ "$(last_seq)" -eq "$1" ]; } # (a function: wait_for re-runs the export)

cat >aggs.zql <<'EOF'
aggregate on_x from event group by type compute n = count() schedule on event type == "x";
aggregate after_x from agg on_x compute n = merge(n) schedule after on_x;
aggregate ticker from event compute n = count(), last = max(timestamp) schedule every 1s;
EOF
expect_exit 0 'three aggregates are stored' "$ZQL" --data d agg add aggs.zql

if ! zqld_start d; then
  fail 'zqld starts'
  done_testing
fi
pass 'zqld starts'
ok 'it schedules the three aggregates' grep -q '; 3 aggregates$' zqld.err
"$PY" "$TOOL" sub "$PUB_EP" sub.out --ready sub.ready --seconds 50 >/dev/null 2>&1 &
bg_track $!
ok 'the SUB listener is connected' wait_for 10 test -e sub.ready

# ---- other events: on_x does not run, ticker does -------------------------------------------
push y y z
ok '3 events are logged' wait_for 5 logged 3
ok 'ticker (every 1s) covers them within 2.5 s' wait_for 2.5 covered ticker 3
sleep 0.5
ok 'on_x did not run for events of other types' eval '! has_notes on_x 1'
ok 'nor after_x' eval '! has_notes after_x 1'

# ---- an "x" event -----------------------------------------------------------------------------
T0=$(now_ms)
push x
ok 'on_x runs on the x event' wait_for 5 covered on_x 4
N1=$(notes on_x | awk '$2 < 4 && 4 <= $3' | head -n 1)
diag "on_x notification: run lo hi events docs kind recv_ms = $N1"
LAT=$(($(echo "$N1" | awk '{ print $7 }') - T0))
diag "on_x: $LAT ms from the send to the notification"
ok 'within a second of the event (settle 200 ms)' test "$LAT" -lt 1000
ok 'its run covered (0, 4]: events 4, documents 3 (types x, y, z)' \
  test "$(echo "$N1" | awk '{ print $2, $3, $4, $5 }')" = "0 4 4 3"
ok 'after_x runs after on_x' wait_for 5 has_notes after_x 1
A1=$(notes after_x | head -n 1 | awk '{ print $7 }')
ok 'and its notification comes after on_x' test "$A1" -ge "$(echo "$N1" | awk '{ print $7 }')"
ok 'ticker covers the x event too' wait_for 2.5 covered ticker 4
grep -q '"\$command": "agg_complete"' sub.out && grep -q '"kind": "' sub.out
ok 'notifications carry $command agg_complete and kind' test $? -eq 0

# ---- a burst of x events: coalesced into few runs ------------------------------------------------
push x x x x x x x x x x
ok 'ten more x events: on_x covers them' wait_for 5 covered on_x 14
R=$(notes on_x | awk '$3 > 4' | wc -l)
diag "on_x runs for the burst of 10: $R"
ok 'coalesced into at most 2 runs (one settle window)' test "$R" -le 2

# ---- status ---------------------------------------------------------------------------------------
sleep 1.2 # let ticker catch up
run "$ZQL" status --url "$URL" --json
cp "$TEST_TMP/stdout" status.json
"$PY" - status.json >status.txt <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
for a in s["aggregates"]:
    lr = a.get("last_run", {})
    print(a["name"], repr(a.get("schedule")), a.get("watermark"), a.get("lag"),
          lr.get("status"), lr.get("hi"), a.get("failures"))
EOF
diag "$(cat status.txt)"
ok 'status: on_x with its schedule, watermark 14, lag 0, last run ok' \
  grep -q "^on_x 'on event type == \"x\"' 14 0 [a-z]* 14 0$" status.txt
ok 'status: ticker, every 1s, watermark 14' grep -q "^ticker 'every 1s' 14 0 " status.txt
ok 'status: after_x, after on_x' grep -q "^after_x 'after on_x' " status.txt
run "$ZQL" status --url "$URL"
ok 'zql status (text) lists the aggregates' eval 'grep -q on_x "$TEST_TMP/stdout" && grep -q ticker "$TEST_TMP/stdout"'
"$ZQL" --data d -c 'from agg on_x compute t = sum(n), x = sum(n) where type == "x"' --format csv >onx.csv
ok 'on_x holds 14 events, 11 of type x' grep -q '^14,11$' onx.csv

# ---- SIGHUP picks up a new aggregate --------------------------------------------------------------
cat >newcomer.zql <<'EOF'
aggregate newcomer from event where type == "new" compute n = count() schedule on event type == "new" settle 50ms;
EOF
expect_exit 0 'a new aggregate is stored while zqld runs' "$ZQL" --data d agg add newcomer.zql
kill -HUP "$ZQLD_PID"
ok 'SIGHUP: zqld schedules it within a second' wait_for 1 grep -q 'aggregate newcomer (version 1): ' zqld.err
# after a quiet spell the first event must wake zqld's main loop at once (it sleeps up to 1 s
# when nothing is due): three events, 0.3 s apart, each announced within 600 ms
worst=0
for i in 1 2 3; do
  sleep 0.3
  T1=$(now_ms)
  push new
  wait_for 3 covered newcomer $((14 + i)) || { worst=99999; break; }
  L1=$(notes newcomer | awk -v s=$((14 + i)) '$2 < s && s <= $3 { print $7; exit }')
  [ $((L1 - T1)) -le "$worst" ] || worst=$((L1 - T1))
done
ok 'and it runs on its events' test "$worst" -lt 99999
diag "newcomer (settle 50 ms): at most $worst ms from a send to its notification"
ok 'each within 600 ms of the send, idle or not' test "$worst" -lt 600
ok 'zqld is still running after SIGHUP' kill -0 "$ZQLD_PID"

zqld_stop TERM
ok 'SIGTERM: exit 0' test "$ZQLD_STATUS" -eq 0
ok 'no run failed' eval '! grep -q "run failed" zqld.err'
done_testing
