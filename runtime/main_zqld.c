/*
 * main_zqld.c -- the `zqld` daemon (runtime services; issue 6, docs/zqld.md).
 *
 * The always-on part of zql, one process:
 *
 *   producers --ZMQ PULL :6543 (BSON) / :6544 (JSON) / ROUTER :6546 (acked)--> ingest
 *             --HTTP POST /api/v1/events (:8081)---------------------------->  (zqld_ingest.c)
 *   ingest's writer thread --> the event log (evlog.c; group commit, fsync policy)
 *   the scheduler (this file's main loop, sched.c) --> runs (incr.c) on worker threads
 *             --> the results store (LMDB) --> PUB :6545 {'$command': 'agg_complete', ...}
 *
 * Threads: the main thread owns the scheduler, the PUB socket and every decision; a
 * signal thread turns SIGHUP/SIGTERM/SIGINT into flags (sigwait, so no async-signal
 * rules); each run has its own thread (at most scheduler.max_parallel); ingest and HTTP
 * have theirs. Runs read the log up to its durable _seq, so no run counts an event a
 * machine crash could take back.
 *
 * `on event [pred]`: the writer thread only publishes the last appended _seq; the main
 * loop reads the new events from the log (a reader over the records past what it saw)
 * and runs each aggregate's predicate (evmatch.c) over them, at most every 20 ms, and
 * only for aggregates not already armed or running.
 *
 * SIGTERM/SIGINT drain: HTTP stops accepting, ingest stops reading and writes and syncs
 * everything it received, no new run starts, running runs finish (a run commits all or
 * nothing, so waiting is only about finishing work), then the log is closed; exit 0.
 * SIGHUP: the configuration file is read again (the log level applies at once; endpoint
 * changes need a restart and are logged) and the aggregates are reloaded from the store's
 * catalog (also every 10 s, so `zql agg add` is picked up without a signal).
 *
 *   zqld [--config FILE] [--data DIR] [--set SECTION.KEY=VALUE]... [--log-level L]
 *   zqld --check-config [same options]      print the effective configuration
 *   zqld --check FILE.zql...                check definitions, print their schedules
 */
#include "runtime/base/zql_common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "exec/zql_exec.h"
#include "parser/zql_parse.h"
#include "planner/zql_plan.h"
#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"
#include "runtime/base/tz.h"
#include "runtime/base/clock.h"
#include "runtime/catalog.h"
#include "runtime/evlog.h"
#include "runtime/evmatch.h"
#include "runtime/incr.h"
#include "runtime/log.h"
#include "runtime/sched.h"
#include "runtime/status.h"
#include "runtime/store.h"
#include "runtime/zql.h"
#include "runtime/zql_client.h"
#include "runtime/zqld_config.h"
#include "runtime/zqld_http.h"
#include "runtime/zqld_ingest.h"

static char *dupstr(const char *s)
{
  return zql_strndup(s, strlen(s));
}

/* {==== the --check mode (definitions only) ====} */

static void print_schedule(const zql_node_t *file)
{
  const zql_source_t *src = zql_file_source(file);
  for (uint32_t i = 0; i < file->u.list.n; i++) {
    const zql_node_t *it = file->u.list.items[i];
    if (it->kind != ZQL_N_AGGREGATE)
      continue;
    const zql_node_t *sched = NULL;
    for (uint32_t k = 0; k < it->u.query.options.n; k++)
      if (it->u.query.options.items[k]->u.option.opt == ZQL_OPT_SCHEDULE)
        sched = it->u.query.options.items[k];
    printf("%s: aggregate %s: ", src->name, it->u.query.name);
    if (!sched) {
      printf("run on demand (no schedule)\n");
      continue;
    }
    uint32_t from = sched->span.start + (uint32_t)strlen("schedule");
    while (from < sched->span.end && (src->text[from] == ' ' || src->text[from] == '\n'))
      from++;
    printf("%.*s\n", (int)(sched->span.end - from), src->text + from);
  }
}

static int check_files(int argc, char **argv)
{
  size_t n = (size_t)argc;
  zql_arena_t *arena = zql_arena_create(NULL);
  zql_node_t **files = arena ? zql_arena_calloc(arena, n, sizeof *files) : NULL;
  if (!files) {
    fputs("zqld: out of memory\n", stderr);
    zql_arena_delete(arena);
    return 1;
  }
  zql_diags_t d;
  zql_diags_init(&d, arena);
  int rc = zql_compile_paths(arena, (const char *const *)argv, n, &d, files);
  zql_diags_sort(&d);
  zql_strbuf_t out = ZQL_STRBUF_INIT;
  zql_diags_render(&out, &d, false);
  fwrite(out.buf, 1, out.len, stderr);
  zql_strbuf_release(&out);
  if (rc == 0 && d.nerr == 0)
    for (size_t i = 0; i < n; i++)
      print_schedule(files[i]);
  int status = (rc != 0 || d.nerr > 0) ? 1 : 0;
  zql_diags_release(&d);
  zql_arena_delete(arena);
  return status;
}

/* {==== the daemon's state ====} */

typedef struct agg {
  char *name;
  int32_t version;
  zql_schedule_t sc;
  zql_evmatch_t *match; /* on event: the predicate (NULL: every event matches) */
  bool seen;            /* reload bookkeeping */
} agg_t;

typedef struct done {
  char *name;
  int rc;
  char *error;
  zql_incr_report_t rep;
} done_t;

typedef struct daemon {
  zql_zqld_config_t cfg;
  const char *config_path;
  char **sets;
  int nsets;
  const char *data_flag, *level_flag;
  int64_t started_ms;

  zql_evlog_t *log;
  zql_store_t *store;
  zql_ingestd_t *ingest;
  zql_http_t *http;
  void *pub; /* PUB socket (main thread only) */
  zql_sched_t *sched;

  agg_t *aggs;
  size_t naggs;
  int64_t last_reload_ms;

  pthread_mutex_t mu; /* guards done[], active, wake; cond signals the main loop */
  pthread_cond_t cond;
  done_t *done;
  size_t ndone, capdone;
  int active;
  bool wake;

  atomic_int_fast64_t appended; /* the last _seq the writer appended */
  atomic_bool napping;          /* the main loop sleeps longer than the 20 ms match period */
  int64_t matched;              /* on event: events up to here were looked at */
  int64_t last_match_ms;

  atomic_int hup, term;
  /* ingest rate: received totals sampled each second, the last 11 kept */
  uint64_t rate_v[11];
  int64_t rate_t[11];
  size_t rate_n;
  int64_t runs_ok, runs_failed;
} daemon_t;

