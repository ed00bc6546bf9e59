#include "runtime/base/zql_common.h"
/*
 * cmd_agg.c -- `zql agg add|list|show|drop|run|rebuild|backfill|runs`: incremental
 * aggregates in the results store of the data directory (runtime services; the machinery
 * is runtime/incr.c, the guarantees docs/incremental.md).
 *
 * Pipeline position: the command-line face of stored aggregates. `add` runs the front end
 * and the planner (with the hidden per-group count of incremental plans) and stores the
 * plan in the catalog; `run` executes the new events and commits them exactly once.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parser/zql_parse.h"
#include "planner/zql_plan.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"
#include "runtime/base/tz.h"
#include "runtime/catalog.h"
#include "runtime/cli.h"
#include "runtime/incr.h"
#include "runtime/store.h"
#include "runtime/store_input.h"

enum { EXIT_OK = 0, EXIT_ERRORS = 1, EXIT_USAGE = 2 };

static int usage(const char *fmt, ...) ZQL_PRINTF(1, 2);
static int usage(const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "zql agg: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'zql agg --help'.\n");
  return EXIT_USAGE;
}

static void help(void)
{
  printf("usage: zql [--data DIR] agg COMMAND ...\n"
         "\n"
         "Incremental aggregates in the results store of the data directory\n"
         "(docs/incremental.md).\n"
         "\n"
         "  add [--rebuild] FILE.zql...   compile FILE's aggregates and store them; a changed\n"
         "                                definition that changes outputs needs --rebuild\n"
         "  list                          the stored aggregates\n"
         "  show NAME                     definition, identity, watermark, last run, plan\n"
         "  drop NAME                     remove NAME with its outputs and runs\n"
         "  run NAME... | --all           run over the new events (exactly once)\n"
         "  rebuild NAME                  recompute from all events into a shadow, swap it in\n"
         "  backfill NAME --from T --to T recompute the buckets of [T, T) newest first\n"
         "  runs NAME [--limit N]         the run records, newest last\n"
         "  dump NAME [--raw] [--bson]    the stored documents in id order (extended JSON\n"
         "                                lines; --raw keeps _hw, _rev, _late)\n"
         "\n"
         "Run options: --threads N, --mem-limit SIZE (K, M, G), --now DATE (the runs' now()),\n"
         "             --upto SEQ (new events up to that _seq only)\n");
}

static int fail(const char *what, int rc, const zql_strbuf_t *err)
{
  fprintf(stderr, "zql agg %s: %s [%s]\n", what, err->len ? err->buf : zql_strerror(rc),
          zql_err_code_str(rc));
  return EXIT_ERRORS;
}

static int open_store(const zql_cli_t *cli, zql_store_t **s)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_store_open_lmdb(cli->data_dir, s, &err);
  if (rc)
    fail("store", rc, &err);
  zql_strbuf_release(&err);
  return rc;
}

static void fmt_time(char *buf, size_t n, int64_t ms)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_tz_format_sb(&sb, "%Y-%m-%dT%H:%M:%SZ", 17, zql_tz_utc(), ms);
  snprintf(buf, n, "%s", sb.buf ? sb.buf : "");
  zql_strbuf_release(&sb);
}

/* ==== options of runs ==== */

typedef struct runopts {
  zql_incr_opts_t o;
  bool all;
  bool rebuild;
  bool raw, bson;         /* dump */
  const char *from, *to;
  uint64_t limit;
  const char *seen[32];   /* the options given, for check_options */
  size_t nseen;
} runopts_t;

static bool parse_time(const char *s, int64_t *ms)
{
  return zql_parse_iso8601(s, strlen(s), zql_tz_utc(), ms) == 0;
}

/* Parse argv[*i] if it is a run option: 1 consumed, 0 not an option, -1 error (printed). */
static int run_option_(runopts_t *r, int argc, char **argv, int *i);

/* Parse argv[*i] if it is an option; remember it for check_options. */
static int run_option(runopts_t *r, int argc, char **argv, int *i)
{
  const char *a = argv[*i];
  int rc = run_option_(r, argc, argv, i);
  if (rc == 1 && r->nseen < ZQL_ARRAY_LEN(r->seen))
    r->seen[r->nseen++] = a;
  return rc;
}

