/*
 * func.c -- the core scalar functions of ZQL: conversions, strings, arrays, numbers
 * (stage 4, MAP and REDUCE; see func.h for the calling contract).
 *
 * Pipeline position: the analyzer has resolved every call against parser/funclist.h and
 * checked arities and constant arguments; the VM finds the run-time entry here with
 * zql_scalar_lookup(name, nargs), calls `prepare` once per call site (only the regex
 * functions have one) and `call` once per row. The time functions live in
 * exec/func_time.c, `session` and `hll_downgrade` in the planner/aggregation code.
 *
 * Conventions shared by every function below (func.h, design/ZQL.md R1-R5):
 *  - An ERROR argument is the result (the first one, left to right), then a MISSING
 *    argument makes the result MISSING (so def(num(x)) is false when x is absent), then a
 *    NULL argument makes it NULL, then type errors give an ERROR with a static
 *    message naming the function ("sqrt: negative argument"). def, coalesce, type and if
 *    are about missing values and errors and say themselves what they do with them;
 *    min/max skip NULL and MISSING arguments.
 *  - Result bytes go to the batch arena c->arena. Out of memory there gives ERROR
 *    "out of memory" (a function never fails as a C call).
 *  - Numbers follow the R4 tower: INT (int64) results that would overflow become DOUBLE
 *    (abs(INT64_MIN), round(x, -n) near the ends of the range).
 *
 * Decisions the one-line docs leave open, settled here:
 *  - num/int/double parse a string as a whole decimal number: [+-] digits [. digits]
 *    [e [+-] digits] (".5" and "5." too). Leading or trailing whitespace, hex, "nan"
 *    and "inf" are refused ("num: not a number"). An integer string that fits in int64
 *    gives INT, any other number DOUBLE (so "99999999999999999999" is 1e20); a string
 *    beyond the double range is "num: out of range".
 *  - int(): INT unchanged (as int64), DOUBLE truncated toward zero (NaN, infinities and
 *    values outside int64 are ERROR "int: out of range"), a DATE gives its milliseconds
 *    since 1970 (MongoDB's $toLong), anything else ERROR.
 *  - len/substr count code points as the number of bytes that are not UTF-8
 *    continuation bytes (10xxxxxx), which is also a well-defined count for invalid
 *    UTF-8. substr: a negative start counts from the end (clamped to 0), a start past
 *    the end gives "", a negative length is ERROR (as in PostgreSQL).
 *  - str() is the cell text of exec/output.h (zql_cell_text): a date in ISO-8601 UTC
 *    without quotes, NaN as "NaN", documents and arrays as compact JSON.
 *  - trim removes ASCII whitespace (space, \t, \n, \v, \f, \r); lower/upper are ASCII.
 *  - contains(array, x) is TRUE when an element == x (R4: 1 == 1.0), FALSE otherwise
 *    (also when some element is null: no SQL IN three-valued subtlety).
 *  - split("", sep) is [""]; pieces are never dropped ("a,,b" -> ["a", "", "b"]).
 *  - regex_match/regex_extract on a non-string subject do not match (FALSE / NULL), like
 *    `=~` (exec/func_regex.h); regex_extract gives NULL when the group did not take part
 *    in the match.
 *  - round(x, digits) of a DOUBLE rounds the shortest decimal form of x (what str(x)
 *    shows) half away from zero, so round(2.675, 2) is 2.68 and round(1.005, 2) is 1.01,
 *    as a reader of the data expects; digits 0 is C's round(), which agrees with it.
 *    floor/ceil/round never give -0.0 (a zero result is +0.0).
 *  - pow: a NaN result from non-NaN arguments is "pow: domain error", 0 to a negative
 *    power "pow: division by zero" (like 1 / 0, R4); overflow gives infinity, as exp().
 *  - if(cond, a, b): a non-boolean cond other than NULL/MISSING/ERROR is ERROR.
 *
 * Regexes: compiled once in prepare (zql_regex_guard first, then regcomp), freed by an
 * arena cleanup on the plan arena; see func_regex.h for the flags.
 */
#include "runtime/base/zql_common.h"

#include <errno.h>
#include <math.h>
#include <regex.h>

#include "exec/func.h"
#include "exec/func_regex.h"
#include "exec/output.h"
#include "runtime/base/error.h"
#include "runtime/base/regex_guard.h"

#define E_OOM "out of memory"

/* {==== helpers ========================================================================= */

/* The first ERROR argument into *out, else MISSING when some argument is MISSING, else
 * NULL when some argument is NULL. Returns true when *out is the result. */
bool zql_fn_propagate(const zql_val_t *args, int nargs, zql_val_t *out)
{
  for (int i = 0; i < nargs; i++)
    if (args[i].t == ZQL_V_ERROR) {
      *out = args[i];
      return true;
    }
  for (int i = 0; i < nargs; i++)
    if (args[i].t == ZQL_V_MISSING) {
      *out = zql_val_missing();
      return true;
    }
  for (int i = 0; i < nargs; i++)
    if (args[i].t == ZQL_V_NULL) {
      *out = zql_val_null();
      return true;
    }
  return false;
}

static bool is_cont(unsigned char c)
{
  return (c & 0xC0) == 0x80;
}

/* Code points of s[0..n): bytes that are not continuation bytes. */
static int64_t cp_count(const char *s, size_t n)
{
  int64_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += !is_cont((unsigned char)s[i]);
  return k;
}

/* Byte offset where code point k starts (0 <= k); n when k >= the count. Code point 0
 * starts at byte 0 even when the string begins with stray continuation bytes. */
static size_t cp_offset(const char *s, size_t n, int64_t k)
{
  if (k <= 0)
    return 0;
  int64_t seen = 0;
  for (size_t i = 0; i < n; i++)
    if (!is_cont((unsigned char)s[i]) && seen++ == k)
      return i;
  return n;
}

