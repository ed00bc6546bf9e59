#!/bin/sh
# t0050-send.sh -- `zql send` and `zql keygen` (runtime/cmd_send.c, runtime/cmd_keygen.c).
#
# keygen: the key file format (public/secret lines of Z85), the 0600 secret file and the
# .pub file, no overwrite without --force, usage errors. send: usage errors; PUSH of BSON
# and of JSON frames to a PULL receiver (the frames carry exactly the input documents);
# the acked protocol against a protocol-exact stand-in for zqld's ROUTER (a Python
# script below, Debian's python3-zmq and python3-bson): the summary line, rejected events
# reported with FILE:LINE and exit 1, exit 0 when all are accepted, exit 3 when nothing
# answers within --timeout; and tests/fixtures/zarkov_client.py's frames reach the
# receivers as it says. The stand-ins stop by themselves once idle.
# Skipped while main_zql.c does not route `send` and `keygen` yet.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

run "$ZQL" send --help
if [ "$STATUS" -ne 0 ] || ! grep -q '^Usage: zql send' "$TEST_TMP/stdout"; then
  skip_all 'zql send is not wired into main_zql.c yet'
fi

# ---- keygen -----------------------------------------------------------------------------
expect_exit 0 'zql keygen prints a pair' "$ZQL" keygen
stdout_matches 'a public line' '^public = .{40}$'
stdout_matches 'a secret line' '^secret = .{40}$'
ok 'exactly two lines' test "$(wc -l <"$TEST_TMP/stdout")" -eq 2
cp "$TEST_TMP/stdout" pair1
run "$ZQL" keygen
ok 'another run, another pair' eval '! cmp -s pair1 "$TEST_TMP/stdout"'

expect_exit 0 'zql keygen --out FILE' "$ZQL" keygen --out client.key
ok 'the pair file is mode 0600' test "$(stat -c %a client.key)" = 600
ok 'the .pub file is mode 0644' test "$(stat -c %a client.key.pub)" = 644
ok 'the .pub file is the public line of the pair' \
  test "$(cat client.key.pub)" = "$(grep '^public' client.key)"
ok 'stdout shows the public key only' test "$(cat "$TEST_TMP/stdout")" = "$(cat client.key.pub)"
expect_exit 1 'no overwrite without --force' "$ZQL" keygen --out client.key
stderr_matches 'it says so' 'use --force'
cp client.key old.key
expect_exit 0 '--force replaces it' "$ZQL" keygen --out client.key --force
ok 'with a new pair' eval '! cmp -s old.key client.key'
expect_exit 2 'keygen: unknown option' "$ZQL" keygen --bogus
expect_exit 2 'keygen: --force without --out' "$ZQL" keygen --force

# ---- send: usage --------------------------------------------------------------------------
expect_exit 2 'send: unknown option' "$ZQL" send --bogus
expect_exit 2 'send: --ack and --json' "$ZQL" send --ack --json
expect_exit 2 'send: --batch without --ack' "$ZQL" send --batch 10
expect_exit 2 'send: --batch 0' "$ZQL" send --ack --batch 0
expect_exit 2 'send: a bad --timeout' "$ZQL" send --timeout soon
expect_exit 2 'send: a bad --server-key' "$ZQL" send --server-key short
echo '{"type": "one"}' >one.ndjson
expect_exit 2 'send: --server-key @FILE that does not exist' "$ZQL" send --server-key @no.such.pub
stderr_matches 'it names the file' 'no\.such\.pub'
# '@' is a Z85 character too: a 40-character key that starts with it is a key (no file of
# that name), so the run gets as far as connecting (exit 3: nothing listens on port 1)
expect_exit 3 "send: a --server-key that starts with '@' is a key" \
  "$ZQL" send --to 127.0.0.1:1 --timeout 200ms --server-key '@2K?7nK%^ib/Ly>V.geo>9Ob:Q&.48i{3Sp^c5Uz' \
  one.ndjson
stderr_matches 'no connection' 'no connection to tcp://127\.0\.0\.1:1 within 200 ms'

expect_exit 2 'send: --key without --server-key' "$ZQL" send --key client.key
expect_exit 2 'send: --key FILE without a secret' \
  "$ZQL" send --server-key @client.key.pub --key client.key.pub
stderr_matches 'it names the missing secret' 'no secret key'

# ---- the stand-ins ------------------------------------------------------------------------
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import zmq, bson' 2>/dev/null; then
  skip 'the network tests' 'no python3-zmq / python3-bson'
  done_testing
fi

