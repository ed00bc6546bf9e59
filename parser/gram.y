/*
 * gram.y -- the ZQL grammar (stage 2: tokens -> raw AST).
 *
 * A pure, located, conflict-free bison parser (api.pure full, %locations,
 * parse.error detailed, parse.lac full, %expect 0). Following PostgreSQL's gram.y NOTES,
 * the actions only BUILD the raw tree (parser/ast.h): no name lookup, no folding, no
 * type checks -- that is parser/analyze.c's job. The few checks made here are about the
 * shape of the text itself: nesting depth (so that every later recursive walk is safe)
 * and duplicate call modifiers.
 *
 * Locations are zql_span_t byte ranges [start, end). Memory comes from the query arena;
 * bison's own stack is allocated with zql_malloc and capped at YYMAXDEPTH, and running
 * out of it is reported as "nesting too deep" (E1011), not as a crash.
 *
 * Error recovery: `error ';'` at statement level and inside map blocks, so one file can
 * report several syntax errors. A token the scanner already reported (INVALID) does not
 * produce a second message. See docs/language.md for the language these rules accept.
 *
 * Known, documented resolutions (precedence, not %expect): in an ad-hoc query a `limit`
 * right after a compute item is read as that item's `limit N` (distinct_count); the
 * analyzer moves it to the query when the aggregator takes no limit.
 */

%require "3.8"
%define api.pure full
%define api.prefix {zql_yy}
%define api.location.type {zql_span_t}
%define parse.error detailed
%define parse.lac full
%locations
%expect 0
%param {zql_scanner_t scanner}
%parse-param {zql_parse_ctx_t *ctx}

%code requires {
#include "runtime/base/zql_common.h"
#include "parser/ast.h"
#include "parser/scanner.h"

/* The parser's context: the lexer state (also the scanner's "extra") and the result. */
typedef struct zql_parse_ctx {
  zql_lex_t lex;
  zql_node_t *file; /* ZQL_N_FILE being filled, item by item */
  bool deep_reported;
} zql_parse_ctx_t;

#define YYLLOC_DEFAULT(Cur, Rhs, N)                                   \
  do {                                                                \
    if (N) {                                                          \
      (Cur).start = YYRHSLOC(Rhs, 1).start;                           \
      (Cur).end = YYRHSLOC(Rhs, N).end;                               \
    } else {                                                          \
      (Cur).start = (Cur).end = YYRHSLOC(Rhs, 0).end;                 \
    }                                                                 \
  } while (0)
}

%code provides {
int zql_yylex(ZQL_YYSTYPE *lval, zql_span_t *lloc, zql_scanner_t scanner);
int zql_gram_parse(zql_scanner_t scanner, zql_parse_ctx_t *ctx);
}

%code {
#include <math.h>

#include "runtime/base/alloc.h"

#define YYMALLOC zql_malloc
#define YYFREE zql_free
#define YYMAXDEPTH 4000
#define A (ctx->lex.arena)

static void zql_yyerror(zql_span_t *loc, zql_scanner_t scanner, zql_parse_ctx_t *ctx,
                        const char *msg);
static zql_node_t *node(zql_parse_ctx_t *ctx, zql_node_kind_t kind, zql_span_t span);
static zql_node_t *done(zql_parse_ctx_t *ctx, zql_node_t *n);
static zql_node_t *binop(zql_parse_ctx_t *ctx, zql_op_t op, zql_node_t *l, zql_node_t *r,
                         zql_span_t span);
static zql_node_t *unop(zql_parse_ctx_t *ctx, zql_op_t op, zql_node_t *arg, zql_span_t span);
static bool push(zql_parse_ctx_t *ctx, zql_list_t *l, zql_node_t *n);
static bool call_mod(zql_parse_ctx_t *ctx, zql_node_t *call, zql_node_t **slot,
                     zql_node_t *e, const char *word, zql_span_t span);

/* Every action that allocates checks its result: out of memory aborts the parse with
 * YYNOMEM, a too-deep tree with YYABORT (the error is already reported). */
#define CHK(x)                                                        \
  do {                                                                \
    if (!(x)) {                                                       \
      if (ctx->lex.oom)                                               \
        YYNOMEM;                                                      \
      YYABORT;                                                        \
    }                                                                 \
  } while (0)
}

%union {
  int64_t i64;
  double dbl;
  struct { const char *s; uint32_t len; } str;
  struct { const char *pattern, *flags; } re;
  zql_node_t *node;
  bool flag;
  int dir;
}

/* ORDER KEYWORDS: one %token per line of parser/kwlist.h. */
%token END 0 "end of file"
%token INVALID "invalid token"
%token <str> IDENT "identifier"
%token <str> PARAMREF "parameter"
%token <str> STRING "string"
%token <i64> INT "integer"
%token <dbl> DOUBLE "number"
%token <i64> DURATION "duration"
%token <re> REGEX "regex"
%token EQ "==" NE "!=" LE "<=" GE ">=" MATCH "=~" NOMATCH "!~" COALESCE "??" ARROW "<-"
%token AFTER "after" AGG "agg" AGGREGATE "aggregate" ANALYZE "analyze" AND "and"
%token AS "as" ASC "asc" BUCKET "bucket" BY "by" COMPUTE "compute" CRON "cron"
%token DESC "desc" ELSE "else" EMIT "emit" EMPTY "empty" EVERY "every"
%token EXPLAIN "explain" FALSE "false" FOR "for" FROM "from" GAP "gap" GROUP "group"
%token HAVING "having" IF "if" IN "in" INF "inf" INTO "into" IS "is" KEEP "keep"
%token KEY "key" LATE "late" LATENESS "lateness" LET "let" LIMIT "limit" MAP "map"
%token MISSING "missing" MODE "mode" NAN_ "nan" NOT "not" NULL_ "null" OF "of"
%token OFFSET "offset" ON "on" ON_ERROR "on_error" OR "or" ORDER "order"
%token ORIGIN "origin" PARAM "param" PARTITIONS "partitions" PER "per" RANK "rank"
%token REDUCER "reducer" RETAIN "retain" SCHEDULE "schedule" SETTLE "settle"
%token SKIP "skip" STARTS "starts" STATE "state" TABLE "table" TRUE "true" TZ "tz"
%token UNWIND "unwind" WEIGHT "weight" WHEN "when" WHERE "where" WITHIN "within"

