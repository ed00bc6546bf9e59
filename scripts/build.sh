# scripts/build.sh -- build steps shared by scripts/test, scripts/demo and .ci/run.
# Sourced (POSIX sh, also bash with set -u); defines functions and changes nothing else.
#
#   zql_build           install-deps, autoreconf if needed, configure if needed, make -j2:
#                       an in-tree build in the top source directory ($ZQL_TOP), reusing
#                       an existing configuration. Returns non-zero on the first failure.
#   zql_trs_files DIR   the automake .trs files of the build rooted at DIR (skipping the
#                       other builds that can live inside it: build-san/, build-fuzz/,
#                       zql-*/ left by make distcheck)
#   zql_summary DIR...  "PASSED FAILED SKIPPED" counted over those .trs files: one result
#                       per TAP line or golden test; XFAIL counts as passed, ERROR and
#                       XPASS as failed
#   zql_failed_logs DIR print the .log of every test of DIR that failed
#
# Environment: ZQL_CONFIGURE_FLAGS (extra ./configure flags), ZQL_SKIP_DEPS=1 (do not
# run scripts/install-deps), MAKE (default make).

ZQL_TOP=$(cd "$(dirname "$0")/.." && pwd)
: "${MAKE:=make}"

zql_step() {
  echo "==== $* ===="
}

zql_install_deps() {
  if [ "${ZQL_SKIP_DEPS:-0}" = 1 ]; then
    return 0
  fi
  sh "$ZQL_TOP/scripts/install-deps"
}

zql_configure() {
  cd "$ZQL_TOP" || return 1
  if [ ! -x configure ] || [ ! -f Makefile.in ] || [ configure.ac -nt configure ]; then
    zql_step "autoreconf -fi"
    autoreconf -fi || return 1
  fi
  if [ ! -f config.status ] || [ ! -f Makefile ]; then
    zql_step "./configure --enable-werror ${ZQL_CONFIGURE_FLAGS:-}"
    # shellcheck disable=SC2086
    ./configure --enable-werror ${ZQL_CONFIGURE_FLAGS:-} || return 1
  fi
}

zql_build() {
  zql_install_deps || return 1
  zql_configure || return 1
  zql_step "$MAKE -j2"
  cd "$ZQL_TOP" && $MAKE -j2
}

zql_trs_files() {
  find "$1" \( -path "$1/.git" -o -path "$1/build-san" -o -path "$1/build-fuzz" \
    -o -path "$1/zql-*" \) -prune -o -type f -name '*.trs' -print 2>/dev/null | LC_ALL=C sort
}

zql_summary() {
  for _zb_dir in "$@"; do
    zql_trs_files "$_zb_dir"
  done | while IFS= read -r _zb_f; do
    cat "$_zb_f"
  done | awk '
    $1 == ":test-result:" {
      if ($2 == "PASS" || $2 == "XFAIL") p++
      else if ($2 == "SKIP") s++
      else f++ # FAIL, ERROR, XPASS
    }
    END { printf "%d %d %d\n", p, f, s }'
}

zql_failed_logs() {
  zql_trs_files "$1" | while IFS= read -r _zb_f; do
    if grep -q -E '^:test-result: (FAIL|ERROR|XPASS)' "$_zb_f"; then
      echo "==== ${_zb_f%.trs}.log ===="
      head -n 200 "${_zb_f%.trs}.log" 2>/dev/null
    fi
  done
}
