/*
 * test_zqld_config.c -- unit tests of zqld's configuration (runtime/zqld_config.c).
 *
 * Covers: the key table (every default parses, prints back to itself and is what init
 * stores; environment names; lookups), each value parser with its exact error reasons,
 * size and duration formatting (round trips), the INI reader (comments, quotes and
 * escapes, CRLF, a byte order mark, every kind of error collected with its line and a
 * "did you mean" hint), files, environment variables, --set flags, the priority of the
 * sources regardless of call order, every cross-key check of validate(), the
 * --check-config output (which, turned back into INI, reloads to the same values), and
 * out-of-memory at every allocation.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"
#include "runtime/evlog.h"
#include "runtime/log.h"
#include "runtime/zqld_config.h"

int zql_unit_zqld_config(void);

/* ==== helpers ==== */

#define S(lit) ((char *)(lit)) /* environ holds char *, literals are const */

static int load(zql_zqld_config_t *cfg, const char *text, zql_zqld_errs_t *errs)
{
  return zql_zqld_config_load_text(cfg, "t.conf", text, strlen(text), errs);
}

/* Assert that errs holds exactly the given messages, in order (NULL-terminated). */
static void expect_errs(const zql_zqld_errs_t *errs, ...)
{
  va_list ap;
  va_start(ap, errs);
  size_t i = 0;
  const char *want;
  while ((want = va_arg(ap, const char *)) != NULL) {
    if (i >= errs->n)
      fail_msg("missing error %zu: %s", i, want);
    if (strcmp(errs->items[i], want) != 0)
      fail_msg("error %zu:\n  got  %s\n  want %s", i, errs->items[i], want);
    i++;
  }
  va_end(ap);
  if (i != errs->n)
    fail_msg("unexpected error %zu: %s", i, errs->items[i]);
  assert_false(errs->oom);
}

static char *print_to_string(const zql_zqld_config_t *cfg)
{
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  assert_non_null(f);
  zql_zqld_config_print(cfg, f);
  fclose(f);
  return buf;
}

static char tmpdir[] = "/tmp/zqld_config_XXXXXX";

static int setup_dir(void **state)
{
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* ==== the table ==== */

static void test_table_and_defaults(void **state)
{
  zql_zqld_config_t cfg;
  zql_zqld_config_init(&cfg);
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  for (int k = 0; k < ZQL_ZQLD_NKEYS; k++) {
    const zql_zqld_keyinfo_t *in = zql_zqld_config_key((zql_zqld_key_t)k);
    assert_non_null(in);
    /* the default, printed, is the table's text */
    zql_strbuf_reset(&sb);
    zql_zqld_config_format(&cfg, (zql_zqld_key_t)k, &sb);
    assert_string_equal(sb.buf, in->def);
    assert_int_equal(cfg.origin[k].src, ZQL_ZQLD_SRC_DEFAULT);
    /* ZQLD_<SECTION>_<KEY> */
    char env[96];
    int n = snprintf(env, sizeof env, "ZQLD_%s_%s", in->section, in->key);
    for (int i = 0; i < n; i++)
      if (env[i] >= 'a' && env[i] <= 'z')
        env[i] = (char)(env[i] - 32);
    assert_string_equal(in->env, env);
    /* lookups */
    assert_int_equal(zql_zqld_config_find(in->section, in->key), k);
    char dotted[96];
    snprintf(dotted, sizeof dotted, "%s.%s", in->section, in->key);
    assert_int_equal(zql_zqld_config_find_dotted(dotted), k);
    assert_true(in->help && *in->help);
    assert_true(in->allow_empty || *in->def);
  }
  zql_strbuf_release(&sb);
  assert_null(zql_zqld_config_key(ZQL_ZQLD_NKEYS));
  assert_int_equal(zql_zqld_config_find("ingest", "nope"), -1);
  assert_int_equal(zql_zqld_config_find("http", "bson"), -1);
  assert_int_equal(zql_zqld_config_find_dotted("ingest"), -1);
  assert_int_equal(zql_zqld_config_find_dotted("ingest.bson.x"), -1);
  assert_int_equal(zql_zqld_config_find_dotted("ingestx.bson"), -1);

  /* the typed fields (docs/zqld.md and zqld.md's table) */
  assert_string_equal(cfg.data_dir, "/var/lib/zql");
  assert_int_equal(cfg.log_level, ZQL_LOG_INFO);
  assert_string_equal(cfg.pid_file, "");
  assert_string_equal(cfg.ingest_bson, "tcp://127.0.0.1:6543");
  assert_string_equal(cfg.ingest_json, "tcp://127.0.0.1:6544");
  assert_string_equal(cfg.ingest_acked, "tcp://127.0.0.1:6546");
  assert_string_equal(cfg.ingest_pub, "tcp://127.0.0.1:6545");
  assert_int_equal(cfg.fsync, ZQL_EVLOG_SYNC_BATCH);
  assert_int_equal(cfg.fsync_interval_ms, 10);
  assert_int_equal(cfg.queue_events, 65536);
  assert_int_equal(cfg.queue_bytes, 64ull << 20);
  assert_int_equal(cfg.max_event_bytes, 1ull << 20);
  assert_int_equal(cfg.hwm, 10000);
  assert_string_equal(cfg.dead_letter, "");
  assert_string_equal(cfg.http_listen, "127.0.0.1:8081");
  assert_string_equal(cfg.http_tokens_file, "");
  assert_int_equal(cfg.http_max_body, 64ull << 20);
  assert_string_equal(cfg.curve_secret_key_file, "");
  assert_string_equal(cfg.curve_allow_file, "");
  assert_int_equal(cfg.max_parallel, 2);
  assert_int_equal(cfg.retry_min_ms, 1000);
  assert_int_equal(cfg.retry_max_ms, 300000);
  assert_int_equal(cfg.settle_ms, 200);
  assert_int_equal(cfg.threads_per_run, 1);
  assert_int_equal(cfg.retain_ms, 0);
  assert_int_equal(cfg.retain_bytes, 0);
  assert_string_equal(cfg.file, "");
  zql_zqld_config_free(&cfg);

  assert_string_equal(zql_zqld_type_name(ZQL_ZQLD_T_SIZE), "size");
  assert_string_equal(zql_zqld_type_name(ZQL_ZQLD_T_LEVEL), "level");
  assert_string_equal(zql_zqld_src_name(ZQL_ZQLD_SRC_ENV), "env");
  assert_string_equal(zql_zqld_src_name(ZQL_ZQLD_SRC_FLAG), "flag");
}

/* ==== value parsers ==== */

static void test_parse_int(void **state)
{
  int64_t v;
  assert_null(zql_zqld_parse_int("0", &v));
  assert_int_equal(v, 0);
  assert_null(zql_zqld_parse_int("65536", &v));
  assert_int_equal(v, 65536);
  assert_null(zql_zqld_parse_int("-12", &v));
  assert_int_equal(v, -12);
  assert_null(zql_zqld_parse_int("+7", &v));
  assert_int_equal(v, 7);
  assert_null(zql_zqld_parse_int("9223372036854775807", &v));
  assert_int_equal(v, INT64_MAX);
  assert_null(zql_zqld_parse_int("-9223372036854775808", &v));
  assert_true(v == INT64_MIN);
  assert_string_equal(zql_zqld_parse_int("9223372036854775808", &v), "too large");
  assert_string_equal(zql_zqld_parse_int("99999999999999999999999", &v), "too large");
  assert_string_equal(zql_zqld_parse_int("", &v), "not an integer");
  assert_string_equal(zql_zqld_parse_int("-", &v), "not an integer");
  assert_string_equal(zql_zqld_parse_int("12k", &v), "not an integer");
  assert_string_equal(zql_zqld_parse_int("1.5", &v), "not an integer");
  assert_string_equal(zql_zqld_parse_int(" 1", &v), "not an integer");
}

static void test_parse_size(void **state)
{
  static const struct {
    const char *s;
    uint64_t v;
  } ok[] = {{"0", 0},
            {"1500", 1500},
            {"12B", 12},
            {"1K", 1024},
            {"1k", 1024},
            {"2KiB", 2048},
            {"2kib", 2048},
            {"3KB", 3000},
            {"64MiB", 64ull << 20},
            {"64M", 64ull << 20},
            {"64 MiB", 64ull << 20},
            {"5MB", 5000000},
            {"1G", 1ull << 30},
            {"1GiB", 1ull << 30},
            {"2GB", 2000000000},
            {"1T", 1ull << 40},
            {"1TiB", 1ull << 40},
            {"1TB", 1000000000000ull}};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(ok); i++) {
    uint64_t v = 99;
    const char *why = zql_zqld_parse_size(ok[i].s, &v);
    if (why)
      fail_msg("%s: %s", ok[i].s, why);
    assert_int_equal(v, ok[i].v);
  }
  uint64_t v;
  const char *unit = "unknown unit (B, K/KiB, M/MiB, G/GiB, T/TiB are powers of 1024; KB, "
                     "MB, GB, TB powers of 1000)";
  const char *nan = "not a size (a whole number with an optional unit, such as 64MiB)";
  assert_string_equal(zql_zqld_parse_size("16777216T", &v), "too large"); /* 2^64 */
  assert_null(zql_zqld_parse_size("16777215T", &v));
  assert_string_equal(zql_zqld_parse_size("18446744073709551616", &v), "too large");
  assert_null(zql_zqld_parse_size("18446744073709551615", &v));
  assert_true(v == UINT64_MAX);
  assert_string_equal(zql_zqld_parse_size("64XB", &v), unit);
  assert_string_equal(zql_zqld_parse_size("64Mi", &v), unit);
  assert_string_equal(zql_zqld_parse_size("64MiBs", &v), unit);
  assert_string_equal(zql_zqld_parse_size("1.5G", &v), nan);
  assert_string_equal(zql_zqld_parse_size("", &v), nan);
  assert_string_equal(zql_zqld_parse_size("MiB", &v), nan);
  assert_string_equal(zql_zqld_parse_size("-1", &v), nan);
}

