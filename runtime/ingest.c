/*
 * ingest.c -- decoding and validating incoming events (zqld ingest, runtime services).
 *
 * What: the one place where bytes from the network become events; the rules and the
 * messages are in ingest.h. Pipeline position: between zqld's endpoints (ZeroMQ frames,
 * HTTP bodies) and the event log; a rejected event goes to the dead-letter file.
 *
 * How:
 *   BSON   the frame's length prefix and terminator are checked here (so the message can
 *          say what is wrong with the frame), then bson_validate for the structure and a
 *          walk of every key and string for UTF-8 (libbson 1.23's BSON_VALIDATE_UTF8 does
 *          not look at string values), then the event rules (check_event).
 *   JSON   a small RFC 8259 syntax checker (scan_value, recursive descent with a depth
 *          limit) runs first: it finds where each element of a body ends and gives syntax
 *          errors a line and column, which libbson's JSON reader does not. Elements that
 *          pass are turned into BSON by runtime/ioformat.h's NDJSON reader (libbson's
 *          extended JSON plus Zarkov's $datetime rewrite), fed in chunks of about 1 MiB:
 *          each element becomes one line (a pretty-printed element has its newlines, which
 *          can only be white space outside strings, turned into spaces). Then check_event.
 *   gzip   bodies are inflated in memory with zlib (windowBits 15+16: gzip only, members
 *          read through), never past the cap, so a compression bomb is an error.
 *
 * Size rule: the document as received, encoded as BSON, is at most max_event_bytes; the
 * hard limit leaves room for the `_id` and `timestamp` fields the log adds (ingest.h).
 */
#include "runtime/base/zql_common.h"

#include "runtime/ingest.h"

#include <zlib.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/ioformat.h"

#define JSON_MAX_DEPTH 100                 /* libbson's JSON reader nests at most 100 deep */
#define UTF8_MAX_DEPTH 200                 /* BSON walk */
#define CHUNK_TEXT (1u << 20)              /* JSON text per ioformat reader */
#define MAX_ELEMENT_TEXT (64u << 20)       /* ioformat's NDJSON line limit */

const char *zql_ingest_reason_name(zql_ingest_reason_t r)
{
  switch (r) {
  case ZQL_INGEST_OK: return "ok";
  case ZQL_INGEST_MALFORMED: return "malformed";
  case ZQL_INGEST_TOO_LARGE: return "too_large";
  case ZQL_INGEST_COMMAND: return "command";
  case ZQL_INGEST_RESERVED: return "reserved";
  case ZQL_INGEST_TIMESTAMP: return "timestamp";
  case ZQL_INGEST_SCHEMA: return "schema";
  case ZQL_INGEST_LOG: return "log";
  default: return "unknown";
  }
}

bool zql_ingest_reason_has_doc(zql_ingest_reason_t r)
{
  return r == ZQL_INGEST_COMMAND || r == ZQL_INGEST_RESERVED || r == ZQL_INGEST_TIMESTAMP ||
         r == ZQL_INGEST_SCHEMA;
}

static uint32_t max_event(const zql_ingest_limits_t *l)
{
  uint32_t m = l ? l->max_event_bytes : 0;
  if (m == 0)
    return ZQL_INGEST_MAX_EVENT_DEFAULT;
  return m > ZQL_INGEST_MAX_EVENT_HARD ? ZQL_INGEST_MAX_EVENT_HARD : m;
}

/* A rejection: the class, and one message appended to why. */
static int reject(zql_ingest_reason_t *reason, zql_ingest_reason_t r, zql_strbuf_t *why,
                  const char *fmt, ...) ZQL_PRINTF(4, 5);
static int reject(zql_ingest_reason_t *reason, zql_ingest_reason_t r, zql_strbuf_t *why,
                  const char *fmt, ...)
{
  if (reason)
    *reason = r;
  if (why) {
    va_list ap;
    va_start(ap, fmt);
    zql_strbuf_vaddf(why, fmt, ap);
    va_end(ap);
  }
  return ZQL_E_BAD_EVENT;
}

static int nomem(zql_strbuf_t *why)
{
  if (why)
    zql_strbuf_adds(why, "out of memory");
  return ZQL_E_NOMEM;
}

/* "a string", "a number", ...: the kind of a value in words a JSON user knows. */
static const char *kind_name(bson_type_t t)
{
  switch (t) {
  case BSON_TYPE_UTF8: return "a string";
  case BSON_TYPE_INT32:
  case BSON_TYPE_INT64:
  case BSON_TYPE_DOUBLE:
  case BSON_TYPE_DECIMAL128: return "a number";
  case BSON_TYPE_DOCUMENT: return "a document";
  case BSON_TYPE_ARRAY: return "an array";
  case BSON_TYPE_BOOL: return "a boolean";
  case BSON_TYPE_NULL: return "null";
  case BSON_TYPE_UNDEFINED: return "undefined";
  case BSON_TYPE_DATE_TIME: return "a date";
  case BSON_TYPE_TIMESTAMP: return "a BSON Timestamp";
  case BSON_TYPE_OID: return "an ObjectId";
  case BSON_TYPE_BINARY: return "binary data";
  case BSON_TYPE_REGEX: return "a regular expression";
  case BSON_TYPE_CODE:
  case BSON_TYPE_CODEWSCOPE: return "JavaScript code";
  case BSON_TYPE_SYMBOL: return "a symbol";
  case BSON_TYPE_DBPOINTER: return "a DBPointer";
  case BSON_TYPE_MINKEY: return "MinKey";
  case BSON_TYPE_MAXKEY: return "MaxKey";
  default: return "an unknown BSON type";
  }
}