/* A STRING value of the n bytes at s, copied into the arena (NUL-terminated). */
static zql_val_t str_copy(zql_arena_t *a, const char *s, size_t n)
{
  if (n > UINT32_MAX)
    return zql_val_error("result too large");
  char *p = zql_arena_strndup(a, s, n);
  if (!p)
    return zql_val_error(E_OOM);
  return zql_val_str(p, (uint32_t)n);
}

/* The string s[b..e) of a STRING value: a view when it runs to the end (the NUL is
 * there), else a copy. */
static zql_val_t str_slice(zql_arena_t *a, const zql_val_t *v, size_t b, size_t e)
{
  if (e == v->len)
    return zql_val_str(v->u.s + b, (uint32_t)(e - b));
  return str_copy(a, v->u.s + b, e - b);
}

/* An integer argument: INT, or a DOUBLE with an integral value in int64 range. */
static bool arg_int(const zql_val_t *v, int64_t *out)
{
  if (v->t == ZQL_V_INT) {
    *out = v->u.i;
    return true;
  }
  if (v->t == ZQL_V_DOUBLE && v->u.d == floor(v->u.d) && v->u.d >= -9223372036854775808.0 &&
      v->u.d < 9223372036854775808.0) {
    *out = (int64_t)v->u.d;
    return true;
  }
  return false;
}

typedef struct piece {
  const char *s;
  size_t n;
} piece_t;

static size_t dec_len(size_t i)
{
  size_t n = 1;
  while (i >= 10) {
    i /= 10;
    n++;
  }
  return n;
}

static uint8_t *put_le32(uint8_t *p, uint32_t x)
{
  p[0] = (uint8_t)x;
  p[1] = (uint8_t)(x >> 8);
  p[2] = (uint8_t)(x >> 16);
  p[3] = (uint8_t)(x >> 24);
  return p + 4;
}

/* A BSON array of n strings, built in the arena. Layout (bsonspec.org): int32 total
 * length, then per element 0x02, the key "i\0", int32 (bytes + 1), the bytes and a NUL,
 * then a final NUL. */
static zql_val_t str_array(zql_arena_t *a, const piece_t *pc, size_t n, const char *too_large)
{
  size_t total = 5;
  for (size_t i = 0; i < n; i++) {
    size_t el = 1 + dec_len(i) + 1 + 4 + pc[i].n + 1;
    if (pc[i].n > INT32_MAX || el > (size_t)INT32_MAX - total)
      return zql_val_error(too_large);
    total += el;
  }
  uint8_t *buf = zql_arena_alloc(a, total);
  if (!buf)
    return zql_val_error(E_OOM);
  uint8_t *p = put_le32(buf, (uint32_t)total);
  for (size_t i = 0; i < n; i++) {
    *p++ = 0x02;
    char key[24];
    int kl = snprintf(key, sizeof key, "%zu", i);
    memcpy(p, key, (size_t)kl + 1);
    p += kl + 1;
    p = put_le32(p, (uint32_t)(pc[i].n + 1));
    if (pc[i].n)
      memcpy(p, pc[i].s, pc[i].n);
    p += pc[i].n;
    *p++ = 0;
  }
  *p = 0;
  return zql_val_doc(buf, (uint32_t)total, true);
}

/* Number of elements of a DOC or ARRAY value, or -1 when its bytes are malformed. */
static int64_t doc_count(const zql_val_t *v)
{
  bson_iter_t it;
  if (!bson_iter_init_from_data(&it, v->u.p, v->len))
    return -1;
  int64_t n = 0;
  while (bson_iter_next(&it))
    n++;
  return n;
}

/* Shared body of the one-string-argument functions: ERROR/NULL propagation and the type
 * check. Returns true when *out is already the result. */
static bool want_str(const zql_val_t *args, int nargs, const char *msg, zql_val_t *out)
{
  if (zql_fn_propagate(args, nargs, out))
    return true;
  for (int i = 0; i < nargs; i++)
    if (args[i].t != ZQL_V_STRING) {
      *out = zql_val_error(msg);
      return true;
    }
  return false;
}

/* Shared body of the numeric functions. */
static bool want_num(const zql_val_t *args, int nargs, const char *msg, zql_val_t *out)
{
  if (zql_fn_propagate(args, nargs, out))
    return true;
  for (int i = 0; i < nargs; i++)
    if (!zql_val_is_num(&args[i])) {
      *out = zql_val_error(msg);
      return true;
    }
  return false;
}

/* +0.0 for a zero result (never -0.0), else d. */
static zql_val_t dbl_nozero(double d)
{
  return zql_val_double(d == 0 ? 0.0 : d);
}

/* }==== */

/* {==== conversions and types =========================================================== */

typedef enum { NUM_BAD, NUM_INT, NUM_DOUBLE, NUM_RANGE } numparse_t;

/* Parse s[0..n) as a whole decimal number (grammar in the file header). s[n] is NUL. */
static numparse_t parse_number(const char *s, size_t n, int64_t *i, double *d)
{
  size_t k = 0, digits = 0;
  bool integral = true;
  if (k < n && (s[k] == '+' || s[k] == '-'))
    k++;
  while (k < n && s[k] >= '0' && s[k] <= '9')
    k++, digits++;
  if (k < n && s[k] == '.') {
    integral = false;
    k++;
    while (k < n && s[k] >= '0' && s[k] <= '9')
      k++, digits++;
  }
  if (digits == 0)
    return NUM_BAD;
  if (k < n && (s[k] == 'e' || s[k] == 'E')) {
    integral = false;
    k++;
    if (k < n && (s[k] == '+' || s[k] == '-'))
      k++;
    size_t e0 = k;
    while (k < n && s[k] >= '0' && s[k] <= '9')
      k++;
    if (k == e0)
      return NUM_BAD;
  }
  if (k != n)
    return NUM_BAD; /* trailing bytes, whitespace or an embedded NUL */
  if (integral) {
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno != ERANGE) {
      *i = (int64_t)v;
      return NUM_INT;
    }
  }
  *d = strtod(s, NULL);
  return isinf(*d) ? NUM_RANGE : NUM_DOUBLE;
}

