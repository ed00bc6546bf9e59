/*
 * funclist.h -- THE list of ZQL built-in aggregators and scalar functions (stage 2b).
 *
 * An X-macro list (PostgreSQL kwlist.h, jq opcode_list.h): define ZQL_FUNC, include this
 * file, undefine ZQL_FUNC. There is deliberately no include guard. One line per entry:
 *
 *   ZQL_FUNC(name, kind, min, max, args, result, flags, synopsis, doc)
 *
 *   name      the name as written in a call (a string: "if" is a C keyword)
 *   kind      ZQL_FN_AGGREGATE or ZQL_FN_SCALAR
 *   min, max  the number of positional arguments; max -1 = variadic
 *   args      one kind letter per positional argument, a trailing '*' repeats the last
 *             letter (letters in parser/registry.h). Invariant (tests/unit/test_registry.c):
 *             a fixed-arity entry has exactly `max` letters, a variadic one `min` letters
 *             and then '*'.
 *   result    the zql_type_t of the value (ZQL_T_ANY when it follows the arguments)
 *   flags     ZQL_FN_* bits of parser/registry.h, or 0
 *   synopsis  how docs/functions.md and `zql --list-functions` show the call
 *   doc       one sentence, lowercase, no trailing period (error-message style)
 *
 * Rules the analyzer (parser/analyze.c) applies on top of the list:
 *
 * - Overloads. A name may appear several times with disjoint arities; zql_func_lookup()
 *   picks by argument count. min and max are aggregators with one argument and scalars
 *   (least/greatest) with two or more, so `max(x)` aggregates and `max(a, b)` does not.
 *
 * - Clauses. `by`, `weight` and `gap` are not positional arguments: a call may carry one
 *   only when the entry has ZQL_FN_BY / ZQL_FN_WEIGHT / ZQL_FN_GAP (else E3004).
 *   first/last: `by` is optional and defaults to `timestamp`. maximum/minimum: `weight`
 *   is required (what they rank by); topk: optional (counts are weights, default 1).
 *   session: `gap` is required. distinct_count alone takes `limit N [else hll]` after
 *   the call (ZQL_FN_LIMIT).
 *
 * - Table reducers. In `table T[...] of TYPE: NAME(args);` the value argument is
 *   implicit: it is the value of each `emit T[...] <- v [weight w]`. The analyzer checks a
 *   table reducer call as if the emitted value were prepended as argument 0: the arity is
 *   nargs + 1 and written argument i has kind zql_func_arg_kind(f, i + 1). So `sum()`,
 *   `count()`, `maximum(5)` (weight from the emit), `topk(10)`, `quantile(0.95)`,
 *   `hll(12)`, `collect(100)`. Only entries flagged ZQL_FN_TABLE may be used there.
 *   count() as a table reducer is therefore count(e): it counts non-null emitted values.
 *
 * - State arguments. merge's 't' argument is a STATE-typed expression: a computed column
 *   of a `from agg` source, or hll_downgrade(col, p) over one (which returns a state).
 *
 * - Names. One name per function: `len` covers strings and arrays (there is no `size`
 *   alias), `contains` covers substrings and array membership. bucket(...) is syntax
 *   (ZQL_N_BUCKET), not a registry entry. Aggregators are listed first, then scalars.
 */
#ifndef ZQL_FUNC
#error "define ZQL_FUNC(name, kind, min, max, args, result, flags, synopsis, doc) first"
#endif

/* {==== aggregators ===================================================================== */

ZQL_FUNC("count", ZQL_FN_AGGREGATE, 0, 1, "e", ZQL_T_INT, ZQL_FN_TABLE,
         "count([e])",
         "number of rows, or with e the number of rows where e is neither null nor missing")
ZQL_FUNC("sum", ZQL_FN_AGGREGATE, 1, 1, "e", ZQL_T_NUMBER, ZQL_FN_TABLE,
         "sum(e)",
         "exactly rounded sum of the numeric values of e, skipping other types (0 on no input)")
ZQL_FUNC("min", ZQL_FN_AGGREGATE, 1, 1, "e", ZQL_T_ANY, ZQL_FN_TABLE,
         "min(e)",
         "smallest non-null value of e in BSON canonical order (null on no input)")
