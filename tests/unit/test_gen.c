/*
 * test_gen.c -- unit tests of the synthetic event generator (runtime/gen.c) and of
 * `zql gen` (runtime/cmd_gen.c) called as a function.
 *
 * Checks what gen.h promises: the stream is a pure function of the options (same seed,
 * same bytes; a known fingerprint, so another machine must produce the same bytes too;
 * another seed, other bytes), the rates and distributions it documents hold on 100k
 * events within loose bounds, every field and type that examples/NAME.zql read exists,
 * timestamps stay in the window and rise on average with a few out of order, the
 * steady state allocates nothing through zql_malloc, options out of range are usage
 * errors, and out-of-memory is an error at every allocation of zql_gen_new.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <bson/bson.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/cli.h"
#include "runtime/gen.h"
#include "runtime/ioformat.h"

/* FNV-1a over the BSON bytes of every event. */
static uint64_t fingerprint(const zql_gen_opts_t *o)
{
  zql_gen_t *g;
  assert_int_equal(zql_gen_new(o, &g, NULL), 0);
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  const bson_t *doc;
  while (zql_gen_next(g, &doc) == 1) {
    const uint8_t *p = bson_get_data(doc);
    for (uint32_t k = 0; k < doc->len; k++)
      h = (h ^ p[k]) * UINT64_C(0x100000001b3);
  }
  assert_int_equal(zql_gen_count(g), o->events);
  zql_gen_free(g);
  return h;
}

static void test_determinism(void **state)
{
  zql_gen_opts_t o;
  zql_gen_opts_init(&o);
  o.events = 3000;
  o.seed = 7;
  uint64_t a = fingerprint(&o), b = fingerprint(&o);
  assert_true(a == b);
  o.seed = 8;
  assert_true(fingerprint(&o) != a);
  o.seed = 7;
  o.users = 100;
  assert_true(fingerprint(&o) != a);
}

/* The bytes of seed 1 are fixed: this catches any platform (or change) that alters them.
 * If gen.c changes the data on purpose, update the constant and say so in the commit. */
static void test_fingerprint(void **state)
{
  zql_gen_opts_t o;
  zql_gen_opts_init(&o);
  o.events = 1000;
  uint64_t h = fingerprint(&o);
  if (h != UINT64_C(0x0b34d21463c9453e))
    print_message("fingerprint 0x%016" PRIx64 "\n", h);
  assert_true(h == UINT64_C(0x0b34d21463c9453e));
}

/* {==== 100k events: the documented rates ==================================== */

typedef struct {
  uint64_t n, by_type[16], no_user, with_project, head_project, head_user;
  uint64_t bytes_carriers, bytes_missing, bytes_string;
  uint64_t ms_carriers, ms_negative, ms_null;
  uint64_t pageviews, bots, out_of_order, outside;
  int64_t first_mean, last_mean;
} stats_t;

static const char *const type_list[] = {"pageview", "download", "api_call", "search",
                                        "visit",    "login",    "commit",   "ticket",
                                        "signup_form", "signup_done"};

