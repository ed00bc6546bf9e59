/*
 * ast.h -- ALL ZQL syntax-tree nodes (stage 2: raw AST; stage 2b: checked AST).
 *
 * One struct, zql_node_t, tagged by `kind`, with a union of per-kind payloads (PostgreSQL
 * parsenodes.h + NodeTag, R2 of the style guide). gram.y builds the raw tree with the
 * constructors below and does nothing else; analyze.c then fills the "checked" fields
 * (marked CHECKED) in place: resolved names, function entries, types, output names. A
 * tree is "checked" when zql_analyze() returned with no errors.
 *
 * Memory: every node, list and string lives in the query arena given to the
 * constructors; nothing is freed individually. Strings are NUL-terminated (string
 * literals may also contain NUL, hence their explicit length).
 *
 * Spans: every node has the byte span [start, end) of the source text it came from.
 * `depth` is the node's height (1 for leaves); constructors compute it, and the parser
 * rejects trees deeper than ZQL_MAX_DEPTH so that every recursive walker is safe.
 */
#ifndef ZQL_AST_H
#define ZQL_AST_H

#include "runtime/base/zql_common.h"

#include "runtime/base/arena.h"
#include "runtime/base/error.h"

#define ZQL_MAX_DEPTH 256

typedef struct zql_node zql_node_t;
struct zql_func; /* parser/registry.h */

/* A growable array of node pointers, arena-backed. */
typedef struct zql_list {
  zql_node_t **items;
  uint32_t n, cap;
} zql_list_t;

/* ORDER: keep ast.c's kind_names[] in the same order. */
typedef enum zql_node_kind {
  /* ---- items of a file (statements) ---- */
  ZQL_N_FILE,       /* list: items */
  ZQL_N_PARAM,      /* decl: name, value */
  ZQL_N_TABLE,      /* table */
  ZQL_N_REDUCER,    /* reducer */
  ZQL_N_AGGREGATE,  /* query (is_definition) */
  ZQL_N_QUERY,      /* query (ad-hoc) */
  ZQL_N_EXPLAIN,    /* explain: target query or name */
  /* ---- clauses ---- */
  ZQL_N_SOURCE,     /* source */
  ZQL_N_WHERE,      /* unary.arg = predicate (a row op) */
  ZQL_N_LET,        /* decl: name, value (a row op, or a map statement) */
  ZQL_N_UNWIND,     /* unwind (a row op) */
  ZQL_N_PER,        /* per */
  ZQL_N_KEY,        /* key: group-by key */
  ZQL_N_AGGITEM,    /* aggitem: name = expr [where cond] [limit N else IDENT] */
  ZQL_N_RANK,       /* rank */
  ZQL_N_ORDER,      /* order: one order-by term */
  ZQL_N_OPTION,     /* option */
  ZQL_N_FIELD,      /* field: name : type (table indices, reducer state shape) */
  ZQL_N_TYPE,       /* type: a type name */
  /* ---- map blocks ---- */
  ZQL_N_BLOCK,      /* list: statements */
  ZQL_N_IF,         /* cond_stmt: if (cond) then [else] */
  ZQL_N_WHEN,       /* cond_stmt: when (cond) then */
  ZQL_N_FOR,        /* for_stmt */
  ZQL_N_EMIT,       /* emit */
  /* ---- expressions ---- */
  ZQL_N_INT,        /* lit.i */
  ZQL_N_DOUBLE,     /* lit.d */
  ZQL_N_STRING,     /* lit.s (len) */
  ZQL_N_BOOL,       /* lit.b */
  ZQL_N_NULL,
  ZQL_N_MISSING_LIT,/* the literal `missing` */
  ZQL_N_DURATION,   /* lit.i = milliseconds */
  ZQL_N_REGEX,      /* regex */
  ZQL_N_PATH,       /* path: root + steps */
  ZQL_N_PARAMREF,   /* paramref: $name */
  ZQL_N_CALL,       /* call */
  ZQL_N_BUCKET,     /* bucket(ts, [every N] unit [tz Z] [week starts D] [origin O]) */
  ZQL_N_UNARY,      /* unary: op, arg */
  ZQL_N_BINARY,     /* binary: op, lhs, rhs */
  ZQL_N_IS,         /* is: arg, negated, what (null|missing) */
  ZQL_N_IN,         /* in: arg, list, negated */
  ZQL_N_ARRAY,      /* list: elements */
  ZQL_N_DOC,        /* list of ZQL_N_DOCFIELD */
  ZQL_N_DOCFIELD,   /* docfield: name, value */
  ZQL_N__COUNT
} zql_node_kind_t;

