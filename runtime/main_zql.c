/*
 * main_zql.c -- the `zql` command-line client (a thin layer over libzql).
 *
 *   zql check [-q|-v] FILE...          check ZQL files: exit 0 valid, 1 errors, 2 usage
 *   zql --dump=tokens|ast|checked FILE...  print a front-end stage (golden-tested)
 *   zql --list-functions[=text|markdown]   the function registry (docs/functions.md)
 *   zql --version | --help
 *
 * Global options may come before or after the command. Diagnostics go to stderr in the
 * FILE:LINE:COL format of parser/source.h; results go to stdout. Colour follows
 * --color=auto|always|never, NO_COLOR and TERM=dumb. Later issues add run, explain,
 * compile, import/export, the REPL and the worker; the command table below grows.
 */
#include "runtime/base/zql_common.h"

#include <malloc.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/cli.h"
#include "runtime/store_input.h"


#include "runtime/zql.h"

enum { EXIT_OK = 0, EXIT_ERRORS = 1, EXIT_USAGE = 2 };

typedef enum { DUMP_NONE, DUMP_TOKENS, DUMP_AST, DUMP_CHECKED, DUMP_PLAN } dump_t;

typedef struct {
  int color; /* -1 auto, 0 never, 1 always */
  dump_t dump;
  int verbosity; /* -1 quiet, 0 normal, 1 verbose */
  const char *list_functions; /* NULL, "text" or "markdown" */
  const char *data_dir;       /* --data DIR */
} opts_t;

/* Subcommands implemented in their own files (runtime/cmd_*.c): they get every argument
 * after their name except the global options, which main() takes wherever they are. */
typedef int (*cmd_fn)(const zql_cli_t *cli, int argc, char **argv);
static const struct {
  const char *name;
  cmd_fn fn;
} commands[] = {
    {"gen", zql_cmd_gen},
    {"log", zql_cmd_log},
    {"import", zql_cmd_import},
    {"export", zql_cmd_export},
    {"run", zql_cmd_run},
    {"explain", zql_cmd_explain},
    {"compile", zql_cmd_compile},
    {"agg", zql_cmd_agg},
    {"send", zql_cmd_send},
    {"keygen", zql_cmd_keygen},
    {"status", zql_cmd_status},
};

static void usage(FILE *f)
{
  fprintf(f,
          "usage: zql [OPTIONS] COMMAND [ARGS]\n"
          "\n"
          "Realtime event analytics with the ZQL aggregate language.\n"
          "\n"
          "Commands:\n"
          "  check [-q|-v] FILE...        check ZQL files (\"-\" reads stdin); exit 0 when\n"
          "                               valid, 1 on errors, 2 on usage errors;\n"
          "                               -v explains every statement, -q prints only errors\n"
          "  gen --events N --seed S ...  write deterministic synthetic events (zql gen --help)\n"
          "  import [--strict] FILE...    append events (.bson, NDJSON, extended JSON, gzip) to\n"
          "                               the event log of the data directory\n"
          "  export [--from A --to B]     write the log's events (ndjson or --format bson)\n"
          "  log check [--repair] | stat  verify or describe the event log of the data directory\n"
          "  run FILE [--dry-run] ...     run the aggregates of FILE (.zql or .zqlc) over the\n"
          "                               event log and print their rows (zql run --help)\n"
          "  explain FILE [NAME...]       print the plans of FILE's aggregates and queries;\n"
          "                               --analyze runs them and adds per-stage figures\n"
          "  compile FILE.zql [-o F.zqlc] compile FILE's statements into a plan file\n"
          "  agg add|list|show|drop|run|rebuild|backfill|runs\n"
          "                               incremental aggregates in the results store\n"
          "                               (zql agg --help)\n"
          "  send [--ack] [--json] [FILE...]\n"
          "                               send events to zqld over ZeroMQ (zql send --help)\n"
          "  keygen [--out FILE]          make a CURVE key pair for zqld and its clients\n"
          "  status [--url URL] [--json]  zqld's ingest, log and aggregates (zql status --help)\n"
          "  -c 'QUERY; ...'              run ad-hoc queries: --format table|csv|json|ndjson,\n"
          "                               --threads N, --mem-limit SIZE, --now DATE\n"
          "\n"
          "Options (anywhere on the line):\n"
          "  --data DIR                   the data directory (default $ZQL_DATA or ./zql-data)\n"
          "  --dump=tokens|ast|checked|plan FILE...\n"
          "                               print the tokens, the raw syntax tree, the\n"
          "                               checked tree or the plans (with bytecode) of each file\n"
          "  --list-functions[=text|markdown]\n"
          "                               list every built-in function and aggregator\n"
          "  --color=auto|always|never    colour diagnostics (default auto; NO_COLOR is\n"
          "                               honoured)\n"
          "  -q, --quiet / -v, --verbose  less / more output\n"
          "  -h, --help                   show this help\n"
          "  --version                    show the version\n"
          "\n"
          "Documentation: docs/language.md (the language), docs/errors.md (error codes).\n");
}

