/*
 * cmd_run.c -- `zql run`, `zql explain`, `zql compile` and ad-hoc `zql -c` (runtime).
 *
 *   zql run FILE.zql|FILE.zqlc [--dry-run [--limit N]] [--from DATE] [--to DATE]
 *           [--only NAME] [--format F] [-o FILE.bson] [RUN OPTIONS]
 *   zql explain FILE.zql|FILE.zqlc [NAME...] [--analyze] [--dump-program]
 *   zql compile FILE.zql [-o FILE.zqlc]
 *   zql -c 'QUERY; ...' [--format F] [RUN OPTIONS]
 *   RUN OPTIONS: --threads N  --mem-limit SIZE  --now DATE  --strict  --progress|--no-progress
 *
 * Pipeline position: the command-line face of the whole pipeline: parser (zql_parse.h)
 * -> planner (zql_plan.h) -> executor (zql_exec.h) over the event log of the data
 * directory (runtime/evlog_input.h) -> output writers (exec/output.h). `zql run` prints
 * what each aggregate would commit, or writes its output documents to a .bson file;
 * `zql agg run` (runtime/cmd_agg.c) is the command that commits them to the results store.
 *
 * `from agg X` reads the rows of X run in the same command when one of the files defines
 * X, else X's output documents in the results store of the data directory
 * (runtime/store_input.h): the analyzer then gets X's definition from the catalog, and
 * the whole command reads the catalog and the documents in one read transaction, so it
 * sees one snapshot of the store.
 *
 * Exit status: 0 success; 1 errors (diagnostics, run failures, an ERROR cell with --strict
 * or `on_error fail`); 2 usage. Warnings (rows skipped for ERROR, values skipped for their
 * type, ERROR cells shown as null) go to stderr unless -q.
 */
#include "runtime/base/zql_common.h"

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exec/output.h"
#include "exec/value.h"
#include "exec/zql_exec.h"
#include "parser/zql_parse.h"
#include "planner/zql_plan.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/strdist.h"
#include "runtime/cli.h"
#include "runtime/evlog.h"
#include "runtime/base/tz.h"
#include "runtime/base/clock.h"
#include "runtime/catalog.h"
#include "runtime/evlog_input.h"
#include "runtime/outdoc.h"
#include "runtime/gen.h"
#include "runtime/store.h"
#include "runtime/store_input.h"

enum { EXIT_OK = 0, EXIT_ERRORS = 1, EXIT_USAGE = 2 };

typedef struct ropts {
  zql_fmt_t fmt;
  unsigned threads;
  uint64_t mem_limit;
  int64_t from, to;
  bool dry;
  int64_t limit;         /* --dry-run rows per aggregate (default 20) */
  const char *out;       /* -o FILE */
  const char *only;
  bool strict;
  int64_t now_ms;
  bool analyze;
  bool program;
  int progress;          /* -1 auto (a TTY), 0 off, 1 on */
} ropts_t;

static int usage(const char *cmd, const char *fmt, ...) ZQL_PRINTF(2, 3);
static int usage(const char *cmd, const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "zql %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'zql %s --help'.\n", cmd);
  return EXIT_USAGE;
}

/* 512M, 2G, 100000, 64k: bytes. */
bool zql_cli_parse_size(const char *s, uint64_t *out)
{
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v < 0)
    return false;
  double mul = 1;
  switch (*end) {
  case 'k': case 'K': mul = 1024.0; end++; break;
  case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
  case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
  case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
  default: break;
  }
  if (*end == 'i' || *end == 'B' || *end == 'b')
    end += (*end == 'i' && (end[1] == 'B' || end[1] == 'b')) ? 2 : 1;
  if (*end || v * mul >= 18446744073709551615.0)
    return false;
  *out = (uint64_t)(v * mul);
  return true;
}

/* An ISO-8601 date or date-time (a date alone is UTC midnight), as zql gen --start and
 * zql export --from read them. */
static bool parse_date(const char *s, int64_t *ms)
{
  return zql_gen_parse_date(s, ms) == 0;
}

static unsigned default_threads(void)
{
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

static uint64_t default_mem_limit(void)
{
  long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || psz <= 0)
    return 1ull << 30;
  return (uint64_t)pages * (uint64_t)psz / 4; /* a quarter of RAM */
}

static void ropts_init(ropts_t *o)
{
  memset(o, 0, sizeof *o);
  o->fmt = ZQL_FMT_TABLE;
  o->threads = default_threads();
  o->mem_limit = default_mem_limit();
  o->from = INT64_MIN;
  o->to = INT64_MAX;
  o->limit = -1;
  o->now_ms = zql_wall_ms();
  o->progress = -1;
}

/* A run option at argv[*i]: 1 consumed, 0 not one, -1 usage error (reported). */
static int run_option(const char *cmd, ropts_t *o, int argc, char **argv, int *i)
{
  const char *a = argv[*i];
  const char *v = NULL;
#define VALUE(name)                                                                   \
  (strcmp(a, name) == 0 ? (*i + 1 < argc ? (v = argv[++*i]) != NULL : false)          \
   : strncmp(a, name "=", sizeof(name)) == 0 ? (v = a + sizeof(name)) != NULL : false)
  if (strcmp(a, "--format") == 0 || strncmp(a, "--format=", 9) == 0) {
    if (!VALUE("--format")) {
      usage(cmd, "--format needs a value (table, csv, json, ndjson)");
      return -1;
    }
    if (zql_fmt_parse(v, &o->fmt) != 0) {
      usage(cmd, "unknown format '%s' (table, csv, json, ndjson or bson)", v);
      return -1;
    }
    return 1;
  }
  if (strcmp(a, "--threads") == 0 || strncmp(a, "--threads=", 10) == 0) {
    uint64_t n;
    if (!VALUE("--threads") || !zql_cli_parse_u64(v, 1, 256, &n)) {
      usage(cmd, "--threads needs a number from 1 to 256");
      return -1;
    }
    o->threads = (unsigned)n;
    return 1;
  }
  if (strcmp(a, "--mem-limit") == 0 || strncmp(a, "--mem-limit=", 12) == 0) {
    if (!VALUE("--mem-limit") || !zql_cli_parse_size(v, &o->mem_limit) || o->mem_limit < 4096) {
      usage(cmd, "--mem-limit needs a size such as 512M or 2G (at least 4K)");
      return -1;
    }
    return 1;
  }
  if (strcmp(a, "--now") == 0 || strncmp(a, "--now=", 6) == 0) {
    if (!VALUE("--now") || !parse_date(v, &o->now_ms)) {
      usage(cmd, "--now needs an ISO-8601 date such as 2024-01-31T12:00:00Z");
      return -1;
    }
    return 1;
  }
  if (strcmp(a, "--strict") == 0) {
    o->strict = true;
    return 1;
  }
  if (strcmp(a, "--progress") == 0 || strcmp(a, "--no-progress") == 0) {
    o->progress = a[2] == 'p';
    return 1;
  }
#undef VALUE
  return 0;
}

/* {==== progress ========================================================================= */

typedef struct progress {
  bool on;
  double start, last;
  bool shown;
} progress_t;

