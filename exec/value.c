/*
 * value.c -- ZQL run-time values: BSON conversion, the R7 total order, the three-valued
 * comparisons of expressions, the normalised key encoding and its hash, and JSON/text
 * output (stage 4, used by every executor stage; the contract is in value.h).
 *
 * Key encoding (design/ZQL.md R6; also in docs/formats.md). One tag byte, then:
 *
 *   0x05  MinKey
 *   0x0A  null (NULL, MISSING, ERROR and BSON undefined)
 *   0x10  NaN (every NaN alike)
 *   0x11  + 8 bytes: a double < -2^63 (including -inf), order-preserving bits (below)
 *   0x12  + 8 bytes: the integer part trunc(x) as a big-endian int64 with the sign bit
 *         flipped, + 8 bytes: the fraction x - trunc(x) in (-1, 1) as order-preserving
 *         double bits (+0.0, i.e. 80 00 .. 00, for integral values), for every number
 *         in [-2^63, 2^63): INT, and DOUBLE in that range (3.0 encodes as the integer 3)
 *   0x13  + 8 bytes: a double >= 2^63 (including +inf), order-preserving bits
 *   0x20  string: the bytes with 0x00 escaped as 0x00 0xFF, terminated by 0x00 0x00
 *   0x30  document: per field 0x01 + name (escaped as a string) + value encoding; 0x00
 *   0x40  array: per element 0x01 + value encoding; then 0x00
 *   0x50  binary: 4-byte big-endian length, subtype byte, the bytes
 *   0x60  ObjectId: its 12 bytes
 *   0x70  bool: 0x00 / 0x01
 *   0x80  date: 8 bytes, big-endian int64 ms with the sign bit flipped
 *   0x90  timestamp: 4 bytes seconds + 4 bytes increment, big-endian
 *   0xA0  regex: the pattern escaped as a string, then the flags escaped as a string
 *   0xB0  other (code, code with scope, DBPointer): the BSON type byte followed by the
 *         value bytes, escaped as a string
 *   0xF0  MaxKey
 *
 * Order-preserving double bits: the IEEE bits u read as an unsigned integer, with every
 * bit inverted when the sign is set and only the sign bit set otherwise, big-endian; then
 * memcmp orders them like the doubles (-0.0 is normalised to +0.0 first).
 *
 * The number layout splits x into trunc(x) and x - trunc(x) (both exact: Sterbenz), so
 * integers and non-integral doubles interleave correctly and int64 values beyond 2^53
 * keep every bit. (A floor/positive-fraction split cannot be exact: for x = -1e-300 the
 * fraction 1 - 1e-300 rounds to 1.0.) Properties, proved by tests/unit/test_value.c:
 * memcmp order of two encodings == zql_val_cmp order of the normalised values; equal
 * bytes <=> equal normalised values; every encoding is self-delimiting, so the
 * encodings of several key columns concatenate into one comparable byte string.
 *
 * The hash (zql_val_hash) is XXH3-64 with seed ZQL_HASH_SEED over exactly these bytes,
 * computed in 256-byte chunks through a streaming XXH3 state when the encoding is long,
 * so hashing never allocates.
 *
 * Decoding (zql_val_decode) and checking (zql_val_skip) are one function, run with and
 * without an arena: decode refuses exactly the bytes the check refuses, and otherwise
 * fails only when out of memory, so a caller can tell corrupt bytes from ENOMEM.
 * Documents are rebuilt with the strbuf BSON builder (zql_bson_*), which is also what
 * aggregators use for their outputs: a growing bson_t aborts (libbson's malloc) or
 * crashes (a custom realloc returning NULL) when memory runs out, a strbuf only sets its
 * oom flag.
 *
 * Recursion over nested documents (order, encoding, JSON) is bounded by the nesting of
 * stored events (the import path refuses more than 200 levels); decoding, which may see
 * damaged bytes, stops at MAX_DECODE_DEPTH.
 */
#include "runtime/base/zql_common.h"

#include <limits.h>
#include <math.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "exec/value.h"
#include "runtime/base/alloc.h"

#define SIGN64 UINT64_C(0x8000000000000000)
#define TWO63 9223372036854775808.0 /* 2^63 */
#define MAX_DECODE_DEPTH 1000       /* nesting of decoded documents (malformed input) */

enum {
  K_MINKEY = 0x05,
  K_NULL = 0x0A,
  K_NAN = 0x10,
  K_NEGBIG = 0x11,
  K_NUM = 0x12,
  K_POSBIG = 0x13,
  K_STRING = 0x20,
  K_DOC = 0x30,
  K_ARRAY = 0x40,
  K_BINARY = 0x50,
  K_OID = 0x60,
  K_BOOL = 0x70,
  K_DATE = 0x80,
  K_TIMESTAMP = 0x90,
  K_REGEX = 0xA0,
  K_OTHER = 0xB0,
  K_MAXKEY = 0xF0
};

/* {==== conversion from and to BSON ==================================================== */

bool zql_val_from_iter(const bson_iter_t *iter, zql_val_t *out)
{
  zql_val_t v = {ZQL_V_NULL, 0, 0, 0, {0}};
  bool lossy = false;
  uint32_t len = 0;

  switch (bson_iter_type(iter)) {
  case BSON_TYPE_DOUBLE:
    v.t = ZQL_V_DOUBLE;
    v.u.d = bson_iter_double(iter);
    break;
  case BSON_TYPE_UTF8:
    v.t = ZQL_V_STRING;
    v.u.s = bson_iter_utf8(iter, &len);
    v.len = len;
    break;
  case BSON_TYPE_SYMBOL:
    v.t = ZQL_V_STRING;
    v.u.s = bson_iter_symbol(iter, &len);
    v.len = len;
    break;
  case BSON_TYPE_DOCUMENT:
    v.t = ZQL_V_DOC;
    bson_iter_document(iter, &len, &v.u.p);
    v.len = len;
    break;
  case BSON_TYPE_ARRAY:
    v.t = ZQL_V_ARRAY;
    bson_iter_array(iter, &len, &v.u.p);
    v.len = len;
    break;
  case BSON_TYPE_BINARY: {
    bson_subtype_t sub;
    v.t = ZQL_V_BINARY;
    bson_iter_binary(iter, &sub, &len, &v.u.p);
    v.flags = (uint8_t)sub;
    v.len = len;
    break;
  }
  case BSON_TYPE_OID:
    v.t = ZQL_V_OID;
    v.u.p = bson_iter_oid(iter)->bytes;
    v.len = 12;
    break;
  case BSON_TYPE_BOOL:
    v.t = ZQL_V_BOOL;
    v.u.b = bson_iter_bool(iter);
    break;
  case BSON_TYPE_DATE_TIME:
    v.t = ZQL_V_DATE;
    v.u.i = bson_iter_date_time(iter);
    break;
  case BSON_TYPE_REGEX: {
    const char *flags = NULL;
    const char *pat = bson_iter_regex(iter, &flags);
    v.t = ZQL_V_REGEX;
    v.u.p = (const uint8_t *)pat;
    v.len = (uint32_t)(strlen(pat) + 1 + strlen(flags) + 1);
    break;
  }
  case BSON_TYPE_INT32:
    v.t = ZQL_V_INT;
    v.flags = ZQL_VF_INT32;
    v.u.i = bson_iter_int32(iter);
    break;
  case BSON_TYPE_INT64:
    v.t = ZQL_V_INT;
    v.u.i = bson_iter_int64(iter);
    break;
  case BSON_TYPE_TIMESTAMP:
    v.t = ZQL_V_TIMESTAMP;
    bson_iter_timestamp(iter, &v.u.ts.t, &v.u.ts.i);
    break;
  case BSON_TYPE_DECIMAL128: {
    bson_decimal128_t dec;
    char text[BSON_DECIMAL128_STRING];
    v.t = ZQL_V_DOUBLE;
    v.u.d = 0.0;
    if (bson_iter_decimal128(iter, &dec)) {
      bson_decimal128_to_string(&dec, text);
      v.u.d = strtod(text, NULL); /* "NaN", "-Infinity", "1.5E+3" all parse */
    }
    lossy = true;
    break;
  }
  case BSON_TYPE_MINKEY:
    v.t = ZQL_V_MINKEY;
    break;
  case BSON_TYPE_MAXKEY:
    v.t = ZQL_V_MAXKEY;
    break;
  case BSON_TYPE_CODE: { /* value bytes: int32 length, string, NUL */
    const char *code = bson_iter_code(iter, &len);
    v.t = ZQL_V_OTHER;
    v.flags = BSON_TYPE_CODE;
    v.u.p = (const uint8_t *)code - 4;
    v.len = 4 + len + 1;
    break;
  }
  case BSON_TYPE_CODEWSCOPE: { /* int32 total, int32 length, string, NUL, document */
    uint32_t scope_len = 0;
    const uint8_t *scope = NULL;
    const char *code = bson_iter_codewscope(iter, &len, &scope_len, &scope);
    v.t = ZQL_V_OTHER;
    v.flags = BSON_TYPE_CODEWSCOPE;
    v.u.p = (const uint8_t *)code - 8;
    v.len = (uint32_t)(scope + scope_len - v.u.p);
    break;
  }
  case BSON_TYPE_DBPOINTER: { /* int32 length, string, NUL, 12-byte oid */
    const char *coll = NULL;
    const bson_oid_t *oid = NULL;
    bson_iter_dbpointer(iter, &len, &coll, &oid);
    v.t = ZQL_V_OTHER;
    v.flags = BSON_TYPE_DBPOINTER;
    v.u.p = (const uint8_t *)coll - 4;
    v.len = (uint32_t)(oid->bytes + 12 - v.u.p);
    break;
  }
  case BSON_TYPE_UNDEFINED:
  case BSON_TYPE_NULL:
  default:
    break;
  }
  *out = v;
  return lossy;
}

