#!/bin/sh
# t0040-incr-crash.sh -- incremental aggregates survive SIGKILL anywhere (issue 5; R12, R15):
# events are appended in steps (some of them late), and each step kills a run: at every
# crash point of runtime/incr.c (ZQL_TEST_CRASH), at random moments from outside (kill -9
# of `agg run` and `agg rebuild`), or kills a concurrent `zql import`. After each kill one
# catch-up `agg run --all` must finish the interrupted run ("(resumed)") and then every
# aggregate's documents must be byte for byte those of a store built from scratch over the
# same events. At the end no run may be left `started`.
#
# The steps are drawn from a seeded generator: ZQL_CRASH_SEED=N reproduces a sequence.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

F=$ZQL_SRCDIR/tests/cli/incr/crash.zql
D=$TEST_TMP/d
R=$TEST_TMP/ref
AGGS="by_type_hour country_up sk_daily top_daily traffic types_all"
POINTS="after-start before-commit mid-commit after-commit rebuild-built rebuild-swap backfill-batch"

"$ZQL" --data "$D" -q gen --events 600 --seed 1 --start 2024-01-03 --days 2 >/dev/null 2>&1 ||
  skip_all "cannot generate events"
sleep 0.001 2>/dev/null || skip_all "sleep takes no fractions of a second"

# ---- a deterministic generator (an LCG: Numerical Recipes' constants, mod 2^31) ----
RNG=${ZQL_CRASH_SEED:-4040}
diag "ZQL_CRASH_SEED=$RNG"
# rand N: a number from 0 to N-1 in $R_
rand() {
  RNG=$(((RNG * 1103515245 + 12345) % 2147483648))
  R_=$(((RNG / 65536) % $1))
}
# pick WORD...: one of the words in $R_
pick() {
  rand $#
  shift "$R_"
  R_=$1
}

STEP=0
# append: a few hundred generated events over 1 to 3 days starting between 2024-01-01 and
# 2024-01-09, so that many are late for aggregates that already saw later ones (lateness)
append() {
  STEP=$((STEP + 1))
  rand 400
  n=$((150 + R_))
  rand 9
  start=$(printf '2024-01-%02d' $((1 + R_)))
  rand 3
  "$ZQL" --data "$D" -q gen --events "$n" --seed $((100 + STEP)) --start "$start" \
    --days $((1 + R_)) >/dev/null 2>&1 || fail "step $STEP: gen failed"
}

# compare DESC: every aggregate's dump equals that of a fresh store over a copy of the log
compare() {
  rm -rf "$R"
  if ! mkdir "$R" || ! cp -r "$D/events" "$R/"; then
    fail "$1" "cannot copy the log"
    return
  fi
  if ! "$ZQL" --data "$R" -q agg add "$F" >/dev/null 2>"$TEST_TMP/ref.err" ||
    ! "$ZQL" --data "$R" -q agg run --all >/dev/null 2>>"$TEST_TMP/ref.err"; then
    fail "$1" "the reference store failed: $(head -c 300 "$TEST_TMP/ref.err")"
    return
  fi
  bad=
  for a in $AGGS; do
    if ! "$ZQL" --data "$D" agg dump "$a" >"$TEST_TMP/inc.$a" 2>/dev/null; then
      bad="$bad $a(dump failed)"
    elif ! "$ZQL" --data "$R" agg dump "$a" >"$TEST_TMP/ref.$a" 2>/dev/null ||
      ! test -s "$TEST_TMP/ref.$a"; then
      bad="$bad $a(no reference)"
    elif ! cmp -s "$TEST_TMP/inc.$a" "$TEST_TMP/ref.$a"; then
      bad="$bad $a($(wc -l <"$TEST_TMP/inc.$a") vs $(wc -l <"$TEST_TMP/ref.$a") docs)"
      cp "$TEST_TMP/inc.$a" "$TEST_TMP/bad.inc.$a"
      cp "$TEST_TMP/ref.$a" "$TEST_TMP/bad.ref.$a"
    fi
  done
  if [ -z "$bad" ]; then
    pass "$1"
  else
    fail "$1" "documents differ from a from-scratch store:$bad"
    for a in $AGGS; do
      [ -f "$TEST_TMP/bad.inc.$a" ] || continue
      diff "$TEST_TMP/bad.inc.$a" "$TEST_TMP/bad.ref.$a" | head -n 4 | cut -c 1-300 |
        awk '{ print "#   " $0 }'
      rm -f "$TEST_TMP/bad.inc.$a" "$TEST_TMP/bad.ref.$a"
    done
  fi
}

# catch_up DESC [WHO]: `agg run --all` succeeds; it must report the interrupted run of the
# aggregate WHO (an ERE) as resumed, or with WHO "-" resume nothing
catch_up() {
  run "$ZQL" --data "$D" agg run --all
  if [ "$STATUS" -ne 0 ]; then
    fail "$1: the catch-up run succeeds" "got $(describe_status)"
    show_output
  elif [ "$2" = - ]; then
    if grep -q '(resumed)' "$TEST_TMP/stdout"; then
      fail "$1: the catch-up run resumes nothing"
      show_output
    else
      pass "$1: the catch-up run resumes nothing"
    fi
  elif [ -n "$2" ]; then
    stdout_matches "$1: the catch-up run resumes the interrupted run" \
      "^$2: run [0-9]+ [a-z]+ \\(resumed\\)"
  else
    pass "$1: the catch-up run succeeds"
  fi
}

