/*
 * test_func.c -- unit tests of the core scalar functions (exec/func.c) and the run-time
 * regexes (exec/func_regex.h).
 *
 * The main test is a table of calls: each case names a function, its arguments in a small
 * notation (below) and the expected result as its type name (zql_val_type_name) and JSON
 * text (zql_val_to_json), or for an ERROR the message. Every function of the core table
 * appears, with NULL/MISSING/ERROR propagation, type errors, UTF-8 and int64 overflow
 * promotion. Separate tests check the table against parser/funclist.h, lookups, hashing,
 * regexes (prepare errors, flags, groups, NUL bytes, arena cleanup) and out of memory.
 *
 * Argument notation:
 *   missing / error      MISSING / ERROR "boom"
 *   s:TEXT               the STRING of TEXT's bytes (any bytes, also invalid UTF-8)
 *   L:N                  an int64 (a BSON int32 literal would be flagged int32)
 *   anything else        relaxed extended JSON read by libbson as the value of a field:
 *                        1 (int32), 1.5, "x", true, null, [1, 2], {"a": 1},
 *                        {"$date": ...}, {"$numberDouble": "NaN"}
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <math.h>
#include <regex.h>

#include "exec/func.h"
#include "exec/func_regex.h"
#include "parser/registry.h"
#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"


#define MAXARGS 6

/* {==== building argument values ======================================================== */

/* The value described by spec (see the file header), with its bytes in arena a. */
static zql_val_t arg(zql_arena_t *a, const char *spec)
{
  if (strcmp(spec, "missing") == 0)
    return zql_val_missing();
  if (strcmp(spec, "error") == 0)
    return zql_val_error("boom");
  if (strncmp(spec, "s:", 2) == 0) {
    char *p = zql_arena_strdup(a, spec + 2);
    assert_non_null(p);
    return zql_val_str(p, (uint32_t)strlen(p));
  }
  if (strncmp(spec, "L:", 2) == 0)
    return zql_val_int(strtoll(spec + 2, NULL, 10));
  char *json = zql_arena_printf(a, "{\"v\": %s}", spec);
  assert_non_null(json);
  bson_error_t berr;
  bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &berr);
  if (!doc)
    fail_msg("bad test argument %s: %s", spec, berr.message);
  bson_iter_t it;
  assert_true(bson_iter_init_find(&it, doc, "v"));
  zql_val_t v, out;
  zql_val_from_iter(&it, &v);
  assert_true(zql_val_copy(a, &v, &out));
  bson_destroy(doc);
  return out;
}

/* }==== */

/* {==== calling ========================================================================= */

/* Call fn with args (all constant, so prepare sees them too). Returns 0 or prepare's
 * error code (its message in err). */
static int call(zql_arena_t *plan, zql_arena_t *batch, const char *fn, const zql_val_t *args,
                int nargs, zql_val_t *out, zql_strbuf_t *err)
{
  const zql_scalar_t *f = zql_scalar_lookup(fn, nargs);
  if (!f)
    fail_msg("no scalar %s/%d", fn, nargs);
  bool isconst[MAXARGS];
  for (int i = 0; i < MAXARGS; i++)
    isconst[i] = true;
  zql_fnprep_t p = {plan, nargs, args, isconst, NULL, err};
  if (f->prepare) {
    int rc = f->prepare(&p);
    if (rc)
      return rc;
  }
  zql_fnctx_t c = {batch, 0};
  *out = zql_val_error("not set");
  f->call(&c, p.aux, args, nargs, out);
  return 0;
}

/* The result described as the table expects it: type name and JSON (or message). */
static void describe(const zql_val_t *v, zql_strbuf_t *type, zql_strbuf_t *text)
{
  zql_strbuf_reset(type);
  zql_strbuf_reset(text);
  zql_strbuf_adds(type, zql_val_type_name(v));
  if (v->t == ZQL_V_ERROR)
    zql_strbuf_adds(text, v->u.err);
  else
    zql_val_to_json(text, v);
}

/* }==== */

/* {==== the table of calls ============================================================== */

typedef struct fcase {
  const char *fn;
  const char *args[MAXARGS];
  const char *type; /* expected zql_val_type_name */
  const char *text; /* expected zql_val_to_json, or the ERROR message */
} fcase_t;

#define T(fn, type, text, ...) {fn, {__VA_ARGS__}, type, text}
#define DATE1 "{\"$date\": \"2011-07-01T04:00:00Z\"}"
#define NAN_ "{\"$numberDouble\": \"NaN\"}"

