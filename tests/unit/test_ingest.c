/*
 * test_ingest.c -- unit tests of event decoding and validation (runtime/ingest.c, zqld).
 *
 * Every rule of ingest.h accepts what it should and rejects what it should with the exact
 * message: Zarkov client.py's messages ({type, context, extra} without a timestamp,
 * event_noval with one), $command, server-assigned fields, timestamp / type / context
 * kinds, duplicates, size, broken BSON frames, JSON syntax with line:column, Zarkov's
 * $datetime (nested, fractional), MongoDB extended JSON; HTTP bodies as NDJSON, arrays and
 * single objects with bad elements in the middle, gzip (multi-member, corrupt, truncated,
 * and an inflation bomb), and bodies long enough to span several parse chunks.
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <zlib.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/ingest.h"

/* {-- helpers -- */

typedef struct verdict {
  int rc;
  zql_ingest_reason_t reason;
  zql_strbuf_t why;
  bson_t out;
} verdict_t;

static void bson_frame(verdict_t *v, const bson_t *doc, uint32_t max)
{
  zql_ingest_limits_t l = ZQL_INGEST_LIMITS_INIT;
  l.max_event_bytes = max;
  zql_strbuf_init(&v->why);
  v->reason = (zql_ingest_reason_t)-1;
  v->rc = zql_ingest_bson(bson_get_data(doc), doc->len, &l, &v->out, &v->reason, &v->why);
}

static void json_frame(verdict_t *v, const char *text)
{
  zql_strbuf_init(&v->why);
  v->reason = (zql_ingest_reason_t)-1;
  v->rc = zql_ingest_json(text, strlen(text), NULL, &v->out, &v->reason, &v->why);
}

static void done(verdict_t *v)
{
  bson_destroy(&v->out);
  zql_strbuf_release(&v->why);
}

static bson_t *json(const char *text)
{
  bson_error_t e;
  bson_t *b = bson_new_from_json((const uint8_t *)text, -1, &e);
  if (!b)
    fail_msg("bad test JSON %s: %s", text, e.message);
  return b;
}

/* Expect a rejection with exactly this class and message. */
static void expect_bson_reject(const char *doc_json, zql_ingest_reason_t r, const char *msg)
{
  bson_t *doc = json(doc_json);
  verdict_t v;
  bson_frame(&v, doc, 0);
  assert_int_equal(v.rc, ZQL_E_BAD_EVENT);
  assert_int_equal(v.reason, r);
  assert_string_equal(v.why.buf, msg);
  /* the document as received is kept for the dead-letter file */
  assert_true(zql_ingest_reason_has_doc(r));
  assert_true(bson_equal(&v.out, doc));
  done(&v);
  bson_destroy(doc);
}

static void expect_json_reject(const char *text, zql_ingest_reason_t r, const char *msg)
{
  verdict_t v;
  json_frame(&v, text);
  assert_int_equal(v.rc, ZQL_E_BAD_EVENT);
  assert_int_equal(v.reason, r);
  assert_string_equal(v.why.buf, msg);
  if (!zql_ingest_reason_has_doc(r))
    assert_int_equal(v.out.len, 5);
  done(&v);
}

static int64_t date_at(const bson_t *doc, const char *dotted)
{
  bson_iter_t it, f;
  assert_true(bson_iter_init(&it, doc));
  assert_true(bson_iter_find_descendant(&it, dotted, &f));
  assert_true(BSON_ITER_HOLDS_DATE_TIME(&f));
  return bson_iter_date_time(&f);
}

/* }-- */

/* {-- BSON frames -- */

static void test_zarkov_client_event(void **state)
{
  /* client.py event(type, context): {type, context, extra: None}, no timestamp */
  bson_t *doc = json("{\"type\": \"login\", \"context\": {\"user\": \"admin1\", \"project\": "
                     "\"test\"}, \"extra\": null}");
  verdict_t v;
  bson_frame(&v, doc, 0);
  assert_int_equal(v.rc, 0);
  assert_int_equal(v.reason, ZQL_INGEST_OK);
  assert_string_equal(v.why.buf, "");
  assert_true(bson_equal(&v.out, doc)); /* nothing added: the log stamps the time */
  assert_false(bson_has_field(&v.out, "timestamp"));
  done(&v);
  bson_destroy(doc);
}

