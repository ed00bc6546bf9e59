#!/bin/sh
# t0051-zqld.sh -- a real zqld taking events: Zarkov's producer, invalid events, HTTP.
#
# One zqld on free ports with an HTTP bearer token (tests/fixtures/zqld.sh):
# - tests/fixtures/zarkov_client.py (what Zarkov's client.py sends: BSON event() and
#   event_noval() frames on the BSON port, {"$datetime": s} JSON frames on the JSON port)
#   sends 60 events; `zql export` has every one of them with its type, context and extra,
#   the server's stamp on event() frames, event_noval's own timestamp, $datetime converted,
#   `$command` removed (zqld_tool.py zarkov-check);
# - invalid events on every endpoint (a bad timestamp, a context that is not a document,
#   an unknown $command, a client _id, bytes that are not BSON, JSON that does not parse,
#   a bad line in an HTTP body) land in DATA/deadletter/YYYY-MM-DD.ndjson with their reason
#   and source, and the good events sent after them are logged;
# - HTTP: 401 without a token or with a wrong one, POST NDJSON / a JSON array / gzip with the
#   assigned ids, /api/v1/status and `zql status --json` with the counters.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$ZQL_SRCDIR/tests/fixtures/zqld.sh"
zqld_need_python

now_ms() { "$PY" -c 'import time; print(time.time_ns() // 1000000)'; }
# the number of events in the log of d
nlog() { "$ZQL" --data d export | wc -l; }
log_has() { [ "$(nlog)" -eq "$1" ]; }

echo 'sekrit-token-1' >tokens
echo '# a comment' >>tokens
echo 'other-token-2' >>tokens
if ! zqld_start d --set http.tokens_file="$TEST_TMP/tokens"; then
  fail 'zqld starts'
  done_testing
fi
pass 'zqld starts on free ports'

# ---- 1. Zarkov's producer ---------------------------------------------------------------
T0=$(now_ms)
run "$PY" "$ZQL_SRCDIR/tests/fixtures/zarkov_client.py" --bson "$BSON_EP" --json "$JSON_EP" \
  --events 60 --seed 11
ok 'zarkov_client.py sends 60 events' test "$STATUS" -eq 0 -a "$(wc -l <"$TEST_TMP/stdout")" -eq 60
cp "$TEST_TMP/stdout" sent.ndjson
ok 'all 60 reach the log' wait_for 10 log_has 60
T1=$(now_ms)
"$ZQL" --data d export >export.ndjson
run "$PY" "$TOOL" zarkov-check sent.ndjson export.ndjson --after "$T0" --before "$T1"
if [ "$STATUS" -eq 0 ]; then
  pass 'the log holds what the producer sent (content, stamps, event_noval, $datetime)'
else
  fail 'the log holds what the producer sent (content, stamps, event_noval, $datetime)'
  show_output
fi
ok 'no $command in the log' eval '! grep -q "\$command" export.ndjson'
ok 'events without timestamp were stamped by the server (20 of them, today)' \
  test "$(grep -c "\"\$date\" : \"$(date -u +%Y-%m-%d)" export.ndjson)" -eq 20
ok 'the 2012 timestamps were kept (40 of them)' \
  test "$(grep -c '"\$date" : "2012-03-28T' export.ndjson)" -eq 40

# ---- 4. invalid events ------------------------------------------------------------------
"$PY" - <<'EOF'
import bson, datetime
def w(name, data):
    open(name, "wb").write(data)
w("b1.bson", bson.encode({"type": "bad-ts", "timestamp": "yesterday"}))
w("b2.bson", bson.encode({"type": "bad-ctx", "context": 5}))
w("b3.bson", bson.encode({"type": "bad-cmd", "$command": "frobnicate"}))
w("b4.bson", b"\x05\x00\x00\x00\x01this is not BSON at all")
w("b5.bson", bson.encode({"type": "bad-id", "_id": 7}))
w("b6.bson", bson.encode({"type": 17}))
w("b7.bson", bson.encode({"type": "good-after-bson", "context": {"n": 1}}))
w("j1.json", b'{"type": "bad-json", "context": ')
w("j2.json", b'{"type": "bad-ts-json", "timestamp": {"$datetime": "soon"}}')
w("j3.json", b'[1, 2]')
w("j4.json", b'{"type": "good-after-json", "timestamp": {"$datetime": 1332892800.25}}')
EOF
run "$PY" "$TOOL" push "$BSON_EP" b1.bson b2.bson b3.bson b4.bson b5.bson b6.bson b7.bson
ok 'bad frames pushed to the BSON port' test "$STATUS" -eq 0
run "$PY" "$TOOL" push "$JSON_EP" j1.json j2.json j3.json j4.json
ok 'bad frames pushed to the JSON port' test "$STATUS" -eq 0
ok 'the good events after them are logged' wait_for 10 log_has 62
"$ZQL" --data d export --from 61 --to 62 >good.ndjson
ok 'good BSON event after 6 bad ones' grep -q '"type" : "good-after-bson"' good.ndjson
ok 'good JSON event after 3 bad ones ($datetime with a fraction)' \
  grep -q '"type" : "good-after-json".*"2012-03-28T00:00:00.250Z"' good.ndjson

