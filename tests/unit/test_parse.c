/*
 * test_parse.c -- unit tests of the front end through its public API (parser/zql_parse.h):
 * zql_parse() and zql_analyze() on small texts.
 *
 * The golden tests (tests/parse, tests/checked, tests/errors) pin down the printed trees
 * and messages; these tests check what only the API shows: node kinds and list counts,
 * return codes, the code and byte offset of the first diagnostic, the depth limit, and
 * out-of-memory. The OOM test makes the Nth allocation fail for N = 0, 1, ... until
 * parsing and analysis of a sample aggregate succeed: every step must return 0 or
 * ZQL_E_NOMEM and must not crash (or leak, under ASan).
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include "parser/ast.h"
#include "parser/source.h"
#include "parser/zql_parse.h"
#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"

static const char sample[] =
    "# page views per project and day\n"
    "aggregate pageviews_daily\n"
    "  from event\n"
    "  where type == \"pageview\"\n"
    "  group by context.project as project,\n"
    "           bucket(timestamp, day) as day\n"
    "  compute views = count(),\n"
    "          bytes = sum(extra.bytes),\n"
    "          bots = count() where context.agent_class == \"bot\"\n"
    "  into \"zagg.pageviews_daily\"\n"
    "  mode reduce\n"
    "  schedule every 5s;\n";

typedef struct {
  zql_arena_t *arena;
  zql_source_t src;
  zql_diags_t diags;
  zql_node_t *file;
  int parse_rc, analyze_rc;
} fixture_t;

static int setup(void **state)
{
  fixture_t *f = calloc(1, sizeof *f);
  if (!f || !(f->arena = zql_arena_create(NULL)))
    return -1;
  zql_diags_init(&f->diags, f->arena);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture_t *f = *state;
  zql_alloc_fail_after(-1);
  zql_diags_release(&f->diags);
  zql_arena_delete(f->arena);
  free(f);
  return 0;
}

/* Print the diagnostics (a failing test then shows what the front end said). */
static void show_diags(const fixture_t *f)
{
  zql_strbuf_t out = ZQL_STRBUF_INIT;
  zql_diags_render(&out, &f->diags, false);
  if (out.len)
    print_message("%s", out.buf);
  zql_strbuf_release(&out);
}

/* Parse `text`; analyze too when `analyze` and parsing found no error. */
static void parse_text(fixture_t *f, const char *text, size_t len, bool analyze)
{
  assert_int_equal(zql_source_init(&f->src, f->arena, "t.zql", text, len), 0);
  f->file = NULL;
  f->parse_rc = zql_parse(f->arena, &f->src, &f->diags, &f->file);
  f->analyze_rc = 0;
  if (analyze && f->diags.nerr == 0)
    f->analyze_rc = zql_analyze(f->arena, &f->file, 1, &f->diags);
}

static bool has_code(const zql_diags_t *d, int code)
{
  for (size_t i = 0; i < d->n; i++)
    if (d->items[i].code == code)
      return true;
  return false;
}

static void check_sample_tree(const zql_node_t *file)
{
  assert_non_null(file);
  assert_int_equal(file->kind, ZQL_N_FILE);
  assert_int_equal(file->u.file.items.n, 1);
  const zql_node_t *agg = file->u.file.items.items[0];
  assert_non_null(agg);
  assert_int_equal(agg->kind, ZQL_N_AGGREGATE);
  assert_string_equal(agg->u.query.name, "pageviews_daily");
  assert_int_equal(agg->u.query.sources.n, 1);
  assert_int_equal(agg->u.query.rowops.n, 1);
  assert_int_equal(agg->u.query.rowops.items[0]->kind, ZQL_N_WHERE);
  assert_true(agg->u.query.grouped);
  assert_int_equal(agg->u.query.keys.n, 2);
  assert_true(agg->u.query.has_compute);
  assert_int_equal(agg->u.query.compute.n, 3);
  assert_int_equal(agg->u.query.options.n, 3);
  assert_null(agg->u.query.map);
  for (uint32_t i = 0; i < agg->u.query.keys.n; i++)
    assert_int_equal(agg->u.query.keys.items[i]->kind, ZQL_N_KEY);
  const zql_node_t *bots = agg->u.query.compute.items[2];
  assert_int_equal(bots->kind, ZQL_N_AGGITEM);
  assert_string_equal(bots->u.aggitem.name, "bots");
  assert_non_null(bots->u.aggitem.filter);
  /* spans are byte offsets into the text */
  assert_true(agg->span.start >= 33 && agg->span.start < agg->span.end);
  assert_true(agg->depth > 1 && agg->depth < ZQL_MAX_DEPTH);
}