static void test_event_noval(void **state)
{
  /* client.py event_noval: validated by the client (timestamp added), $command set */
  bson_t *doc = json("{\"type\": \"commit\", \"context\": {\"user\": \"u\"}, \"extra\": 5, "
                     "\"timestamp\": {\"$date\": 1325376000000}, \"$command\": "
                     "\"event_noval\"}");
  bson_t *want = json("{\"type\": \"commit\", \"context\": {\"user\": \"u\"}, \"extra\": 5, "
                      "\"timestamp\": {\"$date\": 1325376000000}}");
  verdict_t v;
  bson_frame(&v, doc, 0);
  assert_int_equal(v.rc, 0);
  assert_true(bson_equal(&v.out, want)); /* $command removed, the rest as is */
  done(&v);
  bson_destroy(doc);
  bson_destroy(want);
  /* noval skips the schema checks ... */
  doc = json("{\"type\": 5, \"context\": \"x\", \"$command\": \"event_noval\"}");
  bson_frame(&v, doc, 0);
  assert_int_equal(v.rc, 0);
  assert_false(bson_has_field(&v.out, "$command"));
  assert_true(bson_has_field(&v.out, "context"));
  done(&v);
  bson_destroy(doc);
  /* ... but not the log's own */
  expect_bson_reject("{\"timestamp\": \"yesterday\", \"$command\": \"event_noval\"}",
                     ZQL_INGEST_TIMESTAMP, "field 'timestamp' is not a date (it is a string)");
  expect_bson_reject("{\"_id\": 1, \"$command\": \"event_noval\"}", ZQL_INGEST_RESERVED,
                     "field '_id' is assigned by the server");
}

static void test_rules(void **state)
{
  expect_bson_reject("{\"type\": \"a\", \"$command\": \"flush\"}", ZQL_INGEST_COMMAND,
                     "unknown $command 'flush'");
  expect_bson_reject("{\"$command\": 7}", ZQL_INGEST_COMMAND,
                     "field '$command' is a number; it must be a string");
  expect_bson_reject("{\"$command\": \"event_noval\", \"$command\": \"event_noval\"}",
                     ZQL_INGEST_COMMAND, "field '$command' appears twice");
  expect_bson_reject("{\"type\": \"a\", \"_id\": 1}", ZQL_INGEST_RESERVED,
                     "field '_id' is assigned by the server");
  expect_bson_reject("{\"_seq\": {\"$numberLong\": \"9\"}}", ZQL_INGEST_RESERVED,
                     "field '_seq' is assigned by the server");
  expect_bson_reject("{\"timestamp\": 1325376000}", ZQL_INGEST_TIMESTAMP,
                     "field 'timestamp' is not a date (it is a number)");
  expect_bson_reject("{\"timestamp\": {\"$date\": 0}, \"timestamp\": {\"$date\": 1}}",
                     ZQL_INGEST_TIMESTAMP, "field 'timestamp' appears twice");
  expect_bson_reject("{\"type\": 5}", ZQL_INGEST_SCHEMA,
                     "field 'type' is a number; it must be a string");
  expect_bson_reject("{\"type\": null}", ZQL_INGEST_SCHEMA,
                     "field 'type' is null; it must be a string");
  expect_bson_reject("{\"type\": \"a\", \"type\": \"b\"}", ZQL_INGEST_SCHEMA,
                     "field 'type' appears twice");
  expect_bson_reject("{\"context\": \"x\"}", ZQL_INGEST_SCHEMA,
                     "field 'context' is a string; it must be a document");
  expect_bson_reject("{\"context\": [1]}", ZQL_INGEST_SCHEMA,
                     "field 'context' is an array; it must be a document");
  /* the rule order decides which message wins */
  expect_bson_reject("{\"type\": 5, \"_id\": 1, \"$command\": \"x\"}", ZQL_INGEST_COMMAND,
                     "unknown $command 'x'");
  expect_bson_reject("{\"type\": 5, \"timestamp\": true}", ZQL_INGEST_TIMESTAMP,
                     "field 'timestamp' is not a date (it is a boolean)");

  /* accepted kinds: BSON Timestamp, a date, empty context, nested fields named _id */
  const char *ok[] = {
      "{\"timestamp\": {\"$timestamp\": {\"t\": 1325376000, \"i\": 1}}}",
      "{\"timestamp\": {\"$date\": -5}, \"type\": \"\", \"context\": {}}",
      "{\"context\": {\"_id\": 1, \"type\": 5}, \"extra\": {\"$command\": 1}}",
      "{}",
  };
  for (size_t k = 0; k < ZQL_ARRAY_LEN(ok); k++) {
    bson_t *doc = json(ok[k]);
    verdict_t v;
    bson_frame(&v, doc, 0);
    assert_int_equal(v.rc, 0);
    assert_true(bson_equal(&v.out, doc));
    done(&v);
    bson_destroy(doc);
  }
}