static double mono(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress_cb(void *arg, uint64_t events, uint64_t bytes)
{
  progress_t *p = arg;
  double t = mono();
  if (t - p->start < 1.0 || t - p->last < 0.25)
    return;
  p->last = t;
  p->shown = true;
  fprintf(stderr, "\r%12" PRIu64 " events  %8.1f MB  %6.1f s  %8.2f M events/s ", events,
          (double)bytes / 1e6, t - p->start, (double)events / (t - p->start) / 1e6);
  fflush(stderr);
}

static void progress_end(progress_t *p)
{
  if (p->shown)
    fprintf(stderr, "\r%*s\r", 72, "");
}

/* }==== */

/* {==== running a plan =================================================================== */

typedef struct ctx {
  const zql_cli_t *cli;
  const char *cmd;
  ropts_t o;
  zql_evlog_reader_t *reader;
  bool reader_tried;
  int status;
  zql_store_t *store;    /* the results store, when a statement reads it */
  zql_store_txn_t *txn;  /* one read transaction for the whole command */
  bool store_tried;
  int store_rc;
} ctx_t;

static int open_reader(ctx_t *c)
{
  if (c->reader || c->reader_tried)
    return c->reader ? 0 : -1;
  c->reader_tried = true;
  char path[4096];
  struct stat st;
  snprintf(path, sizeof path, "%s/events", c->cli->data_dir);
  if (stat(path, &st) != 0) {
    fprintf(stderr, "zql %s: no event log in %s (add events with `zql --data %s import "
            "FILE` or `zql --data %s gen --events N`)\n", c->cmd, c->cli->data_dir,
            c->cli->data_dir, c->cli->data_dir);
    return -1;
  }
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_evlog_reader_open(c->cli->data_dir, &c->reader, &err);
  if (rc) {
    fprintf(stderr, "zql %s: %s [%s]\n", c->cmd, err.buf, zql_err_code_str(rc));
    zql_strbuf_release(&err);
    return -1;
  }
  zql_strbuf_release(&err);
  return 0;
}

/* The results store of the data directory, in a read transaction that lasts until
 * ctx_free: 0, ZQL_STORE_NOTFOUND when the directory has none (nothing is created), or
 * < 0 (reported). */
static int open_store(ctx_t *c)
{
  if (c->store_tried)
    return c->store_rc;
  c->store_tried = true;
  char path[4096];
  struct stat st;
  snprintf(path, sizeof path, "%s/results/data.mdb", c->cli->data_dir);
  if (stat(path, &st) != 0)
    return c->store_rc = ZQL_STORE_NOTFOUND;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_store_open_lmdb(c->cli->data_dir, &c->store, &err);
  if (!rc)
    rc = zql_store_begin(c->store, false, &c->txn, &err);
  if (rc)
    fprintf(stderr, "zql %s: %s [%s]\n", c->cmd, err.len ? err.buf : zql_strerror(rc),
            zql_err_code_str(rc));
  zql_strbuf_release(&err);
  return c->store_rc = rc;
}

static void warn_counters(ctx_t *c, const char *what, const zql_result_t *res)
{
  if (c->cli->verbosity < 0)
    return;
  const zql_counters_t *k = &res->counters;
  uint64_t nerr = 0;
  for (uint32_t i = 0; i < k->nerrors; i++)
    nerr += k->errors[i].n;
  if (nerr) {
    fprintf(stderr, "zql: warning: %s: %" PRIu64 " row%s skipped for ERROR (_errors):", what,
            nerr, nerr == 1 ? "" : "s");
    for (uint32_t i = 0; i < k->nerrors; i++)
      fprintf(stderr, "%s %" PRIu64 " x \"%s\"", i ? "," : "", k->errors[i].n,
              k->errors[i].msg);
    fputc('\n', stderr);
  }
  if (k->type_skips)
    fprintf(stderr, "zql: warning: %s: %" PRIu64 " value%s skipped for their type "
            "(_type_skips)\n", what, k->type_skips, k->type_skips == 1 ? "" : "s");
  if (k->overflow)
    fprintf(stderr, "zql: warning: %s: %" PRIu64 " int64 overflow%s promoted to double "
            "(_overflow)\n", what, k->overflow, k->overflow == 1 ? "" : "s");
  if (k->lossy)
    fprintf(stderr, "zql: warning: %s: %" PRIu64 " decimal128 value%s converted to double "
            "(_lossy)\n", what, k->lossy, k->lossy == 1 ? "" : "s");
}

/* ERROR cells: a warning per column, or the run's failure under --strict/on_error fail. */
static bool check_error_cells(ctx_t *c, const char *what, const zql_result_table_t *t,
                              bool strict)
{
  bool any = false;
  for (uint32_t i = 0; i < t->ncols; i++) {
    if (!t->error_cells[i])
      continue;
    any = true;
    const char *msg = "?"; /* the first cell's message */
    for (uint64_t r = 0; r < t->nrows; r++)
      if (t->vals[r * t->ncols + i].t == ZQL_V_ERROR) {
        msg = t->vals[r * t->ncols + i].u.err;
        break;
      }
    if (strict)
      fprintf(stderr, "zql %s: error: %s: column %s: %" PRIu64 " cell%s yielded ERROR (\"%s\") "
              "[%s]\n", c->cmd, what, t->names[i], t->error_cells[i],
              t->error_cells[i] == 1 ? "" : "s", msg, zql_err_code_str(ZQL_E_RUN_FAILED));
    else if (c->cli->verbosity >= 0)
      fprintf(stderr, "zql: warning: %s: column %s: %" PRIu64 " cell%s yielded ERROR (\"%s\"), "
              "shown as null\n", what, t->names[i], t->error_cells[i],
              t->error_cells[i] == 1 ? "" : "s", msg);
  }
  return any && strict;
}

static int write_rows(ctx_t *c, const zql_result_table_t *t, FILE *out, uint64_t max)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_rowwriter_t *w;
  int rc = zql_rowwriter_open(c->o.fmt, out, t->names, t->ncols, &w, &err);
  uint64_t n = t->nrows < max ? t->nrows : max;
  for (uint64_t i = 0; rc == 0 && i < n; i++)
    rc = zql_rowwriter_row(w, &t->vals[i * t->ncols]);
  if (w) {
    int rc2 = zql_rowwriter_close(w, &err);
    if (!rc)
      rc = rc2;
  }
  if (rc)
    fprintf(stderr, "zql %s: %s [%s]\n", c->cmd, err.len ? err.buf : zql_strerror(rc),
            zql_err_code_str(rc));
  zql_strbuf_release(&err);
  return rc;
}

/* Run one plan over the data directory's log, or over `rows` (the rows of the aggregate
 * a `from agg` plan reads); the result in *out, with the rows' saved states when
 * keep_states (another plan of the run reads this one). */
