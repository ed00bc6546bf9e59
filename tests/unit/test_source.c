/*
 * test_source.c -- unit tests of source texts, line maps and diagnostic rendering
 * (parser/source.c, stage 1 support).
 *
 * Byte offsets become LINE:COL only here, so this is where columns are pinned down:
 * UTF-8 code points, CRLF line ends, a last line without a newline, empty texts. The
 * rendering tests compare the exact text of a diagnostic (header, excerpt, caret and
 * tildes, hint) and check that a 10 MB line is cut to a short window around the caret,
 * with "..." on the sides that were cut.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include "parser/source.h"
#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"

typedef struct {
  zql_arena_t *arena;
  zql_source_t src;
  zql_diags_t diags;
  zql_strbuf_t out;
} fixture_t;

static int setup(void **state)
{
  fixture_t *f = calloc(1, sizeof *f);
  if (!f || !(f->arena = zql_arena_create(NULL)))
    return -1;
  zql_diags_init(&f->diags, f->arena);
  zql_strbuf_init(&f->out);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture_t *f = *state;
  zql_alloc_fail_after(-1);
  zql_strbuf_release(&f->out);
  zql_diags_release(&f->diags);
  zql_arena_delete(f->arena);
  free(f);
  return 0;
}

static void init_text(fixture_t *f, const char *name, const char *text, size_t len)
{
  assert_int_equal(zql_source_init(&f->src, f->arena, name, text, len), 0);
}

static void assert_linecol(const zql_source_t *src, uint32_t off, uint32_t line,
                           uint32_t col)
{
  uint32_t l = 0, c = 0;
  zql_source_linecol(src, off, &l, &c);
  assert_int_equal(l, line);
  assert_int_equal(c, col);
}

static zql_span_t span(uint32_t s, uint32_t e)
{
  zql_span_t sp = {s, e};
  return sp;
}

/* Render one error at [start, end) of f->src into f->out (cleared first). */
static zql_error_t *render(fixture_t *f, int code, uint32_t start, uint32_t end,
                           const char *msg, const char *hint)
{
  zql_error_t *e = zql_diag_add(&f->diags, &f->src, code, span(start, end), "%s", msg);
  assert_non_null(e);
  if (hint)
    zql_diag_hint(&f->diags, e, "%s", hint);
  zql_strbuf_reset(&f->out);
  zql_diag_render(&f->out, e, false);
  assert_false(f->out.oom);
  return e;
}

static void test_init(void **state)
{
  fixture_t *f = *state;
  init_text(f, "q.zql", "ab\ncd\n", 6);
  assert_string_equal(f->src.name, "q.zql");
  assert_int_equal(f->src.len, 6);
  assert_int_equal(f->src.nlines, 3);
  assert_int_equal(f->src.line_starts[0], 0);
  assert_int_equal(f->src.line_starts[1], 3);
  assert_int_equal(f->src.line_starts[2], 6);
  assert_string_equal(f->src.text, "ab\ncd\n");

  /* the text is copied, NUL-terminated, and may hold NULs */
  char buf[] = {'a', '\0', 'b'};
  init_text(f, "nul.zql", buf, sizeof buf);
  buf[0] = 'z';
  assert_int_equal(f->src.len, 3);
  assert_memory_equal(f->src.text, "a\0b", 4);

  init_text(f, "empty.zql", "", 0);
  assert_int_equal(f->src.len, 0);
  assert_int_equal(f->src.nlines, 1);
  assert_linecol(&f->src, 0, 1, 1);
}