ZQL_FUNC("max", ZQL_FN_AGGREGATE, 1, 1, "e", ZQL_T_ANY, ZQL_FN_TABLE,
         "max(e)",
         "largest non-null value of e in BSON canonical order, so max(timestamp) is the latest")
ZQL_FUNC("avg", ZQL_FN_AGGREGATE, 1, 1, "e", ZQL_T_DOUBLE, ZQL_FN_TABLE,
         "avg(e)",
         "arithmetic mean of the numeric values of e, from an exact sum (null on no input)")
ZQL_FUNC("first", ZQL_FN_AGGREGATE, 1, 1, "e", ZQL_T_ANY, ZQL_FN_BY,
         "first(e [by t])",
         "value of e at the smallest t (default timestamp), skipping null and missing e; "
         "ties go to the earliest _seq")
ZQL_FUNC("last", ZQL_FN_AGGREGATE, 1, 1, "e", ZQL_T_ANY, ZQL_FN_BY,
         "last(e [by t])",
         "value of e at the largest t (default timestamp), skipping null and missing e; "
         "ties go to the latest _seq")
ZQL_FUNC("distinct_count", ZQL_FN_AGGREGATE, 1, 1, "e", ZQL_T_INT,
         ZQL_FN_LIMIT | ZQL_FN_TABLE,
         "distinct_count(e) [limit N [else hll]]",
         "exact number of distinct non-null values of e up to N (default 100000), past which "
         "the result is ERROR, or an hll estimate with else hll")
ZQL_FUNC("hll", ZQL_FN_AGGREGATE, 1, 2, "ei", ZQL_T_INT, ZQL_FN_TABLE,
         "hll(e [, p])",
         "HyperLogLog estimate of the number of distinct non-null values of e, with 2^p "
         "registers, p in 4..18 (default 14, about 0.8% error)")
ZQL_FUNC("theta", ZQL_FN_AGGREGATE, 1, 2, "ei", ZQL_T_INT, 0,
         "theta(e [, k])",
         "theta-sketch estimate of the number of distinct non-null values of e with nominal "
         "size k (default 4096); its state supports union and intersection")
ZQL_FUNC("quantile", ZQL_FN_AGGREGATE, 2, 3, "enn", ZQL_T_DOUBLE, ZQL_FN_TABLE,
         "quantile(e, q [, compression])",
         "q-quantile (0 <= q <= 1) of the numeric values of e within 1% of the exact "
         "type-7 value (exact up to 1024 values); compression is accepted and ignored: "
         "the sketch has fixed buckets")
ZQL_FUNC("median", ZQL_FN_AGGREGATE, 1, 1, "e", ZQL_T_DOUBLE, 0,
         "median(e)",
         "median of the numeric values of e: quantile(e, 0.5)")
ZQL_FUNC("tdigest", ZQL_FN_AGGREGATE, 1, 1, "e", ZQL_T_DOC, 0,
         "tdigest(e)",
         "the quantile sketch of the numeric values of e as a document (the state quantile "
         "keeps: fixed buckets, merge-order independent)")
ZQL_FUNC("topk", ZQL_FN_AGGREGATE, 2, 2, "ei", ZQL_T_ARRAY,
         ZQL_FN_WEIGHT | ZQL_FN_NONDET | ZQL_FN_TABLE,
         "topk(e, k [, weight w])",
         "the k most frequent non-null values of e as [{value, count}] (Space-Saving, "
         "capacity 3k), counting w per row when given")
ZQL_FUNC("maximum", ZQL_FN_AGGREGATE, 2, 2, "ei", ZQL_T_ARRAY,
         ZQL_FN_WEIGHT | ZQL_FN_TABLE,
         "maximum(e, N weight w)",
         "the N values of e with the largest weights w, by descending weight (Sawzall "
         "maximum)")
ZQL_FUNC("minimum", ZQL_FN_AGGREGATE, 2, 2, "ei", ZQL_T_ARRAY,
         ZQL_FN_WEIGHT | ZQL_FN_TABLE,
         "minimum(e, N weight w)",
         "the N values of e with the smallest weights w, by ascending weight (Sawzall "
         "minimum)")