static void test_parse_duration(void **state)
{
  static const struct {
    const char *s;
    int64_t ms;
  } ok[] = {{"0", 0},         {"10ms", 10},      {"1s", 1000},       {"5m", 300000},
            {"2h", 7200000},  {"1d", 86400000},  {"2w", 1209600000}, {"1h30m", 5400000},
            {"1m30s", 90000}, {"1s500ms", 1500}, {"0s", 0},          {"1w1d1h1m1s1ms", 694861001}};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(ok); i++) {
    int64_t v = -1;
    const char *why = zql_zqld_parse_duration(ok[i].s, &v);
    if (why)
      fail_msg("%s: %s", ok[i].s, why);
    assert_int_equal(v, ok[i].ms);
  }
  int64_t v;
  assert_string_equal(zql_zqld_parse_duration("10", &v), "a unit is required: ms, s, m, h, d or w");
  assert_string_equal(zql_zqld_parse_duration("1h10", &v),
                      "a unit is required: ms, s, m, h, d or w");
  assert_string_equal(zql_zqld_parse_duration("10y", &v), "unknown unit (ms, s, m, h, d or w)");
  assert_string_equal(zql_zqld_parse_duration("10S", &v), "unknown unit (ms, s, m, h, d or w)");
  assert_string_equal(zql_zqld_parse_duration("30m1h", &v),
                      "units must go from the largest to the smallest, each once (1h30m)");
  assert_string_equal(zql_zqld_parse_duration("1s1s", &v),
                      "units must go from the largest to the smallest, each once (1h30m)");
  assert_string_equal(zql_zqld_parse_duration("", &v), "not a duration");
  assert_string_equal(zql_zqld_parse_duration("-1s", &v),
                      "not a duration (integer and unit parts such as 10ms, 5m or 1h30m)");
  assert_string_equal(zql_zqld_parse_duration("1.5s", &v),
                      "not a duration (integer and unit parts such as 10ms, 5m or 1h30m)");
  assert_string_equal(zql_zqld_parse_duration("1 s", &v),
                      "a unit is required: ms, s, m, h, d or w");
  assert_string_equal(zql_zqld_parse_duration("99999999999999999999ms", &v), "too large");
  assert_string_equal(zql_zqld_parse_duration("9223372036854775w", &v), "too large");
  assert_string_equal(zql_zqld_parse_duration("9223372036854775000ms", &v) ? "x" : "ok", "ok");
  assert_string_equal(zql_zqld_parse_duration("1s9223372036854775000ms", &v), "too large");
}

static void test_format_round_trip(void **state)
{
  char buf[48];
  static const struct {
    int64_t ms;
    const char *s;
  } d[] = {{0, "0"},           {10, "10ms"},     {1000, "1s"},           {90000, "1m30s"},
           {5400000, "1h30m"}, {86400000, "1d"}, {7 * 86400000LL, "7d"}, {86400000LL + 1, "1d1ms"},
           {1500, "1s500ms"}};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(d); i++) {
    zql_zqld_format_duration(d[i].ms, buf, sizeof buf);
    assert_string_equal(buf, d[i].s);
  }
  static const struct {
    uint64_t v;
    const char *s;
  } z[] = {{0, "0"},
           {1, "1"},
           {1000, "1000"},
           {1024, "1KiB"},
           {1536, "1536"},
           {3ull << 20, "3MiB"},
           {1ull << 30, "1GiB"},
           {5ull << 40, "5TiB"},
           {(1ull << 30) + 1024, "1048577KiB"},
           {UINT64_MAX, "18446744073709551615"}};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(z); i++) {
    zql_zqld_format_size(z[i].v, buf, sizeof buf);
    assert_string_equal(buf, z[i].s);
  }
  /* parse(format(x)) == x over a spread of values */
  uint64_t x = 88172645463325252ull; /* xorshift64 (Marsaglia 2003) */
  for (int i = 0; i < 20000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    uint64_t sz = x >> (x % 64);
    uint64_t back;
    zql_zqld_format_size(sz, buf, sizeof buf);
    assert_null(zql_zqld_parse_size(buf, &back));
    assert_true(back == sz);
    int64_t ms = (int64_t)(x >> (1 + x % 63)), msb;
    zql_zqld_format_duration(ms, buf, sizeof buf);
    assert_null(zql_zqld_parse_duration(buf, &msb));
    assert_true(msb == ms);
  }
}