/* The options each subcommand takes (space-separated, with spaces around). */
static const char *allowed_options(const char *sub)
{
  static const struct { const char *sub, *opts; } t[] = {
      {"add", " --rebuild --threads --mem-limit --now --upto "},
      {"run", " --all --threads --mem-limit --now --upto "},
      {"rebuild", " --threads --mem-limit --now --upto "},
      {"backfill", " --from --to --threads --mem-limit --now "},
      {"runs", " --limit "},
      {"dump", " --raw --bson "},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(t); i++)
    if (strcmp(t[i].sub, sub) == 0)
      return t[i].opts;
  return " ";
}

/* An option that the subcommand does not take is a usage error, not silently ignored. */
static bool check_options(const runopts_t *r, const char *sub)
{
  const char *ok = allowed_options(sub);
  for (size_t i = 0; i < r->nseen; i++) {
    char want[64];
    snprintf(want, sizeof want, " %s ", r->seen[i]);
    if (!strstr(ok, want)) {
      usage("%s does not apply to `zql agg %s`", r->seen[i], sub);
      return false;
    }
  }
  return true;
}

static int run_option_(runopts_t *r, int argc, char **argv, int *i)
{
  const char *a = argv[*i];
  const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
  bool takes = strcmp(a, "--threads") == 0 || strcmp(a, "--mem-limit") == 0 ||
               strcmp(a, "--now") == 0 || strcmp(a, "--from") == 0 || strcmp(a, "--to") == 0 ||
               strcmp(a, "--limit") == 0 || strcmp(a, "--upto") == 0;
  if (!takes) {
    if (strcmp(a, "--all") == 0) {
      r->all = true;
      return 1;
    }
    if (strcmp(a, "--rebuild") == 0) {
      r->rebuild = true;
      return 1;
    }
    if (strcmp(a, "--raw") == 0 || strcmp(a, "--bson") == 0) {
      *(a[2] == 'r' ? &r->raw : &r->bson) = true;
      return 1;
    }
    if (a[0] == '-' && a[1]) {
      usage("unknown option '%s'", a);
      return -1;
    }
    return 0;
  }
  if (!v) {
    usage("%s needs a value", a);
    return -1;
  }
  (*i)++;
  uint64_t n;
  int64_t ms;
  if (strcmp(a, "--threads") == 0) {
    if (!zql_cli_parse_u64(v, 1, 1024, &n)) {
      usage("--threads: '%s' is not a number from 1 to 1024", v);
      return -1;
    }
    r->o.threads = (unsigned)n;
  } else if (strcmp(a, "--mem-limit") == 0) {
    if (!zql_cli_parse_size(v, &r->o.mem_limit)) {
      usage("--mem-limit: '%s' is not a size (e.g. 512M, 2G)", v);
      return -1;
    }
  } else if (strcmp(a, "--upto") == 0) {
    if (!zql_cli_parse_u64(v, 1, INT64_MAX, &n)) {
      usage("--upto: '%s' is not a _seq (a positive number)", v);
      return -1;
    }
    r->o.upto = (int64_t)n;
  } else if (strcmp(a, "--limit") == 0) {
    if (!zql_cli_parse_u64(v, 1, UINT64_MAX, &r->limit)) {
      usage("--limit: '%s' is not a positive number", v);
      return -1;
    }
  } else if (strcmp(a, "--now") == 0) {
    if (!parse_time(v, &ms)) {
      usage("--now: '%s' is not an ISO-8601 time with a zone (2011-07-01T00:00:00Z)", v);
      return -1;
    }
    r->o.now_ms = ms;
  } else if (strcmp(a, "--from") == 0) {
    r->from = v;
  } else {
    r->to = v;
  }
  return 1;
}

/* ==== add ==== */

static void print_report(const zql_cli_t *cli, const char *name, const zql_incr_report_t *r)
{
  if (!r->run) {
    printf("%s: up to date\n", name);
    return;
  }
  printf("%s: run %" PRId64 " %s%s (%" PRId64 ", %" PRId64 "]: %" PRIu64 " events, %" PRIu64
         " inserted, %" PRIu64 " updated",
         name, r->run, r->kind, r->resumed ? " (resumed)" : "", r->lo, r->hi, r->events,
         r->inserted, r->updated);
  if (r->unchanged)
    printf(", %" PRIu64 " already applied", r->unchanged);
  if (r->deleted)
    printf(", %" PRIu64 " deleted", r->deleted);
  if (r->late)
    printf(", %" PRIu64 " late merged", r->late);
  if (r->dropped)
    printf(", %" PRIu64 " late dropped", r->dropped);
  if (r->errors)
    printf(", %" PRIu64 " ERROR rows (zagg.%s._errors)", r->errors, name);
  if (cli->verbosity > 0)
    printf(" (execute %.4f s, commit %.4f s)", r->exec_seconds, r->commit_seconds);
  printf(" (%.4f s)\n", r->seconds);
}