expect_exit 0 'agg add stores the aggregates' "$ZQL" --data "$D" agg add "$F"
n=$(grep -c ': added$' "$TEST_TMP/stdout")
ok 'all six of them' test "$n" -eq 6
expect_exit 0 'a first run' "$ZQL" --data "$D" agg run --all
compare 'the first run equals a from-scratch store'

# ---- kills at each crash point, five rounds ----
round=0
while [ $round -lt 5 ]; do
  round=$((round + 1))
  for p in $POINTS; do
    append
    case $p in
    after-start | before-commit | after-commit)
      pick $AGGS --all; victim=$R_; set -- agg run "$victim" ;;
    mid-commit) # only incremental reduce/merge commits have a middle
      pick by_type_hour sk_daily traffic; victim=$R_; set -- agg run "$victim" ;;
    rebuild-built | rebuild-swap)
      pick $AGGS types_all top_daily; victim=$R_
      case $victim in
      types_all) set -- agg run "$victim" ;; # its full runs (mode replace) rebuild too
      *) set -- agg rebuild "$victim" ;;
      esac ;;
    backfill-batch)
      pick sk_daily by_type_hour country_up; victim=$R_
      rand 5
      set -- agg backfill "$victim" --from "2024-01-0$((1 + R_))" --to "2024-01-0$((4 + R_))" ;;
    esac
    what="round $round, $p, $*"
    run env ZQL_TEST_CRASH="$p" "$ZQL" --data "$D" "$@"
    if [ "$STATUS" -eq 137 ]; then
      pass "$what: killed at the crash point"
    else
      fail "$what: killed at the crash point" "got $(describe_status)"
      show_output
    fi
    [ "$victim" = --all ] && victim='[a-z_]+' # the first one to get there
    [ "$p" = after-commit ] && victim=-
    # the runs that were not killed may still have new events: catch_up runs them too
    catch_up "$what" "$victim"
    compare "$what: the same documents as from scratch"
  done
done

# ---- kill -9 from outside at a random moment: runs, rebuilds ----
killed=0
i=0
while [ $i -lt 10 ]; do
  i=$((i + 1))
  append
  if [ $((i % 3)) -eq 0 ]; then
    pick $AGGS; set -- agg rebuild "$R_"
  else
    set -- agg run --all
  fi
  "$ZQL" --data "$D" "$@" >/dev/null 2>&1 &
  pid=$!
  rand 40
  sleep "0.$(printf '%03d' $((R_ + 1)))"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  [ $? -eq 137 ] && killed=$((killed + 1))
  catch_up "external kill $i ($*)"
  compare "external kill $i ($*): the same documents as from scratch"
done
diag "$killed of 10 runs were killed before they finished"

# ---- kill -9 of an import while a run reads the log ----
i=0
while [ $i -lt 5 ]; do
  i=$((i + 1))
  rand 9
  "$ZQL" -q gen --events 2000 --seed $((900 + i)) --start "2024-01-0$((1 + R_))" --days 2 \
    -o "$TEST_TMP/imp.ndjson" >/dev/null 2>&1
  "$ZQL" --data "$D" -q import "$TEST_TMP/imp.ndjson" >/dev/null 2>&1 &
  ipid=$!
  "$ZQL" --data "$D" agg run --all >/dev/null 2>&1 &
  rpid=$!
  rand 25
  sleep "0.$(printf '%03d' $((R_ + 1)))"
  kill -9 "$ipid" 2>/dev/null
  wait "$ipid" 2>/dev/null
  wait "$rpid" 2>/dev/null
  rs=$?
  if [ $rs -eq 0 ]; then
    pass "import kill $i: the concurrent run succeeds"
  else
    fail "import kill $i: the concurrent run succeeds" "exit status $rs"
  fi
  catch_up "import kill $i"
  compare "import kill $i: the same documents as from scratch"
done

# ---- two runs and a rebuild at the same time take turns (the lock of each aggregate) ----
i=0
while [ $i -lt 3 ]; do
  i=$((i + 1))
  append
  "$ZQL" --data "$D" agg run --all >/dev/null 2>"$TEST_TMP/c1" &
  p1=$!
  "$ZQL" --data "$D" agg run --all >/dev/null 2>"$TEST_TMP/c2" &
  p2=$!
  pick $AGGS
  "$ZQL" --data "$D" agg rebuild "$R_" >/dev/null 2>"$TEST_TMP/c3" &
  p3=$!
  wait "$p1"
  s1=$?
  wait "$p2"
  s2=$?
  wait "$p3"
  s3=$?
  if [ "$s1$s2$s3" = 000 ]; then
    pass "concurrent runs $i: all three succeed"
  else
    fail "concurrent runs $i: all three succeed" "exit statuses $s1 $s2 $s3" \
      "$(cat "$TEST_TMP/c1" "$TEST_TMP/c2" "$TEST_TMP/c3" | head -n 5)"
  fi
  compare "concurrent runs $i: the same documents as from scratch"
done

# ---- nothing is left half done ----
left=
for a in $AGGS; do
  "$ZQL" --data "$D" agg runs "$a" >"$TEST_TMP/runs.$a" 2>&1 || left="$left $a(agg runs failed)"
  grep -q ' started ' "$TEST_TMP/runs.$a" && left="$left $a($(grep ' started ' "$TEST_TMP/runs.$a" |
    awk '{ printf "%s run %s; ", $2, $1 }'))"
done
if [ -z "$left" ]; then
  pass 'no run is left started'
else
  fail 'no run is left started' "runs left started:$left"
fi
run "$ZQL" --data "$D" agg run --all
n=$(grep -c ': up to date$' "$TEST_TMP/stdout")
ok 'and a last run finds every aggregate up to date' test "$n" -eq 6

done_testing
