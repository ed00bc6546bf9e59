#!/bin/sh
# t0020-bench-smoke.sh -- the event log benchmark (bench/bench_evlog.c) still builds, runs
# and prints its tables, so that it cannot rot between `make bench` runs. A --quick run
# only: timings are printed by the benchmark and never asserted here.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

BENCH=$ZQL_BUILDDIR/bench/bench_evlog
if [ ! -x "$BENCH" ]; then
  skip_all "bench/bench_evlog is not built (make check builds it)"
fi

expect_exit 0 'bench_evlog --quick runs in a directory under --dir' "$BENCH" --quick --dir "$TEST_TMP"
stdout_matches 'it prints the exact command line' '^command: .*bench_evlog --quick --dir '
stdout_matches 'the append table has its header' '^policy +batch +thr +what +events +seconds +events/s +MB/s +vs limit'
for p in always batch none; do
  stdout_matches "a disk-limit row for $p" "^$p +1000 .*limit: "
  stdout_matches "an append row for $p with a ratio" "^$p +1000 .*zql_evlog_append .*%\$"
done
stdout_matches 'the raw write row' '^none .*limit: raw write, no sync'
stdout_matches 'the scan rows: libbson read() walk' '^bson_reader_new_from_file'
stdout_matches 'the mmap walk' '^bson_reader_new_from_data over mmap'
stdout_matches 'and the evlog cursor with a ratio' '^zql_evlog cursor, full _seq range .*%$'
stdout_matches 'it finishes' '^done$'
ok 'it removed its work directory' sh -c '! ls -d bench-evlog.* >/dev/null 2>&1'
expect_exit 2 'an unknown option is a usage error' "$BENCH" --bogus
done_testing