static void test_parse_endpoint_address(void **state)
{
  static const char *const good[] = {"tcp://127.0.0.1:6543",
                                     "tcp://*:6543",
                                     "tcp://[::1]:1",
                                     "tcp://[::]:65535",
                                     "tcp://localhost:6543",
                                     "tcp://eth0:6543",
                                     "tcp://my-host.example.com:80",
                                     "ipc:///run/zql/bson.sock",
                                     "ipc://@abstract"};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(good); i++) {
    const char *why = zql_zqld_parse_endpoint(good[i]);
    if (why)
      fail_msg("%s: %s", good[i], why);
  }
  static const struct {
    const char *s, *why;
  } bad[] = {
      {"127.0.0.1:6543", "expected tcp://HOST:PORT or ipc://PATH"},
      {"udp://1.2.3.4:5", "expected tcp://HOST:PORT or ipc://PATH"},
      {"inproc://x", "inproc:// endpoints cannot be reached by other processes"},
      {"ipc://", "ipc:// needs a path"},
      {"tcp://127.0.0.1", "expected HOST:PORT"},
      {"tcp://:6543", "expected HOST:PORT"},
      {"tcp://127.0.0.1:", "a port is required"},
      {"tcp://127.0.0.1:*", "a fixed port is required"},
      {"tcp://127.0.0.1:0", "bad port (a number from 1 to 65535)"},
      {"tcp://127.0.0.1:65536", "bad port (a number from 1 to 65535)"},
      {"tcp://127.0.0.1:12a", "bad port (a number from 1 to 65535)"},
      {"tcp://127.0.0.256:1", "bad IPv4 address"},
      {"tcp://1.2.3:1", "bad IPv4 address"},
      {"tcp://::1:6543", "bad host (write an IPv6 address in brackets: [::1]:PORT)"},
      {"tcp://[::g]:6543", "bad IPv6 address (write [::1]:PORT)"},
      {"tcp://[::1:6543", "bad IPv6 address (write [::1]:PORT)"},
      {"tcp://a b:1", "bad host (an IP address, a name or *)"},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(bad); i++) {
    const char *why = zql_zqld_parse_endpoint(bad[i].s);
    if (!why || strcmp(why, bad[i].why) != 0)
      fail_msg("%s: got '%s', want '%s'", bad[i].s, why ? why : "(ok)", bad[i].why);
  }
  char longipc[200] = "ipc://";
  memset(longipc + 6, 'p', 108);
  assert_string_equal(zql_zqld_parse_endpoint(longipc), "ipc:// path longer than 107 bytes");
  longipc[6 + 107] = '\0';
  assert_null(zql_zqld_parse_endpoint(longipc));

  assert_null(zql_zqld_parse_address("127.0.0.1:8081"));
  assert_null(zql_zqld_parse_address("*:8081"));
  assert_null(zql_zqld_parse_address("[::1]:8081"));
  assert_null(zql_zqld_parse_address("localhost:80"));
  assert_string_equal(zql_zqld_parse_address("http://127.0.0.1:8081"),
                      "expected HOST:PORT without a scheme");
  assert_string_equal(zql_zqld_parse_address("8081"), "expected HOST:PORT");
  assert_string_equal(zql_zqld_parse_address(":8081"), "expected HOST:PORT");
  assert_string_equal(zql_zqld_parse_address("127.0.0.1:99999"),
                      "bad port (a number from 1 to 65535)");
}

/* ==== the INI reader ==== */

static void test_load_valid(void **state)
{
  zql_zqld_config_t cfg;
  zql_zqld_errs_t errs = ZQL_ZQLD_ERRS_INIT;
  zql_zqld_config_init(&cfg);
  const char *text = "\xEF\xBB\xBF# zqld test configuration\r\n"
                     "; another comment style\n"
                     "\n"
                     "[zqld]\n"
                     "data = /srv/zql   # trailing comment\n"
                     "log_level=debug\n"
                     "  pid_file = \"/run/zql/a b#c.pid\"  ; quoted keeps '#'\n"
                     "[ ingest ]  # blanks inside the brackets\r\n"
                     "bson =\n"
                     "json = tcp://*:7000\n"
                     "fsync = always\n"
                     "fsync_interval = 1s500ms\n"
                     "queue_bytes = 128 MiB\n"
                     "max_event_bytes = 2MB\n"
                     "hwm = 0\n"
                     "dead_letter = /srv/dl#not-a-comment\n"
                     "[http]\n"
                     "listen = [::1]:9000\n"
                     "max_body = \"1G\"\n"
                     "[scheduler]\n"
                     "retry_min = 250ms\n"
                     "settle = 0\n"
                     "[log]\n"
                     "retain = 30d\n"
                     "retain_bytes = 500GB\n"
                     "[security]\n"
                     "curve_allow_file = \" \\\"spaced\\\" \\\\ \\x41\\t\"\n";
  assert_int_equal(load(&cfg, text, &errs), 0);
  expect_errs(&errs, NULL);
  assert_string_equal(cfg.data_dir, "/srv/zql");
  assert_int_equal(cfg.origin[ZQL_ZQLD_DATA].src, ZQL_ZQLD_SRC_FILE);
  assert_int_equal(cfg.origin[ZQL_ZQLD_DATA].line, 5);
  assert_int_equal(cfg.log_level, ZQL_LOG_DEBUG);
  assert_string_equal(cfg.pid_file, "/run/zql/a b#c.pid");
  assert_string_equal(cfg.ingest_bson, "");
  assert_int_equal(cfg.origin[ZQL_ZQLD_INGEST_BSON].src, ZQL_ZQLD_SRC_FILE);
  assert_int_equal(cfg.origin[ZQL_ZQLD_INGEST_BSON].line, 9);
  assert_string_equal(cfg.ingest_json, "tcp://*:7000");
  assert_string_equal(cfg.ingest_acked, "tcp://127.0.0.1:6546");
  assert_int_equal(cfg.origin[ZQL_ZQLD_INGEST_ACKED].src, ZQL_ZQLD_SRC_DEFAULT);
  assert_int_equal(cfg.fsync, ZQL_EVLOG_SYNC_ALWAYS);
  assert_int_equal(cfg.fsync_interval_ms, 1500);
  assert_int_equal(cfg.queue_bytes, 128ull << 20);
  assert_int_equal(cfg.max_event_bytes, 2000000);
  assert_int_equal(cfg.hwm, 0);
  assert_string_equal(cfg.dead_letter, "/srv/dl#not-a-comment");
  assert_string_equal(cfg.http_listen, "[::1]:9000");
  assert_int_equal(cfg.http_max_body, 1ull << 30);
  assert_int_equal(cfg.retry_min_ms, 250);
  assert_int_equal(cfg.settle_ms, 0);
  assert_int_equal(cfg.retain_ms, 30LL * 86400000);
  assert_int_equal(cfg.retain_bytes, 500000000000ull);
  assert_string_equal(cfg.curve_allow_file, " \"spaced\" \\ A\t");
  assert_int_equal(cfg.origin[ZQL_ZQLD_CURVE_ALLOW_FILE].line, 27);

  /* a second file replaces values of the first (same source, later call) */
  assert_int_equal(load(&cfg, "[zqld]\ndata = /other\n[log]\nretain =\n", &errs), 0);
  assert_string_equal(cfg.data_dir, "/other");
  assert_int_equal(cfg.origin[ZQL_ZQLD_DATA].line, 2);
  assert_int_equal(cfg.retain_ms, 0);
  zql_zqld_config_free(&cfg);
  zql_zqld_errs_release(&errs);

  /* an empty file and a file of comments are fine; no final newline is fine */
  zql_zqld_config_init(&cfg);
  assert_int_equal(load(&cfg, "", &errs), 0);
  assert_int_equal(load(&cfg, "# only\n;comments\n   \n", &errs), 0);
  assert_int_equal(load(&cfg, "[ingest]\nhwm = 5", &errs), 0);
  assert_int_equal(cfg.hwm, 5);
  expect_errs(&errs, NULL);
  zql_zqld_config_free(&cfg);
}