static void fn_num(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                   zql_val_t *out)
{
  if (zql_fn_propagate(args, 1, out))
    return;
  if (zql_val_is_num(&args[0])) {
    *out = args[0];
    return;
  }
  if (args[0].t != ZQL_V_STRING) {
    *out = zql_val_error("num: not a number");
    return;
  }
  int64_t i = 0;
  double d = 0;
  switch (parse_number(args[0].u.s, args[0].len, &i, &d)) {
  case NUM_INT:
    *out = zql_val_int(i);
    break;
  case NUM_DOUBLE:
    *out = zql_val_double(d);
    break;
  case NUM_RANGE:
    *out = zql_val_error("num: out of range");
    break;
  default:
    *out = zql_val_error("num: not a number");
    break;
  }
}

/* d truncated toward zero into *i, false when NaN, infinite or outside int64. */
static bool dbl_to_int(double d, int64_t *i)
{
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
    return false;
  *i = (int64_t)d;
  return true;
}

static void fn_int(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                   zql_val_t *out)
{
  if (zql_fn_propagate(args, 1, out))
    return;
  const zql_val_t *v = &args[0];
  int64_t i = 0;
  double d = 0;
  switch (v->t) {
  case ZQL_V_INT:
  case ZQL_V_DATE:
    *out = zql_val_int(v->u.i);
    return;
  case ZQL_V_DOUBLE:
    d = v->u.d;
    break;
  case ZQL_V_STRING:
    switch (parse_number(v->u.s, v->len, &i, &d)) {
    case NUM_INT:
      *out = zql_val_int(i);
      return;
    case NUM_DOUBLE:
      break;
    case NUM_RANGE:
      *out = zql_val_error("int: out of range");
      return;
    default:
      *out = zql_val_error("int: not a number");
      return;
    }
    break;
  default:
    *out = zql_val_error("int: not a number");
    return;
  }
  *out = dbl_to_int(d, &i) ? zql_val_int(i) : zql_val_error("int: out of range");
}

static void fn_double(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                      zql_val_t *out)
{
  if (zql_fn_propagate(args, 1, out))
    return;
  const zql_val_t *v = &args[0];
  if (zql_val_is_num(v)) {
    *out = zql_val_double(zql_val_num(v));
    return;
  }
  if (v->t != ZQL_V_STRING) {
    *out = zql_val_error("double: not a number");
    return;
  }
  int64_t i = 0;
  double d = 0;
  switch (parse_number(v->u.s, v->len, &i, &d)) {
  case NUM_INT:
    *out = zql_val_double((double)i);
    break;
  case NUM_DOUBLE:
    *out = zql_val_double(d);
    break;
  case NUM_RANGE:
    *out = zql_val_error("double: out of range");
    break;
  default:
    *out = zql_val_error("double: not a number");
    break;
  }
}

static void fn_str(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                   zql_val_t *out)
{
  if (zql_fn_propagate(args, 1, out))
    return;
  if (args[0].t == ZQL_V_STRING) {
    *out = args[0];
    return;
  }
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_cell_text(&sb, &args[0]);
  *out = sb.oom ? zql_val_error(E_OOM) : str_copy(c->arena, sb.buf, sb.len);
  zql_strbuf_release(&sb);
}

static void fn_type(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                    zql_val_t *out)
{
  const char *name = zql_val_type_name(&args[0]);
  *out = zql_val_str(name, (uint32_t)strlen(name));
}

static void fn_hash(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                    zql_val_t *out)
{
  if (zql_fn_propagate(args, 1, out))
    return;
  uint64_t h = zql_val_hash(&args[0]);
  int64_t i;
  memcpy(&i, &h, sizeof i); /* the same 64 bits, as a signed integer */
  *out = zql_val_int(i);
}

static void fn_def(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                   zql_val_t *out)
{
  *out = zql_val_bool(args[0].t != ZQL_V_MISSING && args[0].t != ZQL_V_ERROR);
}

static void fn_coalesce(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                        zql_val_t *out)
{
  for (int i = 0; i < nargs; i++)
    if (!zql_val_is_nullish(&args[i])) {
      *out = args[i];
      return;
    }
  *out = zql_val_null();
}

static void fn_if(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                  zql_val_t *out)
{
  const zql_val_t *cond = &args[0];
  if (cond->t == ZQL_V_BOOL)
    *out = cond->u.b ? args[1] : args[2];
  else if (zql_val_is_nullish(cond))
    *out = args[2];
  else
    *out = zql_val_error("if: condition is not a boolean");
}

/* }==== */

/* {==== strings, arrays, documents ====================================================== */

static void fn_len(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                   zql_val_t *out)
{
  if (zql_fn_propagate(args, 1, out))
    return;
  if (args[0].t == ZQL_V_STRING) {
    *out = zql_val_int(cp_count(args[0].u.s, args[0].len));
  } else if (args[0].t == ZQL_V_ARRAY) {
    int64_t n = doc_count(&args[0]);
    *out = n < 0 ? zql_val_error("len: malformed array") : zql_val_int(n);
  } else {
    *out = zql_val_error("len: not a string or array");
  }
}

static void change_case(zql_fnctx_t *c, const zql_val_t *args, bool up, const char *msg,
                        zql_val_t *out)
{
  if (want_str(args, 1, msg, out))
    return;
  const zql_val_t *v = &args[0];
  char *p = zql_arena_alloc(c->arena, (size_t)v->len + 1);
  if (!p) {
    *out = zql_val_error(E_OOM);
    return;
  }
  for (uint32_t i = 0; i < v->len; i++) {
    char ch = v->u.s[i];
    if (up && ch >= 'a' && ch <= 'z')
      ch = (char)(ch - 'a' + 'A');
    else if (!up && ch >= 'A' && ch <= 'Z')
      ch = (char)(ch - 'A' + 'a');
    p[i] = ch;
  }
  p[v->len] = '\0';
  *out = zql_val_str(p, v->len);
}