static const fcase_t cases[] = {
    /* num */
    T("num", "long", "42", "s:42"),
    T("num", "long", "-7", "s:-7"),
    T("num", "long", "3", "s:+3"),
    T("num", "long", "7", "s:007"),
    T("num", "long", "-9223372036854775808", "s:-9223372036854775808"),
    T("num", "double", "1.5", "s:1.5"),
    T("num", "double", "0.5", "s:.5"),
    T("num", "double", "5.0", "s:5."),
    T("num", "double", "1000.0", "s:1e3"),
    T("num", "double", "0.01", "s:1E-2"),
    T("num", "double", "1e+20", "s:99999999999999999999"),
    T("num", "error", "num: not a number", "s: 1"),
    T("num", "error", "num: not a number", "s:1 "),
    T("num", "error", "num: not a number", "s:"),
    T("num", "error", "num: not a number", "s:abc"),
    T("num", "error", "num: not a number", "s:0x10"),
    T("num", "error", "num: not a number", "s:nan"),
    T("num", "error", "num: not a number", "s:inf"),
    T("num", "error", "num: not a number", "s:1e"),
    T("num", "error", "num: not a number", "s:-"),
    T("num", "error", "num: not a number", "s:."),
    T("num", "error", "num: not a number", "s:1.2.3"),
    T("num", "error", "num: out of range", "s:1e999"),
    T("num", "int", "1", "1"),
    T("num", "double", "2.5", "2.5"),
    T("num", "error", "num: not a number", "true"),
    T("num", "error", "num: not a number", DATE1),
    T("num", "null", "null", "null"),
    T("num", "missing", "null", "missing"),
    T("num", "error", "boom", "error"),
    /* int */
    T("int", "long", "42", "s:42"),
    T("int", "long", "3", "s:3.9"),
    T("int", "long", "-3", "s:-3.9"),
    T("int", "long", "1000", "s:1e3"),
    T("int", "error", "int: out of range", "s:9223372036854775808"),
    T("int", "error", "int: out of range", "s:1e999"),
    T("int", "error", "int: not a number", "s:x"),
    T("int", "long", "3", "3.99"),
    T("int", "long", "-3", "-3.99"),
    T("int", "long", "-9223372036854775808", "-9.223372036854775808e18"),
    T("int", "error", "int: out of range", "9.223372036854775808e18"),
    T("int", "error", "int: out of range", NAN_),
    T("int", "error", "int: out of range", "{\"$numberDouble\": \"-Infinity\"}"),
    T("int", "long", "1", "1"),
    T("int", "long", "1309492800000", DATE1),
    T("int", "error", "int: not a number", "true"),
    T("int", "null", "null", "null"),
    T("int", "error", "boom", "error"),
    /* double */
    T("double", "double", "1.0", "1"),
    T("double", "double", "-9.223372036854776e+18", "L:-9223372036854775808"),
    T("double", "double", "2.0", "s:2"),
    T("double", "double", "0.25", "s:0.25"),
    T("double", "error", "double: out of range", "s:-1e999"),
    T("double", "error", "double: not a number", "s:x"),
    T("double", "error", "double: not a number", "true"),
    T("double", "missing", "null", "missing"),
    /* str */
    T("str", "string", "\"5\"", "L:5"),
    T("str", "string", "\"1.5\"", "1.5"),
    T("str", "string", "\"2.0\"", "2.0"),
    T("str", "string", "\"0.1\"", "0.1"),
    T("str", "string", "\"NaN\"", NAN_),
    T("str", "string", "\"true\"", "true"),
    T("str", "string", "\"2011-07-01T04:00:00.000Z\"", DATE1),
    T("str", "string", "\"{\\\"a\\\":1,\\\"b\\\":[1,\\\"x\\\"]}\"", "{\"a\": 1, \"b\": [1, \"x\"]}"),
    T("str", "string", "\"abc\"", "s:abc"),
    T("str", "null", "null", "null"),
    T("str", "missing", "null", "missing"),
    T("str", "error", "boom", "error"),
    /* type */
    T("type", "string", "\"int\"", "1"),
    T("type", "string", "\"long\"", "L:1"),
    T("type", "string", "\"double\"", "1.5"),
    T("type", "string", "\"string\"", "s:x"),
    T("type", "string", "\"object\"", "{}"),
    T("type", "string", "\"array\"", "[]"),
    T("type", "string", "\"bool\"", "true"),
    T("type", "string", "\"date\"", DATE1),
    T("type", "string", "\"null\"", "null"),
    T("type", "string", "\"missing\"", "missing"),
    T("type", "string", "\"error\"", "error"),
    /* hash: propagation (values in test_hash) */
    T("hash", "null", "null", "null"),
    T("hash", "missing", "null", "missing"),
    T("hash", "error", "boom", "error"),
    /* def */
    T("def", "bool", "false", "missing"),
    T("def", "bool", "false", "error"),
    T("def", "bool", "true", "null"),
    T("def", "bool", "true", "0"),
    /* coalesce */
    T("coalesce", "int", "5", "null", "missing", "error", "5", "6"),
    T("coalesce", "null", "null", "null"),
    T("coalesce", "null", "null", "missing", "error"),
    T("coalesce", "string", "\"a\"", "s:a"),
    /* if */
    T("if", "int", "1", "true", "1", "2"),
    T("if", "int", "2", "false", "1", "2"),
    T("if", "int", "2", "null", "1", "2"),
    T("if", "int", "2", "missing", "1", "2"),
    T("if", "int", "2", "error", "1", "2"),
    T("if", "error", "if: condition is not a boolean", "1", "1", "2"),
    T("if", "error", "boom", "true", "error", "2"),
    T("if", "missing", "null", "true", "missing", "2"),
    /* len */
    T("len", "long", "5", "s:h\xc3\xa9llo"),
    T("len", "long", "0", "s:"),
    T("len", "long", "3", "s:\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"),
    T("len", "long", "2", "s:\xff\x80" "a"), /* invalid UTF-8: lead-ish bytes count */
    T("len", "long", "3", "[1, 2, 3]"),
    T("len", "long", "0", "[]"),
    T("len", "error", "len: not a string or array", "5"),
    T("len", "error", "len: not a string or array", "{\"a\": 1}"),
    T("len", "null", "null", "null"),
    T("len", "error", "boom", "error"),
    /* lower, upper, trim */
    T("lower", "string", "\"hello \xc3\x89\"", "s:HeLLo \xc3\x89"),
    T("upper", "string", "\"STRA\xc3\x9f" "E\"", "s:stra\xc3\x9f" "e"),
    T("lower", "error", "lower: not a string", "5"),
    T("upper", "error", "upper: not a string", "true"),
    T("lower", "missing", "null", "missing"),
    T("upper", "error", "boom", "error"),
    T("trim", "string", "\"a b\"", "s:  a b \t\n"),
    T("trim", "string", "\"a b\"", "s:a b\r\n"),
    T("trim", "string", "\"\"", "s:   "),
    T("trim", "string", "\"x\"", "s:x"),
    T("trim", "error", "trim: not a string", "1"),
    T("trim", "null", "null", "null"),
    /* substr */
    T("substr", "string", "\"\xc3\xa9l\"", "s:h\xc3\xa9llo", "1", "2"),
    T("substr", "string", "\"llo\"", "s:h\xc3\xa9llo", "-3"),
    T("substr", "string", "\"\"", "s:h\xc3\xa9llo", "10"),
    T("substr", "string", "\"h\xc3\xa9\"", "s:h\xc3\xa9llo", "-10", "2"),
    T("substr", "string", "\"bc\"", "s:abc", "1.0"),
    T("substr", "string", "\"\"", "s:abc", "1", "0"),
    T("substr", "string", "\"bc\"", "s:abc", "1", "100"),
    T("substr", "string", "\"abc\"", "s:abc", "L:-9223372036854775808"),
    T("substr", "string", "\"abc\"", "s:abc", "0", "L:9223372036854775807"),
    T("substr", "string", "\"\xe6\x9c\xac\"", "s:\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "1", "1"),
    T("substr", "error", "substr: negative length", "s:abc", "0", "-1"),
    T("substr", "error", "substr: start is not an integer", "s:abc", "1.5"),
    T("substr", "error", "substr: start is not an integer", "s:abc", "s:1"),
    T("substr", "error", "substr: length is not an integer", "s:abc", "0", "true"),
    T("substr", "error", "substr: not a string", "5", "1"),
    T("substr", "null", "null", "null", "1"),
    T("substr", "missing", "null", "s:abc", "missing"),
    T("substr", "error", "boom", "s:abc", "0", "error"),
    /* concat */
    T("concat", "string", "\"abc\"", "s:a", "s:b", "s:c"),
    T("concat", "string", "\"a\"", "s:a"),
    T("concat", "string", "\"\"", "s:", "s:"),
    T("concat", "null", "null", "s:a", "null"),
    T("concat", "missing", "null", "s:a", "missing"),
    T("concat", "error", "concat: not a string", "s:a", "1"),
    T("concat", "error", "boom", "s:a", "error"),
    T("concat", "error", "boom", "null", "error"),
    /* contains */
    T("contains", "bool", "true", "s:hello", "s:ell"),
    T("contains", "bool", "true", "s:hello", "s:"),
    T("contains", "bool", "false", "s:hello", "s:xyz"),
    T("contains", "bool", "false", "s:he", "s:hello"),
    T("contains", "error", "contains: not a string", "s:hello", "1"),
    T("contains", "bool", "true", "[1, 2, 3]", "2.0"),
    T("contains", "bool", "true", "[1, \"a\"]", "s:a"),
    T("contains", "bool", "false", "[1, 2]", "3"),
    T("contains", "bool", "false", "[1, 2]", "s:1"),
    T("contains", "bool", "true", "[[1, 2]]", "[1, 2]"),
    T("contains", "bool", "false", "[null]", "1"),
    T("contains", "bool", "false", "[]", "1"),
    T("contains", "error", "contains: not a string or array", "5", "1"),
    T("contains", "error", "contains: not a string or array", "{\"a\": 1}", "s:a"),
    T("contains", "null", "null", "null", "1"),
    T("contains", "null", "null", "[1]", "null"),
    T("contains", "error", "boom", "[1]", "error"),
    /* starts_with, ends_with */
    T("starts_with", "bool", "true", "s:hello", "s:he"),
    T("starts_with", "bool", "false", "s:hello", "s:lo"),
    T("starts_with", "bool", "false", "s:he", "s:hello"),
    T("starts_with", "bool", "true", "s:x", "s:"),
    T("ends_with", "bool", "true", "s:hello", "s:lo"),
    T("ends_with", "bool", "false", "s:hello", "s:he"),
    T("ends_with", "bool", "false", "s:lo", "s:hello"),
    T("starts_with", "error", "starts_with: not a string", "1", "s:1"),
    T("ends_with", "error", "ends_with: not a string", "s:1", "1"),
    T("ends_with", "missing", "null", "missing", "s:1"),
    /* split */
    T("split", "array", "[\"a\",\"b\",\"\",\"c\"]", "s:a,b,,c", "s:,"),
    T("split", "array", "[\"\"]", "s:", "s:,"),
    T("split", "array", "[\"abc\"]", "s:abc", "s:,"),
    T("split", "array", "[\"\",\"\"]", "s:,", "s:,"),
    T("split", "array", "[\"a\",\"b\"]", "s:a::b", "s:::"),
    T("split", "array", "[\"\",\"a\"]", "s:aaa", "s:aa"),
    T("split", "array", "[\"h\xc3\xa9\",\"llo\"]", "s:h\xc3\xa9|llo", "s:|"),
    T("split", "error", "split: empty separator", "s:a", "s:"),
    T("split", "error", "split: not a string", "1", "s:,"),
    T("split", "null", "null", "s:a", "null"),
    /* replace */
    T("replace", "string", "\"a+b+c\"", "s:a-b-c", "s:-", "s:+"),
    T("replace", "string", "\"ba\"", "s:aaa", "s:aa", "s:b"),
    T("replace", "string", "\"abc\"", "s:abc", "s:x", "s:y"),
    T("replace", "string", "\"ac\"", "s:abc", "s:b", "s:"),
    T("replace", "string", "\"xyz\"", "s:a", "s:a", "s:xyz"),
    T("replace", "string", "\"hello\"", "s:h\xc3\xa9llo", "s:\xc3\xa9", "s:e"),
    T("replace", "error", "replace: empty search string", "s:abc", "s:", "s:x"),
    T("replace", "error", "replace: not a string", "s:abc", "s:b", "1"),
    T("replace", "missing", "null", "s:abc", "missing", "s:x"),
    /* keys */
    T("keys", "array", "[\"b\",\"a\"]", "{\"b\": 1, \"a\": {\"c\": 2}}"),
    T("keys", "array", "[]", "{}"),
    T("keys", "error", "keys: not a document", "[1]"),
    T("keys", "error", "keys: not a document", "s:a"),
    T("keys", "null", "null", "null"),
    /* abs */
    T("abs", "int", "5", "-5"),
    T("abs", "long", "5", "L:-5"),
    T("abs", "long", "2147483648", "-2147483648"),
    T("abs", "long", "9223372036854775807", "L:-9223372036854775807"),
    T("abs", "double", "9.223372036854776e+18", "L:-9223372036854775808"),
    T("abs", "double", "1.5", "-1.5"),
    T("abs", "double", "0.0", "-0.0"),
    T("abs", "error", "abs: not a number", "s:1"),
    T("abs", "null", "null", "null"),
    T("abs", "error", "boom", "error"),
    /* round */
    T("round", "double", "3.0", "2.5"),
    T("round", "double", "-3.0", "-2.5"),
    T("round", "double", "0.0", "-0.4"),
    T("round", "double", "0.0", "0.49999999999999994"),
    T("round", "double", "2.68", "2.675", "2"),
    T("round", "double", "1.01", "1.005", "2"),
    T("round", "double", "-1.01", "-1.005", "2"),
    T("round", "double", "10.0", "9.995", "2"),
    T("round", "double", "1.2", "1.2", "5"),
    T("round", "double", "1200.0", "1234.5678", "-2"),
    T("round", "double", "100.0", "99.5", "-2"),
    T("round", "double", "0.0", "40.0", "-2"),
    T("round", "double", "0.0", "1234.5", "-400"),
    T("round", "double", "1e+300", "1e300", "2"),
    T("round", "double", "1e+300", "1e300", "L:9223372036854775807"),
    T("round", "double", "0.0", "1e300", "L:-9223372036854775808"),
    T("round", "error", "round: out of range", "1.7976931348623157e308", "-308"),
    T("round", "int", "7", "7"),
    T("round", "long", "1234", "L:1234", "2"),
    T("round", "long", "1200", "L:1234", "-2"),
    T("round", "long", "1300", "L:1250", "-2"),
    T("round", "long", "-1300", "L:-1250", "-2"),
    T("round", "long", "-1200", "L:-1249", "-2"),
    T("round", "long", "9223372036854775800", "L:9223372036854775804", "-1"),
    T("round", "double", "9.223372036854776e+18", "L:9223372036854775807", "-1"),
    T("round", "double", "-9.223372036854776e+18", "L:-9223372036854775808", "-1"),
    T("round", "double", "1e+19", "L:5000000000000000000", "-19"),
    T("round", "double", "-1e+19", "L:-5000000000000000000", "-19"),
    T("round", "long", "0", "L:4999999999999999999", "-19"),
    T("round", "long", "0", "L:9223372036854775807", "-20"),
    T("round", "long", "0", "L:9223372036854775807", "L:-9223372036854775808"),
    T("round", "double", "null", NAN_, "2"), /* NaN: JSON null */
    T("round", "error", "round: digits is not an integer", "2.5", "1.5"),
    T("round", "error", "round: not a number", "s:2.5"),
    T("round", "null", "null", "2.5", "null"),
    T("round", "error", "boom", "error", "1"),
    /* floor, ceil */
    T("floor", "double", "1.0", "1.5"),
    T("floor", "double", "-2.0", "-1.5"),
    T("floor", "int", "5", "5"),
    T("floor", "long", "5", "L:5"),
    T("floor", "error", "floor: not a number", "s:1"),
    T("ceil", "double", "2.0", "1.2"),
    T("ceil", "double", "0.0", "-0.5"),
    T("ceil", "long", "-5", "L:-5"),
    T("ceil", "error", "ceil: not a number", "true"),
    T("ceil", "missing", "null", "missing"),
    /* sqrt, ln, log10, exp, pow */
    T("sqrt", "double", "2.0", "4"),
    T("sqrt", "double", "1.5", "2.25"),
    T("sqrt", "double", "0.0", "0"),
    T("sqrt", "error", "sqrt: negative argument", "-1"),
    T("sqrt", "error", "sqrt: not a number", "s:4"),
    T("sqrt", "null", "null", "null"),
    T("ln", "double", "0.0", "1"),
    T("ln", "error", "ln: argument not positive", "0"),
    T("ln", "error", "ln: argument not positive", "-1.5"),
    T("log10", "double", "3.0", "1000"),
    T("log10", "error", "log10: argument not positive", "0"),
    T("log10", "error", "log10: not a number", "s:10"),
    T("exp", "double", "1.0", "0"),
    T("exp", "double", "null", "1000"), /* infinity: JSON null */
    T("exp", "error", "boom", "error"),
    T("pow", "double", "1024.0", "2", "10"),
    T("pow", "double", "0.5", "2", "-1"),
    T("pow", "double", "2.0", "4", "0.5"),
    T("pow", "double", "1.0", "0", "0"),
    T("pow", "error", "pow: domain error", "-8", "0.3333333333333333"),
    T("pow", "error", "pow: division by zero", "0", "-1"),
    T("pow", "error", "pow: not a number", "s:2", "2"),
    T("pow", "null", "null", "2", "null"),
    /* min, max (scalars) */
    T("min", "int", "1", "3", "1", "2"),
    T("min", "int", "1", "1", "1.0"),
    T("min", "double", "1.0", "1.0", "1"),
    T("min", "int", "2", "null", "2", "missing"),
    T("min", "null", "null", "null", "missing"),
    T("min", "int", "1", "1", "s:a"),
    T("max", "string", "\"a\"", "1", "s:a"),
    T("max", "date", "\"2011-07-01T04:00:00.000Z\"", DATE1, "5"),
    T("max", "bool", "true", "true", "5"),
    T("max", "int", "2", "1.5", "2"),
    T("max", "error", "boom", "1", "error"),
    T("min", "error", "boom", "null", "error"),
};

static void test_table(void **state)
{
  zql_arena_t *plan = zql_arena_create(NULL), *batch = zql_arena_create(NULL);
  assert_non_null(plan);
  assert_non_null(batch);
  zql_strbuf_t type = ZQL_STRBUF_INIT, text = ZQL_STRBUF_INIT, err = ZQL_STRBUF_INIT;
  int failures = 0;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(cases); i++) {
    const fcase_t *k = &cases[i];
    zql_val_t args[MAXARGS], out;
    int n = 0;
    while (n < MAXARGS && k->args[n]) {
      args[n] = arg(batch, k->args[n]);
      n++;
    }
    zql_strbuf_reset(&err);
    int rc = call(plan, batch, k->fn, args, n, &out, &err);
    if (rc)
      fail_msg("case %zu %s: prepare failed: %s", i, k->fn, err.buf);
    describe(&out, &type, &text);
    if (strcmp(type.buf, k->type) != 0 || strcmp(text.buf, k->text) != 0) {
      print_error("case %zu: %s(%s%s%s...) = %s %s, expected %s %s\n", i, k->fn, k->args[0],
                  n > 1 ? ", " : "", n > 1 ? k->args[1] : "", type.buf, text.buf, k->type,
                  k->text);
      failures++;
    }
    /* a result string is NUL-terminated at its length, as every STRING value must be */
    if (out.t == ZQL_V_STRING)
      assert_int_equal(out.u.s[out.len], '\0');
    zql_arena_reset(batch);
  }
  zql_strbuf_release(&type);
  zql_strbuf_release(&text);
  zql_strbuf_release(&err);
  zql_arena_delete(plan);
  zql_arena_delete(batch);
  assert_int_equal(failures, 0);
}