static void wake(daemon_t *d)
{
  pthread_mutex_lock(&d->mu);
  d->wake = true;
  pthread_cond_signal(&d->cond);
  pthread_mutex_unlock(&d->mu);
}

/* {==== configuration ====} */

static int load_config(daemon_t *d, zql_zqld_config_t *cfg, zql_zqld_errs_t *errs)
{
  extern char **environ;
  zql_zqld_config_init(cfg);
  int rc = 0;
  if (d->config_path)
    rc = zql_zqld_config_load_file(cfg, d->config_path, errs);
  if (rc == 0 || rc == ZQL_E_USAGE)
    zql_zqld_config_env(cfg, environ, errs);
  for (int i = 0; i < d->nsets; i++)
    zql_zqld_config_set(cfg, d->sets[i], errs);
  if (d->data_flag)
    zql_zqld_config_set_flag(cfg, "zqld.data", d->data_flag, errs);
  if (d->level_flag)
    zql_zqld_config_set_flag(cfg, "zqld.log_level", d->level_flag, errs);
  zql_zqld_config_validate(cfg, errs);
  return errs->n || errs->oom ? ZQL_E_USAGE : 0;
}

/* A CURVE key in Z85 text: 40 characters of ZeroMQ's Z85 alphabet (RFC 32). */
static bool is_z85_key(const char *s)
{
  static const char z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            ".-:+=^!/*?&<>()[]{}@%$#";
  return strlen(s) == 40 && strspn(s, z85) == 40;
}

/* The lines of a file (tokens, CURVE keys), blanks around them dropped, blank lines and
 * '#' comments skipped (no Z85 key starts with '#': its first character encodes at most
 * 2^32 / 85^4 < 83): NULL-terminated array of heap strings. */
static char **read_lines(const char *path, zql_strbuf_t *err)
{
  FILE *f = fopen(path, "r");
  if (!f) {
    zql_strbuf_addf(err, "cannot read '%s': %s", path, strerror(errno));
    return NULL;
  }
  char **v = zql_calloc(1, sizeof *v);
  size_t n = 0;
  char line[1024];
  while (v && fgets(line, sizeof line, f)) {
    size_t l = strcspn(line, "\r\n");
    while (l > 0 && (line[l - 1] == ' ' || line[l - 1] == '\t'))
      l--;
    line[l] = 0;
    char *s = line;
    while (*s == ' ' || *s == '\t')
      s++;
    if (!*s || *s == '#')
      continue;
    char **nv = zql_reallocarray(v, n + 2, sizeof *v);
    if (!nv || !(nv[n] = dupstr(s))) {
      v = nv;
      break;
    }
    v = nv;
    v[++n] = NULL;
  }
  fclose(f);
  if (!v)
    zql_strbuf_adds(err, "out of memory");
  return v;
}

static void free_lines(char **v)
{
  for (size_t i = 0; v && v[i]; i++)
    zql_free(v[i]);
  zql_free(v);
}

/* The key of a keygen line `which = Z85` (blanks optional around '='; Z85 itself may start
 * with '='), or NULL when line is not one. */
static const char *keyfile_value(const char *line, const char *which)
{
  size_t wl = strlen(which);
  if (strncmp(line, which, wl) != 0)
    return NULL;
  const char *s = line + wl;
  while (*s == ' ' || *s == '\t')
    s++;
  if (*s++ != '=')
    return NULL;
  while (*s == ' ' || *s == '\t')
    s++;
  return is_z85_key(s) ? s : NULL;
}

/* The secret key of a `zql keygen` file (read by the client library's reader, which also
 * checks that the file's public key belongs to it). */
static char *secret_from_keyfile(const char *path, zql_strbuf_t *err)
{
  char pub[ZQL_CLIENT_KEY_LEN + 1], sec[ZQL_CLIENT_KEY_LEN + 1], eb[ZQL_CLIENT_ERRLEN];
  if (zql_client_read_keyfile(path, pub, sec, eb) != 0) {
    zql_strbuf_adds(err, eb);
    return NULL;
  }
  if (!sec[0]) {
    zql_strbuf_addf(err, "'%s' has no 'secret = <40 Z85 characters>' line (zql keygen "
                    "writes one)", path);
    return NULL;
  }
  char *out = dupstr(sec);
  if (!out)
    zql_strbuf_adds(err, "out of memory");
  return out;
}

/* The allow list: one client public key per line, bare (Z85) or as the `public = Z85`
 * line of a keygen .pub file (docs/zqld.md: "add the line of client.key.pub"). Lines are
 * rewritten in place to the bare key; ingest reports one that is not a key. */
static char **read_allow(const char *path, zql_strbuf_t *err)
{
  char **lines = read_lines(path, err);
  for (size_t i = 0; lines && lines[i]; i++) {
    const char *k = is_z85_key(lines[i]) ? NULL : keyfile_value(lines[i], "public");
    if (k)
      memmove(lines[i], k, strlen(k) + 1);
  }
  return lines;
}

/* {==== aggregates: the catalog into the scheduler ====} */

static agg_t *find_agg(daemon_t *d, const char *name)
{
  for (size_t i = 0; i < d->naggs; i++)
    if (strcmp(d->aggs[i].name, name) == 0)
      return &d->aggs[i];
  return NULL;
}

static void agg_clear(agg_t *a)
{
  zql_free(a->name);
  zql_schedule_release(&a->sc);
  zql_evmatch_free(a->match);
  memset(a, 0, sizeof *a);
}

typedef struct catlist {
  char **names;
  size_t n, cap;
} catlist_t;

static int cat_visit(void *arg, const void *id, size_t idlen, const bson_t *doc)
{
  (void)doc;
  catlist_t *c = arg;
  if (c->n == c->cap) {
    size_t nc = c->cap ? 2 * c->cap : 16;
    char **v = zql_reallocarray(c->names, nc, sizeof *v);
    if (!v)
      return ZQL_E_NOMEM;
    c->names = v;
    c->cap = nc;
  }
  if (!(c->names[c->n] = zql_strndup(id, idlen)))
    return ZQL_E_NOMEM;
  c->n++;
  return 0;
}