ZQL_FUNC("histogram", ZQL_FN_AGGREGATE, 2, 2, "ea", ZQL_T_ARRAY, 0,
         "histogram(e, [edge, ...])",
         "counts of the numeric values of e between consecutive strictly increasing edges, "
         "as [{lo, hi, count}]")
ZQL_FUNC("sample", ZQL_FN_AGGREGATE, 2, 2, "ei", ZQL_T_ARRAY, ZQL_FN_TABLE,
         "sample(e, N)",
         "a uniform sample of up to N non-null values of e: the rows whose _seq hashes "
         "lowest, so the same whatever the split, in _seq order")
ZQL_FUNC("collect", ZQL_FN_AGGREGATE, 2, 2, "ei", ZQL_T_ARRAY, ZQL_FN_TABLE,
         "collect(e, N)",
         "the first N non-null values of e in log (_seq) order, as an array")
ZQL_FUNC("window_funnel", ZQL_FN_AGGREGATE, 3, -1, "edb*", ZQL_T_DOC, 0,
         "window_funnel(ts, window, cond1, cond2, ...)",
         "furthest step of the ordered conditions reached within window of a row meeting "
         "cond1, as {level, start}")
ZQL_FUNC("retention", ZQL_FN_AGGREGATE, 1, -1, "b*", ZQL_T_ARRAY, 0,
         "retention(cond1, cond2, ...)",
         "array of booleans [c1, c1 and c2, c1 and c3, ...], where ci means some row of the "
         "group met condition i")
ZQL_FUNC("sequence_match", ZQL_FN_AGGREGATE, 3, -1, "seb*", ZQL_T_BOOL, 0,
         "sequence_match(pattern, ts, cond1, cond2, ...)",
         "true when the rows ordered by ts match pattern, a sequence over condition numbers "
         "such as \"(?1).*(?2)\"")
ZQL_FUNC("merge", ZQL_FN_AGGREGATE, 1, 1, "t", ZQL_T_ANY, 0,
         "merge(col)",
         "union of the stored states of computed column col of a from agg source (same "
         "aggregator and parameters), then its final value")

/* }==== aggregators */

/* {==== scalars: conversions and types ================================================= */

ZQL_FUNC("num", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_NUMBER, 0,
         "num(e)",
         "e as a number: numbers unchanged, a string parsed as a whole number, "
         "anything else ERROR")
ZQL_FUNC("int", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_INT, 0,
         "int(e)",
         "e as a 64-bit integer, truncated toward zero; strings are parsed as a whole")
ZQL_FUNC("double", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_DOUBLE, 0,
         "double(e)",
         "e as a double; strings are parsed as a whole, other types give ERROR")
ZQL_FUNC("str", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_STRING, 0,
         "str(e)",
         "e as a string: numbers in shortest round-trip form, dates in ISO-8601 UTC, "
         "documents and arrays as JSON")
ZQL_FUNC("type", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_STRING, 0,
         "type(e)",
         "BSON type name of e as MongoDB's $type spells it (\"int\", \"long\", \"double\", "
         "\"string\", \"object\", ...), \"missing\" when absent")
ZQL_FUNC("hash", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_INT, 0,
         "hash(e)",
         "64-bit xxHash of the normalised value of e (1 and 1.0 hash equal), the hash the "
         "sketches use")
ZQL_FUNC("def", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_BOOL, 0,
         "def(e)",
         "false when e is missing or ERROR, true otherwise (null included)")
ZQL_FUNC("coalesce", ZQL_FN_SCALAR, 1, -1, "e*", ZQL_T_ANY, 0,
         "coalesce(e, ...)",
         "the first argument that is not null, missing or ERROR, else null")
ZQL_FUNC("if", ZQL_FN_SCALAR, 3, 3, "bee", ZQL_T_ANY, 0,
         "if(cond, a, b)",
         "a when cond is true, else b (a null or missing cond chooses b)")

/* }==== */

/* {==== scalars: strings, arrays, documents ============================================ */

ZQL_FUNC("len", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_INT, 0,
         "len(e)",
         "length of a string in code points, or number of elements of an array")