zql_val_t zql_val_doc(const uint8_t *data, uint32_t len, bool is_array)
{
  zql_val_t v = {is_array ? ZQL_V_ARRAY : ZQL_V_DOC, 0, 0, len, {0}};
  v.u.p = data;
  return v;
}

/* The pattern and flags of a REGEX value (bytes "pattern\0flags\0"). */
static void regex_parts(const zql_val_t *v, const char **pat, size_t *plen, const char **flags,
                        size_t *flen)
{
  const uint8_t *nul = v->len ? memchr(v->u.p, 0, v->len) : NULL;
  *pat = (const char *)v->u.p;
  if (!nul) {
    *plen = v->len;
    *flags = "";
    *flen = 0;
    return;
  }
  *plen = (size_t)(nul - v->u.p);
  *flags = (const char *)nul + 1;
  size_t rest = v->len - *plen - 1;
  const uint8_t *end = rest ? memchr(nul + 1, 0, rest) : NULL;
  *flen = end ? (size_t)(end - (nul + 1)) : rest;
}

static uint32_t rd_le32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The raw bytes of an OTHER value, read from memory or, while checking a key encoding,
 * from its escaped form (skip raw bytes first: the type byte). */
typedef struct {
  const uint8_t *p;
  size_t skip;
  bool escaped;
} rawrd_t;

static void raw_get(const rawrd_t *r, size_t off, uint8_t *dst, size_t n)
{
  if (!r->escaped) {
    memcpy(dst, r->p + r->skip + off, n);
    return;
  }
  const uint8_t *q = r->p;
  size_t from = r->skip + off;
  for (size_t i = 0; i < from + n; i++) { /* 00 FF is an escaped 00 */
    uint8_t c = *q;
    q += c ? 1 : 2;
    if (i >= from)
      dst[i - from] = c;
  }
}

static uint32_t raw_le32(const rawrd_t *r, size_t off)
{
  uint8_t b[4];
  raw_get(r, off, b, 4);
  return rd_le32(b);
}

static uint8_t raw_byte(const rawrd_t *r, size_t off)
{
  uint8_t c;
  raw_get(r, off, &c, 1);
  return c;
}

/* Check the n value bytes of an OTHER value of BSON type `type` against their own
 * lengths; *slen gets the string length field (code with scope, DBPointer). */
static bool other_layout(uint8_t type, uint32_t n, const rawrd_t *r, uint32_t *slen)
{
  switch (type) {
  case BSON_TYPE_CODE: /* int32 length, string, NUL */
    *slen = n - 4;
    return n >= 5 && raw_le32(r, 0) == n - 4 && raw_byte(r, n - 1) == 0;
  case BSON_TYPE_CODEWSCOPE: /* int32 total, int32 length, string, NUL, document */
    if (n < 14 || raw_le32(r, 0) != n)
      return false;
    *slen = raw_le32(r, 4);
    return *slen >= 1 && *slen <= n - 8 - 5 && raw_byte(r, 8 + *slen - 1) == 0 &&
           raw_le32(r, 8 + *slen) == n - 8 - *slen;
  case BSON_TYPE_DBPOINTER: /* int32 length, string, NUL, 12-byte oid */
    if (n < 4 + 1 + 12)
      return false;
    *slen = raw_le32(r, 0);
    return *slen >= 1 && *slen == n - 4 - 12 && raw_byte(r, 4 + *slen - 1) == 0;
  default:
    return false;
  }
}

/* A bson_value_t for an OTHER value (its bytes are checked against their own lengths). */
static bool other_to_bson_value(const zql_val_t *v, bson_value_t *bv)
{
  const uint8_t *p = v->u.p;
  uint32_t n = v->len, slen = 0;
  rawrd_t r = {p, 0, false};
  memset(bv, 0, sizeof *bv);
  if (!other_layout(v->flags, n, &r, &slen))
    return false;
  switch (v->flags) {
  case BSON_TYPE_CODE:
    bv->value_type = BSON_TYPE_CODE;
    bv->value.v_code.code = (char *)(uintptr_t)(p + 4);
    bv->value.v_code.code_len = n - 5;
    break;
  case BSON_TYPE_CODEWSCOPE:
    bv->value_type = BSON_TYPE_CODEWSCOPE;
    bv->value.v_codewscope.code = (char *)(uintptr_t)(p + 8);
    bv->value.v_codewscope.code_len = slen - 1;
    bv->value.v_codewscope.scope_data = (uint8_t *)(uintptr_t)(p + 8 + slen);
    bv->value.v_codewscope.scope_len = n - 8 - slen;
    break;
  default: /* DBPointer */
    bv->value_type = BSON_TYPE_DBPOINTER;
    bv->value.v_dbpointer.collection = (char *)(uintptr_t)(p + 4);
    bv->value.v_dbpointer.collection_len = slen - 1;
    memcpy(bv->value.v_dbpointer.oid.bytes, p + 4 + slen, 12);
    break;
  }
  return true;
}