/* (Re)build one aggregate's schedule from its catalog entry. */
static int agg_schedule(daemon_t *d, zql_store_txn_t *t, const char *name, bool *changed)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_catentry_t e;
  bson_t doc;
  int rc = zql_catalog_get(t, name, &e, &doc, &err);
  if (rc) {
    if (rc < 0)
      zql_log(ZQL_LOG_ERROR, "aggregate %s: %s", name, err.buf ? err.buf : zql_strerror(rc));
    zql_strbuf_release(&err);
    return rc;
  }
  agg_t *a = find_agg(d, name);
  if (a && a->version == e.version) {
    a->seen = true;
    zql_strbuf_release(&err);
    return 0;
  }
  zql_plan_t *p = NULL;
  agg_t na = {0};
  rc = zql_plan_from_bson(e.plan, e.plan_len, &p, &err);
  if (!rc) {
    const char *tz = p->nbuckets ? p->buckets[0].tz : "UTC";
    rc = zql_schedule_parse(p->schedule, p->settle_ms, tz, &na.sc, &err);
  }
  if (!rc && na.sc.kind == ZQL_SCHEDULE_CLOSE && p->nbuckets) {
    zql_bucket_t b;
    const zql_pbucket_t *pb = &p->buckets[0];
    if ((rc = zql_bucket_setup(&b, pb->unit, pb->every, pb->tz, pb->week_start, pb->origin,
                               &err)) == 0)
      rc = zql_schedule_set_close(&na.sc, &b, p->lateness_ms);
  }
  if (!rc && na.sc.kind == ZQL_SCHEDULE_EVENT)
    rc = zql_evmatch_new(na.sc.predicate, &na.match, &err);
  zql_plan_free(p);
  if (!rc && !(na.name = dupstr(name)))
    rc = ZQL_E_NOMEM;
  if (!rc)
    rc = zql_sched_set(d->sched, name, &na.sc, zql_wall_ms(), &err);
  if (rc) {
    zql_log(ZQL_LOG_ERROR, "aggregate %s: not scheduled: %s", name,
            err.len ? err.buf : zql_strerror(rc));
    agg_clear(&na);
    zql_strbuf_release(&err);
    return rc;
  }
  na.version = e.version;
  na.seen = true;
  if (a) {
    agg_clear(a);
    *a = na;
  } else {
    agg_t *v = zql_reallocarray(d->aggs, d->naggs + 1, sizeof *v);
    if (!v) {
      agg_clear(&na);
      zql_strbuf_release(&err);
      return ZQL_E_NOMEM;
    }
    d->aggs = v;
    d->aggs[d->naggs++] = na;
  }
  *changed = true;
  zql_log(ZQL_LOG_INFO, "aggregate %s (version %d): %s", name, (int)e.version, na.sc.text);
  zql_strbuf_release(&err);
  return 0;
}

static void reload_aggs(daemon_t *d)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_store_txn_t *t;
  catlist_t cl = {0};
  if (zql_store_begin(d->store, false, &t, &err) != 0) {
    zql_log(ZQL_LOG_ERROR, "reading the catalog: %s", err.buf);
    zql_strbuf_release(&err);
    return;
  }
  int rc = zql_store_scan(t, ZQL_CAT_COLL, NULL, 0, NULL, 0, cat_visit, &cl, &err);
  for (size_t i = 0; i < d->naggs; i++)
    d->aggs[i].seen = false;
  bool changed = false;
  for (size_t i = 0; rc >= 0 && i < cl.n; i++)
    agg_schedule(d, t, cl.names[i], &changed);
  zql_store_abort(t);
  if (rc < 0) {
    zql_log(ZQL_LOG_ERROR, "reading the catalog: %s", err.buf ? err.buf : zql_strerror(rc));
  } else {
    for (size_t i = 0; i < d->naggs;) { /* dropped since */
      if (d->aggs[i].seen) {
        i++;
        continue;
      }
      /* a name that failed to schedule stays in the catalog: keep quiet about it */
      bool listed = false;
      for (size_t k = 0; k < cl.n; k++)
        listed |= strcmp(cl.names[k], d->aggs[i].name) == 0;
      if (!listed)
        zql_log(ZQL_LOG_INFO, "aggregate %s: dropped", d->aggs[i].name);
      zql_sched_remove(d->sched, d->aggs[i].name);
      agg_clear(&d->aggs[i]);
      d->aggs[i] = d->aggs[--d->naggs];
    }
  }
  for (size_t i = 0; i < cl.n; i++)
    zql_free(cl.names[i]);
  zql_free(cl.names);
  zql_strbuf_release(&err);
  d->last_reload_ms = zql_wall_ms();
}

/* {==== runs ====} */

typedef struct runarg {
  daemon_t *d;
  char *name;
} runarg_t;

static void *run_thread(void *arg)
{
  runarg_t *ra = arg;
  daemon_t *d = ra->d;
  zql_incr_opts_t o;
  zql_incr_opts_init(&o);
  o.threads = (unsigned)d->cfg.threads_per_run;
  o.upto = zql_evlog_durable_seq(d->log);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  done_t dn = {ra->name, 0, NULL, {0}};
  if (o.upto <= 0)
    o.upto = -1; /* nothing durable yet: nothing to read */
  dn.rc = o.upto < 0 ? 0
                     : zql_incr_run(d->store, d->cfg.data_dir, ra->name, false, &o, &dn.rep,
                                    &err);
  if (dn.rc)
    dn.error = dupstr(err.len ? err.buf : zql_strerror(dn.rc));
  zql_strbuf_release(&err);
  pthread_mutex_lock(&d->mu);
  if (d->ndone == d->capdone) {
    size_t nc = d->capdone ? 2 * d->capdone : 8;
    done_t *v = zql_reallocarray(d->done, nc, sizeof *v);
    if (v) {
      d->done = v;
      d->capdone = nc;
    }
  }
  if (d->ndone < d->capdone)
    d->done[d->ndone++] = dn;
  else { /* out of memory: the run's outcome is lost, the aggregate becomes runnable */
    zql_free(dn.name);
    zql_free(dn.error);
  }
  d->active--;
  d->wake = true;
  pthread_cond_signal(&d->cond);
  pthread_mutex_unlock(&d->mu);
  zql_free(ra);
  return NULL;
}

static void start_run(daemon_t *d, const char *name)
{
  runarg_t *ra = zql_calloc(1, sizeof *ra);
  char *nm = dupstr(name);
  pthread_attr_t at;
  pthread_t tid;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  if (ra && nm) {
    ra->d = d;
    ra->name = nm;
    pthread_mutex_lock(&d->mu);
    d->active++;
    pthread_mutex_unlock(&d->mu);
    if (pthread_create(&tid, &at, run_thread, ra) == 0) {
      pthread_attr_destroy(&at);
      return;
    }
    pthread_mutex_lock(&d->mu);
    d->active--;
    pthread_mutex_unlock(&d->mu);
  }
  pthread_attr_destroy(&at);
  zql_free(ra);
  zql_free(nm);
  zql_log(ZQL_LOG_ERROR, "%s: cannot start a run (out of memory or threads); retried", name);
  zql_sched_done(d->sched, name, zql_wall_ms(), false, "cannot start a thread");
}