/* Run NAME until it is caught up (a resumed run is followed by a fresh one). */
static int run_one(const zql_cli_t *cli, zql_store_t *s, const char *name, bool rebuild,
                   const runopts_t *ro)
{
  for (int round = 0; round < 3; round++) {
    zql_incr_report_t rep;
    zql_strbuf_t err = ZQL_STRBUF_INIT;
    int rc = zql_incr_run(s, cli->data_dir, name, rebuild, &ro->o, &rep, &err);
    if (rc) {
      fail(rebuild ? "rebuild" : "run", rc, &err);
      zql_strbuf_release(&err);
      return rc;
    }
    zql_strbuf_release(&err);
    if (cli->verbosity >= 0 && (rep.run || round == 0))
      print_report(cli, name, &rep);
    if (!rep.resumed)
      return 0;
  }
  return 0;
}

static int cmd_add(const zql_cli_t *cli, int argc, char **argv)
{
  runopts_t ro = {0};
  zql_incr_opts_init(&ro.o);
  const char **paths = calloc((size_t)argc, sizeof *paths);
  size_t npaths = 0;
  if (!paths)
    return EXIT_ERRORS;
  for (int i = 1; i < argc; i++) {
    int r = run_option(&ro, argc, argv, &i);
    if (r < 0) {
      free(paths);
      return EXIT_USAGE;
    }
    if (r == 0)
      paths[npaths++] = argv[i];
  }
  if (!check_options(&ro, "add")) {
    free(paths);
    return EXIT_USAGE;
  }
  if (!npaths) {
    free(paths);
    return usage("add needs a FILE.zql");
  }
  zql_arena_t *arena = zql_arena_create(NULL);
  zql_store_t *s = NULL;
  int status = EXIT_OK;
  if (!arena || open_store(cli, &s) != 0) {
    zql_arena_delete(arena);
    free(paths);
    return EXIT_ERRORS;
  }
  zql_diags_t d;
  zql_diags_init(&d, arena);
  zql_node_t **files = zql_arena_calloc(arena, npaths, sizeof *files), **all;
  size_t nall;
  /* the user's files, then the catalog sources their `from agg` names need */
  int rc = files ? zql_parse_paths(arena, paths, npaths, &d, files) : ZQL_E_NOMEM;
  if (!rc) {
    zql_strbuf_t e = ZQL_STRBUF_INIT;
    rc = zql_analyze_with_catalog(s, arena, files, npaths, &d, &all, &nall, &e);
    if (rc && e.len)
      fprintf(stderr, "zql agg add: %s [%s]\n", e.buf, zql_err_code_str(rc));
    zql_strbuf_release(&e);
  }
  if (d.n)
    zql_cli_print_diags(cli, &d);
  if (rc || d.nerr) {
    zql_diags_release(&d);
    zql_store_close(s);
    zql_arena_delete(arena);
    free(paths);
    return EXIT_ERRORS;
  }
  zql_diags_release(&d);
  const char **rebuilds = zql_arena_calloc(arena, 256, sizeof *rebuilds);
  size_t nrebuild = 0, nadded = 0;
  for (size_t f = 0; f < npaths && rebuilds; f++) {
    for (uint32_t i = 0; i < files[f]->u.list.n; i++) {
      const zql_node_t *st = files[f]->u.list.items[i];
      if (st->kind != ZQL_N_AGGREGATE)
        continue;
      zql_plan_opts_t po;
      zql_plan_opts_init(&po);
      po.incremental = true;
      zql_plan_t *p;
      zql_strbuf_t e = ZQL_STRBUF_INIT;
      const zql_source_t *src = zql_file_source(files[f]);
      rc = zql_plan_build(src, st, &po, &p, &e);
      if (rc) {
        fprintf(stderr, "zql agg add: %s: %s [%s]\n", st->u.query.name, e.buf,
                zql_err_code_str(rc));
        zql_strbuf_release(&e);
        status = EXIT_ERRORS;
        continue;
      }
      zql_def_status_t ds;
      rc = zql_incr_define(s, p, paths[f], src->text, src->len, ro.rebuild, &ds, &e);
      if (rc) {
        fail("add", rc, &e);
        status = EXIT_ERRORS;
      } else {
        nadded++;
        static const char *const what[] = {"added", "unchanged", "updated",
                                           "changed: rebuilding"};
        if (cli->verbosity >= 0)
          printf("%s: %s\n", p->name, what[ds]);
        if (ds == ZQL_DEF_REBUILD && nrebuild < 256)
          rebuilds[nrebuild++] = zql_arena_strdup(arena, p->name);
      }
      zql_strbuf_release(&e);
      zql_plan_free(p);
    }
  }
  if (!nadded && status == EXIT_OK) {
    fprintf(stderr, "zql agg add: no aggregate definitions in the files\n");
    status = EXIT_ERRORS;
  }
  /* a definition accepted with --rebuild is rebuilt now, when there are events */
  char evdir[4096];
  snprintf(evdir, sizeof evdir, "%s/events", cli->data_dir);
  FILE *probe = nrebuild ? fopen(evdir, "r") : NULL;
  if (probe)
    fclose(probe);
  for (size_t i = 0; i < nrebuild && probe; i++)
    if (run_one(cli, s, rebuilds[i], false, &ro) != 0)
      status = EXIT_ERRORS;
  zql_store_close(s);
  zql_arena_delete(arena);
  free(paths);
  return status;
}