static void test_size(void **state)
{
  bson_t doc = BSON_INITIALIZER;
  char big[200];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  BSON_APPEND_UTF8(&doc, "extra", big);
  verdict_t v;
  bson_frame(&v, &doc, 100);
  assert_int_equal(v.rc, ZQL_E_BAD_EVENT);
  assert_int_equal(v.reason, ZQL_INGEST_TOO_LARGE);
  char want[100];
  snprintf(want, sizeof want, "event is %" PRIu32 " bytes; the limit is 100 (max_event_bytes)",
           doc.len);
  assert_string_equal(v.why.buf, want);
  assert_int_equal(v.out.len, 5); /* too large: no document kept */
  done(&v);
  bson_frame(&v, &doc, doc.len); /* exactly at the limit */
  assert_int_equal(v.rc, 0);
  done(&v);
  /* the limit is capped at the hard limit */
  bson_frame(&v, &doc, UINT32_MAX);
  assert_int_equal(v.rc, 0);
  done(&v);
  bson_destroy(&doc);

  /* a JSON frame: its BSON size counts */
  zql_ingest_limits_t l = {50, 0};
  zql_strbuf_t why = ZQL_STRBUF_INIT;
  bson_t out;
  zql_ingest_reason_t r;
  const char *t = "{\"extra\": \"0123456789012345678901234567890123456789012345\"}";
  assert_int_equal(zql_ingest_json(t, strlen(t), &l, &out, &r, &why), ZQL_E_BAD_EVENT);
  assert_int_equal(r, ZQL_INGEST_TOO_LARGE);
  assert_string_equal(why.buf, "event is 63 bytes; the limit is 50 (max_event_bytes)");
  bson_destroy(&out);
  zql_strbuf_release(&why);
}

static void raw_reject(const void *data, size_t len, const char *msg)
{
  verdict_t v;
  zql_strbuf_init(&v.why);
  v.rc = zql_ingest_bson(data, len, NULL, &v.out, &v.reason, &v.why);
  assert_int_equal(v.rc, ZQL_E_BAD_EVENT);
  assert_int_equal(v.reason, ZQL_INGEST_MALFORMED);
  assert_int_equal(v.out.len, 5);
  if (msg[strlen(msg) - 1] == '*')
    assert_memory_equal(v.why.buf, msg, strlen(msg) - 1);
  else
    assert_string_equal(v.why.buf, msg);
  done(&v);
}