bool zql_val_append_bson(bson_t *doc, const char *key, int klen, const zql_val_t *v)
{
  switch ((zql_vtype_t)v->t) {
  case ZQL_V_MISSING:
    return true;
  case ZQL_V_ERROR:
  case ZQL_V_NULL:
    return bson_append_null(doc, key, klen);
  case ZQL_V_BOOL:
    return bson_append_bool(doc, key, klen, v->u.b);
  case ZQL_V_INT:
    if ((v->flags & ZQL_VF_INT32) && v->u.i >= INT32_MIN && v->u.i <= INT32_MAX)
      return bson_append_int32(doc, key, klen, (int32_t)v->u.i);
    return bson_append_int64(doc, key, klen, v->u.i);
  case ZQL_V_DOUBLE:
    return bson_append_double(doc, key, klen, v->u.d);
  case ZQL_V_STRING:
    return v->len <= INT_MAX && bson_append_utf8(doc, key, klen, v->u.s, (int)v->len);
  case ZQL_V_DATE:
    return bson_append_date_time(doc, key, klen, v->u.i);
  case ZQL_V_DOC:
  case ZQL_V_ARRAY: {
    bson_t sub;
    if (!bson_init_static(&sub, v->u.p, v->len))
      return false;
    return v->t == ZQL_V_DOC ? bson_append_document(doc, key, klen, &sub)
                             : bson_append_array(doc, key, klen, &sub);
  }
  case ZQL_V_OID: {
    bson_oid_t oid;
    bson_oid_init_from_data(&oid, v->u.p);
    return bson_append_oid(doc, key, klen, &oid);
  }
  case ZQL_V_BINARY:
    return bson_append_binary(doc, key, klen, (bson_subtype_t)v->flags, v->u.p, v->len);
  case ZQL_V_TIMESTAMP:
    return bson_append_timestamp(doc, key, klen, v->u.ts.t, v->u.ts.i);
  case ZQL_V_REGEX: {
    const char *pat, *flags;
    size_t plen, flen;
    regex_parts(v, &pat, &plen, &flags, &flen);
    /* pattern and flags are NUL-terminated inside "pattern\0flags\0" */
    if (plen == v->len || plen > INT_MAX)
      return false;
    return bson_append_regex_w_len(doc, key, klen, pat, (int)plen, flags);
  }
  case ZQL_V_MINKEY:
    return bson_append_minkey(doc, key, klen);
  case ZQL_V_MAXKEY:
    return bson_append_maxkey(doc, key, klen);
  case ZQL_V_OTHER: {
    bson_value_t bv;
    if (!other_to_bson_value(v, &bv))
      return false;
    return bson_append_value(doc, key, klen, &bv);
  }
  case ZQL_V__COUNT:
    break;
  }
  return false;
}

static void *arena_dup(zql_arena_t *arena, const void *p, size_t n)
{
  void *q = zql_arena_alloc(arena, n ? n : 1);
  if (q && n)
    memcpy(q, p, n);
  return q;
}

bool zql_val_copy(zql_arena_t *arena, const zql_val_t *v, zql_val_t *out)
{
  zql_val_t c = *v;
  switch ((zql_vtype_t)v->t) {
  case ZQL_V_ERROR:
    /* messages are usually static, but an aggregator may format one into its arena
     * ("distinct_count: more than 3 distinct values"): the copy owns its text */
    if (arena && v->u.err && !(c.u.err = zql_arena_strdup(arena, v->u.err)))
      return false;
    break;
  case ZQL_V_STRING:
    if (!arena)
      return false;
    c.u.s = zql_arena_strndup(arena, v->u.s, v->len);
    if (!c.u.s)
      return false;
    break;
  case ZQL_V_OID:
    if (!arena)
      return false;
    c.len = 12;
    c.u.p = arena_dup(arena, v->u.p, 12);
    if (!c.u.p)
      return false;
    break;
  case ZQL_V_DOC:
  case ZQL_V_ARRAY:
  case ZQL_V_BINARY:
  case ZQL_V_REGEX:
  case ZQL_V_OTHER:
    if (!arena)
      return false;
    c.u.p = arena_dup(arena, v->u.p, v->len);
    if (!c.u.p)
      return false;
    break;
  default:
    break;
  }
  *out = c;
  return true;
}

/* }==== */

/* {==== order and equality ============================================================= */

/* ORDER: R7 type classes, indexed by zql_vtype_t. */
static const uint8_t class_of[ZQL_V__COUNT] = {
    [ZQL_V_MISSING] = 0, [ZQL_V_ERROR] = 0,      [ZQL_V_MINKEY] = 1, [ZQL_V_NULL] = 2,
    [ZQL_V_INT] = 3,     [ZQL_V_DOUBLE] = 3,     [ZQL_V_STRING] = 4, [ZQL_V_DOC] = 5,
    [ZQL_V_ARRAY] = 6,   [ZQL_V_BINARY] = 7,     [ZQL_V_OID] = 8,    [ZQL_V_BOOL] = 9,
    [ZQL_V_DATE] = 10,   [ZQL_V_TIMESTAMP] = 11, [ZQL_V_REGEX] = 12, [ZQL_V_OTHER] = 13,
    [ZQL_V_MAXKEY] = 14,
};

int zql_val_class(const zql_val_t *v)
{
  return v->t < ZQL_V__COUNT ? class_of[v->t] : 0;
}

static int sign_of(int64_t d)
{
  return (d > 0) - (d < 0);
}

/* Bytes by memcmp, then the shorter first. */
static int cmp_bytes(const void *a, size_t na, const void *b, size_t nb)
{
  int c = memcmp(a, b, na < nb ? na : nb);
  if (c)
    return c < 0 ? -1 : 1;
  return (na > nb) - (na < nb);
}

/* An int64 against a double, exactly (no rounding of i to double). */
static int cmp_int_double(int64_t i, double d)
{
  if (isnan(d))
    return 1;
  if (d >= TWO63)
    return -1;
  if (d < -TWO63)
    return 1;
  double f = floor(d); /* in [-2^63, 2^63): fits int64 exactly */
  int64_t fi = (int64_t)f;
  if (i != fi)
    return i < fi ? -1 : 1;
  return d > f ? -1 : 0;
}

static int cmp_num(const zql_val_t *a, const zql_val_t *b)
{
  if (a->t == ZQL_V_INT && b->t == ZQL_V_INT)
    return (a->u.i > b->u.i) - (a->u.i < b->u.i);
  if (a->t == ZQL_V_INT)
    return cmp_int_double(a->u.i, b->u.d);
  if (b->t == ZQL_V_INT)
    return -cmp_int_double(b->u.i, a->u.d);
  double x = a->u.d, y = b->u.d;
  if (isnan(x) || isnan(y))
    return isnan(y) - isnan(x);
  return (x > y) - (x < y);
}

static int cmp_docs(const zql_val_t *a, const zql_val_t *b, bool arrays)
{
  bson_iter_t ia, ib;
  bool oka = bson_iter_init_from_data(&ia, a->u.p, a->len);
  bool okb = bson_iter_init_from_data(&ib, b->u.p, b->len);
  for (;;) {
    bool na = oka && bson_iter_next(&ia);
    bool nb = okb && bson_iter_next(&ib);
    if (!na || !nb)
      return (int)na - (int)nb;
    if (!arrays) {
      int c = cmp_bytes(bson_iter_key(&ia), bson_iter_key_len(&ia), bson_iter_key(&ib),
                        bson_iter_key_len(&ib));
      if (c)
        return c;
    }
    zql_val_t ea, eb;
    zql_val_from_iter(&ia, &ea);
    zql_val_from_iter(&ib, &eb);
    int c = zql_val_cmp(&ea, &eb);
    if (c)
      return c;
  }
}

