#!/bin/sh
# run-golden.sh -- run one golden test: tests/<kind>/NAME.zql or examples/NAME.zql.
#
# The automake LOG_COMPILER of every *.zql test (Makefile.am: ZQL_LOG_COMPILER), run from
# the top build directory as
#
#   sh tests/run-golden.sh [path/]tests/parse/NAME.zql
#
# The path is relative to the build directory, or points into the source tree in a VPATH
# build; either way the script cd's into the test file's own directory and gives zql the
# bare file name, so file names in diagnostics do not depend on where the tree is.
#
# What runs and what is compared depends on the directory the file is in:
#
#   lex/      zql --dump=tokens NAME.zql     stdout vs NAME.tokens
#   parse/    zql --dump=ast NAME.zql        stdout vs NAME.ast
#   checked/  zql --dump=checked NAME.zql    stdout vs NAME.checked
#             (these three: stderr must be empty and the exit status 0, unless NAME.err
#             exists next to the test: then stderr is compared with it too, and the exit
#             status must be 0, or 1 with something on stderr)
#   errors/   zql check -q --color=never NAME.zql    stderr vs NAME.err; exit status 1,
#             or 0 when NAME starts with "warn-" (warnings only)
#   examples/ zql check -q NAME.zql          exit status 0 and empty stderr
#   plan/     zql explain NAME.zql           stdout vs NAME.plan (stderr must be empty)
#   queries/  zql --data D run NAME.zql --format ndjson --now T, over the events of a
#             fixture imported into a fresh data directory D: stdout, then (when not
#             empty) a line "--- stderr" and stderr, vs NAME.expected. The same run with
#             --threads 1, 2 and 8 and with --mem-limit 4K (every group spills) must give
#             byte-identical output (resolved point 14). Header lines of NAME.zql set the
#             fixture and extra arguments:
#               -- fixture: FILE   (under tests/queries/fixtures/; default events.ndjson)
#               -- args: ARGS      (default: --now 2024-01-08T00:00:00Z)
#               -- status: N       (expected exit status; default 0)
#
# The actual output goes to NAME.out (stderr of lex/parse/checked to NAME.err.out, stdout
# of errors/examples to NAME.stdout.out) in the build tree's copy of the test's directory, and is compared with `diff -u`, which is
# printed on failure. A crash (exit status >= 128) or a time-out ($ZQL_TEST_TIMEOUT
# seconds, default 60) always fails.
#
# ZQL_ACCEPT=1 writes the actual output over the expected file(s) in the SOURCE tree and
# passes (but never accepts a crash or a wrong exit status); in lex/parse/checked it
# creates NAME.err when there are diagnostics and removes it when there are none.
# Review the result with `git diff`.
#
# Environment: ZQL (the zql binary; default ./zql), ZQL_SRCDIR (the top source directory;
# default: this script's parent), ZQL_BUILDDIR (default: the current directory).
# Exit status: 0 pass, 1 fail, 77 skip (automake's convention), 99 hard error.

LC_ALL=C
NO_COLOR=1
export LC_ALL NO_COLOR

