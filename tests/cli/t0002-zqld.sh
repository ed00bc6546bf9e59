#!/bin/sh
# t0002-zqld.sh -- the `zqld` command-line contract: --version, --help, usage errors.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

expect_output 'zqld 0.1.0' 'zqld --version prints "zqld 0.1.0"' "$ZQLD" --version
expect_exit 0 'zqld --help exits 0' "$ZQLD" --help
ok 'zqld --help prints something' test -s "$TEST_TMP/stdout"
expect_exit 2 'an unknown option exits 2' "$ZQLD" --no-such-option
stderr_matches 'an unknown option points to the usage on stderr' '[Uu]sage|--help'

done_testing