/* ORDER: keep ast.c's op_names[] in the same order. */
typedef enum zql_op {
  ZQL_OP_NEG, ZQL_OP_PLUS, ZQL_OP_NOT,                      /* unary */
  ZQL_OP_ADD, ZQL_OP_SUB, ZQL_OP_MUL, ZQL_OP_DIV, ZQL_OP_MOD,
  ZQL_OP_EQ, ZQL_OP_NE, ZQL_OP_LT, ZQL_OP_LE, ZQL_OP_GT, ZQL_OP_GE,
  ZQL_OP_MATCH, ZQL_OP_NOMATCH,                             /* =~ !~ */
  ZQL_OP_AND, ZQL_OP_OR, ZQL_OP_COALESCE,                   /* and or ?? */
  ZQL_OP__COUNT
} zql_op_t;

/* One step of a path after its root. */
typedef enum zql_step_kind {
  ZQL_STEP_FIELD, /* .name */
  ZQL_STEP_INDEX, /* [i]  (negative counts from the end) */
  ZQL_STEP_ALL    /* [*]  */
} zql_step_kind_t;

typedef struct zql_step {
  zql_step_kind_t kind;
  const char *name; /* FIELD */
  int64_t index;    /* INDEX */
  zql_span_t span;
} zql_step_t;

/* What a path's root resolved to (CHECKED). */
typedef enum zql_ref_kind {
  ZQL_REF_UNRESOLVED,
  ZQL_REF_EVENT,   /* a field of the event document (root is its first name) */
  ZQL_REF_SEQ,     /* the pseudo-field _seq */
  ZQL_REF_ROW,     /* the whole row: `event` as a root */
  ZQL_REF_AGGCOL,  /* a column of a `from agg X` source row (key or computed field) */
  ZQL_REF_LET,     /* a let variable */
  ZQL_REF_UNWIND,  /* an unwind alias */
  ZQL_REF_PER,     /* a per-stage alias (entity key or u.NAME results) */
  ZQL_REF_KEY,     /* a group-by key, by output name */
  ZQL_REF_OUTPUT,  /* a computed output field, by name */
  ZQL_REF_LOCAL    /* a map `for` variable or a reducer's s / x / a / b */
} zql_ref_kind_t;

/* Static types known to the analyzer (CHECKED); ANY = unknown until run time. */
typedef enum zql_type {
  ZQL_T_ANY, ZQL_T_NULL, ZQL_T_BOOL, ZQL_T_INT, ZQL_T_DOUBLE, ZQL_T_NUMBER,
  ZQL_T_STRING, ZQL_T_DATE, ZQL_T_DURATION, ZQL_T_REGEX, ZQL_T_DOC, ZQL_T_ARRAY,
  ZQL_T_STATE, /* an aggregator state column (from agg) */
  ZQL_T__COUNT
} zql_type_t;

typedef enum zql_option_kind {
  ZQL_OPT_INTO,       /* str */
  ZQL_OPT_KEY,        /* str, or key_doc */
  ZQL_OPT_MODE,       /* ident: reduce|merge|replace|upsert */
  ZQL_OPT_SCHEDULE,   /* sched + value/str/ident */
  ZQL_OPT_LATENESS,   /* value (duration), ident (late policy, may be NULL), str (sidecar) */
  ZQL_OPT_SETTLE,     /* value (duration) */
  ZQL_OPT_RETAIN,     /* value (duration) */
  ZQL_OPT_ON_ERROR,   /* ident: fail|skip */
  ZQL_OPT_PARTITIONS, /* value (int) */
  ZQL_OPT__COUNT
} zql_option_kind_t;

typedef enum zql_sched_kind {
  ZQL_SCHED_EVERY, /* value: duration */
  ZQL_SCHED_CRON,  /* str */
  ZQL_SCHED_EVENT, /* on event [predicate]: value (may be NULL) */
  ZQL_SCHED_CLOSE, /* on close */
  ZQL_SCHED_AFTER  /* ident: aggregate name */
} zql_sched_kind_t;

struct zql_node {
  zql_node_kind_t kind;
  zql_span_t span;
  uint16_t depth;
  zql_type_t type; /* CHECKED: expressions */
  union {
    zql_list_t list; /* FILE (items), BLOCK, ARRAY, DOC */

    struct {           /* FILE: u.file.items aliases u.list */
      zql_list_t items;
      const struct zql_source *source; /* the text it was parsed from */
    } file;

    struct {           /* PARAM, LET */
      const char *name;
      zql_span_t name_span;
      zql_node_t *value;
      bool used;       /* CHECKED: LET was read */
    } decl;

    struct {           /* TABLE: table NAME[fields] of TYPE: reducer-call; */
      const char *name;
      zql_span_t name_span;
      zql_list_t fields;   /* ZQL_N_FIELD */
      zql_node_t *of;      /* ZQL_N_TYPE */
      zql_node_t *reducer; /* ZQL_N_CALL: sum(), maximum(5), span() */
    } table;