/* }==== */

/* {==== the core table against parser/funclist.h ======================================== */

typedef struct listed {
  const char *name;
  int kind, min, max;
} listed_t;

static const listed_t listed[] = {
#define ZQL_FUNC(name, kind, min, max, args, result, flags, synopsis, doc) \
  {name, kind, min, max},
#include "parser/funclist.h"
#undef ZQL_FUNC
};

/* Scalars implemented elsewhere (exec/func_time.c, the planner). */
static bool not_core(const char *name)
{
  static const char *const others[] = {"date",  "now",         "epoch_ms", "epoch_s", "trunc",
                                       "format_time", "year",  "month",    "day",     "hour",
                                       "minute", "dow",        "session",  "hll_downgrade"};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(others); i++)
    if (strcmp(others[i], name) == 0)
      return true;
  return false;
}

static void test_matches_funclist(void **state)
{
  size_t want = 0, have = 0;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(listed); i++) {
    const listed_t *l = &listed[i];
    if (l->kind != ZQL_FN_SCALAR || not_core(l->name))
      continue;
    want++;
    const zql_scalar_t *f = NULL;
    for (const zql_scalar_t *t = zql_scalars_core; t->name; t++)
      if (strcmp(t->name, l->name) == 0 && t->min_args == l->min)
        f = t;
    if (!f)
      fail_msg("%s/%d of funclist.h is not in zql_scalars_core", l->name, l->min);
    assert_int_equal(f->max_args, l->max);
    assert_non_null(f->call);
    assert_true(f->foldable);
    assert_ptr_equal(zql_scalar_lookup(l->name, l->min), f);
  }
  for (const zql_scalar_t *t = zql_scalars_core; t->name; t++) {
    have++;
    assert_false(not_core(t->name));
  }
  assert_int_equal(have, want);
}