static void fn_lower(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                     zql_val_t *out)
{
  change_case(c, args, false, "lower: not a string", out);
}

static void fn_upper(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                     zql_val_t *out)
{
  change_case(c, args, true, "upper: not a string", out);
}

static bool is_space(char ch)
{
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r';
}

static void fn_trim(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                    zql_val_t *out)
{
  if (want_str(args, 1, "trim: not a string", out))
    return;
  const zql_val_t *v = &args[0];
  size_t b = 0, e = v->len;
  while (b < e && is_space(v->u.s[b]))
    b++;
  while (e > b && is_space(v->u.s[e - 1]))
    e--;
  *out = str_slice(c->arena, v, b, e);
}

static void fn_substr(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                      zql_val_t *out)
{
  if (zql_fn_propagate(args, nargs, out))
    return;
  const zql_val_t *v = &args[0];
  if (v->t != ZQL_V_STRING) {
    *out = zql_val_error("substr: not a string");
    return;
  }
  int64_t start, count;
  if (!arg_int(&args[1], &start)) {
    *out = zql_val_error("substr: start is not an integer");
    return;
  }
  int64_t n = cp_count(v->u.s, v->len);
  if (start < 0)
    start = start < -n ? 0 : start + n;
  if (start > n)
    start = n;
  int64_t end = n;
  if (nargs > 2) {
    if (!arg_int(&args[2], &count)) {
      *out = zql_val_error("substr: length is not an integer");
      return;
    }
    if (count < 0) {
      *out = zql_val_error("substr: negative length");
      return;
    }
    if (count < n - start)
      end = start + count;
  }
  size_t b = cp_offset(v->u.s, v->len, start);
  size_t e = end == n ? v->len : cp_offset(v->u.s, v->len, end);
  *out = str_slice(c->arena, v, b, e);
}

static void fn_concat(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                      zql_val_t *out)
{
  if (want_str(args, nargs, "concat: not a string", out))
    return;
  if (nargs == 1) {
    *out = args[0];
    return;
  }
  size_t total = 0;
  for (int i = 0; i < nargs; i++) {
    total += args[i].len;
    if (total > UINT32_MAX - 1) {
      *out = zql_val_error("concat: result too large");
      return;
    }
  }
  char *p = zql_arena_alloc(c->arena, total + 1);
  if (!p) {
    *out = zql_val_error(E_OOM);
    return;
  }
  size_t o = 0;
  for (int i = 0; i < nargs; i++) {
    if (args[i].len)
      memcpy(p + o, args[i].u.s, args[i].len);
    o += args[i].len;
  }
  p[o] = '\0';
  *out = zql_val_str(p, (uint32_t)o);
}

/* The first occurrence of needle (nn > 0 bytes) in hay[0..hn), or NULL. */
static const char *find(const char *hay, size_t hn, const char *needle, size_t nn)
{
  return memmem(hay, hn, needle, nn);
}

static void fn_contains(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                        zql_val_t *out)
{
  if (zql_fn_propagate(args, 2, out))
    return;
  const zql_val_t *s = &args[0], *x = &args[1];
  if (s->t == ZQL_V_STRING) {
    if (x->t != ZQL_V_STRING)
      *out = zql_val_error("contains: not a string");
    else
      *out = zql_val_bool(x->len == 0 || find(s->u.s, s->len, x->u.s, x->len) != NULL);
    return;
  }
  if (s->t != ZQL_V_ARRAY) {
    *out = zql_val_error("contains: not a string or array");
    return;
  }
  bson_iter_t it;
  if (!bson_iter_init_from_data(&it, s->u.p, s->len)) {
    *out = zql_val_error("contains: malformed array");
    return;
  }
  while (bson_iter_next(&it)) {
    zql_val_t el;
    zql_val_from_iter(&it, &el);
    if (zql_val_eq3(&el, x) == 1) {
      *out = zql_val_bool(true);
      return;
    }
  }
  *out = zql_val_bool(false);
}

static void fn_starts_with(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                           zql_val_t *out)
{
  if (want_str(args, 2, "starts_with: not a string", out))
    return;
  const zql_val_t *s = &args[0], *p = &args[1];
  *out = zql_val_bool(p->len <= s->len && memcmp(s->u.s, p->u.s, p->len) == 0);
}

static void fn_ends_with(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                         zql_val_t *out)
{
  if (want_str(args, 2, "ends_with: not a string", out))
    return;
  const zql_val_t *s = &args[0], *p = &args[1];
  *out = zql_val_bool(p->len <= s->len &&
                      memcmp(s->u.s + (s->len - p->len), p->u.s, p->len) == 0);
}

static void fn_split(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                     zql_val_t *out)
{
  if (want_str(args, 2, "split: not a string", out))
    return;
  const zql_val_t *s = &args[0], *sep = &args[1];
  if (sep->len == 0) {
    *out = zql_val_error("split: empty separator");
    return;
  }
  size_t n = 1;
  const char *end = s->u.s + s->len;
  for (const char *p = s->u.s; (p = find(p, (size_t)(end - p), sep->u.s, sep->len));
       p += sep->len)
    n++;
  piece_t *pc = zql_arena_calloc(c->arena, n, sizeof *pc);
  if (!pc) {
    *out = zql_val_error(E_OOM);
    return;
  }
  const char *p = s->u.s;
  for (size_t i = 0; i < n; i++) {
    const char *q = i + 1 < n ? find(p, (size_t)(end - p), sep->u.s, sep->len) : end;
    pc[i].s = p;
    pc[i].n = (size_t)(q - p);
    p = q + (i + 1 < n ? sep->len : 0);
  }
  *out = str_array(c->arena, pc, n, "split: result too large");
}