static void test_bad_bson(void **state)
{
  uint8_t f[99];
  memset(f, 0, sizeof f);
  f[0] = 1234 & 0xFF;
  f[1] = 1234 >> 8;
  raw_reject(f, sizeof f,
             "not a BSON document: length prefix 1234 does not match the frame's 99 bytes");
  raw_reject("\x05\x00\x00", 3,
             "not a BSON document: the frame has 3 bytes; a document has at least 5");
  raw_reject("", 0, "not a BSON document: the frame has 0 bytes; a document has at least 5");
  raw_reject("{\"type\": \"x\"}", 13,
             "not a BSON document: length prefix 2037654139 does not match the frame's 13 "
             "bytes (it looks like JSON, which the JSON endpoint takes)");
  /* truncated: a valid document cut short */
  bson_t *doc = json("{\"type\": \"abc\", \"context\": {\"user\": \"u\"}}");
  uint8_t buf[256];
  memcpy(buf, bson_get_data(doc), doc->len);
  raw_reject(buf, doc->len - 3, "not a BSON document: length prefix*");
  /* no terminating NUL */
  buf[doc->len - 1] = 1;
  raw_reject(buf, doc->len, "not a BSON document: it does not end with a NUL byte");
  buf[doc->len - 1] = 0;
  /* an invalid element type inside */
  buf[4] = 0x77;
  raw_reject(buf, doc->len, "not a BSON document: *");
  bson_destroy(doc);
  /* a string value that is not UTF-8, nested */
  bson_t bad = BSON_INITIALIZER, ctx;
  BSON_APPEND_DOCUMENT_BEGIN(&bad, "context", &ctx);
  bson_append_utf8(&ctx, "user", -1, "a\xff", 2);
  bson_append_document_end(&bad, &ctx);
  raw_reject(bson_get_data(&bad), bad.len, "not a BSON document: field 'context.user': not "
                                           "valid UTF-8");
  bson_destroy(&bad);
}

/* }-- */

/* {-- JSON frames -- */

static void test_json_datetime(void **state)
{
  verdict_t v;
  json_frame(&v, "\xEF\xBB\xBF {\"type\": \"x\", \"timestamp\": {\"$datetime\": 1325376000.5},\n"
                 "  \"context\": {\"at\": {\"$datetime\": 1}, \"l\": [{\"$datetime\": -2.25}]}} \n");
  assert_int_equal(v.rc, 0);
  assert_int_equal(date_at(&v.out, "timestamp"), 1325376000500);
  assert_int_equal(date_at(&v.out, "context.at"), 1000);
  assert_int_equal(date_at(&v.out, "context.l.0"), -2250);
  done(&v);
  expect_json_reject("{\"t\": {\"$datetime\": \"now\"}}", ZQL_INGEST_MALFORMED,
                     "line 1, column 1: '$datetime' must be a number of seconds since 1970");
  expect_json_reject("{\"$datetime\": 5}", ZQL_INGEST_MALFORMED,
                     "line 1, column 1: the document itself is a '$datetime' object");
}

static void test_json_extended(void **state)
{
  verdict_t v;
  json_frame(&v, "{\"timestamp\": {\"$date\": \"2024-01-01T00:00:00Z\"}, \"n\": {\"$numberLong\": "
                 "\"5\"}, \"o\": {\"$oid\": \"0123456789abcdef01234567\"}, \"d\": {\"$date\": "
                 "{\"$numberLong\": \"7\"}}}");
  assert_int_equal(v.rc, 0);
  assert_int_equal(date_at(&v.out, "timestamp"), 1704067200000);
  assert_int_equal(date_at(&v.out, "d"), 7);
  bson_iter_t it;
  assert_true(bson_iter_init_find(&it, &v.out, "n") && BSON_ITER_HOLDS_INT64(&it));
  assert_true(bson_iter_init_find(&it, &v.out, "o") && BSON_ITER_HOLDS_OID(&it));
  done(&v);
  expect_json_reject("{\"timestamp\": {\"$date\": \"garbage\"}}", ZQL_INGEST_MALFORMED,
                     "line 1, column 1: invalid JSON: Could not parse \"garbage\" as date: use "
                     "ISO8601 format yyyy-mm-ddThh:mm plus timezone, either \"Z\" or like "
                     "\"+0500\"");
  /* JSON kinds in the rule messages */
  expect_json_reject("{\"type\": 5}", ZQL_INGEST_SCHEMA,
                     "field 'type' is a number; it must be a string");
  expect_json_reject("{\"timestamp\": \"2024-01-01\"}", ZQL_INGEST_TIMESTAMP,
                     "field 'timestamp' is not a date (it is a string)");
  expect_json_reject("{\"type\": \"a\", \"$command\": \"nope\"}", ZQL_INGEST_COMMAND,
                     "unknown $command 'nope'");
}