static void tally(stats_t *s, const bson_t *doc, const zql_gen_opts_t *o, int64_t *prev)
{
  bson_iter_t it, sub;
  s->n++;
  assert_true(bson_iter_init_find(&it, doc, "timestamp") && BSON_ITER_HOLDS_DATE_TIME(&it));
  int64_t t = bson_iter_date_time(&it);
  if (t < o->start_ms || t >= o->start_ms + (int64_t)o->days * 86400000)
    s->outside++;
  if (t < *prev)
    s->out_of_order++;
  *prev = t;
  if (s->n <= 1000)
    s->first_mean += t / 1000;
  if (s->n > o->events - 1000)
    s->last_mean += t / 1000;

  assert_true(bson_iter_init_find(&it, doc, "type") && BSON_ITER_HOLDS_UTF8(&it));
  const char *type = bson_iter_utf8(&it, NULL);
  size_t ti = 0;
  while (ti < ZQL_ARRAY_LEN(type_list) && strcmp(type, type_list[ti]) != 0)
    ti++;
  assert_true(ti < ZQL_ARRAY_LEN(type_list));
  s->by_type[ti]++;

  if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "context.user", &sub))
    s->head_user += strcmp(bson_iter_utf8(&sub, NULL), "user1") == 0;
  else
    s->no_user++;
  if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "context.project", &sub)) {
    s->with_project++;
    if (strcmp(bson_iter_utf8(&sub, NULL), "aurora") == 0) /* rank 1 */
      s->head_project++;
  }
  if (ti <= 1) { /* pageview, download */
    s->bytes_carriers++;
    if (!(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "extra.bytes", &sub)))
      s->bytes_missing++;
    else if (BSON_ITER_HOLDS_UTF8(&sub))
      s->bytes_string++;
  }
  if (ti == 0 || ti == 2 || ti == 3) { /* pageview, api_call, search */
    s->ms_carriers++;
    assert_true(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "extra.ms", &sub));
    if (BSON_ITER_HOLDS_NULL(&sub))
      s->ms_null++;
    else if (bson_iter_as_double(&sub) < 0)
      s->ms_negative++;
  }
  if (ti == 0) {
    s->pageviews++;
    assert_true(bson_iter_init(&it, doc) &&
                bson_iter_find_descendant(&it, "context.agent_class", &sub));
    if (strcmp(bson_iter_utf8(&sub, NULL), "bot") == 0)
      s->bots++;
  }
}

static void assert_rate(const char *what, uint64_t k, uint64_t n, double lo, double hi)
{
  double r = n ? (double)k / (double)n : 0;
  if (r < lo || r > hi)
    fail_msg("%s: rate %.4f (%" PRIu64 "/%" PRIu64 ") outside [%.4f, %.4f]", what, r, k, n,
             lo, hi);
}

static void test_distributions(void **state)
{
  zql_gen_opts_t o;
  zql_gen_opts_init(&o);
  o.events = 100000;
  o.seed = 42;
  zql_gen_t *g;
  assert_int_equal(zql_gen_new(&o, &g, NULL), 0);
  stats_t s = {0};
  int64_t prev = INT64_MIN;
  const bson_t *doc;
  while (zql_gen_next(g, &doc) == 1)
    tally(&s, doc, &o, &prev);
  zql_gen_free(g);

  assert_int_equal(s.n, 100000);
  assert_int_equal(s.outside, 0);
  assert_rate("out of order", s.out_of_order, s.n, 0.005, 0.05);
  assert_true(s.last_mean > s.first_mean + 6 * 86400000LL);
  /* the type mix: base weights scaled by ~0.96 (funnel follow-ups take ~4%) */
  assert_rate("pageview", s.by_type[0], s.n, 0.385, 0.425);
  assert_rate("download", s.by_type[1], s.n, 0.145, 0.175);
  assert_rate("api_call", s.by_type[2], s.n, 0.13, 0.16);
  assert_rate("search", s.by_type[3], s.n, 0.065, 0.09);
  assert_rate("visit", s.by_type[4], s.n, 0.05, 0.07);
  assert_rate("login", s.by_type[5], s.n, 0.04, 0.06);
  assert_rate("commit", s.by_type[6], s.n, 0.04, 0.06);
  assert_rate("ticket", s.by_type[7], s.n, 0.022, 0.038);
  assert_rate("signup_form", s.by_type[8], s.n, 0.018, 0.028);
  assert_rate("signup_done", s.by_type[9], s.n, 0.010, 0.018);
  /* Zipf heads: 1/H(200) = 0.170 for projects; (1/11)/(H(5010)-H(10)) = 0.0147 for users */
  assert_rate("head project", s.head_project, s.with_project, 0.15, 0.19);
  assert_rate("head user", s.head_user, s.n - s.no_user, 0.012, 0.018);
  /* missing and malformed values */
  assert_rate("no context.user", s.no_user, s.n, 0.024, 0.035);
  assert_rate("extra.bytes missing", s.bytes_missing, s.bytes_carriers, 0.016, 0.024);
  assert_rate("extra.bytes string", s.bytes_string, s.bytes_carriers, 0.003, 0.007);
  assert_rate("extra.ms negative", s.ms_negative, s.ms_carriers, 0.0015, 0.0045);
  assert_rate("extra.ms null", s.ms_null, s.ms_carriers, 0.0015, 0.0045);
  assert_rate("pageview bots", s.bots, s.pageviews, 0.13, 0.17);
}