    struct {           /* REDUCER */
      const char *name;
      zql_span_t name_span;
      const char *arg;     /* the input variable (x) */
      zql_node_t *arg_type;/* ZQL_N_TYPE */
      zql_list_t state;    /* ZQL_N_FIELD: the state document's shape */
      zql_list_t parts;    /* ZQL_N_LET named init/add/merge/final, in source order */
      zql_node_t *init, *add, *merge, *final; /* CHECKED: the parts by name */
    } reducer;

    struct {           /* AGGREGATE and QUERY */
      const char *name;    /* AGGREGATE only */
      zql_span_t name_span;
      zql_list_t sources;  /* ZQL_N_SOURCE */
      zql_list_t rowops;   /* ZQL_N_WHERE / ZQL_N_LET / ZQL_N_UNWIND, in order */
      zql_node_t *per;     /* ZQL_N_PER or NULL */
      bool grouped;        /* `group by` present (keys may still be empty only if absent) */
      zql_list_t keys;     /* ZQL_N_KEY */
      bool has_compute;    /* `compute` present */
      zql_list_t compute;  /* ZQL_N_AGGITEM */
      zql_node_t *map;     /* ZQL_N_BLOCK (map form) or NULL */
      zql_node_t *having;  /* expr or NULL */
      zql_node_t *rank;    /* ZQL_N_RANK or NULL */
      zql_list_t order;    /* ZQL_N_ORDER (queries) */
      zql_node_t *limit;   /* ZQL_N_INT (queries) or NULL */
      zql_node_t *offset;  /* ZQL_N_INT (queries) or NULL */
      zql_list_t options;  /* ZQL_N_OPTION (definitions) */
    } query;

    struct {           /* EXPLAIN */
      zql_node_t *target;  /* ZQL_N_QUERY, or NULL when naming an aggregate */
      const char *name;    /* explain NAME */
      zql_span_t name_span;
      bool analyze;        /* explain analyze */
    } explain;

    struct {           /* SOURCE */
      bool is_agg;         /* agg NAME */
      const char *name;    /* "event" or the aggregate name */
      zql_node_t *def;     /* CHECKED: the ZQL_N_AGGREGATE read by `agg NAME` */
    } source;

    struct {           /* WHERE (as a row op), having-like wrappers */
      zql_node_t *arg;
    } unary_clause;

    struct {           /* UNWIND path [as NAME] [keep empty] */
      zql_node_t *path;    /* ZQL_N_PATH */
      const char *alias;   /* NULL: named by the path's last field (CHECKED fills it) */
      zql_span_t alias_span;
      bool keep_empty;
    } unwind;

    struct {           /* PER expr as NAME { items } */
      zql_node_t *key;
      const char *alias;
      zql_span_t alias_span;
      zql_list_t items;    /* ZQL_N_AGGITEM */
    } per;

    struct {           /* KEY expr [per entity] [as NAME] [skip null] */
      zql_node_t *expr;
      zql_node_t *per;     /* session(ts, gap d) per ENTITY: the entity, or NULL */
      const char *alias;   /* as written, or NULL */
      zql_span_t alias_span;
      bool skip_null;
      const char *name;    /* CHECKED: output name (alias or last path field) */
    } key;

    struct {           /* AGGITEM NAME = expr [limit N [else IDENT]] [where cond] */
      const char *name;
      zql_span_t name_span;
      zql_node_t *expr;
      zql_node_t *filter;  /* per-aggregate where, or NULL */
      zql_node_t *limit;   /* literal or NULL (distinct_count ... limit N) */
      zql_node_t *offset;  /* literal or NULL: `limit N offset M` that really is the
                              query's (ad-hoc; the analyzer moves both to the query) */
      const char *else_;   /* "hll" or NULL */
      zql_span_t else_span;
    } aggitem;

    struct {           /* RANK by expr [asc|desc] limit N within (names) */
      zql_node_t *by;
      bool desc;
      zql_node_t *limit;   /* ZQL_N_INT */
      zql_list_t within;   /* ZQL_N_PATH (single names) */
    } rank;

    struct {           /* ORDER: expr [asc|desc] */
      zql_node_t *expr;
      bool desc;
    } order;

    struct {           /* OPTION */
      zql_option_kind_t opt;
      zql_sched_kind_t sched;   /* SCHEDULE */
      const char *str;          /* into / key template / cron / sidecar collection */
      zql_span_t str_span;
      const char *ident;        /* mode / late policy / on_error / after NAME / on IDENT */
      zql_span_t ident_span;
      zql_node_t *value;        /* durations, partitions, on-event predicate */
      bool key_doc;             /* key doc */
    } option;

    struct {           /* FIELD name : type */
      const char *name;
      zql_span_t name_span;
      zql_node_t *type;         /* ZQL_N_TYPE */
    } field;