%nterm <node> item param table reducer aggregate query explain stage qhead
%nterm <node> opt_key_per opt_group opt_per per_items aggitem agglimit opt_filter keys key opt_compute
%nterm <node> fields field type reducer_parts reducer_part call arglist bucket bspec
%nterm <node> expr primary literal paramref strparam path array exprs doc docfields docfield
%nterm <node> block stmts stmt if_stmt opt_weight opt_rank within opt_having
%nterm <node> option sched options qtail order_terms order_term sources source
%nterm <flag> opt_keep_empty opt_skip_null opt_analyze
%nterm <dir> opt_dir
%nterm <str> opt_as

/* An empty agglimit loses to a shifted LIMIT (see the header comment). */
%precedence NO_LIMIT
%precedence LIMIT
%left OR
%left AND
%right NOT
%nonassoc EQ NE '<' LE '>' GE MATCH NOMATCH IS IN
%right COALESCE
%left '+' '-'
%left '*' '/' '%'
%precedence UNARY

%start file

%%

file
  : %empty
  | file item              { if ($2) CHK(push(ctx, &ctx->file->u.list, $2)); }
  ;

item
  : param                  { $$ = $1; }
  | table                  { $$ = $1; }
  | reducer                { $$ = $1; }
  | aggregate              { $$ = $1; }
  | query ';'              { $$ = $1; }
  | explain ';'            { $$ = $1; }
  | ';'                    { $$ = NULL; }
  | error ';'              { $$ = NULL; yyerrok; }
  ;

/* ---- declarations ---- */

param
  : PARAM IDENT '=' expr ';'
      { CHK($$ = node(ctx, ZQL_N_PARAM, @$));
        $$->u.decl.name = $2.s; $$->u.decl.name_span = @2; $$->u.decl.value = $4;
        CHK(done(ctx, $$)); }
  ;

table
  : TABLE IDENT '[' fields ']' OF type ':' call ';'
      { $$ = $4; $$->kind = ZQL_N_TABLE; $$->span = @$;
        zql_list_t l = $$->u.list;
        memset(&$$->u, 0, sizeof $$->u);
        $$->u.table.fields = l; $$->u.table.name = $2.s; $$->u.table.name_span = @2;
        $$->u.table.of = $7; $$->u.table.reducer = $9; CHK(done(ctx, $$)); }
  ;

fields
  : field                  { CHK($$ = node(ctx, ZQL_N_BLOCK, @$)); CHK(push(ctx, &$$->u.list, $1)); }
  | fields ',' field       { $$ = $1; CHK(push(ctx, &$$->u.list, $3)); }
  ;

field
  : IDENT ':' type
      { CHK($$ = node(ctx, ZQL_N_FIELD, @$));
        $$->u.field.name = $1.s; $$->u.field.name_span = @1; $$->u.field.type = $3;
        CHK(done(ctx, $$)); }
  ;

type
  : IDENT                  { CHK($$ = node(ctx, ZQL_N_TYPE, @$)); $$->u.typename_.name = $1.s; }
  ;

reducer
  : REDUCER IDENT '(' IDENT ':' type ')' STATE '{' fields '}' '{' reducer_parts '}'
      { CHK($$ = node(ctx, ZQL_N_REDUCER, @$));
        $$->u.reducer.name = $2.s; $$->u.reducer.name_span = @2;
        $$->u.reducer.arg = $4.s; $$->u.reducer.arg_type = $6;
        $$->u.reducer.state = $10->u.list; $$->u.reducer.parts = $13->u.list;
        CHK(done(ctx, $$)); }
  ;

reducer_parts
  : reducer_part           { CHK($$ = node(ctx, ZQL_N_BLOCK, @$)); CHK(push(ctx, &$$->u.list, $1)); }
  | reducer_parts reducer_part { $$ = $1; CHK(push(ctx, &$$->u.list, $2)); }
  ;

reducer_part
  : IDENT '=' expr ';'
      { CHK($$ = node(ctx, ZQL_N_LET, @$));
        $$->u.decl.name = $1.s; $$->u.decl.name_span = @1; $$->u.decl.value = $3;
        CHK(done(ctx, $$)); }
  ;

/* ---- aggregates and queries ---- */

/* Definitions and queries share their clauses; what one of them may not have (order by
 * and limit in a definition, options in a query) is the analyzer's E3030, which explains
 * it better than a syntax error could. */
aggregate
  : AGGREGATE IDENT stage opt_having opt_rank qtail options ';'
      { $$ = $3; $$->kind = ZQL_N_AGGREGATE; $$->span = @$;
        $$->u.query.name = $2.s; $$->u.query.name_span = @2;
        $$->u.query.having = $4; $$->u.query.rank = $5;
        $$->u.query.order = $6->u.query.order;
        $$->u.query.limit = $6->u.query.limit; $$->u.query.offset = $6->u.query.offset;
        $$->u.query.options = $7->u.list; CHK(done(ctx, $$)); }
  ;