static void test_json_syntax(void **state)
{
  expect_json_reject("{\"a\": tru}", ZQL_INGEST_MALFORMED,
                     "line 1, column 7: expected a value (an object, array, string, number, "
                     "true, false or null)");
  expect_json_reject("{\"a\": 1,\n \"b\" 2}", ZQL_INGEST_MALFORMED,
                     "line 2, column 6: expected ':' after the object key");
  expect_json_reject("{\"a\": 1} {\"b\": 2}", ZQL_INGEST_MALFORMED,
                     "line 1, column 10: unexpected data after the JSON object (one object per "
                     "message)");
  expect_json_reject("[{\"a\": 1}]", ZQL_INGEST_MALFORMED,
                     "line 1, column 1: expected a JSON object, found an array");
  expect_json_reject("  \n", ZQL_INGEST_MALFORMED,
                     "line 2, column 1: expected a JSON object, found the end of the input");
  expect_json_reject("{\"a\": \"x", ZQL_INGEST_MALFORMED,
                     "line 1, column 7: unterminated string");
  expect_json_reject("{\"é\": 1, \"b\": [1 2]}", ZQL_INGEST_MALFORMED,
                     "line 1, column 18: expected ',' or ']' after an array element");
  expect_json_reject("{\"a\": \"\xff\"}", ZQL_INGEST_MALFORMED,
                     "line 1, column 8: invalid UTF-8 in a string");
  expect_json_reject("{\"a\": \"\\q\"}", ZQL_INGEST_MALFORMED,
                     "line 1, column 8: invalid escape in a string (JSON has \\\" \\\\ \\/ \\b "
                     "\\f \\n \\r \\t \\uXXXX)");
  expect_json_reject("{\"a\": 01}", ZQL_INGEST_MALFORMED,
                     "line 1, column 8: expected ',' or '}' after an object member");
  expect_json_reject("{\"a\": -}", ZQL_INGEST_MALFORMED, "line 1, column 7: invalid number");
  expect_json_reject("{\"a\": {\"b\": 1}", ZQL_INGEST_MALFORMED,
                     "line 1, column 1: unterminated object (no closing '}')");
  char deep[400];
  size_t n = 0;
  n += (size_t)snprintf(deep, sizeof deep, "{\"a\":");
  for (int k = 0; k < 120; k++)
    deep[n++] = '[';
  deep[n] = '\0';
  expect_json_reject(deep, ZQL_INGEST_MALFORMED,
                     "line 1, column 105: nested more than 100 levels deep");
}

/* }-- */

/* {-- HTTP bodies -- */

typedef struct seen {
  size_t n;
  int stop_at; /* return 99 at this index; -1 never */
  zql_ingest_reason_t reason[8192];
  char why[16][160];
  char raw[16][64];
  char type[16][16];
  bool received[16];
  uint64_t line[16];
} seen_t;

static int collect(void *arg, const zql_ingest_item_t *it)
{
  seen_t *s = arg;
  assert_int_equal(it->index, s->n);
  assert_true(s->n < ZQL_ARRAY_LEN(s->reason));
  s->reason[s->n] = it->reason;
  if (it->reason == ZQL_INGEST_OK) {
    assert_non_null(it->event);
    assert_null(it->received);
    assert_string_equal(it->why, "");
  } else {
    assert_null(it->event);
  }
  if (s->n < 16) {
    snprintf(s->why[s->n], sizeof s->why[0], "%s", it->why);
    snprintf(s->raw[s->n], sizeof s->raw[0], "%.*s", (int)it->raw_len, (const char *)it->raw);
    s->received[s->n] = it->received != NULL;
    s->line[s->n] = it->line;
    bson_iter_t i;
    s->type[s->n][0] = '\0';
    if (it->event && bson_iter_init_find(&i, it->event, "type") && BSON_ITER_HOLDS_UTF8(&i))
      snprintf(s->type[s->n], sizeof s->type[0], "%s", bson_iter_utf8(&i, NULL));
  }
  if ((int)s->n == s->stop_at)
    return 99;
  s->n++;
  return 0;
}

static seen_t *seen_new(void)
{
  seen_t *s = test_calloc(1, sizeof *s);
  s->stop_at = -1;
  return s;
}

static int body(seen_t *s, const void *data, size_t len, bool gz, const char *ct,
                zql_strbuf_t *err)
{
  zql_ingest_limits_t l = ZQL_INGEST_LIMITS_INIT;
  size_t n = 12345;
  int rc = zql_ingest_body(data, len, gz, ct, &l, collect, s, &n, err);
  assert_int_equal(n, s->n + (rc == 99));
  return rc;
}