ZQL_FUNC("lower", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_STRING, 0,
         "lower(s)",
         "s with ASCII letters in lower case")
ZQL_FUNC("upper", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_STRING, 0,
         "upper(s)",
         "s with ASCII letters in upper case")
ZQL_FUNC("trim", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_STRING, 0,
         "trim(s)",
         "s without leading and trailing whitespace")
ZQL_FUNC("substr", ZQL_FN_SCALAR, 2, 3, "eee", ZQL_T_STRING, 0,
         "substr(s, start [, len])",
         "len code points of s from 0-based start (negative counts from the end), or the "
         "rest of s")
ZQL_FUNC("concat", ZQL_FN_SCALAR, 1, -1, "e*", ZQL_T_STRING, 0,
         "concat(e, ...)",
         "the string arguments joined; a missing argument makes the result missing, a null one null")
ZQL_FUNC("contains", ZQL_FN_SCALAR, 2, 2, "ee", ZQL_T_BOOL, 0,
         "contains(s, x)",
         "true when string s contains substring x, or array s has an element equal to x")
ZQL_FUNC("starts_with", ZQL_FN_SCALAR, 2, 2, "ee", ZQL_T_BOOL, 0,
         "starts_with(s, prefix)",
         "true when string s begins with prefix")
ZQL_FUNC("ends_with", ZQL_FN_SCALAR, 2, 2, "ee", ZQL_T_BOOL, 0,
         "ends_with(s, suffix)",
         "true when string s ends with suffix")
ZQL_FUNC("split", ZQL_FN_SCALAR, 2, 2, "ee", ZQL_T_ARRAY, 0,
         "split(s, sep)",
         "the pieces of s between occurrences of the non-empty string sep, as an array")
ZQL_FUNC("replace", ZQL_FN_SCALAR, 3, 3, "eee", ZQL_T_STRING, 0,
         "replace(s, from, to)",
         "s with every occurrence of the non-empty string from replaced by to")
ZQL_FUNC("regex_match", ZQL_FN_SCALAR, 2, 2, "er", ZQL_T_BOOL, 0,
         "regex_match(s, /re/)",
         "true when the POSIX extended regex re matches somewhere in s (same as s =~ /re/)")
ZQL_FUNC("regex_extract", ZQL_FN_SCALAR, 2, 3, "eri", ZQL_T_STRING, 0,
         "regex_extract(s, /re/ [, group])",
         "the text of capture group (default 0, the whole match) of the first match of re "
         "in s, or null")
ZQL_FUNC("keys", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_ARRAY, 0,
         "keys(doc)",
         "the field names of a document, in stored order")

/* }==== */

/* {==== scalars: numbers ================================================================ */

ZQL_FUNC("abs", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_NUMBER, 0,
         "abs(x)",
         "absolute value of x, keeping its numeric type")
ZQL_FUNC("round", ZQL_FN_SCALAR, 1, 2, "ei", ZQL_T_NUMBER, 0,
         "round(x [, digits])",
         "x rounded half away from zero to digits decimal places (default 0; negative "
         "rounds to tens, hundreds...)")
ZQL_FUNC("floor", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_NUMBER, 0,
         "floor(x)",
         "largest integral value not greater than x")
ZQL_FUNC("ceil", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_NUMBER, 0,
         "ceil(x)",
         "smallest integral value not less than x")
ZQL_FUNC("sqrt", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_DOUBLE, 0,
         "sqrt(x)",
         "square root of x (ERROR when x < 0)")
ZQL_FUNC("ln", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_DOUBLE, 0,
         "ln(x)",
         "natural logarithm of x (ERROR when x <= 0)")
ZQL_FUNC("log10", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_DOUBLE, 0,
         "log10(x)",
         "base-10 logarithm of x (ERROR when x <= 0)")
ZQL_FUNC("exp", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_DOUBLE, 0,
         "exp(x)",
         "e raised to the power x")
ZQL_FUNC("pow", ZQL_FN_SCALAR, 2, 2, "ee", ZQL_T_DOUBLE, 0,
         "pow(x, y)",
         "x raised to the power y, as a double")