static void test_parse_aggregate(void **state)
{
  fixture_t *f = *state;
  parse_text(f, sample, sizeof sample - 1, false);
  show_diags(f);
  assert_int_equal(f->parse_rc, 0);
  assert_int_equal(f->diags.nerr, 0);
  check_sample_tree(f->file);
  assert_ptr_equal(zql_file_source(f->file), &f->src);
}

static void test_analyze_aggregate(void **state)
{
  fixture_t *f = *state;
  parse_text(f, sample, sizeof sample - 1, true);
  show_diags(f);
  assert_int_equal(f->parse_rc, 0);
  assert_int_equal(f->analyze_rc, 0);
  assert_int_equal(f->diags.nerr, 0);
  check_sample_tree(f->file);
  const zql_node_t *agg = f->file->u.file.items.items[0];
  assert_string_equal(agg->u.query.keys.items[0]->u.key.name, "project");
  assert_string_equal(agg->u.query.keys.items[1]->u.key.name, "day");
  const zql_node_t *views = agg->u.query.compute.items[0]->u.aggitem.expr;
  assert_int_equal(views->kind, ZQL_N_CALL);
  assert_true(views->u.call.is_agg);
  assert_non_null(views->u.call.func);

  zql_strbuf_t out = ZQL_STRBUF_INIT;
  zql_ast_print(&out, f->file, true);
  assert_false(out.oom);
  assert_non_null(strstr(out.buf, "pageviews_daily"));
  zql_strbuf_release(&out);
}

static void test_empty_and_comments(void **state)
{
  fixture_t *f = *state;
  parse_text(f, "", 0, true);
  assert_int_equal(f->parse_rc, 0);
  assert_int_equal(f->diags.nerr, 0);
  assert_non_null(f->file);
  assert_int_equal(f->file->kind, ZQL_N_FILE);
  assert_int_equal(f->file->u.file.items.n, 0);

  const char *c = "# a comment\n-- another\n";
  parse_text(f, c, strlen(c), true);
  assert_int_equal(f->parse_rc, 0);
  assert_int_equal(f->analyze_rc, 0);
  assert_int_equal(f->file->u.file.items.n, 0);
}

static void test_syntax_error(void **state)
{
  fixture_t *f = *state;
  const char *t = "from event where type == == 1;\n";
  parse_text(f, t, strlen(t), false);
  assert_int_equal(f->parse_rc, ZQL_E_SYNTAX);
  assert_true(f->diags.nerr > 0);
  assert_true(f->diags.n > 0);
  assert_int_equal(f->diags.items[0].code, ZQL_E_SYNTAX);
  assert_int_equal(f->diags.items[0].span.start, 25); /* the second "==" */
  assert_ptr_equal(f->diags.items[0].source, &f->src);
  assert_non_null(f->file); /* set even with errors */
  assert_int_equal(f->file->kind, ZQL_N_FILE);
}

static void test_recovery(void **state)
{
  fixture_t *f = *state;
  /* two broken statements and a good one: both errors, and the good item survives */
  const char *t = "from event where (;\n"
                  "from event group by type compute n = count();\n"
                  "from event where type == ;\n";
  parse_text(f, t, strlen(t), false);
  show_diags(f);
  assert_int_equal(f->parse_rc, ZQL_E_SYNTAX);
  assert_int_equal(f->diags.nerr, 2);
  assert_int_equal(f->diags.items[1].span.start, (uint32_t)(strstr(t, "== ;") - t) + 3);
  assert_non_null(f->file);
  assert_int_equal(f->file->u.file.items.n, 1);
  assert_int_equal(f->file->u.file.items.items[0]->kind, ZQL_N_QUERY);
}

static void test_lexical_error(void **state)
{
  fixture_t *f = *state;
  const char *t = "from event where type == \"abc\n";
  parse_text(f, t, strlen(t), false);
  assert_true(f->parse_rc != 0);
  assert_true(f->diags.nerr > 0);
  assert_int_equal(f->diags.items[0].code, ZQL_E_UNTERMINATED_STRING);
  assert_int_equal(f->diags.items[0].span.start, 25);

  zql_diags_release(&f->diags);
  zql_diags_init(&f->diags, f->arena);
  const char nul[] = "from event\0;\n";
  parse_text(f, nul, sizeof nul - 1, false);
  assert_true(has_code(&f->diags, ZQL_E_NUL_BYTE));
}

