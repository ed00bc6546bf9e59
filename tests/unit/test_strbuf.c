/*
 * test_strbuf.c -- unit tests of the growable buffer (runtime/base/strbuf.c, layer 0).
 *
 * Checks the invariants stated in strbuf.h: buf is never NULL and always NUL-terminated,
 * len counts the content, formatting and quoting append exactly what they say, detach
 * hands the heap buffer over and resets the strbuf, and out-of-memory is sticky: the old
 * content stays, every later append is a no-op, detach returns NULL.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include "runtime/base/alloc.h"
#include "runtime/base/strbuf.h"

static void assert_sb(const zql_strbuf_t *sb, const char *want, size_t len)
{
  assert_non_null(sb->buf);
  assert_int_equal(sb->len, len);
  assert_memory_equal(sb->buf, want, len);
  assert_int_equal(sb->buf[len], '\0');
}

static void test_init(void **state)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  assert_sb(&sb, "", 0);
  assert_false(sb.oom);
  zql_strbuf_release(&sb); /* releasing an empty strbuf is fine */
  zql_strbuf_t sb2;
  zql_strbuf_init(&sb2);
  assert_sb(&sb2, "", 0);
  zql_strbuf_reset(&sb2);
  assert_sb(&sb2, "", 0);
}

static void test_add(void **state)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_strbuf_add(&sb, "abc", 3);
  zql_strbuf_adds(&sb, "def");
  zql_strbuf_addc(&sb, 'g');
  zql_strbuf_addchars(&sb, '-', 3);
  zql_strbuf_add(&sb, "", 0);
  assert_sb(&sb, "abcdefg---", 10);
  zql_strbuf_add(&sb, "x\0y", 3); /* embedded NUL: len counts it */
  assert_sb(&sb, "abcdefg---x\0y", 13);
  zql_strbuf_reset(&sb);
  assert_sb(&sb, "", 0);
  for (int i = 0; i < 10000; i++)
    zql_strbuf_addc(&sb, (char)('a' + i % 26));
  assert_int_equal(sb.len, 10000);
  assert_int_equal(sb.buf[9999], 'a' + 9999 % 26);
  assert_int_equal(sb.buf[10000], '\0');
  assert_false(sb.oom);
  zql_strbuf_release(&sb);
  assert_sb(&sb, "", 0);
}

static void test_addf(void **state)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_strbuf_addf(&sb, "%s:%d:%u", "q.zql", 3, 14u);
  assert_string_equal(sb.buf, "q.zql:3:14");
  zql_strbuf_addf(&sb, "%s", "");
  assert_int_equal(sb.len, 10);
  zql_strbuf_addf(&sb, "|%8000d|", 1); /* grows past the first allocation */
  assert_int_equal(sb.len, 10 + 8002);
  assert_int_equal(sb.buf[sb.len - 2], '1');
  assert_int_equal(sb.buf[sb.len], '\0');
  zql_strbuf_release(&sb);
}

static void test_quoted(void **state)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_strbuf_add_quoted(&sb, "plain", 5);
  assert_string_equal(sb.buf, "\"plain\"");
  zql_strbuf_reset(&sb);
  zql_strbuf_add_quoted(&sb, "a\"b\\c\nd\te\rf", 11);
  assert_string_equal(sb.buf, "\"a\\\"b\\\\c\\nd\\te\\rf\"");
  zql_strbuf_reset(&sb);
  zql_strbuf_add_quoted(&sb, "\x01\0\x7f\x1f", 4);
  assert_string_equal(sb.buf, "\"\\x01\\x00\\x7f\\x1f\"");
  zql_strbuf_reset(&sb);
  zql_strbuf_add_quoted(&sb, "na\xc3\xafve", 6); /* UTF-8 passes through */
  assert_string_equal(sb.buf, "\"na\xc3\xafve\"");
  zql_strbuf_reset(&sb);
  zql_strbuf_add_quoted(&sb, "", 0);
  assert_string_equal(sb.buf, "\"\"");
  zql_strbuf_release(&sb);
}