static int execute_on(ctx_t *c, const zql_plan_t *p, const zql_input_t *rows, bool keep_states,
                      zql_result_t **out)
{
  *out = NULL;
  if (!rows && open_reader(c) != 0)
    return ZQL_E_IO;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_xplan_t *x;
  int rc = zql_xplan_prepare(p, c->o.now_ms, &x, &err);
  if (rc) {
    fprintf(stderr, "zql %s: %s: %s [%s]\n", c->cmd, p->name, err.buf, zql_err_code_str(rc));
    zql_strbuf_release(&err);
    return rc;
  }
  zql_input_t in;
  if (rows)
    in = *rows;
  else
    zql_evlog_input(c->reader, &in);
  zql_run_opts_t ro;
  zql_run_opts_init(&ro);
  ro.keep_states = keep_states;
  ro.threads = c->o.threads;
  ro.mem_limit = c->o.mem_limit;
  if (!rows) { /* --from/--to select events; the rows of an aggregate have no time */
    ro.ts_lo = c->o.from;
    ro.ts_hi = c->o.to;
  }
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s/tmp", c->cli->data_dir);
  if (mkdir(tmp, 0700) == 0 || errno == EEXIST)
    ro.tmp_dir = tmp;
  progress_t pr = {0};
  bool show = c->o.progress == 1 || (c->o.progress < 0 && c->cli->stderr_tty);
  if (show && c->cli->verbosity >= 0) {
    pr.on = true;
    pr.start = mono();
    ro.progress = progress_cb;
    ro.progress_arg = &pr;
  }
  rc = zql_exec_run(x, &in, &ro, out, &err);
  progress_end(&pr);
  if (rc)
    fprintf(stderr, "zql %s: %s: %s [%s]\n", c->cmd, p->name, err.buf, zql_err_code_str(rc));
  zql_strbuf_release(&err);
  zql_xplan_free(x);
  return rc;
}

static int execute(ctx_t *c, const zql_plan_t *p, zql_result_t **out)
{
  return execute_on(c, p, NULL, false, out);
}

static void analyze_text(zql_strbuf_t *sb, const zql_result_t *r)
{
  zql_strbuf_addf(sb, "analyze: %u chunk%s on %u thread%s, %u reduce partitions\n",
                  r->chunks, r->chunks == 1 ? "" : "s", r->threads, r->threads == 1 ? "" : "s",
                  r->partitions);
  zql_strbuf_addf(sb, "  MAP     %" PRIu64 " events, %" PRIu64 " bytes -> %" PRIu64
                  " rows; %.3f s; peak group memory %" PRIu64 " bytes; %" PRIu64
                  " spill%s (%" PRIu64 " bytes)\n", r->map.rows_in, r->map.bytes,
                  r->map.rows_out, r->map.seconds, r->map.peak_mem, r->counters.spills,
                  r->counters.spills == 1 ? "" : "s", r->counters.spill_bytes);
  zql_strbuf_addf(sb, "  REDUCE  %" PRIu64 " groups -> %" PRIu64 " rows; %.3f s\n",
                  r->reduce.rows_in, r->reduce.rows_out, r->reduce.seconds);
  zql_strbuf_addf(sb, "  OUTPUT  %.3f s\n", r->output.seconds);
}

/* Print (or write to -o) the result of one statement. */
static int emit_result(ctx_t *c, const zql_plan_t *p, const zql_result_t *res, FILE *out,
                       bool header)
{
  int rc = 0;
  const zql_counters_t *k = &res->counters;
  if ((p->strict || c->o.strict) && k->nerrors) {
    /* on_error fail (R5) / --strict: a row that yielded ERROR aborts before any output */
    uint64_t n = 0;
    for (uint32_t i = 0; i < k->nerrors; i++)
      n += k->errors[i].n;
    fprintf(stderr, "zql %s: error: %s: %" PRIu64 " row%s yielded ERROR (_errors):", c->cmd,
            p->is_query ? "query" : p->name, n, n == 1 ? "" : "s");
    for (uint32_t i = 0; i < k->nerrors; i++)
      fprintf(stderr, "%s %" PRIu64 " x \"%s\"", i ? "," : "", k->errors[i].n, k->errors[i].msg);
    fprintf(stderr, " [%s]\n", zql_err_code_str(ZQL_E_RUN_FAILED));
    return ZQL_E_RUN_FAILED;
  }
  for (uint32_t t = 0; t < res->ntables && !rc; t++) {
    const zql_result_table_t *rt = &res->tables[t];
    const char *what = p->is_query ? "query" : p->name;
    if (header && (c->o.fmt == ZQL_FMT_TABLE || c->o.fmt == ZQL_FMT_CSV))
      fprintf(out, "%s-- aggregate %s into \"%s\"\n", t || c->status ? "\n" : "", p->name,
              rt->into);
    uint64_t max = UINT64_MAX;
    if (c->o.dry)
      max = c->o.limit >= 0 ? (uint64_t)c->o.limit : 20;
    fflush(out);
    rc = write_rows(c, rt, out, max);
    fflush(out);
    if (check_error_cells(c, what, rt, c->o.strict || p->strict))
      rc = rc ? rc : ZQL_E_RUN_FAILED;
    if (c->o.dry && rt->nrows > max && c->cli->verbosity >= 0)
      fprintf(stderr, "zql: %s: %" PRIu64 " of %" PRIu64 " rows shown (--limit)\n", what, max,
              rt->nrows);
  }
  warn_counters(c, p->is_query ? "query" : p->name, res);
  return rc;
}

/* }==== */

/* {==== loading statements =============================================================== */

typedef struct prog {
  zql_plan_t **plans;
  uint32_t n;
  bool *explain;         /* statement i is an `explain` */
  bool *explain_analyze;
  const char **local;    /* the aggregates the user's files define (in the load arena): a
                            `from agg` of one of them never reads the results store */
  uint32_t nlocal;
} prog_t;

static void prog_free(prog_t *g)
{
  for (uint32_t i = 0; i < g->n; i++)
    zql_plan_free(g->plans[i]);
  zql_free(g->plans);
  zql_free(g->explain);
  zql_free(g->explain_analyze);
  memset(g, 0, sizeof *g);
}

static int prog_push(prog_t *g, zql_plan_t *p, bool explain, bool analyze)
{
  zql_plan_t **v = zql_reallocarray(g->plans, g->n + 1, sizeof *v);
  bool *e = v ? zql_reallocarray(g->explain, g->n + 1, sizeof *e) : NULL;
  if (v)
    g->plans = v;
  if (e)
    g->explain = e;
  bool *ea = e ? zql_reallocarray(g->explain_analyze, g->n + 1, sizeof *ea) : NULL;
  if (!ea) {
    zql_plan_free(p);
    return ZQL_E_NOMEM;
  }
  g->explain_analyze = ea;
  g->plans[g->n] = p;
  g->explain[g->n] = explain;
  g->explain_analyze[g->n] = analyze;
  g->n++;
  return 0;
}

void zql_cli_print_diags(const zql_cli_t *cli, zql_diags_t *d)
{
  zql_diags_sort(d);
  zql_strbuf_t out = ZQL_STRBUF_INIT;
  zql_diags_render(&out, d, cli->color);
  fwrite(out.buf, 1, out.len, stderr);
  zql_strbuf_release(&out);
}

static int plan_stmt(ctx_t *c, const zql_source_t *src, const zql_node_t *s, prog_t *g,
                     bool explain, bool analyze)
{
  zql_plan_t *p;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_plan_opts_t po;
  zql_plan_opts_init(&po);
  int rc = zql_plan_build(src, s, &po, &p, &err);
  if (rc) {
    uint32_t line, col;
    zql_source_linecol(src, s->span.start, &line, &col);
    fprintf(stderr, "%s:%u:%u: error: %s [%s]\n", src->name, line, col,
            err.len ? err.buf : zql_strerror(rc), zql_err_code_str(rc));
    zql_strbuf_release(&err);
    return rc;
  }
  zql_strbuf_release(&err);
  return prog_push(g, p, explain, analyze);
}