query
  : stage opt_having opt_rank qtail options
      { $$ = $1; $$->span = @$; $$->u.query.having = $2; $$->u.query.rank = $3;
        $$->u.query.order = $4->u.query.order;
        $$->u.query.limit = $4->u.query.limit; $$->u.query.offset = $4->u.query.offset;
        $$->u.query.options = $5->u.list; CHK(done(ctx, $$)); }
  ;

explain
  : EXPLAIN opt_analyze query
      { CHK($$ = node(ctx, ZQL_N_EXPLAIN, @$));
        $$->u.explain.target = $3; $$->u.explain.analyze = $2; CHK(done(ctx, $$)); }
  | EXPLAIN opt_analyze IDENT
      { CHK($$ = node(ctx, ZQL_N_EXPLAIN, @$));
        $$->u.explain.name = $3.s; $$->u.explain.name_span = @3;
        $$->u.explain.analyze = $2; }
  ;

opt_analyze
  : %empty                 { $$ = false; }
  | ANALYZE                { $$ = true; }
  ;

/* FROM sources, then row ops, then [per] [group by] [compute | map] */
stage
  : qhead opt_per opt_group opt_compute
      { $$ = $1; $$->span = @$; $$->u.query.per = $2;
        if ($3) { $$->u.query.grouped = true; $$->u.query.keys = $3->u.list; }
        if ($4) {
          $$->u.query.has_compute = $4->u.query.has_compute;
          $$->u.query.compute = $4->u.query.compute;
          $$->u.query.map = $4->u.query.map;
        }
        CHK(done(ctx, $$)); }
  ;

qhead
  : FROM sources
      { $$ = $2; $$->kind = ZQL_N_QUERY; $$->span = @$;
        zql_list_t l = $$->u.list;
        memset(&$$->u, 0, sizeof $$->u);
        $$->u.query.sources = l; }
  | qhead WHERE expr
      { $$ = $1; zql_node_t *w; CHK(w = node(ctx, ZQL_N_WHERE, @2));
        w->span.end = @3.end; w->u.unary_clause.arg = $3; CHK(done(ctx, w));
        CHK(push(ctx, &$$->u.query.rowops, w)); }
  | qhead LET IDENT '=' expr
      { $$ = $1; zql_node_t *l; CHK(l = node(ctx, ZQL_N_LET, @2));
        l->span.end = @5.end; l->u.decl.name = $3.s; l->u.decl.name_span = @3;
        l->u.decl.value = $5; CHK(done(ctx, l)); CHK(push(ctx, &$$->u.query.rowops, l)); }
  | qhead UNWIND path opt_as opt_keep_empty
      { $$ = $1; zql_node_t *u; CHK(u = node(ctx, ZQL_N_UNWIND, @2));
        u->span.end = @5.end;
        u->u.unwind.path = $3; u->u.unwind.alias = $4.s; u->u.unwind.alias_span = @4;
        u->u.unwind.keep_empty = $5; CHK(done(ctx, u));
        CHK(push(ctx, &$$->u.query.rowops, u)); }
  ;

sources
  : source                 { CHK($$ = node(ctx, ZQL_N_BLOCK, @$)); CHK(push(ctx, &$$->u.list, $1)); }
  | sources ',' source     { $$ = $1; CHK(push(ctx, &$$->u.list, $3)); }
  ;

source
  : IDENT                  { CHK($$ = node(ctx, ZQL_N_SOURCE, @$)); $$->u.source.name = $1.s; }
  | AGG IDENT              { CHK($$ = node(ctx, ZQL_N_SOURCE, @$)); $$->u.source.name = $2.s;
                             $$->u.source.is_agg = true; }
  ;

opt_as
  : %empty                 { $$.s = NULL; $$.len = 0; }
  | AS IDENT               { $$ = $2; }
  ;

opt_keep_empty
  : %empty                 { $$ = false; }
  | KEEP EMPTY             { $$ = true; }
  ;

opt_per
  : %empty                 { $$ = NULL; }
  | PER expr AS IDENT '{' per_items '}'
      { $$ = $6; $$->kind = ZQL_N_PER; $$->span = @$;
        zql_list_t l = $$->u.list;
        memset(&$$->u, 0, sizeof $$->u);
        $$->u.per.items = l; $$->u.per.key = $2; $$->u.per.alias = $4.s;
        $$->u.per.alias_span = @4; CHK(done(ctx, $$)); }
  ;

per_items
  : aggitem                { CHK($$ = node(ctx, ZQL_N_BLOCK, @$)); CHK(push(ctx, &$$->u.list, $1)); }
  | per_items ',' aggitem  { $$ = $1; CHK(push(ctx, &$$->u.list, $3)); }
  ;

opt_group
  : %empty                 { $$ = NULL; }
  | GROUP BY keys          { $$ = $3; }
  ;

keys
  : key                    { CHK($$ = node(ctx, ZQL_N_BLOCK, @$)); CHK(push(ctx, &$$->u.list, $1)); }
  | keys ',' key           { $$ = $1; CHK(push(ctx, &$$->u.list, $3)); }
  ;

key
  : expr opt_key_per opt_as opt_skip_null
      { CHK($$ = node(ctx, ZQL_N_KEY, @$));
        $$->u.key.expr = $1; $$->u.key.per = $2; $$->u.key.alias = $3.s;
        $$->u.key.alias_span = @3; $$->u.key.skip_null = $4; CHK(done(ctx, $$)); }
  ;

/* session(ts, gap 30m) per context.user: the entity whose rows form sessions */
opt_key_per
  : %empty                 { $$ = NULL; }
  | PER expr               { $$ = $2; }
  ;

opt_skip_null
  : %empty                 { $$ = false; }
  | SKIP NULL_             { $$ = true; }
  ;