static void fn_replace(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                       zql_val_t *out)
{
  if (want_str(args, 3, "replace: not a string", out))
    return;
  const zql_val_t *s = &args[0], *from = &args[1], *to = &args[2];
  if (from->len == 0) {
    *out = zql_val_error("replace: empty search string");
    return;
  }
  const char *end = s->u.s + s->len;
  size_t hits = 0;
  for (const char *p = s->u.s; (p = find(p, (size_t)(end - p), from->u.s, from->len));
       p += from->len)
    hits++;
  if (hits == 0) {
    *out = *s;
    return;
  }
  /* len - hits*from + hits*to, checked against the 32-bit length of a value */
  uint64_t total = (uint64_t)s->len - (uint64_t)hits * from->len + (uint64_t)hits * to->len;
  if (total > UINT32_MAX - 1) {
    *out = zql_val_error("replace: result too large");
    return;
  }
  char *buf = zql_arena_alloc(c->arena, (size_t)total + 1);
  if (!buf) {
    *out = zql_val_error(E_OOM);
    return;
  }
  char *o = buf;
  const char *p = s->u.s;
  for (const char *q; (q = find(p, (size_t)(end - p), from->u.s, from->len));
       p = q + from->len) {
    memcpy(o, p, (size_t)(q - p));
    o += q - p;
    if (to->len)
      memcpy(o, to->u.s, to->len);
    o += to->len;
  }
  memcpy(o, p, (size_t)(end - p));
  o += end - p;
  *o = '\0';
  *out = zql_val_str(buf, (uint32_t)total);
}

static void fn_keys(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                    zql_val_t *out)
{
  if (zql_fn_propagate(args, 1, out))
    return;
  if (args[0].t != ZQL_V_DOC) {
    *out = zql_val_error("keys: not a document");
    return;
  }
  int64_t n = doc_count(&args[0]);
  if (n < 0) {
    *out = zql_val_error("keys: malformed document");
    return;
  }
  piece_t *pc = zql_arena_calloc(c->arena, n ? (size_t)n : 1, sizeof *pc);
  if (!pc) {
    *out = zql_val_error(E_OOM);
    return;
  }
  bson_iter_t it;
  bson_iter_init_from_data(&it, args[0].u.p, args[0].len);
  for (int64_t i = 0; i < n && bson_iter_next(&it); i++) {
    pc[i].s = bson_iter_key(&it);
    pc[i].n = bson_iter_key_len(&it);
  }
  *out = str_array(c->arena, pc, (size_t)n, "keys: result too large");
}

/* }==== */

/* {==== regular expressions ============================================================= */

static void regex_free(void *arg)
{
  regfree(arg);
}

/* The pattern with the x flag applied: unescaped whitespace and #-comments (to the end
 * of the line) outside bracket expressions dropped; escapes and brackets kept verbatim.
 * The analyzer (parser/analyze.c) validates patterns with the same rule. */
static char *strip_extended(zql_arena_t *a, const char *pat)
{
  size_t n = strlen(pat);
  char *buf = zql_arena_alloc(a, n + 1);
  if (!buf)
    return NULL;
  size_t o = 0;
  bool bracket = false;
  for (size_t i = 0; i < n; i++) {
    char ch = pat[i];
    if (ch == '\\' && i + 1 < n) {
      buf[o++] = ch;
      buf[o++] = pat[++i];
    } else if (bracket) {
      buf[o++] = ch;
      bracket = ch != ']';
    } else if (ch == '[') {
      /* "[]...]" and "[^]...]": a ']' right after the opening is a member */
      bracket = true;
      buf[o++] = ch;
      if (i + 1 < n && pat[i + 1] == '^')
        buf[o++] = pat[++i];
      if (i + 1 < n && pat[i + 1] == ']')
        buf[o++] = pat[++i];
    } else if (ch == '#') {
      while (i + 1 < n && pat[i + 1] != '\n')
        i++;
    } else if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
      buf[o++] = ch;
    }
  }
  buf[o] = '\0';
  return buf;
}

/* Compile the constant regex `re` with REG_EXTENDED | extra and the value's flags. */
static int regex_compile(zql_arena_t *a, const zql_val_t *re, int extra, regex_t **out,
                         zql_strbuf_t *err)
{
  const char *pat, *flags = "";
  if (re->t == ZQL_V_REGEX) {
    const char *p = (const char *)re->u.p;
    size_t pl = re->len ? strnlen(p, re->len) : 0;
    size_t fl = pl + 1 < re->len ? strnlen(p + pl + 1, re->len - pl - 1) : 0;
    if (re->len < 2 || pl + 1 + fl + 1 != re->len) {
      zql_strbuf_adds(err, "malformed regex value");
      return ZQL_E_BAD_REGEX;
    }
    pat = p;
    flags = p + pl + 1;
  } else if (re->t == ZQL_V_STRING) {
    if (strlen(re->u.s) != re->len) {
      zql_strbuf_adds(err, "regular expression contains a NUL byte");
      return ZQL_E_BAD_REGEX;
    }
    pat = re->u.s;
  } else {
    zql_strbuf_addf(err, "a regular expression must be a regex or a string, not %s",
                    zql_val_type_name(re));
    return ZQL_E_ARG_KIND;
  }
  int cflags = REG_EXTENDED | extra;
  for (const char *f = flags; *f; f++) {
    if (*f == 'i') {
      cflags |= REG_ICASE;
    } else if (*f == 'm') {
      cflags |= REG_NEWLINE;
    } else if (*f == 'x') {
      if (!(pat = strip_extended(a, pat))) {
        zql_strbuf_adds(err, E_OOM);
        return ZQL_E_NOMEM;
      }
    } else if (*f != 's') {
      zql_strbuf_addf(err, "unknown regex flag '%c'", *f);
      return ZQL_E_BAD_REGEX;
    }
  }
  char why[128];
  if (zql_regex_guard(pat, why, sizeof why) != 0) {
    zql_strbuf_addf(err, "invalid regular expression: %s", why);
    return ZQL_E_BAD_REGEX;
  }
  regex_t *rx = zql_arena_alloc(a, sizeof *rx);
  if (!rx) {
    zql_strbuf_adds(err, E_OOM);
    return ZQL_E_NOMEM;
  }
  int rc = regcomp(rx, pat, cflags);
  if (rc != 0) {
    regerror(rc, rx, why, sizeof why);
    why[0] = (char)(why[0] >= 'A' && why[0] <= 'Z' ? why[0] - 'A' + 'a' : why[0]);
    zql_strbuf_addf(err, "invalid regular expression: %s", why);
    return rc == REG_ESPACE ? ZQL_E_NOMEM : ZQL_E_BAD_REGEX;
  }
  if (zql_arena_on_cleanup(a, regex_free, rx) != 0) {
    regfree(rx);
    zql_strbuf_adds(err, E_OOM);
    return ZQL_E_NOMEM;
  }
  *out = rx;
  return 0;
}