/* Find an aggregate by name among the compiled files (the user's and the catalog's). */
static const zql_node_t *find_agg(zql_node_t *const *files, size_t n, const char *name,
                                  const zql_source_t **src)
{
  for (size_t f = 0; f < n; f++)
    for (uint32_t i = 0; i < files[f]->u.list.n; i++) {
      const zql_node_t *s = files[f]->u.list.items[i];
      if (s->kind == ZQL_N_AGGREGATE && strcmp(s->u.query.name, name) == 0) {
        *src = zql_file_source(files[f]);
        return s;
      }
    }
  return NULL;
}

/* Parse the sources srcs[0..n), or the files paths[0..n) ("-" is stdin), into files[]
 * (NULL for a file that cannot be read: an error without a source says why). 0 or
 * ZQL_E_NOMEM; the rest is in d. */
static int parse_all(zql_arena_t *arena, const zql_source_t *srcs, const char *const *paths,
                     size_t n, zql_diags_t *d, zql_node_t **files)
{
  for (size_t i = 0; i < n; i++) {
    const zql_source_t *src = srcs ? &srcs[i] : NULL;
    if (!src) {
      zql_source_t *s = zql_arena_calloc(arena, 1, sizeof *s);
      if (!s)
        return ZQL_E_NOMEM;
      zql_strbuf_t err = ZQL_STRBUF_INIT;
      int rc = zql_source_read_file(s, arena, paths[i], &err);
      if (rc && rc != ZQL_E_NOMEM)
        zql_diag_add(d, NULL, rc, (zql_span_t){0, 0}, "%s", err.buf);
      zql_strbuf_release(&err);
      if (rc == ZQL_E_NOMEM)
        return rc;
      if (rc)
        continue;
      s->order = (uint32_t)i;
      src = s;
    }
    if (zql_parse(arena, src, d, &files[i]) == ZQL_E_NOMEM)
      return ZQL_E_NOMEM;
  }
  return 0;
}

/* The catalog name nearest to `name` (the analyzer's rule for "did you mean"). */
typedef struct nearest {
  const char *name;
  char best[ZQL_STORE_MAX_NAME + 1];
  int dist;
} nearest_t;

static int nearest_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  (void)doc;
  nearest_t *nr = arg;
  char cand[ZQL_STORE_MAX_NAME + 1];
  if (idlen >= sizeof cand)
    return 0;
  memcpy(cand, id, idlen);
  cand[idlen] = '\0';
  int len = (int)strlen(nr->name);
  int dist = zql_edit_distance(nr->name, cand, 2);
  if (dist <= (len <= 4 ? 1 : 2) && dist < len && dist < nr->dist) {
    nr->dist = dist;
    memcpy(nr->best, cand, idlen + 1);
  }
  return 0;
}

/* After the analysis: an unknown `from agg` name's generic hint also names the store, or
 * the stored aggregate it is a typo of. */
static void hint_unknown_aggs(ctx_t *c, zql_diags_t *d)
{
  for (size_t i = 0; i < d->n; i++) {
    zql_error_t *e = &d->items[i];
    if (e->code != ZQL_E_UNKNOWN_AGGREGATE || !e->hint || strncmp(e->hint, "did you mean", 12) == 0)
      continue;
    /* the message is "unknown aggregate 'NAME'" */
    const char *q1 = strchr(e->message, '\''), *q2 = strrchr(e->message, '\'');
    char name[ZQL_STORE_MAX_NAME + 1];
    nearest_t nr = {name, "", INT_MAX};
    if (c->txn && q1 && q2 > q1 + 1 && (size_t)(q2 - q1 - 1) < sizeof name) {
      memcpy(name, q1 + 1, (size_t)(q2 - q1 - 1));
      name[q2 - q1 - 1] = '\0';
      zql_store_scan(c->txn, ZQL_CAT_COLL, NULL, 0, NULL, 0, nearest_visit, &nr, NULL);
    }
    if (nr.best[0])
      zql_diag_hint(d, e, "did you mean '%s'? (an aggregate of the results store)", nr.best);
    else if (c->txn)
      zql_diag_hint(d, e, "'from agg' reads an aggregate of the files given, or one that `zql "
                    "agg add` added to the results store of %s (it has no such aggregate)",
                    c->cli->data_dir);
    else
      zql_diag_hint(d, e, "'from agg' reads an aggregate of the files given, or one that `zql "
                    "agg add` added to the results store of the data directory (%s has none)",
                    c->cli->data_dir);
  }
}

/* Parse, find the definitions of the stored aggregates the files read in the catalog,
 * and analyze all of them: files[0..n) the user's, then the catalog's, *nall in all. */
static int compile_all(ctx_t *c, zql_arena_t *arena, const zql_source_t *srcs,
                       const char *const *paths, size_t n, zql_node_t ***all, size_t *nall)
{
  zql_diags_t d;
  zql_diags_init(&d, arena);
  zql_node_t **files = zql_arena_calloc(arena, n ? n : 1, sizeof *files);
  zql_catsrc_t cs = {0};
  int rc = files ? parse_all(arena, srcs, paths, n, &d, files) : ZQL_E_NOMEM;
  if (!rc && d.nerr == 0 && zql_catalog_wanted(files, n)) {
    int r = open_store(c);
    if (r < 0) {
      rc = r;
    } else if (r == 0) {
      zql_strbuf_t err = ZQL_STRBUF_INIT;
      rc = zql_catalog_sources(c->txn, arena, files, n, &d, &cs, &err);
      if (rc)
        fprintf(stderr, "zql %s: %s [%s]\n", c->cmd, err.len ? err.buf : zql_strerror(rc),
                zql_err_code_str(rc));
      zql_strbuf_release(&err);
    }
  }
  *all = files;
  *nall = n;
  if (!rc && cs.nfiles) {
    *all = zql_arena_calloc(arena, n + cs.nfiles, sizeof **all);
    if (!*all) {
      rc = ZQL_E_NOMEM;
    } else {
      memcpy(*all, files, n * sizeof *files);
      memcpy(*all + n, cs.files, cs.nfiles * sizeof *cs.files);
      *nall = n + cs.nfiles;
    }
  }
  if (!rc && d.nerr == 0)
    rc = zql_analyze(arena, *all, *nall, &d);
  zql_catalog_diags_trim(&d, &cs);
  hint_unknown_aggs(c, &d);
  if (d.n)
    zql_cli_print_diags(c->cli, &d);
  if (!rc && d.nerr)
    rc = ZQL_E_SYNTAX;
  zql_diags_release(&d);
  return rc;
}

/* Compile ZQL sources into plans: every aggregate, query and explain of the user's files,
 * in file order. With names, only those aggregates. */