/* {==== the event rules ==================================================== */

/* Is p[0..n) UTF-8 (NUL bytes allowed when allow_nul)? Eight ASCII bytes at a time, libbson's
 * validator from the first byte that is not ASCII. */
static bool ascii_or_utf8(const char *p, size_t n, bool allow_nul)
{
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w & 0x8080808080808080ull)
      break;
    if (!allow_nul && ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull))
      return false; /* a NUL byte */
  }
  for (size_t k = i; k < n; k++)
    if ((uint8_t)p[k] >= 0x80 || (!allow_nul && p[k] == 0))
      return bson_utf8_validate(p + i, n - i, allow_nul);
  return true;
}

/* Every element of `doc` is well framed (bson_iter) and every key and string is UTF-8
 * (strings may hold NUL bytes, as BSON allows): NULL, or what is wrong. With a path, the
 * message's place is left in it (the dotted path of the bad key or value); without one
 * (the check of every frame) nothing is built. */
static const char *bad_utf8(const bson_t *doc, int depth, zql_strbuf_t *path)
{
  bson_iter_t it;
  if (depth > UTF8_MAX_DEPTH)
    return "documents are nested too deeply";
  if (!bson_iter_init(&it, doc))
    return "a nested document is corrupt";
  size_t mark = path ? path->len : 0;
  while (bson_iter_next(&it)) {
    if (path) {
      path->len = mark;
      path->buf[mark] = '\0';
    }
    if (!ascii_or_utf8(bson_iter_key(&it), bson_iter_key_len(&it), false))
      return "a key is not valid UTF-8";
    if (path) {
      if (mark)
        zql_strbuf_addc(path, '.');
      zql_strbuf_add(path, bson_iter_key(&it), bson_iter_key_len(&it));
    }
    if (BSON_ITER_HOLDS_UTF8(&it)) {
      uint32_t len;
      const char *v = bson_iter_utf8(&it, &len);
      if (!ascii_or_utf8(v, len, true))
        return "not valid UTF-8";
    } else if (BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)) {
      const uint8_t *data;
      uint32_t len;
      bson_t sub;
      if (BSON_ITER_HOLDS_ARRAY(&it))
        bson_iter_array(&it, &len, &data);
      else
        bson_iter_document(&it, &len, &data);
      if (!bson_init_static(&sub, data, len))
        return "a nested document is corrupt";
      const char *msg = bad_utf8(&sub, depth + 1, path);
      if (msg)
        return msg;
    }
  }
  if (path) {
    path->len = mark;
    path->buf[mark] = '\0';
  }
  return it.err_off ? "a nested document is corrupt" : NULL;
}

static int check_event(const bson_t *in, uint32_t maxb, bson_t *out, zql_ingest_reason_t *reason,
                       zql_strbuf_t *why, bool may_view)
{
  bson_init(out);
  if (in->len > maxb)
    return reject(reason, ZQL_INGEST_TOO_LARGE, why,
                  "event is %" PRIu32 " bytes; the limit is %" PRIu32 " (max_event_bytes)",
                  in->len, maxb);
  /* one pass: remember the special fields */
  bson_iter_t it, cmd, ts, type, ctx;
  int n_cmd = 0, n_ts = 0, n_type = 0, n_ctx = 0;
  const char *reserved = NULL;
  if (!bson_iter_init(&it, in))
    return reject(reason, ZQL_INGEST_MALFORMED, why, "not a BSON document");
  while (bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    if (k[0] == '$' && strcmp(k, "$command") == 0) {
      if (n_cmd++ == 0)
        cmd = it;
    } else if (k[0] == '_' && (strcmp(k, "_id") == 0 || strcmp(k, "_seq") == 0)) {
      if (!reserved)
        reserved = k;
    } else if (strcmp(k, "timestamp") == 0) {
      if (n_ts++ == 0)
        ts = it;
    } else if (strcmp(k, "type") == 0) {
      if (n_type++ == 0)
        type = it;
    } else if (strcmp(k, "context") == 0) {
      if (n_ctx++ == 0)
        ctx = it;
    }
  }
  int rc = 0;
  bool noval = false;
  if (n_cmd > 1) {
    rc = reject(reason, ZQL_INGEST_COMMAND, why, "field '$command' appears twice");
  } else if (n_cmd == 1) {
    if (!BSON_ITER_HOLDS_UTF8(&cmd)) {
      rc = reject(reason, ZQL_INGEST_COMMAND, why, "field '$command' is %s; it must be a string",
                  kind_name(bson_iter_type(&cmd)));
    } else {
      uint32_t clen;
      const char *c = bson_iter_utf8(&cmd, &clen);
      if (clen == 11 && memcmp(c, "event_noval", 11) == 0) {
        noval = true;
      } else {
        uint32_t n = clen;
        if (n > 200) { /* cut long values at a character boundary */
          n = 200;
          while (n > 0 && ((uint8_t)c[n] & 0xC0) == 0x80)
            n--;
        }
        rc = reject(reason, ZQL_INGEST_COMMAND, why, "unknown $command '%.*s%s'", (int)n, c,
                    n < clen ? "..." : "");
      }
    }
  }
  if (rc == 0 && reserved)
    rc = reject(reason, ZQL_INGEST_RESERVED, why, "field '%s' is assigned by the server",
                reserved);
  if (rc == 0 && n_ts > 1)
    rc = reject(reason, ZQL_INGEST_TIMESTAMP, why, "field 'timestamp' appears twice");
  if (rc == 0 && n_ts == 1 && !BSON_ITER_HOLDS_DATE_TIME(&ts) && !BSON_ITER_HOLDS_TIMESTAMP(&ts))
    rc = reject(reason, ZQL_INGEST_TIMESTAMP, why, "field 'timestamp' is not a date (it is %s)",
                kind_name(bson_iter_type(&ts)));
  if (rc == 0 && !noval) {
    if (n_type > 1)
      rc = reject(reason, ZQL_INGEST_SCHEMA, why, "field 'type' appears twice");
    else if (n_type == 1 && !BSON_ITER_HOLDS_UTF8(&type))
      rc = reject(reason, ZQL_INGEST_SCHEMA, why, "field 'type' is %s; it must be a string",
                  kind_name(bson_iter_type(&type)));
    else if (n_ctx > 1)
      rc = reject(reason, ZQL_INGEST_SCHEMA, why, "field 'context' appears twice");
    else if (n_ctx == 1 && !BSON_ITER_HOLDS_DOCUMENT(&ctx))
      rc = reject(reason, ZQL_INGEST_SCHEMA, why, "field 'context' is %s; it must be a document",
                  kind_name(bson_iter_type(&ctx)));
  }
  bool ok;
  if (rc == 0 && n_cmd) {
    ok = (bson_copy_to_excluding_noinit(in, out, "$command", NULL), true);
  } else if (rc == 0 && may_view) { /* accepted as is: a view of the caller's bytes */
    bson_destroy(out);
    ok = bson_init_static(out, bson_get_data(in), in->len);
  } else {
    ok = bson_concat(out, in); /* accepted as is, or the document as received */
  }
  if (!ok)
    return nomem(why);
  if (rc == 0 && reason)
    *reason = ZQL_INGEST_OK;
  return rc;
}

