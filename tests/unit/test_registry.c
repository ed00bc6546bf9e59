/*
 * test_registry.c -- unit tests of the function registry and the tzdata checks.
 *
 * Pipeline position: tests stage 2b's lookup tables (parser/registry.c over
 * parser/funclist.h) and layer 0's runtime/base/tzdb.c, which the analyzer uses for
 * E3002/E3003/E3004 and E3015. Run by tests/unit/run-unit through zql_unit_registry().
 *
 * The tzdb tests read the system tzdata ($ZQL_ZONEINFO, $TZDIR or the configured
 * directory) and are skipped when it has no "UTC" zone. The environment test restores
 * ZQL_ZONEINFO and TZDIR before it asserts anything, so a failure leaves them intact.
 */
#include "runtime/base/zql_common.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <unistd.h>

#include "parser/registry.h"
#include "runtime/base/alloc.h"
#include "runtime/base/tzdb.h"

int zql_unit_registry(void); /* called by tests/unit/run-unit.c */

/* {==== registry ========================================================================== */

static void test_lookup(void **state)
{
  const zql_func_t *f = zql_func_lookup("count", 0);
  assert_non_null(f);
  assert_string_equal(f->name, "count");
  assert_int_equal(f->kind, ZQL_FN_AGGREGATE);
  assert_int_equal(f->result, ZQL_T_INT);
  assert_ptr_equal(zql_func_lookup("count", 1), f); /* count is 0..1 */
  assert_null(zql_func_lookup("count", 2));

  f = zql_func_lookup("quantile", 2);
  assert_non_null(f);
  assert_ptr_equal(zql_func_lookup("quantile", 3), f);
  assert_null(zql_func_lookup("quantile", 1));
  assert_null(zql_func_lookup("quantile", 4));
  assert_ptr_equal(zql_func_by_name("quantile"), f);
  assert_int_equal(f->min_args, 2);
  assert_int_equal(f->max_args, 3);

  assert_non_null(zql_func_lookup("now", 0));
  assert_null(zql_func_lookup("now", 1));
  assert_non_null(zql_func_lookup("if", 3));
  assert_non_null(zql_func_lookup("window_funnel", 3));
  assert_non_null(zql_func_lookup("window_funnel", 40));
  assert_null(zql_func_lookup("window_funnel", 2));
  assert_non_null(zql_func_lookup("retention", 1));
  assert_null(zql_func_lookup("retention", 0));

  /* names are case-sensitive; unknown names have no entry */
  assert_null(zql_func_lookup("COUNT", 0));
  assert_null(zql_func_lookup("nosuchfunc", 1));
  assert_null(zql_func_by_name("nosuchfunc"));
  assert_null(zql_func_by_name(NULL));
  assert_null(zql_func_lookup(NULL, 0));
  /* bucket is syntax, and size is not an alias of len */
  assert_null(zql_func_by_name("bucket"));
  assert_null(zql_func_by_name("size"));
  assert_non_null(zql_func_lookup("len", 1));
}

static void test_overload(void **state)
{
  static const char *const names[] = {"min", "max"};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(names); i++) {
    const zql_func_t *agg = zql_func_lookup(names[i], 1);
    const zql_func_t *two = zql_func_lookup(names[i], 2);
    const zql_func_t *many = zql_func_lookup(names[i], 7);
    assert_non_null(agg);
    assert_non_null(two);
    assert_int_equal(agg->kind, ZQL_FN_AGGREGATE);
    assert_true(agg->flags & ZQL_FN_TABLE);
    assert_int_equal(two->kind, ZQL_FN_SCALAR);
    assert_int_equal(two->max_args, -1);
    assert_ptr_equal(many, two);
    assert_ptr_not_equal(agg, two);
    assert_null(zql_func_lookup(names[i], 0));
    /* by_name gives some entry of that name (for the arity message) */
    const zql_func_t *any = zql_func_by_name(names[i]);
    assert_true(any == agg || any == two);
  }
}