static void test_detach(void **state)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_strbuf_adds(&sb, "hello");
  size_t len = 0;
  char *p = zql_strbuf_detach(&sb, &len);
  assert_non_null(p);
  assert_int_equal(len, 5);
  assert_string_equal(p, "hello");
  assert_sb(&sb, "", 0); /* back to INIT */
  zql_free(p);

  /* an empty strbuf detaches to a heap "" that the caller frees */
  p = zql_strbuf_detach(&sb, &len);
  assert_non_null(p);
  assert_int_equal(len, 0);
  assert_string_equal(p, "");
  zql_free(p);

  zql_strbuf_adds(&sb, "again");
  p = zql_strbuf_detach(&sb, NULL); /* len is optional */
  assert_string_equal(p, "again");
  zql_free(p);
}

static void test_oom_sticky(void **state)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_strbuf_adds(&sb, "keep");
  zql_alloc_fail_after(0);
  zql_strbuf_addchars(&sb, 'x', 100000); /* needs to grow: fails */
  assert_true(sb.oom);
  assert_sb(&sb, "keep", 4); /* the old content is intact */
  zql_alloc_fail_after(-1);
  zql_strbuf_adds(&sb, "more"); /* sticky: still a no-op with memory available */
  zql_strbuf_addf(&sb, "%d", 12);
  zql_strbuf_add_quoted(&sb, "q", 1);
  assert_true(sb.oom);
  assert_sb(&sb, "keep", 4);
  assert_false(zql_strbuf_grow(&sb, 1));
  assert_null(zql_strbuf_detach(&sb, NULL)); /* detach reports it, and frees */
  assert_sb(&sb, "", 0);
  assert_false(sb.oom); /* back to INIT */
  zql_strbuf_adds(&sb, "fresh");
  assert_string_equal(sb.buf, "fresh");
  zql_strbuf_release(&sb);

  /* the very first allocation failing leaves the static "" in place */
  zql_alloc_fail_after(0);
  zql_strbuf_addf(&sb, "%s", "abc");
  zql_alloc_fail_after(-1);
  assert_true(sb.oom);
  assert_sb(&sb, "", 0);
  zql_strbuf_release(&sb);

  /* a size that cannot be represented is out of memory too */
  zql_strbuf_adds(&sb, "x");
  assert_false(zql_strbuf_grow(&sb, SIZE_MAX));
  assert_true(sb.oom);
  zql_strbuf_release(&sb);
}

static void test_oom_loop(void **state)
{
  /* fail the Nth allocation for every N until a whole build succeeds */
  bool done = false;
  long n;
  for (n = 0; n < 1000 && !done; n++) {
    zql_strbuf_t sb = ZQL_STRBUF_INIT;
    zql_alloc_fail_after(n);
    for (int i = 0; i < 200; i++)
      zql_strbuf_addf(&sb, "item %d, ", i);
    zql_strbuf_add_quoted(&sb, "end\n", 4);
    size_t len;
    char *p = zql_strbuf_detach(&sb, &len);
    zql_alloc_fail_after(-1);
    if (p) {
      assert_int_equal(len, strlen(p));
      assert_non_null(strstr(p, "item 199, \"end\\n\""));
      zql_free(p);
      done = true;
    }
    assert_sb(&sb, "", 0);
  }
  assert_true(done);
}

int zql_unit_strbuf(void)
{
  const struct CMUnitTest tests[] = {
      ZQL_UNIT_TEST(test_init),   ZQL_UNIT_TEST(test_add),        ZQL_UNIT_TEST(test_addf),
      ZQL_UNIT_TEST(test_quoted), ZQL_UNIT_TEST(test_detach),     ZQL_UNIT_TEST(test_oom_sticky),
      ZQL_UNIT_TEST(test_oom_loop),
  };
  return cmocka_run_group_tests_name("strbuf", tests, NULL, NULL);
}