/* }==== */

/* {==== BSON frames ======================================================== */

static uint32_t le32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int zql_ingest_bson(const void *data, size_t len, const zql_ingest_limits_t *limits, bson_t *out,
                    zql_ingest_reason_t *reason, zql_strbuf_t *why)
{
  const uint8_t *p = data;
  uint32_t maxb = max_event(limits);
  bson_init(out);
  if (len < 5)
    return reject(reason, ZQL_INGEST_MALFORMED, why,
                  "not a BSON document: the frame has %zu bytes; a document has at least 5", len);
  uint32_t prefix = le32(p);
  if (prefix != len) {
    reject(reason, ZQL_INGEST_MALFORMED, why,
           "not a BSON document: length prefix %" PRIu32 " does not match the frame's %zu bytes",
           prefix, len);
    if (why && (p[0] == '{' || p[0] == '['))
      zql_strbuf_adds(why, " (it looks like JSON, which the JSON endpoint takes)");
    return ZQL_E_BAD_EVENT;
  }
  if (len > maxb)
    return reject(reason, ZQL_INGEST_TOO_LARGE, why,
                  "event is %zu bytes; the limit is %" PRIu32 " (max_event_bytes)", len, maxb);
  if (p[len - 1] != 0)
    return reject(reason, ZQL_INGEST_MALFORMED, why,
                  "not a BSON document: it does not end with a NUL byte");
  bson_t in;
  bson_error_t berr;
  if (!bson_init_static(&in, p, len))
    return reject(reason, ZQL_INGEST_MALFORMED, why, "not a BSON document");
  if (!bad_utf8(&in, 0, NULL)) /* the one walk of a good frame */
    return check_event(&in, maxb, out, reason, why, true);
  /* something is wrong: the thorough walks say what */
  if (!bson_validate_with_error(&in, BSON_VALIDATE_NONE, &berr))
    return reject(reason, ZQL_INGEST_MALFORMED, why, "not a BSON document: %s", berr.message);
  zql_strbuf_t path = ZQL_STRBUF_INIT;
  const char *bad = bad_utf8(&in, 0, &path);
  if (path.oom) {
    zql_strbuf_release(&path);
    return nomem(why);
  }
  if (bad) {
    if (path.len)
      reject(reason, ZQL_INGEST_MALFORMED, why, "not a BSON document: field '%s': %s", path.buf,
             bad);
    else
      reject(reason, ZQL_INGEST_MALFORMED, why, "not a BSON document: %s", bad);
    zql_strbuf_release(&path);
    return ZQL_E_BAD_EVENT;
  }
  zql_strbuf_release(&path);
  return reject(reason, ZQL_INGEST_MALFORMED, why, "not a BSON document: a corrupt element");
}

/* }==== */

/* {==== JSON syntax (RFC 8259) ============================================== */

typedef struct jscan {
  const uint8_t *p, *end;
  const char *msg; /* the first error (static text) */
  const uint8_t *at; /* where it is */
} jscan_t;

static bool jfail(jscan_t *s, const uint8_t *at, const char *msg)
{
  s->msg = msg;
  s->at = at;
  return false;
}