/* Publish {'$command': 'agg_complete', name, run, lo, hi, docs} (Zarkov's notification). */
static void notify(daemon_t *d, const done_t *dn)
{
  if (!d->pub)
    return;
  bson_t b = BSON_INITIALIZER;
  bson_append_utf8(&b, "$command", 8, "agg_complete", -1);
  bson_append_utf8(&b, "name", 4, dn->name, -1);
  bson_append_int64(&b, "run", 3, dn->rep.run);
  bson_append_int64(&b, "lo", 2, dn->rep.lo);
  bson_append_int64(&b, "hi", 2, dn->rep.hi);
  bson_append_int64(&b, "docs", 4,
                    (int64_t)(dn->rep.inserted + dn->rep.updated + dn->rep.deleted));
  bson_append_utf8(&b, "kind", 4, dn->rep.kind, -1);
  bson_append_int64(&b, "events", 6, (int64_t)dn->rep.events);
  if (zmq_send(d->pub, bson_get_data(&b), b.len, ZMQ_DONTWAIT) < 0 && errno != EAGAIN)
    zql_log(ZQL_LOG_WARN, "notification of %s run %" PRId64 ": %s", dn->name, dn->rep.run,
            zmq_strerror(errno));
  bson_destroy(&b);
}

static void finish_runs(daemon_t *d)
{
  pthread_mutex_lock(&d->mu);
  size_t n = d->ndone;
  done_t *v = n ? zql_malloc(n * sizeof *v) : NULL;
  if (v) {
    memcpy(v, d->done, n * sizeof *v);
    d->ndone = 0;
  } else {
    n = 0;
  }
  pthread_mutex_unlock(&d->mu);
  for (size_t i = 0; i < n; i++) {
    done_t *dn = &v[i];
    int64_t t = zql_wall_ms();
    zql_sched_done(d->sched, dn->name, t, dn->rc == 0, dn->error);
    if (dn->rc) {
      d->runs_failed++;
      zql_log(ZQL_LOG_ERROR, "%s: run failed (retried with backoff): %s", dn->name, dn->error);
    } else {
      d->runs_ok++;
      bool work = dn->rep.run > 0;
      if (work) {
        zql_log(ZQL_LOG_INFO,
                "%s: run %" PRId64 " %s (%" PRId64 ", %" PRId64 "]: %" PRIu64 " events, %" PRIu64
                " documents (%.3f s)",
                dn->name, dn->rep.run, dn->rep.kind, dn->rep.lo, dn->rep.hi, dn->rep.events,
                dn->rep.inserted + dn->rep.updated + dn->rep.deleted, dn->rep.seconds);
        notify(d, dn);
      }
      zql_sched_committed(d->sched, dn->name, t, work);
    }
    zql_free(dn->name);
    zql_free(dn->error);
  }
  zql_free(v);
}

/* {==== on event ====} */

static void appended(void *arg, int64_t first_seq, const bson_t *const *docs, size_t n)
{
  (void)docs;
  daemon_t *d = arg;
  atomic_store(&d->appended, first_seq + (int64_t)n - 1);
  /* the first events after a quiet spell: wake the main loop now, not at the end of its
   * (up to 1 s) sleep, so `on event` aggregates are triggered within the match period */
  if (atomic_exchange(&d->napping, false))
    wake(d);
}

/* Feed the `on event` aggregates the events appended since the last look. */
static void match_events(daemon_t *d, int64_t t)
{
  int64_t hi = atomic_load(&d->appended);
  if (hi <= d->matched || t - d->last_match_ms < 20)
    return;
  d->last_match_ms = t;
  bool need_reader = false;
  for (size_t i = 0; i < d->naggs; i++) {
    agg_t *a = &d->aggs[i];
    if (a->sc.kind != ZQL_SCHEDULE_EVENT)
      continue;
    zql_sched_info_t inf;
    if (zql_sched_info(d->sched, a->name, &inf) == 0 && !inf.running &&
        inf.next_due_ms != INT64_MAX)
      continue; /* armed already: the run will see these events */
    if (!a->sc.predicate)
      zql_sched_events(d->sched, a->name, t);
    else
      need_reader = true;
  }
  if (need_reader) {
    zql_strbuf_t err = ZQL_STRBUF_INIT;
    zql_evlog_reader_t *r = NULL;
    zql_evlog_cursor_t *c = NULL;
    zql_evlog_range_t q;
    zql_evlog_range_all(&q);
    q.seq_lo = d->matched;
    q.seq_hi = hi;
    int rc = zql_evlog_reader_open_after(d->cfg.data_dir, d->matched, &r, &err);
    if (!rc)
      rc = zql_evlog_cursor_open(r, &q, &c, &err);
    bool *hit = zql_calloc(d->naggs ? d->naggs : 1, sizeof *hit);
    zql_evlog_view_t views[512];
    zql_event_t ev[512];
    int got;
    while (!rc && hit && (got = zql_evlog_cursor_next(c, views, 512, &err)) != 0) {
      if (got < 0) {
        rc = got;
        break;
      }
      for (int k = 0; k < got; k++)
        ev[k] = (zql_event_t){views[k].seq, views[k].ts, views[k].doc, views[k].len};
      for (size_t i = 0; i < d->naggs; i++) {
        agg_t *a = &d->aggs[i];
        uint64_t m = 0;
        if (hit[i] || a->sc.kind != ZQL_SCHEDULE_EVENT || !a->sc.predicate)
          continue;
        if (zql_evmatch_count(a->match, ev, (size_t)got, &m, &err) != 0) {
          zql_log(ZQL_LOG_WARN, "%s: on event predicate: %s", a->name, err.buf);
          zql_strbuf_reset(&err);
          hit[i] = true; /* an error runs the aggregate rather than skip events */
        }
        hit[i] |= m > 0;
      }
    }
    if (rc)
      zql_log(ZQL_LOG_WARN, "on event: reading the new events: %s", err.buf);
    for (size_t i = 0; hit && i < d->naggs; i++)
      if (d->aggs[i].sc.kind == ZQL_SCHEDULE_EVENT && d->aggs[i].sc.predicate && (hit[i] || rc))
        zql_sched_events(d->sched, d->aggs[i].name, t);
    zql_free(hit);
    zql_evlog_cursor_close(c);
    zql_evlog_reader_close(r);
    zql_strbuf_release(&err);
  }
  d->matched = hi;
}

/* {==== status ====} */

