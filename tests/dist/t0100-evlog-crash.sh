#!/bin/sh
# t0100-evlog-crash.sh -- the event log survives SIGKILL of its writer (runtime/evlog.c).
#
# A writer process (tests/dist/evlog-writer) appends batches forever and records each
# acknowledged batch's last _seq after zql_evlog_append returns. The test kills it with
# SIGKILL at random moments, KILLS times (policies always, batch and none in turn), and
# after each kill: recovery on open succeeds, every acknowledged event is present exactly
# once and in order (each event carries the _seq it must get, and _id == _seq), and
# `zql log check` passes. Then: a second writer is refused (locked), and a byte flipped in
# a sealed segment is reported by `zql log check` with file and offset, and --repair does
# not touch it.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

W="$ZQL_BUILDDIR/tests/dist/evlog-writer"
[ -x "$W" ] || skip_all "tests/dist/evlog-writer is not built (make check builds it)"
KILLS=${EVLOG_KILLS:-24}
DATA="$TEST_TMP/data"
ZQL_DATA=$DATA
export ZQL_DATA

# `zql log` when the CLI has it, else the same code through the helper.
if ! "$ZQL" --data "$DATA" log stat 2>&1 | grep -q "unknown command"; then
  LOG="$ZQL --data $DATA log"
else
  LOG="$W log"
fi

# a pseudo-random sleep between 0.02 and 0.30 s, from the iteration number
nap() {
  awk -v i="$1" 'BEGIN { srand(i * 7919 + 17); printf "%.3f", 0.02 + rand() * 0.28 }'
}

bad=0
i=1
while [ $i -le $KILLS ]; do
  case $((i % 3)) in 0) pol=always ;; 1) pol=batch ;; *) pol=none ;; esac
  "$W" append "$DATA" "$TEST_TMP/acks" $pol $i </dev/null >/dev/null 2>"$TEST_TMP/writer.err" &
  pid=$!
  sleep "$(nap $i)"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  if [ -s "$TEST_TMP/writer.err" ]; then
    fail "kill $i: the writer reported an error"
    diag "$(cat "$TEST_TMP/writer.err")"
    bad=1
    break
  fi
  run "$W" recover "$DATA"
  if [ "$STATUS" -ne 0 ]; then
    fail "kill $i ($pol): recovery on open" "$(describe_status)"
    show_output
    bad=1
    break
  fi
  grep -q . "$TEST_TMP/stdout" && diag "kill $i ($pol): $(tr '\n' ' ' <"$TEST_TMP/stdout")"
  run "$W" verify "$DATA" "$TEST_TMP/acks"
  if [ "$STATUS" -ne 0 ]; then
    fail "kill $i ($pol): every acknowledged event present once, in order"
    show_output
    bad=1
    break
  fi
  run $LOG check
  if [ "$STATUS" -ne 0 ]; then
    fail "kill $i ($pol): zql log check passes after recovery"
    show_output
    bad=1
    break
  fi
  i=$((i + 1))
done
[ $bad -eq 0 ] && pass "$KILLS SIGKILLs: after each, every acknowledged event is present exactly once, in order, and the log checks"

run "$W" verify "$DATA" "$TEST_TMP/acks"
diag "$(cat "$TEST_TMP/stdout")"
ok 'the crash loop acknowledged some events' test "$(tail -n 1 "$TEST_TMP/acks")" -gt 100
nseg=$(ls "$DATA/events" | grep -c '\.seg$')
ok "the writer rolled and sealed segments ($nseg)" test "$nseg" -ge 2

run $LOG stat
ok 'zql log stat lists every segment and a total' \
  test "$(grep -c -E '^[0-9]{20}\.(seg|open) ' "$TEST_TMP/stdout")" -eq $((nseg + 1))
stdout_matches 'zql log stat prints the totals' '^total '

# one writer at a time
"$W" append "$DATA" "$TEST_TMP/acks2" batch 1 </dev/null >/dev/null 2>&1 &
pid=$!
sleep 0.2
expect_exit 3 'a second writer is refused' "$W" append "$DATA" "$TEST_TMP/acks3" batch 2
stderr_matches 'the second writer is told the log is locked' 'locked by another writer.*E0008'
run $LOG check
ok 'zql log check works next to a running writer' test "$STATUS" -eq 0
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
run "$W" recover "$DATA"

# corruption in a sealed segment: named, never repaired
seg=$(ls "$DATA/events" | grep '\.seg$' | head -n 1)
size=$(wc -c <"$DATA/events/$seg")
printf 'Z' | dd of="$DATA/events/$seg" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
expect_exit 1 'zql log check fails on a corrupt sealed segment' $LOG check
stdout_matches 'the problem names the file and offset' "^events/$seg: offset [0-9]+: "
expect_exit 1 'zql log check --repair does not hide it' $LOG check --repair
cmp_size=$(wc -c <"$DATA/events/$seg")
ok 'the sealed segment is untouched by --repair' test "$cmp_size" -eq "$size"
expect_exit 1 'a reader stops with the named error' "$W" verify "$DATA" "$TEST_TMP/acks"
stderr_matches 'the reader names the file and offset' "$seg': offset [0-9]+: "

done_testing
