#!/bin/sh
# t0010-gen.sh -- `zql gen`: deterministic synthetic events (runtime/cmd_gen.c).
#
# The same options give the same bytes; NDJSON output is one extended-JSON object per
# line with {"$date": ...} timestamps inside the requested window; BSON output is a
# sequence of complete documents (walked here with od + awk, so no MongoDB tools are
# needed); gzip output decompresses to the plain output; usage errors exit 2 with a
# one-line reason on stderr. Skipped while main_zql.c does not route `gen` yet.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

run "$ZQL" gen --events 1 --seed 1
if [ "$STATUS" -ne 0 ] && ! grep -q '^zql gen:' "$TEST_TMP/stderr"; then
  skip_all 'zql gen is not wired into main_zql.c yet'
fi

# bson_docs FILE: the number of complete BSON documents that make up FILE exactly, or -1
bson_docs() {
  od -An -tu1 -v "$1" | awk '
    { for (i = 1; i <= NF; i++) b[n++] = $i }
    END {
      pos = 0; docs = 0
      while (pos + 4 <= n) {
        len = b[pos] + b[pos + 1] * 256 + b[pos + 2] * 65536 + b[pos + 3] * 16777216
        if (len < 5 || pos + len > n || b[pos + len - 1] != 0) { print -1; exit }
        pos += len; docs++
      }
      print (pos == n ? docs : -1)
    }'
}

# ---- NDJSON and determinism -------------------------------------------------------------
expect_exit 0 'zql gen --events 10 --seed 1 exits 0' "$ZQL" gen --events 10 --seed 1
cp "$TEST_TMP/stdout" a.json
ok 'it prints 10 lines' test "$(wc -l <a.json)" -eq 10
stdout_matches 'timestamps are extended-JSON dates in January 2024' \
  '^\{ "timestamp" : \{ "\$date" : "2024-01-0[1-8]T[0-9:.]+Z" \}, "type" : "[a-z_]+"'
stdout_matches 'events carry a context with a project' '"context" : \{.*"project" : '
run "$ZQL" gen --events 10 --seed 1
ok 'the same seed gives the same bytes' cmp -s a.json "$TEST_TMP/stdout"
run "$ZQL" gen --seed 2 --events 10
ok 'another seed gives other bytes' eval '! cmp -s a.json "$TEST_TMP/stdout"'
run "$ZQL" gen --events=10 --seed=1 -o b.json
ok '--opt=value and -o FILE write the same bytes' cmp -s a.json b.json

expect_exit 0 '--start and --days move the window' \
  "$ZQL" gen --events 200 --seed 3 --start 2011-07-01 --days 1
ok 'every timestamp is on 2011-07-01' \
  test "$(grep -c '"\$date" : "2011-07-01T' "$TEST_TMP/stdout")" -eq 200
expect_exit 0 '--events 0 is an empty output' "$ZQL" gen --events 0
ok 'nothing is printed' test ! -s "$TEST_TMP/stdout"

# ---- BSON and gzip ----------------------------------------------------------------------
expect_exit 0 'zql gen --format bson -o FILE exits 0' \
  "$ZQL" gen --events 10 --seed 1 --format bson -o ev.bson
ok 'the .bson file is exactly 10 complete documents' test "$(bson_docs ev.bson)" -eq 10
run "$ZQL" gen --events 10 --seed 1 --format bson
ok 'BSON on stdout (a pipe) is the same bytes' cmp -s ev.bson "$TEST_TMP/stdout"
# An independent BSON decoder reads it: bsondump when installed (Debian does not package
# it), else PyMongo's bson module from Debian's python3-bson (scripts/install-deps).
if command -v bsondump >/dev/null 2>&1; then
  expect_exit 0 'bsondump reads the file' bsondump --quiet ev.bson
else
  expect_exit 0 "PyMongo's bson.decode_all reads the file" /usr/bin/python3 -c \
    'import bson, sys; d = bson.decode_all(open(sys.argv[1], "rb").read()); sys.exit(0 if len(d) == 10 else 1)' ev.bson
fi
expect_exit 0 '-o FILE.gz writes gzip' "$ZQL" gen --events 10 --seed 1 -o ev.json.gz
ok 'the file starts with the gzip magic' \
  test "$(od -An -tx1 -N2 ev.json.gz | tr -d ' ')" = 1f8b
if command -v gzip >/dev/null 2>&1; then
  ok 'it decompresses to the plain output' eval 'gzip -dc ev.json.gz | cmp -s - a.json'
else
  skip 'it decompresses to the plain output' 'gzip is not installed'
fi

# ---- usage errors -----------------------------------------------------------------------
expect_exit 2 'missing --events exits 2' "$ZQL" gen --seed 1
stderr_matches 'it says what is missing' '^zql gen: missing --events'
expect_exit 2 'a non-numeric count exits 2' "$ZQL" gen --events ten
stderr_matches 'it quotes the bad value' "'ten'"
expect_exit 2 'a negative count exits 2' "$ZQL" gen --events -3
expect_exit 2 '--days 0 exits 2' "$ZQL" gen --events 1 --days 0
expect_exit 2 'an unknown format exits 2' "$ZQL" gen --events 1 --format xml
expect_exit 2 'a bad --start exits 2' "$ZQL" gen --events 1 --start 2024-02-30
expect_exit 2 'an unknown option exits 2' "$ZQL" gen --events 1 --frobnicate
expect_exit 2 'an option without its value exits 2' "$ZQL" gen --events 1 -o
expect_exit 1 'an unwritable output file exits 1' \
  "$ZQL" gen --events 1 -o "$TEST_TMP/no/such/dir/x.json"
stderr_matches 'it names the file' "no/such/dir/x.json"

# ---- into the event log -------------------------------------------------------------------
expect_exit 0 'zql --data D gen appends to the data directory' "$ZQL" --data gd gen --events 5000 --seed 9
stderr_matches 'it says where the events went' 'appended 5000 events to gd/events \(_seq 1\.\.5000\)'
expect_exit 0 'zql gen --log appends again' "$ZQL" gen --log --events 10 --seed 9 --data gd
expect_output '' 'and says nothing on stdout' "$ZQL" gen --log --events 1 --seed 9 --data gd -q
expect_exit 0 'the log holds 5011 events' "$ZQL" --data gd log stat
stdout_matches 'log stat counts them' '^total +1 +5011 '
expect_exit 0 'the generated events read back' "$ZQL" --data gd export --to 5000 --format bson -o gd.bson
run "$ZQL" gen --events 5000 --seed 9 --format bson -o plain.bson
ok 'the log added _id (13 bytes) to each of the 5000 events and changed nothing else' \
  test "$(wc -c <gd.bson)" -eq "$(( $(wc -c <plain.bson) + 5000 * 13 ))"
expect_exit 0 '-o - writes to stdout even with --data' "$ZQL" --data gd gen --events 2 --seed 9 -o -
ok 'two lines' test "$(wc -l <"$TEST_TMP/stdout")" -eq 2
expect_exit 2 '--log and -o are exclusive' "$ZQL" gen --log --events 1 -o x.json

done_testing
