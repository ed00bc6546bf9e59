#!/bin/sh
# t0052-zqld-acked.sh -- no event lost, none duplicated: acked ingest across SIGKILLs of zqld,
# and the SIGTERM drain.
#
# 1. `zql send --ack` streams 200000 events (extra.n = 0..199999, fed at about 40000/s
#    through a pipe) while zqld is killed with SIGKILL three times mid-stream and restarted
#    on the same ports each time; the client resends what was not acknowledged. At the end
#    zql send reports all 200000 accepted, and the log holds every n exactly once, at
#    _seq 1..200000 (the dedup journal answered the resent batches that were already
#    logged with dup: true; the ones that were not durable were logged once, anew).
# 2. SIGTERM while `zql send --ack` streams: zqld exits 0 having logged every batch it
#    took (a clean stop: the restart needs no log recovery), the client waits and
#    delivers the rest to the restarted zqld: again every event exactly once.
# 3. SIGTERM right after a PUSH producer (linger) handed over a burst of 20000 events:
#    exit 0, and all 20000 are in the log.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$ZQL_SRCDIR/tests/fixtures/zqld.sh"
zqld_need_python

# the log's last _seq as zqld's status says it (0 when it does not answer)
last_seq() {
  curl -s -m 2 "$URL/api/v1/status" 2>/dev/null |
    sed -n 's/.*"last_seq" *: *\([0-9]*\).*/\1/p' | head -n 1 | grep . || echo 0
}
past() { [ "$(last_seq)" -ge "$1" ]; }
# feed N: N NDJSON events, extra.n = 0..N-1, 1000 every 25 ms
feed() {
  "$PY" -c '
import json, sys, time
n = int(sys.argv[1])
for i in range(n):
    sys.stdout.write(json.dumps({"type": "acked", "context": {"k": i % 7}, "extra": {"n": i}}) + "\n")
    if i % 1000 == 999:
        sys.stdout.flush()
        time.sleep(0.025)
' "$1"
}
# exactly_once N: the log holds extra.n = 0..N-1 once each, at _seq 1..N
exactly_once() {
  "$ZQL" --data d -c 'from event compute n = count(), d = distinct_count(extra.n) limit 1000000,
    lo = min(extra.n), hi = max(extra.n), s1 = min(_seq), s2 = max(_seq)' --format csv >eo.csv
  if ! grep -q "^$1,$1,0,$(($1 - 1)),1,$1\$" eo.csv; then
    diag "count, distinct, min n, max n, min _seq, max _seq: $(tail -n 1 eo.csv)"
    return 1
  fi
}
command -v curl >/dev/null || skip_all 'no curl'

# ---- 1. SIGKILL x3 ------------------------------------------------------------------------
if ! zqld_start d; then
  fail 'zqld starts'
  done_testing
fi
N=200000
feed $N | "$ZQL" send --ack --to "$ACKED_EP" --timeout 20s - >send.out 2>send.err &
SEND_PID=$!
bg_track $SEND_PID
kills=0
for at in 40000 90000 140000; do
  if wait_for 20 past $at; then
    zqld_stop KILL
    kills=$((kills + 1))
    diag "SIGKILL at _seq >= $at (status $ZQLD_STATUS)"
    zqld_restart d || break
  fi
done
ok 'zqld was SIGKILLed three times mid-stream and restarted' test $kills -eq 3
wait $SEND_PID
SEND_STATUS=$?
ok 'zql send --ack exits 0' test $SEND_STATUS -eq 0
ok 'it reports every event accepted' \
  grep -q "^sent $N events: $N accepted, 0 rejected (first _seq 1, last _seq $N)\$" send.out
[ $SEND_STATUS -eq 0 ] || diag "$(cat send.out send.err | head -n 5)"
ok 'the log holds each event exactly once, at _seq 1..200000' exactly_once $N
ok 'the log checks clean' eval '"$ZQL" --data d log check >/dev/null'
diag "log recoveries at restart: $(grep -c 'the event log was recovered' zqld.err);" \
  "resent batches answered dup since the last restart: $(curl -s "$URL/api/v1/status" |
    sed -n 's/.*"batches_dup" : \([0-9]*\).*/\1/p')"
[ ! -s send.err ] || diag "zql send said: $(head -n 3 send.err)"
zqld_stop TERM
ok 'then SIGTERM: exit 0' test "$ZQLD_STATUS" -eq 0

# ---- 2. SIGTERM while an acked client streams ---------------------------------------------
rm -rf d
: >zqld.err
zqld_start d || fail 'zqld starts again'
N=100000
feed $N | "$ZQL" send --ack --to "$ACKED_EP" --timeout 20s - >send2.out 2>send2.err &
SEND_PID=$!
bg_track $SEND_PID
wait_for 20 past 30000
zqld_stop TERM
ok 'SIGTERM mid-stream: exit 0' test "$ZQLD_STATUS" -eq 0
ok 'it drained' grep -q 'draining' zqld.err
HAD=$("$ZQL" --data d export | wc -l)
diag "the log held $HAD events at the stop"
ok 'what it took is in the log' test "$HAD" -ge 30000
zqld_restart d || fail 'zqld restarts'
ok 'the log needed no recovery after the drain' eval '! grep -q "recovered" zqld.err'
wait $SEND_PID
ok 'zql send --ack exits 0 (it delivered the rest to the restarted zqld)' test $? -eq 0
ok 'every event exactly once' exactly_once $N

# ---- 3. SIGTERM right after a PUSH burst --------------------------------------------------
"$PY" - "$BSON_EP" <<'EOF'
import sys, zmq, bson
ctx = zmq.Context()
s = ctx.socket(zmq.PUSH)
s.setsockopt(zmq.SNDHWM, 0)
s.connect(sys.argv[1])
for i in range(20000):
    s.send(bson.encode({"type": "burst", "extra": {"n": i}}))
s.close(linger=10000)   # returns once every frame went out on the connection
ctx.term()
EOF
zqld_stop TERM
ok 'SIGTERM right after the burst: exit 0' test "$ZQLD_STATUS" -eq 0
"$ZQL" --data d -c 'from event where type == "burst" compute n = count(), d = distinct_count(extra.n)' \
  --format csv >burst.csv
ok 'all 20000 burst events are in the log' grep -q '^20000,20000$' burst.csv
grep -q '^20000,20000$' burst.csv || diag "$(cat burst.csv)"
ok 'zqld logged no error' eval '! grep -q " error: " zqld.err'
grep ' error: ' zqld.err | head -n 5 | sed 's/^/# /'
done_testing
