# lib.sh -- a tiny TAP library for zql's shell tests (git's t/test-lib.sh, in miniature).
#
# A shell test is a POSIX sh script tests/<area>/tNNNN-name.sh, run by automake's TAP
# driver (make check) or by hand from the build directory:
#
#   #!/bin/sh
#   . "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
#   expect_exit 0 'zql --version exits 0' "$ZQL" --version
#   expect_output 'zql 0.1.0' 'zql --version prints the version' "$ZQL" --version
#   done_testing
#
# Environment (AM_TESTS_ENVIRONMENT in Makefile.am sets it; the defaults fit a run by hand
# from the top build directory): ZQL, ZQLD (the binaries), ZQL_SRCDIR, ZQL_BUILDDIR.
#
# Each test runs in a fresh temporary directory, $TEST_TMP, which is also the current
# directory and is removed on exit. Commands started by run/expect_* get /dev/null as
# stdin and at most $TEST_TIMEOUT seconds (default 60); afterwards $STATUS holds the exit
# status (124: timed out, >= 128: killed by a signal) and the files $TEST_TMP/stdout and
# $TEST_TMP/stderr hold the output.
#
# Functions:
#   plan N                      announce N tests up front (else done_testing does)
#   ok DESC CMD...              pass when CMD (run in this shell) succeeds
#   pass DESC / fail DESC [MSG] record a result directly
#   skip DESC REASON            record a skipped test
#   skip_all REASON             skip the whole script and exit
#   diag MSG...                 print each MSG as a TAP comment line
#   run CMD...                  run CMD as described above (no result recorded)
#   run_stdin FILE CMD...       the same with FILE as stdin
#   expect_exit CODE DESC CMD...   run CMD; pass when it exits with CODE
#   expect_output TEXT DESC CMD... run CMD; pass when it exits 0 printing exactly TEXT
#                               (trailing newlines ignored, as in $(...))
#   stdout_matches DESC ERE     pass when the last run's stdout has a line matching ERE
#   stderr_matches DESC ERE     pass when the last run's stderr has a line matching ERE
#   done_testing                print the plan if needed, then exit 0 (results, not the
#                               exit status, tell the TAP driver what failed)

LC_ALL=C
NO_COLOR=1
export LC_ALL NO_COLOR

: "${ZQL_SRCDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${ZQL_BUILDDIR:=$(pwd)}"
: "${ZQL:=$ZQL_BUILDDIR/zql}"
: "${ZQLD:=$ZQL_BUILDDIR/zqld}"
: "${TEST_TIMEOUT:=60}"
export ZQL_SRCDIR ZQL_BUILDDIR ZQL ZQLD

TEST_N=0
TEST_PLANNED=
STATUS=0

TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/zql-test.XXXXXX") || {
  echo "Bail out! cannot create a temporary directory"
  exit 1
}
trap 'cd / && rm -rf "$TEST_TMP"' EXIT
trap 'exit 130' INT TERM
cd "$TEST_TMP" || exit 1

if command -v timeout >/dev/null 2>&1; then
  TEST_LIMIT="timeout -k 5"
else
  TEST_LIMIT=
fi

plan() {
  TEST_PLANNED=$1
  echo "1..$1"
}

diag() {
  for _m in "$@"; do printf '%s\n' "$_m"; done | sed 's/^/# /'
}

pass() {
  TEST_N=$((TEST_N + 1))
  echo "ok $TEST_N - $1"
}