static int load_sources(ctx_t *c, zql_arena_t *arena, const zql_source_t *srcs, size_t nsrc,
                        const char *const *paths, size_t npaths, char **names, int nnames,
                        prog_t *g)
{
  size_t n = srcs ? nsrc : npaths, nall;
  zql_node_t **files;
  int rc = compile_all(c, arena, srcs, paths, n, &files, &nall);
  if (rc)
    return rc;
  for (size_t f = 0; f < n; f++)
    for (uint32_t i = 0; i < files[f]->u.list.n; i++)
      g->nlocal += files[f]->u.list.items[i]->kind == ZQL_N_AGGREGATE;
  g->local = zql_arena_calloc(arena, g->nlocal ? g->nlocal : 1, sizeof *g->local);
  if (!g->local)
    return ZQL_E_NOMEM;
  g->nlocal = 0;
  for (size_t f = 0; f < n; f++)
    for (uint32_t i = 0; i < files[f]->u.list.n; i++)
      if (files[f]->u.list.items[i]->kind == ZQL_N_AGGREGATE)
        g->local[g->nlocal++] = files[f]->u.list.items[i]->u.query.name;
  if (nnames) {
    for (int i = 0; i < nnames && !rc; i++) {
      const zql_source_t *src;
      const zql_node_t *s = find_agg(files, nall, names[i], &src);
      if (!s) {
        fprintf(stderr, "zql %s: no aggregate named '%s'\n", c->cmd, names[i]);
        return ZQL_E_USAGE;
      }
      rc = plan_stmt(c, src, s, g, false, false);
    }
    return rc;
  }
  for (size_t f = 0; f < n && !rc; f++) {
    const zql_source_t *src = zql_file_source(files[f]);
    for (uint32_t i = 0; i < files[f]->u.list.n && !rc; i++) {
      const zql_node_t *s = files[f]->u.list.items[i];
      if (s->kind == ZQL_N_AGGREGATE) {
        if (!c->o.only || strcmp(c->o.only, s->u.query.name) == 0)
          rc = plan_stmt(c, src, s, g, false, false);
      } else if (s->kind == ZQL_N_QUERY) {
        if (!c->o.only)
          rc = plan_stmt(c, src, s, g, false, false);
      } else if (s->kind == ZQL_N_EXPLAIN) {
        const zql_node_t *t = s->u.explain.target;
        const zql_source_t *tsrc = src;
        if (!t)
          t = find_agg(files, nall, s->u.explain.name, &tsrc);
        if (t)
          rc = plan_stmt(c, tsrc, t, g, true, s->u.explain.analyze);
      }
    }
  }
  if (!rc && c->o.only && g->n == 0) {
    fprintf(stderr, "zql %s: no aggregate named '%s'\n", c->cmd, c->o.only);
    rc = ZQL_E_USAGE;
  }
  return rc;
}

static bool is_zqlc(const char *path)
{
  size_t n = strlen(path);
  return n > 5 && strcmp(path + n - 5, ".zqlc") == 0;
}

/* Read a compiled .zqlc file (zql compile): {format, source, hash, plans: [...]}. */
static int load_zqlc(ctx_t *c, const char *path, prog_t *g)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "zql %s: cannot open %s: %s [%s]\n", c->cmd, path, strerror(errno),
            zql_err_code_str(ZQL_E_IO));
    return ZQL_E_IO;
  }
  zql_strbuf_t buf = ZQL_STRBUF_INIT;
  char chunk[65536];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
    zql_strbuf_add(&buf, chunk, got);
  bool ioerr = ferror(f);
  fclose(f);
  int rc = 0;
  bson_t doc;
  bson_iter_t it, arr;
  if (ioerr || buf.oom) {
    rc = ioerr ? ZQL_E_IO : ZQL_E_NOMEM;
    fprintf(stderr, "zql %s: cannot read %s [%s]\n", c->cmd, path, zql_err_code_str(rc));
  } else if (!bson_init_static(&doc, (const uint8_t *)buf.buf, buf.len) ||
             !bson_validate(&doc, BSON_VALIDATE_NONE, NULL) ||
             !bson_iter_init_find(&it, &doc, "plans") || !BSON_ITER_HOLDS_ARRAY(&it) ||
             !bson_iter_recurse(&it, &arr)) {
    rc = ZQL_E_BAD_PLAN;
    fprintf(stderr, "zql %s: %s: not a compiled zql plan file [%s]\n", c->cmd, path,
            zql_err_code_str(rc));
  } else {
    while (!rc && bson_iter_next(&arr)) {
      const uint8_t *d;
      uint32_t dl;
      zql_plan_t *p;
      zql_strbuf_t err = ZQL_STRBUF_INIT;
      if (!BSON_ITER_HOLDS_DOCUMENT(&arr)) {
        rc = ZQL_E_BAD_PLAN;
        zql_strbuf_adds(&err, "a plan is not a document");
      } else {
        bson_iter_document(&arr, &dl, &d);
        rc = zql_plan_from_bson(d, dl, &p, &err);
      }
      if (rc)
        fprintf(stderr, "zql %s: %s: %s [%s]\n", c->cmd, path, err.buf, zql_err_code_str(rc));
      else if (!c->o.only || strcmp(c->o.only, p->name) == 0)
        rc = prog_push(g, p, false, false);
      else
        zql_plan_free(p);
      zql_strbuf_release(&err);
    }
  }
  zql_strbuf_release(&buf);
  return rc;
}

/* }==== */

/* {==== commands ========================================================================= */

/* The plan of aggregate `name` among g's non-explain statements, or -1. */
static int find_plan(const prog_t *g, const char *name)
{
  for (uint32_t i = 0; i < g->n; i++)
    if (!g->explain[i] && !g->plans[i]->is_query && strcmp(g->plans[i]->name, name) == 0)
      return (int)i;
  return -1;
}

static bool is_local(const prog_t *g, const char *name)
{
  for (uint32_t i = 0; i < g->nlocal; i++)
    if (strcmp(g->local[i], name) == 0)
      return true;
  return false;
}

/* Does plan p merge the states of its source's columns (merge(col) reads __state.col)? */
static bool reads_states(const zql_plan_t *p)
{
  for (uint32_t t = 0; t < p->ntables; t++)
    for (uint32_t a = 0; a < p->tables[t].naggs; a++)
      if (p->tables[t].aggs[a].func && strcmp(p->tables[t].aggs[a].func, "merge") == 0)
        return true;
  return false;
}

/* The stored output documents of p's source as an input (*si to free). */
static int stored_input(ctx_t *c, const zql_plan_t *p, zql_input_t *in, zql_store_input_t **si)
{
  const char *what = p->is_query ? "query" : p->name, *name = p->source_agg;
  int rc = open_store(c);
  if (rc == ZQL_STORE_NOTFOUND) {
    fprintf(stderr, "zql %s: %s: from agg %s: the aggregate is not defined in the files given "
            "and %s has no results store (`zql --data %s agg add FILE.zql` adds it) [%s]\n",
            c->cmd, what, name, c->cli->data_dir, c->cli->data_dir,
            zql_err_code_str(ZQL_E_NO_AGG));
    return ZQL_E_NO_AGG;
  }
  if (rc)
    return rc;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_catentry_t e;
  bson_t doc;
  zql_plan_t *sp = NULL;
  const char *into = NULL;
  rc = zql_catalog_get(c->txn, name, &e, &doc, &err);
  if (rc == ZQL_STORE_NOTFOUND) {
    rc = ZQL_E_NO_AGG;
    zql_strbuf_addf(&err, "the aggregate is not defined in the files given and the results "
                    "store of %s has no aggregate '%s' (`zql agg list` shows them)",
                    c->cli->data_dir, name);
  } else if (!rc) {
    rc = zql_plan_from_bson(e.plan, e.plan_len, &sp, &err);
  }
  uint32_t nout = 0;
  for (uint32_t t = 0; !rc && t < sp->ntables; t++)
    if (!sp->tables[t].intermediate && !sp->tables[t].prepass && nout++ == 0)
      into = sp->tables[t].into;
  if (!rc && nout != 1) {
    rc = ZQL_E_UNSUPPORTED;
    zql_strbuf_addf(&err, "the aggregate has %u output tables; `from agg` reads an aggregate "
                    "with one", nout);
  }
  if (!rc)
    rc = zql_store_input_new(c->txn, into, reads_states(p) ? ZQL_STORE_INPUT_STATES : 0, in,
                             si, &err);
  if (rc)
    fprintf(stderr, "zql %s: %s: from agg %s: %s [%s]\n", c->cmd, what, name,
            err.len ? err.buf : zql_strerror(rc), zql_err_code_str(rc));
  zql_plan_free(sp);
  zql_strbuf_release(&err);
  return rc;
}