opt_compute
  : %empty                 { $$ = NULL; }
  | COMPUTE per_items
      { CHK($$ = node(ctx, ZQL_N_QUERY, @$));
        $$->u.query.has_compute = true; $$->u.query.compute = $2->u.list; }
  | MAP block
      { CHK($$ = node(ctx, ZQL_N_QUERY, @$)); $$->u.query.map = $2; }
  ;

aggitem
  : IDENT '=' expr agglimit opt_filter
      { CHK($$ = node(ctx, ZQL_N_AGGITEM, @$));
        $$->u.aggitem.name = $1.s; $$->u.aggitem.name_span = @1; $$->u.aggitem.expr = $3;
        if ($4) {
          $$->u.aggitem.limit = $4->u.aggitem.limit;
          $$->u.aggitem.else_ = $4->u.aggitem.else_;
          $$->u.aggitem.else_span = $4->u.aggitem.else_span;
          $$->u.aggitem.offset = $4->u.aggitem.offset;
        }
        if ($5) $$->u.aggitem.filter = $5;
        CHK(done(ctx, $$)); }
  ;

agglimit
  : %empty %prec NO_LIMIT  { $$ = NULL; }
  | LIMIT literal
      { CHK($$ = node(ctx, ZQL_N_AGGITEM, @$)); $$->u.aggitem.limit = $2; }
  | LIMIT literal ELSE IDENT
      { CHK($$ = node(ctx, ZQL_N_AGGITEM, @$)); $$->u.aggitem.limit = $2;
        $$->u.aggitem.else_ = $4.s; $$->u.aggitem.else_span = @4; }
  | LIMIT literal OFFSET literal
      { CHK($$ = node(ctx, ZQL_N_AGGITEM, @$)); $$->u.aggitem.limit = $2;
        $$->u.aggitem.offset = $4; }
  ;

opt_filter
  : %empty                 { $$ = NULL; }
  | WHERE expr             { $$ = $2; }
  ;

opt_having
  : %empty                 { $$ = NULL; }
  | HAVING expr            { $$ = $2; }
  ;

opt_rank
  : %empty                 { $$ = NULL; }
  | RANK BY expr opt_dir LIMIT literal WITHIN '(' within ')'
      { CHK($$ = node(ctx, ZQL_N_RANK, @$));
        $$->u.rank.by = $3; $$->u.rank.desc = $4 > 0; $$->u.rank.limit = $6;
        $$->u.rank.within = $9->u.list; CHK(done(ctx, $$)); }
  ;

within
  : path                   { CHK($$ = node(ctx, ZQL_N_BLOCK, @$)); CHK(push(ctx, &$$->u.list, $1)); }
  | within ',' path        { $$ = $1; CHK(push(ctx, &$$->u.list, $3)); }
  ;

opt_dir
  : %empty                 { $$ = 0; }
  | ASC                    { $$ = -1; }
  | DESC                   { $$ = 1; }
  ;

qtail
  : %empty                 { CHK($$ = node(ctx, ZQL_N_QUERY, @$)); }
  | ORDER BY order_terms   { $$ = $3; }
  | qtail LIMIT literal
      { $$ = $1; if ($$->u.query.limit) { zql_yyerror(&@2, scanner, ctx, "duplicate 'limit'"); YYERROR; }
        $$->u.query.limit = $3; }
  | qtail LIMIT literal OFFSET literal
      { $$ = $1; if ($$->u.query.limit) { zql_yyerror(&@2, scanner, ctx, "duplicate 'limit'"); YYERROR; }
        $$->u.query.limit = $3; $$->u.query.offset = $5; }
  ;

order_terms
  : order_term             { CHK($$ = node(ctx, ZQL_N_QUERY, @$)); CHK(push(ctx, &$$->u.query.order, $1)); }
  | order_terms ',' order_term { $$ = $1; CHK(push(ctx, &$$->u.query.order, $3)); }
  ;

order_term
  : expr opt_dir
      { CHK($$ = node(ctx, ZQL_N_ORDER, @$)); $$->u.order.expr = $1;
        $$->u.order.desc = $2 > 0; CHK(done(ctx, $$)); }
  ;

options
  : %empty                 { CHK($$ = node(ctx, ZQL_N_BLOCK, @$)); }
  | options option         { $$ = $1; CHK(push(ctx, &$$->u.list, $2)); }
  ;

option
  : INTO STRING
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_INTO;
        $$->u.option.str = $2.s; $$->u.option.str_span = @2; }
  | KEY STRING
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_KEY;
        $$->u.option.str = $2.s; $$->u.option.str_span = @2; }
  | KEY IDENT
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_KEY;
        $$->u.option.ident = $2.s; $$->u.option.ident_span = @2;
        $$->u.option.key_doc = strcmp($2.s, "doc") == 0; }
  | MODE IDENT
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_MODE;
        $$->u.option.ident = $2.s; $$->u.option.ident_span = @2; }
  | SCHEDULE sched         { $$ = $2; $$->span = @$; }
  | LATENESS expr
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_LATENESS;
        $$->u.option.value = $2; CHK(done(ctx, $$)); }
  | LATENESS expr LATE IDENT
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_LATENESS;
        $$->u.option.value = $2; $$->u.option.ident = $4.s; $$->u.option.ident_span = @4;
        CHK(done(ctx, $$)); }
  | LATENESS expr LATE IDENT STRING
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_LATENESS;
        $$->u.option.value = $2; $$->u.option.ident = $4.s; $$->u.option.ident_span = @4;
        $$->u.option.str = $5.s; $$->u.option.str_span = @5; CHK(done(ctx, $$)); }
  | SETTLE expr
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_SETTLE;
        $$->u.option.value = $2; CHK(done(ctx, $$)); }
  | RETAIN expr
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_RETAIN;
        $$->u.option.value = $2; CHK(done(ctx, $$)); }
  | ON_ERROR IDENT
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_ON_ERROR;
        $$->u.option.ident = $2.s; $$->u.option.ident_span = @2; }
  | ON_ERROR SKIP
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_ON_ERROR;
        $$->u.option.ident = "skip"; $$->u.option.ident_span = @2; }
  | PARTITIONS expr
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_PARTITIONS;
        $$->u.option.value = $2; CHK(done(ctx, $$)); }
  ;