static int usage_error(const char *fmt, ...) ZQL_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "zql: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'zql --help'.\n");
  return EXIT_USAGE;
}

static bool use_color(const opts_t *o)
{
  if (o->color >= 0)
    return o->color == 1;
  const char *nc = getenv("NO_COLOR");
  const char *term = getenv("TERM");
  if ((nc && *nc) || (term && strcmp(term, "dumb") == 0))
    return false;
  return isatty(STDERR_FILENO);
}

static void print_diags(const zql_diags_t *d, const opts_t *o)
{
  zql_strbuf_t out = ZQL_STRBUF_INIT;
  zql_diags_render(&out, d, use_color(o));
  if (out.oom)
    fputs("zql: out of memory while printing errors\n", stderr);
  fwrite(out.buf, 1, out.len, stderr);
  zql_strbuf_release(&out);
}

/* ---- zql check -v: one paragraph per statement, quoting the source ---- */

static void add_src(zql_strbuf_t *o, const zql_source_t *src, zql_span_t sp)
{
  bool space = false;
  for (uint32_t i = sp.start; i < sp.end && i < src->len; i++) {
    char c = src->text[i];
    if (c == '\n' || c == '\t' || c == '\r' || c == ' ') {
      space = true;
      continue;
    }
    if (space && o->len && o->buf[o->len - 1] != ' ')
      zql_strbuf_addc(o, ' ');
    space = false;
    zql_strbuf_addc(o, c);
  }
}

static void describe_items(zql_strbuf_t *o, const zql_source_t *src, const zql_list_t *l)
{
  for (uint32_t i = 0; i < l->n; i++) {
    const zql_node_t *it = l->items[i];
    zql_strbuf_addf(o, "%s%s = ", i ? ", " : "", it->u.aggitem.name);
    add_src(o, src, it->u.aggitem.expr->span);
    if (it->u.aggitem.limit) {
      zql_strbuf_adds(o, " limit ");
      add_src(o, src, it->u.aggitem.limit->span);
      if (it->u.aggitem.else_)
        zql_strbuf_addf(o, " else %s", it->u.aggitem.else_);
    }
    if (it->u.aggitem.filter) {
      zql_strbuf_adds(o, " where ");
      add_src(o, src, it->u.aggitem.filter->span);
    }
  }
}

/* The tables a map block emits into, each once, in order of first emit. */
typedef struct {
  const char *names[64];
  int n;
} tables_t;

static void collect_emits(zql_node_t *n, void *arg)
{
  tables_t *t = arg;
  if (n->kind != ZQL_N_EMIT) {
    zql_node_children(n, collect_emits, arg);
    return;
  }
  for (int i = 0; i < t->n; i++)
    if (strcmp(t->names[i], n->u.emit.table) == 0)
      return;
  if (t->n < (int)ZQL_ARRAY_LEN(t->names))
    t->names[t->n++] = n->u.emit.table;
}