static void agg_extra(void *arg, const char *name, bson_t *doc)
{
  daemon_t *d = arg;
  zql_sched_info_t inf;
  /* the scheduler belongs to the main thread: HTTP threads take the lock around it */
  if (zql_sched_info(d->sched, name, &inf) != 0)
    return;
  bson_append_utf8(doc, "schedule", 8, inf.schedule ? inf.schedule : "", -1);
  bson_append_bool(doc, "running", 7, inf.running);
  bson_append_bool(doc, "pending", 7, inf.pending);
  if (inf.next_due_ms != INT64_MAX)
    bson_append_date_time(doc, "next_due", 8, inf.next_due_ms);
  bson_append_int32(doc, "failures", 8, (int32_t)inf.failures);
  if (inf.last_error)
    bson_append_utf8(doc, "last_error", 10, inf.last_error, -1);
}

static void counts_doc(bson_t *parent, const char *key, const zql_ingestd_counts_t *c)
{
  bson_t s;
  bson_append_document_begin(parent, key, -1, &s);
  bson_append_int64(&s, "received", 8, (int64_t)c->received);
  bson_append_int64(&s, "accepted", 8, (int64_t)c->accepted);
  bson_append_int64(&s, "rejected", 8, (int64_t)c->rejected);
  bson_append_int64(&s, "bytes", 5, (int64_t)c->bytes);
  bson_append_document_end(parent, &s);
}

static pthread_mutex_t status_mu = PTHREAD_MUTEX_INITIALIZER; /* sched, rate samples */

static int build_status(daemon_t *d, bson_t *b, zql_strbuf_t *err)
{
  int64_t t = zql_wall_ms();
  bson_t z, in;
  bson_append_document_begin(b, "zqld", 4, &z);
  bson_append_utf8(&z, "version", 7, zql_version(), -1);
  bson_append_int64(&z, "pid", 3, (int64_t)getpid());
  bson_append_date_time(&z, "started", 7, d->started_ms);
  bson_append_double(&z, "uptime_s", 8, (double)(t - d->started_ms) / 1000.0);
  bson_append_utf8(&z, "data", 4, d->cfg.data_dir, -1);
  bson_append_int64(&z, "runs_ok", 7, d->runs_ok);
  bson_append_int64(&z, "runs_failed", 11, d->runs_failed);
  bson_append_document_end(b, &z);
  zql_ingestd_stats_t st;
  zql_ingestd_stats(d->ingest, &st);
  bson_append_document_begin(b, "ingest", 6, &in);
  zql_ingestd_counts_t tot = {0};
  bson_t src;
  bson_append_document_begin(&in, "sources", 7, &src);
  for (int i = 0; i < ZQL_INGESTD_SOURCES; i++) {
    counts_doc(&src, zql_ingestd_source_name((zql_ingestd_source_t)i), &st.src[i]);
    tot.received += st.src[i].received;
    tot.accepted += st.src[i].accepted;
    tot.rejected += st.src[i].rejected;
    tot.bytes += st.src[i].bytes;
  }
  bson_append_document_end(&in, &src);
  counts_doc(&in, "total", &tot);
  double rate = 0;
  if (d->rate_n >= 2) {
    size_t a = d->rate_n >= 11 ? d->rate_n - 11 : 0, z2 = d->rate_n - 1;
    int64_t dt = d->rate_t[z2 % 11] - d->rate_t[a % 11];
    if (dt > 0)
      rate = (double)(d->rate_v[z2 % 11] - d->rate_v[a % 11]) * 1000.0 / (double)dt;
  }
  bson_append_double(&in, "rate_10s", 8, rate);
  bson_append_int64(&in, "queue_events", 12, (int64_t)st.queue_events);
  bson_append_int64(&in, "queue_bytes", 11, (int64_t)st.queue_bytes);
  bson_append_int64(&in, "busy", 4, (int64_t)st.busy);
  bson_append_int64(&in, "batches_acked", 13, (int64_t)st.batches_acked);
  bson_append_int64(&in, "batches_dup", 11, (int64_t)st.batches_dup);
  bson_append_int64(&in, "bad_requests", 12, (int64_t)st.bad_requests);
  bson_append_int64(&in, "curve_denied", 12, (int64_t)st.curve_denied);
  bson_append_int64(&in, "log_errors", 10, (int64_t)st.log_errors);
  bson_append_int64(&in, "deadletter_lines", 16, (int64_t)st.deadletter_lines);
  bson_append_int64(&in, "last_seq", 8, st.last_seq);
  bson_append_int64(&in, "durable_seq", 11, st.durable_seq);
  bson_append_bool(&in, "draining", 8, st.draining);
  bson_append_document_end(b, &in);
  int rc = zql_status_log(d->cfg.data_dir, b, err);
  if (!rc)
    rc = zql_status_aggs(d->store, st.last_seq, b, agg_extra, d, err);
  return rc;
}

static int http_status(void *arg, zql_strbuf_t *json)
{
  daemon_t *d = arg;
  bson_t b = BSON_INITIALIZER;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  pthread_mutex_lock(&status_mu);
  int rc = build_status(d, &b, &err);
  pthread_mutex_unlock(&status_mu);
  if (!rc) {
    size_t len;
    char *s = bson_as_relaxed_extended_json(&b, &len);
    if (s)
      zql_strbuf_add(json, s, len);
    else
      rc = ZQL_E_NOMEM;
    bson_free(s);
  } else {
    zql_log(ZQL_LOG_WARN, "status: %s", err.buf ? err.buf : zql_strerror(rc));
  }
  zql_strbuf_release(&err);
  bson_destroy(&b);
  return rc;
}

/* {==== HTTP ingest ====} */

static int http_submit(void *arg, const bson_t *const *events, size_t n,
                       zql_http_events_result_t *res, zql_strbuf_t *err)
{
  daemon_t *d = arg;
  zql_ingestd_event_t *ev = zql_calloc(n, sizeof *ev);
  if (!ev)
    return ZQL_E_NOMEM;
  for (size_t i = 0; i < n; i++)
    ev[i].doc = events[i];
  zql_ingestd_result_t r = {0};
  int rc = zql_ingestd_submit(d->ingest, ev, n, "http", &r, 30000, err);
  zql_free(ev);
  if (rc == ZQL_E_BUSY) {
    zql_ingestd_result_release(&r);
    return ZQL_HTTP_BUSY;
  }
  if (rc) {
    zql_ingestd_result_release(&r);
    return rc;
  }
  res->first = r.first;
  res->last = r.last;
  res->accepted = r.accepted;
  res->rejected = r.rejected;
  if (r.nerrors && (res->errors = zql_calloc(r.nerrors, sizeof *res->errors)) != NULL) {
    for (size_t i = 0; i < r.nerrors; i++) {
      res->errors[i].index = r.errors[i].index;
      res->errors[i].why = r.errors[i].why;
      r.errors[i].why = NULL; /* moved */
    }
    res->nerrors = r.nerrors;
  }
  zql_ingestd_result_release(&r);
  return 0;
}