# fake.py pull|acked EPFILE OUT: bind on a free port (written to EPFILE); pull: write
# every frame to OUT as a JSON line; acked: answer the acked protocol (events with a
# field "bad" are rejected, (client, batch) pairs deduplicated) and write the accepted
# events to OUT. Exits 1 s (acked: 3 s) after the last message (20 s if none comes;
# 30 s at most).
cat >fake.py <<'EOF'
import json, sys, time, zmq, bson
from bson import json_util
mode, epfile, out = sys.argv[1:4]
ctx = zmq.Context()
s = ctx.socket(zmq.PULL if mode == "pull" else zmq.ROUTER)
s.bind("tcp://127.0.0.1:*")
with open(epfile + ".tmp", "w") as f:
    f.write(s.getsockopt(zmq.LAST_ENDPOINT).decode())
import os
os.rename(epfile + ".tmp", epfile)
rel = json_util.RELAXED_JSON_OPTIONS
seen, seq = {}, 1
o = open(out, "w")
start = last = time.time()
idle = 20  # until the first message; then 1 s (acked: 3 s, it serves two runs)
while time.time() - last < idle and time.time() - start < 30:
    if not s.poll(50):
        continue
    last, idle = time.time(), 1 if mode == "pull" else 3
    frames = s.recv_multipart()
    if mode == "pull":
        f = frames[0]
        if f[:1] == b"{":  # a JSON frame: extended JSON ($numberInt...) normalised
            d = json_util.loads(f.decode(), json_options=rel)
            o.write(json_util.dumps(d, json_options=rel, sort_keys=True) + "\n")
        else:
            o.write(json_util.dumps(bson.decode(f), json_options=rel, sort_keys=True) + "\n")
        o.flush()
        continue
    ident, magic, hdr = frames[0], frames[1], bson.decode(frames[2])
    evs = frames[3:]
    assert magic == b"ZQA1" and hdr["n"] == len(evs) and hdr["batch"] > 0
    cid = hdr["client"]  # binary subtype 4: PyMongo decodes it as a UUID
    assert len(cid.bytes) == 16 and isinstance(hdr["n"], int)
    key = (cid.bytes, hdr["batch"])
    if key in seen:
        rep = dict(seen[key], dup=True)
    else:
        first, acc, errors = seq, 0, []
        for i, e in enumerate(evs):
            d = bson.decode(e)
            if "bad" in d:
                errors.append({"i": i, "error": "field 'bad' is bad"})
                continue
            o.write(json_util.dumps(d, json_options=rel, sort_keys=True) + "\n")
            seq += 1
            acc += 1
        o.flush()
        rep = {"batch": hdr["batch"], "ok": True, "first": first if acc else 0,
               "last": seq - 1 if acc else 0, "accepted": acc, "rejected": len(errors),
               "dup": False}
        seen[key] = dict(rep)
        rep["errors"] = errors
    s.send_multipart([ident, b"ZQA1", bson.encode(rep)])
o.close()
EOF

# start_fake MODE NAME: starts the stand-in, waits for its endpoint in $EP
start_fake() {
  rm -f "$2.ep"
  "$PY" fake.py "$1" "$2.ep" "$2.out" &
  FAKE_PID=$!
  _i=0
  while ! [ -s "$2.ep" ] && [ $_i -lt 100 ]; do sleep 0.05; _i=$((_i + 1)); done
  EP=$(cat "$2.ep")
}

cat >ev.ndjson <<'EOF'
{"type": "login", "context": {"user": "u1"}, "extra": null}
{"type": "commit", "context": {"user": "u2", "n": 3}, "timestamp": {"$date": "2012-03-28T00:00:01Z"}}

{"type": "create", "context": {"user": "u3"}, "timestamp": {"$datetime": 1332892802.5}}
EOF
# the same events as the stand-ins write them (relaxed extended JSON, sorted keys)
"$PY" - <<'EOF' >want.ndjson
import json, datetime
from bson import json_util
rel = json_util.RELAXED_JSON_OPTIONS
utc = datetime.timezone.utc
for d in [
    {"type": "login", "context": {"user": "u1"}, "extra": None},
    {"type": "commit", "context": {"user": "u2", "n": 3},
     "timestamp": datetime.datetime(2012, 3, 28, 0, 0, 1, tzinfo=utc)},
    {"type": "create", "context": {"user": "u3"},
     "timestamp": datetime.datetime(2012, 3, 28, 0, 0, 2, 500000, tzinfo=utc)},
]:
    print(json_util.dumps(d, json_options=rel, sort_keys=True))
EOF

# ---- PUSH ---------------------------------------------------------------------------------
start_fake pull bson
expect_exit 0 'send: PUSH BSON frames' "$ZQL" send --to "$EP" --timeout 5s ev.ndjson
stdout_matches 'it says 3 events, not acknowledged' '^sent 3 events to tcp://.* \(BSON frames, not acknowledged\)$'
wait "$FAKE_PID"
ok 'the receiver got exactly the input documents ($datetime converted)' cmp -s want.ndjson bson.out