sched
  : EVERY expr
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_SCHEDULE;
        $$->u.option.sched = ZQL_SCHED_EVERY; $$->u.option.value = $2; CHK(done(ctx, $$)); }
  | CRON STRING
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_SCHEDULE;
        $$->u.option.sched = ZQL_SCHED_CRON; $$->u.option.str = $2.s; $$->u.option.str_span = @2; }
  | ON IDENT
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_SCHEDULE;
        $$->u.option.sched = strcmp($2.s, "close") == 0 ? ZQL_SCHED_CLOSE : ZQL_SCHED_EVENT;
        $$->u.option.ident = $2.s; $$->u.option.ident_span = @2; }
  | ON IDENT expr
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_SCHEDULE;
        $$->u.option.sched = ZQL_SCHED_EVENT; $$->u.option.ident = $2.s;
        $$->u.option.ident_span = @2; $$->u.option.value = $3; CHK(done(ctx, $$)); }
  | AFTER IDENT
      { CHK($$ = node(ctx, ZQL_N_OPTION, @$)); $$->u.option.opt = ZQL_OPT_SCHEDULE;
        $$->u.option.sched = ZQL_SCHED_AFTER; $$->u.option.ident = $2.s;
        $$->u.option.ident_span = @2; }
  ;

/* ---- map blocks ---- */

block
  : '{' stmts '}'          { $$ = $2; $$->span = @$; CHK(done(ctx, $$)); }
  ;

stmts
  : %empty                 { CHK($$ = node(ctx, ZQL_N_BLOCK, @$)); }
  | stmts stmt             { $$ = $1; if ($2) CHK(push(ctx, &$$->u.list, $2)); }
  ;

stmt
  : LET IDENT '=' expr ';'
      { CHK($$ = node(ctx, ZQL_N_LET, @$));
        $$->u.decl.name = $2.s; $$->u.decl.name_span = @2; $$->u.decl.value = $4;
        CHK(done(ctx, $$)); }
  | if_stmt                { $$ = $1; }
  | WHEN '(' expr ')' block
      { CHK($$ = node(ctx, ZQL_N_WHEN, @$));
        $$->u.cond_stmt.cond = $3; $$->u.cond_stmt.then = $5; CHK(done(ctx, $$)); }
  | FOR IDENT IN expr block
      { CHK($$ = node(ctx, ZQL_N_FOR, @$));
        $$->u.for_stmt.var = $2.s; $$->u.for_stmt.var_span = @2;
        $$->u.for_stmt.iter = $4; $$->u.for_stmt.body = $5; CHK(done(ctx, $$)); }
  | EMIT IDENT '[' exprs ']' ARROW expr opt_weight ';'
      { CHK($$ = node(ctx, ZQL_N_EMIT, @$));
        $$->u.emit.table = $2.s; $$->u.emit.table_span = @2;
        $$->u.emit.index = $4->u.list; $$->u.emit.value = $7; $$->u.emit.weight = $8;
        CHK(done(ctx, $$)); }
  | error ';'              { $$ = NULL; yyerrok; }
  ;

if_stmt
  : IF '(' expr ')' block
      { CHK($$ = node(ctx, ZQL_N_IF, @$));
        $$->u.cond_stmt.cond = $3; $$->u.cond_stmt.then = $5; CHK(done(ctx, $$)); }
  | IF '(' expr ')' block ELSE block
      { CHK($$ = node(ctx, ZQL_N_IF, @$));
        $$->u.cond_stmt.cond = $3; $$->u.cond_stmt.then = $5; $$->u.cond_stmt.else_ = $7;
        CHK(done(ctx, $$)); }
  | IF '(' expr ')' block ELSE if_stmt
      { CHK($$ = node(ctx, ZQL_N_IF, @$));
        $$->u.cond_stmt.cond = $3; $$->u.cond_stmt.then = $5; $$->u.cond_stmt.else_ = $7;
        CHK(done(ctx, $$)); }
  ;

opt_weight
  : %empty                 { $$ = NULL; }
  | WEIGHT expr            { $$ = $2; }
  ;

/* ---- expressions ---- */