static void describe_query(zql_strbuf_t *o, const zql_source_t *src, const zql_node_t *q)
{
  zql_strbuf_adds(o, "    reads   ");
  for (uint32_t i = 0; i < q->u.query.sources.n; i++) {
    const zql_node_t *s = q->u.query.sources.items[i];
    zql_strbuf_addf(o, "%s%s%s", i ? ", " : "", s->u.source.is_agg ? "the results of " : "",
                    s->u.source.is_agg ? s->u.source.name : "the event log");
  }
  zql_strbuf_addc(o, '\n');
  for (uint32_t i = 0; i < q->u.query.rowops.n; i++) {
    const zql_node_t *r = q->u.query.rowops.items[i];
    zql_strbuf_adds(o, r->kind == ZQL_N_WHERE ? "    keeps   rows where "
                       : r->kind == ZQL_N_LET ? "    lets    "
                                              : "    unwinds ");
    add_src(o, src, r->kind == ZQL_N_WHERE ? r->u.unary_clause.arg->span : r->span);
    zql_strbuf_addc(o, '\n');
  }
  if (q->u.query.per) {
    const zql_node_t *p = q->u.query.per;
    zql_strbuf_adds(o, "    per     ");
    add_src(o, src, p->u.per.key->span);
    zql_strbuf_addf(o, " (as %s): ", p->u.per.alias);
    describe_items(o, src, &p->u.per.items);
    zql_strbuf_addc(o, '\n');
  }
  if (q->u.query.grouped) {
    zql_strbuf_adds(o, "    groups  by ");
    for (uint32_t i = 0; i < q->u.query.keys.n; i++) {
      const zql_node_t *k = q->u.query.keys.items[i];
      zql_strbuf_addf(o, "%s%s", i ? ", " : "", k->u.key.name ? k->u.key.name : "?");
      if (k->u.key.expr->kind != ZQL_N_PATH || k->u.key.alias) {
        zql_strbuf_adds(o, " = ");
        add_src(o, src, k->u.key.expr->span);
      }
    }
    zql_strbuf_addc(o, '\n');
  } else if (q->u.query.has_compute) {
    zql_strbuf_adds(o, "    groups  all rows into one\n");
  }
  if (q->u.query.has_compute) {
    zql_strbuf_adds(o, "    computes ");
    describe_items(o, src, &q->u.query.compute);
    zql_strbuf_addc(o, '\n');
  }
  if (q->u.query.map) {
    tables_t t = {{NULL}, 0};
    collect_emits(q->u.query.map, &t);
    zql_strbuf_adds(o, "    maps    each row with a procedural block, emitting into");
    for (int i = 0; i < t.n; i++)
      zql_strbuf_addf(o, "%s %s", i ? "," : "", t.names[i]);
    zql_strbuf_addc(o, '\n');
  }
  if (q->u.query.having) {
    zql_strbuf_adds(o, "    having  ");
    add_src(o, src, q->u.query.having->span);
    zql_strbuf_addc(o, '\n');
  }
  if (q->u.query.rank) {
    zql_strbuf_adds(o, "    ranks   ");
    add_src(o, src, q->u.query.rank->span);
    zql_strbuf_addc(o, '\n');
  }
  if (q->u.query.order.n) {
    zql_strbuf_adds(o, "    orders  by ");
    for (uint32_t i = 0; i < q->u.query.order.n; i++) {
      if (i)
        zql_strbuf_adds(o, ", ");
      add_src(o, src, q->u.query.order.items[i]->span);
    }
    zql_strbuf_addc(o, '\n');
  }
  if (q->u.query.limit) {
    zql_strbuf_adds(o, "    returns at most ");
    add_src(o, src, q->u.query.limit->span);
    zql_strbuf_adds(o, " rows\n");
  }
  for (uint32_t i = 0; i < q->u.query.options.n; i++) {
    const zql_node_t *op = q->u.query.options.items[i];
    zql_strbuf_addf(o, "    %-7s ", zql_option_name(op->u.option.opt));
    uint32_t kwlen = (uint32_t)strlen(zql_option_name(op->u.option.opt));
    zql_span_t rest = {op->span.start + kwlen, op->span.end};
    add_src(o, src, rest);
    zql_strbuf_addc(o, '\n');
  }
}

static void describe_file(zql_strbuf_t *o, const zql_node_t *file)
{
  const zql_source_t *src = zql_file_source(file);
  for (uint32_t i = 0; i < file->u.list.n; i++) {
    const zql_node_t *it = file->u.list.items[i];
    uint32_t line, col;
    zql_source_linecol(src, it->span.start, &line, &col);
    switch (it->kind) {
    case ZQL_N_PARAM:
      zql_strbuf_addf(o, "  line %u: parameter $%s = ", line, it->u.decl.name);
      add_src(o, src, it->u.decl.value->span);
      zql_strbuf_addc(o, '\n');
      break;
    case ZQL_N_TABLE:
      zql_strbuf_addf(o, "  line %u: table %s, reduced with ", line, it->u.table.name);
      add_src(o, src, it->u.table.reducer->span);
      zql_strbuf_addc(o, '\n');
      break;
    case ZQL_N_REDUCER:
      zql_strbuf_addf(o, "  line %u: reducer %s(%s) (%s)\n", line, it->u.reducer.name,
                      it->u.reducer.arg,
                      it->u.reducer.merge ? "mergeable" : "not mergeable: recomputed");
      break;
    case ZQL_N_AGGREGATE:
      zql_strbuf_addf(o, "  line %u: aggregate %s\n", line, it->u.query.name);
      describe_query(o, src, it);
      break;
    case ZQL_N_QUERY:
      zql_strbuf_addf(o, "  line %u: ad-hoc query\n", line);
      describe_query(o, src, it);
      break;
    case ZQL_N_EXPLAIN:
      zql_strbuf_addf(o, "  line %u: explain ", line);
      if (it->u.explain.target) {
        zql_strbuf_adds(o, "of an ad-hoc query\n");
        describe_query(o, src, it->u.explain.target);
      } else {
        zql_strbuf_addf(o, "of aggregate %s\n", it->u.explain.name);
      }
      break;
    default:
      break;
    }
  }
}