static int result_of(ctx_t *c, prog_t *g, zql_result_t **res, const bool *keep, uint32_t i,
                     unsigned depth);

/* The input of p's `from agg X` source: the rows of X run in this command (computed
 * first) when one of the user's files defines X, else X's documents in the results store.
 * Free *ri and *si after the run. */
static int source_input(ctx_t *c, prog_t *g, zql_result_t **res, const bool *keep,
                        const zql_plan_t *p, unsigned depth, zql_input_t *in,
                        zql_rows_input_t **ri, zql_store_input_t **si)
{
  *ri = NULL;
  *si = NULL;
  const char *what = p->is_query ? "query" : p->name;
  int j = find_plan(g, p->source_agg);
  if (j < 0 && !is_local(g, p->source_agg))
    return stored_input(c, p, in, si);
  if (j < 0 || depth > g->n) {
    fprintf(stderr, "zql %s: %s: from agg %s: the aggregate is defined in the files given but "
            "not run (--only or explain NAME leave it out) [%s]\n", c->cmd, what,
            p->source_agg, zql_err_code_str(ZQL_E_UNSUPPORTED));
    return ZQL_E_UNSUPPORTED;
  }
  int rc = result_of(c, g, res, keep, (uint32_t)j, depth + 1);
  if (rc)
    return rc;
  if (res[j]->ntables != 1) {
    fprintf(stderr, "zql %s: %s: from agg %s: the aggregate has %u output tables; `from agg` "
            "reads an aggregate with one [%s]\n", c->cmd, what, p->source_agg,
            res[j]->ntables, zql_err_code_str(ZQL_E_UNSUPPORTED));
    return ZQL_E_UNSUPPORTED;
  }
  /* rows carry __state only for a reader that merges: a row query shows key fields and
   * final values (resolved point 6); the rows are copied when the input is made */
  zql_result_table_t *t = &res[j]->tables[0];
  zql_val_t *state = t->state;
  if (!reads_states(p))
    t->state = NULL;
  rc = zql_rows_input_new(t, in, ri);
  t->state = state;
  if (rc)
    fprintf(stderr, "zql %s: %s: cannot read the rows of %s [%s]\n", c->cmd, what,
            p->source_agg, zql_err_code_str(rc));
  return rc;
}

/* The result of statement i, computing the aggregates it reads first (`from agg`). */
static int result_of(ctx_t *c, prog_t *g, zql_result_t **res, const bool *keep, uint32_t i,
                     unsigned depth)
{
  if (res[i])
    return 0;
  const zql_plan_t *p = g->plans[i];
  if (!p->source_agg)
    return execute_on(c, p, NULL, keep[i], &res[i]);
  zql_input_t in;
  zql_rows_input_t *ri;
  zql_store_input_t *si;
  int rc = source_input(c, g, res, keep, p, depth, &in, &ri, &si);
  if (!rc)
    rc = execute_on(c, p, &in, keep[i], &res[i]);
  zql_rows_input_free(ri);
  zql_store_input_free(si);
  return rc;
}

/* The results of a program's statements (computed on demand by result_of) and which of
 * them keep their rows' states (another statement of the run reads them). */
typedef struct results {
  zql_result_t **res;
  bool *keep;
} results_t;

static int results_init(results_t *r, const prog_t *g)
{
  r->res = zql_calloc(g->n ? g->n : 1, sizeof *r->res);
  r->keep = zql_calloc(g->n ? g->n : 1, sizeof *r->keep);
  if (!r->res || !r->keep) {
    zql_free(r->res);
    zql_free(r->keep);
    r->res = NULL;
    r->keep = NULL;
    return ZQL_E_NOMEM;
  }
  for (uint32_t i = 0; i < g->n; i++)
    if (g->plans[i]->source_agg && reads_states(g->plans[i])) {
      int j = find_plan(g, g->plans[i]->source_agg);
      if (j >= 0)
        r->keep[j] = true;
    }
  return 0;
}

static void results_free(results_t *r, const prog_t *g)
{
  for (uint32_t i = 0; i < g->n; i++)
    zql_result_free(r->res[i]);
  zql_free(r->res);
  zql_free(r->keep);
}

/* Did result_of fail because the data directory has no event log? Then every other
 * statement over events would say the same. */
static bool no_log(const ctx_t *c, int rc)
{
  return rc == ZQL_E_IO && c->reader_tried && !c->reader;
}

static int run_prog(ctx_t *c, prog_t *g, FILE *out)
{
  int rc = 0;
  bool header = g->n > 1;
  results_t rs;
  if (results_init(&rs, g) != 0)
    return ZQL_E_NOMEM;
  for (uint32_t i = 0; i < g->n; i++) {
    const zql_plan_t *p = g->plans[i];
    if (g->explain[i]) {
      zql_strbuf_t sb = ZQL_STRBUF_INIT;
      zql_explain_opts_t eo = {c->o.program};
      zql_plan_explain(&sb, p, &eo);
      if (g->explain_analyze[i] || c->o.analyze) {
        zql_result_t *ar = NULL;
        int r;
        if (p->source_agg) {
          zql_input_t in;
          zql_rows_input_t *ri;
          zql_store_input_t *si;
          r = source_input(c, g, rs.res, rs.keep, p, 0, &in, &ri, &si);
          if (!r)
            r = execute_on(c, p, &in, false, &ar);
          zql_rows_input_free(ri);
          zql_store_input_free(si);
        } else {
          r = execute(c, p, &ar);
        }
        if (r) {
          rc = r;
          zql_strbuf_release(&sb);
          c->status = EXIT_ERRORS;
          continue;
        }
        analyze_text(&sb, ar);
        zql_result_free(ar);
      }
      fwrite(sb.buf, 1, sb.len, out);
      zql_strbuf_release(&sb);
      continue;
    }
    int r = result_of(c, g, rs.res, rs.keep, i, 0);
    if (r) {
      rc = r;
      c->status = EXIT_ERRORS;
      if (no_log(c, r))
        break;
      continue;
    }
    r = emit_result(c, p, rs.res[i], out, header);
    if (r) {
      rc = r;
      c->status = EXIT_ERRORS;
    }
  }
  results_free(&rs, g);
  return rc;
}