static void test_linecol(void **state)
{
  fixture_t *f = *state;
  const char *t = "from event\n  where x\n\nlast";
  init_text(f, "q.zql", t, strlen(t));
  assert_linecol(&f->src, 0, 1, 1);
  assert_linecol(&f->src, 5, 1, 6);   /* event */
  assert_linecol(&f->src, 10, 1, 11); /* the newline ends line 1 */
  assert_linecol(&f->src, 11, 2, 1);
  assert_linecol(&f->src, 13, 2, 3);  /* where */
  assert_linecol(&f->src, 21, 3, 1);  /* the empty line */
  assert_linecol(&f->src, 22, 4, 1);  /* last line, no newline */
  assert_linecol(&f->src, 25, 4, 4);
  assert_linecol(&f->src, 26, 4, 5);  /* end of text */
  assert_linecol(&f->src, 1000, 4, 5); /* clamped */
}

static void test_utf8_columns(void **state)
{
  fixture_t *f = *state;
  /* "naïve" has 5 code points in 6 bytes; "日本" 2 in 6 */
  const char *t = "na\xc3\xafve x\n\xe6\x97\xa5\xe6\x9c\xac y";
  init_text(f, "u.zql", t, strlen(t));
  assert_linecol(&f->src, 7, 1, 7);  /* x */
  assert_linecol(&f->src, 4, 1, 4);  /* v */
  assert_linecol(&f->src, 16, 2, 4); /* y */
  render(f, ZQL_E_UNKNOWN_NAME, 16, 17, "unknown name 'y'", NULL);
  assert_string_equal(f->out.buf, "u.zql:2:4: error: unknown name 'y' [E3001]\n"
                                  " 2 |  \xe6\x97\xa5\xe6\x9c\xac y\n"
                                  "   |     ^\n");
}

static void test_crlf(void **state)
{
  fixture_t *f = *state;
  const char *t = "from event\r\nwhere bad\r\n";
  init_text(f, "crlf.zql", t, strlen(t));
  assert_linecol(&f->src, 12, 2, 1);
  assert_linecol(&f->src, 18, 2, 7);
  render(f, ZQL_E_UNKNOWN_NAME, 18, 21, "unknown name 'bad'", NULL);
  /* the CR is not part of the excerpt */
  assert_string_equal(f->out.buf, "crlf.zql:2:7: error: unknown name 'bad' [E3001]\n"
                                  " 2 |  where bad\n"
                                  "   |        ^~~\n");
}

static void test_render_exact(void **state)
{
  fixture_t *f = *state;
  const char *t = "from event\n  where usr == \"x\"\n";
  init_text(f, "q.zql", t, strlen(t));
  render(f, ZQL_E_UNKNOWN_NAME, 19, 22, "unknown name 'usr'", "did you mean 'context.user'?");
  assert_string_equal(f->out.buf, "q.zql:2:9: error: unknown name 'usr' [E3001]\n"
                                  " 2 |    where usr == \"x\"\n"
                                  "   |          ^~~\n"
                                  "hint: did you mean 'context.user'?\n");

  /* a warning; an empty span draws a lone caret */
  render(f, ZQL_W_NULL_COMPARISON, 0, 0, "comparison with null", NULL);
  assert_string_equal(f->out.buf, "q.zql:1:1: warning: comparison with null [W3901]\n"
                                  " 1 |  from event\n"
                                  "   |  ^\n");

  /* a span running past the end of its line is cut at the line end */
  render(f, ZQL_E_SYNTAX, 5, 15, "syntax error", NULL);
  assert_string_equal(f->out.buf, "q.zql:1:6: error: syntax error [E2001]\n"
                                  " 1 |  from event\n"
                                  "   |       ^~~~~\n");
}

static void test_render_tabs_and_controls(void **state)
{
  fixture_t *f = *state;
  const char t[] = "\tx\x01y = 1\n";
  init_text(f, "tab.zql", t, sizeof t - 1);
  render(f, ZQL_E_BAD_CHAR, 2, 3, "unexpected character", NULL);
  /* the tab is copied under the caret; the control character is shown as '?' */
  assert_string_equal(f->out.buf, "tab.zql:1:3: error: unexpected character [E1001]\n"
                                  " 1 |  \tx?y = 1\n"
                                  "   |  \t ^\n");
}