int zql_val_cmp(const zql_val_t *a, const zql_val_t *b)
{
  int ca = zql_val_class(a), cb = zql_val_class(b);
  if (ca != cb)
    return ca < cb ? -1 : 1;
  switch ((zql_vtype_t)a->t) {
  case ZQL_V_INT:
  case ZQL_V_DOUBLE:
    return cmp_num(a, b);
  case ZQL_V_STRING:
    return cmp_bytes(a->u.s, a->len, b->u.s, b->len);
  case ZQL_V_DOC:
    return cmp_docs(a, b, false);
  case ZQL_V_ARRAY:
    return cmp_docs(a, b, true);
  case ZQL_V_BINARY:
    if (a->len != b->len)
      return a->len < b->len ? -1 : 1;
    if (a->flags != b->flags)
      return a->flags < b->flags ? -1 : 1;
    return cmp_bytes(a->u.p, a->len, b->u.p, b->len);
  case ZQL_V_OID:
    return cmp_bytes(a->u.p, 12, b->u.p, 12);
  case ZQL_V_BOOL:
    return (int)a->u.b - (int)b->u.b;
  case ZQL_V_DATE:
    return (a->u.i > b->u.i) - (a->u.i < b->u.i);
  case ZQL_V_TIMESTAMP:
    if (a->u.ts.t != b->u.ts.t)
      return a->u.ts.t < b->u.ts.t ? -1 : 1;
    return (a->u.ts.i > b->u.ts.i) - (a->u.ts.i < b->u.ts.i);
  case ZQL_V_REGEX: {
    const char *pa, *fa, *pb, *fb;
    size_t pla, fla, plb, flb;
    regex_parts(a, &pa, &pla, &fa, &fla);
    regex_parts(b, &pb, &plb, &fb, &flb);
    int c = cmp_bytes(pa, pla, pb, plb);
    return c ? c : cmp_bytes(fa, fla, fb, flb);
  }
  case ZQL_V_OTHER:
    if (a->flags != b->flags)
      return a->flags < b->flags ? -1 : 1;
    return cmp_bytes(a->u.p, a->len, b->u.p, b->len);
  default: /* MISSING, ERROR, NULL, MINKEY, MAXKEY: one value per class */
    return 0;
  }
}

int zql_val_eq3(const zql_val_t *a, const zql_val_t *b)
{
  /* the common cases first: a field compared with a string or an integer constant */
  if (a->t == ZQL_V_STRING && b->t == ZQL_V_STRING)
    return a->len == b->len && (a->len == 0 || memcmp(a->u.s, b->u.s, a->len) == 0);
  if (a->t == ZQL_V_INT && b->t == ZQL_V_INT)
    return a->u.i == b->u.i;
  if (zql_val_is_nullish(a) || zql_val_is_nullish(b))
    return -1;
  if (zql_val_class(a) != zql_val_class(b))
    return 0;
  return zql_val_cmp(a, b) == 0;
}

int zql_val_cmp3(const zql_val_t *a, const zql_val_t *b, int *c)
{
  if (zql_val_is_nullish(a) || zql_val_is_nullish(b) ||
      zql_val_class(a) != zql_val_class(b))
    return -1;
  *c = sign_of(zql_val_cmp(a, b));
  return 0;
}

/* }==== */

/* {==== key encoding and hashing ======================================================= */

/* Where encoded bytes go: a strbuf (encode) or a streaming XXH3 state (hash). Bytes are
 * gathered in buf and flushed when it fills and at the end. */
typedef struct sink {
  zql_strbuf_t *sb;     /* encode target, or NULL when hashing */
  XXH3_state_t *xs;     /* hash: the state, once buf overflowed (else NULL) */
  XXH3_state_t *xs_mem; /* hash: storage for the state */
  size_t n;
  uint8_t buf[256];
} sink_t;

static void sink_flush(sink_t *k)
{
  if (k->sb) {
    zql_strbuf_add(k->sb, k->buf, k->n);
  } else {
    if (!k->xs) {
      k->xs = k->xs_mem;
      XXH3_INITSTATE(k->xs);
      XXH3_64bits_reset_withSeed(k->xs, ZQL_HASH_SEED);
    }
    XXH3_64bits_update(k->xs, k->buf, k->n);
  }
  k->n = 0;
}

static void put(sink_t *k, const void *data, size_t n)
{
  const uint8_t *p = data;
  while (n > 0) {
    if (k->n == sizeof k->buf)
      sink_flush(k);
    size_t m = sizeof k->buf - k->n;
    if (m > n)
      m = n;
    memcpy(k->buf + k->n, p, m);
    k->n += m;
    p += m;
    n -= m;
  }
}

static void put1(sink_t *k, uint8_t c)
{
  if (k->n == sizeof k->buf)
    sink_flush(k);
  k->buf[k->n++] = c;
}

static void be64(uint8_t *p, uint64_t x)
{
  for (int i = 7; i >= 0; i--, x >>= 8)
    p[i] = (uint8_t)x;
}

static uint64_t rd_be64(const uint8_t *p)
{
  uint64_t x = 0;
  for (int i = 0; i < 8; i++)
    x = x << 8 | p[i];
  return x;
}

static void be32(uint8_t *p, uint32_t x)
{
  for (int i = 3; i >= 0; i--, x >>= 8)
    p[i] = (uint8_t)x;
}

static uint32_t rd_be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Order-preserving bits of a double (not NaN; -0.0 already normalised). */
static uint64_t dbl_ordered(double d)
{
  uint64_t u;
  memcpy(&u, &d, 8);
  return (u & SIGN64) ? ~u : u | SIGN64;
}

static double dbl_from_ordered(uint64_t o)
{
  uint64_t u = (o & SIGN64) ? o & ~SIGN64 : ~o;
  double d;
  memcpy(&d, &u, 8);
  return d;
}

/* Bytes with 0x00 escaped as 00 FF, then the terminator 00 00. */
static void put_escaped(sink_t *k, const void *data, size_t n)
{
  static const uint8_t esc[2] = {0x00, 0xFF}, term[2] = {0x00, 0x00};
  const uint8_t *p = data, *end = p + n;
  while (p < end) {
    const uint8_t *z = memchr(p, 0, (size_t)(end - p));
    if (!z) {
      put(k, p, (size_t)(end - p));
      break;
    }
    put(k, p, (size_t)(z - p));
    put(k, esc, 2);
    p = z + 1;
  }
  put(k, term, 2);
}

static void enc_int(sink_t *k, int64_t i, double frac)
{
  uint8_t b[17];
  b[0] = K_NUM;
  be64(b + 1, (uint64_t)i ^ SIGN64);
  be64(b + 9, dbl_ordered(frac));
  put(k, b, sizeof b);
}

static void enc_number(sink_t *k, const zql_val_t *v)
{
  if (v->t == ZQL_V_INT) {
    enc_int(k, v->u.i, 0.0);
    return;
  }
  double d = v->u.d;
  if (isnan(d)) {
    put1(k, K_NAN);
  } else if (d < -TWO63 || d >= TWO63) {
    uint8_t b[9];
    b[0] = d < 0 ? K_NEGBIG : K_POSBIG;
    be64(b + 1, dbl_ordered(d));
    put(k, b, sizeof b);
  } else {
    double t = trunc(d);
    /* exact (Sterbenz), in (-1, 1); x - x is +0.0 under round-to-nearest, so -0.0 and
     * integral negatives get the fraction +0.0 like the integers */
    enc_int(k, (int64_t)t, d - t);
  }
}