    struct {           /* TYPE */
      const char *name;
      zql_type_t resolved;      /* CHECKED */
    } typename_;

    struct {           /* IF / WHEN */
      zql_node_t *cond;
      zql_node_t *then;         /* ZQL_N_BLOCK */
      zql_node_t *else_;        /* ZQL_N_BLOCK, ZQL_N_IF (else if) or NULL */
    } cond_stmt;

    struct {           /* FOR NAME in expr block */
      const char *var;
      zql_span_t var_span;
      zql_node_t *iter;
      zql_node_t *body;
    } for_stmt;

    struct {           /* EMIT table[idx, ...] <- value [weight w] */
      const char *table;
      zql_span_t table_span;
      zql_list_t index;
      zql_node_t *value;
      zql_node_t *weight;
      zql_node_t *decl;         /* CHECKED: the ZQL_N_TABLE */
    } emit;

    union {            /* literals */
      int64_t i;
      double d;
      bool b;
      struct {
        const char *s;
        uint32_t len;
      } str;
    } lit;

    struct {           /* REGEX /pattern/flags */
      const char *pattern;
      const char *flags;
    } regex;

    struct {           /* PATH root steps... */
      const char *root;
      zql_span_t root_span;
      zql_step_t *steps;
      uint32_t nsteps, capsteps;
      zql_ref_kind_t ref;       /* CHECKED */
      zql_node_t *target;       /* CHECKED: the LET/UNWIND/PER/KEY/AGGITEM declaring it */
    } path;

    struct {           /* PARAMREF $name */
      const char *name;
      zql_node_t *decl;         /* CHECKED: the ZQL_N_PARAM */
    } paramref;

    struct {           /* CALL name(args [by e] [weight e] [gap e]) */
      const char *name;
      zql_span_t name_span;
      zql_list_t args;
      zql_node_t *by;           /* first(e by t) / last(e by t) */
      zql_node_t *weight;       /* topk(e, k, weight w), maximum(e, N weight w) */
      zql_node_t *gap;          /* session(ts, gap 30m) */
      const struct zql_func *func; /* CHECKED: registry entry (NULL for user reducers) */
      zql_node_t *reducer;      /* CHECKED: ZQL_N_REDUCER for a user reducer */
      bool is_agg;              /* CHECKED: an aggregator call */
    } call;

    struct {           /* BUCKET */
      zql_node_t *ts;
      zql_node_t *every;        /* ZQL_N_INT or NULL */
      const char *unit;
      zql_span_t unit_span;
      zql_node_t *tz;           /* ZQL_N_STRING, ZQL_N_PARAMREF or NULL */
      const char *week_start;   /* day name or NULL */
      zql_span_t week_span;
      zql_node_t *origin;       /* ZQL_N_STRING, ZQL_N_PARAMREF or NULL */
    } bucket;

    struct {           /* UNARY */
      zql_op_t op;
      zql_node_t *arg;
    } unary;

    struct {           /* BINARY */
      zql_op_t op;
      zql_node_t *lhs, *rhs;
    } binary;

    struct {           /* IS */
      zql_node_t *arg;
      bool negated;
      bool missing;             /* is missing (else: is null) */
    } is;

    struct {           /* IN */
      zql_node_t *arg;
      zql_node_t *set;          /* ZQL_N_ARRAY, or any primary (a $param, a path) */
      bool negated;
    } in;

    struct {           /* DOCFIELD */
      const char *name;
      zql_span_t name_span;
      zql_node_t *value;
    } docfield;
  } u;
};

/* ---- constructors (return NULL when out of memory) ---- */
zql_node_t *zql_node_new(zql_arena_t *a, zql_node_kind_t kind, zql_span_t span);
/* Append to a list; returns 0 or ZQL_E_NOMEM. */
int zql_list_push(zql_arena_t *a, zql_list_t *l, zql_node_t *n);
/* Append a step to a PATH node; returns 0 or ZQL_E_NOMEM. */
int zql_path_push(zql_arena_t *a, zql_node_t *path, zql_step_t step);
/* Recompute n->depth from its children (1 + max child depth). Call after filling a node. */
void zql_node_fix_depth(zql_node_t *n);

/* Visit every direct child node of n (lists included), in source order. */
void zql_node_children(zql_node_t *n, void (*fn)(zql_node_t *child, void *arg), void *arg);

const char *zql_node_kind_name(zql_node_kind_t k); /* "AGGREGATE", "BINARY", ... */
const char *zql_op_name(zql_op_t op);              /* "+", "and", "??", ... */
const char *zql_type_name(zql_type_t t);           /* "int", "string", ... */
const char *zql_ref_kind_name(zql_ref_kind_t r);   /* "event", "let", ... */
const char *zql_option_name(zql_option_kind_t o);  /* "into", "mode", ... */

#endif
