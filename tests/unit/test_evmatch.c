/*
 * test_evmatch.c -- the `on event <predicate>` filter (runtime/evmatch.c): predicates mean
 * what a `where` means, errors point into the predicate.
 */
#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/evmatch.h"
#include "tests/unit/unit.h"

/* Count the matches of pred over docs given as JSON texts. */
static uint64_t count_of(const char *pred, const char *const *json, size_t n)
{
  zql_evmatch_t *m;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_evmatch_new(pred, &m, &err);
  if (rc)
    fail_msg("%s", err.buf);
  bson_t *docs[8];
  zql_event_t ev[8];
  assert_true(n <= 8);
  for (size_t i = 0; i < n; i++) {
    docs[i] = bson_new_from_json((const uint8_t *)json[i], -1, NULL);
    assert_non_null(docs[i]);
    ev[i] = (zql_event_t){(int64_t)i + 1, 1300000000000, bson_get_data(docs[i]), docs[i]->len};
  }
  uint64_t k = 99;
  assert_int_equal(zql_evmatch_count(m, ev, n, &k, &err), 0);
  /* the same matcher again: compiled once, run per batch */
  uint64_t k2 = 99;
  assert_int_equal(zql_evmatch_count(m, ev, n, &k2, &err), 0);
  assert_int_equal(k, k2);
  for (size_t i = 0; i < n; i++)
    bson_destroy(docs[i]);
  zql_evmatch_free(m);
  zql_strbuf_release(&err);
  return k;
}

static void test_match(void **state)
{
  (void)state;
  const char *ev[] = {"{\"type\": \"download\", \"context\": {\"project\": \"a\"}}",
                      "{\"type\": \"pageview\"}",
                      "{\"type\": \"download\", \"context\": {\"project\": \"b\"}}",
                      "{\"context\": {\"project\": \"a\"}}"};
  assert_int_equal(count_of("type == \"download\"", ev, 4), 2);
  assert_int_equal(count_of("type == \"download\" and context.project == \"a\"", ev, 4), 1);
  assert_int_equal(count_of("type is null", ev, 4), 1);
  assert_int_equal(count_of("type == \"signup\"", ev, 4), 0);
  assert_int_equal(count_of(NULL, ev, 4), 4); /* `on event`: every event */
  assert_int_equal(count_of("", ev, 3), 3);
  assert_int_equal(count_of("type == \"download\"", ev, 0), 0);
}

static void test_errors(void **state)
{
  (void)state;
  zql_evmatch_t *m = (zql_evmatch_t *)1;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_not_equal(zql_evmatch_new("type == ", &m, &err), 0);
  assert_null(m);
  assert_non_null(strstr(err.buf, "on event predicate `type == `"));
  assert_non_null(strstr(err.buf, "column "));
  zql_strbuf_reset(&err);
  assert_int_not_equal(zql_evmatch_new("nosuchfunction(type)", &m, &err), 0);
  assert_non_null(strstr(err.buf, "column 1:"));
  assert_non_null(strstr(err.buf, "nosuchfunction"));
  zql_strbuf_release(&err);
}

int zql_unit_evmatch(void)
{
  const struct CMUnitTest tests[] = {
      ZQL_UNIT_TEST(test_match),
      ZQL_UNIT_TEST(test_errors),
  };
  return cmocka_run_group_tests_name("evmatch", tests, NULL, NULL);
}