static void test_load_errors(void **state)
{
  zql_zqld_config_t cfg;
  zql_zqld_errs_t errs = ZQL_ZQLD_ERRS_INIT;
  zql_zqld_config_init(&cfg);
  const char *text = "data = /x\n"                   /* 1 */
                     "[zqld]\n"                      /* 2 */
                     "dta = /y\n"                    /* 3 */
                     "[ingest]\n"                    /* 4 */
                     "bson = tcp://127.0.0.1:6543\n" /* 5 */
                     "bson = tcp://127.0.0.1:7000\n" /* 6 */
                     "lisen = 1.2.3.4:5\n"           /* 7 */
                     "queue_bytes = 64XB\n"          /* 8 */
                     "max_event_bytes = 32MiB\n"     /* 9 */
                     "fsync = sometimes\n"           /* 10 */
                     "fsync_interval = 10\n"         /* 11 */
                     "queue_events =\n"              /* 12 */
                     "json = inproc://x\n"           /* 13 */
                     "this is not an assignment\n"   /* 14 */
                     "[ingets]\n"                    /* 15 */
                     "whatever = 1\n"                /* 16 */
                     "[scheduler\n"                  /* 17 */
                     "[scheduler]\n"                 /* 18 */
                     "max_paralel = 4\n"             /* 19 */
                     "settle = \"200ms\" x\n"        /* 20 */
                     "retry_max = \"5m\n"            /* 21 */
                     "retry_min = \"\\q\"\n"         /* 22 */
                     "threads_per_run = 0\n"         /* 23 */
                     "[zqld]\n"                      /* 24 */
                     "log_level = loud\n"            /* 25 */
                     "[log]\n"                       /* 26 */
                     "retain_bytes = 1K\n"           /* 27 */
                     "[nothing_like_it]\n"           /* 28 */
                     "[zqld]\n"                      /* 29 */
                     "bogus_thing_here = 1\n"        /* 30 */
                     "[http]\n"                      /* 31 */
                     "= value\n"                     /* 32 */
                     "max_body = 64 MiB\n";          /* 33: fine */
  assert_int_equal(load(&cfg, text, &errs), ZQL_E_USAGE);
  expect_errs(
      &errs, "t.conf:1: key 'data' is outside any [section]",
      "t.conf:3: unknown key 'dta' in [zqld]; did you mean 'data'?",
      "t.conf:6: duplicate key 'bson' in [ingest] (first set on line 5)",
      "t.conf:7: unknown key 'lisen' in [ingest]; did you mean 'listen' in [http]?",
      "t.conf:8: ingest.queue_bytes: invalid size '64XB': unknown unit (B, K/KiB, M/MiB, G/GiB, "
      "T/TiB are powers of 1024; KB, MB, GB, TB powers of 1000)",
      "t.conf:9: ingest.max_event_bytes: 32MiB is out of range: it must be between 1KiB and "
      "16MiB",
      "t.conf:10: ingest.fsync: invalid value 'sometimes': expected batch, always or none",
      "t.conf:11: ingest.fsync_interval: invalid duration '10': a unit is required: ms, s, m, h, "
      "d or w",
      "t.conf:12: ingest.queue_events: a value is required",
      "t.conf:13: ingest.json: invalid endpoint 'inproc://x': inproc:// endpoints cannot be "
      "reached by other processes",
      "t.conf:14: expected 'key = value', '[section]' or a comment",
      "t.conf:15: unknown section [ingets]; did you mean [ingest]?",
      "t.conf:17: a section header is '[name]'",
      "t.conf:19: unknown key 'max_paralel' in [scheduler]; did you mean 'max_parallel'?",
      "t.conf:20: text after the closing quote", "t.conf:21: unterminated quoted value",
      "t.conf:22: unknown escape (use \\\" \\\\ \\n \\t \\r or \\xHH)",
      "t.conf:23: scheduler.threads_per_run: 0 is out of range: it must be between 1 and 256",
      "t.conf:25: zqld.log_level: invalid level 'loud': expected error, warn, info or debug",
      "t.conf:27: log.retain_bytes: 1K is out of range: it must be at least 1MiB",
      "t.conf:28: unknown section [nothing_like_it] (sections: zqld, ingest, http, security, "
      "scheduler, log)",
      "t.conf:30: unknown key 'bogus_thing_here' in [zqld]",
      "t.conf:32: expected 'key = value', '[section]' or a comment", NULL);
  /* bad values leave the key as it was; good ones are stored */
  assert_int_equal(cfg.queue_bytes, 64ull << 20);
  assert_int_equal(cfg.origin[ZQL_ZQLD_QUEUE_BYTES].src, ZQL_ZQLD_SRC_DEFAULT);
  assert_string_equal(cfg.ingest_bson, "tcp://127.0.0.1:6543");
  assert_int_equal(cfg.origin[ZQL_ZQLD_INGEST_BSON].line, 5);
  assert_int_equal(cfg.http_max_body, 64ull << 20);
  assert_int_equal(cfg.origin[ZQL_ZQLD_HTTP_MAX_BODY].src, ZQL_ZQLD_SRC_FILE);
  zql_zqld_config_free(&cfg);
  zql_zqld_errs_release(&errs);

  /* NUL bytes and bad \x escapes */
  zql_zqld_config_init(&cfg);
  static const char nul[] = "[zqld]\ndata = a\0b\n[ingest]\nhwm = \"\\x4\"\nhwm = \"\\x00\"\n";
  assert_int_equal(zql_zqld_config_load_text(&cfg, "n.conf", nul, sizeof nul - 1, &errs),
                   ZQL_E_USAGE);
  expect_errs(&errs, "n.conf:2: NUL byte in the line (not a text file?)",
              "n.conf:4: \\x needs two hex digits", "n.conf:5: a value cannot contain a NUL byte",
              NULL);
  zql_zqld_config_free(&cfg);
  zql_zqld_errs_release(&errs);

  /* errs may be NULL: the return value still tells */
  zql_zqld_config_init(&cfg);
  assert_int_equal(load(&cfg, "[x]\n", NULL), ZQL_E_USAGE);
  zql_zqld_config_free(&cfg);
}