/* }==== */

/* {==== the examples' fields ================================================= */

#define MAX_NAMES 64

typedef struct {
  char *paths[MAX_NAMES]; /* "context.user", "extra.ms", ... */
  bool path_seen[MAX_NAMES];
  size_t npaths;
  char *types[MAX_NAMES]; /* type == "x", type in ["x", ...] */
  bool type_seen[MAX_NAMES];
  size_t ntypes;
} wanted_t;

static void want(char **list, size_t *n, const char *s, size_t len)
{
  for (size_t k = 0; k < *n; k++)
    if (strlen(list[k]) == len && memcmp(list[k], s, len) == 0)
      return;
  assert_true(*n < MAX_NAMES);
  list[(*n)++] = zql_strndup(s, len);
}

static bool is_name_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Collect context.X / extra.X paths and the type names compared with `type`. */
static void scan_example(wanted_t *w, const char *text)
{
  for (const char *p = text; *p; p++) {
    if (*p == '#' || (p[0] == '-' && p[1] == '-')) { /* comments */
      while (*p && *p != '\n')
        p++;
      if (!*p)
        break;
      continue;
    }
    if (p > text && is_name_char(p[-1]))
      continue;
    if (strncmp(p, "context.", 8) == 0 || strncmp(p, "extra.", 6) == 0) {
      const char *e = strchr(p, '.') + 1;
      while (is_name_char(*e))
        e++;
      want(w->paths, &w->npaths, p, (size_t)(e - p));
      p = e - 1;
    } else if (strncmp(p, "type ==", 7) == 0 || strncmp(p, "type in", 7) == 0) {
      const char *e = p + 7;
      while (*e == ' ' || *e == '[')
        e++;
      while (*e == '"') {
        const char *q = strchr(e + 1, '"');
        want(w->types, &w->ntypes, e + 1, (size_t)(q - e - 1));
        e = q + 1;
        while (*e == ',' || *e == ' ')
          e++;
      }
    }
  }
}

static void test_example_fields(void **state)
{
  static const char *const files[] = {"adhoc", "downloads", "funnel", "latency",
                                      "pageviews", "traffic", "uniques"};
  wanted_t w = {0};
  for (size_t f = 0; f < ZQL_ARRAY_LEN(files); f++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/examples/%s.zql", ZQL_SRCDIR, files[f]);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    text[n] = '\0';
    fclose(fp);
    scan_example(&w, text);
  }
  assert_true(w.npaths >= 10); /* the scan found what we know is there */
  assert_true(w.ntypes >= 6);

  zql_gen_opts_t o;
  zql_gen_opts_init(&o);
  o.events = 20000;
  zql_gen_t *g;
  assert_int_equal(zql_gen_new(&o, &g, NULL), 0);
  const bson_t *doc;
  bool bot = false, human = false, tags = false;
  while (zql_gen_next(g, &doc) == 1) {
    bson_iter_t it, sub;
    for (size_t k = 0; k < w.npaths; k++)
      if (!w.path_seen[k] && bson_iter_init(&it, doc) &&
          bson_iter_find_descendant(&it, w.paths[k], &sub))
        w.path_seen[k] = true;
    bson_iter_init_find(&it, doc, "type");
    for (size_t k = 0; k < w.ntypes; k++)
      if (strcmp(bson_iter_utf8(&it, NULL), w.types[k]) == 0)
        w.type_seen[k] = true;
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "context.agent_class", &sub)) {
      bot |= strcmp(bson_iter_utf8(&sub, NULL), "bot") == 0;
      human |= strcmp(bson_iter_utf8(&sub, NULL), "human") == 0;
    }
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "extra.tags", &sub) &&
        BSON_ITER_HOLDS_ARRAY(&sub)) {
      uint32_t len;
      const uint8_t *data;
      bson_iter_array(&sub, &len, &data);
      tags |= len > 5; /* a non-empty array */
    }
  }
  zql_gen_free(g);
  for (size_t k = 0; k < w.npaths; k++) {
    if (!w.path_seen[k])
      fail_msg("no generated event has '%s'", w.paths[k]);
    zql_free(w.paths[k]);
  }
  for (size_t k = 0; k < w.ntypes; k++) {
    if (!w.type_seen[k])
      fail_msg("no generated event has type '%s'", w.types[k]);
    zql_free(w.types[k]);
  }
  assert_true(bot && human && tags);
}