static void enc_value(sink_t *k, const zql_val_t *v);

static void enc_docs(sink_t *k, const zql_val_t *v, bool arrays)
{
  bson_iter_t it;
  put1(k, arrays ? K_ARRAY : K_DOC);
  if (bson_iter_init_from_data(&it, v->u.p, v->len)) {
    while (bson_iter_next(&it)) {
      zql_val_t e;
      put1(k, 0x01);
      if (!arrays)
        put_escaped(k, bson_iter_key(&it), bson_iter_key_len(&it));
      zql_val_from_iter(&it, &e);
      enc_value(k, &e);
    }
  }
  put1(k, 0x00);
}

static void enc_value(sink_t *k, const zql_val_t *v)
{
  uint8_t b[16];
  switch ((zql_vtype_t)v->t) {
  case ZQL_V_INT:
  case ZQL_V_DOUBLE:
    enc_number(k, v);
    break;
  case ZQL_V_STRING:
    put1(k, K_STRING);
    put_escaped(k, v->u.s, v->len);
    break;
  case ZQL_V_DOC:
    enc_docs(k, v, false);
    break;
  case ZQL_V_ARRAY:
    enc_docs(k, v, true);
    break;
  case ZQL_V_BINARY:
    b[0] = K_BINARY;
    be32(b + 1, v->len);
    b[5] = v->flags;
    put(k, b, 6);
    put(k, v->u.p, v->len);
    break;
  case ZQL_V_OID:
    put1(k, K_OID);
    put(k, v->u.p, 12);
    break;
  case ZQL_V_BOOL:
    b[0] = K_BOOL;
    b[1] = v->u.b ? 1 : 0;
    put(k, b, 2);
    break;
  case ZQL_V_DATE:
    b[0] = K_DATE;
    be64(b + 1, (uint64_t)v->u.i ^ SIGN64);
    put(k, b, 9);
    break;
  case ZQL_V_TIMESTAMP:
    b[0] = K_TIMESTAMP;
    be32(b + 1, v->u.ts.t);
    be32(b + 5, v->u.ts.i);
    put(k, b, 9);
    break;
  case ZQL_V_REGEX: {
    const char *pat, *flags;
    size_t plen, flen;
    regex_parts(v, &pat, &plen, &flags, &flen);
    put1(k, K_REGEX);
    put_escaped(k, pat, plen);
    put_escaped(k, flags, flen);
    break;
  }
  case ZQL_V_OTHER: { /* escaped (type byte, value bytes) */
    static const uint8_t esc[2] = {0x00, 0xFF};
    put1(k, K_OTHER);
    if (v->flags)
      put1(k, v->flags);
    else
      put(k, esc, 2);
    put_escaped(k, v->u.p, v->len);
    break;
  }
  case ZQL_V_MINKEY:
    put1(k, K_MINKEY);
    break;
  case ZQL_V_MAXKEY:
    put1(k, K_MAXKEY);
    break;
  default: /* MISSING, ERROR, NULL */
    put1(k, K_NULL);
    break;
  }
}

void zql_val_encode(zql_strbuf_t *sb, const zql_val_t *v)
{
  sink_t k;
  k.sb = sb;
  k.xs = k.xs_mem = NULL;
  k.n = 0;
  enc_value(&k, v);
  sink_flush(&k);
}

uint64_t zql_val_hash(const zql_val_t *v)
{
  XXH3_state_t state;
  sink_t k;
  k.sb = NULL;
  k.xs = NULL;
  k.xs_mem = &state;
  k.n = 0;
  enc_value(&k, v);
  if (!k.xs)
    return XXH3_64bits_withSeed(k.buf, k.n, ZQL_HASH_SEED);
  if (k.n)
    XXH3_64bits_update(k.xs, k.buf, k.n);
  return XXH3_64bits_digest(k.xs);
}

uint64_t zql_hash_bytes(const void *data, size_t len)
{
  return XXH3_64bits_withSeed(data, len, ZQL_HASH_SEED);
}

/* }==== */

/* {==== building BSON in a strbuf ======================================================= */

static void le32(uint8_t *p, uint32_t x)
{
  for (int i = 0; i < 4; i++, x >>= 8)
    p[i] = (uint8_t)x;
}

static void le64(uint8_t *p, uint64_t x)
{
  for (int i = 0; i < 8; i++, x >>= 8)
    p[i] = (uint8_t)x;
}

size_t zql_bson_begin(zql_strbuf_t *sb)
{
  size_t off = sb->len;
  zql_strbuf_add(sb, "\0\0\0\0", 4);
  return off;
}

size_t zql_bson_begin_sub(zql_strbuf_t *sb, const char *key, size_t klen, bool is_array)
{
  zql_strbuf_addc(sb, (char)(is_array ? BSON_TYPE_ARRAY : BSON_TYPE_DOCUMENT));
  zql_strbuf_add(sb, key, klen);
  zql_strbuf_addc(sb, '\0');
  return zql_bson_begin(sb);
}

void zql_bson_end(zql_strbuf_t *sb, size_t off)
{
  zql_strbuf_addc(sb, '\0');
  if (sb->oom)
    return;
  if (sb->len - off > INT32_MAX) {
    sb->oom = true;
    return;
  }
  le32((uint8_t *)sb->buf + off, (uint32_t)(sb->len - off));
}

void zql_bson_append(zql_strbuf_t *sb, const char *key, size_t klen, const zql_val_t *v)
{
  uint8_t b[16];
  uint8_t type;
  bool int32 = false;
  switch ((zql_vtype_t)v->t) {
  case ZQL_V_MISSING:
    return;
  case ZQL_V_BOOL: type = BSON_TYPE_BOOL; break;
  case ZQL_V_INT:
    int32 = (v->flags & ZQL_VF_INT32) && v->u.i >= INT32_MIN && v->u.i <= INT32_MAX;
    type = int32 ? BSON_TYPE_INT32 : BSON_TYPE_INT64;
    break;
  case ZQL_V_DOUBLE: type = BSON_TYPE_DOUBLE; break;
  case ZQL_V_STRING: type = BSON_TYPE_UTF8; break;
  case ZQL_V_DATE: type = BSON_TYPE_DATE_TIME; break;
  case ZQL_V_DOC: type = BSON_TYPE_DOCUMENT; break;
  case ZQL_V_ARRAY: type = BSON_TYPE_ARRAY; break;
  case ZQL_V_OID: type = BSON_TYPE_OID; break;
  case ZQL_V_BINARY: type = BSON_TYPE_BINARY; break;
  case ZQL_V_TIMESTAMP: type = BSON_TYPE_TIMESTAMP; break;
  case ZQL_V_REGEX: type = BSON_TYPE_REGEX; break;
  case ZQL_V_MINKEY: type = BSON_TYPE_MINKEY; break;
  case ZQL_V_MAXKEY: type = BSON_TYPE_MAXKEY; break;
  case ZQL_V_OTHER: type = v->flags; break;
  default: type = BSON_TYPE_NULL; break; /* NULL, ERROR */
  }
  zql_strbuf_addc(sb, (char)type);
  zql_strbuf_add(sb, key, klen);
  zql_strbuf_addc(sb, '\0');
  switch ((zql_vtype_t)v->t) {
  case ZQL_V_BOOL:
    zql_strbuf_addc(sb, v->u.b ? 1 : 0);
    break;
  case ZQL_V_INT:
    if (int32) {
      le32(b, (uint32_t)(int32_t)v->u.i);
      zql_strbuf_add(sb, b, 4);
      break;
    }
    /* fall through */
  case ZQL_V_DATE:
    le64(b, (uint64_t)v->u.i);
    zql_strbuf_add(sb, b, 8);
    break;
  case ZQL_V_DOUBLE: {
    uint64_t u;
    memcpy(&u, &v->u.d, 8);
    le64(b, u);
    zql_strbuf_add(sb, b, 8);
    break;
  }
  case ZQL_V_STRING:
    le32(b, v->len + 1);
    zql_strbuf_add(sb, b, 4);
    zql_strbuf_add(sb, v->u.s, v->len);
    zql_strbuf_addc(sb, '\0');
    break;
  case ZQL_V_BINARY:
    le32(b, v->len);
    b[4] = v->flags;
    zql_strbuf_add(sb, b, 5);
    zql_strbuf_add(sb, v->u.p, v->len);
    break;
  case ZQL_V_TIMESTAMP:
    le32(b, v->u.ts.i);
    le32(b + 4, v->u.ts.t);
    zql_strbuf_add(sb, b, 8);
    break;
  case ZQL_V_OID:
    zql_strbuf_add(sb, v->u.p, 12);
    break;
  case ZQL_V_DOC:
  case ZQL_V_ARRAY:
  case ZQL_V_REGEX:
  case ZQL_V_OTHER:
    zql_strbuf_add(sb, v->u.p, v->len);
    break;
  default:
    break;
  }
}