static void test_lookup(void **state)
{
  assert_null(zql_scalar_lookup("min", 1)); /* min(e) is the aggregator */
  assert_non_null(zql_scalar_lookup("min", 2));
  assert_non_null(zql_scalar_lookup("max", 7));
  assert_non_null(zql_scalar_lookup("coalesce", 40));
  assert_null(zql_scalar_lookup("coalesce", 0));
  assert_null(zql_scalar_lookup("substr", 1));
  assert_null(zql_scalar_lookup("substr", 4));
  assert_null(zql_scalar_lookup("no_such_function", 1));
  assert_null(zql_scalar_lookup(NULL, 1));
  assert_null(zql_scalar_lookup("count", 1)); /* aggregators are not scalars */
  /* the time table is searched too */
  const zql_scalar_t *now = zql_scalar_lookup("now", 0);
  assert_non_null(now);
  bool in_time = false;
  for (const zql_scalar_t *t = zql_scalars_time; t->name; t++)
    in_time |= t == now;
  assert_true(in_time);
}

/* }==== */

/* {==== hash ============================================================================ */

static int64_t hash_of(zql_arena_t *a, const char *spec)
{
  zql_val_t v = arg(a, spec), out;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(call(a, a, "hash", &v, 1, &out, &err), 0);
  assert_int_equal(out.t, ZQL_V_INT);
  uint64_t h = zql_val_hash(&v);
  assert_memory_equal(&h, &out.u.i, sizeof h);
  return out.u.i;
}