start_fake pull json
gzip -c ev.ndjson >ev.ndjson.gz
expect_exit 0 'send --json: PUSH JSON frames from a gzip file' \
  "$ZQL" send --json --to "$EP" --timeout 5s ev.ndjson.gz
wait "$FAKE_PID"
ok 'the JSON frames parse to the same documents' cmp -s want.ndjson json.out

# ---- acked --------------------------------------------------------------------------------
start_fake acked acked
expect_exit 0 'send --ack: every event accepted: exit 0' \
  "$ZQL" send --ack --to "$EP" --timeout 5s ev.ndjson
stdout_matches 'the summary' '^sent 3 events: 3 accepted, 0 rejected \(first _seq 1, last _seq 3\)$'
{ cat ev.ndjson; echo '{"type": "oops", "bad": true}'; echo 'not json'; \
  echo '{"type": "last"}'; } >mixed.ndjson
expect_exit 1 'send --ack: a rejected and an unreadable event: exit 1' \
  "$ZQL" send --ack --batch 2 --to "$EP" --timeout 5s mixed.ndjson
stdout_matches 'the summary counts the rejection' \
  '^sent 5 events: 4 accepted, 1 rejected \(first _seq 4, last _seq 7\)$'
stderr_matches 'the rejected event with its line and reason' \
  "^zql send: mixed.ndjson:5: rejected: field 'bad' is bad: \{ \"type\" : \"oops\""
stderr_matches 'the unreadable line' '^zql send: mixed.ndjson:6: expected a JSON object'
wait "$FAKE_PID"
ok 'the stand-in logged 7 events' test "$(wc -l <acked.out)" -eq 7

# port 1 on the loopback: nothing listens
expect_exit 3 'send --ack: no server within --timeout: exit 3' \
  "$ZQL" send --ack --to tcp://127.0.0.1:1 --timeout 500ms ev.ndjson
stderr_matches 'it says why' 'could not deliver within 500 ms: .*no connection to tcp://127.0.0.1:1'
stdout_matches 'and what is pending' '^sent 3 events: 0 accepted, 0 rejected, 3 not acknowledged$'
expect_exit 3 'send (PUSH): no server within --timeout: exit 3' \
  "$ZQL" send --to 1 --timeout 300ms ev.ndjson

# ---- Zarkov's client ----------------------------------------------------------------------
start_fake pull zb
ZB=$EP
ZB_PID=$FAKE_PID
start_fake pull zj
expect_exit 0 'zarkov_client.py sends 30 events' \
  "$PY" "$ZQL_SRCDIR/tests/fixtures/zarkov_client.py" --bson "$ZB" --json "$EP" --events 30 --seed 7
cp "$TEST_TMP/stdout" zarkov.ndjson
wait "$ZB_PID" "$FAKE_PID"
ok 'it printed 30 lines' test "$(wc -l <zarkov.ndjson)" -eq 30
ok '20 BSON frames arrived' test "$(wc -l <zb.out)" -eq 20
ok '10 JSON frames arrived' test "$(wc -l <zj.out)" -eq 10
ok 'event() frames have no timestamp' test "$(grep -c -v timestamp zb.out)" -eq 10
ok 'event_noval() frames carry $command' test "$(grep -c '"\$command": "event_noval"' zb.out)" -eq 10
ok 'JSON frames use $datetime' test "$(grep -c '"\$datetime": ' zj.out)" -eq 10
"$PY" - zarkov.ndjson zb.out zj.out <<'EOF' >cmp.out 2>&1
import json, sys
from bson import json_util
printed = [json.dumps(json.loads(l), sort_keys=True) for l in open(sys.argv[1])]
got = [l.strip() for l in open(sys.argv[2])] + [l.strip() for l in open(sys.argv[3])]
sys.exit(0 if sorted(printed) == sorted(got) else 1)
EOF
ok 'what it printed is what arrived' test $? -eq 0
# nothing listens on port 1: the events are printed all the same
run "$PY" "$ZQL_SRCDIR/tests/fixtures/zarkov_client.py" --bson tcp://127.0.0.1:1 \
  --json tcp://127.0.0.1:1 --events 30 --seed 7 --linger-ms 0
ok 'the same seed gives the same events' cmp -s zarkov.ndjson "$TEST_TMP/stdout"
run "$PY" "$ZQL_SRCDIR/tests/fixtures/zarkov_client.py" --bson tcp://127.0.0.1:1 \
  --json tcp://127.0.0.1:1 --events 30 --seed 8 --linger-ms 0
ok 'another seed gives other events' eval '! cmp -s zarkov.ndjson "$TEST_TMP/stdout"'

done_testing