int zql_regex_prepare(zql_arena_t *a, const zql_val_t *re, const regex_t **out,
                      zql_strbuf_t *err)
{
  regex_t *rx = NULL;
  int rc = regex_compile(a, re, REG_NOSUB, &rx, err);
  if (rc == 0)
    *out = rx;
  return rc;
}

/* regexec over s[0..len) by length; nmatch entries of pm (at least one) are filled. */
static int regex_exec(const regex_t *re, const zql_val_t *s, size_t nmatch, regmatch_t *pm)
{
  pm[0].rm_so = 0;
  pm[0].rm_eo = (regoff_t)s->len;
  return regexec(re, s->u.s, nmatch, pm, REG_STARTEND);
}

zql_val_t zql_regex_match_val(const regex_t *re, const zql_val_t *s)
{
  if (s->t == ZQL_V_ERROR)
    return *s;
  if (zql_val_is_nullish(s))
    return zql_val_null();
  if (s->t != ZQL_V_STRING)
    return zql_val_bool(false);
  regmatch_t pm[1];
  int rc = regex_exec(re, s, 0, pm);
  if (rc == 0 || rc == REG_NOMATCH)
    return zql_val_bool(rc == 0);
  return zql_val_error(E_OOM); /* REG_ESPACE: the only run-time failure of regexec */
}

/* The regex argument of a call site: constant by the analyzer's rules (kind 'r'). */
static int prep_const_regex(zql_fnprep_t *p, const char *fn)
{
  if (p->nargs < 2 || !p->isconst[1]) {
    zql_strbuf_addf(p->err, "the regular expression of '%s' must be a constant", fn);
    return ZQL_E_NOT_CONSTANT;
  }
  return 0;
}

static int prep_regex_match(zql_fnprep_t *p)
{
  int rc = prep_const_regex(p, "regex_match");
  regex_t *rx = NULL;
  if (rc == 0 && (rc = regex_compile(p->arena, &p->consts[1], REG_NOSUB, &rx, p->err)) == 0)
    p->aux = rx;
  return rc;
}

static void fn_regex_match(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                           zql_val_t *out)
{
  *out = zql_regex_match_val(aux, &args[0]);
}

static int prep_regex_extract(zql_fnprep_t *p)
{
  int rc = prep_const_regex(p, "regex_extract");
  regex_t *rx = NULL;
  if (rc != 0 || (rc = regex_compile(p->arena, &p->consts[1], 0, &rx, p->err)) != 0)
    return rc;
  if (p->nargs > 2 && p->isconst[2] && !zql_val_is_nullish(&p->consts[2])) {
    int64_t g;
    if (!arg_int(&p->consts[2], &g)) {
      zql_strbuf_adds(p->err, "the group of 'regex_extract' must be an integer");
      return ZQL_E_ARG_KIND;
    }
    if (g < 0 || (uint64_t)g > rx->re_nsub) {
      zql_strbuf_addf(p->err,
                      "group %" PRId64 " of 'regex_extract' does not exist: the regex has "
                      "%zu group%s",
                      g, rx->re_nsub, rx->re_nsub == 1 ? "" : "s");
      return ZQL_E_ARG_RANGE;
    }
  }
  p->aux = rx;
  return 0;
}

#define EXTRACT_STACK 16

static void fn_regex_extract(zql_fnctx_t *c, const void *aux, const zql_val_t *args,
                             int nargs, zql_val_t *out)
{
  const regex_t *re = aux;
  const zql_val_t *s = &args[0];
  if (s->t == ZQL_V_ERROR || (nargs > 2 && args[2].t == ZQL_V_ERROR)) {
    *out = s->t == ZQL_V_ERROR ? *s : args[2];
    return;
  }
  if (zql_val_is_nullish(s) || (nargs > 2 && zql_val_is_nullish(&args[2])) ||
      s->t != ZQL_V_STRING) {
    *out = zql_val_null();
    return;
  }
  int64_t g = 0;
  if (nargs > 2 && !arg_int(&args[2], &g)) {
    *out = zql_val_error("regex_extract: group is not an integer");
    return;
  }
  if (g < 0 || (uint64_t)g > re->re_nsub) {
    *out = zql_val_error("regex_extract: no such group");
    return;
  }
  regmatch_t stack[EXTRACT_STACK], *pm = stack;
  size_t nm = (size_t)g + 1;
  if (nm > EXTRACT_STACK && !(pm = zql_arena_calloc(c->arena, nm, sizeof *pm))) {
    *out = zql_val_error(E_OOM);
    return;
  }
  int rc = regex_exec(re, s, nm, pm);
  if (rc == REG_NOMATCH || (rc == 0 && pm[g].rm_so < 0))
    *out = zql_val_null();
  else if (rc != 0)
    *out = zql_val_error(E_OOM);
  else
    *out = str_slice(c->arena, s, (size_t)pm[g].rm_so, (size_t)pm[g].rm_eo);
}