expr
  : expr OR expr           { CHK($$ = binop(ctx, ZQL_OP_OR, $1, $3, @$)); }
  | expr AND expr          { CHK($$ = binop(ctx, ZQL_OP_AND, $1, $3, @$)); }
  | NOT expr               { CHK($$ = unop(ctx, ZQL_OP_NOT, $2, @$)); }
  | expr EQ expr           { CHK($$ = binop(ctx, ZQL_OP_EQ, $1, $3, @$)); }
  | expr NE expr           { CHK($$ = binop(ctx, ZQL_OP_NE, $1, $3, @$)); }
  | expr '<' expr          { CHK($$ = binop(ctx, ZQL_OP_LT, $1, $3, @$)); }
  | expr LE expr           { CHK($$ = binop(ctx, ZQL_OP_LE, $1, $3, @$)); }
  | expr '>' expr          { CHK($$ = binop(ctx, ZQL_OP_GT, $1, $3, @$)); }
  | expr GE expr           { CHK($$ = binop(ctx, ZQL_OP_GE, $1, $3, @$)); }
  | expr MATCH expr        { CHK($$ = binop(ctx, ZQL_OP_MATCH, $1, $3, @$)); }
  | expr NOMATCH expr      { CHK($$ = binop(ctx, ZQL_OP_NOMATCH, $1, $3, @$)); }
  | expr IS NULL_ %prec IS
      { CHK($$ = node(ctx, ZQL_N_IS, @$)); $$->u.is.arg = $1; CHK(done(ctx, $$)); }
  | expr IS NOT NULL_ %prec IS
      { CHK($$ = node(ctx, ZQL_N_IS, @$)); $$->u.is.arg = $1; $$->u.is.negated = true;
        CHK(done(ctx, $$)); }
  | expr IS MISSING %prec IS
      { CHK($$ = node(ctx, ZQL_N_IS, @$)); $$->u.is.arg = $1; $$->u.is.missing = true;
        CHK(done(ctx, $$)); }
  | expr IS NOT MISSING %prec IS
      { CHK($$ = node(ctx, ZQL_N_IS, @$)); $$->u.is.arg = $1; $$->u.is.missing = true;
        $$->u.is.negated = true; CHK(done(ctx, $$)); }
  | expr IN primary
      { CHK($$ = node(ctx, ZQL_N_IN, @$)); $$->u.in.arg = $1; $$->u.in.set = $3;
        CHK(done(ctx, $$)); }
  | expr NOT IN primary %prec IN
      { CHK($$ = node(ctx, ZQL_N_IN, @$)); $$->u.in.arg = $1; $$->u.in.set = $4;
        $$->u.in.negated = true; CHK(done(ctx, $$)); }
  | expr COALESCE expr     { CHK($$ = binop(ctx, ZQL_OP_COALESCE, $1, $3, @$)); }
  | expr '+' expr          { CHK($$ = binop(ctx, ZQL_OP_ADD, $1, $3, @$)); }
  | expr '-' expr          { CHK($$ = binop(ctx, ZQL_OP_SUB, $1, $3, @$)); }
  | expr '*' expr          { CHK($$ = binop(ctx, ZQL_OP_MUL, $1, $3, @$)); }
  | expr '/' expr          { CHK($$ = binop(ctx, ZQL_OP_DIV, $1, $3, @$)); }
  | expr '%' expr          { CHK($$ = binop(ctx, ZQL_OP_MOD, $1, $3, @$)); }
  | '-' expr %prec UNARY   { CHK($$ = unop(ctx, ZQL_OP_NEG, $2, @$)); }
  | '+' expr %prec UNARY   { CHK($$ = unop(ctx, ZQL_OP_PLUS, $2, @$)); }
  | primary                { $$ = $1; }
  ;

primary
  : literal                { $$ = $1; }
  | path                   { $$ = $1; }
  | paramref               { $$ = $1; }
  | '(' expr ')'           { $$ = $2; }
  | call                   { $$ = $1; }
  | bucket                 { $$ = $1; }
  | array                  { $$ = $1; }
  | doc                    { $$ = $1; }
  ;

paramref
  : PARAMREF               { CHK($$ = node(ctx, ZQL_N_PARAMREF, @$)); $$->u.paramref.name = $1.s; }
  ;

literal
  : INT                    { CHK($$ = node(ctx, ZQL_N_INT, @$)); $$->u.lit.i = $1; }
  | DOUBLE                 { CHK($$ = node(ctx, ZQL_N_DOUBLE, @$)); $$->u.lit.d = $1; }
  | INF                    { CHK($$ = node(ctx, ZQL_N_DOUBLE, @$)); $$->u.lit.d = HUGE_VAL; }
  | NAN_                   { CHK($$ = node(ctx, ZQL_N_DOUBLE, @$)); $$->u.lit.d = NAN; }
  | STRING                 { CHK($$ = node(ctx, ZQL_N_STRING, @$));
                             $$->u.lit.str.s = $1.s; $$->u.lit.str.len = $1.len; }
  | DURATION               { CHK($$ = node(ctx, ZQL_N_DURATION, @$)); $$->u.lit.i = $1; }
  | REGEX                  { CHK($$ = node(ctx, ZQL_N_REGEX, @$));
                             $$->u.regex.pattern = $1.pattern; $$->u.regex.flags = $1.flags; }
  | TRUE                   { CHK($$ = node(ctx, ZQL_N_BOOL, @$)); $$->u.lit.b = true; }
  | FALSE                  { CHK($$ = node(ctx, ZQL_N_BOOL, @$)); $$->u.lit.b = false; }
  | NULL_                  { CHK($$ = node(ctx, ZQL_N_NULL, @$)); }
  | MISSING                { CHK($$ = node(ctx, ZQL_N_MISSING_LIT, @$)); }
  ;

path
  : IDENT
      { CHK($$ = node(ctx, ZQL_N_PATH, @$));
        $$->u.path.root = $1.s; $$->u.path.root_span = @1; }
  | path '.' IDENT
      { $$ = $1; $$->span = @$;
        zql_step_t st = {ZQL_STEP_FIELD, $3.s, 0, @3};
        CHK(zql_path_push(A, $$, st) == 0 || (ctx->lex.oom = true, false)); }
  | path '[' INT ']'
      { $$ = $1; $$->span = @$;
        zql_step_t st = {ZQL_STEP_INDEX, NULL, $3, @3};
        CHK(zql_path_push(A, $$, st) == 0 || (ctx->lex.oom = true, false)); }
  | path '[' '-' INT ']'
      { $$ = $1; $$->span = @$;
        zql_span_t sp = {@3.start, @4.end};
        zql_step_t st = {ZQL_STEP_INDEX, NULL, -$4, sp};
        CHK(zql_path_push(A, $$, st) == 0 || (ctx->lex.oom = true, false)); }
  | path '[' '*' ']'
      { $$ = $1; $$->span = @$;
        zql_step_t st = {ZQL_STEP_ALL, NULL, 0, @3};
        CHK(zql_path_push(A, $$, st) == 0 || (ctx->lex.oom = true, false)); }
  ;

