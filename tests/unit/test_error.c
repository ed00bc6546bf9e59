/*
 * test_error.c -- unit tests of the error-code table and diagnostic lists
 * (runtime/base/error.c, layer 0).
 *
 * The table comes from runtime/base/errcodes.txt through the generated errcodes.h; these
 * tests hold it to the rules stated there (every code round-trips through its string,
 * W codes are warnings and only they are) and check the diagnostic list: append, hints,
 * stable sorting by position, the error cap and the out-of-memory flag.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"
#include "parser/source.h" /* zql_diags_sort orders by source */

static void test_code_strings(void **state)
{
  assert_string_equal(zql_err_code_str(ZQL_E_UNKNOWN_NAME), "E3001");
  assert_string_equal(zql_err_code_str(ZQL_W_NULL_COMPARISON), "W3901");
  assert_string_equal(zql_err_code_str(ZQL_E_NOMEM), "E0001");
  assert_string_equal(zql_err_code_str(ZQL_E_SYNTAX), "E2001");
  assert_string_equal(zql_err_code_str(-9999), "E????");
  assert_int_equal(ZQL_E_NOMEM, -1);
  assert_int_equal(ZQL_E_UNKNOWN_NAME, -3001);
  assert_int_equal(ZQL_W_NULL_COMPARISON, -3901);
}

static void test_names_and_messages(void **state)
{
  assert_string_equal(zql_err_name(ZQL_E_UNKNOWN_NAME), "UNKNOWN_NAME");
  assert_string_equal(zql_err_name(ZQL_W_UNUSED_LET), "UNUSED_LET");
  assert_null(zql_err_name(-9999));
  assert_null(zql_err_name(ZQL_OK));
  assert_string_equal(zql_strerror(ZQL_E_UNKNOWN_NAME), "unknown name");
  assert_string_equal(zql_strerror(ZQL_E_NOMEM), "out of memory");
  assert_non_null(zql_strerror(-9999));
  assert_string_equal(zql_err_class(ZQL_E_UNKNOWN_NAME), "semantic");
  assert_string_equal(zql_err_class(ZQL_E_BAD_CHAR), "lexical");
  assert_string_equal(zql_err_class(ZQL_E_SYNTAX), "syntax");
  assert_string_equal(zql_err_class(ZQL_E_IO), "runtime");
  assert_string_equal(zql_err_class(ZQL_W_NULL_COMPARISON), "warning");
}

typedef struct {
  int count;
  int last;
  bool seen_unknown_name, seen_null_comparison;
} walk_t;

static void check_code(int code, void *arg)
{
  walk_t *w = arg;
  w->count++;
  /* codes are negative and distinct from their predecessor */
  assert_true(code < 0);
  const char *s = zql_err_code_str(code);
  assert_int_equal(strlen(s), 5);
  assert_true(s[0] == 'E' || s[0] == 'W');
  for (int i = 1; i < 5; i++)
    assert_true(s[i] >= '0' && s[i] <= '9');
  assert_int_equal(-atoi(s + 1), code); /* the string round-trips to the code */
  const char *cls = zql_err_class(code);
  assert_int_equal(s[0] == 'W', strcmp(cls, "warning") == 0);
  if (s[0] == 'E') {
    const char *want = s[1] == '0' ? "runtime" : s[1] == '1' ? "lexical"
                     : s[1] == '2' ? "syntax" : "semantic";
    /* E1011 (nesting too deep) is found by the parser and classed as syntax */
    if (code != ZQL_E_TOO_DEEP)
      assert_string_equal(cls, want);
  }
  const char *name = zql_err_name(code);
  assert_non_null(name);
  assert_true(name[0] >= 'A' && name[0] <= 'Z');
  const char *msg = zql_strerror(code);
  assert_non_null(msg);
  assert_true(msg[0] != '\0');
  size_t n = strlen(msg);
  assert_true(msg[n - 1] != '.'); /* message style: no trailing period */
  assert_true(code != w->last);
  w->last = code;
  w->seen_unknown_name |= code == ZQL_E_UNKNOWN_NAME;
  w->seen_null_comparison |= code == ZQL_W_NULL_COMPARISON;
}

static void test_every_code_round_trips(void **state)
{
  walk_t w = {0, 0, false, false};
  zql_err_foreach(check_code, &w);
  assert_true(w.count > 50);
  assert_true(w.seen_unknown_name);
  assert_true(w.seen_null_comparison);
}

static zql_span_t span(uint32_t s, uint32_t e)
{
  zql_span_t sp = {s, e};
  return sp;
}