/* ==== list, show, runs ==== */

/* NAME's catalog entry (views into d, valid with t) and, when p is not NULL, its plan:
 * 0, ZQL_E_NO_AGG, or the store's and the plan reader's errors. */
static int load_entry(zql_store_txn_t *t, const char *name, zql_catentry_t *e, bson_t *d,
                      zql_plan_t **p, zql_strbuf_t *err)
{
  int rc = zql_catalog_get(t, name, e, d, err);
  if (rc == ZQL_STORE_NOTFOUND) {
    zql_strbuf_addf(err, "no aggregate named '%s' (zql agg list)", name);
    return ZQL_E_NO_AGG;
  }
  if (!rc && p)
    rc = zql_plan_from_bson(e->plan, e->plan_len, p, err);
  return rc;
}

typedef struct listctx {
  zql_store_txn_t *t;
  int rows;
  int width; /* of the name column: the longest name, at least 24 */
} listctx_t;

/* The first pass over the catalog: the name column's width. */
static int width_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  listctx_t *l = arg;
  (void)id;
  (void)doc;
  if (idlen > (size_t)l->width && idlen < 300)
    l->width = (int)idlen;
  return 0;
}

static int list_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  listctx_t *l = arg;
  char name[300];
  snprintf(name, sizeof name, "%.*s", (int)idlen, (const char *)id);
  bson_iter_t it;
  const char *mode = bson_iter_init_find(&it, doc, "mode") && BSON_ITER_HOLDS_UTF8(&it)
                         ? bson_iter_utf8(&it, NULL) : "?";
  int32_t version = bson_iter_init_find(&it, doc, "version") && BSON_ITER_HOLDS_INT32(&it)
                        ? bson_iter_int32(&it) : 0;
  const char *into = "";
  if (bson_iter_init_find(&it, doc, "into") && BSON_ITER_HOLDS_ARRAY(&it)) {
    bson_iter_t a;
    if (bson_iter_recurse(&it, &a) && bson_iter_next(&a) && BSON_ITER_HOLDS_UTF8(&a))
      into = bson_iter_utf8(&a, NULL);
  }
  bson_t wm;
  int64_t seq = 0, run = 0;
  if (zql_store_get(l->t, ZQL_WM_COLL, id, idlen, &wm, NULL) == 0) {
    if (bson_iter_init_find(&it, &wm, "seq") && BSON_ITER_HOLDS_INT64(&it))
      seq = bson_iter_int64(&it);
    if (bson_iter_init_find(&it, &wm, "run") && BSON_ITER_HOLDS_INT64(&it))
      run = bson_iter_int64(&it);
  }
  uint64_t docs = 0;
  zql_store_count(l->t, into, &docs, NULL);
  if (l->rows++ == 0)
    printf("%-*s %-8s %7s %12s %6s %10s  %s\n", l->width, "name", "mode", "version",
           "last _seq", "runs", "documents", "into");
  printf("%-*s %-8s %7" PRId32 " %12" PRId64 " %6" PRId64 " %10" PRIu64 "  %s\n", l->width, name,
         mode, version, seq, run, docs, into);
  return 0;
}

