#!/bin/sh
# t0002-error-coverage.sh -- every diagnostic code of runtime/base/errcodes.txt (lexical,
# syntax, semantic and warning codes) is pinned by at least one golden file
# tests/errors/*.err, so no diagnostic exists that no test has ever produced. Runtime codes
# (E0xxx) are not compile diagnostics; the CLI and unit tests cover them.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

S=$ZQL_SRCDIR
codes=$(awk -F'|' '/^[EW][1-9][0-9][0-9][0-9]\|/ { print $1 }' "$S/runtime/base/errcodes.txt")
[ -n "$codes" ] || fail 'errcodes.txt lists diagnostic codes' 'no code found'
for c in $codes; do
  if grep -l "\[$c\]" "$S"/tests/errors/*.err >/dev/null 2>&1; then
    pass "$c has a golden error test"
  else
    fail "$c has a golden error test" "no tests/errors/*.err contains [$c]; add tests/errors/$c-NAME.zql"
  fi
done
done_testing