static void test_diag_add(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_diags_t d;
  zql_diags_init(&d, a);
  assert_int_equal(d.n, 0);
  assert_int_equal(d.nerr, 0);

  zql_error_t *e = zql_diag_add(&d, NULL, ZQL_E_UNKNOWN_NAME, span(4, 7), "unknown name '%s'",
                                "usr");
  assert_non_null(e);
  assert_int_equal(e->code, ZQL_E_UNKNOWN_NAME);
  assert_int_equal(e->severity, ZQL_SEV_ERROR);
  assert_string_equal(e->message, "unknown name 'usr'");
  assert_null(e->hint);
  assert_int_equal(e->span.start, 4);
  assert_int_equal(e->span.end, 7);
  assert_null(e->source);
  zql_diag_hint(&d, e, "did you mean '%s'?", "context.user");
  assert_string_equal(e->hint, "did you mean 'context.user'?");
  zql_diag_hint(&d, NULL, "ignored"); /* a hint for an unrecorded error is a no-op */

  zql_error_t *w = zql_diag_add(&d, NULL, ZQL_W_NULL_COMPARISON, span(0, 1), "x == null");
  assert_non_null(w);
  assert_int_equal(w->severity, ZQL_SEV_WARNING);
  assert_int_equal(d.n, 2);
  assert_int_equal(d.nerr, 1);
  assert_int_equal(d.nwarn, 1);
  assert_false(d.oom);

  /* many diagnostics: the array grows, earlier strings stay valid */
  for (int i = 0; i < 40; i++)
    assert_non_null(zql_diag_add(&d, NULL, ZQL_W_UNUSED_LET, span(0, 0), "w%d", i));
  assert_int_equal(d.n, 42);
  assert_string_equal(d.items[0].message, "unknown name 'usr'");
  assert_string_equal(d.items[41].message, "w39");
  zql_diags_release(&d);
  assert_int_equal(d.n, 0);
  zql_arena_delete(a);
}

static void test_diag_sort(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_diags_t d;
  zql_diags_init(&d, a);
  uint32_t starts[] = {30, 10, 20, 10, 0, 30};
  const char *msgs[] = {"a", "b", "c", "d", "e", "f"};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(starts); i++)
    assert_non_null(zql_diag_add(&d, NULL, ZQL_E_SYNTAX, span(starts[i], starts[i] + 1), "%s",
                                 msgs[i]));
  zql_diags_sort(&d);
  const char *want[] = {"e", "b", "d", "c", "a", "f"}; /* by offset; ties keep their order */
  for (size_t i = 0; i < ZQL_ARRAY_LEN(want); i++)
    assert_string_equal(d.items[i].message, want[i]);
  zql_diags_release(&d);

  /* several files: by file order first (as given on the command line), then offset;
   * diagnostics without a source (I/O errors) come first */
  zql_source_t s0, s1;
  assert_int_equal(zql_source_init(&s0, a, "a.zql", "x", 1), 0);
  assert_int_equal(zql_source_init(&s1, a, "b.zql", "y", 1), 0);
  s0.order = 0;
  s1.order = 1;
  zql_diags_init(&d, a);
  assert_non_null(zql_diag_add(&d, &s1, ZQL_E_SYNTAX, span(5, 6), "b5"));
  assert_non_null(zql_diag_add(&d, &s0, ZQL_E_SYNTAX, span(9, 9), "a9"));
  assert_non_null(zql_diag_add(&d, &s1, ZQL_E_SYNTAX, span(1, 2), "b1"));
  assert_non_null(zql_diag_add(&d, NULL, ZQL_E_IO, span(0, 0), "io"));
  assert_non_null(zql_diag_add(&d, &s0, ZQL_E_SYNTAX, span(2, 3), "a2"));
  zql_diags_sort(&d);
  const char *want2[] = {"io", "a2", "a9", "b1", "b5"};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(want2); i++)
    assert_string_equal(d.items[i].message, want2[i]);
  zql_diags_release(&d);
  zql_arena_delete(a);
}

static void test_max_errors(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_diags_t d;
  zql_diags_init(&d, a);
  d.max_errors = 3;
  for (int i = 0; i < 5; i++) {
    zql_error_t *e = zql_diag_add(&d, NULL, ZQL_E_SYNTAX, span(0, 0), "error %d", i);
    if (i < 3)
      assert_non_null(e);
    else
      assert_null(e); /* past the cap: counted, not recorded */
  }
  assert_int_equal(d.nerr, 5);
  assert_int_equal(d.n, 3);
  /* warnings are not errors: they are still recorded */
  assert_non_null(zql_diag_add(&d, NULL, ZQL_W_UNUSED_LET, span(0, 0), "unused"));
  assert_int_equal(d.nerr, 5);
  assert_int_equal(d.nwarn, 1);
  zql_diags_release(&d);

  /* the default cap is 50 */
  zql_diags_init(&d, a);
  for (int i = 0; i < 60; i++)
    zql_diag_add(&d, NULL, ZQL_E_SYNTAX, span(0, 0), "error %d", i);
  assert_int_equal(d.nerr, 60);
  assert_int_equal(d.n, 50);
  zql_diags_release(&d);
  zql_arena_delete(a);
}

static void test_diag_oom(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_diags_t d;
  zql_diags_init(&d, a);
  zql_alloc_fail_after(0);
  zql_error_t *e = zql_diag_add(&d, NULL, ZQL_E_SYNTAX, span(0, 0), "lost");
  zql_alloc_fail_after(-1);
  assert_null(e);
  assert_true(d.oom);
  assert_int_equal(d.nerr, 1); /* still counted: the driver stops */
  e = zql_diag_add(&d, NULL, ZQL_E_SYNTAX, span(0, 0), "kept");
  assert_non_null(e);
  assert_string_equal(e->message, "kept");
  zql_diags_release(&d);
  zql_arena_delete(a);
}

int zql_unit_error(void)
{
  const struct CMUnitTest tests[] = {
      ZQL_UNIT_TEST(test_code_strings),  ZQL_UNIT_TEST(test_names_and_messages),
      ZQL_UNIT_TEST(test_every_code_round_trips),
      ZQL_UNIT_TEST(test_diag_add),      ZQL_UNIT_TEST(test_diag_sort),
      ZQL_UNIT_TEST(test_max_errors),    ZQL_UNIT_TEST(test_diag_oom),
  };
  return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
