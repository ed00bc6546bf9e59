/*
 * value.h -- ZQL run-time values (stage 4, every executor stage).
 *
 * A zql_val_t is a 16-byte tagged value: one of the BSON types, or MISSING (path absent)
 * or ERROR (a failed operation), design/ZQL.md R1. Values are *views*: strings, documents,
 * arrays, binaries and ObjectIds point at bytes owned by someone else (the event being
 * mapped, the batch arena, an aggregator state). Whoever keeps a value past the lifetime
 * of those bytes copies it (zql_val_copy into an arena, or zql_val_encode into a buffer).
 *
 *   MISSING  the path was absent                 t = ZQL_V_MISSING
 *   ERROR    a failed operation                  u.err = static message ("division by zero")
 *   NULL     BSON null (and BSON undefined)
 *   BOOL INT DOUBLE STRING DATE DOC ARRAY OID BINARY TIMESTAMP REGEX MINKEY MAXKEY
 *   OTHER    JavaScript code (with scope), DBPointer: the raw BSON value bytes, the BSON
 *            type byte in `flags`
 *
 * Numbers: INT is int64; ZQL_VF_INT32 in `flags` records that it came from a BSON int32
 * (type() says "int", output writes an int32 back). decimal128 is converted to DOUBLE on
 * input (zql_val_from_iter reports it so the caller counts `_lossy`). BSON symbol reads as
 * STRING.
 *
 * Two orders/equalities:
 *  - zql_val_cmp: the total R7 order (type class, then value): MinKey < Null < numbers <
 *    string < object < array < binary < ObjectId < bool < date < timestamp < regex <
 *    other < MaxKey. Numbers compare by value across INT/DOUBLE (exactly, also beyond
 *    2^53), NaN is below every other number and equal to every NaN, -0.0 == 0. Used by
 *    sort, rank, min/max, order by. MISSING and ERROR sort below MinKey (they never reach
 *    an ordered output: keys normalise them to null).
 *  - zql_val_eq3 / zql_val_cmp3: the three-valued operators of expressions (R3): a NULL,
 *    MISSING or ERROR operand gives NULL; ordered comparison of different type classes
 *    gives NULL; equality across classes is FALSE.
 *
 * Key encoding (R6): zql_val_encode writes a value's *normalised* form as bytes such that
 * memcmp order of two encodings == zql_val_cmp order of the normalised values, and equal
 * bytes <=> equal normalised values. Normalisation: MISSING, ERROR and NULL all encode as
 * null; integral numbers in int64 range (also doubles such as 3.0) encode as that integer,
 * other numbers as doubles; -0.0 as 0; every NaN alike; int32 flag dropped. Group keys,
 * hash partitioning, distinct sets and sketch hashing all use this one encoding, so 1,
 * int32 1, int64 1 and 1.0 are the same key and hash alike. zql_val_decode turns an
 * encoding back into a value (integral numbers come back as INT). The byte layout is in
 * value.c's header and docs/formats.md.
 *
 * Hash: zql_val_hash = XXH3-64 with seed ZQL_HASH_SEED over the encoding. It is part of
 * the persisted sketch formats: never change it.
 */
#ifndef ZQL_VALUE_H
#define ZQL_VALUE_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/base/arena.h"
#include "runtime/base/strbuf.h"

#define ZQL_HASH_SEED UINT64_C(0x7a716c2d76616c31) /* "zql-val1" */

/* ORDER: type classes of R7 follow zql_val_class(), not this enum. */
typedef enum zql_vtype {
  ZQL_V_MISSING = 0,
  ZQL_V_ERROR,
  ZQL_V_NULL,
  ZQL_V_BOOL,
  ZQL_V_INT,
  ZQL_V_DOUBLE,
  ZQL_V_STRING,
  ZQL_V_DATE,
  ZQL_V_DOC,
  ZQL_V_ARRAY,
  ZQL_V_OID,
  ZQL_V_BINARY,
  ZQL_V_TIMESTAMP,
  ZQL_V_REGEX,
  ZQL_V_MINKEY,
  ZQL_V_MAXKEY,
  ZQL_V_OTHER,
  ZQL_V__COUNT
} zql_vtype_t;

enum {
  ZQL_VF_INT32 = 1 /* INT: came from (or is written as) a BSON int32 */
};

