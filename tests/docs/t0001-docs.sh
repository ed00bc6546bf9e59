#!/bin/sh
# t0001-docs.sh -- the documentation is tested (R22): generated docs are up to date, every
# ```zql example in docs/language.md checks cleanly, tests/tests.am lists every test, and
# no source file includes a header of a later pipeline stage.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

S=$ZQL_SRCDIR

# same DESC EXPECTED-FILE ACTUAL-FILE HOW-TO-FIX
same() {
  if [ ! -f "$2" ]; then
    fail "$1" "missing: $2" "$4"
  elif cmp -s "$2" "$3"; then
    pass "$1"
  else
    fail "$1" "${2#"$S"/} is stale (- committed, + generated); $4"
    diff -u "$2" "$3" | head -n 40 | awk '{ print "#   " $0 }'
  fi
}

# (a) docs/errors.md is generated from runtime/base/errcodes.txt
if awk -F'|' -v mode=md -f "$S/scripts/gen-errcodes.awk" "$S/runtime/base/errcodes.txt" \
  >errors.md; then
  same 'docs/errors.md matches runtime/base/errcodes.txt' "$S/docs/errors.md" errors.md \
    'run: make docs-errors'
else
  fail 'docs/errors.md matches runtime/base/errcodes.txt' 'gen-errcodes.awk failed'
fi

# (b) docs/functions.md is generated from the function registry
run "$ZQL" --list-functions=markdown
if [ "$STATUS" -eq 0 ]; then
  cp "$TEST_TMP/stdout" functions.md
  same 'docs/functions.md matches zql --list-functions=markdown' "$S/docs/functions.md" \
    functions.md 'run: make docs-functions'
else
  fail 'docs/functions.md matches zql --list-functions=markdown' \
    "zql --list-functions=markdown: $(describe_status)"
  show_output
fi

# (c) every ```zql block of docs/language.md passes `zql check -q`. Blocks are written to
# language-NN.zql; language-NN.line holds the line of the opening fence.
if [ -f "$S/docs/language.md" ]; then
  awk '
    /^[ \t]*```/ {
      if (!inside && $0 ~ /^[ \t]*```zql[ \t]*$/) {
        inside = 1; n++; f = sprintf("language-%02d.zql", n)
        print FNR > sprintf("language-%02d.line", n)
        printf "" > f
        next
      }
      if (inside) { inside = 0; close(f); next }
    }
    inside { print > f }
  ' "$S/docs/language.md"
  nblocks=0
  for f in language-*.zql; do
    [ -f "$f" ] || continue
    nblocks=$((nblocks + 1))
    line=$(cat "${f%.zql}.line")
    run "$ZQL" check -q "$f"
    if [ "$STATUS" -eq 0 ] && [ ! -s "$TEST_TMP/stderr" ]; then
      pass "docs/language.md:$line: example checks cleanly"
    else
      fail "docs/language.md:$line: example checks cleanly" \
        "zql check -q: $(describe_status) (the block starts at docs/language.md:$line)"
      show_output
    fi
  done
  ok 'docs/language.md has ```zql examples' test "$nblocks" -gt 0
else
  fail 'docs/language.md exists'
fi

# (d) tests/tests.am is what scripts/gen-tests-am generates
if sh "$S/scripts/gen-tests-am" "$TEST_TMP/tests.am" "$S"; then
  same 'tests/tests.am lists every test file' "$S/tests/tests.am" tests.am \
    'run: scripts/gen-tests-am'
else
  fail 'tests/tests.am lists every test file' 'scripts/gen-tests-am failed'
fi

# (e) no upward #include between pipeline stages
run sh "$S/tests/check-layering.sh" "$S"
if [ "$STATUS" -eq 0 ]; then
  pass 'no #include goes up the stage layering (tests/check-layering.sh)'
else
  fail 'no #include goes up the stage layering (tests/check-layering.sh)'
  awk '{ print "#   " $0 }' "$TEST_TMP/stdout" "$TEST_TMP/stderr"
fi

done_testing
