#!/bin/sh
# t0001-cli.sh -- the `zql` command-line contract: options, exit statuses, where output
# goes, and robustness against hostile input (huge, deeply nested or binary files).
#
# Exit statuses: 0 success, 1 the input has errors (or a file cannot be read), 2 usage
# error. A crash or a time-out is always a failure; every robustness case must finish
# within 10 seconds with an ordinary diagnostic.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

cat >good.zql <<'EOF'
# good.zql: a small valid aggregate
aggregate views_by_type
  from event
  where type != "debug"
  group by type
  compute n = count()
  into "zagg.views_by_type";
EOF
printf '# bad.zql: a syntax error on line 2\nfrom event where type == ;\n' >bad.zql
: >empty.zql
printf 'from event where usr == "x";\n' >bad2.zql
printf 'from event\n  group by type compute n = count(;\n' >bad3.zql

# ---- options and commands ---------------------------------------------------------------
expect_output 'zql 0.1.0' 'zql --version prints "zql 0.1.0"' "$ZQL" --version
expect_exit 0 'zql --help exits 0' "$ZQL" --help
stdout_matches 'zql --help mentions the check command' 'check'
expect_exit 2 'an unknown command exits 2' "$ZQL" frobnicate good.zql
stderr_matches 'an unknown command points to the usage on stderr' '[Uu]sage|--help'
expect_exit 2 'an unknown option exits 2' "$ZQL" --no-such-option
stderr_matches 'an unknown option points to the usage on stderr' '[Uu]sage|--help'
expect_exit 2 'zql check without files exits 2' "$ZQL" check

# ---- zql check --------------------------------------------------------------------------
expect_exit 0 'zql check good.zql exits 0' "$ZQL" check good.zql
ok 'zql check good.zql prints "good.zql: ok"' \
  grep -q '^good\.zql: ok' "$TEST_TMP/stdout"
expect_exit 0 'zql check -q good.zql exits 0' "$ZQL" check -q good.zql
ok 'zql check -q good.zql prints nothing' \
  test ! -s "$TEST_TMP/stdout" -a ! -s "$TEST_TMP/stderr"
expect_exit 1 'zql check bad.zql exits 1' "$ZQL" check bad.zql
stderr_matches 'a syntax error is reported as bad.zql:2:26: error:' '^bad\.zql:2:26: error: '
expect_exit 1 'an unknown name fails the check' "$ZQL" check -q bad2.zql
stderr_matches 'an unknown name is reported at its position' '^bad2\.zql:1:18: error: '
expect_exit 0 'several good files: exit 0' "$ZQL" check good.zql empty.zql
stdout_matches 'several good files: each is reported ok' '^empty\.zql: ok'
expect_exit 1 'several files, two bad: exit 1' "$ZQL" check good.zql bad.zql bad3.zql
stderr_matches 'several files: the first bad one is reported' '^bad\.zql:2:26: error:'
stderr_matches 'several files: the second bad one is reported' '^bad3\.zql:2:[0-9]+: error:'
expect_exit 1 'a missing file exits 1' "$ZQL" check no-such-file.zql
stderr_matches 'a missing file says "cannot open"' 'cannot open'
expect_exit 1 'a missing file among good ones still exits 1' "$ZQL" check good.zql nope.zql
run_stdin good.zql "$ZQL" check -q -
ok 'zql check - reads a good query from stdin' test "$STATUS" -eq 0
run_stdin bad.zql "$ZQL" check -q -
ok 'zql check - reads a bad query from stdin (exit 1)' test "$STATUS" -eq 1
stderr_matches 'stdin is named <stdin> in diagnostics' '^<stdin>:2:26: error: '

# ---- dumps ------------------------------------------------------------------------------
for d in tokens ast checked; do
  expect_exit 0 "--dump=$d exits 0 on a valid file" "$ZQL" --dump=$d good.zql
  ok "--dump=$d prints something" test -s "$TEST_TMP/stdout"
done
expect_exit 2 '--dump=bogus exits 2' "$ZQL" --dump=bogus good.zql

# ---- robustness -------------------------------------------------------------------------
# robust WANT DESC FILE: `zql check -q FILE` must exit WANT within 10 s; with WANT 1 it
# must say "error:" in at most 64 KiB of stderr (no error floods, no dumped megabytes).
robust() {
  _want=$1 _desc=$2 _file=$3
  _saved=$TEST_TIMEOUT
  TEST_TIMEOUT=10
  run "$ZQL" check -q "$_file"
  TEST_TIMEOUT=$_saved
  _size=$(wc -c <"$TEST_TMP/stderr")
  if [ "$STATUS" -ne "$_want" ]; then
    fail "$_desc" "expected exit status $_want, got: $(describe_status)"
    show_output
  elif [ "$_want" -eq 1 ] && ! grep -q 'error:' "$TEST_TMP/stderr"; then
    fail "$_desc" "exit status 1 but no 'error:' on stderr"
    show_output
  elif [ "$_size" -gt 65536 ]; then
    fail "$_desc" "stderr is $_size bytes long"
    show_output
  else
    pass "$_desc"
  fi
}