/* A funnel that goes all the way: one user's visit, signup_form, signup_done in order. */
static void test_funnel_chain(void **state)
{
  zql_gen_opts_t o;
  zql_gen_opts_init(&o);
  o.events = 5000;
  zql_gen_t *g;
  assert_int_equal(zql_gen_new(&o, &g, NULL), 0);
  static uint8_t step[5001]; /* the default 5000 users */
  memset(step, 0, sizeof step);
  int complete = 0;
  const bson_t *doc;
  while (zql_gen_next(g, &doc) == 1) {
    bson_iter_t it, sub;
    if (!(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "context.user", &sub)))
      continue;
    unsigned u = (unsigned)atoi(bson_iter_utf8(&sub, NULL) + 4);
    assert_true(u >= 1 && u <= o.users);
    bson_iter_init_find(&it, doc, "type");
    const char *t = bson_iter_utf8(&it, NULL);
    if (strcmp(t, "visit") == 0)
      step[u] = 1;
    else if (strcmp(t, "signup_form") == 0 && step[u] >= 1)
      step[u] = 2;
    else if (strcmp(t, "signup_done") == 0 && step[u] == 2) {
      step[u] = 3;
      complete++;
    }
  }
  zql_gen_free(g);
  assert_true(complete >= 10);
}

/* }==== */

static void test_window(void **state)
{
  zql_gen_opts_t o;
  zql_gen_opts_init(&o);
  o.events = 5000;
  o.days = 1;
  assert_int_equal(zql_gen_parse_date("2011-07-01", &o.start_ms), 0);
  zql_gen_t *g;
  assert_int_equal(zql_gen_new(&o, &g, NULL), 0);
  const bson_t *doc;
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  while (zql_gen_next(g, &doc) == 1) {
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, "timestamp"));
    int64_t t = bson_iter_date_time(&it);
    lo = t < lo ? t : lo;
    hi = t > hi ? t : hi;
  }
  assert_int_equal(zql_gen_next(g, &doc), 0); /* stays at the end */
  zql_gen_free(g);
  assert_true(lo >= INT64_C(1309478400000) && lo < INT64_C(1309478400000) + 60000);
  assert_true(hi < INT64_C(1309478400000) + 86400000 && hi > INT64_C(1309478400000) + 86000000);

  o.events = 0; /* an empty stream is fine */
  assert_int_equal(zql_gen_new(&o, &g, NULL), 0);
  assert_int_equal(zql_gen_next(g, &doc), 0);
  zql_gen_free(g);
}