static void test_load_file(void **state)
{
  zql_zqld_config_t cfg;
  zql_zqld_errs_t errs = ZQL_ZQLD_ERRS_INIT;
  char path[256];
  snprintf(path, sizeof path, "%s/missing.conf", tmpdir);
  zql_zqld_config_init(&cfg);
  assert_int_equal(zql_zqld_config_load_file(&cfg, path, &errs), ZQL_E_IO);
  assert_int_equal(errs.n, 1);
  char want[512];
  snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
  assert_string_equal(errs.items[0], want);
  zql_zqld_errs_release(&errs);

  snprintf(path, sizeof path, "%s/zqld.conf", tmpdir);
  write_file(path, "[ingest]\nhwm = 7\nhwm = 8\n");
  assert_int_equal(zql_zqld_config_load_file(&cfg, path, &errs), ZQL_E_USAGE);
  assert_string_equal(cfg.file, path);
  assert_int_equal(cfg.hwm, 7);
  snprintf(want, sizeof want, "%s:3: duplicate key 'hwm' in [ingest] (first set on line 2)", path);
  expect_errs(&errs, want, NULL);
  zql_zqld_errs_release(&errs);

  /* a directory cannot be read */
  assert_int_equal(zql_zqld_config_load_file(&cfg, tmpdir, &errs), ZQL_E_IO);
  assert_int_equal(errs.n, 1);
  assert_non_null(strstr(errs.items[0], ": cannot read: Is a directory"));
  zql_zqld_errs_release(&errs);
  zql_zqld_config_free(&cfg);
}

/* ==== environment, flags, priorities ==== */

static void test_env(void **state)
{
  zql_zqld_config_t cfg;
  zql_zqld_errs_t errs = ZQL_ZQLD_ERRS_INIT;
  zql_zqld_config_init(&cfg);
  char *env[] = {S("PATH=/usr/bin"),
                 S("ZQLD_INGEST_BSON="),
                 S("ZQLD_INGEST_FSYNC=none"),
                 S("ZQLD_SCHEDULER_RETRY_MAX=1h"),
                 S("ZQL_DATA=/not/ours"),
                 S("ZQLD_INGEST_BSN=tcp://1.2.3.4:5"),
                 S("ZQLD_SOMETHING_ELSE_ENTIRELY=1"),
                 S("ZQLD_HTTP_MAX_BODY=huge"),
                 S("ZQLD_ZQLD_DATA"),
                 NULL};
  assert_int_equal(zql_zqld_config_env(&cfg, env, &errs), ZQL_E_USAGE);
  expect_errs(&errs,
              "environment ZQLD_INGEST_BSN: unknown ZQLD_ variable; did you mean ZQLD_INGEST_BSON?",
              "environment ZQLD_SOMETHING_ELSE_ENTIRELY: unknown ZQLD_ variable (they are "
              "ZQLD_<SECTION>_<KEY>, such as ZQLD_INGEST_BSON)",
              "environment ZQLD_HTTP_MAX_BODY: http.max_body: invalid size 'huge': not a size (a "
              "whole number with an optional unit, such as 64MiB)",
              "environment ZQLD_ZQLD_DATA: zqld.data: a value is required", NULL);
  assert_string_equal(cfg.ingest_bson, "");
  assert_int_equal(cfg.origin[ZQL_ZQLD_INGEST_BSON].src, ZQL_ZQLD_SRC_ENV);
  assert_int_equal(cfg.fsync, ZQL_EVLOG_SYNC_NONE);
  assert_int_equal(cfg.retry_max_ms, 3600000);
  assert_string_equal(cfg.data_dir, "/var/lib/zql");
  zql_zqld_errs_release(&errs);
  assert_int_equal(zql_zqld_config_env(&cfg, NULL, &errs), 0);
  zql_zqld_config_free(&cfg);
}

static void test_set(void **state)
{
  zql_zqld_config_t cfg;
  zql_zqld_errs_t errs = ZQL_ZQLD_ERRS_INIT;
  zql_zqld_config_init(&cfg);
  assert_int_equal(zql_zqld_config_set(&cfg, "ingest.fsync=always", &errs), 0);
  assert_int_equal(zql_zqld_config_set(&cfg, " ingest.hwm =5", &errs), 0);
  assert_int_equal(zql_zqld_config_set(&cfg, "ingest.pub=", &errs), 0);
  assert_int_equal(zql_zqld_config_set(&cfg, "zqld.data=/a=b", &errs), 0);
  assert_int_equal(zql_zqld_config_set_flag(&cfg, "zqld.log_level", "warn", &errs), 0);
  assert_int_equal(zql_zqld_config_set(&cfg, "ingest.hwm=6", &errs), 0); /* later wins */
  expect_errs(&errs, NULL);
  assert_int_equal(cfg.fsync, ZQL_EVLOG_SYNC_ALWAYS);
  assert_int_equal(cfg.hwm, 6);
  assert_string_equal(cfg.ingest_pub, "");
  assert_string_equal(cfg.data_dir, "/a=b");
  assert_int_equal(cfg.log_level, ZQL_LOG_WARN);
  assert_int_equal(cfg.origin[ZQL_ZQLD_HWM].src, ZQL_ZQLD_SRC_FLAG);

  assert_int_equal(zql_zqld_config_set(&cfg, "ingest.fsync", &errs), ZQL_E_USAGE);
  assert_int_equal(zql_zqld_config_set(&cfg, "ingest.fsnc=none", &errs), ZQL_E_USAGE);
  assert_int_equal(zql_zqld_config_set(&cfg, "fsync=none", &errs), ZQL_E_USAGE);
  assert_int_equal(zql_zqld_config_set(&cfg, "zzz.yyy=none", &errs), ZQL_E_USAGE);
  assert_int_equal(zql_zqld_config_set(&cfg, "scheduler.max_parallel=1000", &errs), ZQL_E_USAGE);
  assert_int_equal(zql_zqld_config_set_flag(&cfg, "zqld.log_level", "", &errs), ZQL_E_USAGE);
  expect_errs(&errs, "command line: --set ingest.fsync: expected section.key=value",
              "command line: unknown key 'ingest.fsnc'; did you mean 'ingest.fsync'?",
              "command line: unknown key 'fsync' (keys are section.key, such as ingest.bson)",
              "command line: unknown key 'zzz.yyy' (keys are section.key, such as ingest.bson)",
              "command line: scheduler.max_parallel: 1000 is out of range: it "
              "must be between 1 and 256",
              "command line: zqld.log_level: a value is required", NULL);
  assert_int_equal(cfg.fsync, ZQL_EVLOG_SYNC_ALWAYS);
  zql_zqld_errs_release(&errs);
  zql_zqld_config_free(&cfg);
}