static void skip_ws(jscan_t *s)
{
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

/* Length of the UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates, <= U+10FFFF),
 * or 0 if it is invalid. */
static size_t utf8_len(const uint8_t *p, const uint8_t *end)
{
  uint8_t c = p[0];
  size_t n;
  uint32_t min, cp;
  if (c < 0x80)
    return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2, min = 0x80, cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, min = 0x800, cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, min = 0x10000, cp = c & 0x07;
  } else {
    return 0;
  }
  if ((size_t)(end - p) < n)
    return 0;
  for (size_t k = 1; k < n; k++) {
    if ((p[k] & 0xC0) != 0x80)
      return 0;
    cp = cp << 6 | (p[k] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

static int hexval(uint8_t c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static bool scan_string(jscan_t *s)
{
  const uint8_t *start = s->p++; /* the opening quote */
  while (s->p < s->end) {
    uint8_t c = *s->p;
    if (c == '"') {
      s->p++;
      return true;
    }
    if (c == '\\') {
      if (s->end - s->p < 2)
        break;
      uint8_t e = s->p[1];
      if (e == 'u') {
        if (s->end - s->p < 6)
          return jfail(s, s->p, "invalid \\u escape in a string (it needs 4 hex digits)");
        for (int k = 2; k < 6; k++)
          if (hexval(s->p[k]) < 0)
            return jfail(s, s->p, "invalid \\u escape in a string (it needs 4 hex digits)");
        s->p += 6;
      } else if (strchr("\"\\/bfnrt", e) && e) {
        s->p += 2;
      } else {
        return jfail(s, s->p, "invalid escape in a string (JSON has \\\" \\\\ \\/ \\b \\f \\n "
                              "\\r \\t \\uXXXX)");
      }
    } else if (c < 0x20) {
      return jfail(s, s->p, "control character in a string (write it as an escape: \\n, "
                            "\\t, \\u0001)");
    } else {
      size_t n = utf8_len(s->p, s->end);
      if (n == 0)
        return jfail(s, s->p, "invalid UTF-8 in a string");
      s->p += n;
    }
  }
  return jfail(s, start, "unterminated string");
}

static bool scan_number(jscan_t *s)
{
  const uint8_t *start = s->p;
  if (s->p < s->end && *s->p == '-')
    s->p++;
  if (s->p < s->end && *s->p == '0') {
    s->p++;
  } else if (s->p < s->end && *s->p >= '1' && *s->p <= '9') {
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
      s->p++;
  } else {
    return jfail(s, start, "invalid number");
  }
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
      return jfail(s, start, "invalid number (digits must follow the '.')");
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
      s->p++;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
      s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
      return jfail(s, start, "invalid number (digits must follow the exponent)");
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
      s->p++;
  }
  return true;
}

static bool scan_value(jscan_t *s, int depth);

static bool scan_container(jscan_t *s, int depth, bool object)
{
  const uint8_t *open = s->p++;
  if (depth >= JSON_MAX_DEPTH)
    return jfail(s, open, "nested more than 100 levels deep");
  skip_ws(s);
  if (s->p < s->end && *s->p == (object ? '}' : ']')) {
    s->p++;
    return true;
  }
  for (;;) {
    if (object) {
      skip_ws(s);
      if (s->p >= s->end)
        return jfail(s, open, "unterminated object (no closing '}')");
      if (*s->p != '"')
        return jfail(s, s->p, "expected a string in double quotes as the object key");
      if (!scan_string(s))
        return false;
      skip_ws(s);
      if (s->p >= s->end || *s->p != ':')
        return jfail(s, s->p, "expected ':' after the object key");
      s->p++;
    }
    skip_ws(s);
    if (s->p >= s->end)
      return jfail(s, open, object ? "unterminated object (no closing '}')"
                                   : "unterminated array (no closing ']')");
    if (!scan_value(s, depth + 1))
      return false;
    skip_ws(s);
    if (s->p >= s->end)
      return jfail(s, open, object ? "unterminated object (no closing '}')"
                                   : "unterminated array (no closing ']')");
    if (*s->p == ',') {
      s->p++;
      continue;
    }
    if (*s->p == (object ? '}' : ']')) {
      s->p++;
      return true;
    }
    return jfail(s, s->p, object ? "expected ',' or '}' after an object member"
                                 : "expected ',' or ']' after an array element");
  }
}

static bool scan_literal(jscan_t *s, const char *word)
{
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
    return jfail(s, s->p, "expected a value (an object, array, string, number, true, false "
                          "or null)");
  s->p += n;
  return true;
}

/* One value at s->p (no leading white space). */
static bool scan_value(jscan_t *s, int depth)
{
  if (s->p >= s->end)
    return jfail(s, s->p, "expected a value, found the end of the input");
  switch (*s->p) {
  case '{': return scan_container(s, depth, true);
  case '[': return scan_container(s, depth, false);
  case '"': return scan_string(s);
  case 't': return scan_literal(s, "true");
  case 'f': return scan_literal(s, "false");
  case 'n': return scan_literal(s, "null");
  default:
    if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
      return scan_number(s);
    return jfail(s, s->p, "expected a value (an object, array, string, number, true, false "
                          "or null)");
  }
}

/* "an array", "a string", ... for the first byte of a valid value. */
static const char *json_kind(uint8_t c)
{
  switch (c) {
  case '[': return "an array";
  case '"': return "a string";
  case 't':
  case 'f': return "a boolean";
  case 'n': return "null";
  default: return "a number";
  }
}

/* Line and column (1-based; the column counts characters) of `at` in [base, ...),
 * advancing a cursor so that increasing positions cost O(distance). */
typedef struct jpos {
  const uint8_t *base, *cur;
  uint64_t line, col;
} jpos_t;

static void pos_init(jpos_t *ps, const uint8_t *base)
{
  ps->base = ps->cur = base;
  ps->line = ps->col = 1;
}

static void pos_at(jpos_t *ps, const uint8_t *at, uint64_t *line, uint64_t *col)
{
  if (at < ps->cur) /* backwards: start over (rare: errors inside an element) */
    pos_init(ps, ps->base);
  for (; ps->cur < at; ps->cur++) {
    if (*ps->cur == '\n') {
      ps->line++;
      ps->col = 1;
    } else if ((*ps->cur & 0xC0) != 0x80) {
      ps->col++;
    }
  }
  *line = ps->line;
  *col = ps->col;
}

/* }==== */

/* {==== JSON elements: syntax-checked text -> ioformat's reader -> the rules ========= */

/* One element of a body (or the one object of a frame), waiting for the chunk's reader. */
typedef struct elem {
  size_t off, len;            /* its text in the body */
  uint64_t line, col;         /* where it starts */
  zql_ingest_reason_t pre;    /* OK: in the chunk; else rejected before parsing */
  size_t msg;                 /* pre-rejected: offset of its message in msgs */
} elem_t;

typedef struct body {
  const uint8_t *text;
  size_t len;
  uint32_t maxb;
  bool frame;                 /* a single frame: rule messages carry no position */
  zql_ingest_each_fn each;
  void *arg;
  elem_t *el;
  size_t n, cap;
  zql_strbuf_t chunk;         /* the pending objects as NDJSON, one per line */
  zql_strbuf_t msgs;          /* messages of pre-rejected elements, NUL-terminated each */
  zql_strbuf_t why;           /* the message of the element being delivered */
  size_t index;               /* elements delivered */
  jpos_t pos;
} body_t;

static void body_init(body_t *b, const void *text, size_t len, const zql_ingest_limits_t *l,
                      zql_ingest_each_fn each, void *arg)
{
  memset(b, 0, sizeof *b);
  b->text = text;
  b->len = len;
  b->maxb = max_event(l);
  b->each = each;
  b->arg = arg;
  zql_strbuf_init(&b->chunk);
  zql_strbuf_init(&b->msgs);
  zql_strbuf_init(&b->why);
  pos_init(&b->pos, b->text);
}

static void body_free(body_t *b)
{
  zql_free(b->el);
  zql_strbuf_release(&b->chunk);
  zql_strbuf_release(&b->msgs);
  zql_strbuf_release(&b->why);
}

static elem_t *add_elem(body_t *b, const uint8_t *start, size_t len)
{
  if (b->n == b->cap) {
    size_t cap = b->cap ? 2 * b->cap : 64;
    elem_t *el = zql_reallocarray(b->el, cap, sizeof *el);
    if (!el)
      return NULL;
    b->el = el;
    b->cap = cap;
  }
  elem_t *e = &b->el[b->n++];
  e->off = (size_t)(start - b->text);
  e->len = len;
  pos_at(&b->pos, start, &e->line, &e->col);
  e->pre = ZQL_INGEST_OK;
  e->msg = 0;
  return e;
}

/* An element rejected before parsing; the message is "line L, column C: " + fmt, the
 * position being `at` (the error) rather than the element's start. */
static int pre_reject(body_t *b, const uint8_t *start, size_t len, const uint8_t *at,
                      zql_ingest_reason_t r, const char *fmt, ...) ZQL_PRINTF(6, 7);
static int pre_reject(body_t *b, const uint8_t *start, size_t len, const uint8_t *at,
                      zql_ingest_reason_t r, const char *fmt, ...)
{
  elem_t *e = add_elem(b, start, len);
  if (!e)
    return ZQL_E_NOMEM;
  e->pre = r;
  e->msg = b->msgs.len;
  uint64_t line, col;
  pos_at(&b->pos, at, &line, &col);
  zql_strbuf_addf(&b->msgs, "line %" PRIu64 ", column %" PRIu64 ": ", line, col);
  va_list ap;
  va_start(ap, fmt);
  zql_strbuf_vaddf(&b->msgs, fmt, ap);
  va_end(ap);
  zql_strbuf_addc(&b->msgs, '\0');
  return b->msgs.oom ? ZQL_E_NOMEM : 0;
}

/* A syntactically valid object: into the chunk, newlines (white space here) made spaces. */
static int add_object(body_t *b, const uint8_t *start, size_t len)
{
  if (len > MAX_ELEMENT_TEXT)
    return pre_reject(b, start, len, start, ZQL_INGEST_TOO_LARGE,
                      "event is %zu bytes of JSON text; the limit is %u", len,
                      MAX_ELEMENT_TEXT);
  if (!add_elem(b, start, len))
    return ZQL_E_NOMEM;
  size_t at = b->chunk.len;
  zql_strbuf_add(&b->chunk, start, len);
  zql_strbuf_addc(&b->chunk, '\n');
  if (b->chunk.oom)
    return ZQL_E_NOMEM;
  if (memchr(start, '\n', len))
    for (char *q = b->chunk.buf + at; q < b->chunk.buf + at + len; q++)
      if (*q == '\n')
        *q = ' ';
  return 0;
}

static int deliver(body_t *b, const elem_t *e, const bson_t *event, const bson_t *received,
                   zql_ingest_reason_t r, const char *why)
{
  zql_ingest_item_t it = {
      .index = b->index++,
      .line = e->line,
      .column = e->col,
      .event = event,
      .received = received,
      .raw = b->text + e->off,
      .raw_len = e->len,
      .reason = r,
      .why = why,
  };
  return b->each(b->arg, &it);
}

/* Parse the pending elements (through one ioformat reader over the chunk), apply the
 * rules and hand each to the callback in order. */
static int flush_elems(body_t *b)
{
  int rc = 0;
  zql_ioreader_t *rd = NULL;
  if (b->chunk.len) {
    zql_ioreader_opts_t o = ZQL_IOREADER_OPTS_INIT;
    o.format = ZQL_IOFMT_NDJSON;
    o.datetime = true;
    o.max_doc = ZQL_IO_MAX_DOC;
    zql_strbuf_reset(&b->why);
    rc = zql_ioreader_open_mem(b->chunk.buf, b->chunk.len, "json", &o, &rd, NULL);
    if (rc < 0)
      goto done;
  }
  uint64_t line = 0;
  for (size_t k = 0; k < b->n && rc == 0; k++) {
    const elem_t *e = &b->el[k];
    if (e->pre != ZQL_INGEST_OK) {
      rc = deliver(b, e, NULL, NULL, e->pre, b->msgs.buf + e->msg);
      continue;
    }
    line++;
    const bson_t *doc;
    zql_iowhere_t w;
    zql_strbuf_reset(&b->why);
    zql_strbuf_addf(&b->why, "line %" PRIu64 ", column %" PRIu64 ": ", e->line, e->col);
    size_t prefix = b->why.len;
    int r = zql_ioreader_next(rd, &doc, &w, &b->why);
    if (r == 1 && w.line != line)
      r = ZQL_E_INTERNAL;
    if (r == ZQL_E_BAD_RECORD) {
      /* "json:LINE: message" from the reader: keep the message */
      char tag[48];
      int tl = snprintf(tag, sizeof tag, "json:%" PRIu64 ": ", line);
      if (b->why.len - prefix >= (size_t)tl && memcmp(b->why.buf + prefix, tag, (size_t)tl) == 0)
        memmove(b->why.buf + prefix, b->why.buf + prefix + tl, b->why.len - prefix - tl + 1),
            b->why.len -= (size_t)tl;
      rc = b->why.oom ? ZQL_E_NOMEM
                      : deliver(b, e, NULL, NULL, ZQL_INGEST_MALFORMED, b->why.buf);
      continue;
    }
    if (r != 1) {
      rc = r == ZQL_E_NOMEM ? ZQL_E_NOMEM : ZQL_E_INTERNAL;
      break;
    }
    bson_t out;
    zql_ingest_reason_t reason;
    if (b->frame)
      zql_strbuf_reset(&b->why);
    r = check_event(doc, b->maxb, &out, &reason, &b->why, false);
    if (r == 0)
      rc = deliver(b, e, &out, NULL, ZQL_INGEST_OK, "");
    else if (r == ZQL_E_BAD_EVENT)
      rc = b->why.oom ? ZQL_E_NOMEM
                      : deliver(b, e, NULL, zql_ingest_reason_has_doc(reason) ? &out : NULL,
                                reason, b->why.buf);
    else
      rc = r;
    bson_destroy(&out);
  }
done:
  zql_ioreader_close(rd);
  b->n = 0;
  zql_strbuf_reset(&b->chunk);
  zql_strbuf_reset(&b->msgs);
  return rc;
}

static int maybe_flush(body_t *b)
{
  return b->chunk.len >= CHUNK_TEXT || b->n >= 4096 ? flush_elems(b) : 0;
}

/* One JSON value at `start` (white space skipped) of the whole text [start, end): an
 * element. Returns 0 with *next after it, or sets *syntax (the element could not be
 * delimited) with the scanner state in s. */
static int one_value(body_t *b, jscan_t *s, const uint8_t *start, const uint8_t *end,
                     bool *syntax)
{
  s->p = start;
  s->end = end;
  s->msg = NULL;
  *syntax = false;
  if (!scan_value(s, 0)) {
    *syntax = true;
    return 0;
  }
  if (*start == '{')
    return add_object(b, start, (size_t)(s->p - start));
  return pre_reject(b, start, (size_t)(s->p - start), start, ZQL_INGEST_MALFORMED,
                    "expected a JSON object, found %s", json_kind(*start));
}

/* Skip a UTF-8 byte-order mark. */
static const uint8_t *skip_bom(const uint8_t *p, const uint8_t *end)
{
  return end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0 ? p + 3 : p;
}

/* The whole text is one object (a frame, or an application/json body). A syntax error is
 * an element rejection for a frame and a body error (body_err) for a body. */
static int parse_single(body_t *b, zql_strbuf_t *body_err)
{
  jscan_t s;
  const uint8_t *end = b->text + b->len;
  s.p = skip_bom(b->text, end);
  s.end = end;
  skip_ws(&s);
  const uint8_t *start = s.p;
  if (start == end) {
    if (body_err)
      return 0; /* an empty body: no events */
    int rc = pre_reject(b, start, 0, start, ZQL_INGEST_MALFORMED,
                        "expected a JSON object, found the end of the input");
    return rc == 0 ? flush_elems(b) : rc;
  }
  bool syntax;
  int rc = one_value(b, &s, start, end, &syntax);
  if (rc == 0 && !syntax) {
    skip_ws(&s);
    if (s.p < end) {
      s.msg = "unexpected data after the JSON object (one object per message)";
      s.at = s.p;
      syntax = true;
      b->n = 0; /* the element is void */
      zql_strbuf_reset(&b->chunk);
      zql_strbuf_reset(&b->msgs);
    }
  }
  if (rc == 0 && syntax) {
    if (body_err) {
      uint64_t line, col;
      pos_at(&b->pos, s.at, &line, &col);
      zql_strbuf_addf(body_err, "line %" PRIu64 ", column %" PRIu64 ": %s", line, col, s.msg);
      return ZQL_E_BAD_EVENT;
    }
    rc = pre_reject(b, start, (size_t)(end - start), s.at, ZQL_INGEST_MALFORMED, "%s", s.msg);
  }
  if (rc == 0)
    rc = flush_elems(b);
  return rc;
}

static bool blank_line(const uint8_t *p, const uint8_t *end)
{
  for (; p < end; p++)
    if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\f' && *p != '\v')
      return false;
  return true;
}

/* NDJSON: each non-blank line is one element; a line that is not one JSON value is a
 * rejected element, and the body goes on. */
static int parse_ndjson(body_t *b)
{
  const uint8_t *end = b->text + b->len;
  const uint8_t *p = skip_bom(b->text, end);
  int rc = 0;
  while (p < end && rc == 0) {
    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
    const uint8_t *eol = nl ? nl : end;
    if (!blank_line(p, eol)) {
      jscan_t s;
      s.p = p;
      s.end = eol;
      while (s.p < eol && (*s.p == ' ' || *s.p == '\t'))
        s.p++;
      const uint8_t *start = s.p;
      /* the line without trailing white space (\r of CRLF included) */
      const uint8_t *stop = eol;
      while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t' || stop[-1] == '\r'))
        stop--;
      if ((*start == '\f' || *start == '\v')) {
        rc = pre_reject(b, start, (size_t)(stop - start), start, ZQL_INGEST_MALFORMED,
                        "expected a JSON object");
      } else {
        bool syntax;
        rc = one_value(b, &s, start, stop, &syntax);
        if (rc == 0 && syntax)
          rc = pre_reject(b, start, (size_t)(stop - start), s.at, ZQL_INGEST_MALFORMED, "%s",
                          s.msg);
        else if (rc == 0 && s.p < stop) {
          /* a second value on the line: the element is the whole line */
          if (b->n && b->el[b->n - 1].pre == ZQL_INGEST_OK) {
            b->chunk.len -= b->el[b->n - 1].len + 1;
            b->chunk.buf[b->chunk.len] = '\0';
          }
          b->n--;
          while (*s.p == ' ' || *s.p == '\t')
            s.p++;
          rc = pre_reject(b, start, (size_t)(stop - start), s.p, ZQL_INGEST_MALFORMED,
                          "unexpected data after the JSON object (NDJSON is one object per "
                          "line)");
        }
      }
      if (rc == 0)
        rc = maybe_flush(b);
    }
    p = nl ? nl + 1 : end;
  }
  if (rc == 0)
    rc = flush_elems(b);
  return rc;
}

/* A JSON array of objects. A syntax error breaks the array: the elements before it are
 * delivered, then the body fails with the position. */
static int parse_array(body_t *b, zql_strbuf_t *err)
{
  const uint8_t *end = b->text + b->len;
  jscan_t s;
  s.p = skip_bom(b->text, end);
  s.end = end;
  skip_ws(&s);
  const uint8_t *open = s.p++; /* '[' */
  int rc = 0;
  const char *msg = NULL;
  const uint8_t *at = NULL;
  skip_ws(&s);
  if (s.p < end && *s.p == ']') {
    s.p++;
  } else {
    for (;;) {
      skip_ws(&s);
      if (s.p >= end) {
        msg = "unterminated array (no closing ']')", at = open;
        break;
      }
      bool syntax;
      const uint8_t *start = s.p;
      rc = one_value(b, &s, start, end, &syntax);
      if (rc != 0)
        break;
      if (syntax) {
        msg = s.msg, at = s.at;
        break;
      }
      if ((rc = maybe_flush(b)) != 0)
        break;
      skip_ws(&s);
      if (s.p < end && *s.p == ',') {
        s.p++;
        continue;
      }
      if (s.p < end && *s.p == ']') {
        s.p++;
        break;
      }
      msg = s.p < end ? "expected ',' or ']' after an array element"
                      : "unterminated array (no closing ']')";
      at = s.p < end ? s.p : open;
      break;
    }
  }
  if (rc == 0 && !msg) {
    skip_ws(&s);
    if (s.p < end)
      msg = "unexpected data after the JSON array", at = s.p;
  }
  if (rc == 0)
    rc = flush_elems(b);
  if (rc == 0 && msg) {
    uint64_t line, col;
    pos_at(&b->pos, at, &line, &col);
    zql_strbuf_addf(err, "line %" PRIu64 ", column %" PRIu64 ": %s", line, col, msg);
    rc = ZQL_E_BAD_EVENT;
  }
  return rc;
}

/* }==== */

/* {==== JSON frames ======================================================== */

typedef struct frame_result {
  bson_t *out;
  zql_ingest_reason_t reason;
  bool nomem;
  zql_strbuf_t *why;
} frame_result_t;

static int frame_each(void *arg, const zql_ingest_item_t *it)
{
  frame_result_t *fr = arg;
  fr->reason = it->reason;
  const bson_t *doc = it->event ? it->event : it->received;
  if (doc) {
    if (!bson_concat(fr->out, doc))
      fr->nomem = true;
  }
  if (it->reason != ZQL_INGEST_OK && fr->why)
    zql_strbuf_adds(fr->why, it->why);
  return 0;
}

int zql_ingest_json(const char *text, size_t len, const zql_ingest_limits_t *limits, bson_t *out,
                    zql_ingest_reason_t *reason, zql_strbuf_t *why)
{
  bson_init(out);
  frame_result_t fr = {out, ZQL_INGEST_MALFORMED, false, why};
  body_t b;
  body_init(&b, text, len, limits, frame_each, &fr);
  b.frame = true;
  int rc = parse_single(&b, NULL);
  body_free(&b);
  if (rc == 0 && fr.nomem)
    rc = ZQL_E_NOMEM;
  if (rc != 0) {
    bson_reinit(out);
    return rc == ZQL_E_NOMEM ? nomem(why) : rc;
  }
  if (reason)
    *reason = fr.reason;
  return fr.reason == ZQL_INGEST_OK ? 0 : ZQL_E_BAD_EVENT;
}

/* }==== */

/* {==== HTTP bodies ======================================================== */

/* Inflate a gzip body (all its members) into `dst`, at most `cap` bytes. */
static int gunzip(const uint8_t *src, size_t len, uint64_t cap, zql_strbuf_t *dst,
                  zql_strbuf_t *err)
{
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 15 + 16) != Z_OK) {
    zql_strbuf_adds(err, "gzip: cannot start decoding: out of memory");
    return ZQL_E_NOMEM;
  }
  int rc = 0;
  z.next_in = (Bytef *)(uintptr_t)src;
  size_t left = len;
  bool in_member = false, out_full = false;
  for (;;) {
    if (z.avail_in == 0 && left) {
      uInt n = left > (1u << 30) ? (1u << 30) : (uInt)left;
      z.avail_in = n;
      left -= n;
    }
    if (z.avail_in == 0 && !out_full) { /* all input used and all output taken */
      if (in_member) {
        zql_strbuf_addf(err, "gzip: truncated stream (%zu compressed bytes)", len);
        rc = ZQL_E_BAD_EVENT;
      }
      break;
    }
    size_t room = dst->alloc > dst->len + 1 ? dst->alloc - dst->len - 1 : 0;
    if (room < 16384) {
      size_t want = dst->len < 65536 ? 65536 : dst->len; /* double */
      if ((uint64_t)dst->len + want > cap + 1)
        want = (size_t)(cap + 1 - dst->len);
      if (want == 0 || !zql_strbuf_grow(dst, want)) {
        if (want == 0)
          break; /* over the cap: reported below */
        rc = ZQL_E_NOMEM;
        zql_strbuf_adds(err, "out of memory");
        break;
      }
      room = dst->alloc - dst->len - 1;
    }
    if ((uint64_t)dst->len + room > cap + 1)
      room = (size_t)(cap + 1 - dst->len);
    z.next_out = (Bytef *)dst->buf + dst->len;
    z.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
    uInt before = z.avail_out;
    in_member = true;
    int zr = inflate(&z, Z_NO_FLUSH);
    dst->len += before - z.avail_out;
    dst->buf[dst->len] = '\0';
    out_full = z.avail_out == 0;
    if (dst->len > cap)
      break;
    if (zr == Z_STREAM_END) {
      in_member = false;
      if (z.avail_in == 0 && left == 0)
        break;
      inflateReset(&z); /* another member follows */
    } else if (zr == Z_BUF_ERROR && z.avail_in == 0 && left == 0) {
      zql_strbuf_addf(err, "gzip: truncated stream (%zu compressed bytes)", len);
      rc = ZQL_E_BAD_EVENT;
      break;
    } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
      if (zr == Z_MEM_ERROR) {
        zql_strbuf_adds(err, "out of memory");
        rc = ZQL_E_NOMEM;
      } else {
        zql_strbuf_addf(err, "gzip: corrupt data at compressed byte %zu: %s",
                        (size_t)(z.next_in - src), z.msg ? z.msg : "invalid stream");
        rc = ZQL_E_BAD_EVENT;
      }
      break;
    }
  }
  if (rc == 0 && dst->len > cap) {
    zql_strbuf_addf(err, "gzip: the body inflates to more than %" PRIu64 " bytes (the limit "
                    "is 16 times the body limit, at most 1 GiB)", cap);
    rc = ZQL_E_BAD_EVENT;
  }
  inflateEnd(&z);
  return rc;
}