static void count_items(const zql_node_t *file, int *naggs, int *nqueries, int *nother)
{
  *naggs = *nqueries = *nother = 0;
  for (uint32_t i = 0; i < file->u.list.n; i++) {
    zql_node_kind_t k = file->u.list.items[i]->kind;
    if (k == ZQL_N_AGGREGATE)
      (*naggs)++;
    else if (k == ZQL_N_QUERY || k == ZQL_N_EXPLAIN)
      (*nqueries)++;
    else
      (*nother)++;
  }
}

/* ---- commands ---- */

/* Read, parse and analyze the files; `from agg` names they do not define are looked up in
 * the results store of the data directory when there is one (runtime/store_input.h), as
 * `zql run` does. */
static int compile_with_store(const opts_t *o, zql_arena_t *arena, char **paths, int n,
                              zql_diags_t *d, zql_node_t **files)
{
  int rc = zql_parse_paths(arena, (const char *const *)paths, (size_t)n, d, files);
  if (rc)
    return rc;
  const char *env = getenv("ZQL_DATA");
  const char *dir = o->data_dir ? o->data_dir : env && *env ? env : "./zql-data";
  char mdb[4096];
  struct stat st;
  zql_store_t *s = NULL;
  snprintf(mdb, sizeof mdb, "%s/results/data.mdb", dir);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  if (zql_catalog_wanted(files, (size_t)n) && stat(mdb, &st) == 0 &&
      zql_store_open_lmdb(dir, &s, &err) != 0)
    s = NULL; /* an unreadable store: the names stay unknown (E3019) */
  zql_node_t **all;
  size_t nall;
  zql_strbuf_reset(&err);
  rc = zql_analyze_with_catalog(s, arena, files, (size_t)n, d, &all, &nall, &err);
  if (rc && err.len)
    fprintf(stderr, "zql: %s [%s]\n", err.buf, zql_err_code_str(rc));
  zql_strbuf_release(&err);
  zql_store_close(s);
  return rc;
}

static int cmd_check(const opts_t *o, char **paths, int n)
{
  if (n == 0)
    return usage_error("%s", "check: no files given");
  zql_arena_t *arena = zql_arena_create(NULL);
  if (!arena) {
    fputs("zql: out of memory\n", stderr);
    return EXIT_ERRORS;
  }
  zql_diags_t d;
  zql_diags_init(&d, arena);
  zql_node_t **files = zql_arena_calloc(arena, (size_t)n, sizeof *files);
  int rc = files ? compile_with_store(o, arena, paths, n, &d, files) : ZQL_E_NOMEM;
  zql_diags_sort(&d);
  print_diags(&d, o);
  if (rc == ZQL_E_NOMEM)
    fputs("zql: out of memory\n", stderr);
  if (d.nerr == 0 && rc == 0 && o->verbosity >= 0) {
    zql_strbuf_t out = ZQL_STRBUF_INIT;
    for (int i = 0; i < n; i++) {
      int na, nq, nx;
      count_items(files[i], &na, &nq, &nx);
      const char *name = zql_file_source(files[i])->name;
      zql_strbuf_addf(&out, "%s: ok: %d aggregate%s, %d quer%s, %d declaration%s\n", name, na,
                      na == 1 ? "" : "s", nq, nq == 1 ? "y" : "ies", nx, nx == 1 ? "" : "s");
      if (o->verbosity > 0)
        describe_file(&out, files[i]);
    }
    fwrite(out.buf, 1, out.len, stdout);
    zql_strbuf_release(&out);
  }
  int status = (d.nerr > 0 || rc != 0) ? EXIT_ERRORS : EXIT_OK;
  zql_diags_release(&d);
  zql_arena_delete(arena);
  return status;
}