static void test_priority(void **state)
{
  zql_zqld_config_t cfg;
  zql_zqld_errs_t errs = ZQL_ZQLD_ERRS_INIT;
  zql_zqld_config_init(&cfg);
  /* flags first, then the environment, then the file: the order of calls does not matter */
  assert_int_equal(zql_zqld_config_set(&cfg, "ingest.hwm=1", &errs), 0);
  char *env[] = {S("ZQLD_INGEST_HWM=2"), S("ZQLD_INGEST_QUEUE_EVENTS=3"), NULL};
  assert_int_equal(zql_zqld_config_env(&cfg, env, &errs), 0);
  assert_int_equal(load(&cfg,
                        "[ingest]\nhwm = 9\nqueue_events = 9\nmax_event_bytes = 4KiB\n"
                        "fsync = never\n",
                        &errs),
                   ZQL_E_USAGE);
  /* the overridden file value is still checked */
  expect_errs(&errs,
              "t.conf:5: ingest.fsync: invalid value 'never': expected batch, always "
              "or none",
              NULL);
  assert_int_equal(cfg.hwm, 1);
  assert_int_equal(cfg.origin[ZQL_ZQLD_HWM].src, ZQL_ZQLD_SRC_FLAG);
  assert_int_equal(cfg.queue_events, 3);
  assert_int_equal(cfg.origin[ZQL_ZQLD_QUEUE_EVENTS].src, ZQL_ZQLD_SRC_ENV);
  assert_int_equal(cfg.max_event_bytes, 4096);
  assert_int_equal(cfg.origin[ZQL_ZQLD_MAX_EVENT_BYTES].src, ZQL_ZQLD_SRC_FILE);
  assert_int_equal(cfg.origin[ZQL_ZQLD_MAX_EVENT_BYTES].line, 4);
  /* the environment after flags does not win either */
  char *env2[] = {S("ZQLD_INGEST_HWM=77"), NULL};
  assert_int_equal(zql_zqld_config_env(&cfg, env2, NULL), 0);
  assert_int_equal(cfg.hwm, 1);
  zql_zqld_errs_release(&errs);
  zql_zqld_config_free(&cfg);
}

/* ==== validate ==== */

static void test_validate(void **state)
{
  zql_zqld_config_t cfg;
  zql_zqld_errs_t errs = ZQL_ZQLD_ERRS_INIT;

  /* the defaults are valid; dead_letter follows data */
  zql_zqld_config_init(&cfg);
  assert_int_equal(zql_zqld_config_validate(&cfg, &errs), 0);
  expect_errs(&errs, NULL);
  assert_string_equal(cfg.dead_letter, "/var/lib/zql/deadletter");
  assert_int_equal(cfg.origin[ZQL_ZQLD_DEAD_LETTER].src, ZQL_ZQLD_SRC_DEFAULT);
  zql_zqld_config_free(&cfg);

  zql_zqld_config_init(&cfg);
  zql_zqld_config_set(&cfg, "zqld.data=/srv/zql//", NULL);
  assert_int_equal(zql_zqld_config_validate(&cfg, &errs), 0);
  assert_string_equal(cfg.dead_letter, "/srv/zql/deadletter");
  zql_zqld_config_set(&cfg, "ingest.dead_letter=/elsewhere", NULL);
  zql_zqld_config_set(&cfg, "zqld.data=/", NULL);
  assert_int_equal(zql_zqld_config_validate(&cfg, &errs), 0);
  assert_string_equal(cfg.dead_letter, "/elsewhere");
  zql_zqld_config_free(&cfg);

  zql_zqld_config_init(&cfg);
  zql_zqld_config_set(&cfg, "zqld.data=/", NULL);
  assert_int_equal(zql_zqld_config_validate(&cfg, &errs), 0);
  assert_string_equal(cfg.dead_letter, "/deadletter");
  zql_zqld_config_free(&cfg);

  /* everything wrong at once */
  char notdir[256], tokens[256], secret[256], allow[256], text[2048];
  snprintf(notdir, sizeof notdir, "%s/plainfile", tmpdir);
  write_file(notdir, "x\n");
  snprintf(tokens, sizeof tokens, "%s/no-tokens", tmpdir);
  snprintf(secret, sizeof secret, "%s", tmpdir); /* a directory */
  snprintf(allow, sizeof allow, "%s/allow", tmpdir);
  write_file(allow, "key\n");
  snprintf(text, sizeof text,
           "[zqld]\n"
           "data = %s\n"                            /* 2: not a directory */
           "pid_file = /nonexistent-dir/zqld.pid\n" /* 3 */
           "[ingest]\n"
           "json = tcp://127.0.0.1:6543\n" /* 5: same as bson (default) */
           "acked = tcp://*:8081\n"        /* 6: wildcard vs http */
           "pub = ipc:///tmp/x.sock\n"     /* 7 */
           "queue_bytes = 64KiB\n"         /* 8 */
           "max_event_bytes = 1MiB\n"      /* 9 */
           "[http]\n"
           "tokens_file = %s\n" /* 11 */
           "[security]\n"
           "curve_allow_file = %s\n" /* 13: no secret key */
           "[scheduler]\n"
           "retry_max = 500ms\n", /* 15: below retry_min */
           notdir, tokens, allow);
  zql_zqld_config_init(&cfg);
  assert_int_equal(load(&cfg, text, &errs), 0);
  assert_int_equal(zql_zqld_config_validate(&cfg, &errs), ZQL_E_USAGE);
  char e1[512], e2[512];
  snprintf(e1, sizeof e1, "t.conf:2: zqld.data: %s is not a directory", notdir);
  snprintf(e2, sizeof e2, "t.conf:11: http.tokens_file: cannot read %s: No such file or directory",
           tokens);
  expect_errs(
      &errs, e1, "t.conf:5: ingest.json: tcp://127.0.0.1:6543 is also the address of ingest.bson",
      "t.conf:6: ingest.acked: tcp://*:8081 is in conflict with the address of http.listen",
      "t.conf:15: scheduler.retry_max: 500ms is smaller than scheduler.retry_min (1s)",
      "t.conf:9: ingest.max_event_bytes: 1MiB is larger than ingest.queue_bytes (64KiB): the "
      "queue must hold one event",
      e2,
      "t.conf:13: security.curve_allow_file: a client allow-list needs "
      "security.curve_secret_key_file (the server's key)",
      "t.conf:3: zqld.pid_file: directory /nonexistent-dir does not exist", NULL);
  zql_zqld_errs_release(&errs);

  /* the same problems from other sources are placed there */
  zql_zqld_config_set(&cfg, "zqld.data=", NULL); /* an empty flag is refused ... */
  char *env[] = {S("ZQLD_INGEST_PUB=ipc:///tmp/x.sock"),
                 S("ZQLD_INGEST_JSON="),
                 S("ZQLD_INGEST_ACKED="),
                 S("ZQLD_HTTP_TOKENS_FILE="),
                 S("ZQLD_SECURITY_CURVE_ALLOW_FILE="),
                 NULL};
  assert_int_equal(zql_zqld_config_env(&cfg, env, &errs), 0);
  zql_zqld_config_set(&cfg, "ingest.bson=ipc:///tmp/x.sock", NULL);
  zql_zqld_config_set(&cfg, "scheduler.retry_max=1s", NULL);
  zql_zqld_config_set(&cfg, "ingest.queue_bytes=1MiB", NULL);
  zql_zqld_config_set(&cfg, "zqld.pid_file=zqld.pid", NULL); /* no directory part: cwd */
  snprintf(text, sizeof text, "security.curve_secret_key_file=%s", secret);
  zql_zqld_config_set(&cfg, text, NULL);
  zql_zqld_config_set(&cfg, "zqld.data=/srv", NULL);
  assert_int_equal(zql_zqld_config_validate(&cfg, &errs), ZQL_E_USAGE);
  snprintf(e1, sizeof e1, "command line: security.curve_secret_key_file: %s is not a regular file",
           secret);
  expect_errs(&errs,
              "command line: ingest.bson: ipc:///tmp/x.sock is also the address of ingest.pub", e1,
              NULL);
  zql_zqld_errs_release(&errs);
  zql_zqld_config_free(&cfg);

  /* an environment value in conflict, and a different port is no conflict */
  zql_zqld_config_init(&cfg);
  char *env2[] = {S("ZQLD_HTTP_LISTEN=0.0.0.0:6545"), NULL};
  zql_zqld_config_env(&cfg, env2, NULL);
  assert_int_equal(zql_zqld_config_validate(&cfg, &errs), ZQL_E_USAGE);
  expect_errs(&errs,
              "environment ZQLD_HTTP_LISTEN: http.listen: 0.0.0.0:6545 is in conflict "
              "with the address of ingest.pub",
              NULL);
  zql_zqld_errs_release(&errs);
  zql_zqld_config_set(&cfg, "http.listen=0.0.0.0:6547", NULL);
  zql_zqld_config_set(&cfg, "ingest.json=tcp://10.0.0.1:6543", NULL); /* another host */
  assert_int_equal(zql_zqld_config_validate(&cfg, &errs), 0);
  zql_zqld_config_free(&cfg);

  /* the other key of a pair is blamed when it is the one changed */
  zql_zqld_config_init(&cfg);
  zql_zqld_config_set(&cfg, "scheduler.retry_min=10m", NULL);
  zql_zqld_config_set(&cfg, "ingest.queue_bytes=512KiB", NULL);
  assert_int_equal(zql_zqld_config_validate(&cfg, &errs), ZQL_E_USAGE);
  expect_errs(&errs,
              "command line: scheduler.retry_min: 10m is larger than scheduler.retry_max (5m)",
              "command line: ingest.queue_bytes: 512KiB is smaller than ingest.max_event_bytes "
              "(1MiB): the queue must hold one event",
              NULL);
  zql_zqld_errs_release(&errs);
  zql_zqld_config_free(&cfg);

  /* a readable key file passes */
  zql_zqld_config_init(&cfg);
  snprintf(text, sizeof text, "security.curve_secret_key_file=%s", allow);
  zql_zqld_config_set(&cfg, text, NULL);
  snprintf(text, sizeof text, "security.curve_allow_file=%s", allow);
  zql_zqld_config_set(&cfg, text, NULL);
  snprintf(text, sizeof text, "zqld.pid_file=%s/zqld.pid", tmpdir);
  zql_zqld_config_set(&cfg, text, NULL);
  assert_int_equal(zql_zqld_config_validate(&cfg, &errs), 0);
  expect_errs(&errs, NULL);
  zql_zqld_config_free(&cfg);
}

