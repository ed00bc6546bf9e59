#!/bin/sh
# t0002-zqld.sh -- the `zqld` command-line contract: --version, --help, usage errors, and
# --check-config, and --check, which loads aggregate definitions and prints the schedule it would run.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

expect_output 'zqld 0.1.0' 'zqld --version prints "zqld 0.1.0"' "$ZQLD" --version
expect_exit 0 'zqld --help exits 0' "$ZQLD" --help
ok 'zqld --help prints something' test -s "$TEST_TMP/stdout"
expect_exit 2 'an unknown option exits 2' "$ZQLD" --no-such-option
stderr_matches 'an unknown option points to the usage on stderr' '[Uu]sage|--help'

expect_exit 2 'an option without its value exits 2' "$ZQLD" --data
expect_exit 0 'zqld --check-config prints the effective configuration' "$ZQLD" --check-config --data cfgdata
stdout_matches 'a flag wins and says where it came from' '^zqld.data = cfgdata  # flag$'
stdout_matches 'defaults are listed too' '^ingest.bson = tcp://127.0.0.1:6543  # default$'
expect_exit 1 'an unknown key is a configuration error: exit 1' "$ZQLD" --check-config --set ingest.bosn=1
stderr_matches 'it suggests the key meant' "unknown key 'ingest.bosn'; did you mean 'ingest.bson'"
expect_exit 2 'zqld --check without files exits 2' "$ZQLD" --check

cat >daily.zql <<'ZQL'
aggregate daily from event group by type compute n = count() schedule every 5s;
aggregate monthly from agg daily group by type compute n = merge(n) schedule after daily;
aggregate adhoc_only from event compute n = count();
ZQL
expect_exit 0 'zqld --check accepts valid definitions' "$ZQLD" --check daily.zql
stdout_matches 'it prints the every-schedule' 'aggregate daily: every 5s'
stdout_matches 'it prints the after-schedule' 'aggregate monthly: after daily'
stdout_matches 'it says when an aggregate has no schedule' 'adhoc_only: run on demand'

printf 'aggregate broken from event compute n = cuont();\n' >broken.zql
expect_exit 1 'zqld --check rejects an invalid definition' "$ZQLD" --check daily.zql broken.zql
stderr_matches 'with the error located in its file' 'broken.zql:1:[0-9]+: error: unknown function'

done_testing