typedef struct zql_val {
  uint8_t t;      /* zql_vtype_t */
  uint8_t flags;  /* ZQL_VF_*; BINARY: the BSON binary subtype; OTHER: the BSON type */
  uint16_t pad_;
  uint32_t len;   /* STRING: bytes (the bytes are followed by a NUL); DOC, ARRAY: BSON
                     document bytes; BINARY: payload bytes; REGEX: bytes of
                     "pattern\0flags\0"; OTHER: the value bytes as in the document
                     (the BSON type is in flags) */
  union {
    bool b;            /* BOOL */
    int64_t i;         /* INT; DATE (ms since 1970, UTC) */
    double d;          /* DOUBLE */
    const char *s;     /* STRING (NUL at s[len]) */
    const uint8_t *p;  /* DOC, ARRAY (len bytes of BSON), OID (12 bytes), BINARY, REGEX,
                          OTHER */
    const char *err;   /* ERROR: a static message, lowercase ("division by zero") */
    struct {
      uint32_t t, i;   /* TIMESTAMP: seconds, increment */
    } ts;
  } u;
} zql_val_t;

/* ---- constructors (inline: the VM builds values in tight loops) ---- */
static inline zql_val_t zql_val_missing(void) { zql_val_t v = {ZQL_V_MISSING, 0, 0, 0, {0}}; return v; }
static inline zql_val_t zql_val_null(void) { zql_val_t v = {ZQL_V_NULL, 0, 0, 0, {0}}; return v; }
static inline zql_val_t zql_val_bool(bool b) { zql_val_t v = {ZQL_V_BOOL, 0, 0, 0, {0}}; v.u.b = b; return v; }
static inline zql_val_t zql_val_int(int64_t i) { zql_val_t v = {ZQL_V_INT, 0, 0, 0, {0}}; v.u.i = i; return v; }
static inline zql_val_t zql_val_double(double d) { zql_val_t v = {ZQL_V_DOUBLE, 0, 0, 0, {0}}; v.u.d = d; return v; }
static inline zql_val_t zql_val_date(int64_t ms) { zql_val_t v = {ZQL_V_DATE, 0, 0, 0, {0}}; v.u.i = ms; return v; }
/* s must stay valid and have a NUL at s[len]. */
static inline zql_val_t zql_val_str(const char *s, uint32_t len) { zql_val_t v = {ZQL_V_STRING, 0, 0, len, {0}}; v.u.s = s; return v; }
static inline zql_val_t zql_val_error(const char *msg) { zql_val_t v = {ZQL_V_ERROR, 0, 0, 0, {0}}; v.u.err = msg; return v; }

static inline bool zql_val_is_num(const zql_val_t *v) { return v->t == ZQL_V_INT || v->t == ZQL_V_DOUBLE; }
/* NULL, MISSING or ERROR: the values `??` replaces and comparisons turn into NULL. */
static inline bool zql_val_is_nullish(const zql_val_t *v) { return v->t <= ZQL_V_NULL; }
/* The value as a double (INT or DOUBLE only). */
static inline double zql_val_num(const zql_val_t *v) { return v->t == ZQL_V_INT ? (double)v->u.i : v->u.d; }

/* ---- conversion from and to BSON ---- */

/* A view of the value under iter (no copy). Returns true when the value was a decimal128
 * converted to double (the caller counts `_lossy`). */
bool zql_val_from_iter(const bson_iter_t *iter, zql_val_t *out);
/* A view of the document (or array) bytes as a value. */
zql_val_t zql_val_doc(const uint8_t *data, uint32_t len, bool is_array);
/* Append v to doc under key (klen -1: NUL-terminated). MISSING appends nothing; ERROR
 * appends null. Returns false when libbson refused (the document would exceed its limits). */
bool zql_val_append_bson(bson_t *doc, const char *key, int klen, const zql_val_t *v);
/* A deep copy of v whose bytes live in arena (an ERROR's message too; NULL arena: no copy
 * needed for scalars; returns false out of memory). */
bool zql_val_copy(zql_arena_t *arena, const zql_val_t *v, zql_val_t *out);

/* Building BSON in a zql_strbuf_t, for code that must survive out-of-memory (a growing
 * bson_t cannot: libbson aborts, or with a custom realloc crashes, when an allocation
 * fails). Failure only sets sb->oom, checked once at the end.
 *   size_t d = zql_bson_begin(&sb); zql_bson_append(&sb, "a", 1, &v); ...
 *   size_t s = zql_bson_begin_sub(&sb, "b", 1, true); ... zql_bson_end(&sb, s);
 *   zql_bson_end(&sb, d);   -> sb.buf + d holds the document's bytes
 * zql_bson_append writes one element like zql_val_append_bson (MISSING: nothing, ERROR:
 * null, INT with ZQL_VF_INT32: int32). Array keys are the caller's ("0", "1", ...). */