/* }==== */

/* {==== key decoding ==================================================================== */

/* The length of an escaped string at p (not counting the terminator), and the number of
 * encoded bytes it spans including the terminator; false when malformed. */
static bool scan_escaped(const uint8_t *p, const uint8_t *end, size_t *raw, size_t *span)
{
  size_t n = 0;
  const uint8_t *q = p;
  for (;;) {
    const uint8_t *z = memchr(q, 0, (size_t)(end - q));
    if (!z || z + 1 >= end)
      return false;
    n += (size_t)(z - q);
    if (z[1] == 0x00) {
      *raw = n;
      *span = (size_t)(z + 2 - p);
      return true;
    }
    if (z[1] != 0xFF)
      return false;
    n++;
    q = z + 2;
  }
}

/* Unescape a string whose span was checked by scan_escaped into dst (raw bytes). */
static void unescape(const uint8_t *p, uint8_t *dst, size_t raw)
{
  for (size_t i = 0; i < raw; i++) {
    if (*p == 0x00) {
      dst[i] = 0;
      p += 2;
    } else {
      dst[i] = *p++;
    }
  }
}

/* Read an escaped string into the arena (NUL-terminated); with no arena only check it.
 * A raw NUL byte makes it fail when nul_ok is false (names, regex parts). */
static bool dec_escaped(const uint8_t **p, const uint8_t *end, zql_arena_t *arena, bool nul_ok,
                        char **out, size_t *len)
{
  size_t raw, span;
  if (!scan_escaped(*p, end, &raw, &span))
    return false;
  /* before the terminator, a 0x00 is the escape of a raw NUL */
  if (!nul_ok && memchr(*p, 0, span - 2))
    return false;
  char *s = NULL;
  if (arena) {
    if (!(s = zql_arena_alloc(arena, raw + 1)))
      return false;
    unescape(*p, (uint8_t *)s, raw);
    s[raw] = '\0';
  }
  *p += span;
  *out = s;
  *len = raw;
  return true;
}

static bool dec_value(const uint8_t **pp, const uint8_t *end, zql_arena_t *arena,
                      zql_val_t *out, int depth);

/* A document or array: rebuilt as BSON in the arena, or only checked (no arena). */
static bool dec_docs(const uint8_t **pp, const uint8_t *end, zql_arena_t *arena,
                     zql_val_t *out, bool arrays, int depth)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  const uint8_t *p = *pp;
  uint32_t index = 0;
  bool ok = false;
  if (arena)
    zql_bson_begin(&sb);
  for (;;) {
    if (p >= end)
      goto done;
    if (*p == 0x00) {
      p++;
      break;
    }
    if (*p++ != 0x01)
      goto done;
    char keybuf[16];
    char *key = keybuf;
    size_t klen;
    if (arrays)
      klen = (size_t)snprintf(keybuf, sizeof keybuf, "%" PRIu32, index++);
    else if (!dec_escaped(&p, end, arena, false, &key, &klen))
      goto done;
    zql_val_t e;
    if (!dec_value(&p, end, arena, &e, depth + 1))
      goto done;
    if (arena)
      zql_bson_append(&sb, key, klen, &e);
  }
  if (arena) {
    zql_bson_end(&sb, 0);
    if (sb.oom)
      goto done;
    const uint8_t *bytes = arena_dup(arena, sb.buf, sb.len);
    if (!bytes)
      goto done;
    *out = zql_val_doc(bytes, (uint32_t)sb.len, arrays);
  } else {
    *out = zql_val_null();
  }
  *pp = p;
  ok = true;
done:
  zql_strbuf_release(&sb);
  return ok;
}

/* Decode one value, or with no arena only check it (nothing is allocated, *out is the
 * value for scalars and null otherwise). Everything that can be malformed is checked
 * before anything is allocated for it. */