/* }==== */

/* {==== numbers ========================================================================= */

static void fn_abs(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                   zql_val_t *out)
{
  if (want_num(args, 1, "abs: not a number", out))
    return;
  const zql_val_t *v = &args[0];
  if (v->t == ZQL_V_DOUBLE) {
    *out = zql_val_double(fabs(v->u.d));
  } else if (v->u.i == INT64_MIN) {
    *out = zql_val_double(9223372036854775808.0); /* R4: overflow promotes to double */
  } else {
    *out = zql_val_int(v->u.i < 0 ? -v->u.i : v->u.i);
    if ((v->flags & ZQL_VF_INT32) && out->u.i <= INT32_MAX)
      out->flags = ZQL_VF_INT32;
  }
}

static const int64_t pow10_i64[] = {
    INT64_C(1),
    INT64_C(10),
    INT64_C(100),
    INT64_C(1000),
    INT64_C(10000),
    INT64_C(100000),
    INT64_C(1000000),
    INT64_C(10000000),
    INT64_C(100000000),
    INT64_C(1000000000),
    INT64_C(10000000000),
    INT64_C(100000000000),
    INT64_C(1000000000000),
    INT64_C(10000000000000),
    INT64_C(100000000000000),
    INT64_C(1000000000000000),
    INT64_C(10000000000000000),
    INT64_C(100000000000000000),
    INT64_C(1000000000000000000),
};

/* x rounded half away from zero to a multiple of 10^e, 1 <= e: INT, or DOUBLE when the
 * result leaves int64. */
static zql_val_t round_int(int64_t x, int64_t e)
{
  if (e > 19)
    return zql_val_int(0); /* |x| < 9.3e18 < 10^20 / 2 */
  if (e == 19) {            /* 10^19 is outside int64: the result is 0 or +-1e19 */
    if (x >= INT64_C(5000000000000000000))
      return zql_val_double(1e19);
    if (x <= -INT64_C(5000000000000000000))
      return zql_val_double(-1e19);
    return zql_val_int(0);
  }
  int64_t p = pow10_i64[e];
  int64_t r = x % p; /* the sign of x */
  int64_t q = x - r;
  if (r > 0 && r >= p - r) {
    if (q > INT64_MAX - p)
      return zql_val_double((double)q + (double)p);
    q += p;
  } else if (r < 0 && -r >= p + r) {
    if (q < INT64_MIN + p)
      return zql_val_double((double)q - (double)p);
    q -= p;
  }
  return zql_val_int(q);
}

/* Round a finite, nonzero d half away from zero to `digits` decimal places, working on
 * its shortest round-trip decimal digits (the smallest %.*e precision that strtod reads
 * back as d, at most 17 for a double). Returns false when the result overflows. */
static bool round_decimal(double d, int digits, double *out)
{
  char buf[64];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
    if (strtod(buf, NULL) == d)
      break;
  }
  /* buf: [-]D[.DDD]e[+-]XX; collect the digits; value = 0.DIGITS x 10^(XX + 1) */
  char dig[24];
  int nd = 0;
  const char *p = buf;
  bool neg = *p == '-';
  if (neg)
    p++;
  for (; *p != 'e'; p++)
    if (*p != '.')
      dig[nd++] = *p;
  int ex = atoi(p + 1) + 1;
  int keep = ex + digits; /* digits kept before the rounding position */
  if (keep >= nd) {
    *out = d;
    return true;
  }
  if (keep < 0) {
    *out = 0.0;
    return true;
  }
  bool up = dig[keep] >= '5';
  nd = keep;
  if (up) {
    int i = nd - 1;
    while (i >= 0 && dig[i] == '9')
      dig[i--] = '0';
    if (i >= 0) {
      dig[i]++;
    } else { /* carry out of the first digit: 0.999 -> 1.000 */
      memmove(dig + 1, dig, (size_t)nd);
      dig[0] = '1';
      nd++;
      ex++;
    }
  }
  if (nd == 0) {
    *out = 0.0;
    return true;
  }
  dig[nd] = '\0';
  snprintf(buf, sizeof buf, "%s0.%se%d", neg ? "-" : "", dig, ex);
  *out = strtod(buf, NULL) + 0.0;
  return !isinf(*out);
}

static void fn_round(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                     zql_val_t *out)
{
  if (zql_fn_propagate(args, nargs, out))
    return;
  const zql_val_t *v = &args[0];
  if (!zql_val_is_num(v)) {
    *out = zql_val_error("round: not a number");
    return;
  }
  int64_t digits = 0;
  if (nargs > 1 && !arg_int(&args[1], &digits)) {
    *out = zql_val_error("round: digits is not an integer");
    return;
  }
  if (v->t == ZQL_V_INT) {
    *out = digits >= 0 ? *v : round_int(v->u.i, digits < -100 ? 100 : -digits);
    return;
  }
  double d = v->u.d, r;
  if (!isfinite(d) || d == 0) {
    *out = dbl_nozero(d);
    return;
  }
  if (digits == 0) {
    *out = dbl_nozero(round(d));
    return;
  }
  /* a double has at most ~767 significant decimal places; clamp far-out digits */
  int dg = digits > 400 ? 400 : digits < -400 ? -400 : (int)digits;
  if (!round_decimal(d, dg, &r))
    *out = zql_val_error("round: out of range");
  else
    *out = dbl_nozero(r);
}

static void fn_floor(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                     zql_val_t *out)
{
  if (want_num(args, 1, "floor: not a number", out))
    return;
  *out = args[0].t == ZQL_V_INT ? args[0] : dbl_nozero(floor(args[0].u.d));
}