static void test_hash(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  int64_t h = hash_of(a, "1");
  assert_true(h == hash_of(a, "1.0"));
  assert_true(h == hash_of(a, "L:1"));
  assert_true(h != hash_of(a, "2"));
  assert_true(h != hash_of(a, "s:1"));
  assert_true(hash_of(a, "s:abc") == hash_of(a, "s:abc"));
  assert_true(hash_of(a, "[1, \"a\"]") == hash_of(a, "[1.0, \"a\"]"));
  zql_arena_delete(a);
}

/* }==== */

/* {==== regular expressions ============================================================= */

/* A REGEX constant: len bytes "pattern\0flags\0" in arena a. */
static zql_val_t regex_val(zql_arena_t *a, const char *pat, const char *flags)
{
  size_t pl = strlen(pat), fl = strlen(flags);
  uint8_t *p = zql_arena_alloc(a, pl + fl + 2);
  assert_non_null(p);
  memcpy(p, pat, pl + 1);
  memcpy(p + pl + 1, flags, fl + 1);
  zql_val_t v = {ZQL_V_REGEX, 0, 0, (uint32_t)(pl + fl + 2), {0}};
  v.u.p = p;
  return v;
}

/* regex_match(s, /pat/flags) as a bool (-1 for NULL, -2 for ERROR). */
static int rmatch(zql_arena_t *a, const char *s, size_t slen, const char *pat,
                  const char *flags)
{
  zql_val_t args[2] = {zql_val_str(s, (uint32_t)slen), regex_val(a, pat, flags)}, out;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = call(a, a, "regex_match", args, 2, &out, &err);
  if (rc)
    fail_msg("/%s/%s: %s", pat, flags, err.buf);
  zql_strbuf_release(&err);
  if (out.t == ZQL_V_BOOL)
    return out.u.b;
  return out.t == ZQL_V_NULL ? -1 : -2;
}