me=run-golden.sh
if [ $# -ne 1 ]; then
  echo "usage: $me path/to/NAME.zql" >&2
  exit 99
fi
test_arg=$1

builddir=${ZQL_BUILDDIR:-$(pwd)}
builddir=$(cd "$builddir" && pwd -P) || exit 99
if [ -z "${ZQL_SRCDIR:-}" ]; then
  ZQL_SRCDIR=$(cd "$(dirname "$0")/.." && pwd -P) || exit 99
fi
srcdir=$(cd "$ZQL_SRCDIR" && pwd -P) || exit 99
zql=${ZQL:-$builddir/zql}
case $zql in
  /*) ;;
  *) zql=$(pwd)/$zql ;;
esac

if [ ! -f "$test_arg" ]; then
  echo "$me: no such test file: $test_arg" >&2
  exit 99
fi
if [ ! -x "$zql" ]; then
  echo "$me: zql binary not found or not executable: $zql (build it first)" >&2
  exit 99
fi

tdir=$(cd "$(dirname "$test_arg")" && pwd -P) || exit 99
file=$(basename "$test_arg")
name=${file%.zql}
kind=$(basename "$tdir")

# The test's directory relative to the top source directory, mirrored in the build tree.
case $tdir in
  "$srcdir") reldir=. ;;
  "$srcdir"/*) reldir=${tdir#"$srcdir"/} ;;
  *) reldir=$kind ;; # a test outside the tree: keep its output under its kind's name
esac
outdir=$builddir/$reldir
mkdir -p "$outdir" || exit 99
out=$outdir/$name.out
errout=$outdir/$name.err.out      # lex/parse/checked: stderr
stdout_out=$outdir/$name.stdout.out # errors/examples: stdout (kept for inspection)
rm -f "$out" "$errout" "$stdout_out"

if command -v timeout >/dev/null 2>&1; then
  limit="timeout -k 5 ${ZQL_TEST_TIMEOUT:-60}"
else
  limit=
fi

# run_zql STDOUT-FILE STDERR-FILE ARGS...: run zql in the test's directory, set $status.
run_zql() {
  _o=$1 _e=$2
  shift 2
  # shellcheck disable=SC2086
  (cd "$tdir" && exec $limit "$zql" "$@") >"$_o" 2>"$_e" </dev/null
  status=$?
}

fail() {
  echo "FAIL: $reldir/$file: $*"
  exit 1
}

# Reject crashes and time-outs before looking at any output.
check_died() {
  if [ "$status" -eq 124 ] && [ -n "$limit" ]; then
    fail "timed out after ${ZQL_TEST_TIMEOUT:-60}s: $cmd_shown"
  fi
  if [ "$status" -ge 128 ]; then
    echo "--- stderr:"
    head -c 4000 "$1"
    fail "zql died with status $status (signal $((status - 128))): $cmd_shown"
  fi
}

# compare EXPECTED ACTUAL WHAT: diff, or accept into the source tree.
compare() {
  _exp=$1 _act=$2 _what=$3
  if [ "${ZQL_ACCEPT:-0}" = 1 ]; then
    cp "$_act" "$_exp" || fail "cannot write $_exp"
    echo "accepted: $reldir/$(basename "$_exp")"
    return 0
  fi
  if [ ! -f "$_exp" ]; then
    echo "--- actual $_what:"
    head -c 4000 "$_act"
    fail "expected output $reldir/$(basename "$_exp") is missing; create it with" \
      "ZQL_ACCEPT=1 make check TESTS=$reldir/$file (and review it)"
  fi
  if ! diff -u "$_exp" "$_act"; then
    echo "$_what differs from $reldir/$(basename "$_exp") (- expected, + actual)"
    echo "to accept the new output: ZQL_ACCEPT=1 make check TESTS=$reldir/$file"
    return 1
  fi
  return 0
}

case $kind in
  lex | parse | checked)
    case $kind in
      lex) dump=tokens ext=tokens ;;
      parse) dump=ast ext=ast ;;
      checked) dump=checked ext=checked ;;
    esac
    cmd_shown="cd $reldir && zql --dump=$dump $file"
    echo "$cmd_shown"
    run_zql "$out" "$errout" --dump="$dump" "$file"
    check_died "$errout"
    rc=0
    experr=$tdir/$name.err
    if [ "${ZQL_ACCEPT:-0}" = 1 ]; then
      if [ "$status" -ne 0 ] || [ -s "$errout" ]; then with_err=1; else with_err=0; fi
      [ $with_err = 1 ] || rm -f "$experr"
    elif [ -f "$experr" ]; then
      with_err=1
    else
      with_err=0
    fi
    if [ $with_err = 1 ]; then
      # the diagnostics are part of this test's expected output
      if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
        cat "$errout"
        fail "exit status $status, expected 0 or 1"
      fi
      if [ "$status" -ne 0 ] && [ ! -s "$errout" ]; then
        fail "exit status $status with nothing on stderr"
      fi
      compare "$experr" "$errout" "stderr" || rc=1
    elif [ "$status" -ne 0 ] || [ -s "$errout" ]; then
      echo "--- stderr:"
      cat "$errout"
      fail "exit status $status with the stderr above; expected status 0 and no" \
        "stderr (add $name.err next to the test if the diagnostics are intended)"
    fi
    compare "$tdir/$name.$ext" "$out" "stdout" || rc=1
    [ $rc -eq 0 ] || fail "output differs"
    ;;

  errors)
    case $name in
      warn-*) want=0 ;;
      *) want=1 ;;
    esac
    cmd_shown="cd $reldir && zql check -q --color=never $file"
    echo "$cmd_shown"
    run_zql "$stdout_out" "$out" check -q --color=never "$file"
    check_died "$out"
    if [ -s "$stdout_out" ]; then
      echo "--- stdout (not compared):"
      head -c 2000 "$stdout_out"
    fi
    if [ "$status" -ne "$want" ]; then
      echo "--- stderr:"
      cat "$out"
      fail "exit status $status, expected $want"
    fi
    compare "$tdir/$name.err" "$out" "stderr" || fail "diagnostics differ"
    ;;

  examples)
    cmd_shown="cd $reldir && zql check -q $file"
    echo "$cmd_shown"
    run_zql "$stdout_out" "$out" check -q "$file"
    check_died "$out"
    if [ "$status" -ne 0 ] || [ -s "$out" ]; then
      echo "--- stderr:"
      cat "$out"
      fail "exit status $status; an example must check cleanly (status 0, no diagnostics)"
    fi
    ;;

  plan)
    cmd_shown="cd $reldir && zql explain $file"
    echo "$cmd_shown"
    run_zql "$out" "$errout" explain "$file"
    check_died "$errout"
    if [ "$status" -ne 0 ] || [ -s "$errout" ]; then
      echo "--- stderr:"
      cat "$errout"
      fail "exit status $status; explain must succeed with nothing on stderr"
    fi
    compare "$tdir/$name.plan" "$out" "stdout" || fail "plan differs"
    ;;

  queries)
    fixture=$(sed -n 's/^-- fixture: *//p' "$tdir/$file" | head -n 1)
    fixture=${fixture:-events.ndjson}
    args=$(sed -n 's/^-- args: *//p' "$tdir/$file" | head -n 1)
    args=${args:---now 2024-01-08T00:00:00Z}
    want=$(sed -n 's/^-- status: *//p' "$tdir/$file" | head -n 1)
    want=${want:-0}
    data=$outdir/$name.data
    rm -rf "$data"
    (cd "$tdir" && $limit "$zql" --data "$data" -q import "fixtures/$fixture") \
      >"$errout" 2>&1 || { cat "$errout"; fail "cannot import fixtures/$fixture"; }
    combined() { # $1: extra options; writes $2
      # shellcheck disable=SC2086
      run_zql "$2.o" "$2.e" --data "$data" run "$file" --format ndjson --no-progress $args $1
      check_died "$2.e"
      if [ "$status" -ne "$want" ]; then
        cat "$2.e"
        fail "exit status $status, expected $want ($1)"
      fi
      cat "$2.o" >"$2"
      if [ -s "$2.e" ]; then
        echo "--- stderr" >>"$2"
        cat "$2.e" >>"$2"
      fi
      rm -f "$2.o" "$2.e"
    }
    cmd_shown="cd $reldir && zql --data D run $file --format ndjson $args --threads 1"
    echo "$cmd_shown"
    combined "--threads 1" "$out"
    rc=0
    compare "$tdir/$name.expected" "$out" "output" || rc=1
    for variant in "--threads 2" "--threads 8" "--threads 3 --mem-limit 4K"; do
      combined "$variant" "$out.v"
      if ! cmp -s "$out" "$out.v"; then
        diff -u "$out" "$out.v"
        echo "output with $variant differs from --threads 1 (resolved point 14)"
        rc=1
      fi
      rm -f "$out.v"
    done
    rm -rf "$data"
    [ $rc -eq 0 ] || fail "output differs"
    ;;

  *)
    echo "SKIP: $reldir/$file: no golden rule for directory '$kind'"
    exit 77
    ;;
esac

echo "PASS: $reldir/$file"
exit 0