/* Rejected elements of a request body: dead-lettered and counted by ingest. */
static void http_rejected(void *arg, const zql_ingest_item_t *item, const char *peer)
{
  daemon_t *d = arg;
  zql_ingestd_event_t ev = {NULL, item->reason, item->why, item->raw, item->raw_len,
                            item->received};
  zql_ingestd_result_t r = {0};
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  if (zql_ingestd_submit(d->ingest, &ev, 1, peer ? peer : "http", &r, 5000, &err) != 0)
    zql_log(ZQL_LOG_WARN, "http: a rejected event could not be dead-lettered: %s", err.buf);
  zql_ingestd_result_release(&r);
  zql_strbuf_release(&err);
}

/* {==== signals ====} */

static void *signal_thread(void *arg)
{
  daemon_t *d = arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  for (;;) {
    int sig;
    if (sigwait(&set, &sig) != 0)
      continue;
    if (sig == SIGHUP)
      atomic_store(&d->hup, 1);
    else
      atomic_store(&d->term, 1);
    wake(d);
    if (sig != SIGHUP)
      return NULL;
  }
}

/* {==== start, main loop, drain ====} */

static int start(daemon_t *d)
{
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_zqld_config_t *c = &d->cfg;
  char **allow = NULL, **tokens = NULL;
  char *secret = NULL;
  int rc = 0;
  if (mkdir(c->data_dir, 0755) != 0 && errno != EEXIST) {
    zql_log(ZQL_LOG_ERROR, "cannot create the data directory '%s': %s", c->data_dir,
            strerror(errno));
    return 1;
  }
  zql_evlog_opts_t lo;
  zql_evlog_opts_init(&lo);
  lo.sync = (zql_evlog_sync_t)c->fsync;
  lo.sync_interval_us = c->fsync_interval_ms * 1000;
  zql_strbuf_t notes = ZQL_STRBUF_INIT;
  lo.notes = &notes;
  if ((rc = zql_evlog_open(c->data_dir, &lo, &d->log, &err)) != 0) {
    zql_log(ZQL_LOG_ERROR, "the event log: %s", err.buf);
    goto fail;
  }
  if (notes.len)
    zql_log(ZQL_LOG_WARN, "the event log was recovered: %s", notes.buf);
  zql_strbuf_release(&notes);
  atomic_store(&d->appended, zql_evlog_last_seq(d->log));
  d->matched = zql_evlog_last_seq(d->log);
  if ((rc = zql_store_open_lmdb(c->data_dir, &d->store, &err)) != 0) {
    zql_log(ZQL_LOG_ERROR, "the results store: %s", err.buf);
    goto fail;
  }
  if (c->curve_secret_key_file && *c->curve_secret_key_file) {
    if (!(secret = secret_from_keyfile(c->curve_secret_key_file, &err)) ||
        !c->curve_allow_file || !*c->curve_allow_file ||
        !(allow = read_allow(c->curve_allow_file, &err))) {
      zql_log(ZQL_LOG_ERROR, "CURVE: %s", err.len ? err.buf : "security.curve_allow_file is not set");
      rc = ZQL_E_USAGE;
      goto fail;
    }
  }
  zql_ingestd_opts_t io;
  zql_ingestd_opts_init(&io);
  io.log = d->log;
  io.fsync = (zql_evlog_sync_t)c->fsync;
  io.data_dir = c->data_dir;
  io.dead_letter = c->dead_letter && *c->dead_letter ? c->dead_letter : NULL;
  io.bson = c->ingest_bson;
  io.json = c->ingest_json;
  io.acked = c->ingest_acked;
  io.hwm = (int)c->hwm;
  io.queue_events = (uint64_t)c->queue_events;
  io.queue_bytes = c->queue_bytes;
  io.limits.max_event_bytes = (uint32_t)c->max_event_bytes;
  io.curve_secret = secret;
  io.curve_allow = (const char *const *)allow;
  size_t na = 0;
  while (allow && allow[na])
    na++;
  io.ncurve_allow = na;
  io.appended = appended;
  io.appended_arg = d;
  if ((rc = zql_ingestd_start(&io, &d->ingest, &err)) != 0) {
    zql_log(ZQL_LOG_ERROR, "ingest: %s", err.buf);
    goto fail;
  }
  if (c->ingest_pub && *c->ingest_pub) {
    void *ctx = zql_ingestd_zmq_context(d->ingest);
    d->pub = zmq_socket(ctx, ZMQ_PUB);
    int linger = 0;
    if (d->pub)
      zmq_setsockopt(d->pub, ZMQ_LINGER, &linger, sizeof linger);
    if (!d->pub || (secret && zql_ingestd_curve_server(d->ingest, d->pub, &err) != 0) ||
        zmq_bind(d->pub, c->ingest_pub) != 0) {
      zql_log(ZQL_LOG_ERROR, "notifications: cannot bind %s: %s", c->ingest_pub,
              err.len ? err.buf : zmq_strerror(errno));
      rc = ZQL_E_IO;
      goto fail;
    }
  }
  if (c->http_listen && *c->http_listen) {
    if (c->http_tokens_file && *c->http_tokens_file &&
        !(tokens = read_lines(c->http_tokens_file, &err))) {
      zql_log(ZQL_LOG_ERROR, "http: %s", err.buf);
      rc = ZQL_E_USAGE;
      goto fail;
    }
    zql_http_opts_t ho;
    memset(&ho, 0, sizeof ho);
    ho.listen = c->http_listen;
    ho.tokens = (const char *const *)tokens;
    ho.max_body = c->http_max_body;
    ho.limits.max_event_bytes = (uint32_t)c->max_event_bytes;
    ho.submit = http_submit;
    ho.rejected = http_rejected;
    ho.status = http_status;
    ho.arg = d;
    if ((rc = zql_http_start(&ho, &d->http, &err)) != 0) {
      zql_log(ZQL_LOG_ERROR, "http: %s", err.buf);
      goto fail;
    }
  }
  zql_sched_opts_t so = ZQL_SCHED_OPTS_INIT;
  so.max_parallel = (int)c->max_parallel;
  so.retry_min_ms = c->retry_min_ms;
  so.retry_max_ms = c->retry_max_ms;
  so.default_settle_ms = c->settle_ms;
  so.seed = (uint64_t)zql_wall_ms() ^ (uint64_t)getpid();
  if (!(d->sched = zql_sched_new(&so))) {
    rc = ZQL_E_NOMEM;
    goto fail;
  }
  reload_aggs(d);
  zql_log(ZQL_LOG_INFO,
          "zqld %s: data %s; log at _seq %" PRId64 "; bson %s, json %s, acked %s, pub %s, "
          "http %s; %zu aggregates",
          zql_version(), c->data_dir, zql_evlog_last_seq(d->log),
          *c->ingest_bson ? zql_ingestd_endpoint(d->ingest, ZQL_INGESTD_BSON) : "off",
          *c->ingest_json ? zql_ingestd_endpoint(d->ingest, ZQL_INGESTD_JSON) : "off",
          *c->ingest_acked ? zql_ingestd_endpoint(d->ingest, ZQL_INGESTD_ACKED) : "off",
          d->pub ? c->ingest_pub : "off", d->http ? c->http_listen : "off", d->naggs);
fail:
  zql_strbuf_release(&notes);
  zql_free(secret);
  free_lines(allow); /* copied by ingest (CURVE) and http (tokens) */
  free_lines(tokens);
  zql_strbuf_release(&err);
  return rc ? 1 : 0;
}