static int cmd_dump(const opts_t *o, char **paths, int n)
{
  if (n == 0)
    return usage_error("%s", "--dump: no files given");
  zql_arena_t *arena = zql_arena_create(NULL);
  if (!arena)
    return EXIT_ERRORS;
  zql_diags_t d;
  zql_diags_init(&d, arena);
  zql_strbuf_t out = ZQL_STRBUF_INIT;
  int rc = 0;
  zql_node_t **files = zql_arena_calloc(arena, (size_t)n, sizeof *files);
  if (!files) {
    rc = ZQL_E_NOMEM;
  } else if (o->dump == DUMP_CHECKED) {
    rc = compile_with_store(o, arena, paths, n, &d, files);
    if (rc == 0 && d.nerr == 0)
      for (int i = 0; i < n; i++) {
        if (n > 1)
          zql_strbuf_addf(&out, "== %s ==\n", paths[i]);
        zql_ast_print(&out, files[i], true);
      }
  } else {
    for (int i = 0; i < n && rc != ZQL_E_NOMEM; i++) {
      zql_source_t src;
      zql_strbuf_t err = ZQL_STRBUF_INIT;
      int r = zql_source_read_file(&src, arena, paths[i], &err);
      if (r != 0) {
        zql_span_t none = {0, 0};
        zql_diag_add(&d, NULL, r, none, "%s", err.buf);
        zql_strbuf_release(&err);
        rc = rc ? rc : r;
        continue;
      }
      zql_strbuf_release(&err);
      if (n > 1)
        zql_strbuf_addf(&out, "== %s ==\n", paths[i]);
      if (o->dump == DUMP_TOKENS) {
        r = zql_dump_tokens(arena, &src, &d, &out);
      } else {
        zql_node_t *file;
        r = zql_parse(arena, &src, &d, &file);
        if (r == 0)
          zql_ast_print(&out, file, false);
      }
      rc = rc ? rc : r;
    }
  }
  fwrite(out.buf, 1, out.len, stdout);
  zql_diags_sort(&d);
  print_diags(&d, o);
  if (rc == ZQL_E_NOMEM || out.oom)
    fputs("zql: out of memory\n", stderr);
  int status = (d.nerr > 0 || rc != 0 || out.oom) ? EXIT_ERRORS : EXIT_OK;
  zql_strbuf_release(&out);
  zql_diags_release(&d);
  zql_arena_delete(arena);
  return status;
}

static const char *kind_word(char k)
{
  switch (k) {
  case 'e': return "expr";
  case 'b': return "condition";
  case 'n': return "number constant";
  case 'i': return "integer constant";
  case 's': return "string constant";
  case 'u': return "time unit";
  case 'd': return "duration constant";
  case 'r': return "regex";
  case 'a': return "array constant";
  case 't': return "state column";
  default: return "?";
  }
}