static void test_arg_kinds(void **state)
{
  const zql_func_t *f = zql_func_lookup("window_funnel", 4);
  assert_non_null(f);
  assert_int_equal(zql_func_arg_kind(f, 0), 'e');
  assert_int_equal(zql_func_arg_kind(f, 1), 'd');
  assert_int_equal(zql_func_arg_kind(f, 2), 'b');
  assert_int_equal(zql_func_arg_kind(f, 3), 'b');
  assert_int_equal(zql_func_arg_kind(f, 100), 'b');

  f = zql_func_lookup("sequence_match", 3);
  assert_non_null(f);
  assert_int_equal(zql_func_arg_kind(f, 0), 's');
  assert_int_equal(zql_func_arg_kind(f, 1), 'e');
  assert_int_equal(zql_func_arg_kind(f, 5), 'b');

  f = zql_func_lookup("retention", 3);
  assert_non_null(f);
  for (int i = 0; i < 5; i++)
    assert_int_equal(zql_func_arg_kind(f, i), 'b');

  f = zql_func_lookup("quantile", 3);
  assert_int_equal(zql_func_arg_kind(f, 0), 'e');
  assert_int_equal(zql_func_arg_kind(f, 1), 'n');
  assert_int_equal(zql_func_arg_kind(f, 2), 'n');
  assert_int_equal(zql_func_arg_kind(f, 3), 'e'); /* out of range */
  assert_int_equal(zql_func_arg_kind(f, -1), 'e');

  assert_int_equal(zql_func_arg_kind(zql_func_lookup("hll", 2), 1), 'i');
  assert_int_equal(zql_func_arg_kind(zql_func_lookup("topk", 2), 1), 'i');
  assert_int_equal(zql_func_arg_kind(zql_func_lookup("histogram", 2), 1), 'a');
  assert_int_equal(zql_func_arg_kind(zql_func_lookup("regex_match", 2), 1), 'r');
  assert_int_equal(zql_func_arg_kind(zql_func_lookup("regex_extract", 3), 2), 'i');
  assert_int_equal(zql_func_arg_kind(zql_func_lookup("trunc", 3), 1), 'u');
  assert_int_equal(zql_func_arg_kind(zql_func_lookup("trunc", 3), 2), 's');
  assert_int_equal(zql_func_arg_kind(zql_func_lookup("merge", 1), 0), 't');
  assert_int_equal(zql_func_arg_kind(zql_func_lookup("hll_downgrade", 2), 0), 't');
  assert_int_equal(zql_func_arg_kind(zql_func_lookup("if", 3), 0), 'b');
  assert_int_equal(zql_func_arg_kind(zql_func_lookup("coalesce", 4), 3), 'e');
  assert_int_equal(zql_func_arg_kind(zql_func_lookup("min", 9), 8), 'e');
  assert_int_equal(zql_func_arg_kind(zql_func_lookup("now", 0), 0), 'e');
  assert_int_equal(zql_func_arg_kind(NULL, 0), 'e');

  /* table reducers: written argument i is checked as argument i + 1 */
  f = zql_func_lookup("maximum", 1 + 1); /* table t[...] of string: maximum(5) */
  assert_non_null(f);
  assert_true(f->flags & ZQL_FN_TABLE);
  assert_int_equal(zql_func_arg_kind(f, 0 + 1), 'i');
  assert_non_null(zql_func_lookup("sum", 0 + 1)); /* sum() */
  assert_non_null(zql_func_lookup("count", 0 + 1)); /* count() */
}