/* After zql_gen_new, generating allocates nothing through zql_malloc. */
static void test_no_alloc_per_event(void **state)
{
  zql_gen_opts_t o;
  zql_gen_opts_init(&o);
  o.events = 2000;
  zql_gen_t *g;
  assert_int_equal(zql_gen_new(&o, &g, NULL), 0);
  zql_alloc_fail_after(-1);
  const bson_t *doc;
  while (zql_gen_next(g, &doc) == 1)
    ;
  assert_int_equal(zql_alloc_fail_after(-1), 0);
  zql_gen_free(g);
}

static void test_bad_options(void **state)
{
  zql_gen_opts_t o;
  zql_gen_t *g = (zql_gen_t *)&o;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_gen_opts_init(&o);
  o.days = 0;
  assert_int_equal(zql_gen_new(&o, &g, &err), ZQL_E_USAGE);
  assert_null(g);
  assert_non_null(strstr(err.buf, "days"));
  zql_gen_opts_init(&o);
  o.users = 0;
  assert_int_equal(zql_gen_new(&o, &g, NULL), ZQL_E_USAGE);
  zql_gen_opts_init(&o);
  o.projects = ZQL_GEN_MAX_PROJECTS + 1;
  assert_int_equal(zql_gen_new(&o, &g, NULL), ZQL_E_USAGE);
  zql_gen_opts_init(&o);
  o.start_ms = INT64_C(253402300799999); /* the window would end after 9999 */
  assert_int_equal(zql_gen_new(&o, &g, NULL), ZQL_E_USAGE);
  zql_strbuf_release(&err);
}

static void test_oom(void **state)
{
  zql_gen_opts_t o;
  zql_gen_opts_init(&o);
  for (long n = 0;; n++) {
    zql_gen_t *g = NULL;
    zql_alloc_fail_after(n);
    int rc = zql_gen_new(&o, &g, NULL);
    zql_alloc_fail_after(-1);
    if (rc == 0) {
      assert_true(n >= 3);
      zql_gen_free(g);
      break;
    }
    assert_int_equal(rc, ZQL_E_NOMEM);
    assert_null(g);
  }
}

static void test_parse_date(void **state)
{
  int64_t ms;
  assert_int_equal(zql_gen_parse_date("2024-01-01", &ms), 0);
  assert_true(ms == ZQL_GEN_DEFAULT_START_MS);
  assert_int_equal(zql_gen_parse_date("2024-01-01T00:00:00Z", &ms), 0);
  assert_true(ms == ZQL_GEN_DEFAULT_START_MS);
  assert_int_equal(zql_gen_parse_date("2024-02-29T12:30:15.250Z", &ms), 0);
  assert_true(ms == INT64_C(1709209815250));
  assert_int_equal(zql_gen_parse_date("2024-01-01T01:00+01:00", &ms), 0);
  assert_true(ms == ZQL_GEN_DEFAULT_START_MS);
  assert_int_equal(zql_gen_parse_date("1969-12-31T23:59:59Z", &ms), 0);
  assert_true(ms == -1000);
  static const char *const bad[] = {"",           "2024",       "2024-13-01",
                                    "2023-02-29", "2024-01-01T10:00", "2024-01-01x",
                                    "2024-01-01T24:00:00Z", "24-01-01", "2024-01-01T10:00:00.Z"};
  for (size_t k = 0; k < ZQL_ARRAY_LEN(bad); k++)
    if (zql_gen_parse_date(bad[k], &ms) != ZQL_E_USAGE)
      fail_msg("'%s' accepted", bad[k]);
}

/* {==== zql_cmd_gen ========================================================== */

static int cmd(const char *a0, ...)
{
  char *argv[32];
  int argc = 0;
  va_list ap;
  va_start(ap, a0);
  for (const char *a = a0; a && argc < 31; a = va_arg(ap, const char *))
    argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc] = NULL;
  zql_cli_t cli = {.data_dir = "./zql-data"};
  return zql_cmd_gen(&cli, argc, argv);
}

