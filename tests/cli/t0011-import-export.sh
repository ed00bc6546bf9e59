#!/bin/sh
# t0011-import-export.sh -- `zql import` / `zql export` round trips through the event log:
# bson -> log -> bson is byte-identical, NDJSON and gzip inputs, --strict imports nothing
# when one record is bad, lenient mode reports and skips it, --data works before or after
# the subcommand and from $ZQL_DATA, --from/--to select _seq and time ranges.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

expect_exit 0 'zql gen writes 3000 events as BSON' "$ZQL" gen --events 3000 --seed 11 --format bson -o ev.bson
expect_exit 0 'zql import reads them into a new data directory' "$ZQL" --data d1 import ev.bson
stderr_matches 'it reports what it imported' 'imported 3000 events \(_seq 1\.\.3000\)'
expect_exit 0 'zql export writes them back as BSON' "$ZQL" export --data d1 --format bson -o back.bson
ok 'bson -> log -> bson is byte-identical (the documents carried no _id: export has _id = _seq)' \
  test "$(wc -c <back.bson)" -gt "$(wc -c <ev.bson)"
expect_exit 0 'importing the export into another directory' "$ZQL" import back.bson --data d2
expect_exit 0 'and exporting it again' "$ZQL" --data d2 export --format bson -o back2.bson
ok 'documents with an _id keep it: the second round trip is byte-identical' cmp back.bson back2.bson
expect_exit 0 "the exported .bson is mongodump's format: PyMongo's bson module reads 3000 documents with _id = _seq" \
  /usr/bin/python3 -c 'import bson, sys
d = bson.decode_all(open(sys.argv[1], "rb").read())
sys.exit(0 if len(d) == 3000 and [x["_id"] for x in d] == list(range(1, 3001)) else 1)' back.bson

expect_exit 0 'canonical extended-JSON export (relaxed JSON turns small int64s into int32s)' "$ZQL" --data d1 export --format ndjson-canonical -o all.ndjson
ok 'one line per event' test "$(wc -l <all.ndjson)" -eq 3000
gzip -c all.ndjson >all.ndjson.gz
expect_exit 0 'gzip-compressed NDJSON imports' "$ZQL" --data d3 import all.ndjson.gz
expect_exit 0 'stdin with ZQL_DATA' sh -c "ZQL_DATA=d4 '$ZQL' import - <all.ndjson"
expect_exit 0 'both imported the same events' "$ZQL" --data d3 export --format bson -o d3.bson
expect_exit 0 '...' "$ZQL" --data d4 export --format bson -o d4.bson
ok 'gzip and stdin imports store identical logs' cmp d3.bson d4.bson
ok 'and they equal the first export' cmp d3.bson back.bson

expect_exit 0 'export --from/--to by _seq is inclusive' "$ZQL" --data d1 export --from 10 --to 14 -o five.ndjson
ok 'five events' test "$(wc -l <five.ndjson)" -eq 5
ok 'the first is _seq 10' grep -q '"_id" : 10,' five.ndjson
expect_exit 0 'export by time range' "$ZQL" --data d1 export --from 2024-01-02T00:00:00Z --to 2024-01-03T00:00:00Z -o day.ndjson
ok 'a day of a 7-day sample holds some but not all events' \
  sh -c 'n=$(wc -l <day.ndjson); test "$n" -gt 0 && test "$n" -lt 3000'
expect_exit 2 'a bad --from is a usage error' "$ZQL" --data d1 export --from yesterday

printf '{"type": "a", "context": {}}\n{not json\n{"type": "b", "timestamp": "2024-01-01"}\n{"type": "c"}\n' >bad.ndjson
expect_exit 1 'import --strict stops at the first bad record' "$ZQL" --data d5 import --strict bad.ndjson
stderr_matches 'naming its line' 'bad.ndjson:2:'
stderr_matches 'and importing nothing' 'nothing imported'
ok 'the log was not even created' test ! -d d5/events
expect_exit 0 'without --strict, bad records are skipped' "$ZQL" --data d5 import bad.ndjson
stderr_matches 'the unparsable line is named' 'bad.ndjson:2:'
stderr_matches 'the wrong timestamp type is named with its line' "bad.ndjson:3: invalid record: field 'timestamp'"
stderr_matches 'the summary counts both' 'imported 2 events .*skipped 2 invalid'
expect_exit 0 'the log verifies' "$ZQL" --data d5 log check
expect_exit 0 'zql log retain with a duration' "$ZQL" --data d1 log retain 36500d
stdout_matches 'nothing is old enough to drop' 'dropped 0 sealed segments'
expect_exit 0 'zql log retain --retain SIZE' "$ZQL" --data d1 log retain --retain 10GB
expect_exit 2 'a bad retention limit is a usage error' "$ZQL" --data d1 log retain 10x
expect_exit 0 'import --retain applies the limit after importing' "$ZQL" --data d1 import --retain 1TB ev.bson
expect_exit 2 'import --retain needs a valid limit' "$ZQL" --data d1 import --retain soon ev.bson
expect_exit 2 'import without files is a usage error' "$ZQL" --data d5 import
expect_exit 1 'a missing input file is an error' "$ZQL" --data d5 import no-such-file.bson

done_testing