static void test_flags(void **state)
{
  static const char *const table_ok[] = {
    "sum", "count", "min", "max", "avg", "maximum", "minimum", "topk", "collect",
    "sample", "hll", "distinct_count", "quantile",
  };
  size_t n;
  const zql_func_t *tab = zql_func_table(&n);
  size_t ntable = 0;
  for (size_t i = 0; i < n; i++) {
    if (!(tab[i].flags & ZQL_FN_TABLE))
      continue;
    ntable++;
    assert_int_equal(tab[i].kind, ZQL_FN_AGGREGATE);
    bool listed = false;
    for (size_t j = 0; j < ZQL_ARRAY_LEN(table_ok); j++)
      listed |= strcmp(tab[i].name, table_ok[j]) == 0;
    if (!listed)
      fail_msg("'%s' must not be a table reducer", tab[i].name);
  }
  assert_int_equal(ntable, ZQL_ARRAY_LEN(table_ok));

  assert_true(zql_func_by_name("first")->flags & ZQL_FN_BY);
  assert_true(zql_func_by_name("last")->flags & ZQL_FN_BY);
  assert_false(zql_func_lookup("max", 1)->flags & ZQL_FN_BY);
  unsigned topk = zql_func_by_name("topk")->flags;
  assert_true((topk & ZQL_FN_WEIGHT) && (topk & ZQL_FN_NONDET));
  assert_true(zql_func_by_name("maximum")->flags & ZQL_FN_WEIGHT);
  assert_true(zql_func_by_name("minimum")->flags & ZQL_FN_WEIGHT);
  assert_false(zql_func_by_name("maximum")->flags & ZQL_FN_NONDET);
  assert_false(zql_func_by_name("sample")->flags & ZQL_FN_NONDET); /* bottom-k by hash: split-independent */
  assert_true(zql_func_by_name("distinct_count")->flags & ZQL_FN_LIMIT);
  assert_false(zql_func_by_name("hll")->flags & ZQL_FN_LIMIT);
  assert_true(zql_func_by_name("now")->flags & ZQL_FN_VOLATILE);

  const zql_func_t *s = zql_func_by_name("session");
  assert_int_equal(s->kind, ZQL_FN_SCALAR);
  assert_true((s->flags & ZQL_FN_GAP) && (s->flags & ZQL_FN_NOMERGE));
  assert_int_equal(s->result, ZQL_T_DATE);

  /* the clause flags belong to the functions that take the clause, and to no other */
  for (size_t i = 0; i < n; i++) {
    if (tab[i].flags & ZQL_FN_GAP)
      assert_string_equal(tab[i].name, "session");
    if (tab[i].flags & ZQL_FN_LIMIT)
      assert_string_equal(tab[i].name, "distinct_count");
    if (tab[i].flags & ZQL_FN_BY)
      assert_true(strcmp(tab[i].name, "first") == 0 || strcmp(tab[i].name, "last") == 0);
  }
}

/*
 * What is wrong with entry f of the table tab[n] (the invariants funclist.h states), or
 * NULL when it is well formed.
 */
static const char *entry_problem(const zql_func_t *f, const zql_func_t *tab, size_t n)
{
  if (!f->name || !islower((unsigned char)f->name[0]))
    return "name must start with a lowercase letter";
  for (const char *p = f->name; *p; p++)
    if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_')
      return "name must be [a-z0-9_]";
  if (f->kind != ZQL_FN_SCALAR && f->kind != ZQL_FN_AGGREGATE)
    return "bad kind";
  if (f->min_args < 0 || (f->max_args >= 0 && f->min_args > f->max_args))
    return "min_args > max_args";
  if (f->result >= ZQL_T__COUNT)
    return "bad result type";

  size_t nl = strlen(f->name);
  if (!f->synopsis || strncmp(f->synopsis, f->name, nl) != 0 || f->synopsis[nl] != '(')
    return "synopsis must start with 'name('";
  size_t dl = f->doc ? strlen(f->doc) : 0;
  if (dl < 10)
    return "doc missing or too short";
  if (strchr(f->doc, '\n') || f->doc[dl - 1] == '.')
    return "doc must be one line without a trailing period";

  size_t al = strlen(f->args), letters = 0;
  for (size_t k = 0; k < al; k++) {
    if (f->args[k] == '*') {
      if (k != al - 1 || k == 0)
        return "'*' must follow the last letter";
    } else if (!strchr("ebnisudrat", f->args[k])) {
      return "unknown argument kind letter";
    } else {
      letters++;
    }
  }
  bool variadic = al > 0 && f->args[al - 1] == '*';
  if (variadic != (f->max_args < 0))
    return "variadic entries (max -1) and only they end their kinds with '*'";
  if (letters != (size_t)(variadic ? f->min_args : f->max_args))
    return "kind letters must number max_args (fixed) or min_args (variadic)";

  for (const zql_func_t *g = tab; g < tab + n; g++) {
    if (g == f || strcmp(f->name, g->name) != 0)
      continue;
    bool f_below = f->max_args >= 0 && f->max_args < g->min_args;
    bool g_below = g->max_args >= 0 && g->max_args < f->min_args;
    if (!f_below && !g_below)
      return "overlapping arities with another entry of the same name";
  }
  if (zql_func_lookup(f->name, f->min_args) != f)
    return "lookup by name and min_args does not find the entry";
  return NULL;
}