static void test_body_ndjson(void **state)
{
  const char *b = "{\"type\": \"a\"}\n"
                  "\n"
                  "   \r\n"
                  "{\"type\": 5}\r\n"
                  "not json\n"
                  "  [1]\n"
                  "{\"type\": \"b\"} {\"type\": \"c\"}\n"
                  "{\"type\": \"d\",\n"
                  "{\"type\": \"e\", \"ts\": {\"$datetime\": 1}}";
  seen_t *s = seen_new();
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(body(s, b, strlen(b), false, "application/x-ndjson; charset=utf-8", &err), 0);
  assert_string_equal(err.buf, "");
  assert_int_equal(s->n, 7);
  assert_int_equal(s->reason[0], ZQL_INGEST_OK);
  assert_string_equal(s->type[0], "a");
  assert_int_equal(s->reason[1], ZQL_INGEST_SCHEMA);
  assert_string_equal(s->why[1], "line 4, column 1: field 'type' is a number; it must be a "
                                 "string");
  assert_true(s->received[1]);
  assert_string_equal(s->raw[1], "{\"type\": 5}");
  assert_int_equal(s->reason[2], ZQL_INGEST_MALFORMED);
  assert_false(s->received[2]);
  assert_string_equal(s->raw[2], "not json");
  assert_string_equal(s->why[2], "line 5, column 1: expected a value (an object, array, "
                                 "string, number, true, false or null)");
  assert_string_equal(s->why[3], "line 6, column 3: expected a JSON object, found an array");
  assert_string_equal(s->why[4], "line 7, column 15: unexpected data after the JSON object "
                                 "(NDJSON is one object per line)");
  assert_string_equal(s->why[5], "line 8, column 1: unterminated object (no closing '}')");
  assert_int_equal(s->reason[6], ZQL_INGEST_OK);
  assert_string_equal(s->type[6], "e");
  assert_int_equal(s->line[6], 9);
  test_free(s);

  /* the callback stops the body */
  s = seen_new();
  s->stop_at = 1;
  assert_int_equal(body(s, b, strlen(b), false, NULL, &err), 99);
  test_free(s);
  /* an empty body */
  s = seen_new();
  assert_int_equal(body(s, "", 0, false, NULL, &err), 0);
  assert_int_equal(s->n, 0);
  test_free(s);
  zql_strbuf_release(&err);
}