static void sample_rate(daemon_t *d, int64_t t)
{
  if (d->rate_n && t - d->rate_t[(d->rate_n - 1) % 11] < 1000)
    return;
  zql_ingestd_stats_t st;
  zql_ingestd_stats(d->ingest, &st);
  uint64_t tot = 0;
  for (int i = 0; i < ZQL_INGESTD_SOURCES; i++)
    tot += st.src[i].received;
  pthread_mutex_lock(&status_mu);
  d->rate_v[d->rate_n % 11] = tot;
  d->rate_t[d->rate_n % 11] = t;
  d->rate_n++;
  pthread_mutex_unlock(&status_mu);
}

static void reload_config(daemon_t *d)
{
  zql_zqld_config_t nc;
  zql_zqld_errs_t errs = ZQL_ZQLD_ERRS_INIT;
  if (load_config(d, &nc, &errs) != 0) {
    for (size_t i = 0; i < errs.n; i++)
      zql_log(ZQL_LOG_ERROR, "SIGHUP: %s", errs.items[i]);
    zql_log(ZQL_LOG_ERROR, "SIGHUP: the configuration has errors; the running one is kept");
    zql_zqld_config_free(&nc);
    zql_zqld_errs_release(&errs);
    return;
  }
  zql_zqld_errs_release(&errs);
  static const struct {
    const char *name;
    size_t off;
  } restart[] = {
      {"zqld.data", offsetof(zql_zqld_config_t, data_dir)},
      {"ingest.bson", offsetof(zql_zqld_config_t, ingest_bson)},
      {"ingest.json", offsetof(zql_zqld_config_t, ingest_json)},
      {"ingest.acked", offsetof(zql_zqld_config_t, ingest_acked)},
      {"ingest.pub", offsetof(zql_zqld_config_t, ingest_pub)},
      {"http.listen", offsetof(zql_zqld_config_t, http_listen)},
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(restart); i++) {
    const char *a = *(const char *const *)((const char *)&d->cfg + restart[i].off);
    const char *b = *(const char *const *)((const char *)&nc + restart[i].off);
    if (strcmp(a ? a : "", b ? b : "") != 0)
      zql_log(ZQL_LOG_WARN, "SIGHUP: %s changed to '%s'; it applies at the next start",
              restart[i].name, b ? b : "");
  }
  if (nc.log_level != d->cfg.log_level) {
    zql_log_set_level(nc.log_level);
    zql_log(ZQL_LOG_INFO, "log level %s", zql_log_level_name(nc.log_level));
  }
  d->cfg.log_level = nc.log_level;
  d->cfg.retain_ms = nc.retain_ms;
  d->cfg.retain_bytes = nc.retain_bytes;
  d->cfg.threads_per_run = nc.threads_per_run;
  zql_zqld_config_free(&nc);
}

static void retention(daemon_t *d, int64_t t, int64_t *last)
{
  if ((!d->cfg.retain_ms && !d->cfg.retain_bytes) || t - *last < 60000)
    return;
  *last = t;
  int dropped = 0;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  if (zql_evlog_retain(d->log, d->cfg.retain_ms, d->cfg.retain_bytes, t, &dropped, &err) != 0)
    zql_log(ZQL_LOG_ERROR, "log retention: %s", err.buf);
  else if (dropped)
    zql_log(ZQL_LOG_INFO, "log retention: removed %d segments", dropped);
  zql_strbuf_release(&err);
}

static void main_loop(daemon_t *d)
{
  int64_t last_retain = zql_wall_ms();
  while (!atomic_load(&d->term)) {
    int64_t t = zql_wall_ms();
    finish_runs(d);
    if (atomic_exchange(&d->hup, 0)) {
      zql_log(ZQL_LOG_INFO, "SIGHUP: reloading the configuration and the aggregates");
      reload_config(d);
      reload_aggs(d);
    } else if (t - d->last_reload_ms >= 10000) {
      reload_aggs(d);
    }
    pthread_mutex_lock(&status_mu);
    match_events(d, t);
    const char *name;
    while (zql_sched_next(d->sched, t, &name))
      start_run(d, name);
    int64_t due = zql_sched_wakeup(d->sched);
    pthread_mutex_unlock(&status_mu);
    sample_rate(d, t);
    retention(d, t, &last_retain);
    /* sleep until something is due, a run ends, a signal, or new events (polled: 20 ms) */
    int64_t wait = due == INT64_MAX ? 1000 : due - zql_wall_ms();
    if (wait > 1000)
      wait = 1000;
    if (wait > 20) {
      /* napping first, then the check: appended() sees the flag or this sees its _seq */
      atomic_store(&d->napping, true);
      if (atomic_load(&d->appended) > d->matched)
        wait = 20;
    }
    if (wait > 0) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += wait / 1000;
      ts.tv_nsec += (wait % 1000) * 1000000;
      if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
      }
      pthread_mutex_lock(&d->mu);
      while (!d->wake && pthread_cond_timedwait(&d->cond, &d->mu, &ts) == 0)
        ;
      d->wake = false;
      pthread_mutex_unlock(&d->mu);
    }
    atomic_store(&d->napping, false);
  }
}