/* The media type of a Content-Type value, lower case, without parameters. */
static bool media_is(const char *ct, const char *type)
{
  if (!ct)
    return false;
  while (*ct == ' ' || *ct == '\t')
    ct++;
  size_t n = strlen(type);
  if (strncasecmp(ct, type, n) != 0)
    return false;
  ct += n;
  while (*ct == ' ' || *ct == '\t')
    ct++;
  return *ct == '\0' || *ct == ';';
}

int zql_ingest_body(const void *data, size_t len, bool gzip, const char *content_type,
                    const zql_ingest_limits_t *limits, zql_ingest_each_fn each, void *arg,
                    size_t *n_elements, zql_strbuf_t *err)
{
  zql_strbuf_t scratch = ZQL_STRBUF_INIT;
  if (!err)
    err = &scratch;
  if (n_elements)
    *n_elements = 0;
  uint64_t max_body = limits && limits->max_body_bytes ? limits->max_body_bytes
                                                       : ZQL_INGEST_MAX_BODY_DEFAULT;
  if (len > max_body) {
    zql_strbuf_addf(err, "the body is %zu bytes; the limit is %" PRIu64 " (max_body)", len,
                    max_body);
    zql_strbuf_release(&scratch);
    return ZQL_E_BAD_EVENT;
  }
  zql_strbuf_t plain = ZQL_STRBUF_INIT;
  const uint8_t *text = data;
  size_t tlen = len;
  int rc = 0;
  if (gzip && len) {
    uint64_t cap = max_body > ZQL_INGEST_MAX_INFLATED / 16 ? ZQL_INGEST_MAX_INFLATED
                                                           : max_body * 16;
    if ((rc = gunzip(data, len, cap, &plain, err)) != 0)
      goto done;
    text = (const uint8_t *)plain.buf;
    tlen = plain.len;
  }
  body_t b;
  body_init(&b, text, tlen, limits, each, arg);
  const uint8_t *p = skip_bom(text, text + tlen);
  while (p < text + tlen && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    p++;
  if (p < text + tlen && *p == '[')
    rc = parse_array(&b, err);
  else if (media_is(content_type, "application/json"))
    rc = parse_single(&b, err);
  else
    rc = parse_ndjson(&b);
  if (rc == ZQL_E_NOMEM && err->len == 0)
    zql_strbuf_adds(err, "out of memory");
  if (n_elements)
    *n_elements = b.index;
  body_free(&b);
done:
  zql_strbuf_release(&plain);
  zql_strbuf_release(&scratch);
  return rc;
}

/* }==== */
