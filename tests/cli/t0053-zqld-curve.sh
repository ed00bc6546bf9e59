#!/bin/sh
# t0053-zqld-curve.sh -- CURVE on every ZeroMQ endpoint of a real zqld.
#
# zqld runs with a server key pair (zql keygen) and an allow list holding one client's public
# key. The allow-listed client gets its events in, acked (`zql send --ack --server-key @...
# --key ...`) and pushed, and its SUB receives the agg_complete notifications. A client
# with another key pair, and a client without CURVE, never get an event into the log
# (zql send --ack exits 3: not delivered); zqld logs the refused key and counts it
# (`zql status --json`: ingest.curve_denied > 0); their SUB receives nothing.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$ZQL_SRCDIR/tests/fixtures/zqld.sh"
zqld_need_python

nlog() { "$ZQL" --data d export | wc -l; }
log_has() { [ "$(nlog)" -eq "$1" ]; }

# '=' and '@' are Z85 characters: the server's secret key starts with '=', its public key
# with '@' (so `--server-key @...` is a key, not a file), one allowed client's public key
# with '=' (keygen-format files written by python3-zmq)
"$PY" - <<'EOF'
import zmq
def pair(name, want):
    while True:
        pub, sec = zmq.curve_keypair()
        if want(pub.decode(), sec.decode()):
            break
    with open(name, "w") as f:
        f.write("public = %s\nsecret = %s\n" % (pub.decode(), sec.decode()))
    with open(name + ".pub", "w") as f:
        f.write("public = %s\n" % pub.decode())
pair("server.key", lambda p, s: s.startswith("=") and p.startswith("@"))
pair("eq.key", lambda p, s: p.startswith("="))
EOF
"$ZQL" keygen --out client.key >/dev/null 2>&1 &&
  "$ZQL" keygen --out stranger.key >/dev/null 2>&1
ok 'four key pairs' test -s server.key -a -s eq.key -a -s client.key.pub -a -s stranger.key
{
  echo '# the producers allowed in: a bare key, and the line of a .pub file'
  sed 's/^public *= *//' client.key.pub
  echo
  cat eq.key.pub
} >allow
SERVER_PUB=$(sed 's/^public *= *//' server.key.pub)
# shellcheck disable=SC2034 # used in an eval below
STRANGER_PUB=$(sed 's/^public *= *//' stranger.key.pub)

cat >agg.zql <<'EOF'
aggregate by_type from event group by type compute n = count() schedule on event settle 50ms;
EOF
expect_exit 0 'an on-event aggregate is stored' "$ZQL" --data d agg add agg.zql
if ! zqld_start d --set security.curve_secret_key_file="$TEST_TMP/server.key" \
  --set security.curve_allow_file="$TEST_TMP/allow"; then
  fail 'zqld starts with CURVE'
  done_testing
fi
pass 'zqld starts with CURVE'

# two listeners on the notification PUB: the allowed key and the stranger's
"$PY" "$TOOL" sub "$PUB_EP" good.sub --ready good.ready --seconds 30 \
  --server-key="$SERVER_PUB" --key client.key >/dev/null 2>&1 &
bg_track $!
"$PY" "$TOOL" sub "$PUB_EP" bad.sub --ready bad.ready --seconds 30 \
  --server-key="$SERVER_PUB" --key stranger.key >/dev/null 2>&1 &
bg_track $!
ok 'the allowed SUB completes the CURVE handshake' wait_for 10 test -e good.ready

printf '%s\n' '{"type": "ok1", "context": {"who": "client"}}' '{"type": "ok2"}' '{"type": "ok3"}' >good.ndjson
printf '%s\n' '{"type": "intruder"}' '{"type": "intruder"}' >bad.ndjson

expect_exit 0 'the allow-listed client: zql send --ack delivers' \
  "$ZQL" send --ack --to "$ACKED_EP" --server-key @server.key.pub --key client.key \
  --timeout 10s good.ndjson
stdout_matches 'all 3 accepted' '^sent 3 events: 3 accepted, 0 rejected \(first _seq 1, last _seq 3\)$'
expect_exit 0 'the allow-listed client: PUSH (BSON)' \
  "$ZQL" send --to "$BSON_EP" --server-key "$SERVER_PUB" --key client.key --timeout 10s good.ndjson
expect_exit 0 'the allow-listed client: PUSH (JSON)' \
  "$ZQL" send --json --to "$JSON_EP" --server-key "$SERVER_PUB" --key client.key \
  --timeout 10s good.ndjson
ok 'its 9 events are in the log' wait_for 10 log_has 9
expect_exit 0 "a client whose public key starts with '=' (its .pub line listed) delivers" \
  "$ZQL" send --ack --to "$ACKED_EP" --server-key @server.key.pub --key eq.key \
  --timeout 10s good.ndjson
ok 'its 3 events are in the log' wait_for 10 log_has 12

expect_exit 3 'an unknown key: zql send --ack is not delivered (exit 3)' \
  "$ZQL" send --ack --to "$ACKED_EP" --server-key @server.key.pub --key stranger.key \
  --timeout 1500ms bad.ndjson
expect_exit 3 'no client key at all (a fresh pair): not delivered' \
  "$ZQL" send --ack --to "$ACKED_EP" --server-key @server.key.pub --timeout 1s bad.ndjson
run "$ZQL" send --to "$BSON_EP" --server-key @server.key.pub --key stranger.key \
  --timeout 1s bad.ndjson
run "$ZQL" send --json --to "$JSON_EP" --server-key @server.key.pub --key stranger.key \
  --timeout 1s bad.ndjson
expect_exit 3 'a client without CURVE: not delivered' \
  "$ZQL" send --ack --to "$ACKED_EP" --timeout 1s bad.ndjson
# Zarkov's client has no CURVE at all
run "$PY" "$ZQL_SRCDIR/tests/fixtures/zarkov_client.py" --bson "$BSON_EP" --json "$JSON_EP" \
  --events 6 --linger-ms 500
sleep 0.5
ok 'none of their events is in the log' eval '! "$ZQL" --data d export | grep -q -v "\"ok[123]\""'
ok 'still 12 events' log_has 12
ok 'zqld logs the refused key' \
  eval 'grep -F "curve: refused client key $STRANGER_PUB from " zqld.err | grep -q ": not in the allow-list"'
run "$ZQL" status --url "$URL" --json
"$PY" -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["ingest"]["curve_denied"])' "$TEST_TMP/stdout" >denied 2>&1
ok 'zql status --json: ingest.curve_denied > 0' test "$(cat denied)" -gt 0
diag "curve_denied = $(cat denied)"

ok 'the allowed SUB received agg_complete for by_type' \
  wait_for 10 grep -q '"name": "by_type"' good.sub
ok 'the stranger SUB never got in, nor any notification' \
  eval 'test ! -e bad.ready && ! test -s bad.sub'
"$ZQL" --data d -c 'from agg by_type compute t = sum(n)' --format csv >aggsum.csv 2>&1
ok 'the aggregate counts the 12 allowed events only' grep -q '^12$' aggsum.csv

zqld_stop TERM
ok 'SIGTERM: exit 0' test "$ZQLD_STATUS" -eq 0
done_testing