static int cmd_list(const zql_cli_t *cli, zql_store_t *s)
{
  zql_store_txn_t *t;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_store_begin(s, false, &t, &err);
  listctx_t l = {t, 0, 24};
  if (!rc) {
    rc = zql_store_scan(t, ZQL_CAT_COLL, NULL, 0, NULL, 0, width_visit, &l, &err);
    if (!rc)
      rc = zql_store_scan(t, ZQL_CAT_COLL, NULL, 0, NULL, 0, list_visit, &l, &err);
    zql_store_abort(t);
  }
  if (!rc && l.rows == 0 && cli->verbosity >= 0)
    printf("no aggregates (zql agg add FILE.zql)\n");
  int st = rc ? fail("list", rc, &err) : EXIT_OK;
  zql_strbuf_release(&err);
  return st;
}

static void print_run(const bson_t *doc)
{
  bson_iter_t it;
  int64_t run = 0, lo = 0, hi = 0, started = 0, finished = 0;
  const char *kind = "", *status = "", *error = NULL;
  int64_t ev = 0, ins = 0, upd = 0, late = 0, drop = 0;
  if (bson_iter_init(&it, doc))
    while (bson_iter_next(&it)) {
      const char *k = bson_iter_key(&it);
      if (strcmp(k, "run") == 0)
        run = bson_iter_as_int64(&it);
      else if (strcmp(k, "lo") == 0)
        lo = bson_iter_as_int64(&it);
      else if (strcmp(k, "hi") == 0)
        hi = bson_iter_as_int64(&it);
      else if (strcmp(k, "kind") == 0 && BSON_ITER_HOLDS_UTF8(&it))
        kind = bson_iter_utf8(&it, NULL);
      else if (strcmp(k, "status") == 0 && BSON_ITER_HOLDS_UTF8(&it))
        status = bson_iter_utf8(&it, NULL);
      else if (strcmp(k, "error") == 0 && BSON_ITER_HOLDS_UTF8(&it))
        error = bson_iter_utf8(&it, NULL);
      else if (strcmp(k, "started") == 0 && BSON_ITER_HOLDS_DATE_TIME(&it))
        started = bson_iter_date_time(&it);
      else if (strcmp(k, "finished") == 0 && BSON_ITER_HOLDS_DATE_TIME(&it))
        finished = bson_iter_date_time(&it);
      else if (strcmp(k, "counts") == 0 && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        bson_iter_t c;
        bson_iter_recurse(&it, &c);
        while (bson_iter_next(&c)) {
          const char *ck = bson_iter_key(&c);
          int64_t v = bson_iter_as_int64(&c);
          if (strcmp(ck, "events") == 0)
            ev = v;
          else if (strcmp(ck, "inserted") == 0)
            ins = v;
          else if (strcmp(ck, "updated") == 0)
            upd = v;
          else if (strcmp(ck, "late") == 0)
            late = v;
          else if (strcmp(ck, "dropped") == 0)
            drop = v;
        }
      }
    }
  char ts[40];
  fmt_time(ts, sizeof ts, started);
  printf("%6" PRId64 "  %-11s %-9s (%" PRId64 ", %" PRId64 "]  %s  %.3fs  events %" PRId64
         " inserted %" PRId64 " updated %" PRId64 " late %" PRId64 " dropped %" PRId64 "%s%s\n",
         run, kind, status, lo, hi, ts, finished > started ? (double)(finished - started) / 1000 : 0.0,
         ev, ins, upd, late, drop, error ? "  error: " : "", error ? error : "");
}

static int runs_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  (void)id;
  (void)idlen;
  print_run(doc);
  (void)arg;
  return 0;
}