call
  : IDENT '(' ')'
      { CHK($$ = node(ctx, ZQL_N_CALL, @$)); $$->u.call.name = $1.s; $$->u.call.name_span = @1; }
  | IDENT '(' arglist ')'
      { $$ = $3; $$->span = @$; $$->u.call.name = $1.s; $$->u.call.name_span = @1;
        CHK(done(ctx, $$)); }
  | IF '(' arglist ')'
      { $$ = $3; $$->span = @$; $$->u.call.name = "if"; $$->u.call.name_span = @1;
        CHK(done(ctx, $$)); }
  ;

arglist
  : expr                   { CHK($$ = node(ctx, ZQL_N_CALL, @$)); CHK(push(ctx, &$$->u.call.args, $1)); }
  | BY expr                { CHK($$ = node(ctx, ZQL_N_CALL, @$)); CHK(call_mod(ctx, $$, &$$->u.call.by, $2, "by", @1)); }
  | WEIGHT expr            { CHK($$ = node(ctx, ZQL_N_CALL, @$)); CHK(call_mod(ctx, $$, &$$->u.call.weight, $2, "weight", @1)); }
  | GAP expr               { CHK($$ = node(ctx, ZQL_N_CALL, @$)); CHK(call_mod(ctx, $$, &$$->u.call.gap, $2, "gap", @1)); }
  | arglist ',' expr       { $$ = $1; CHK(push(ctx, &$$->u.call.args, $3)); }
  | arglist ',' BY expr    { $$ = $1; CHK(call_mod(ctx, $$, &$$->u.call.by, $4, "by", @3)); }
  | arglist ',' WEIGHT expr { $$ = $1; CHK(call_mod(ctx, $$, &$$->u.call.weight, $4, "weight", @3)); }
  | arglist ',' GAP expr   { $$ = $1; CHK(call_mod(ctx, $$, &$$->u.call.gap, $4, "gap", @3)); }
  | arglist BY expr        { $$ = $1; CHK(call_mod(ctx, $$, &$$->u.call.by, $3, "by", @2)); }
  | arglist WEIGHT expr    { $$ = $1; CHK(call_mod(ctx, $$, &$$->u.call.weight, $3, "weight", @2)); }
  | arglist GAP expr       { $$ = $1; CHK(call_mod(ctx, $$, &$$->u.call.gap, $3, "gap", @2)); }
  ;

bucket
  : BUCKET '(' expr ',' bspec ')'
      { $$ = $5; $$->span = @$; $$->u.bucket.ts = $3; CHK(done(ctx, $$)); }
  ;

bspec
  : IDENT
      { CHK($$ = node(ctx, ZQL_N_BUCKET, @$));
        $$->u.bucket.unit = $1.s; $$->u.bucket.unit_span = @1; }
  | EVERY literal IDENT
      { CHK($$ = node(ctx, ZQL_N_BUCKET, @$)); $$->u.bucket.every = $2;
        $$->u.bucket.unit = $3.s; $$->u.bucket.unit_span = @3; }
  | bspec TZ strparam
      { $$ = $1;
        if ($$->u.bucket.tz) { zql_yyerror(&@2, scanner, ctx, "duplicate 'tz' in bucket()"); YYERROR; }
        $$->u.bucket.tz = $3; }
  | bspec IDENT STARTS IDENT
      { $$ = $1;
        if (strcmp($2.s, "week") != 0) {
          zql_yyerror(&@2, scanner, ctx, "unexpected identifier, expecting 'week starts DAY'");
          YYERROR;
        }
        if ($$->u.bucket.week_start) { zql_yyerror(&@2, scanner, ctx, "duplicate 'week starts' in bucket()"); YYERROR; }
        $$->u.bucket.week_start = $4.s; $$->u.bucket.week_span = @4; }
  | bspec ORIGIN strparam
      { $$ = $1;
        if ($$->u.bucket.origin) { zql_yyerror(&@2, scanner, ctx, "duplicate 'origin' in bucket()"); YYERROR; }
        $$->u.bucket.origin = $3; }
  ;

/* a string literal or a $parameter (a zone name, an origin) */
strparam
  : STRING                 { CHK($$ = node(ctx, ZQL_N_STRING, @$));
                             $$->u.lit.str.s = $1.s; $$->u.lit.str.len = $1.len; }
  | paramref               { $$ = $1; }
  ;

array
  : '[' ']'                { CHK($$ = node(ctx, ZQL_N_ARRAY, @$)); }
  | '[' exprs ']'          { $$ = $2; $$->kind = ZQL_N_ARRAY; $$->span = @$; CHK(done(ctx, $$)); }
  | '[' exprs ',' ']'      { $$ = $2; $$->kind = ZQL_N_ARRAY; $$->span = @$; CHK(done(ctx, $$)); }
  ;

exprs
  : expr                   { CHK($$ = node(ctx, ZQL_N_BLOCK, @$)); CHK(push(ctx, &$$->u.list, $1)); }
  | exprs ',' expr         { $$ = $1; CHK(push(ctx, &$$->u.list, $3)); }
  ;

doc
  : '{' '}'                { CHK($$ = node(ctx, ZQL_N_DOC, @$)); }
  | '{' docfields '}'      { $$ = $2; $$->span = @$; CHK(done(ctx, $$)); }
  | '{' docfields ',' '}'  { $$ = $2; $$->span = @$; CHK(done(ctx, $$)); }
  ;