static void test_render_line_numbers(void **state)
{
  fixture_t *f = *state;
  zql_strbuf_t t = ZQL_STRBUF_INIT;
  for (int i = 0; i < 1233; i++)
    zql_strbuf_adds(&t, "# comment\n");
  uint32_t off = (uint32_t)t.len;
  zql_strbuf_adds(&t, "oops");
  init_text(f, "n.zql", t.buf, t.len);
  zql_strbuf_release(&t);
  render(f, ZQL_E_SYNTAX, off, off + 4, "syntax error", NULL);
  assert_string_equal(f->out.buf, "n.zql:1234:1: error: syntax error [E2001]\n"
                                  " 1234 |  oops\n"
                                  "      |  ^~~~\n");
}

static void test_render_no_source(void **state)
{
  fixture_t *f = *state;
  zql_error_t *e = zql_diag_add(&f->diags, NULL, ZQL_E_NOMEM, span(0, 0), "out of memory");
  assert_non_null(e);
  zql_diag_render(&f->out, e, false);
  assert_string_equal(f->out.buf, "error: out of memory [E0001]\n");

  init_text(f, "empty.zql", "", 0);
  render(f, ZQL_E_SYNTAX, 0, 0, "syntax error, unexpected end of file", NULL);
  assert_string_equal(f->out.buf,
                      "empty.zql:1:1: error: syntax error, unexpected end of file [E2001]\n");
}

static void test_render_color(void **state)
{
  fixture_t *f = *state;
  init_text(f, "c.zql", "bad\n", 4);
  zql_error_t *e = render(f, ZQL_E_SYNTAX, 0, 3, "syntax error", "a hint");
  zql_strbuf_reset(&f->out);
  zql_diag_render(&f->out, e, true);
  assert_non_null(strstr(f->out.buf, "\033["));
  assert_non_null(strstr(f->out.buf, "syntax error"));
  assert_non_null(strstr(f->out.buf, "a hint"));
}

static void test_render_many(void **state)
{
  fixture_t *f = *state;
  init_text(f, "m.zql", "a b c d e\n", 10);
  f->diags.max_errors = 2;
  for (uint32_t i = 0; i < 5; i++)
    zql_diag_add(&f->diags, &f->src, ZQL_E_SYNTAX, span(2 * i, 2 * i + 1), "bad %u", i);
  zql_diags_render(&f->out, &f->diags, false);
  assert_string_equal(f->out.buf, "m.zql:1:1: error: bad 0 [E2001]\n"
                                  " 1 |  a b c d e\n"
                                  "   |  ^\n"
                                  "m.zql:1:3: error: bad 1 [E2001]\n"
                                  " 1 |  a b c d e\n"
                                  "   |    ^\n"
                                  "error: too many errors, 3 more not shown [E2002]\n");
}

/* The two lines after the header: the excerpt and the caret line. The character above
 * the caret must be `at`, and the output must be short. */
static void check_window(const char *out, char at, bool lead, bool trail)
{
  assert_true(strlen(out) < 600);
  const char *l2 = strchr(out, '\n');
  assert_non_null(l2);
  l2++;
  const char *l3 = strchr(l2, '\n');
  assert_non_null(l3);
  l3++;
  const char *caret = strchr(l3, '^');
  assert_non_null(caret);
  size_t col = (size_t)(caret - l3);
  assert_true(col < (size_t)(l3 - l2));
  assert_int_equal(l2[col], at);
  size_t len2 = (size_t)(l3 - l2 - 1);
  assert_true(len2 <= 140);
  assert_int_equal(strstr(l2, "|  ...") == l2 + strcspn(l2, "|"), lead);
  assert_int_equal(len2 >= 3 && memcmp(l2 + len2 - 3, "...", 3) == 0, trail);
}