static void test_body_array(void **state)
{
  const char *b = " [{\"type\": \"a\"}, 5, {\"type\": 7},\n {\"type\": \"d\",\n \"x\": [1, {}]},"
                  " {\"t\": {\"$date\": \"bad\"}}, {\"type\": \"f\"}] \n";
  seen_t *s = seen_new();
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(body(s, b, strlen(b), false, NULL, &err), 0);
  assert_int_equal(s->n, 6);
  assert_string_equal(s->type[0], "a");
  assert_string_equal(s->why[1], "line 1, column 18: expected a JSON object, found a number");
  assert_string_equal(s->why[2], "line 1, column 21: field 'type' is a number; it must be a "
                                 "string");
  assert_int_equal(s->reason[3], ZQL_INGEST_OK);
  assert_string_equal(s->type[3], "d");
  assert_int_equal(s->line[3], 2);
  assert_int_equal(s->reason[4], ZQL_INGEST_MALFORMED);
  assert_memory_equal(s->why[4], "line 3, column 17: invalid JSON: Could not parse \"bad\"", 52);
  assert_string_equal(s->type[5], "f");
  test_free(s);

  /* a syntax error breaks the array: the elements before it are delivered */
  const char *broken = "[{\"type\": \"a\"}, {\"type\": \"b\"} {\"type\": \"c\"}]";
  s = seen_new();
  assert_int_equal(body(s, broken, strlen(broken), false, "application/json", &err),
                   ZQL_E_BAD_EVENT);
  assert_string_equal(err.buf, "line 1, column 31: expected ',' or ']' after an array element");
  assert_int_equal(s->n, 2);
  assert_string_equal(s->type[1], "b");
  test_free(s);
  const char *cut = "[{\"type\": \"a\"},\n {\"type\": ";
  zql_strbuf_reset(&err);
  s = seen_new();
  assert_int_equal(body(s, cut, strlen(cut), false, NULL, &err), ZQL_E_BAD_EVENT);
  assert_string_equal(err.buf, "line 2, column 2: unterminated object (no closing '}')");
  assert_int_equal(s->n, 1);
  test_free(s);
  zql_strbuf_reset(&err);
  s = seen_new();
  assert_int_equal(body(s, "[] x", 4, false, NULL, &err), ZQL_E_BAD_EVENT);
  assert_string_equal(err.buf, "line 1, column 4: unexpected data after the JSON array");
  test_free(s);

  /* application/json with one object that spans lines */
  const char *one = "{\n  \"type\": \"x\",\n  \"context\": {\"a\": 1}\n}\n";
  s = seen_new();
  assert_int_equal(body(s, one, strlen(one), false, "Application/JSON", &err), 0);
  assert_int_equal(s->n, 1);
  assert_string_equal(s->type[0], "x");
  test_free(s);
  /* the same as NDJSON: every line is a bad element */
  s = seen_new();
  assert_int_equal(body(s, one, strlen(one), false, NULL, &err), 0);
  assert_int_equal(s->n, 4);
  for (int k = 0; k < 4; k++)
    assert_int_equal(s->reason[k], ZQL_INGEST_MALFORMED);
  test_free(s);
  zql_strbuf_reset(&err);
  s = seen_new();
  assert_int_equal(body(s, "{\"a\": 1} 2", 10, false, "application/json", &err),
                   ZQL_E_BAD_EVENT);
  assert_string_equal(err.buf, "line 1, column 10: unexpected data after the JSON object (one "
                               "object per message)");
  assert_int_equal(s->n, 0);
  test_free(s);
  zql_strbuf_release(&err);
}

/* Many elements: several parse chunks, order and indexes kept. */
static void test_body_large(void **state)
{
  zql_strbuf_t b = ZQL_STRBUF_INIT;
  for (int k = 0; k < 6000; k++) {
    if (k % 100 == 50)
      zql_strbuf_adds(&b, "{\"type\": 1}\n");
    else
      zql_strbuf_addf(&b, "{\"type\": \"t%d\", \"pad\": \"%0300d\"}\n", k, k);
  }
  seen_t *s = seen_new();
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(body(s, b.buf, b.len, false, NULL, &err), 0);
  assert_int_equal(s->n, 6000);
  for (int k = 0; k < 6000; k++)
    assert_int_equal(s->reason[k], k % 100 == 50 ? ZQL_INGEST_SCHEMA : ZQL_INGEST_OK);
  test_free(s);
  zql_strbuf_release(&b);
  zql_strbuf_release(&err);
}

static void gzip_into(zql_strbuf_t *out, const void *data, size_t len)
{
  z_stream z;
  memset(&z, 0, sizeof z);
  assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY), Z_OK);
  size_t bound = deflateBound(&z, len);
  assert_true(zql_strbuf_grow(out, bound));
  z.next_in = (Bytef *)(uintptr_t)data;
  z.avail_in = (uInt)len;
  z.next_out = (Bytef *)out->buf + out->len;
  z.avail_out = (uInt)bound;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  out->len += bound - z.avail_out;
  deflateEnd(&z);
}