ZQL_FUNC("min", ZQL_FN_SCALAR, 2, -1, "ee*", ZQL_T_ANY, 0,
         "min(a, b, ...)",
         "smallest argument in BSON canonical order, skipping null and missing (scalar; "
         "min(e) is the aggregator)")
ZQL_FUNC("max", ZQL_FN_SCALAR, 2, -1, "ee*", ZQL_T_ANY, 0,
         "max(a, b, ...)",
         "largest argument in BSON canonical order, skipping null and missing (scalar; "
         "max(e) is the aggregator)")

/* }==== */

/* {==== scalars: time =================================================================== */

ZQL_FUNC("date", ZQL_FN_SCALAR, 1, 2, "es", ZQL_T_DATE, 0,
         "date(s [, tz])",
         "the instant an ISO-8601 string denotes; a string without an offset needs the "
         "zone tz, else ERROR")
ZQL_FUNC("now", ZQL_FN_SCALAR, 0, 0, "", ZQL_T_DATE, ZQL_FN_VOLATILE,
         "now()",
         "the start time of the run (fixed for the whole run, so replays are deterministic)")
ZQL_FUNC("epoch_ms", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_DATE, 0,
         "epoch_ms(x)",
         "the date x milliseconds after 1970-01-01T00:00:00Z")
ZQL_FUNC("epoch_s", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_DATE, 0,
         "epoch_s(x)",
         "the date x seconds after 1970-01-01T00:00:00Z")
ZQL_FUNC("trunc", ZQL_FN_SCALAR, 2, 3, "eus", ZQL_T_DATE, 0,
         "trunc(ts, unit [, tz])",
         "ts rounded down to the start of its unit (ms ... year) in zone tz (default "
         "\"UTC\"), like bucket(ts, unit)")
ZQL_FUNC("format_time", ZQL_FN_SCALAR, 2, 3, "ess", ZQL_T_STRING, 0,
         "format_time(ts, fmt [, tz])",
         "ts formatted with the strftime pattern fmt in zone tz (default \"UTC\")")
ZQL_FUNC("year", ZQL_FN_SCALAR, 1, 2, "es", ZQL_T_INT, 0,
         "year(ts [, tz])",
         "calendar year of ts in zone tz (default \"UTC\")")
ZQL_FUNC("month", ZQL_FN_SCALAR, 1, 2, "es", ZQL_T_INT, 0,
         "month(ts [, tz])",
         "month of ts, 1..12, in zone tz (default \"UTC\")")
ZQL_FUNC("day", ZQL_FN_SCALAR, 1, 2, "es", ZQL_T_INT, 0,
         "day(ts [, tz])",
         "day of the month of ts, 1..31, in zone tz (default \"UTC\")")
ZQL_FUNC("hour", ZQL_FN_SCALAR, 1, 2, "es", ZQL_T_INT, 0,
         "hour(ts [, tz])",
         "hour of ts, 0..23, in zone tz (default \"UTC\")")
ZQL_FUNC("minute", ZQL_FN_SCALAR, 1, 2, "es", ZQL_T_INT, 0,
         "minute(ts [, tz])",
         "minute of ts, 0..59, in zone tz (default \"UTC\")")
ZQL_FUNC("dow", ZQL_FN_SCALAR, 1, 2, "es", ZQL_T_INT, 0,
         "dow(ts [, tz])",
         "ISO day of the week of ts, 1 (Monday) .. 7 (Sunday), in zone tz (default \"UTC\")")
ZQL_FUNC("session", ZQL_FN_SCALAR, 1, 1, "e", ZQL_T_DATE, ZQL_FN_GAP | ZQL_FN_NOMERGE,
         "session(ts, gap d)",
         "start of the session holding ts, where an entity's rows less than d apart form "
         "one session (a key function, used with per)")

/* }==== */

/* {==== scalars: sketch states ========================================================== */

ZQL_FUNC("hll_downgrade", ZQL_FN_SCALAR, 2, 2, "ti", ZQL_T_STATE, 0,
         "hll_downgrade(col, p)",
         "an hll state column reduced to precision p (4..18, not above its own), so "
         "states of different precisions can merge")

/* }==== */