size_t zql_bson_begin(zql_strbuf_t *sb);
size_t zql_bson_begin_sub(zql_strbuf_t *sb, const char *key, size_t klen, bool is_array);
void zql_bson_append(zql_strbuf_t *sb, const char *key, size_t klen, const zql_val_t *v);
void zql_bson_end(zql_strbuf_t *sb, size_t off);

/* ---- order, equality, hashing ---- */

/* R7 class rank of a type (0 = MISSING/ERROR, then MinKey=1, Null=2, numbers=3, ...). */
int zql_val_class(const zql_val_t *v);
/* Total R7 order: < 0, 0, > 0. */
int zql_val_cmp(const zql_val_t *a, const zql_val_t *b);
/* Three-valued `==`: 1 true, 0 false, -1 NULL (an operand NULL, MISSING or ERROR). */
int zql_val_eq3(const zql_val_t *a, const zql_val_t *b);
/* Three-valued ordering for < <= > >=: sets *c to the sign and returns 0, or returns -1
 * (NULL) when an operand is NULL/MISSING/ERROR or the type classes differ. */
int zql_val_cmp3(const zql_val_t *a, const zql_val_t *b, int *c);

/* Append the normalised key encoding of v to sb (see the header comment). */
void zql_val_encode(zql_strbuf_t *sb, const zql_val_t *v);
/* Decode one value starting at *p (advanced past it); strings, documents and arrays are
 * built in arena. Returns false for malformed input or out of memory. */
bool zql_val_decode(const uint8_t **p, const uint8_t *end, zql_arena_t *arena, zql_val_t *out);
/* Check the encoding at *p without building anything (no allocation) and advance past
 * it; false when malformed. zql_val_decode of an encoding that passed this check fails
 * only for out of memory: call it first where corrupt input and ENOMEM must differ. */
bool zql_val_skip(const uint8_t **p, const uint8_t *end);
/* XXH3-64(seed ZQL_HASH_SEED) of the encoding of v. */
uint64_t zql_val_hash(const zql_val_t *v);
/* Hash of bytes that already are an encoding. */
uint64_t zql_hash_bytes(const void *data, size_t len);

/* ---- text ---- */

/* Append v as JSON: INT as an integer, DOUBLE in shortest round-trip form (1.5, 1e+300;
 * an integral double keeps a ".0"), NaN/Infinity as null, strings escaped, DATE as an
 * ISO-8601 UTC string with milliseconds ("2011-07-01T04:00:00.000Z"), OID as its 24 hex
 * digits, documents/arrays recursively, BINARY as base64, TIMESTAMP as {"t":..,"i":..},
 * REGEX as "/pattern/flags", MinKey/MaxKey as {"$minKey":1}/{"$maxKey":1}, code and
 * DBPointer as MongoDB extended JSON ({"$code":..}), MISSING and ERROR as null. Strings
 * are escaped per RFC 8259 (controls as \u00XX); invalid UTF-8 bytes become \ufffd. */
void zql_val_to_json(zql_strbuf_t *sb, const zql_val_t *v);
/* Like zql_val_to_json but a top-level STRING is appended raw (no quotes): str(), csv,
 * table cells, key templates. */
void zql_val_to_text(zql_strbuf_t *sb, const zql_val_t *v);
/* Shortest round-trip text of a double ("0.1", "1e+300", "3" -> "3.0" only with keep_point). */
void zql_double_to_text(zql_strbuf_t *sb, double d, bool keep_point);
/* ISO-8601 UTC with milliseconds, e.g. 2011-07-01T04:00:00.000Z (years outside
 * 0..9999 as +/-YYYYYY). */
void zql_date_to_text(zql_strbuf_t *sb, int64_t ms);
/* MongoDB's $type name: "double", "string", "object", "array", "binData", "objectId",
 * "bool", "date", "null", "regex", "int", "timestamp", "long", "minKey", "maxKey",
 * "javascript", "javascriptWithScope", "dbPointer"; "missing" and "error" for the two
 * non-values. */
const char *zql_val_type_name(const zql_val_t *v);

#endif