static void test_table_entries(void **state)
{
  size_t n = 0;
  const zql_func_t *tab = zql_func_table(&n);
  assert_non_null(tab);
  assert_true(n > 60);
  assert_ptr_equal(zql_func_table(NULL), tab);
  for (size_t i = 0; i < n; i++) {
    const char *why = entry_problem(&tab[i], tab, n);
    if (why)
      fail_msg("entry %zu '%s': %s", i, tab[i].name ? tab[i].name : "(null)", why);
  }
}

static void test_suggest(void **state)
{
  assert_string_equal(zql_func_suggest("cuont"), "count");
  assert_string_equal(zql_func_suggest("COUNT"), "count");
  assert_string_equal(zql_func_suggest("Sum"), "sum");
  assert_string_equal(zql_func_suggest("quantle"), "quantile");
  assert_string_equal(zql_func_suggest("distinct_cnt"), "distinct_count");
  assert_string_equal(zql_func_suggest("regex_extarct"), "regex_extract");
  assert_string_equal(zql_func_suggest("windowfunnel"), "window_funnel");
  assert_string_equal(zql_func_suggest("maxx"), "max");       /* one name, two entries */
  assert_null(zql_func_suggest("mn"));                         /* min and ln tie */
  assert_null(zql_func_suggest("xy"));                         /* distance == length */
  assert_null(zql_func_suggest("completely_unrelated"));
  assert_null(zql_func_suggest(""));
  assert_null(zql_func_suggest(NULL));
  char longname[200];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_null(zql_func_suggest(longname));
}

/* }==== */

/* {==== tzdb ============================================================================== */

static bool have_tzdata(void)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/UTC", zql_tzdb_dir());
  return access(path, R_OK) == 0;
}