static int cmd_runs(zql_store_t *s, const char *name, uint64_t limit)
{
  zql_store_txn_t *t;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_store_begin(s, false, &t, &err);
  if (!rc) {
    zql_catentry_t e;
    bson_t d;
    rc = load_entry(t, name, &e, &d, NULL, &err);
    /* the last `limit` runs: run numbers are dense from 1 */
    uint8_t from[300];
    size_t nl = strlen(name);
    int64_t first = 1;
    bson_t wm;
    if (!rc && zql_store_get(t, ZQL_WM_COLL, name, nl, &wm, &err) == 0) {
      bson_iter_t it;
      if (bson_iter_init_find(&it, &wm, "run") && BSON_ITER_HOLDS_INT64(&it) && limit &&
          bson_iter_int64(&it) > (int64_t)limit)
        first = bson_iter_int64(&it) - (int64_t)limit + 1;
    }
    memcpy(from, name, nl);
    from[nl] = 0;
    for (int i = 0; i < 8; i++)
      from[nl + 1 + i] = (uint8_t)((uint64_t)first >> (8 * (7 - i)));
    uint8_t to[300];
    memcpy(to, name, nl);
    to[nl] = 1; /* just past every "name\0..." key */
    if (!rc)
      rc = zql_store_scan(t, ZQL_RUNS_COLL, from, nl + 9, to, nl + 1, runs_visit, NULL, &err);
    zql_store_abort(t);
  }
  int st = rc ? fail("runs", rc, &err) : EXIT_OK;
  zql_strbuf_release(&err);
  return st;
}

static int cmd_show(zql_store_t *s, const char *name)
{
  zql_store_txn_t *t;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_store_begin(s, false, &t, &err);
  if (rc)
    return fail("show", rc, &err);
  zql_catentry_t e;
  bson_t d;
  zql_plan_t *p = NULL;
  rc = load_entry(t, name, &e, &d, &p, &err);
  if (!rc) {
    char c1[40], c2[40];
    fmt_time(c1, sizeof c1, e.created);
    fmt_time(c2, sizeof c2, e.updated);
    bson_iter_t it;
    bool pending = bson_iter_init_find(&it, &d, "rebuild") && BSON_ITER_HOLDS_BOOL(&it) &&
                   bson_iter_bool(&it);
    printf("aggregate %s\n  file      %s\n  version   %" PRId32 " (added %s, updated %s)%s\n"
           "  identity  %s\n  mode      %s\n",
           name, e.file, e.version, c1, c2, pending ? "  REBUILD PENDING" : "", e.identity,
           p->mode);
    if (p->schedule) /* the clause as written: "schedule every 1m" */
      printf("  schedule  %s\n", strncmp(p->schedule, "schedule ", 9) == 0 ? p->schedule + 9
                                                                      : p->schedule);
    if (p->lateness_ms || strcmp(p->late, "merge") != 0)
      printf("  late      lateness %" PRId64 " ms, late %s%s%s\n", p->lateness_ms, p->late,
             p->sidecar ? " " : "", p->sidecar ? p->sidecar : "");
    if (p->retain_ms >= 0)
      printf("  retain    %" PRId64 " ms\n", p->retain_ms);
    bson_t wm;
    if (zql_store_get(t, ZQL_WM_COLL, name, strlen(name), &wm, &err) == 0) {
      int64_t seq = 0, run = 0;
      if (bson_iter_init_find(&it, &wm, "seq") && BSON_ITER_HOLDS_INT64(&it))
        seq = bson_iter_int64(&it);
      if (bson_iter_init_find(&it, &wm, "run") && BSON_ITER_HOLDS_INT64(&it))
        run = bson_iter_int64(&it);
      printf("  watermark _seq %" PRId64 ", %" PRId64 " runs", seq, run);
      if (bson_iter_init_find(&it, &wm, "et") && BSON_ITER_HOLDS_DATE_TIME(&it)) {
        char et[40];
        fmt_time(et, sizeof et, bson_iter_date_time(&it));
        printf(", max event time %s", et);
      }
      printf("\n");
    }
    for (uint32_t i = 0; i < p->ntables; i++)
      if (!p->tables[i].intermediate && !p->tables[i].prepass) {
        uint64_t n = 0;
        zql_store_count(t, p->tables[i].into, &n, NULL);
        printf("  output    %s: %" PRIu64 " documents\n", p->tables[i].into, n);
      }
    zql_strbuf_t ex = ZQL_STRBUF_INIT;
    zql_plan_explain(&ex, p, NULL);
    printf("\n%s", ex.buf ? ex.buf : "");
    zql_strbuf_release(&ex);
  }
  zql_store_abort(t);
  zql_plan_free(p);
  int st = rc ? fail("show", rc, &err) : EXIT_OK;
  zql_strbuf_release(&err);
  return st;
}

/* zql agg dump NAME [--raw] [--bson]: the stored documents, in id order, as canonical
 * extended JSON lines (or raw BSON); without --raw the bookkeeping fields _hw, _rev and
 * _late are left out, so that two stores holding the same results dump the same bytes. */
typedef struct dumpctx {
  bool raw, bson;
} dumpctx_t;