/* -o FILE.bson: each aggregate's output documents, {_id, value: {...}, k: {...}}. */
static int write_bson_docs(ctx_t *c, prog_t *g, const char *path)
{
  FILE *f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "zql %s: cannot create %s: %s [%s]\n", c->cmd, path, strerror(errno),
            zql_err_code_str(ZQL_E_IO));
    return ZQL_E_IO;
  }
  results_t rs;
  int rc = results_init(&rs, g);
  for (uint32_t i = 0; i < g->n && !rc; i++) {
    const zql_plan_t *p = g->plans[i];
    if (g->explain[i])
      continue;
    if ((rc = result_of(c, g, rs.res, rs.keep, i, 0)) != 0)
      break;
    const zql_result_t *res = rs.res[i];
    for (uint32_t t = 0; t < res->ntables && !rc; t++) {
      const zql_result_table_t *rt = &res->tables[t];
      for (uint64_t r = 0; r < rt->nrows && !rc; r++) {
        const zql_val_t *v = &rt->vals[r * rt->ncols];
        bson_t d = BSON_INITIALIZER, kd, vd;
        zql_strbuf_t id = ZQL_STRBUF_INIT;
        if (p->key_doc) { /* key doc: the key document itself is the _id */
          bson_append_document_begin(&d, "_id", 3, &kd);
          for (uint32_t k = 0; k < rt->ncols; k++)
            if (rt->is_key[k])
              zql_val_append_bson(&kd, rt->names[k], -1, &v[k]);
          bson_append_document_end(&d, &kd);
        } else {
          zql_outdoc_id(&id, p, zql_outdoc_table(p, t), v);
          bson_append_utf8(&d, "_id", 3, id.buf, (int)id.len);
        }
        bson_append_utf8(&d, "_agg", 4, p->name, -1);
        bson_append_utf8(&d, "_into", 5, rt->into, -1);
        bson_append_document_begin(&d, "value", 5, &vd);
        for (uint32_t k = 0; k < rt->ncols; k++)
          if (!rt->is_key[k])
            zql_val_append_bson(&vd, rt->names[k], -1, &v[k]);
        bson_append_document_end(&d, &vd);
        bson_append_document_begin(&d, "k", 1, &kd);
        for (uint32_t k = 0; k < rt->ncols; k++)
          if (rt->is_key[k])
            zql_val_append_bson(&kd, rt->names[k], -1, &v[k]);
        bson_append_document_end(&d, &kd);
        if (fwrite(bson_get_data(&d), 1, d.len, f) != d.len)
          rc = ZQL_E_IO;
        bson_destroy(&d);
        zql_strbuf_release(&id);
      }
      if (check_error_cells(c, p->name, rt, c->o.strict || p->strict))
        rc = rc ? rc : ZQL_E_RUN_FAILED;
    }
    warn_counters(c, p->name, res);
  }
  if (rs.res)
    results_free(&rs, g);
  if (fclose(f) != 0 && !rc)
    rc = ZQL_E_IO;
  if (rc == ZQL_E_IO)
    fprintf(stderr, "zql %s: cannot write %s [%s]\n", c->cmd, path, zql_err_code_str(rc));
  return rc;
}

static void ctx_free(ctx_t *c)
{
  if (c->reader)
    zql_evlog_reader_close(c->reader);
  if (c->txn)
    zql_store_abort(c->txn); /* a read transaction: nothing to keep */
  zql_store_close(c->store);
}

static const char run_help[] =
    "usage: zql [--data DIR] run FILE.zql|FILE.zqlc [options]\n"
    "\n"
    "Run every aggregate (and ad-hoc query) of FILE over the event log of the data\n"
    "directory and print the rows each aggregate would commit. `from agg X` reads the\n"
    "rows of X when FILE defines X, else the documents X has in the results store of\n"
    "the data directory (`zql agg add` and `zql agg run` put them there).\n"
    "\n"
    "  --dry-run            print at most --limit rows per aggregate (default 20)\n"
    "  --limit N            rows shown per aggregate with --dry-run\n"
    "  --from DATE          only events with timestamp >= DATE (ISO-8601, UTC default)\n"
    "  --to DATE            only events with timestamp < DATE\n"
    "  --only NAME          run only the aggregate NAME\n"
    "  --format F           table (default), csv, json, ndjson\n"
    "  -o FILE.bson         write the output documents {_id, value, k} to FILE.bson\n"
    "  --threads N          worker threads (default: the number of cores)\n"
    "  --mem-limit SIZE     memory for group tables before spilling to disk (default a\n"
    "                       quarter of RAM), e.g. 512M\n"
    "  --now DATE           the value of now() (default the wall clock at start)\n"
    "  --strict             an aggregate that yields ERROR fails the run\n"
    "  --progress, --no-progress  a progress line on stderr (default: when a TTY)\n";

int zql_cmd_run(const zql_cli_t *cli, int argc, char **argv)
{
  ctx_t c = {.cli = cli, .cmd = "run"};
  ropts_init(&c.o);
  const char *file = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int r = run_option("run", &c.o, argc, argv, &i);
    if (r < 0)
      return EXIT_USAGE;
    if (r > 0)
      continue;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(run_help, stdout);
      return EXIT_OK;
    } else if (strcmp(a, "--dry-run") == 0) {
      c.o.dry = true;
    } else if (strcmp(a, "--limit") == 0 && i + 1 < argc) {
      uint64_t n;
      if (!zql_cli_parse_u64(argv[++i], 0, INT64_MAX, &n))
        return usage("run", "--limit needs a number");
      c.o.limit = (int64_t)n;
    } else if ((strcmp(a, "--from") == 0 || strcmp(a, "--to") == 0) && i + 1 < argc) {
      int64_t ms;
      if (!parse_date(argv[i + 1], &ms))
        return usage("run", "%s: invalid date '%s' (ISO-8601, e.g. 2024-01-01 or "
                     "2024-01-01T06:00:00Z)", a, argv[i + 1]);
      if (a[2] == 'f')
        c.o.from = ms;
      else
        c.o.to = ms;
      i++;
    } else if (strcmp(a, "--only") == 0 && i + 1 < argc) {
      c.o.only = argv[++i];
    } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && i + 1 < argc) {
      c.o.out = argv[++i];
    } else if (a[0] == '-' && strcmp(a, "-") != 0) {
      return usage("run", "unknown option '%s'", a);
    } else if (file) {
      return usage("run", "one file at a time (got '%s' and '%s')", file, a);
    } else {
      file = a;
    }
  }
  if (!file)
    return usage("run", "no file given");
  if (c.o.from >= c.o.to)
    return usage("run", "--from must be before --to");
  zql_arena_t *arena = zql_arena_create(NULL);
  prog_t g = {0};
  int rc = !arena ? ZQL_E_NOMEM
           : is_zqlc(file) ? load_zqlc(&c, file, &g)
                           : load_sources(&c, arena, NULL, 0, (const char *const *)&file, 1,
                                          NULL, 0, &g);
  if (!rc)
    rc = c.o.out ? write_bson_docs(&c, &g, c.o.out) : run_prog(&c, &g, stdout);
  prog_free(&g);
  zql_arena_delete(arena);
  ctx_free(&c);
  return rc || c.status ? EXIT_ERRORS : EXIT_OK;
}