/* ==== print ==== */

/* Turn --check-config output back into INI text: "s.k = v  # src" -> "[s]\nk = v\n". */
static char *print_to_ini(const char *out)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  const char *p = out;
  while (*p) {
    const char *nl = strchr(p, '\n');
    const char *dot = strchr(p, '.');
    assert_true(nl && dot && dot < nl);
    zql_strbuf_adds(&sb, "[");
    zql_strbuf_add(&sb, p, (size_t)(dot - p));
    zql_strbuf_adds(&sb, "]\n");
    zql_strbuf_add(&sb, dot + 1, (size_t)(nl - dot - 1));
    zql_strbuf_adds(&sb, "\n");
    p = nl + 1;
  }
  assert_false(sb.oom);
  char *r = strdup(sb.buf);
  zql_strbuf_release(&sb);
  return r;
}

static void test_print(void **state)
{
  zql_zqld_config_t cfg, back;
  zql_zqld_errs_t errs = ZQL_ZQLD_ERRS_INIT;
  zql_zqld_config_init(&cfg);
  assert_int_equal(load(&cfg,
                        "[ingest]\nqueue_bytes = 2048K\nfsync_interval = 1500ms\n"
                        "[zqld]\npid_file = \"  #odd\\tname \"\n",
                        &errs),
                   0);
  char *env[] = {S("ZQLD_INGEST_BSON="), S("ZQLD_LOG_RETAIN=36h"), NULL};
  zql_zqld_config_env(&cfg, env, &errs);
  zql_zqld_config_set(&cfg, "ingest.fsync=always", &errs);
  zql_zqld_config_set(&cfg, "zqld.data=#hash", &errs);
  zql_zqld_config_set(&cfg, "http.tokens_file=a ;b", &errs);
  zql_zqld_config_set(&cfg, "security.curve_allow_file=\"q\"", &errs);
  expect_errs(&errs, NULL);
  char *out = print_to_string(&cfg);

  /* one line per key, in table order */
  int lines = 0;
  for (const char *p = out; *p; p++)
    lines += *p == '\n';
  assert_int_equal(lines, ZQL_ZQLD_NKEYS);
  assert_true(strncmp(out, "zqld.data = \"#hash\"  # flag\n", 28) == 0);
  static const char *const want[] = {
      "\nzqld.log_level = info  # default\n",
      "\nzqld.pid_file = \"  #odd\\tname \"  # file\n",
      "\ningest.bson =   # env\n",
      "\ningest.json = tcp://127.0.0.1:6544  # default\n",
      "\ningest.fsync = always  # flag\n",
      "\ningest.fsync_interval = 1s500ms  # file\n",
      "\ningest.queue_bytes = 2MiB  # file\n",
      "\ningest.dead_letter =   # default\n",
      "\nhttp.tokens_file = \"a ;b\"  # flag\n",
      "\nsecurity.curve_allow_file = \"\\\"q\\\"\"  # flag\n",
      "\nscheduler.retry_max = 5m  # default\n",
      "\nlog.retain = 1d12h  # env\n",
      "\nlog.retain_bytes =   # default\n",
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(want); i++)
    if (!strstr(out, want[i]))
      fail_msg("missing line %s in:\n%s", want[i] + 1, out);

  /* the printed values read back to the same configuration */
  char *ini = print_to_ini(out);
  zql_zqld_config_init(&back);
  if (load(&back, ini, &errs) != 0) {
    fprintf(stderr, "%s", out);
    zql_zqld_errs_print(&errs, stdout);
    fail_msg("printed configuration does not load:\n%s", ini);
  }
  zql_strbuf_t a = ZQL_STRBUF_INIT, b = ZQL_STRBUF_INIT;
  for (int k = 0; k < ZQL_ZQLD_NKEYS; k++) {
    zql_strbuf_reset(&a);
    zql_strbuf_reset(&b);
    zql_zqld_config_format(&cfg, (zql_zqld_key_t)k, &a);
    zql_zqld_config_format(&back, (zql_zqld_key_t)k, &b);
    assert_string_equal(a.buf, b.buf);
  }
  zql_strbuf_release(&a);
  zql_strbuf_release(&b);
  assert_string_equal(back.pid_file, "  #odd\tname ");
  assert_string_equal(back.curve_allow_file, "\"q\"");
  free(ini);
  free(out);
  zql_zqld_config_free(&back);
  zql_zqld_config_free(&cfg);

  /* errors print one per line */
  zql_zqld_errs_t e = ZQL_ZQLD_ERRS_INIT;
  zql_zqld_config_init(&cfg);
  load(&cfg, "[a]\n[b]\n", &e);
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  zql_zqld_errs_print(&e, f);
  e.oom = true;
  zql_zqld_errs_print(&e, f);
  fclose(f);
  assert_string_equal(buf, "t.conf:1: unknown section [a] (sections: zqld, ingest, http, security, "
                           "scheduler, log)\n"
                           "t.conf:2: unknown section [b] (sections: zqld, ingest, http, security, "
                           "scheduler, log)\n"
                           "t.conf:1: unknown section [a] (sections: zqld, ingest, http, security, "
                           "scheduler, log)\n"
                           "t.conf:2: unknown section [b] (sections: zqld, ingest, http, security, "
                           "scheduler, log)\n"
                           "zqld: out of memory while reporting configuration errors\n");
  free(buf);
  zql_zqld_errs_release(&e);
  zql_zqld_config_free(&cfg);
}