static void test_body_gzip(void **state)
{
  const char *a = "{\"type\": \"a\"}\n{\"type\": 2}\n";
  const char *b2 = "{\"type\": \"b\"}\n";
  zql_strbuf_t gz = ZQL_STRBUF_INIT, err = ZQL_STRBUF_INIT;
  gzip_into(&gz, a, strlen(a));
  size_t first = gz.len;
  gzip_into(&gz, b2, strlen(b2)); /* two members, as `cat a.gz b.gz` */
  seen_t *s = seen_new();
  assert_int_equal(body(s, gz.buf, gz.len, true, NULL, &err), 0);
  assert_int_equal(s->n, 3);
  assert_string_equal(s->type[0], "a");
  assert_int_equal(s->reason[1], ZQL_INGEST_SCHEMA);
  assert_string_equal(s->type[2], "b");
  test_free(s);

  /* truncated */
  s = seen_new();
  assert_int_equal(body(s, gz.buf, first - 6, true, NULL, &err), ZQL_E_BAD_EVENT);
  char want[80];
  snprintf(want, sizeof want, "gzip: truncated stream (%zu compressed bytes)", first - 6);
  assert_string_equal(err.buf, want);
  assert_int_equal(s->n, 0);
  test_free(s);
  /* corrupt: damage the deflate data */
  zql_strbuf_reset(&err);
  char *bad = test_malloc(first);
  memcpy(bad, gz.buf, first);
  for (size_t k = 10; k < first - 8; k++)
    bad[k] ^= 0x5A;
  s = seen_new();
  assert_int_equal(body(s, bad, first, true, NULL, &err), ZQL_E_BAD_EVENT);
  assert_memory_equal(err.buf, "gzip: ", 6);
  test_free(s);
  /* not gzip at all */
  zql_strbuf_reset(&err);
  s = seen_new();
  assert_int_equal(body(s, a, strlen(a), true, NULL, &err), ZQL_E_BAD_EVENT);
  assert_memory_equal(err.buf, "gzip: corrupt data at compressed byte", 37);
  test_free(s);
  test_free(bad);

  /* a bomb: 64 MiB of spaces from about 64 KiB, with a 1 MiB body limit (cap 16 MiB) */
  size_t big = 64u << 20;
  char *spaces = test_malloc(big);
  memset(spaces, ' ', big);
  zql_strbuf_reset(&gz);
  gzip_into(&gz, spaces, big);
  test_free(spaces);
  assert_true(gz.len < (1u << 20));
  zql_ingest_limits_t l = {0, 1u << 20};
  zql_strbuf_reset(&err);
  s = seen_new();
  assert_int_equal(zql_ingest_body(gz.buf, gz.len, true, NULL, &l, collect, s, NULL, &err),
                   ZQL_E_BAD_EVENT);
  assert_string_equal(err.buf, "gzip: the body inflates to more than 16777216 bytes (the limit "
                               "is 16 times the body limit, at most 1 GiB)");
  assert_int_equal(s->n, 0);
  test_free(s);
  /* the body limit itself */
  zql_strbuf_reset(&err);
  l.max_body_bytes = 10;
  s = seen_new();
  assert_int_equal(zql_ingest_body(a, strlen(a), false, NULL, &l, collect, s, NULL, &err),
                   ZQL_E_BAD_EVENT);
  assert_string_equal(err.buf, "the body is 26 bytes; the limit is 10 (max_body)");
  test_free(s);
  zql_strbuf_release(&gz);
  zql_strbuf_release(&err);
}

/* }-- */

static void test_reason_names(void **state)
{
  assert_string_equal(zql_ingest_reason_name(ZQL_INGEST_OK), "ok");
  assert_string_equal(zql_ingest_reason_name(ZQL_INGEST_TOO_LARGE), "too_large");
  assert_string_equal(zql_ingest_reason_name(ZQL_INGEST_LOG), "log");
  assert_false(zql_ingest_reason_has_doc(ZQL_INGEST_MALFORMED));
  assert_false(zql_ingest_reason_has_doc(ZQL_INGEST_TOO_LARGE));
  assert_true(zql_ingest_reason_has_doc(ZQL_INGEST_SCHEMA));
}

int zql_unit_ingest(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_zarkov_client_event),
      cmocka_unit_test(test_event_noval),
      cmocka_unit_test(test_rules),
      cmocka_unit_test(test_size),
      cmocka_unit_test(test_bad_bson),
      cmocka_unit_test(test_json_datetime),
      cmocka_unit_test(test_json_extended),
      cmocka_unit_test(test_json_syntax),
      cmocka_unit_test(test_body_ndjson),
      cmocka_unit_test(test_body_array),
      cmocka_unit_test(test_body_large),
      cmocka_unit_test(test_body_gzip),
      cmocka_unit_test(test_reason_names),
  };
  return cmocka_run_group_tests_name("ingest", tests, NULL, NULL);
}
