#!/bin/sh
# run-fuzz.sh -- build the libFuzzer targets with clang + ASan + UBSan and fuzz the front end.
#
#   tests/fuzz/run-fuzz.sh [SECONDS [TARGET]]   (default 600 parse)
#
# TARGET is parse (the ZQL front end, fuzz_parse), ioformat (the import path:
# format detection, gzip, BSON framing, extended JSON; fuzz_ioformat) or plan (compiled
# .zqlc plans: the reader's checks, binding and running them; fuzz_plan) or ingest (zqld's
# event decoding: BSON and JSON frames, HTTP bodies; fuzz_ingest).
#
# Builds in its own directory, $ZQL_FUZZ_DIR (default build-fuzz/ in the source tree), so
# it never disturbs a normal build: from a VPATH build when the source tree is not
# configured, else from a clean copy made by `make distdir` (automake refuses VPATH
# builds of a configured source tree). The whole library is compiled with
# -fsanitize=fuzzer-no-link so libFuzzer sees coverage inside the parser, not only in the
# target's own file.
#
# The corpus (build-fuzz/corpus, kept between runs) is seeded from examples/*.zql,
# tests/*/*.zql and the ```zql blocks of docs/language.md. Crashes are written to
# build-fuzz/artifacts/; reproduce one with
#   build-fuzz/build/tests/fuzz/fuzz_parse build-fuzz/artifacts/crash-...
# The last line printed is libFuzzer's "Done N runs in S second(s)".
set -eu

here=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-600}
target=${2:-parse}
case $target in
  parse | ioformat | plan | ingest) ;;
  *) echo "run-fuzz: unknown target '$target' (parse, ioformat, plan or ingest)" >&2; exit 2 ;;
esac
work=${ZQL_FUZZ_DIR:-$here/build-fuzz}
build=$work/build

if ! command -v clang >/dev/null 2>&1; then
  echo "run-fuzz: clang is needed; run scripts/install-deps --fuzz" >&2
  exit 1
fi
mkdir -p "$work" "$work/corpus" "$work/artifacts"

# ---- build ------------------------------------------------------------------------------
if [ ! -x "$build/tests/fuzz/fuzz_$target" ] || [ "${ZQL_FUZZ_REBUILD:-0}" = 1 ]; then
  rm -rf "$build"
  [ -x "$here/configure" ] || (cd "$here" && autoreconf -fi)
  if [ -f "$here/config.status" ]; then
    # configured in place: build from a clean copy of the distributed files
    (cd "$here" && make distdir distdir="$build") >"$work/distdir.log" 2>&1 || {
      cat "$work/distdir.log" >&2
      exit 1
    }
    confdir=.
  else
    mkdir -p "$build"
    confdir=$here
  fi
  cd "$build"
  CC=clang CFLAGS="-g -O1 -fsanitize=fuzzer-no-link" \
    "$confdir/configure" --enable-fuzz --enable-asan --enable-ubsan \
    --enable-static --disable-shared \
    >"$work/configure.log" 2>&1 || {
    tail -n 30 "$work/configure.log" >&2
    exit 1
  }
  # `make` first: it makes BUILT_SOURCES (errcodes.h, gram.h), and with --enable-fuzz
  # the fuzz targets are part of it; `make fuzz` names the target we need
  make -j2 >"$work/make.log" 2>&1 || {
    tail -n 40 "$work/make.log" >&2
    exit 1
  }
  make fuzz >>"$work/make.log" 2>&1
fi
cd "$build"

# ---- seeds ------------------------------------------------------------------------------
seeds=$work/seeds-$target
rm -rf "$seeds"
mkdir -p "$seeds"
if [ "$target" = ioformat ]; then
  # small files of every input format zql import reads, made by zql itself
  z=$build/zql
  "$z" gen --events 20 --seed 1 -o "$seeds/ndjson.json" 2>/dev/null
  "$z" gen --events 20 --seed 2 --format bson -o "$seeds/dump.bson" 2>/dev/null
  "$z" gen --events 20 --seed 3 --format ndjson-canonical -o "$seeds/canonical.json" 2>/dev/null
  "$z" gen --events 20 --seed 4 -o "$seeds/ndjson.json.gz" 2>/dev/null
  printf '{"type": "x", "timestamp": {"$datetime": 1300000000.5}}\n' >"$seeds/zarkov.json"
  dict=
elif [ "$target" = ingest ]; then
  # the first byte picks the decoder: 0 BSON frame, 1 JSON frame, 2 NDJSON body, 3 JSON
  # body, 4 gzipped body
  z=$build/zql
  "$z" gen --events 1 --seed 1 --format bson -o "$seeds/one.bson" 2>/dev/null
  { printf '\000'; cat "$seeds/one.bson"; } >"$seeds/bson-frame"
  rm -f "$seeds/one.bson"
  printf '\001{"type": "x", "context": {"u": 1}, "timestamp": {"$datetime": 1300000000.5}}' \
    >"$seeds/json-frame"
  { printf '\002'; "$z" gen --events 5 --seed 2 -o - 2>/dev/null; } >"$seeds/ndjson-body"
  printf '\003[{"type": "a"}, {"type": "b", "$command": "event_noval"}]' >"$seeds/array-body"
  { printf '\004'; "$z" gen --events 5 --seed 3 -o - 2>/dev/null | gzip -c; } >"$seeds/gzip-body"
  dict=
elif [ "$target" = plan ]; then
  # compiled plans of the examples and of the plan and query goldens, made by zql compile
  for f in "$here"/examples/*.zql "$here"/tests/plan/*.zql "$here"/tests/queries/*.zql; do
    [ -f "$f" ] || continue
    d=$(basename "$(dirname "$f")")
    "$build/zql" compile "$f" -o "$seeds/$d-$(basename "$f" .zql).zqlc" 2>/dev/null || true
  done
  dict=
else
  for f in "$here"/examples/*.zql "$here"/tests/*/*.zql; do
    [ -f "$f" ] || continue
    d=$(basename "$(dirname "$f")")
    cp "$f" "$seeds/$d-$(basename "$f")"
  done
  if [ -f "$here/docs/language.md" ]; then
    (cd "$seeds" && awk '
      /^[ \t]*```/ {
        if (!inside && $0 ~ /^[ \t]*```zql[ \t]*$/) { inside = 1; n++; f = sprintf("language-%02d.zql", n); printf "" > f; next }
        if (inside) { inside = 0; close(f); next }
      }
      inside { print > f }' "$here/docs/language.md")
  fi
  dict=-dict=$here/tests/fuzz/zql.dict
fi
echo "run-fuzz: $(ls "$seeds" | wc -l) seed files, fuzzing for ${secs}s"

# ---- fuzz -------------------------------------------------------------------------------
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS UBSAN_OPTIONS
rc=0
mkdir -p "$work/corpus-$target"
# shellcheck disable=SC2086
./tests/fuzz/fuzz_$target -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 \
  -max_len=65536 $dict -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus-$target" "$seeds" >"$work/fuzz.log" 2>&1 || rc=$?
if [ $rc -ne 0 ]; then
  tail -n 60 "$work/fuzz.log"
  echo "run-fuzz: FAILED (status $rc); artifacts in $work/artifacts, log in $work/fuzz.log"
fi
grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$work/fuzz.log" || true
exit $rc