static void test_regex_match(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  assert_int_equal(rmatch(a, "GET /api/v1", 11, "^GET /api/v[0-9]+$", ""), 1);
  assert_int_equal(rmatch(a, "GET /api/v1", 11, "^/api", ""), 0);
  assert_int_equal(rmatch(a, "Bot", 3, "bot", ""), 0);
  assert_int_equal(rmatch(a, "Bot", 3, "bot", "i"), 1);
  /* m: ^ and $ at newlines, . not across them */
  assert_int_equal(rmatch(a, "a\nb", 3, "^b$", ""), 0);
  assert_int_equal(rmatch(a, "a\nb", 3, "^b$", "m"), 1);
  assert_int_equal(rmatch(a, "a\nb", 3, "a.b", ""), 1);
  assert_int_equal(rmatch(a, "a\nb", 3, "a.b", "s"), 1);
  assert_int_equal(rmatch(a, "a\nb", 3, "a.b", "m"), 0);
  /* x: whitespace and comments dropped outside brackets, kept inside and escaped */
  assert_int_equal(rmatch(a, "ab", 2, "a b  # a comment", "x"), 1);
  assert_int_equal(rmatch(a, "a b", 3, "a[ ]b", "x"), 1);
  assert_int_equal(rmatch(a, "a b", 3, "a\\ b", "x"), 1);
  assert_int_equal(rmatch(a, "a]b", 3, "a[]] b", "x"), 1);
  assert_int_equal(rmatch(a, "a b", 3, "a b", "x"), 0);
  /* subjects are matched by length: a NUL byte is part of the string */
  assert_int_equal(rmatch(a, "a\0b", 3, "b$", ""), 1);
  assert_int_equal(rmatch(a, "a\0b", 3, "^a$", ""), 0);
  assert_int_equal(rmatch(a, "abc", 3, "", ""), 1);

  /* the same through zql_regex_prepare / zql_regex_match_val (the =~ operator) */
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  const regex_t *re = NULL;
  zql_val_t pat = zql_val_str("^[a-z]+$", 8);
  assert_int_equal(zql_regex_prepare(a, &pat, &re, &err), 0);
  zql_val_t s = zql_val_str("abc", 3), v;
  v = zql_regex_match_val(re, &s);
  assert_true(v.t == ZQL_V_BOOL && v.u.b);
  s = zql_val_str("ab1", 3);
  v = zql_regex_match_val(re, &s);
  assert_true(v.t == ZQL_V_BOOL && !v.u.b);
  s = zql_val_int(5); /* another type class: no match, like == */
  v = zql_regex_match_val(re, &s);
  assert_true(v.t == ZQL_V_BOOL && !v.u.b);
  s = zql_val_null();
  assert_int_equal(zql_regex_match_val(re, &s).t, ZQL_V_NULL);
  s = zql_val_missing();
  assert_int_equal(zql_regex_match_val(re, &s).t, ZQL_V_NULL);
  s = zql_val_error("boom");
  v = zql_regex_match_val(re, &s);
  assert_int_equal(v.t, ZQL_V_ERROR);
  assert_string_equal(v.u.err, "boom");
  zql_strbuf_release(&err);
  zql_arena_delete(a); /* runs regfree for every compiled regex: ASan sees no leak */
}

/* prepare of regex_match with constant r: the error code and a piece of the message. */
static void expect_prepare_error(const char *fn, zql_val_t *args, int nargs, int code,
                                 const char *msg)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  const zql_scalar_t *f = zql_scalar_lookup(fn, nargs);
  assert_non_null(f);
  assert_non_null(f->prepare);
  bool isconst[3] = {false, true, true};
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_fnprep_t p = {a, nargs, args, isconst, NULL, &err};
  assert_int_equal(f->prepare(&p), code);
  if (!strstr(err.buf, msg))
    fail_msg("%s: '%s' does not say '%s'", fn, err.buf, msg);
  zql_strbuf_release(&err);
  zql_arena_delete(a);
}

static void test_regex_errors(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_val_t args[3] = {zql_val_str("x", 1), zql_val_null(), zql_val_int(0)};

  args[1] = regex_val(a, "(", "");
  expect_prepare_error("regex_match", args, 2, ZQL_E_BAD_REGEX, "invalid regular expression");
  args[1] = regex_val(a, "a++", "");
  expect_prepare_error("regex_match", args, 2, ZQL_E_BAD_REGEX, "invalid regular expression");
  args[1] = regex_val(a, "a", "g");
  expect_prepare_error("regex_match", args, 2, ZQL_E_BAD_REGEX, "unknown regex flag 'g'");
  args[1] = zql_val_str("a\0b", 3);
  expect_prepare_error("regex_match", args, 2, ZQL_E_BAD_REGEX, "NUL byte");
  args[1] = zql_val_int(5);
  expect_prepare_error("regex_match", args, 2, ZQL_E_ARG_KIND, "not long");
  zql_val_t bad = {ZQL_V_REGEX, 0, 0, 3, {0}}; /* no NUL after the flags */
  bad.u.p = (const uint8_t *)"a\0b";
  args[1] = bad;
  expect_prepare_error("regex_match", args, 2, ZQL_E_BAD_REGEX, "malformed");
  args[1] = regex_val(a, "(a)(b)", "");
  args[2] = zql_val_int(3);
  expect_prepare_error("regex_extract", args, 3, ZQL_E_ARG_RANGE, "the regex has 2 groups");
  args[2] = zql_val_str("1", 1);
  expect_prepare_error("regex_extract", args, 3, ZQL_E_ARG_KIND, "must be an integer");

  /* a regex that is not a constant */
  const zql_scalar_t *f = zql_scalar_lookup("regex_match", 2);
  bool isconst[2] = {false, false};
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_fnprep_t p = {a, 2, args, isconst, NULL, &err};
  assert_int_equal(f->prepare(&p), ZQL_E_NOT_CONSTANT);
  assert_non_null(strstr(err.buf, "must be a constant"));

  /* zql_regex_prepare reports the same way */
  const regex_t *re = NULL;
  zql_strbuf_reset(&err);
  zql_val_t paren = zql_val_str("a)(", 3);
  assert_int_equal(zql_regex_prepare(a, &paren, &re, &err), ZQL_E_BAD_REGEX);
  assert_true(err.len > 0 && err.buf[0] >= 'a' && err.buf[0] <= 'z'); /* lowercase */
  zql_strbuf_release(&err);
  zql_arena_delete(a);
}