static int dump_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  (void)id;
  (void)idlen;
  const dumpctx_t *c = arg;
  bson_t d = BSON_INITIALIZER;
  bson_iter_t it;
  if (bson_iter_init(&it, doc))
    while (bson_iter_next(&it)) {
      const char *k = bson_iter_key(&it);
      if (c->raw || (strcmp(k, "_hw") && strcmp(k, "_rev") && strcmp(k, "_late")))
        bson_append_iter(&d, k, -1, &it);
    }
  if (c->bson) {
    fwrite(bson_get_data(&d), 1, d.len, stdout);
  } else {
    char *j = bson_as_canonical_extended_json(&d, NULL);
    if (j)
      printf("%s\n", j);
    bson_free(j);
  }
  bson_destroy(&d);
  return 0;
}

static int cmd_dump(zql_store_t *s, const char *name, bool raw, bool bson)
{
  zql_store_txn_t *t;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_store_begin(s, false, &t, &err);
  if (rc)
    return fail("dump", rc, &err);
  zql_catentry_t e;
  bson_t d;
  zql_plan_t *p = NULL;
  rc = load_entry(t, name, &e, &d, &p, &err);
  dumpctx_t c = {raw, bson};
  for (uint32_t i = 0; !rc && i < p->ntables; i++)
    if (!p->tables[i].intermediate && !p->tables[i].prepass)
      rc = zql_store_scan(t, p->tables[i].into, NULL, 0, NULL, 0, dump_visit, &c, &err);
  zql_store_abort(t);
  zql_plan_free(p);
  int st = rc ? fail("dump", rc, &err) : EXIT_OK;
  zql_strbuf_release(&err);
  return st;
}

/* Every stored aggregate as "name\0reads\0" (reads: the `from agg` source, or empty). */
static int names_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  zql_strbuf_t *sb = arg;
  bson_iter_t it;
  zql_strbuf_add(sb, id, idlen);
  zql_strbuf_addc(sb, 0);
  if (bson_iter_init_find(&it, doc, "reads") && BSON_ITER_HOLDS_UTF8(&it))
    zql_strbuf_adds(sb, bson_iter_utf8(&it, NULL));
  zql_strbuf_addc(sb, 0);
  return 0;
}

/* zql agg run --all: every stored aggregate, each after the aggregate it reads. */
static int run_all(const zql_cli_t *cli, zql_store_t *s, const runopts_t *ro)
{
  zql_strbuf_t all = ZQL_STRBUF_INIT, err = ZQL_STRBUF_INIT;
  zql_store_txn_t *t;
  int rc = zql_store_begin(s, false, &t, &err);
  if (!rc) {
    rc = zql_store_scan(t, ZQL_CAT_COLL, NULL, 0, NULL, 0, names_visit, &all, &err);
    zql_store_abort(t);
  }
  if (!rc && all.oom)
    rc = ZQL_E_NOMEM;
  if (rc) {
    fail("run", rc, &err);
    zql_strbuf_release(&all);
    zql_strbuf_release(&err);
    return EXIT_ERRORS;
  }
  int status = EXIT_OK;
  size_t n = 0;
  for (size_t off = 0; off < all.len; off += strlen(all.buf + off) + 1)
    n++;
  n /= 2;
  bool *done = calloc(n ? n : 1, sizeof *done);
  const char **name = calloc(n ? n : 1, sizeof *name), **reads = calloc(n ? n : 1, sizeof *reads);
  if (!done || !name || !reads)
    status = EXIT_ERRORS;
  for (size_t i = 0, off = 0; status == EXIT_OK && i < n; i++) {
    name[i] = all.buf + off;
    off += strlen(name[i]) + 1;
    reads[i] = all.buf + off;
    off += strlen(reads[i]) + 1;
  }
  /* rounds: an aggregate runs once what it reads is done (or is not stored) */
  for (size_t left = n; status == EXIT_OK && left;) {
    size_t ran = 0;
    for (size_t i = 0; i < n; i++) {
      if (done[i])
        continue;
      bool ready = true;
      for (size_t j = 0; j < n && ready; j++)
        if (!done[j] && j != i && *reads[i] && strcmp(reads[i], name[j]) == 0)
          ready = false;
      if (!ready)
        continue;
      if (run_one(cli, s, name[i], false, ro) != 0)
        status = EXIT_ERRORS;
      done[i] = true;
      ran++;
      left--;
    }
    if (!ran) { /* a cycle cannot be stored (the analyzer refuses it); run the rest anyway */
      for (size_t i = 0; i < n; i++)
        if (!done[i] && run_one(cli, s, name[i], false, ro) != 0)
          status = EXIT_ERRORS;
      break;
    }
  }
  free(done);
  free(name);
  free(reads);
  zql_strbuf_release(&all);
  zql_strbuf_release(&err);
  return status;
}