/* ==== the example file and the reference (docs are tests) ==== */

static char *read_source(const char *rel)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", ZQL_SRCDIR, rel);
  FILE *f = fopen(path, "rb");
  if (!f)
    fail_msg("cannot open %s", path);
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    zql_strbuf_add(&sb, buf, n);
  fclose(f);
  assert_false(sb.oom);
  char *r = strdup(sb.buf);
  zql_strbuf_release(&sb);
  return r;
}

static void test_contrib_example(void **state)
{
  /* contrib/zqld.conf sets every key, to its default, without an error */
  char *text = read_source("contrib/zqld.conf");
  zql_zqld_config_t cfg;
  zql_zqld_errs_t errs = ZQL_ZQLD_ERRS_INIT;
  zql_zqld_config_init(&cfg);
  int rc = zql_zqld_config_load_text(&cfg, "contrib/zqld.conf", text, strlen(text), &errs);
  if (rc != 0)
    fail_msg("contrib/zqld.conf: %s", errs.n ? errs.items[0] : "out of memory");
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  for (int k = 0; k < ZQL_ZQLD_NKEYS; k++) {
    const zql_zqld_keyinfo_t *in = zql_zqld_config_key((zql_zqld_key_t)k);
    if (cfg.origin[k].src != ZQL_ZQLD_SRC_FILE)
      fail_msg("contrib/zqld.conf does not set %s.%s", in->section, in->key);
    zql_strbuf_reset(&sb);
    zql_zqld_config_format(&cfg, (zql_zqld_key_t)k, &sb);
    if (strcmp(sb.buf, in->def) != 0)
      fail_msg("contrib/zqld.conf: %s.%s = %s, the default is '%s'", in->section, in->key, sb.buf,
               in->def);
  }
  zql_strbuf_release(&sb);
  zql_zqld_config_free(&cfg);
  free(text);

  /* docs/zqld.md has a row for every key with its environment name, type and default */
  char *doc = read_source("docs/zqld.md");
  for (int k = 0; k < ZQL_ZQLD_NKEYS; k++) {
    const zql_zqld_keyinfo_t *in = zql_zqld_config_key((zql_zqld_key_t)k);
    char row[512];
    snprintf(row, sizeof row, "\n| `%s.%s`<br>`%s` | %s | %s%s%s |", in->section, in->key, in->env,
             zql_zqld_type_name(in->type), *in->def ? "`" : "", *in->def ? in->def : "(empty)",
             *in->def ? "`" : "");
    if (!strstr(doc, row))
      fail_msg("docs/zqld.md lacks the row%s", row);
  }
  free(doc);
}

/* ==== out of memory ==== */

/* The whole sequence a reload does; true when it got through without running out. */
static bool scenario(void)
{
  zql_zqld_config_t cfg;
  zql_zqld_errs_t errs = ZQL_ZQLD_ERRS_INIT;
  zql_zqld_config_init(&cfg);
  bool ok = true;
  int rc = load(&cfg,
                "[zqld]\ndata = /srv/zql\n[ingest]\nbson = tcp://*:7000\nbogus = 1\n"
                "[http]\nlisten = \"127.0.0.1:9000\"\n",
                &errs);
  ok &= rc == ZQL_E_USAGE;
  assert_true(rc == ZQL_E_USAGE || rc == ZQL_E_NOMEM);
  char *env[] = {S("ZQLD_INGEST_JSON=ipc:///tmp/j"), S("ZQLD_NOPE=1"), NULL};
  rc = zql_zqld_config_env(&cfg, env, &errs);
  ok &= rc == ZQL_E_USAGE;
  assert_true(rc == ZQL_E_USAGE || rc == ZQL_E_NOMEM);
  rc = zql_zqld_config_set(&cfg, "ingest.pub=tcp://*:7000", &errs);
  ok &= rc == 0;
  assert_true(rc == 0 || rc == ZQL_E_NOMEM);
  rc = zql_zqld_config_validate(&cfg, &errs);
  ok &= rc == ZQL_E_USAGE;
  assert_true(rc == ZQL_E_USAGE || rc == ZQL_E_NOMEM);
  if (ok) {
    assert_string_equal(cfg.ingest_pub, "tcp://*:7000");
    assert_string_equal(cfg.dead_letter, "/srv/zql/deadletter");
    assert_int_equal(errs.n, 3);
    assert_false(errs.oom);
  } else {
    assert_true(errs.oom);
  }
  zql_zqld_errs_release(&errs);
  zql_zqld_config_free(&cfg);
  return ok;
}

static void test_oom_loop(void **state)
{
  long n;
  bool done = false;
  for (n = 0; n < 10000 && !done; n++) {
    zql_alloc_fail_after(n);
    done = scenario();
    zql_alloc_fail_after(-1);
  }
  assert_true(done);
  assert_true(n > 10);
}

int zql_unit_zqld_config(void)
{
  const struct CMUnitTest tests[] = {
      ZQL_UNIT_TEST(test_table_and_defaults),
      ZQL_UNIT_TEST(test_parse_int),
      ZQL_UNIT_TEST(test_parse_size),
      ZQL_UNIT_TEST(test_parse_duration),
      ZQL_UNIT_TEST(test_format_round_trip),
      ZQL_UNIT_TEST(test_parse_endpoint_address),
      ZQL_UNIT_TEST(test_load_valid),
      ZQL_UNIT_TEST(test_load_errors),
      ZQL_UNIT_TEST(test_load_file),
      ZQL_UNIT_TEST(test_env),
      ZQL_UNIT_TEST(test_set),
      ZQL_UNIT_TEST(test_priority),
      ZQL_UNIT_TEST(test_validate),
      ZQL_UNIT_TEST(test_print),
      ZQL_UNIT_TEST(test_contrib_example),
      ZQL_UNIT_TEST(test_oom_loop),
  };
  return cmocka_run_group_tests_name("zqld_config", tests, setup_dir, teardown_dir);
}