fail() {
  TEST_N=$((TEST_N + 1))
  echo "not ok $TEST_N - $1"
  shift
  [ $# -eq 0 ] || diag "$@"
}

skip() {
  TEST_N=$((TEST_N + 1))
  echo "ok $TEST_N - $1 # SKIP $2"
}

skip_all() {
  echo "1..0 # SKIP $1"
  exit 0
}

ok() {
  _desc=$1
  shift
  if "$@"; then pass "$_desc"; else fail "$_desc" "failed: $*"; fi
}

run() {
  run_stdin /dev/null "$@"
}

run_stdin() {
  _in=$1
  shift
  if [ -n "$TEST_LIMIT" ]; then
    $TEST_LIMIT "$TEST_TIMEOUT" "$@" <"$_in" >"$TEST_TMP/stdout" 2>"$TEST_TMP/stderr"
  else
    "$@" <"$_in" >"$TEST_TMP/stdout" 2>"$TEST_TMP/stderr"
  fi
  STATUS=$?
}

# describe_status: a phrase for $STATUS, for failure messages.
describe_status() {
  if [ "$STATUS" -eq 124 ] && [ -n "$TEST_LIMIT" ]; then
    echo "timed out after ${TEST_TIMEOUT}s"
  elif [ "$STATUS" -ge 128 ]; then
    echo "killed by signal $((STATUS - 128))"
  else
    echo "exit status $STATUS"
  fi
}

# show_output: the start of the last run's output, as diagnostics.
show_output() {
  if [ -s "$TEST_TMP/stdout" ]; then
    diag "stdout:"
    head -c 1500 "$TEST_TMP/stdout" | head -n 20 | awk '{ print "#   " $0 }'
  fi
  if [ -s "$TEST_TMP/stderr" ]; then
    diag "stderr:"
    head -c 1500 "$TEST_TMP/stderr" | head -n 20 | awk '{ print "#   " $0 }'
  fi
}

expect_exit() {
  _code=$1 _desc=$2
  shift 2
  run "$@"
  if [ "$STATUS" -eq "$_code" ]; then
    pass "$_desc"
  else
    fail "$_desc" "expected exit status $_code, got: $(describe_status)" "command: $*"
    show_output
  fi
}

expect_output() {
  _want=$1 _desc=$2
  shift 2
  run "$@"
  _got=$(cat "$TEST_TMP/stdout")
  if [ "$STATUS" -eq 0 ] && [ "$_got" = "$_want" ]; then
    pass "$_desc"
  else
    fail "$_desc" "expected status 0 and output '$_want'; got $(describe_status)" \
      "command: $*"
    show_output
  fi
}

stdout_matches() {
  if grep -E -q -e "$2" "$TEST_TMP/stdout"; then
    pass "$1"
  else
    fail "$1" "no line of stdout matches /$2/"
    show_output
  fi
}

stderr_matches() {
  if grep -E -q -e "$2" "$TEST_TMP/stderr"; then
    pass "$1"
  else
    fail "$1" "no line of stderr matches /$2/"
    show_output
  fi
}

# same_as_scratch DESC DATA FILE NAME...: the dumps of the stored aggregates NAME... in
# DATA (`zql agg dump`: without _hw, _rev, _late) equal those of a fresh store that runs
# FILE once over a copy of DATA's events (incremental runs, tests/cli/t004*.sh)
same_as_scratch() {
  _desc=$1 _d=$2 _f=$3
  shift 3
  _r=$TEST_TMP/scratch
  rm -rf "$_r" && mkdir "$_r" && cp -r "$_d/events" "$_r/" &&
    "$ZQL" --data "$_r" -q agg add "$_f" >/dev/null 2>&1 &&
    "$ZQL" --data "$_r" -q agg run "$@" >/dev/null 2>&1 || {
    fail "$_desc" "cannot build the from-scratch store"
    return
  }
  _bad=
  for _a in "$@"; do
    "$ZQL" --data "$_d" agg dump "$_a" >"$TEST_TMP/inc.dump" 2>/dev/null
    "$ZQL" --data "$_r" agg dump "$_a" >"$TEST_TMP/ref.dump" 2>/dev/null
    if ! test -s "$TEST_TMP/ref.dump" || ! cmp -s "$TEST_TMP/inc.dump" "$TEST_TMP/ref.dump"; then
      _bad="$_bad $_a"
      diff "$TEST_TMP/inc.dump" "$TEST_TMP/ref.dump" | head -10 | sed 's/^/# /'
    fi
  done
  if [ -z "$_bad" ]; then pass "$_desc"; else fail "$_desc" "documents differ:$_bad"; fi
}

done_testing() {
  [ -n "$TEST_PLANNED" ] || echo "1..$TEST_N"
  exit 0
}
