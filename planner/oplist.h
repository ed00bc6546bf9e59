/*
 * oplist.h -- THE list of VM instructions (stage 3 emits them, stage 4 runs them).
 *
 * An X-macro list (jq opcode_list.h): define ZQL_OP(name, doc), include, undefine. No
 * include guard. Every instruction is a zql_insn_t {op, flags, dst, a, b, c} over the
 * registers of one program (planner/plan.h); the doc column says what each field means.
 * `T(x)` below means "x is TRUE" (three-valued logic, R3).
 */
#ifndef ZQL_OP
#error "define ZQL_OP(name, doc) first"
#endif

/* moves and constants */
ZQL_OP(LOADK,    "dst = consts[c]")
ZQL_OP(MOVE,     "dst = a")
ZQL_OP(MISSING,  "dst = MISSING")
/* paths over computed values (event paths are extracted before the program runs) */
ZQL_OP(STEPS,    "dst = a followed through the step list c (fields, [i], [*])")
/* arithmetic and comparison (R3, R4) */
ZQL_OP(NEG,      "dst = -a")
ZQL_OP(PLUS,     "dst = +a (numbers only)")
ZQL_OP(NOT,      "dst = not a (three-valued)")
ZQL_OP(ADD,      "dst = a + b")
ZQL_OP(SUB,      "dst = a - b")
ZQL_OP(MUL,      "dst = a * b")
ZQL_OP(DIV,      "dst = a / b")
ZQL_OP(MOD,      "dst = a % b")
ZQL_OP(EQ,       "dst = a == b")
ZQL_OP(NE,       "dst = a != b")
ZQL_OP(LT,       "dst = a < b")
ZQL_OP(LE,       "dst = a <= b")
ZQL_OP(GT,       "dst = a > b")
ZQL_OP(GE,       "dst = a >= b")
ZQL_OP(MATCH,    "dst = a =~ regex c (flags 1: !~)")
ZQL_OP(AND,      "dst = a and b (three-valued)")
ZQL_OP(OR,       "dst = a or b (three-valued)")
ZQL_OP(COALESCE, "dst = a unless a is NULL/MISSING/ERROR, else b")
ZQL_OP(IS,       "dst = a is null (flags 1: is missing; 2: negated)")
ZQL_OP(IN,       "dst = a in b (flags 2: negated)")
ZQL_OP(DEF,      "dst = def(a)")
ZQL_OP(IF,       "dst = T(a) ? b : register c")
/* calls and constructors */
ZQL_OP(CALL,     "dst = scalar call site c over registers a .. a+b-1")
ZQL_OP(BUCKET,   "dst = bucket spec c applied to a")
ZQL_OP(ARRAY,    "dst = [a .. a+b-1]")
ZQL_OP(DOC,      "dst = {names of doc spec c: a .. a+b-1}")
/* control */
ZQL_OP(JMP,      "goto c")
ZQL_OP(JNT,      "if not T(a) goto c")
ZQL_OP(JNULL,    "if a is NULL or MISSING goto c (skip null keys)")
ZQL_OP(CHKERR,   "if a is ERROR: count its message in _errors, goto c")
ZQL_OP(ITER,     "iterator dst over array a (flags 1: keep empty); goto c when not an array")
ZQL_OP(NEXT,     "dst = next element of iterator a, or goto c when done")
/* aggregation */
ZQL_OP(GROUP,    "find/create the group of table c keyed by a .. a+b-1")
ZQL_OP(ADDAGG,   "add to aggregator slot c of the current group: x = a (b: 1 + has by/weight/conds)")
ZQL_OP(EMIT,     "table c: find the group keyed by a .. a+b-1, add value a+b (weight a+b+1)")
ZQL_OP(FINAL,    "dst = final value of aggregator slot c of the current group")
ZQL_OP(KEY,      "dst = key column c of the current group")
ZQL_OP(ROW,      "row query: keep the row a .. a+b-1 (event, named values, order-by values)")
ZQL_OP(SESSION,  "dst = start of entity a's session holding time b (sessions table c)")
ZQL_OP(HALT,     "end of program")
