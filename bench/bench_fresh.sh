#!/bin/sh
# bench_fresh.sh -- event-to-aggregate freshness of zqld's `schedule on event`.
#
# Issue 6's target: at 100k events/s, an aggregate scheduled `on event` is committed and
# announced (agg_complete on the PUB socket) within 1 s of the events it covers: p99 < 1 s.
#
#   sh bench/bench_fresh.sh ZQL ZQLD [--rate 100000] [--seconds 10] [--settle D] [--keep DIR]
#
# Steps (a fresh data directory, zqld on free ports of 127.0.0.1, fsync = batch):
#   1. `zql agg add` of one aggregate: per-second counts and the newest timestamp,
#        aggregate fresh from event group by bucket(timestamp, second tz "UTC") as sec
#          compute n = count(), newest = max(timestamp) schedule on event [settle D];
#   2. a SUB listener (bench/bench_fresh.py listen) records every agg_complete of `fresh`
#      with its arrival time;
#   3. one producer (bench/bench_fresh.py produce) PUSHes --rate events/s for --seconds to
#      the BSON endpoint in 1 ms slices, recording each slice's send time; with one
#      producer on an empty log, event i gets _seq i (checked on samples with zql export);
#   4. once a notification covers the last event: the freshness of every event (arrival of
#      the first notification whose (lo, hi] holds it - its send time), and per run that
#      of its newest and oldest event; the achieved ingest rate.
# Both sides read the same clock (CLOCK_REALTIME). The producer is Python: check the
# "achieved" line, a rate below --rate means the producer, not zqld, was the limit.
set -eu
USAGE='usage: bench_fresh.sh ZQL ZQLD [--rate R] [--seconds S] [--settle D] [--keep DIR]'
ZQL=${1:?$USAGE}
ZQLD=${2:?$USAGE}
shift 2
RATE=100000
SECS=10
SETTLE=
KEEP=
while [ $# -gt 0 ]; do
  case $1 in
    --rate) RATE=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    --settle) SETTLE="settle $2"; shift 2 ;;
    --keep) KEEP=$2; shift 2 ;;
    *) echo "bench_fresh.sh: unknown option $1" >&2; echo "$USAGE" >&2; exit 2 ;;
  esac
done
PY=/usr/bin/python3
"$PY" -c 'import zmq, bson' 2>/dev/null || {
  echo "bench_fresh.sh: needs /usr/bin/python3 with python3-zmq and python3-bson" >&2
  exit 2
}
case $ZQL in /*) ;; *) ZQL=$(pwd)/$ZQL ;; esac
case $ZQLD in /*) ;; *) ZQLD=$(pwd)/$ZQLD ;; esac
SRC=$(cd "$(dirname "$0")/.." && pwd)
HELP=$SRC/bench/bench_fresh.py
D=${KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/zql-bench-fresh.XXXXXX")}
mkdir -p "$D"
rm -rf "$D/data" "$D"/notes* "$D/sends" "$D/ready"
ZPID='' LPID=''
cleanup() {
  [ -z "$ZPID" ] || kill -9 "$ZPID" 2>/dev/null || true
  [ -z "$LPID" ] || kill "$LPID" 2>/dev/null || true
  [ -n "$KEEP" ] || rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$D/fresh.zql" <<EOF
aggregate fresh from event
  group by bucket(timestamp, second tz "UTC") as sec
  compute n = count(), newest = max(timestamp)
  schedule on event $SETTLE;
EOF
"$ZQL" --data "$D/data" -q agg add "$D/fresh.zql" >/dev/null

# zqld on free ports (retried when one is taken in between)
tries=0
while :; do
  # shellcheck disable=SC2046 # five port numbers
  set -- $("$PY" "$HELP" ports 5)
  BSON=tcp://127.0.0.1:$1 PUB=tcp://127.0.0.1:$4
  "$ZQLD" --data "$D/data" --set ingest.bson="$BSON" --set ingest.json=tcp://127.0.0.1:$2 \
    --set ingest.acked=tcp://127.0.0.1:$3 --set ingest.pub="$PUB" --set http.listen=127.0.0.1:$5 \
    --set ingest.fsync=batch 2>"$D/zqld.err" &
  ZPID=$!
  i=0
  while [ $i -lt 200 ] && kill -0 $ZPID 2>/dev/null && ! grep -q ': data ' "$D/zqld.err"; do
    sleep 0.05
    i=$((i + 1))
  done
  grep -q ': data ' "$D/zqld.err" && break
  kill -9 $ZPID 2>/dev/null || true
  ZPID=
  tries=$((tries + 1))
  if [ $tries -ge 5 ]; then
    echo "bench_fresh.sh: zqld does not start:" >&2
    cat "$D/zqld.err" >&2
    exit 1
  fi
done

"$PY" "$HELP" listen "$PUB" "$D/notes" --ready "$D/ready" --seconds $((SECS + 120)) &
LPID=$!
i=0
while [ ! -e "$D/ready" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done

N=$((RATE * SECS))
echo "sh bench/bench_fresh.sh ZQL ZQLD --rate $RATE --seconds $SECS${SETTLE:+ --${SETTLE% *} ${SETTLE#* }}"
"$PY" "$HELP" produce "$BSON" --rate "$RATE" --seconds "$SECS" --out "$D/sends" >"$D/produce.out"
echo "$N" >"$D/notes.until"
wait $LPID || true
LPID=
kill -TERM $ZPID
wait $ZPID || { echo "bench_fresh.sh: zqld exited with an error" >&2; }
ZPID=

# event i is _seq i: spot checks
for s in 1 $((N / 3)) $((N / 2 + 7)) $N; do
  got=$("$ZQL" --data "$D/data" export --from $s --to $s |
    sed -n 's/.*"n" : { "$numberLong" : "\([0-9]*\)".*/\1/p; s/.*"n" : \([0-9]*\) .*/\1/p' | head -n 1)
  if [ "$got" != "$s" ]; then
    echo "bench_fresh.sh: _seq $s holds event '$got', not $s: the mapping does not hold" >&2
    exit 1
  fi
done
LAST=$("$ZQL" --data "$D/data" export --from $N --to $((N + 1)) | wc -l)
[ "$LAST" -eq 1 ] || { echo "bench_fresh.sh: the log does not end at _seq $N" >&2; exit 1; }

cat "$D/produce.out" | sed 's/^sent/achieved: sent/'
"$PY" "$HELP" report "$D/sends" "$D/notes"
RUNS_S=$(sed -n 's/.*fresh: run [0-9]* [a-z]* ([0-9]*, [0-9]*\]: [0-9]* events, [0-9]* documents (\([0-9.]*\) s)$/\1/p' "$D/zqld.err" |
  sort -n | awk '{ v[NR] = $1 }
    END { if (NR) { k = int(NR * 0.99 + 0.5); if (k < 1) k = 1
                    printf "%.3f / %.3f / %.3f (%d runs)", v[int((NR + 1) / 2)], v[k], v[NR], NR } }')
echo "run duration (s, zqld's own figure) p50 / p99 / max: $RUNS_S"
echo "(target: p99 freshness < 1000 ms at 100000 events/s; $(nproc) cores; fsync = batch," \
  "${SETTLE:-settle 200ms (the default)})"