static bool dec_value(const uint8_t **pp, const uint8_t *end, zql_arena_t *arena,
                      zql_val_t *out, int depth)
{
  const uint8_t *p = *pp;
  zql_val_t v = {ZQL_V_NULL, 0, 0, 0, {0}};
  if (p >= end || depth > MAX_DECODE_DEPTH)
    return false;
  uint8_t tag = *p++;
  size_t avail = (size_t)(end - p);
  switch (tag) {
  case K_MINKEY:
    v.t = ZQL_V_MINKEY;
    break;
  case K_NULL:
    break;
  case K_NAN:
    v.t = ZQL_V_DOUBLE;
    v.u.d = NAN;
    break;
  case K_NEGBIG:
  case K_POSBIG:
    if (avail < 8)
      return false;
    v.t = ZQL_V_DOUBLE;
    v.u.d = dbl_from_ordered(rd_be64(p));
    p += 8;
    if (isnan(v.u.d) || (tag == K_NEGBIG ? !(v.u.d < -TWO63) : !(v.u.d >= TWO63)))
      return false;
    break;
  case K_NUM: {
    if (avail < 16)
      return false;
    int64_t i = (int64_t)(rd_be64(p) ^ SIGN64);
    double f = dbl_from_ordered(rd_be64(p + 8));
    p += 16;
    if (!(f > -1.0 && f < 1.0) || (i > 0 && f < 0) || (i < 0 && f > 0) ||
        (f == 0.0 && signbit(f)))
      return false;
    if (f == 0.0) {
      v.t = ZQL_V_INT;
      v.u.i = i;
    } else {
      v.t = ZQL_V_DOUBLE;
      v.u.d = (double)i + f; /* exact: the sum is the original double */
    }
    break;
  }
  case K_STRING: {
    char *s;
    size_t n;
    if (!dec_escaped(&p, end, arena, true, &s, &n) || n > UINT32_MAX)
      return false;
    if (arena)
      v = zql_val_str(s, (uint32_t)n);
    break;
  }
  case K_DOC:
  case K_ARRAY:
    if (!dec_docs(&p, end, arena, &v, tag == K_ARRAY, depth))
      return false;
    break;
  case K_BINARY: {
    if (avail < 5)
      return false;
    uint32_t n = rd_be32(p);
    if (avail - 5 < n)
      return false;
    if (arena) {
      v.t = ZQL_V_BINARY;
      v.flags = p[4];
      v.len = n;
      if (!(v.u.p = arena_dup(arena, p + 5, n)))
        return false;
    }
    p += 5 + n;
    break;
  }
  case K_OID:
    if (avail < 12)
      return false;
    if (arena) {
      v.t = ZQL_V_OID;
      v.len = 12;
      if (!(v.u.p = arena_dup(arena, p, 12)))
        return false;
    }
    p += 12;
    break;
  case K_BOOL:
    if (avail < 1 || p[0] > 1)
      return false;
    v = zql_val_bool(p[0] == 1);
    p++;
    break;
  case K_DATE:
    if (avail < 8)
      return false;
    v = zql_val_date((int64_t)(rd_be64(p) ^ SIGN64));
    p += 8;
    break;
  case K_TIMESTAMP:
    if (avail < 8)
      return false;
    v.t = ZQL_V_TIMESTAMP;
    v.u.ts.t = rd_be32(p);
    v.u.ts.i = rd_be32(p + 4);
    p += 8;
    break;
  case K_REGEX: {
    const uint8_t *q = p;
    char *pat, *flags;
    size_t praw, fraw;
    if (!dec_escaped(&q, end, NULL, false, &pat, &praw) ||
        !dec_escaped(&q, end, NULL, false, &flags, &fraw) || praw + fraw + 2 > UINT32_MAX)
      return false;
    if (arena) {
      uint8_t *r = zql_arena_alloc(arena, praw + fraw + 2);
      if (!r)
        return false;
      size_t praw2, pspan;
      scan_escaped(p, end, &praw2, &pspan);
      unescape(p, r, praw);
      r[praw] = 0;
      unescape(p + pspan, r + praw + 1, fraw);
      r[praw + 1 + fraw] = 0;
      v.t = ZQL_V_REGEX;
      v.u.p = r;
      v.len = (uint32_t)(praw + fraw + 2);
    }
    p = q;
    break;
  }
  case K_OTHER: {
    size_t raw, span;
    uint32_t slen;
    uint8_t type;
    rawrd_t rt = {p, 0, true}, rd = {p, 1, true}; /* raw byte 0 is the type */
    if (!scan_escaped(p, end, &raw, &span) || raw < 1 || raw - 1 > UINT32_MAX)
      return false;
    raw_get(&rt, 0, &type, 1);
    if (!other_layout(type, (uint32_t)(raw - 1), &rd, &slen))
      return false;
    if (arena) {
      uint8_t *r = zql_arena_alloc(arena, raw);
      if (!r)
        return false;
      unescape(p, r, raw);
      v.t = ZQL_V_OTHER;
      v.flags = r[0];
      v.u.p = r + 1;
      v.len = (uint32_t)(raw - 1);
    }
    p += span;
    break;
  }
  case K_MAXKEY:
    v.t = ZQL_V_MAXKEY;
    break;
  default:
    return false;
  }
  *pp = p;
  *out = v;
  return true;
}

bool zql_val_decode(const uint8_t **p, const uint8_t *end, zql_arena_t *arena, zql_val_t *out)
{
  return dec_value(p, end, arena, out, 0);
}

bool zql_val_skip(const uint8_t **p, const uint8_t *end)
{
  zql_val_t junk;
  return dec_value(p, end, NULL, &junk, 0);
}

/* }==== */

/* {==== text =========================================================================== */

void zql_double_to_text(zql_strbuf_t *sb, double d, bool keep_point)
{
  char buf[40];
  if (isnan(d)) {
    zql_strbuf_adds(sb, "NaN");
    return;
  }
  if (isinf(d)) {
    zql_strbuf_adds(sb, d < 0 ? "-Infinity" : "Infinity");
    return;
  }
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (prec == 17 || strtod(buf, NULL) == d)
      break;
  }
  zql_strbuf_adds(sb, buf);
  if (keep_point && strspn(buf, "-0123456789") == strlen(buf))
    zql_strbuf_adds(sb, ".0");
}

/* Days since 1970-01-01 to a proleptic Gregorian civil date: Howard Hinnant,
 * "chrono-Compatible Low-Level Date Algorithms", civil_from_days. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);                     /* [0, 146096] */
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);          /* [0, 365] */
  const unsigned mp = (5 * doy + 2) / 153;                               /* [0, 11] */
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* v in n decimal digits, zero-padded (v < 10^n), at p; returns the end. */
static char *put_digits(char *p, unsigned v, int n)
{
  for (int i = n - 1; i >= 0; i--, v /= 10)
    p[i] = (char)('0' + v % 10);
  return p + n;
}

void zql_date_to_text(zql_strbuf_t *sb, int64_t ms)
{
  int64_t days = ms / 86400000, rem = ms % 86400000; /* no overflow at INT64_MIN */
  if (rem < 0) {
    rem += 86400000;
    days--;
  }
  int64_t y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  if (y >= 0 && y <= 9999) {
    /* every date of the years 0..9999 (the common case, an _id's or a row's): digits
     * written directly, without printf (rendering ids showed it in commit profiles) */
    char buf[24], *p = put_digits(buf, (unsigned)y, 4);
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, (unsigned)(rem / 3600000), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)(rem / 60000 % 60), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)(rem / 1000 % 60), 2);
    *p++ = '.';
    p = put_digits(p, (unsigned)(rem % 1000), 3);
    *p++ = 'Z';
    zql_strbuf_add(sb, buf, (size_t)(p - buf));
    return;
  }
  zql_strbuf_addf(sb, "%c%06" PRIu64, y < 0 ? '-' : '+',
                  y < 0 ? (uint64_t)0 - (uint64_t)y : (uint64_t)y);
  zql_strbuf_addf(sb, "-%02u-%02uT%02u:%02u:%02u.%03uZ", m, d, (unsigned)(rem / 3600000),
                  (unsigned)(rem / 60000 % 60), (unsigned)(rem / 1000 % 60),
                  (unsigned)(rem % 1000));
}

/* The length of a valid UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates, at
 * most U+10FFFF), or 0. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
  uint8_t c = p[0];
  size_t len;
  uint32_t cp;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3F);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  return len;
}

/* A JSON string literal; invalid UTF-8 bytes become U+FFFD. */
static void json_string(zql_strbuf_t *sb, const char *s, size_t n)
{
  const uint8_t *p = (const uint8_t *)s, *end = p + n;
  zql_strbuf_addc(sb, '"');
  while (p < end) {
    const uint8_t *run = p;
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
      p++;
    zql_strbuf_add(sb, run, (size_t)(p - run));
    if (p == end)
      break;
    uint8_t c = *p;
    if (c >= 0x80) {
      size_t len = utf8_len(p, (size_t)(end - p));
      if (len) {
        zql_strbuf_add(sb, p, len);
        p += len;
      } else {
        zql_strbuf_adds(sb, "\\ufffd");
        p++;
      }
      continue;
    }
    p++;
    switch (c) {
    case '"': zql_strbuf_adds(sb, "\\\""); break;
    case '\\': zql_strbuf_adds(sb, "\\\\"); break;
    case '\n': zql_strbuf_adds(sb, "\\n"); break;
    case '\t': zql_strbuf_adds(sb, "\\t"); break;
    case '\r': zql_strbuf_adds(sb, "\\r"); break;
    case '\b': zql_strbuf_adds(sb, "\\b"); break;
    case '\f': zql_strbuf_adds(sb, "\\f"); break;
    default: zql_strbuf_addf(sb, "\\u%04x", c); break;
    }
  }
  zql_strbuf_addc(sb, '"');
}