/* ==== the subcommand ==== */

int zql_cmd_agg(const zql_cli_t *cli, int argc, char **argv)
{
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    help();
    return argc < 2 ? EXIT_USAGE : EXIT_OK;
  }
  const char *sub = argv[1];
  if (strcmp(sub, "add") == 0)
    return cmd_add(cli, argc - 1, argv + 1);
  runopts_t ro = {0};
  zql_incr_opts_init(&ro.o);
  const char *names[64];
  int nnames = 0;
  for (int i = 2; i < argc; i++) {
    int r = run_option(&ro, argc, argv, &i);
    if (r < 0)
      return EXIT_USAGE;
    if (r == 0) {
      if (nnames == 64)
        return usage("at most 64 names");
      names[nnames++] = argv[i];
    }
  }
  bool known = strcmp(sub, "list") == 0 || strcmp(sub, "show") == 0 ||
               strcmp(sub, "drop") == 0 || strcmp(sub, "run") == 0 ||
               strcmp(sub, "rebuild") == 0 || strcmp(sub, "backfill") == 0 ||
               strcmp(sub, "runs") == 0 || strcmp(sub, "dump") == 0;
  if (!known)
    return usage("unknown command '%s'", sub);
  if (!check_options(&ro, sub))
    return EXIT_USAGE;
  if (strcmp(sub, "list") == 0 && nnames)
    return usage("list takes no names");
  if (strcmp(sub, "run") == 0 && (nnames > 0) == ro.all)
    return usage("run takes NAME... or --all");
  if (strcmp(sub, "list") != 0 && strcmp(sub, "run") != 0 && nnames != 1)
    return usage("%s takes one NAME", sub);
  int64_t t1 = 0, t2 = 0;
  if (strcmp(sub, "backfill") == 0) {
    if (!ro.from || !ro.to)
      return usage("backfill needs --from T and --to T");
    if (!parse_time(ro.from, &t1) || !parse_time(ro.to, &t2))
      return usage("backfill: --from/--to must be ISO-8601 times with a zone "
                   "(2011-07-01 or 2011-07-01T00:00:00Z)");
    if (t2 <= t1)
      return usage("backfill: --to must be after --from");
  }
  zql_store_t *s;
  if (open_store(cli, &s) != 0)
    return EXIT_ERRORS;
  int status = EXIT_OK;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  if (strcmp(sub, "list") == 0) {
    status = cmd_list(cli, s);
  } else if (strcmp(sub, "show") == 0) {
    status = cmd_show(s, names[0]);
  } else if (strcmp(sub, "dump") == 0) {
    status = cmd_dump(s, names[0], ro.raw, ro.bson);
  } else if (strcmp(sub, "runs") == 0) {
    status = cmd_runs(s, names[0], ro.limit);
  } else if (strcmp(sub, "drop") == 0) {
    int rc = zql_incr_drop(s, cli->data_dir, names[0], &err);
    if (rc)
      status = fail("drop", rc, &err);
    else if (cli->verbosity >= 0)
      printf("%s: dropped\n", names[0]);
  } else if (strcmp(sub, "run") == 0 || strcmp(sub, "rebuild") == 0) {
    if (ro.all)
      status = run_all(cli, s, &ro);
    for (int i = 0; i < nnames; i++)
      if (run_one(cli, s, names[i], strcmp(sub, "rebuild") == 0, &ro) != 0)
        status = EXIT_ERRORS;
  } else { /* backfill */
    for (int round = 0; round < 2; round++) {
      zql_incr_report_t rep;
      zql_strbuf_reset(&err);
      int rc = zql_incr_backfill(s, cli->data_dir, names[0], t1, t2, &ro.o, &rep, &err);
      if (rc) {
        status = fail("backfill", rc, &err);
        break;
      }
      if (cli->verbosity >= 0)
        print_report(cli, names[0], &rep);
      if (!rep.resumed)
        break;
    }
  }
  zql_strbuf_release(&err);
  zql_store_close(s);
  return status;
}