static void test_cmd_usage(void **state)
{
  assert_int_equal(cmd("gen", NULL), 2); /* --events is required */
  assert_int_equal(cmd("gen", "--events", NULL), 2);
  assert_int_equal(cmd("gen", "--events", "-5", NULL), 2);
  assert_int_equal(cmd("gen", "--events", "10x", NULL), 2);
  assert_int_equal(cmd("gen", "--events", "10", "--days", "0", NULL), 2);
  assert_int_equal(cmd("gen", "--events", "10", "--format", "xml", NULL), 2);
  assert_int_equal(cmd("gen", "--events", "10", "--start", "yesterday", NULL), 2);
  assert_int_equal(cmd("gen", "--events", "10", "--bogus", NULL), 2);
  assert_int_equal(cmd("gen", "--events", "10", "stray", NULL), 2);
  assert_int_equal(cmd("gen", "--events", "1", "-o", "/nonexistent-dir/x.json", NULL), 1);
}

/* `zql gen -o FILE` writes what the generator makes, in each format. */
static void test_cmd_output(void **state)
{
  char path[] = "/tmp/zql-test-gen.XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  static const char *const formats[] = {"bson", "ndjson", "ndjson-canonical"};
  for (size_t f = 0; f < ZQL_ARRAY_LEN(formats); f++) {
    for (int gz = 0; gz < 2; gz++) {
      assert_int_equal(cmd("gen", "--events=300", "--seed", "5", "--format", formats[f],
                           "--days", "2", "--start", "2011-07-01", "-o", path,
                           gz ? "--gzip" : NULL, NULL),
                       0);
      zql_gen_opts_t o;
      zql_gen_opts_init(&o);
      o.events = 300;
      o.seed = 5;
      o.days = 2;
      assert_int_equal(zql_gen_parse_date("2011-07-01", &o.start_ms), 0);
      zql_gen_t *g;
      assert_int_equal(zql_gen_new(&o, &g, NULL), 0);
      zql_ioreader_t *r;
      assert_int_equal(zql_ioreader_open(path, NULL, &r, NULL), 0);
      const bson_t *want, *got;
      int n = 0;
      while (zql_gen_next(g, &want) == 1) {
        assert_int_equal(zql_ioreader_next(r, &got, NULL, NULL), 1);
        char *a = bson_as_relaxed_extended_json(want, NULL);
        char *b = bson_as_relaxed_extended_json(got, NULL);
        assert_string_equal(a, b);
        if (f != 1) /* relaxed JSON narrows int64 to int32 when the value fits */
          assert_true(bson_equal(want, got));
        bson_free(a);
        bson_free(b);
        n++;
      }
      assert_int_equal(zql_ioreader_next(r, &got, NULL, NULL), 0);
      assert_int_equal(zql_ioreader_gzip(r), gz);
      assert_int_equal(zql_ioreader_format(r), f == 0 ? ZQL_IOFMT_BSON : ZQL_IOFMT_NDJSON);
      zql_ioreader_close(r);
      zql_gen_free(g);
      assert_int_equal(n, 300);
    }
  }
  unlink(path);
}

/* }==== */

int zql_unit_gen(void)
{
  const struct CMUnitTest tests[] = {
      ZQL_UNIT_TEST(test_determinism),     ZQL_UNIT_TEST(test_fingerprint),
      ZQL_UNIT_TEST(test_distributions),   ZQL_UNIT_TEST(test_example_fields),
      ZQL_UNIT_TEST(test_funnel_chain),    ZQL_UNIT_TEST(test_window),
      ZQL_UNIT_TEST(test_no_alloc_per_event), ZQL_UNIT_TEST(test_bad_options),
      ZQL_UNIT_TEST(test_oom),             ZQL_UNIT_TEST(test_parse_date),
      ZQL_UNIT_TEST(test_cmd_usage),       ZQL_UNIT_TEST(test_cmd_output),
  };
  return cmocka_run_group_tests_name("gen", tests, NULL, NULL);
}