static void test_regex_extract(void **state)
{
  zql_arena_t *a = zql_arena_create(NULL);
  assert_non_null(a);
  zql_strbuf_t err = ZQL_STRBUF_INIT, type = ZQL_STRBUF_INIT, text = ZQL_STRBUF_INIT;
  static const struct {
    const char *s, *pat, *flags;
    int group; /* -1: no group argument */
    const char *want; /* JSON of the result */
  } ex[] = {
      {"user=ann id=42", "id=([0-9]+)", "", 1, "\"42\""},
      {"user=ann id=42", "id=([0-9]+)", "", 0, "\"id=42\""},
      {"user=ann id=42", "id=([0-9]+)", "", -1, "\"id=42\""},
      {"user=ann id=42", "user=([a-z]+)", "", 1, "\"ann\""},
      {"user=ann", "id=([0-9]+)", "", 1, "null"},    /* no match */
      {"ab", "a(x)?b", "", 1, "null"},               /* the group did not take part */
      {"ab", "a(x)?b", "", 0, "\"ab\""},
      {"ABC", "b(c)", "i", 1, "\"C\""},
      /* the C locale: . is one byte, so a 2-byte character needs .. */
      {"h\xc3\xa9llo", "h(.)l", "", 1, "null"},
      {"h\xc3\xa9llo", "h(..)l", "", 1, "\"\xc3\xa9\""},
      {"aaaaaaaaaaaaaaaaaaaaX",
       "(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(X)", "", 21, "\"X\""},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(ex); i++) {
    zql_val_t args[3] = {zql_val_str(ex[i].s, (uint32_t)strlen(ex[i].s)),
                         regex_val(a, ex[i].pat, ex[i].flags), zql_val_int(ex[i].group)},
              out;
    int n = ex[i].group < 0 ? 2 : 3;
    if (call(a, a, "regex_extract", args, n, &out, &err) != 0)
      fail_msg("%s: %s", ex[i].pat, err.buf);
    describe(&out, &type, &text);
    if (strcmp(text.buf, ex[i].want) != 0)
      fail_msg("regex_extract(%s, /%s/, %d) = %s, expected %s", ex[i].s, ex[i].pat,
               ex[i].group, text.buf, ex[i].want);
  }
  /* NULL, MISSING, ERROR and other types as subject; a group that is not a constant */
  zql_val_t args[3] = {zql_val_null(), regex_val(a, "(a)", ""), zql_val_int(1)}, out;
  assert_int_equal(call(a, a, "regex_extract", args, 3, &out, &err), 0);
  assert_int_equal(out.t, ZQL_V_NULL);
  args[0] = zql_val_int(1);
  assert_int_equal(call(a, a, "regex_extract", args, 3, &out, &err), 0);
  assert_int_equal(out.t, ZQL_V_NULL);
  args[0] = zql_val_error("boom");
  assert_int_equal(call(a, a, "regex_extract", args, 3, &out, &err), 0);
  assert_int_equal(out.t, ZQL_V_ERROR);
  const zql_scalar_t *f = zql_scalar_lookup("regex_extract", 3);
  bool isconst[3] = {false, true, false};
  zql_fnprep_t p = {a, 3, args, isconst, NULL, &err};
  assert_int_equal(f->prepare(&p), 0);
  zql_fnctx_t c = {a, 0};
  args[0] = zql_val_str("xa", 2);
  args[2] = zql_val_int(2);
  f->call(&c, p.aux, args, 3, &out);
  assert_int_equal(out.t, ZQL_V_ERROR);
  assert_string_equal(out.u.err, "regex_extract: no such group");
  args[2] = zql_val_str("1", 1);
  f->call(&c, p.aux, args, 3, &out);
  assert_string_equal(out.u.err, "regex_extract: group is not an integer");
  args[2] = zql_val_int(1);
  f->call(&c, p.aux, args, 3, &out);
  assert_int_equal(out.t, ZQL_V_STRING);
  assert_string_equal(out.u.s, "a");
  zql_strbuf_release(&err);
  zql_strbuf_release(&type);
  zql_strbuf_release(&text);
  zql_arena_delete(a);
}

/* }==== */

/* {==== any input ======================================================================= */

/* Every core function with every combination of up to 3 arguments drawn from values of
 * every type (and the awkward ones: INT64_MIN, NaN, -0.0, invalid UTF-8): the result is
 * a well-formed value, an ERROR has a lowercase message, a string is NUL-terminated, and
 * nothing crashes or trips the sanitizers. */
static void check_result(const char *fn, const zql_val_t *out)
{
  if (out->t >= ZQL_V__COUNT)
    fail_msg("%s: bad result type %d", fn, out->t);
  if (out->t == ZQL_V_ERROR) {
    if (!out->u.err || !(out->u.err[0] >= 'a' && out->u.err[0] <= 'z'))
      fail_msg("%s: bad error message", fn);
    if (strcmp(out->u.err, "boom") != 0 && strcmp(out->u.err, "out of memory") != 0 &&
        strncmp(out->u.err, fn, strlen(fn)) != 0)
      fail_msg("%s: message '%s' does not name the function", fn, out->u.err);
  }
  if (out->t == ZQL_V_STRING && out->u.s[out->len] != '\0')
    fail_msg("%s: string result without its NUL", fn);
  if (out->t == ZQL_V_ARRAY || out->t == ZQL_V_DOC) {
    bson_t b;
    assert_true(bson_init_static(&b, out->u.p, out->len));
    assert_true(bson_validate(&b, BSON_VALIDATE_NONE, NULL));
  }
}