static void json_base64(zql_strbuf_t *sb, const uint8_t *p, size_t n)
{
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char quad[4];
  zql_strbuf_addc(sb, '"');
  for (size_t i = 0; i < n; i += 3) {
    uint32_t x = (uint32_t)p[i] << 16;
    if (i + 1 < n)
      x |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n)
      x |= p[i + 2];
    quad[0] = alphabet[x >> 18 & 63];
    quad[1] = alphabet[x >> 12 & 63];
    quad[2] = i + 1 < n ? alphabet[x >> 6 & 63] : '=';
    quad[3] = i + 2 < n ? alphabet[x & 63] : '=';
    zql_strbuf_add(sb, quad, 4);
  }
  zql_strbuf_addc(sb, '"');
}

static void json_hex(zql_strbuf_t *sb, const uint8_t *p, size_t n)
{
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    zql_strbuf_addc(sb, digits[p[i] >> 4]);
    zql_strbuf_addc(sb, digits[p[i] & 15]);
  }
}

static void json_docs(zql_strbuf_t *sb, const uint8_t *p, uint32_t len, bool arrays)
{
  bson_iter_t it;
  bool first = true;
  zql_strbuf_addc(sb, arrays ? '[' : '{');
  if (bson_iter_init_from_data(&it, p, len)) {
    while (bson_iter_next(&it)) {
      zql_val_t e;
      if (!first)
        zql_strbuf_addc(sb, ',');
      first = false;
      if (!arrays) {
        json_string(sb, bson_iter_key(&it), bson_iter_key_len(&it));
        zql_strbuf_addc(sb, ':');
      }
      zql_val_from_iter(&it, &e);
      zql_val_to_json(sb, &e);
    }
  }
  zql_strbuf_addc(sb, arrays ? ']' : '}');
}

/* MongoDB extended JSON for code, code with scope and DBPointer. */
static void json_other(zql_strbuf_t *sb, const zql_val_t *v)
{
  bson_value_t bv;
  if (!other_to_bson_value(v, &bv)) {
    zql_strbuf_adds(sb, "null");
    return;
  }
  switch (bv.value_type) {
  case BSON_TYPE_CODE:
    zql_strbuf_adds(sb, "{\"$code\":");
    json_string(sb, bv.value.v_code.code, bv.value.v_code.code_len);
    break;
  case BSON_TYPE_CODEWSCOPE:
    zql_strbuf_adds(sb, "{\"$code\":");
    json_string(sb, bv.value.v_codewscope.code, bv.value.v_codewscope.code_len);
    zql_strbuf_adds(sb, ",\"$scope\":");
    json_docs(sb, bv.value.v_codewscope.scope_data, bv.value.v_codewscope.scope_len, false);
    break;
  default: /* DBPointer */
    zql_strbuf_adds(sb, "{\"$dbPointer\":{\"$ref\":");
    json_string(sb, bv.value.v_dbpointer.collection, bv.value.v_dbpointer.collection_len);
    zql_strbuf_adds(sb, ",\"$id\":{\"$oid\":\"");
    json_hex(sb, bv.value.v_dbpointer.oid.bytes, 12);
    zql_strbuf_adds(sb, "\"}}");
    break;
  }
  zql_strbuf_addc(sb, '}');
}

void zql_val_to_json(zql_strbuf_t *sb, const zql_val_t *v)
{
  switch ((zql_vtype_t)v->t) {
  case ZQL_V_BOOL:
    zql_strbuf_adds(sb, v->u.b ? "true" : "false");
    break;
  case ZQL_V_INT:
    zql_strbuf_addf(sb, "%" PRId64, v->u.i);
    break;
  case ZQL_V_DOUBLE:
    if (isfinite(v->u.d))
      zql_double_to_text(sb, v->u.d, true);
    else
      zql_strbuf_adds(sb, "null");
    break;
  case ZQL_V_STRING:
    json_string(sb, v->u.s, v->len);
    break;
  case ZQL_V_DATE:
    zql_strbuf_addc(sb, '"');
    zql_date_to_text(sb, v->u.i);
    zql_strbuf_addc(sb, '"');
    break;
  case ZQL_V_DOC:
    json_docs(sb, v->u.p, v->len, false);
    break;
  case ZQL_V_ARRAY:
    json_docs(sb, v->u.p, v->len, true);
    break;
  case ZQL_V_OID:
    zql_strbuf_addc(sb, '"');
    json_hex(sb, v->u.p, 12);
    zql_strbuf_addc(sb, '"');
    break;
  case ZQL_V_BINARY:
    json_base64(sb, v->u.p, v->len);
    break;
  case ZQL_V_TIMESTAMP:
    zql_strbuf_addf(sb, "{\"t\":%" PRIu32 ",\"i\":%" PRIu32 "}", v->u.ts.t, v->u.ts.i);
    break;
  case ZQL_V_REGEX: {
    const char *pat, *flags;
    size_t plen, flen;
    zql_strbuf_t tmp = ZQL_STRBUF_INIT;
    regex_parts(v, &pat, &plen, &flags, &flen);
    zql_strbuf_addc(&tmp, '/');
    zql_strbuf_add(&tmp, pat, plen);
    zql_strbuf_addc(&tmp, '/');
    zql_strbuf_add(&tmp, flags, flen);
    if (tmp.oom)
      sb->oom = true;
    else
      json_string(sb, tmp.buf, tmp.len);
    zql_strbuf_release(&tmp);
    break;
  }
  case ZQL_V_MINKEY:
    zql_strbuf_adds(sb, "{\"$minKey\":1}");
    break;
  case ZQL_V_MAXKEY:
    zql_strbuf_adds(sb, "{\"$maxKey\":1}");
    break;
  case ZQL_V_OTHER:
    json_other(sb, v);
    break;
  default: /* MISSING, ERROR, NULL */
    zql_strbuf_adds(sb, "null");
    break;
  }
}

void zql_val_to_text(zql_strbuf_t *sb, const zql_val_t *v)
{
  if (v->t == ZQL_V_STRING)
    zql_strbuf_add(sb, v->u.s, v->len);
  else
    zql_val_to_json(sb, v);
}

const char *zql_val_type_name(const zql_val_t *v)
{
  switch ((zql_vtype_t)v->t) {
  case ZQL_V_MISSING: return "missing";
  case ZQL_V_ERROR: return "error";
  case ZQL_V_NULL: return "null";
  case ZQL_V_BOOL: return "bool";
  case ZQL_V_INT: return (v->flags & ZQL_VF_INT32) ? "int" : "long";
  case ZQL_V_DOUBLE: return "double";
  case ZQL_V_STRING: return "string";
  case ZQL_V_DATE: return "date";
  case ZQL_V_DOC: return "object";
  case ZQL_V_ARRAY: return "array";
  case ZQL_V_OID: return "objectId";
  case ZQL_V_BINARY: return "binData";
  case ZQL_V_TIMESTAMP: return "timestamp";
  case ZQL_V_REGEX: return "regex";
  case ZQL_V_MINKEY: return "minKey";
  case ZQL_V_MAXKEY: return "maxKey";
  case ZQL_V_OTHER:
    return v->flags == BSON_TYPE_CODE         ? "javascript"
           : v->flags == BSON_TYPE_CODEWSCOPE ? "javascriptWithScope"
                                               : "dbPointer";
  case ZQL_V__COUNT:
    break;
  }
  return "error";
}

/* }==== */