static void test_tz_valid(void **state)
{
  if (!have_tzdata())
    skip();
  static const char *const good[] = {
    "UTC", "America/New_York", "Etc/GMT+5", "Etc/GMT-14", "Europe/Paris",
    "America/Argentina/Buenos_Aires", "Asia/Kolkata",
  };
  static const char *const bad[] = {
    "", "Mars/Olympus", "../etc/passwd", "America/../UTC", "/usr/share/zoneinfo/UTC",
    "America", "zone.tab", "tzdata.zi", "leapseconds", "America//New_York",
    "America/New_York/", "America/New York", "utc", "Europe/Paris\n", "UTC;rm",
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(good); i++)
    if (!zql_tzdb_valid(good[i]))
      fail_msg("'%s' should be a valid zone", good[i]);
  for (size_t i = 0; i < ZQL_ARRAY_LEN(bad); i++)
    if (zql_tzdb_valid(bad[i]))
      fail_msg("'%s' should not be a valid zone", bad[i]);
  assert_false(zql_tzdb_valid(NULL));

  char longname[300];
  memset(longname, 'A', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_false(zql_tzdb_valid(longname));
}

static void expect_suggestion(const char *name, const char *want)
{
  char buf[256];
  bool ok = zql_tzdb_suggest(name, buf, sizeof buf);
  if (!ok)
    fail_msg("no suggestion for '%s', expected '%s'", name, want);
  if (strcmp(buf, want) != 0)
    fail_msg("suggestion for '%s' is '%s', expected '%s'", name, buf, want);
}

static void test_tz_suggest(void **state)
{
  if (!have_tzdata())
    skip();
  expect_suggestion("america/new_york", "America/New_York"); /* case */
  expect_suggestion("utc", "UTC");
  expect_suggestion("New_York", "America/New_York");         /* last component */
  expect_suggestion("new york", "America/New_York");
  expect_suggestion("paris", "Europe/Paris");
  expect_suggestion("Asia/Paris", "Europe/Paris");
  expect_suggestion("Europe/Pariss", "Europe/Paris");        /* edit distance */
  expect_suggestion("Amerika/New_York", "America/New_York");
  expect_suggestion("Asia/Tokio", "Asia/Tokyo");
  expect_suggestion("Buenos_Aires", "America/Argentina/Buenos_Aires");

  char buf[64];
  assert_false(zql_tzdb_suggest("Xqzwv/Qqqqqqqqq", buf, sizeof buf));
  assert_false(zql_tzdb_suggest("", buf, sizeof buf));
  assert_false(zql_tzdb_suggest(NULL, buf, sizeof buf));
  assert_false(zql_tzdb_suggest("new_york", buf, 8)); /* does not fit */
  assert_false(zql_tzdb_suggest("new_york", buf, 0));

  /* out of memory: no suggestion, no crash */
  zql_alloc_fail_after(0);
  bool got = zql_tzdb_suggest("paris", buf, sizeof buf);
  zql_alloc_fail_after(-1);
  assert_false(got);
}

/* A copy of getenv(name) in buf (false when unset), to restore it later. */
static bool save_env(const char *name, char *buf, size_t size)
{
  const char *v = getenv(name);
  if (!v)
    return false;
  snprintf(buf, size, "%s", v);
  return true;
}

static void restore_env(const char *name, bool set, const char *value)
{
  if (set)
    setenv(name, value, 1);
  else
    unsetenv(name);
}

static void test_tz_dir(void **state)
{
  if (!have_tzdata())
    skip();
  char real[4096], zi[4096], tzdir[4096], buf[64];
  snprintf(real, sizeof real, "%s", zql_tzdb_dir());
  bool had_zi = save_env("ZQL_ZONEINFO", zi, sizeof zi);
  bool had_tzdir = save_env("TZDIR", tzdir, sizeof tzdir);

  /* ZQL_ZONEINFO wins over TZDIR */
  setenv("ZQL_ZONEINFO", "/nonexistent/zoneinfo", 1);
  setenv("TZDIR", real, 1);
  bool zi_first = strcmp(zql_tzdb_dir(), "/nonexistent/zoneinfo") == 0;
  bool utc_in_missing_dir = zql_tzdb_valid("UTC");
  bool suggest_in_missing_dir = zql_tzdb_suggest("utc", buf, sizeof buf);
  /* an empty ZQL_ZONEINFO counts as unset: TZDIR is next */
  setenv("ZQL_ZONEINFO", "", 1);
  bool tzdir_next = strcmp(zql_tzdb_dir(), real) == 0;
  bool utc_via_tzdir = zql_tzdb_valid("UTC");
  unsetenv("ZQL_ZONEINFO");
  unsetenv("TZDIR");
  bool has_default = zql_tzdb_dir()[0] == '/';

  restore_env("ZQL_ZONEINFO", had_zi, zi);
  restore_env("TZDIR", had_tzdir, tzdir);

  assert_true(zi_first);
  assert_false(utc_in_missing_dir);
  assert_false(suggest_in_missing_dir);
  assert_true(tzdir_next);
  assert_true(utc_via_tzdir);
  assert_true(has_default);
  assert_string_equal(zql_tzdb_dir(), real);
}

/* }==== */

int zql_unit_registry(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_lookup),
    cmocka_unit_test(test_overload),
    cmocka_unit_test(test_arg_kinds),
    cmocka_unit_test(test_flags),
    cmocka_unit_test(test_table_entries),
    cmocka_unit_test(test_suggest),
    cmocka_unit_test(test_tz_valid),
    cmocka_unit_test(test_tz_suggest),
    cmocka_unit_test(test_tz_dir),
  };
  return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