docfields
  : docfield               { CHK($$ = node(ctx, ZQL_N_DOC, @$)); CHK(push(ctx, &$$->u.list, $1)); }
  | docfields ',' docfield { $$ = $1; CHK(push(ctx, &$$->u.list, $3)); }
  ;

docfield
  : IDENT ':' expr
      { CHK($$ = node(ctx, ZQL_N_DOCFIELD, @$)); $$->u.docfield.name = $1.s;
        $$->u.docfield.name_span = @1; $$->u.docfield.value = $3; CHK(done(ctx, $$)); }
  | STRING ':' expr
      { CHK($$ = node(ctx, ZQL_N_DOCFIELD, @$)); $$->u.docfield.name = $1.s;
        $$->u.docfield.name_span = @1; $$->u.docfield.value = $3; CHK(done(ctx, $$)); }
  ;

%%

static void zql_yyerror(zql_span_t *loc, zql_scanner_t scanner, zql_parse_ctx_t *ctx,
                        const char *msg)
{
  (void)scanner;
  if (ctx->lex.fatal)
    return;
  if (strcmp(msg, "memory exhausted") == 0) {
    if (ctx->lex.oom)
      return; /* reported by the caller as ZQL_E_NOMEM */
    if (!ctx->deep_reported) {
      ctx->deep_reported = true;
      zql_error_t *e = zql_diag_add(ctx->lex.diags, ctx->lex.src, ZQL_E_TOO_DEEP, *loc,
                                    "nesting too deep");
      zql_diag_hint(ctx->lex.diags, e, "at most %d levels of nesting are allowed",
                    ZQL_MAX_DEPTH);
    }
    ctx->lex.fatal = true;
    return;
  }
  if (ctx->lex.last_invalid)
    return; /* the scanner reported this token already */
  const char *m = msg;
  if (strncmp(m, "syntax error, ", 14) == 0)
    m += 14;
  zql_error_t *e = zql_diag_add(ctx->lex.diags, ctx->lex.src, ZQL_E_SYNTAX, *loc, "%s", m);
  if (strncmp(m, "unexpected '='", 14) == 0)
    zql_diag_hint(ctx->lex.diags, e, "compare with '=='");
}

static zql_node_t *node(zql_parse_ctx_t *ctx, zql_node_kind_t kind, zql_span_t span)
{
  zql_node_t *n = zql_node_new(ctx->lex.arena, kind, span);
  if (!n)
    ctx->lex.oom = true;
  return n;
}

/* Fix a finished node's depth; report E1011 once when it is too deep. */
static zql_node_t *done(zql_parse_ctx_t *ctx, zql_node_t *n)
{
  zql_node_fix_depth(n);
  /* only expressions are limited here: statements and blocks are bounded by the
   * scanner's bracket limit, and add only a few levels each */
  if (n->kind >= ZQL_N_INT && n->depth > ZQL_MAX_DEPTH) {
    if (!ctx->deep_reported) {
      ctx->deep_reported = true;
      zql_error_t *e = zql_diag_add(ctx->lex.diags, ctx->lex.src, ZQL_E_TOO_DEEP, n->span,
                                    "expression nested too deeply");
      zql_diag_hint(ctx->lex.diags, e, "at most %d levels of nesting are allowed",
                    ZQL_MAX_DEPTH);
    }
    ctx->lex.fatal = true;
    return NULL;
  }
  return n;
}

static zql_node_t *binop(zql_parse_ctx_t *ctx, zql_op_t op, zql_node_t *l, zql_node_t *r,
                         zql_span_t span)
{
  zql_node_t *n = node(ctx, ZQL_N_BINARY, span);
  if (!n)
    return NULL;
  n->u.binary.op = op;
  n->u.binary.lhs = l;
  n->u.binary.rhs = r;
  return done(ctx, n);
}

static zql_node_t *unop(zql_parse_ctx_t *ctx, zql_op_t op, zql_node_t *arg, zql_span_t span)
{
  zql_node_t *n = node(ctx, ZQL_N_UNARY, span);
  if (!n)
    return NULL;
  n->u.unary.op = op;
  n->u.unary.arg = arg;
  return done(ctx, n);
}

static bool push(zql_parse_ctx_t *ctx, zql_list_t *l, zql_node_t *n)
{
  if (zql_list_push(ctx->lex.arena, l, n) != 0) {
    ctx->lex.oom = true;
    return false;
  }
  return true;
}

static bool call_mod(zql_parse_ctx_t *ctx, zql_node_t *call, zql_node_t **slot,
                     zql_node_t *e, const char *word, zql_span_t span)
{
  (void)call;
  if (*slot) {
    zql_diag_add(ctx->lex.diags, ctx->lex.src, ZQL_E_SYNTAX, span,
                 "duplicate '%s' in function call", word);
    /* keep the first; the error stops the file before analysis */
    return true;
  }
  *slot = e;
  return true;
}

/* Token names for --dump=tokens: bison's alias without its double quotes, written into
 * the caller's buffer (no static state, so it is safe from any thread). */
const char *zql_token_name(int kind, char *buf, size_t size)
{
  int sym = YYTRANSLATE(kind);
  const char *n = sym >= 0 && sym < YYNTOKENS ? yysymbol_name(sym) : "?";
  size_t len = strlen(n);
  if (len >= 2 && n[0] == '"' && n[len - 1] == '"') {
    n++;
    len -= 2;
  }
  if (size == 0)
    return "";
  if (len >= size)
    len = size - 1;
  memcpy(buf, n, len);
  buf[len] = '\0';
  return buf;
}

/* The parser entry used by parse.c (keeps yyparse's signature private to this file). */
int zql_gram_parse(zql_scanner_t scanner, zql_parse_ctx_t *ctx)
{
  return zql_yyparse(scanner, ctx);
}