static int cmd_list_functions(const char *format)
{
  size_t n;
  const zql_func_t *t = zql_func_table(&n);
  bool md = strcmp(format, "markdown") == 0;
  if (md) {
    puts("# ZQL functions and aggregators\n");
    puts("Generated from the function registry (`parser/funclist.h`) by "
         "`zql --list-functions=markdown` (`make docs`); do not edit by hand.\n");
    puts("Arguments: *expr* is any row expression, *condition* a boolean expression; "
         "*constant* arguments must be literals or `$params`. Aggregators are mergeable "
         "(their state can be combined across chunks, runs and workers) unless marked.\n");
  }
  for (int pass = 0; pass < 2; pass++) {
    zql_func_kind_t kind = pass == 0 ? ZQL_FN_AGGREGATE : ZQL_FN_SCALAR;
    if (md) {
      printf("## %s\n\n", pass == 0 ? "Aggregators" : "Scalar functions");
      puts("| function | arguments | result | notes | description |");
      puts("|---|---|---|---|---|");
    }
    for (size_t i = 0; i < n; i++) {
      const zql_func_t *f = &t[i];
      if (f->kind != kind)
        continue;
      char args[256] = "";
      size_t len = 0;
      int shown = f->max_args < 0 ? (int)strlen(f->args) : f->max_args;
      for (int a = 0; a < shown && len < sizeof args - 40; a++) {
        char k = zql_func_arg_kind(f, a);
        len += (size_t)snprintf(args + len, sizeof args - len, "%s%s%s", a ? ", " : "",
                                kind_word(k), a >= f->min_args ? " (optional)" : "");
      }
      if (f->max_args < 0 && len < sizeof args - 8)
        snprintf(args + len, sizeof args - len, ", ...");
      char notes[128] = "";
      size_t nl = 0;
      static const struct { unsigned flag; const char *word; } fl[] = {
          {ZQL_FN_BY, "`by`"}, {ZQL_FN_WEIGHT, "`weight`"}, {ZQL_FN_GAP, "`gap`"},
          {ZQL_FN_LIMIT, "`limit N [else hll]`"}, {ZQL_FN_NONDET, "split-dependent"},
          {ZQL_FN_NOMERGE, "not mergeable"}, {ZQL_FN_VOLATILE, "fixed per run"},
          {ZQL_FN_TABLE, "table reducer"}};
      for (size_t k = 0; k < ZQL_ARRAY_LEN(fl); k++)
        if (f->flags & fl[k].flag)
          nl += (size_t)snprintf(notes + nl, sizeof notes - nl, "%s%s", nl ? ", " : "",
                                 fl[k].word);
      if (md)
        printf("| `%s` | %s | %s | %s | %s |\n", f->synopsis, args[0] ? args : "none",
               zql_type_name(f->result), notes, f->doc);
      else
        printf("%-36s %-9s %s\n", f->synopsis, kind == ZQL_FN_AGGREGATE ? "aggregate" : "scalar",
               f->doc);
    }
    if (md)
      puts("");
  }
  return EXIT_OK;
}

static cmd_fn find_command(const char *name)
{
  for (size_t i = 0; i < ZQL_ARRAY_LEN(commands); i++)
    if (commands[i].fn && strcmp(commands[i].name, name) == 0)
      return commands[i].fn;
  return NULL;
}

/* A global option at argv[*i] (possibly taking argv[*i + 1]): 1 consumed, 0 not global,
 * -1 usage error (reported). */
static int global_option(opts_t *o, int argc, char **argv, int *i)
{
  const char *a = argv[*i];
  if (strcmp(a, "--data") == 0) {
    if (*i + 1 >= argc) {
      usage_error("%s", "--data needs a directory");
      return -1;
    }
    o->data_dir = argv[++*i];
    return 1;
  }
  if (strncmp(a, "--data=", 7) == 0) {
    o->data_dir = a + 7;
    return 1;
  }
  if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
    o->verbosity = -1;
    return 1;
  }
  if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
    o->verbosity = 1;
    return 1;
  }
  if (strncmp(a, "--color=", 8) == 0 || strncmp(a, "--colour=", 9) == 0) {
    const char *v = strchr(a, '=') + 1;
    if (strcmp(v, "auto") == 0)
      o->color = -1;
    else if (strcmp(v, "always") == 0)
      o->color = 1;
    else if (strcmp(v, "never") == 0)
      o->color = 0;
    else {
      usage_error("invalid --color value '%s' (auto, always or never)", v);
      return -1;
    }
    return 1;
  }
  return 0;
}