static int drain(daemon_t *d)
{
  int status = 0;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_log(ZQL_LOG_INFO, "draining: no new connections or runs; finishing what was received");
  if (d->http)
    zql_http_quiesce(d->http);
  if (d->ingest && zql_ingestd_drain(d->ingest, 60000, &err) != 0) {
    zql_log(ZQL_LOG_ERROR, "drain: ingest: %s", err.buf);
    status = 1;
  }
  pthread_mutex_lock(&d->mu);
  if (d->active)
    zql_log(ZQL_LOG_INFO, "draining: waiting for %d running runs", d->active);
  while (d->active > 0)
    pthread_cond_wait(&d->cond, &d->mu);
  pthread_mutex_unlock(&d->mu);
  finish_runs(d);
  if (d->http)
    zql_http_stop(d->http);
  d->http = NULL;
  if (d->pub)
    zmq_close(d->pub);
  d->pub = NULL;
  zql_ingestd_free(d->ingest);
  d->ingest = NULL;
  zql_strbuf_reset(&err);
  if (d->log && zql_evlog_close(d->log, &err) != 0) {
    zql_log(ZQL_LOG_ERROR, "closing the event log: %s", err.buf);
    status = 1;
  }
  d->log = NULL;
  zql_strbuf_release(&err);
  return status;
}

static void cleanup(daemon_t *d)
{
  if (d->http)
    zql_http_stop(d->http);
  if (d->pub)
    zmq_close(d->pub);
  zql_ingestd_free(d->ingest);
  if (d->log)
    zql_evlog_close(d->log, NULL);
  if (d->store)
    zql_store_close(d->store);
  for (size_t i = 0; i < d->naggs; i++)
    agg_clear(&d->aggs[i]);
  zql_free(d->aggs);
  zql_sched_free(d->sched);
  for (size_t i = 0; i < d->ndone; i++) {
    zql_free(d->done[i].name);
    zql_free(d->done[i].error);
  }
  zql_free(d->done);
  zql_zqld_config_free(&d->cfg);
}

static void usage(FILE *f)
{
  fprintf(f,
          "usage: zqld [--config FILE] [--data DIR] [--set SECTION.KEY=VALUE]... [--log-level L]\n"
          "       zqld --check-config [the same options]\n"
          "       zqld --check FILE.zql...\n"
          "\n"
          "The zql daemon: ingest over ZeroMQ (:6543 BSON, :6544 JSON, :6546 acked) and HTTP\n"
          "(:8081), the event log, the scheduler of stored aggregates, notifications (:6545).\n"
          "Options:\n"
          "  --config FILE       the INI configuration (docs/zqld.md); ZQLD_SECTION_KEY\n"
          "                      environment variables and the flags below override it\n"
          "  --data DIR          zqld.data\n"
          "  --set S.K=V         any key, e.g. --set ingest.bson=tcp://0.0.0.0:6543\n"
          "  --log-level L       error, warn, info or debug\n"
          "  --check-config      print the effective configuration and exit (0 valid, 1 errors)\n"
          "  --check FILE...     load and check aggregate definitions, print their schedules\n"
          "  -h, --help          this help\n"
          "  --version           the version\n"
          "Signals: SIGHUP reloads the configuration and the aggregates; SIGTERM or SIGINT\n"
          "drains (stops accepting, writes what was received, finishes runs) and exits 0.\n");
}

/* Free what main allocated before the daemon started, and return rc. */
static int leave(daemon_t *d, int rc)
{
  zql_free(d->sets);
  zql_free(d);
  return rc;
}

int main(int argc, char **argv)
{
  daemon_t *d = zql_calloc(1, sizeof *d);
  if (!d) {
    fputs("zqld: out of memory\n", stderr);
    return 1;
  }
  bool check_config = false;
  d->sets = zql_calloc((size_t)argc + 1, sizeof *d->sets);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool more = i + 1 < argc;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return leave(d, 0);
    } else if (strcmp(a, "--version") == 0) {
      printf("zqld %s\n", zql_version());
      return leave(d, 0);
    } else if (strcmp(a, "--check") == 0) {
      if (i + 1 >= argc) {
        fputs("zqld: --check needs at least one .zql file\nTry 'zqld --help'.\n", stderr);
        return leave(d, 2);
      }
      return leave(d, check_files(argc - i - 1, argv + i + 1));
    } else if (strcmp(a, "--check-config") == 0) {
      check_config = true;
    } else if (strcmp(a, "--config") == 0 && more) {
      d->config_path = argv[++i];
    } else if (strcmp(a, "--data") == 0 && more) {
      d->data_flag = argv[++i];
    } else if (strcmp(a, "--log-level") == 0 && more) {
      d->level_flag = argv[++i];
    } else if (strcmp(a, "--set") == 0 && more) {
      d->sets[d->nsets++] = argv[++i];
    } else if (strncmp(a, "--config=", 9) == 0) {
      d->config_path = a + 9;
    } else if (strncmp(a, "--data=", 7) == 0) {
      d->data_flag = a + 7;
    } else if (strncmp(a, "--set=", 6) == 0) {
      d->sets[d->nsets++] = (char *)a + 6;
    } else {
      fprintf(stderr, "zqld: %s '%s'\nTry 'zqld --help'.\n",
              a[0] == '-' ? "unknown option, or an option without its value:" : "unexpected argument",
              a);
      return leave(d, 2);
    }
  }
  zql_zqld_errs_t errs = ZQL_ZQLD_ERRS_INIT;
  int rc = load_config(d, &d->cfg, &errs);
  if (rc) {
    zql_zqld_errs_print(&errs, stderr);
    zql_zqld_errs_release(&errs);
    zql_zqld_config_free(&d->cfg);
    return leave(d, 1);
  }
  zql_zqld_errs_release(&errs);
  if (check_config) {
    zql_zqld_config_print(&d->cfg, stdout);
    zql_zqld_config_free(&d->cfg);
    return leave(d, 0);
  }
  zql_log_init("zqld", d->cfg.log_level);
  /* signals go to the signal thread only: block them before any thread starts */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  pthread_mutex_init(&d->mu, NULL);
  pthread_cond_init(&d->cond, NULL);
  d->started_ms = zql_wall_ms();
  pthread_t sigt;
  pthread_create(&sigt, NULL, signal_thread, d);
  pthread_detach(sigt);
  if (start(d) != 0) {
    cleanup(d);
    return leave(d, 1);
  }
  if (d->cfg.pid_file && *d->cfg.pid_file) {
    FILE *pf = fopen(d->cfg.pid_file, "w");
    if (pf) {
      fprintf(pf, "%ld\n", (long)getpid());
      fclose(pf);
    } else {
      zql_log(ZQL_LOG_WARN, "cannot write the pid file '%s': %s", d->cfg.pid_file,
              strerror(errno));
    }
  }
  main_loop(d);
  int status = drain(d);
  if (d->cfg.pid_file && *d->cfg.pid_file)
    unlink(d->cfg.pid_file);
  zql_log(ZQL_LOG_INFO, "stopped%s", status ? " with errors" : "");
  cleanup(d);
  return leave(d, status);
}