static void fn_ceil(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                    zql_val_t *out)
{
  if (want_num(args, 1, "ceil: not a number", out))
    return;
  *out = args[0].t == ZQL_V_INT ? args[0] : dbl_nozero(ceil(args[0].u.d));
}

static void fn_sqrt(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                    zql_val_t *out)
{
  if (want_num(args, 1, "sqrt: not a number", out))
    return;
  double x = zql_val_num(&args[0]);
  *out = x < 0 ? zql_val_error("sqrt: negative argument") : zql_val_double(sqrt(x));
}

static void fn_ln(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                  zql_val_t *out)
{
  if (want_num(args, 1, "ln: not a number", out))
    return;
  double x = zql_val_num(&args[0]);
  *out = x <= 0 ? zql_val_error("ln: argument not positive") : zql_val_double(log(x));
}

static void fn_log10(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                     zql_val_t *out)
{
  if (want_num(args, 1, "log10: not a number", out))
    return;
  double x = zql_val_num(&args[0]);
  *out = x <= 0 ? zql_val_error("log10: argument not positive") : zql_val_double(log10(x));
}

static void fn_exp(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                   zql_val_t *out)
{
  if (want_num(args, 1, "exp: not a number", out))
    return;
  *out = zql_val_double(exp(zql_val_num(&args[0])));
}

static void fn_pow(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                   zql_val_t *out)
{
  if (want_num(args, 2, "pow: not a number", out))
    return;
  double x = zql_val_num(&args[0]), y = zql_val_num(&args[1]);
  if (x == 0 && y < 0) {
    *out = zql_val_error("pow: division by zero");
    return;
  }
  double r = pow(x, y);
  if (isnan(r) && !isnan(x) && !isnan(y))
    *out = zql_val_error("pow: domain error");
  else
    *out = zql_val_double(r);
}

/* min/max of the arguments in R7 order, skipping NULL and MISSING; the first of equals. */
static void min_max(const zql_val_t *args, int nargs, int sign, zql_val_t *out)
{
  const zql_val_t *best = NULL;
  for (int i = 0; i < nargs; i++) {
    if (args[i].t == ZQL_V_ERROR) {
      *out = args[i];
      return;
    }
    if (zql_val_is_nullish(&args[i]))
      continue;
    if (!best || sign * zql_val_cmp(&args[i], best) < 0)
      best = &args[i];
  }
  *out = best ? *best : zql_val_null();
}

static void fn_min(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                   zql_val_t *out)
{
  min_max(args, nargs, 1, out);
}

static void fn_max(zql_fnctx_t *c, const void *aux, const zql_val_t *args, int nargs,
                   zql_val_t *out)
{
  min_max(args, nargs, -1, out);
}

/* }==== */

/* {==== the table ======================================================================= */

/* ORDER: parser/funclist.h (the scalar part, without the time functions, session and
 * hll_downgrade); arities must match it (tests/unit/test_func.c checks). */
const zql_scalar_t zql_scalars_core[] = {
    {"num", 1, 1, NULL, fn_num, true},
    {"int", 1, 1, NULL, fn_int, true},
    {"double", 1, 1, NULL, fn_double, true},
    {"str", 1, 1, NULL, fn_str, true},
    {"type", 1, 1, NULL, fn_type, true},
    {"hash", 1, 1, NULL, fn_hash, true},
    {"def", 1, 1, NULL, fn_def, true},
    {"coalesce", 1, -1, NULL, fn_coalesce, true},
    {"if", 3, 3, NULL, fn_if, true},
    {"len", 1, 1, NULL, fn_len, true},
    {"lower", 1, 1, NULL, fn_lower, true},
    {"upper", 1, 1, NULL, fn_upper, true},
    {"trim", 1, 1, NULL, fn_trim, true},
    {"substr", 2, 3, NULL, fn_substr, true},
    {"concat", 1, -1, NULL, fn_concat, true},
    {"contains", 2, 2, NULL, fn_contains, true},
    {"starts_with", 2, 2, NULL, fn_starts_with, true},
    {"ends_with", 2, 2, NULL, fn_ends_with, true},
    {"split", 2, 2, NULL, fn_split, true},
    {"replace", 3, 3, NULL, fn_replace, true},
    {"regex_match", 2, 2, prep_regex_match, fn_regex_match, true},
    {"regex_extract", 2, 3, prep_regex_extract, fn_regex_extract, true},
    {"keys", 1, 1, NULL, fn_keys, true},
    {"abs", 1, 1, NULL, fn_abs, true},
    {"round", 1, 2, NULL, fn_round, true},
    {"floor", 1, 1, NULL, fn_floor, true},
    {"ceil", 1, 1, NULL, fn_ceil, true},
    {"sqrt", 1, 1, NULL, fn_sqrt, true},
    {"ln", 1, 1, NULL, fn_ln, true},
    {"log10", 1, 1, NULL, fn_log10, true},
    {"exp", 1, 1, NULL, fn_exp, true},
    {"pow", 2, 2, NULL, fn_pow, true},
    {"min", 2, -1, NULL, fn_min, true},
    {"max", 2, -1, NULL, fn_max, true},
    {NULL, 0, 0, NULL, NULL, false},
};

static const zql_scalar_t *search(const zql_scalar_t *tab, const char *name, int nargs)
{
  for (; tab->name; tab++)
    if (strcmp(tab->name, name) == 0 && nargs >= tab->min_args &&
        (tab->max_args < 0 || nargs <= tab->max_args))
      return tab;
  return NULL;
}

const zql_scalar_t *zql_scalar_lookup(const char *name, int nargs)
{
  if (!name)
    return NULL;
  const zql_scalar_t *f = search(zql_scalars_core, name, nargs);
  return f ? f : search(zql_scalars_time, name, nargs);
}

/* }==== */