int main(int argc, char **argv)
{
  /* Large blocks (the engine's arena blocks grow to 1 MiB) always come from mmap, so that
   * memory freed in the middle of a run (the map stage's group tables, partition by
   * partition) goes back to the system instead of staying in the heap: glibc's dynamic
   * threshold would otherwise rise past 1 MiB after the first such free. */
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  /* grow the heap 16 MiB at a time: a short run (an incremental run over the newest
   * events) otherwise spends milliseconds in hundreds of brk calls; untouched padding costs
   * no memory */
  mallopt(M_TOP_PAD, 16 * 1024 * 1024);
  opts_t o = {-1, DUMP_NONE, 0, NULL, NULL};
  const char *command = NULL;
  cmd_fn delegate = NULL; /* a runtime/cmd_*.c subcommand: it parses its own options */
  char **rest = zql_calloc((size_t)argc + 2, sizeof *rest);
  int nrest = 0;
  bool no_more_opts = false;
  if (!rest) {
    fputs("zql: out of memory\n", stderr);
    return EXIT_ERRORS;
  }
  int status = EXIT_OK;
  /* `zql -c 'QUERY' [options]`: every argument but the global options is the ad-hoc
   * command's, wherever -c stands */
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
    if (strcmp(argv[i], "-c") == 0) {
      command = "-c";
      delegate = zql_cmd_adhoc;
      rest[nrest++] = argv[i];
      break;
    }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (delegate == zql_cmd_adhoc && a == rest[0])
      continue;
    int g = no_more_opts ? 0 : global_option(&o, argc, argv, &i);
    if (g < 0) {
      status = EXIT_USAGE;
      goto out;
    }
    if (g > 0)
      continue;
    if (delegate) {
      rest[nrest++] = argv[i];
    } else if (no_more_opts || a[0] != '-' || strcmp(a, "-") == 0) {
      if (!command && o.dump == DUMP_NONE && !o.list_functions) {
        command = a;
        delegate = find_command(a);
        if (delegate)
          rest[nrest++] = argv[i]; /* the subcommand's argv[0] */
      } else {
        rest[nrest++] = argv[i];
      }
    } else if (strcmp(a, "--") == 0) {
      no_more_opts = true;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      goto out;
    } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
      printf("zql %s\n", zql_version());
      goto out;
    } else if (strncmp(a, "--dump=", 7) == 0) {
      const char *v = a + 7;
      if (strcmp(v, "tokens") == 0)
        o.dump = DUMP_TOKENS;
      else if (strcmp(v, "ast") == 0)
        o.dump = DUMP_AST;
      else if (strcmp(v, "checked") == 0)
        o.dump = DUMP_CHECKED;
      else if (strcmp(v, "plan") == 0)
        o.dump = DUMP_PLAN;
      else {
        status = usage_error("invalid --dump stage '%s' (tokens, ast, checked or plan)", v);
        goto out;
      }
      if (command) { /* `zql FILE --dump=ast`: the "command" was a file */
        rest[nrest++] = (char *)command;
        command = NULL;
      }
    } else if (strcmp(a, "--list-functions") == 0) {
      o.list_functions = "text";
    } else if (strncmp(a, "--list-functions=", 17) == 0) {
      o.list_functions = a + 17;
      if (strcmp(o.list_functions, "text") != 0 && strcmp(o.list_functions, "markdown") != 0) {
        status = usage_error("invalid --list-functions format '%s' (text or markdown)",
                             o.list_functions);
        goto out;
      }
    } else {
      status = usage_error("unknown option '%s'", a);
      goto out;
    }
  }
  if (delegate) {
    const char *env = getenv("ZQL_DATA");
    zql_cli_t cli = {
        .data_dir = o.data_dir ? o.data_dir : (env && *env ? env : "./zql-data"),
        .data_explicit = o.data_dir != NULL,
        .color = use_color(&o),
        .verbosity = o.verbosity,
        .stderr_tty = isatty(STDERR_FILENO) != 0,
    };
    rest[nrest] = NULL;
    status = delegate(&cli, nrest, rest);
  } else if (o.list_functions) {
    status = cmd_list_functions(o.list_functions);
  } else if (o.dump == DUMP_PLAN) {
    if (command)
      rest[nrest++] = (char *)command;
    /* the plans with their bytecode: zql explain --dump-program FILE... */
    char **args = zql_calloc((size_t)nrest + 3, sizeof *args);
    if (!args) {
      status = EXIT_ERRORS;
      goto out;
    }
    int na = 0;
    args[na++] = (char *)"explain";
    args[na++] = (char *)"--dump-program";
    for (int i = 0; i < nrest; i++)
      args[na++] = rest[i];
    const char *env = getenv("ZQL_DATA");
    zql_cli_t cli = {o.data_dir ? o.data_dir : (env && *env ? env : "./zql-data"),
                     o.data_dir != NULL, use_color(&o), o.verbosity,
                     isatty(STDERR_FILENO) != 0};
    status = zql_cmd_explain(&cli, na, args);
    zql_free(args);
  } else if (o.dump != DUMP_NONE) {
    if (command)
      rest[nrest++] = (char *)command;
    status = cmd_dump(&o, rest, nrest);
  } else if (!command) {
    usage(stderr);
    status = EXIT_USAGE;
  } else if (strcmp(command, "check") == 0) {
    status = cmd_check(&o, rest, nrest);
  } else {
    status = usage_error("unknown command '%s'", command);
  }
out:
  zql_free(rest);
  if (fflush(stdout) != 0 && status == EXIT_OK) {
    perror("zql: write error");
    status = EXIT_ERRORS;
  }
  return status;
}