static void test_render_long_line(void **state)
{
  fixture_t *f = *state;
  size_t half = 5u << 20;
  const char *head = "from event where x == ";
  size_t hl = strlen(head);
  size_t len = hl + 2 * half + 4;
  char *t = malloc(len);
  assert_non_null(t);
  memcpy(t, head, hl);
  memset(t + hl, 'a', half);
  memcpy(t + hl + half, "ZZZ", 3);
  memset(t + hl + half + 3, 'b', half);
  t[len - 1] = '\n';
  init_text(f, "long.zql", t, len);
  free(t);

  uint32_t z = (uint32_t)(hl + half);
  render(f, ZQL_E_UNKNOWN_NAME, z, z + 3, "unknown name 'ZZZ'", NULL);
  check_window(f->out.buf, 'Z', true, true);
  assert_non_null(strstr(f->out.buf, "^~~\n"));
  assert_non_null(strstr(f->out.buf, "long.zql:1:"));

  /* a span over the rest of the line: the tildes stop at the window */
  render(f, ZQL_E_UNTERMINATED_STRING, z, (uint32_t)(len - 1), "unterminated", NULL);
  check_window(f->out.buf, 'Z', true, true);

  /* near the start: no leading "..." */
  render(f, ZQL_E_SYNTAX, 5, 10, "syntax error", NULL);
  check_window(f->out.buf, 'e', false, true);

  /* near the end: no trailing "..." */
  render(f, ZQL_E_SYNTAX, (uint32_t)(len - 2), (uint32_t)(len - 1), "syntax error", NULL);
  check_window(f->out.buf, 'b', true, false);
}

static void test_read_file(void **state)
{
  fixture_t *f = *state;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_source_read_file(&f->src, f->arena, "/nonexistent/dir/q.zql", &err);
  assert_int_equal(rc, ZQL_E_IO);
  assert_non_null(strstr(err.buf, "cannot open"));
  assert_non_null(strstr(err.buf, "/nonexistent/dir/q.zql"));
  zql_strbuf_release(&err);

  char path[] = "/tmp/zql-unit-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *fp = fdopen(fd, "w");
  assert_non_null(fp);
  fputs("from event;\n", fp);
  fclose(fp);
  rc = zql_source_read_file(&f->src, f->arena, path, &err);
  remove(path);
  assert_int_equal(rc, 0);
  assert_string_equal(f->src.text, "from event;\n");
  assert_string_equal(f->src.name, path);
  assert_int_equal(err.len, 0);
}

static void test_too_large(void **state)
{
  fixture_t *f = *state;
  /* calloc'ed pages are not touched unless the text is actually read */
  char *big = calloc(1, (size_t)ZQL_SOURCE_MAX + 1);
  if (!big)
    skip();
  int rc = zql_source_init(&f->src, f->arena, "big.zql", big, (size_t)ZQL_SOURCE_MAX + 1);
  free(big);
  assert_int_equal(rc, ZQL_E_TOO_LARGE);
}

static void test_oom(void **state)
{
  fixture_t *f = *state;
  const char *t = "from event\nwhere x\n";
  bool done = false;
  for (long n = 0; n < 1000 && !done; n++) {
    zql_arena_t *a = zql_arena_create(NULL);
    assert_non_null(a);
    zql_source_t src;
    zql_alloc_fail_after(n);
    int rc = zql_source_init(&src, a, "q.zql", t, strlen(t));
    zql_alloc_fail_after(-1);
    assert_true(rc == 0 || rc == ZQL_E_NOMEM);
    if (rc == 0) {
      assert_int_equal(src.nlines, 3);
      done = true;
    }
    zql_arena_delete(a);
  }
  assert_true(done);
  (void)f;
}

int zql_unit_source(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_init),
      T(test_linecol),
      T(test_utf8_columns),
      T(test_crlf),
      T(test_render_exact),
      T(test_render_tabs_and_controls),
      T(test_render_line_numbers),
      T(test_render_no_source),
      T(test_render_color),
      T(test_render_many),
      T(test_render_long_line),
      T(test_read_file),
      T(test_too_large),
      T(test_oom),
  };
#undef T
  return cmocka_run_group_tests_name("source", tests, NULL, NULL);
}