static void test_unknown_name(void **state)
{
  fixture_t *f = *state;
  const char *t = "from event where usr == \"x\";\n";
  parse_text(f, t, strlen(t), true);
  assert_int_equal(f->parse_rc, 0);
  assert_int_equal(f->analyze_rc, ZQL_E_UNKNOWN_NAME);
  assert_int_equal(f->diags.items[0].code, ZQL_E_UNKNOWN_NAME);
  assert_int_equal(f->diags.items[0].span.start, 17);
}

/* A text of `n` copies of `rep` between `pre` and `post`. */
static char *repeat(const char *pre, const char *rep, size_t n, const char *post, size_t *len)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_strbuf_adds(&sb, pre);
  for (size_t i = 0; i < n; i++)
    zql_strbuf_adds(&sb, rep);
  zql_strbuf_adds(&sb, post);
  return zql_strbuf_detach(&sb, len);
}

static void check_too_deep(fixture_t *f, const char *pre, const char *rep, size_t n,
                           const char *post)
{
  size_t len;
  char *t = repeat(pre, rep, n, post, &len);
  assert_non_null(t);
  zql_diags_release(&f->diags);
  zql_diags_init(&f->diags, f->arena);
  parse_text(f, t, len, false);
  zql_free(t);
  assert_true(f->parse_rc != 0);
  assert_true(has_code(&f->diags, ZQL_E_TOO_DEEP));
}

static void test_too_deep(void **state)
{
  fixture_t *f = *state;
  check_too_deep(f, "from event where x == ", "(", 300, "1;\n");
  check_too_deep(f, "from event where x == ", "(", 10000, "1;\n");
  check_too_deep(f, "from event where x == 1", " + 1", 300, ";\n");
  check_too_deep(f, "from event where x == 1", " + 1", 100000, ";\n");
  check_too_deep(f, "from event where ", "not ", 10000, "true;\n");
  check_too_deep(f, "from event where x == ", "- ", 10000, "1;\n");
  check_too_deep(f, "from event where x in ", "[", 100000, "\n");
}

static void test_oom_loop(void **state)
{
  (void)state;
  bool done = false;
  long n;
  for (n = 0; n < 100000 && !done; n++) {
    zql_alloc_fail_after(n);
    zql_arena_t *a = zql_arena_create(NULL);
    if (!a)
      continue;
    zql_diags_t d;
    zql_diags_init(&d, a);
    zql_source_t src;
    zql_node_t *file = NULL;
    int rc = zql_source_init(&src, a, "oom.zql", sample, sizeof sample - 1);
    if (rc == 0) {
      rc = zql_parse(a, &src, &d, &file);
      if (rc != 0 && rc != ZQL_E_NOMEM) {
        zql_alloc_fail_after(-1);
        print_message("zql_parse returned %d (%s) with allocation %ld failing\n", rc,
                      zql_err_code_str(rc), n);
        assert_int_equal(rc, ZQL_E_NOMEM);
      }
      if (rc == 0 && d.nerr == 0) {
        rc = zql_analyze(a, &file, 1, &d);
        if (rc != 0 && rc != ZQL_E_NOMEM) {
          zql_alloc_fail_after(-1);
          print_message("zql_analyze returned %d (%s) with allocation %ld failing\n", rc,
                        zql_err_code_str(rc), n);
          assert_int_equal(rc, ZQL_E_NOMEM);
        }
      }
    } else {
      assert_int_equal(rc, ZQL_E_NOMEM);
    }
    /* rendering whatever was recorded must be safe, even out of memory */
    zql_strbuf_t out = ZQL_STRBUF_INIT;
    zql_diags_render(&out, &d, false);
    zql_strbuf_release(&out);
    zql_alloc_fail_after(-1);
    if (rc == 0 && d.nerr == 0) {
      check_sample_tree(file);
      done = true;
    }
    zql_diags_release(&d);
    zql_arena_delete(a);
  }
  assert_true(done);
  assert_true(n > 1);
}

int zql_unit_parse(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_parse_aggregate), T(test_analyze_aggregate), T(test_empty_and_comments),
      T(test_syntax_error),    T(test_recovery),          T(test_lexical_error),
      T(test_unknown_name),    T(test_too_deep),          T(test_oom_loop),
  };
#undef T
  return cmocka_run_group_tests_name("parse", tests, NULL, NULL);
}