# rep N TEXT: TEXT repeated N times, no newline.
rep() {
  awk -v n="$1" -v s="$2" 'BEGIN { for (i = 0; i < n; i++) printf "%s", s }'
}

printf 'from event where type == "abc;\n' >unterminated.zql
robust 1 'an unterminated string is an error' unterminated.zql

{ printf 'from event where type == "'; head -c 10485760 /dev/zero | tr '\0' x; printf '";\n'; } \
  >long-string.zql
robust 0 'a 10 MB string literal on one line checks fine' long-string.zql

{ printf 'from event where type == "'; head -c 10485760 /dev/zero | tr '\0' x; printf '\n'; } \
  >long-unterminated.zql
robust 1 'an unterminated 10 MB string is an error with a short message' long-unterminated.zql

{ printf 'from event where x == 1'; rep 2621440 ' + 1'; printf ';\n'; } >long-sum.zql
robust 1 'a 10 MB expression 1 + 1 + ... is an error' long-sum.zql

printf 'from event\000 where type == "a";\n' >nul.zql
robust 1 'a NUL byte is an error' nul.zql

printf 'from event where type == "\377\376abc";\n' >bad-utf8.zql
robust 1 'invalid UTF-8 is an error' bad-utf8.zql
printf 'from event where type == "\303";\n' >cut-utf8.zql
robust 1 'a truncated UTF-8 sequence is an error' cut-utf8.zql

{ printf 'from event where type == '; rep 10000 '('; printf '1'; rep 10000 ')'; printf ';\n'; } \
  >parens.zql
robust 1 '10,000 nested parentheses are an error' parens.zql

{ printf 'from event where '; rep 10000 'not '; printf 'true;\n'; } >nots.zql
robust 1 '10,000 nested "not" are an error' nots.zql

{ printf 'from event where type in '; rep 100000 '['; printf '\n'; } >brackets.zql
robust 1 '100,000 "[" are an error' brackets.zql

{ printf 'from event where x == '; rep 10000 '- '; printf '1;\n'; } >minus.zql
robust 1 '10,000 unary minus signs are an error' minus.zql

robust 0 'an empty file checks fine' empty.zql

printf '# only a comment\n-- and another\n\n   # indented\n' >comments.zql
robust 0 'a file of only comments checks fine' comments.zql

printf '# no newline at the end' >no-newline.zql
robust 0 'a comment without a final newline checks fine' no-newline.zql

# ---- explanations, the registry listing and colour --------------------------------------
cat >explain.zql <<'ZQL'
aggregate pv from event
  where type == "pageview"
  group by context.project as project, bucket(timestamp, day) as day
  compute views = count(), users = distinct_count(context.user) limit 1000 else hll
  into "zagg.pv" schedule every 5s;
ZQL
expect_exit 0 'zql check -v explains a valid file' "$ZQL" check -v explain.zql
stdout_matches 'it names the aggregate' 'aggregate pv'
stdout_matches 'it shows the keys' 'by project = context.project, day = bucket\(timestamp, day\)'
stdout_matches 'it shows the computed fields with their limits' 'users = distinct_count\(context.user\) limit 1000 else hll'
stdout_matches 'it shows the options' 'schedule every 5s'

expect_exit 0 'zql --list-functions exits 0' "$ZQL" --list-functions
stdout_matches 'it lists quantile' '^quantile\(e, q'
expect_exit 0 'zql --list-functions=markdown exits 0' "$ZQL" --list-functions=markdown
stdout_matches 'it writes a markdown table' '^\| `count\(\[e\]\)`|^\| `count'
expect_exit 2 'an unknown --list-functions format exits 2' "$ZQL" --list-functions=html

printf 'from event where usr == 1;\n' >typo.zql
expect_exit 1 '--color=always still fails on errors' "$ZQL" check --color=always typo.zql
stderr_matches '--color=always colours the diagnostic' "$(printf '\033')\\["
expect_exit 1 '--color=never' "$ZQL" check --color=never typo.zql
if grep -q "$(printf '\033')" "$TEST_TMP/stderr"; then
  fail '--color=never writes no escape sequence'
else
  pass '--color=never writes no escape sequence'
fi
expect_exit 2 'an unknown --color value exits 2' "$ZQL" check --color=sometimes typo.zql

done_testing