int zql_cmd_explain(const zql_cli_t *cli, int argc, char **argv)
{
  ctx_t c = {.cli = cli, .cmd = "explain"};
  ropts_init(&c.o);
  const char *file = NULL;
  char **names = zql_calloc((size_t)argc + 1, sizeof *names);
  int nnames = 0;
  if (!names)
    return EXIT_ERRORS;
  int status = EXIT_OK;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int r = run_option("explain", &c.o, argc, argv, &i);
    if (r < 0) {
      zql_free(names);
      return EXIT_USAGE;
    }
    if (r > 0)
      continue;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs("usage: zql [--data DIR] explain FILE.zql|FILE.zqlc [NAME...] [--analyze] "
            "[--dump-program]\n\nPrint the plan of every aggregate and query of FILE (or of "
            "the aggregates NAME...):\nthe logical operators and the physical stages. "
            "--analyze also runs each one over\nthe data directory's event log and adds rows, "
            "bytes, time and memory per stage.\n", stdout);
      zql_free(names);
      return EXIT_OK;
    } else if (strcmp(a, "--analyze") == 0) {
      c.o.analyze = true;
    } else if (strcmp(a, "--dump-program") == 0) {
      c.o.program = true;
    } else if (a[0] == '-' && strcmp(a, "-") != 0) {
      zql_free(names);
      return usage("explain", "unknown option '%s'", a);
    } else if (!file) {
      file = a;
    } else {
      names[nnames++] = (char *)a;
    }
  }
  if (!file) {
    zql_free(names);
    return usage("explain", "no file given");
  }
  zql_arena_t *arena = zql_arena_create(NULL);
  prog_t g = {0};
  int rc = !arena ? ZQL_E_NOMEM
           : is_zqlc(file) ? load_zqlc(&c, file, &g)
                           : load_sources(&c, arena, NULL, 0, (const char *const *)&file, 1,
                                          names, nnames, &g);
  for (uint32_t i = 0; i < g.n; i++)
    g.explain[i] = true;
  if (!rc)
    rc = run_prog(&c, &g, stdout);
  if (rc || c.status)
    status = EXIT_ERRORS;
  prog_free(&g);
  zql_arena_delete(arena);
  zql_free(names);
  ctx_free(&c);
  return status;
}

int zql_cmd_compile(const zql_cli_t *cli, int argc, char **argv)
{
  ctx_t c = {.cli = cli, .cmd = "compile"};
  ropts_init(&c.o);
  const char *file = NULL, *out = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs("usage: zql compile FILE.zql [-o FILE.zqlc]\n\nCompile every aggregate and "
            "query of FILE into plans and write them, with\nthe plan format version and a "
            "hash of the source, to FILE.zqlc (default: FILE\nwith the extension .zqlc). "
            "`zql run FILE.zqlc` runs them without parsing.\n", stdout);
      return EXIT_OK;
    } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && i + 1 < argc) {
      out = argv[++i];
    } else if (a[0] == '-' && strcmp(a, "-") != 0) {
      return usage("compile", "unknown option '%s'", a);
    } else if (file) {
      return usage("compile", "one file at a time");
    } else {
      file = a;
    }
  }
  if (!file)
    return usage("compile", "no file given");
  char dflt[4096];
  if (!out) {
    size_t n = strlen(file);
    if (n > 4 && strcmp(file + n - 4, ".zql") == 0)
      snprintf(dflt, sizeof dflt, "%.*sc", (int)n, file);
    else
      snprintf(dflt, sizeof dflt, "%s.zqlc", file);
    out = dflt;
  }
  zql_arena_t *arena = zql_arena_create(NULL);
  prog_t g = {0};
  int rc = arena ? load_sources(&c, arena, NULL, 0, (const char *const *)&file, 1, NULL, 0, &g)
                 : ZQL_E_NOMEM;
  if (!rc) {
    bson_t doc = BSON_INITIALIZER, arr, one;
    bson_append_int32(&doc, "format", 6, ZQL_PLAN_FORMAT);
    bson_append_utf8(&doc, "source", 6, file, -1);
    bson_append_array_begin(&doc, "plans", 5, &arr);
    for (uint32_t i = 0; i < g.n && !rc; i++) {
      char kb[16];
      const char *key;
      bson_uint32_to_string(i, &key, kb, sizeof kb);
      bson_append_document_begin(&arr, key, -1, &one);
      rc = zql_plan_to_bson(g.plans[i], &one);
      bson_append_document_end(&arr, &one);
    }
    bson_append_array_end(&doc, &arr);
    if (!rc) {
      char tmp[4200];
      snprintf(tmp, sizeof tmp, "%s.tmp", out);
      FILE *f = fopen(tmp, "wb");
      bool ok = f && fwrite(bson_get_data(&doc), 1, doc.len, f) == doc.len;
      if (f && fclose(f) != 0)
        ok = false;
      if (!ok || rename(tmp, out) != 0) {
        fprintf(stderr, "zql compile: cannot write %s: %s [%s]\n", out, strerror(errno),
                zql_err_code_str(ZQL_E_IO));
        unlink(tmp);
        rc = ZQL_E_IO;
      } else if (cli->verbosity >= 0) {
        fprintf(stderr, "zql compile: %s: %u plan%s\n", out, g.n, g.n == 1 ? "" : "s");
      }
    }
    bson_destroy(&doc);
  }
  prog_free(&g);
  zql_arena_delete(arena);
  ctx_free(&c);
  return rc ? EXIT_ERRORS : EXIT_OK;
}

int zql_cmd_adhoc(const zql_cli_t *cli, int argc, char **argv)
{
  ctx_t c = {.cli = cli, .cmd = "-c"};
  ropts_init(&c.o);
  const char *text = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int r = run_option("-c", &c.o, argc, argv, &i);
    if (r < 0)
      return EXIT_USAGE;
    if (r > 0)
      continue;
    if (strcmp(a, "--explain") == 0)
      c.o.analyze = false;
    else if (!text)
      text = a;
    else
      return usage("-c", "unexpected argument '%s' (quote the whole query)", a);
  }
  if (!text)
    return usage("-c", "-c needs a query, e.g. zql -c 'from event group by type compute n "
                 "= count()'");
  /* the final `;` is optional on the command line */
  zql_strbuf_t q = ZQL_STRBUF_INIT;
  zql_strbuf_adds(&q, text);
  size_t end = q.len;
  while (end && (q.buf[end - 1] == ' ' || q.buf[end - 1] == '\n' || q.buf[end - 1] == '\t' ||
                 q.buf[end - 1] == '\r'))
    end--;
  if (end && q.buf[end - 1] != ';')
    zql_strbuf_addc(&q, ';');
  zql_arena_t *arena = q.oom ? NULL : zql_arena_create(NULL);
  zql_source_t src;
  prog_t g = {0};
  int rc = !arena ? ZQL_E_NOMEM
                  : zql_source_init(&src, arena, "<command line>", q.buf, q.len);
  zql_strbuf_release(&q);
  if (!rc)
    rc = load_sources(&c, arena, &src, 1, NULL, 0, NULL, 0, &g);
  if (!rc && g.n == 0) {
    fprintf(stderr, "zql -c: no query to run\n");
    rc = ZQL_E_USAGE;
  }
  if (!rc)
    rc = run_prog(&c, &g, stdout);
  prog_free(&g);
  zql_arena_delete(arena);
  ctx_free(&c);
  return rc || c.status ? EXIT_ERRORS : EXIT_OK;
}

/* }==== */