# HTTP: one body with a bad line between two good ones
printf '%s\n' '{"type": "h1", "context": {"k": 1}}' '{"type": "h-bad", "context": [1]}' \
  '{"type": "h2"}' >mixed.ndjson
http() { # http NAME CURL-ARGS...: the status code in NAME.code, the body in NAME.body
  _n=$1
  shift
  curl -s -o "$_n.body" -D "$_n.head" -w '%{http_code}' "$@" >"$_n.code"
}
AUTH='Authorization: Bearer sekrit-token-1'
http mixed -H "$AUTH" -H 'Content-Type: application/x-ndjson' --data-binary @mixed.ndjson \
  "$URL/api/v1/events"
ok 'HTTP body with a bad line: 200' test "$(cat mixed.code)" = 200
ok 'it says 2 accepted, 1 rejected, first/last' \
  grep -q '"accepted": *2, *"rejected": *1, *"first": *63, *"last": *64' mixed.body
ok 'and names the bad element and why' grep -q '"index": *1.*context' mixed.body

DL=$(ls d/deadletter/*.ndjson 2>/dev/null)
ok 'one dead-letter file named by the UTC date' \
  test "$DL" = "d/deadletter/$(date -u +%Y-%m-%d).ndjson"
dead_letters() { [ "$(cat "$DL" 2>/dev/null | wc -l)" -ge "$1" ]; } # re-read at each try
wait_for 5 dead_letters 10
ok 'ten dead letters' test "$(wc -l <"$DL")" -eq 10
"$PY" - "$DL" >dl.txt <<'EOF'
import sys
from bson import json_util
for line in open(sys.argv[1]):
    d = json_util.loads(line)
    ev = d.get("event")
    what = ev.get("type") if isinstance(ev, dict) else ("raw" if "raw" in d else "?")
    print("%s | %s | %s | %s" % (d.get("source"), what, d.get("reason"),
                                 "received" in d and "peer" in d))
EOF
dl_has() { # SOURCE-ERE TYPE REASON-ERE (an ERE on the reason, anchored with ^ as needed)
  awk -F ' [|] ' -v s="^($1)\$" -v t="$2" -v r="$3" \
    '$1 ~ s && $2 == t && $3 ~ r && $4 == "True" { f = 1 } END { exit !f }' dl.txt
}
B='bson:[0-9]+' J='json:[0-9]+'
ok 'dead letter: bad timestamp (bson)' dl_has "$B" bad-ts "^field 'timestamp' is not a date"
ok 'dead letter: context not a document' dl_has "$B" bad-ctx "field 'context' is a number; it must be a document"
ok 'dead letter: unknown $command' dl_has "$B" bad-cmd "^unknown [$]command 'frobnicate'"
ok 'dead letter: non-BSON bytes, kept raw' dl_has "$B" raw "^not a BSON document"
ok 'dead letter: a client _id' dl_has "$B" bad-id "^field '_id' is assigned by the server"
ok 'dead letter: a type that is not a string' dl_has "$B" 17 "field 'type' is a number"
ok 'dead letter: JSON that does not parse, kept raw' dl_has "$J" raw "unterminated object"
ok 'dead letter: a bad $datetime' dl_has "$J" raw "datetime' must be a number"
ok 'dead letter: a JSON array frame' dl_has "$J" raw "expected a JSON object"
ok 'dead letter: the bad HTTP line, as the event it parsed to, with its position' dl_has http h-bad "^line 2, column 1: field 'context' is an array"
ok 'the raw bytes are kept exactly (base64)' grep -q '"raw" : "BQAAAAF0aGlzIGlzIG5vdCBCU09OIGF0IGFsbA=="' "$DL"
if ! grep -q 'True$' dl.txt || grep -v -q 'True$' dl.txt; then
  diag "$(cat dl.txt)"
fi

# ---- 7. HTTP ----------------------------------------------------------------------------
http noauth -H 'Content-Type: application/x-ndjson' --data-binary @mixed.ndjson "$URL/api/v1/events"
ok 'no token: 401' test "$(cat noauth.code)" = 401
ok 'with WWW-Authenticate: Bearer' grep -q -i '^WWW-Authenticate: Bearer realm="zqld"' noauth.head
http badtok -H 'Authorization: Bearer nope' "$URL/api/v1/status"
ok 'a wrong token: 401 invalid_token' \
  eval 'test "$(cat badtok.code)" = 401 && grep -q invalid_token badtok.head'
http health "$URL/api/v1/health"
ok 'health needs no token' test "$(cat health.code)" = 200
http tok2 -H 'Authorization: bearer other-token-2' "$URL/api/v1/status"
ok 'the second token of the file works (scheme case-insensitive)' test "$(cat tok2.code)" = 200
ok 'nothing was logged by the refused requests' log_has 64

printf '[{"type": "a1", "context": {"u": "x"}}, {"type": "a2", "timestamp": {"$date": "2020-01-02T03:04:05Z"}}]' >arr.json
http arr -H "$AUTH" -H 'Content-Type: application/json' --data-binary @arr.json "$URL/api/v1/events"
ok 'a JSON array: 200, ids 65..66' \
  eval 'test "$(cat arr.code)" = 200 && grep -q "\"first\": *65, *\"last\": *66" arr.body'
"$PY" -c '
import json
for i in range(500):
    print(json.dumps({"type": "gz", "context": {"i": i}}))' | gzip -c >gz.ndjson.gz
http gz -H "$AUTH" -H 'Content-Encoding: gzip' --data-binary @gz.ndjson.gz "$URL/api/v1/events"
ok 'a gzip NDJSON body of 500: 200, ids 67..566' \
  eval 'test "$(cat gz.code)" = 200 && grep -q "\"accepted\": *500, *\"rejected\": *0, *\"first\": *67, *\"last\": *566" gz.body'
printf '[{"type": 1}, {"type": 2}]' >allbad.json
http allbad -H "$AUTH" --data-binary @allbad.json "$URL/api/v1/events"
ok 'every element rejected: 400' test "$(cat allbad.code)" = 400
printf '[{"type": "x"}, oops]' >broken.json
http broken -H "$AUTH" --data-binary @broken.json "$URL/api/v1/events"
ok 'an array that does not parse: 400 with a position, nothing logged' \
  eval 'test "$(cat broken.code)" = 400 && grep -q "\"line\"" broken.body && test "$(nlog)" -eq 566'
"$ZQL" --data d -c 'from event where type == "gz" compute n = count(), s = sum(context.i)' \
  --format csv >gz.csv
ok 'the gzip events are all there (zql -c)' grep -q '^500,124750$' gz.csv
ok 'the array element kept its date' \
  eval '"$ZQL" --data d export --from 66 --to 66 | grep -q "2020-01-02T03:04:05Z"'

http status -H "$AUTH" "$URL/api/v1/status"
ok '/api/v1/status: 200' test "$(cat status.code)" = 200
"$PY" - status.body >status.txt <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
i = s["ingest"]
src = i["sources"]
print("bson", src["bson"]["accepted"], src["bson"]["rejected"])
print("json", src["json"]["accepted"], src["json"]["rejected"])
print("http", src["http"]["accepted"], src["http"]["rejected"])
print("last", i["last_seq"], i["durable_seq"])
print("dead", i["deadletter_lines"])
print("log", s["log"]["first_seq"], s["log"]["bytes"] > 0)
EOF
ok 'status: BSON counters (40 + 1 accepted, 6 rejected)' grep -q '^bson 41 6$' status.txt
ok 'status: JSON counters (20 + 1 accepted, 3 rejected)' grep -q '^json 21 3$' status.txt
ok 'status: HTTP counters (504 accepted, 3 rejected)' grep -q '^http 504 3$' status.txt
ok 'status: last and durable _seq' grep -q '^last 566 566$' status.txt
ok 'status: dead-letter lines' grep -q '^dead 12$' status.txt
[ -s status.txt ] && diag "$(cat status.txt)"
run "$ZQL" status --url "$URL" --token @tokens --json
ok 'zql status --json --token @FILE works' grep -q '"last_seq" *: *566' "$TEST_TMP/stdout"
run "$ZQL" status --url "$URL" --json
ok 'zql status without the token fails' test "$STATUS" -ne 0

zqld_stop TERM
ok 'SIGTERM: exit status 0' test "$ZQLD_STATUS" -eq 0
ok 'the log is whole after the stop' eval '"$ZQL" --data d log check >/dev/null'
ok 'zqld logged nothing at error level' eval '! grep -q " error: " zqld.err'
grep ' error: \| warn: ' zqld.err | head -5 | sed 's/^/# /'
done_testing
