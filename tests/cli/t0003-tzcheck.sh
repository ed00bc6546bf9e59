#!/bin/sh
# t0003-tzcheck.sh -- zql's own TZif reader (runtime/base/tz.c) against glibc's localtime_r
# on every zone of the installed tzdata, for a deterministic sample of instants from 1901
# to 2100 and every transition (tests/unit/tzcheck.c). design/ZQL.md R10 requires the
# engine's own reader; this is the proof that it agrees with the system's.
. "${ZQL_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

tzcheck=$ZQL_BUILDDIR/tests/unit/tzcheck
[ -x "$tzcheck" ] || skip_all "tests/unit/tzcheck is not built"
[ -d /usr/share/zoneinfo ] || skip_all "no tzdata installed"

expect_exit 0 'every zone agrees with glibc at every sampled instant' "$tzcheck"
stdout_matches 'it reports zero mismatches' ', 0 mismatches'
stdout_matches 'it checked hundreds of zones' '[0-9]{3,} zones'
expect_exit 2 'an unknown option is a usage error' "$tzcheck" --no-such-option

done_testing