static void test_any_input(void **state)
{
  zql_arena_t *plan = zql_arena_create(NULL), *batch = zql_arena_create(NULL),
              *vals = zql_arena_create(NULL);
  assert_non_null(plan);
  assert_non_null(batch);
  assert_non_null(vals);
  static const char *const specs[] = {
      "missing", "error", "null", "true", "0", "-1", "L:-9223372036854775808",
      "L:9223372036854775807", "0.5", "-0.0", NAN_, "{\"$numberDouble\": \"Infinity\"}",
      "1e300", "s:", "s:abc", "s:h\xc3\xa9", "s:\xff\x80", "s:a,b", DATE1, "{\"a\": 1}",
      "[1, \"x\"]", "[]", "{}", "{\"$oid\": \"0123456789abcdef01234567\"}",
      "{\"$binary\": {\"base64\": \"AQID\", \"subType\": \"00\"}}",
      "{\"$timestamp\": {\"t\": 5, \"i\": 1}}",
      "{\"$regularExpression\": {\"pattern\": \"a\", \"options\": \"\"}}",
      "{\"$minKey\": 1}", "{\"$maxKey\": 1}",
  };
  enum { NV = (int)ZQL_ARRAY_LEN(specs) };
  zql_val_t v[NV];
  for (int i = 0; i < NV; i++)
    v[i] = arg(vals, specs[i]);
  zql_val_t re = regex_val(vals, "(b)?(c)", "i");
  bool isconst[3] = {false, true, true};
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  size_t ncalls = 0;
  for (const zql_scalar_t *f = zql_scalars_core; f->name; f++) {
    int maxn = f->max_args < 0 || f->max_args > 3 ? 3 : f->max_args;
    for (int n = f->min_args; n <= maxn; n++) {
      void *aux = NULL;
      bool rx = f->prepare != NULL;
      if (rx) { /* the regex is constant: prepare once, vary the other arguments */
        zql_val_t cargs[3] = {zql_val_null(), re, zql_val_int(1)};
        zql_fnprep_t p = {plan, n, cargs, isconst, NULL, &err};
        assert_int_equal(f->prepare(&p), 0);
        aux = p.aux;
      }
      long total = 1;
      for (int k = 0; k < n; k++)
        total *= NV;
      for (long combo = 0; combo < total; combo++) {
        zql_val_t args[3];
        long c = combo;
        for (int k = 0; k < n; k++, c /= NV)
          args[k] = v[c % NV];
        if (rx)
          args[1] = re;
        zql_fnctx_t ctx = {batch, 0};
        zql_val_t out = zql_val_error("not set");
        f->call(&ctx, aux, args, n, &out);
        check_result(f->name, &out);
        ncalls++;
        zql_arena_reset(batch);
      }
    }
  }
  assert_true(ncalls > 100000);
  zql_strbuf_release(&err);
  zql_arena_delete(plan);
  zql_arena_delete(batch);
  zql_arena_delete(vals);
}

/* }==== */

/* {==== out of memory =================================================================== */

/* Functions that allocate give ERROR "out of memory" when the batch arena cannot grow,
 * and prepare gives ZQL_E_NOMEM: try every allocation point until the call succeeds. */
static void test_oom(void **state)
{
  static char big[20000];
  memset(big, 'a', sizeof big - 1);
  big[5000] = ',';
  zql_val_t s = zql_val_str(big, sizeof big - 1);
  zql_val_t comma = zql_val_str(",", 1), one = zql_val_int(1), ten = zql_val_int(10);
  struct {
    const char *fn;
    zql_val_t args[3];
    int nargs;
  } calls[] = {
      {"upper", {s}, 1},          {"str", {one}, 1},          {"split", {s, comma}, 2},
      {"concat", {s, s}, 2},      {"substr", {s, one, ten}, 3}, {"replace", {s, comma, s}, 3},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(calls); i++) {
    bool ok = false;
    for (long n = 0; !ok && n < 50; n++) {
      zql_arena_t *a = zql_arena_create(NULL);
      assert_non_null(a);
      zql_strbuf_t err = ZQL_STRBUF_INIT;
      zql_val_t out;
      zql_alloc_fail_after(n);
      assert_int_equal(call(a, a, calls[i].fn, calls[i].args, calls[i].nargs, &out, &err), 0);
      zql_alloc_fail_after(-1);
      if (out.t == ZQL_V_ERROR)
        assert_string_equal(out.u.err, "out of memory");
      else
        ok = true;
      zql_arena_delete(a);
    }
    if (!ok)
      fail_msg("%s never succeeded", calls[i].fn);
  }
  /* regex prepare */
  bool ok = false;
  for (long n = 0; !ok && n < 50; n++) {
    zql_arena_t *a = zql_arena_create(NULL);
    assert_non_null(a);
    zql_val_t args[2] = {zql_val_str("x", 1), zql_val_null()};
    args[1] = regex_val(a, "a b (c)", "xi");
    const zql_scalar_t *f = zql_scalar_lookup("regex_extract", 2);
    bool isconst[2] = {false, true};
    zql_strbuf_t err = ZQL_STRBUF_INIT;
    zql_fnprep_t p = {a, 2, args, isconst, NULL, &err};
    zql_alloc_fail_after(n);
    int rc = f->prepare(&p);
    zql_alloc_fail_after(-1);
    if (rc)
      assert_int_equal(rc, ZQL_E_NOMEM);
    ok = rc == 0;
    zql_strbuf_release(&err);
    zql_arena_delete(a);
  }
  assert_true(ok);
}

/* }==== */

int zql_unit_func(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),       cmocka_unit_test(test_matches_funclist),
      cmocka_unit_test(test_lookup),      cmocka_unit_test(test_hash),
      cmocka_unit_test(test_regex_match), cmocka_unit_test(test_regex_errors),
      cmocka_unit_test(test_regex_extract), cmocka_unit_test(test_any_input),
      ZQL_UNIT_TEST(test_oom),
  };
  return cmocka_run_group_tests_name("func", tests, NULL, NULL);
}
