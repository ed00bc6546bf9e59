/*
 * run.c -- the local driver: MAP -> SHUFFLE/SORT (with spill) -> REDUCE (stage 4).
 *
 * Pipeline position: runtime/cmd_run.c (zql run, zql -c, EXPLAIN ANALYZE) prepares a plan
 * (vm.c) and calls zql_exec_run with an input (the event log); the result rows go to an
 * output writer (exec/output.c) or, later, the results store.
 *
 * MAP. The input's _seq range is cut into chunks of roughly equal bytes (at least 8 per
 * thread, at most 8 MiB each). The workers take the chunks as they become free (pool.c's
 * task counter), so a worker that starts late, or shares its CPU, maps fewer of them:
 * every aggregator's state is independent of which worker saw which rows -- except in a
 * plan with a split-dependent aggregator (topk, sample: plan->nondet). There worker w maps
 * chunks w, w + T, ... (a static assignment), so that the same query with the same --threads
 * prints the same bytes every time (resolved point 14). A worker reads each chunk's
 * events in batches of 256, fills the path
 * registers (extract.c), runs the map program (vm.c), which feeds the worker's group
 * tables (the combiner: one partial state per key per worker), and resets its batch arena
 * after each batch.
 *
 * SPILL. When a worker's group tables and aggregator heaps exceed its share of
 * --mem-limit, it sorts its groups by (partition, key bytes), writes them as a run of
 * BSON documents {k: <key bytes>, s: {<slot>: <saved state>}} to an unlinked temporary
 * file in the data directory's tmp area, remembers where each partition starts, and
 * empties its tables. Only partial states are written, never events.
 *
 * SHUFFLE + REDUCE. Partition = XXH3(key bytes) % R. A reduce task is one (table,
 * partition): it sorts each worker's in-memory groups of that partition by key, opens the
 * partition's segment of every spilled run (each already sorted), and k-way merges all of
 * them by key bytes (a binary heap), merging the states of equal keys into one
 * accumulator block, which is finalized (the table's final program: computed fields,
 * having, rank and order-by values) as soon as the next key differs. So a reduce task
 * holds one group at a time beyond its inputs.
 *
 * OUTPUT. Rows of all partitions are sorted by key bytes (R7 order of the normalised keys:
 * deterministic whatever the threads, chunks or spills), then `rank ... limit N within`
 * keeps the top N per within-group (ties by key bytes), then an ad-hoc `order by` sorts
 * (R7, NULL first ascending, ties broken by the remaining columns then key bytes) and
 * `limit/offset` cut.
 */
#include "runtime/base/zql_common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "exec/exec_int.h"
#include "exec/pool.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

#define BATCH 256
#define CHUNK_BYTES (8u << 20)
#define MAX_CHUNKS 4096

void zql_run_opts_init(zql_run_opts_t *o)
{
  memset(o, 0, sizeof *o);
  o->threads = 1;
  o->ts_lo = INT64_MIN;
  o->ts_hi = INT64_MAX;
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* {==== run state ======================================================================== */

typedef struct spill {
  int fd;
  uint32_t table;
  uint64_t *off;          /* R + 1 partition start offsets */
} spill_t;

/* Row queries: the rows one worker kept (values deep-copied into its arena). */
typedef struct rrow {
  int64_t seq;
  uint32_t sub;          /* row number within its event (unwind), for a stable order */
  zql_val_t *v;          /* the event, the named values, the order-by values */
} rrow_t;

typedef struct rowset {
  rrow_t *v;
  uint64_t n, cap;
  zql_arena_t *arena;
  int64_t last_seq;
  uint32_t sub;
} rowset_t;

typedef struct wstate {
  zql_vm_t vm;
  uint64_t spill_bytes;   /* bytes written to spill runs */
  rowset_t rows;
  spill_t *spills;
  uint32_t nspills, capspills;
  uint64_t peak;
} wstate_t;

typedef struct row {
  const uint8_t *key;
  uint32_t klen;
  zql_val_t *v;           /* ncols values, then the rank value, then the order values */
  zql_val_t state;        /* keep_states: {column: saved state}, else MISSING */
} row_t;

typedef struct rows {
  row_t *v;
  uint64_t n, cap;
  zql_arena_t *arena;
} rows_t;

typedef struct run {
  const zql_xplan_t *x;
  const zql_plan_t *p;
  const zql_input_t *in;
  const zql_run_opts_t *o;
  int64_t *bounds;
  uint32_t nchunks;
  int64_t ts_lo, ts_hi;
  wstate_t *w;
  unsigned nw;
  uint32_t R;
  uint64_t budget;        /* bytes per worker before spilling (0: none) */
  rows_t *parts;          /* ntables * R */
  /* the reduce phase running: tables [t0, t0 + nt), whose groups come from srcs */
  uint32_t t0, nt;
  zql_vm_t **srcs;
  unsigned nsrcs;
  bool with_spills;       /* srcs are the map workers (their spilled runs count too) */
  zql_vm_t *rvm;          /* per task: the VM of a per stage's reduce (feeds the next) */
  const zql_prog_t *prog; /* the map program of the pass running (pre-pass or map) */
  atomic_ullong events, bytes, groups;
  pthread_mutex_t lock;
  zql_strbuf_t err;       /* the first error message */
  int rc;
} run_t;

static void run_fail(run_t *r, int code, const char *msg)
{
  pthread_mutex_lock(&r->lock);
  if (!r->rc) {
    r->rc = code;
    zql_strbuf_adds(&r->err, msg);
  }
  pthread_mutex_unlock(&r->lock);
}

static uint64_t worker_mem(const run_t *r, const wstate_t *w)
{
  uint64_t m = w->vm.actx.heap > 0 ? (uint64_t)w->vm.actx.heap : 0;
  for (uint32_t t = 0; t < r->p->ntables; t++)
    m += w->vm.tables[t].bytes;
  return m;
}

/* }==== */

/* {==== spill ============================================================================ */

typedef struct sortent {
  uint32_t part;
  const zql_group_t *g;
} sortent_t;

static int key_cmp(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
  int c = al && bl ? memcmp(a, b, al < bl ? al : bl) : 0;
  return c ? c : (al > bl) - (al < bl);
}

static int sortent_cmp(const void *pa, const void *pb)
{
  const sortent_t *a = pa, *b = pb;
  if (a->part != b->part)
    return a->part < b->part ? -1 : 1;
  return key_cmp(a->g->key, a->g->klen, b->g->key, b->g->klen);
}

static bool write_all(int fd, const void *buf, size_t n)
{
  const char *p = buf;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

static int spill_table(run_t *r, wstate_t *w, uint32_t t)
{
  zql_hashagg_t *h = &w->vm.tables[t];
  if (h->n == 0)
    return 0;
  const zql_aggslots_t *s = &r->x->slots[t];
  sortent_t *v = zql_calloc(h->n, sizeof *v);
  uint64_t *off = zql_calloc(r->R + 1, sizeof *off);
  if (!v || !off) {
    zql_free(v);
    zql_free(off);
    return ZQL_E_NOMEM;
  }
  uint64_t n = 0;
  for (uint64_t i = 0; i < h->cap; i++)
    if (h->tab[i].g)
      v[n++] = (sortent_t){(uint32_t)(h->tab[i].hash % r->R), h->tab[i].g};
  qsort(v, n, sizeof *v, sortent_cmp);

  const char *dir = r->o->tmp_dir ? r->o->tmp_dir : getenv("TMPDIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/zql-spill-XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkstemp(path);
  if (fd < 0) {
    zql_free(v);
    zql_free(off);
    char msg[4200];
    snprintf(msg, sizeof msg, "cannot create a spill file in %s: %s", dir ? dir : "/tmp",
             strerror(errno));
    run_fail(r, ZQL_E_IO, msg);
    return ZQL_E_IO;
  }
  unlink(path); /* gone with the process, whatever happens */
  uint64_t pos = 0;
  uint32_t part = 0;
  int rc = 0;
  bson_t doc, st, one;
  zql_strbuf_t wb = ZQL_STRBUF_INIT;
  for (uint64_t i = 0; i < n && !rc; i++) {
    while (part <= v[i].part)
      off[part++] = pos;
    bson_init(&doc);
    bson_append_binary(&doc, "k", 1, BSON_SUBTYPE_BINARY, v[i].g->key, v[i].g->klen);
    bson_append_document_begin(&doc, "s", 1, &st);
    for (uint32_t k = 0; k < s->n && !rc; k++) {
      if (s->alias[k])
        continue;
      char kb[16];
      const char *key;
      bson_uint32_to_string(k, &key, kb, sizeof kb);
      bson_append_document_begin(&st, key, -1, &one);
      rc = s->defs[k]->save(v[i].g->states + s->offset[k], &one);
      bson_append_document_end(&st, &one);
    }
    bson_append_document_end(&doc, &st);
    zql_strbuf_add(&wb, bson_get_data(&doc), doc.len);
    if (wb.oom)
      rc = ZQL_E_NOMEM;
    else if (wb.len >= (1u << 20)) { /* write in 1 MiB pieces, not a call per group */
      if (!write_all(fd, wb.buf, wb.len))
        rc = ZQL_E_IO;
      zql_strbuf_reset(&wb);
    }
    pos += doc.len;
    bson_destroy(&doc);
  }
  if (!rc && wb.len && !write_all(fd, wb.buf, wb.len))
    rc = ZQL_E_IO;
  zql_strbuf_release(&wb);
  while (part <= r->R)
    off[part++] = pos;
  zql_free(v);
  if (!rc && w->nspills == w->capspills) {
    uint32_t cap = w->capspills ? w->capspills * 2 : 8;
    spill_t *ns = zql_reallocarray(w->spills, cap, sizeof *ns);
    if (!ns)
      rc = ZQL_E_NOMEM;
    else {
      w->spills = ns;
      w->capspills = cap;
    }
  }
  if (rc) {
    close(fd);
    zql_free(off);
    if (rc == ZQL_E_IO)
      run_fail(r, rc, "cannot write a spill file (disk full?)");
    return rc;
  }
  w->spills[w->nspills++] = (spill_t){fd, t, off};
  w->spill_bytes += pos;
  zql_hashagg_clear(h, &w->vm.actx);
  return 0;
}

static int spill(run_t *r, wstate_t *w)
{
  for (uint32_t t = 0; t < r->p->ntables; t++) {
    int rc = spill_table(r, w, t);
    if (rc)
      return rc;
  }
  return 0;
}

/* }==== */

/* {==== row queries ====================================================================== */

static _Thread_local const zql_plan_t *g_rowplan;

static int rrow_cmp(const void *pa, const void *pb)
{
  const rrow_t *a = pa, *b = pb;
  const zql_plan_t *p = g_rowplan;
  uint32_t e = 1 + p->nrow_names;
  for (uint32_t i = 0; i < p->norder; i++) {
    int c = zql_val_cmp(&a->v[e + i], &b->v[e + i]);
    if (c)
      return p->order[i].desc ? -c : c;
  }
  if (a->seq != b->seq)
    return a->seq < b->seq ? -1 : 1;
  return (a->sub > b->sub) - (a->sub < b->sub);
}

static void rows_sort(const zql_plan_t *p, rrow_t *v, uint64_t n)
{
  g_rowplan = p;
  qsort(v, n, sizeof *v, rrow_cmp);
  g_rowplan = NULL;
}

/* How many rows a query with limit/offset needs at most (UINT64_MAX: all). */
static uint64_t rows_needed(const zql_plan_t *p)
{
  if (p->limit < 0)
    return UINT64_MAX;
  return (uint64_t)p->limit + (uint64_t)(p->offset > 0 ? p->offset : 0);
}

/* Keep the first `keep` rows in order; their values move to a fresh arena. */
static int rows_prune(const zql_plan_t *p, rowset_t *rs, uint64_t keep)
{
  rows_sort(p, rs->v, rs->n);
  if (rs->n <= keep)
    return 0;
  zql_arena_t *na = zql_arena_create(NULL);
  if (!na)
    return ZQL_E_NOMEM;
  uint32_t width = 1 + p->nrow_names + p->norder;
  for (uint64_t i = 0; i < keep; i++) {
    zql_val_t *v = zql_arena_alloc(na, width * sizeof *v);
    if (!v) {
      zql_arena_delete(na);
      return ZQL_E_NOMEM;
    }
    for (uint32_t j = 0; j < width; j++)
      if (!zql_val_copy(na, &rs->v[i].v[j], &v[j])) {
        zql_arena_delete(na);
        return ZQL_E_NOMEM;
      }
    rs->v[i].v = v;
  }
  zql_arena_delete(rs->arena);
  rs->arena = na;
  rs->n = keep;
  return 0;
}

static int row_keep(zql_vm_t *vm, const zql_val_t *v, uint32_t n)
{
  wstate_t *w = vm->row_arg;
  rowset_t *rs = &w->rows;
  const zql_plan_t *p = vm->x->plan;
  if (!rs->arena && !(rs->arena = zql_arena_create(NULL)))
    return ZQL_E_NOMEM;
  if (rs->n == rs->cap) {
    uint64_t cap = rs->cap ? rs->cap * 2 : 256;
    rrow_t *nv = zql_reallocarray(rs->v, cap, sizeof *nv);
    if (!nv)
      return ZQL_E_NOMEM;
    rs->v = nv;
    rs->cap = cap;
  }
  zql_val_t *c = zql_arena_alloc(rs->arena, n * sizeof *c);
  if (!c)
    return ZQL_E_NOMEM;
  for (uint32_t i = 0; i < n; i++)
    if (!zql_val_copy(rs->arena, &v[i], &c[i]))
      return ZQL_E_NOMEM;
  if (vm->seq == rs->last_seq)
    rs->sub++;
  else
    rs->sub = 0;
  rs->last_seq = vm->seq;
  rs->v[rs->n++] = (rrow_t){vm->seq, rs->sub, c};
  uint64_t need = rows_needed(p);
  if (need != UINT64_MAX && rs->n >= 2 * need + 1024)
    return rows_prune(p, rs, need);
  return 0;
}

static int col_index(const char ***names, uint32_t *n, uint32_t *cap, const char *name,
                     zql_arena_t *a)
{
  for (uint32_t i = 0; i < *n; i++)
    if (strcmp((*names)[i], name) == 0)
      return (int)i;
  if (*n == *cap) {
    uint32_t nc = *cap ? *cap * 2 : 16;
    const char **v = zql_arena_alloc(a, nc * sizeof *v);
    if (!v)
      return -1;
    if (*n)
      memcpy(v, *names, *n * sizeof *v);
    *names = v;
    *cap = nc;
  }
  char *d = zql_arena_strdup(a, name);
  if (!d)
    return -1;
  (*names)[*n] = d;
  return (int)(*n)++;
}

/* The result of a row query: the rows of every worker in order, offset/limit applied,
 * columns = the union of the rows' field names in order of first appearance. */
static int collect_rows(run_t *r, zql_result_t *res)
{
  const zql_plan_t *p = r->p;
  uint64_t total = 0;
  for (unsigned w = 0; w < r->nw; w++)
    total += r->w[w].rows.n;
  rrow_t *all = zql_calloc(total ? total : 1, sizeof *all);
  if (!all)
    return ZQL_E_NOMEM;
  uint64_t n = 0;
  for (unsigned w = 0; w < r->nw; w++) {
    rowset_t *rs = &r->w[w].rows;
    if (rs->n)
      memcpy(all + n, rs->v, rs->n * sizeof *all);
    n += rs->n;
  }
  rows_sort(p, all, n);
  uint64_t from = p->offset > 0 ? ((uint64_t)p->offset < n ? (uint64_t)p->offset : n) : 0;
  uint64_t count = n - from;
  if (p->limit >= 0 && (uint64_t)p->limit < count)
    count = (uint64_t)p->limit;

  res->ntables = 1;
  res->tables = zql_arena_calloc(res->arena, 1, sizeof *res->tables);
  if (!res->tables) {
    zql_free(all);
    return ZQL_E_NOMEM;
  }
  zql_result_table_t *rt = &res->tables[0];
  const char **names = NULL;
  uint32_t ncols = 0, cap = 0;
  int rc = 0;
  /* pass 1: the columns */
  for (uint64_t i = 0; i < count && !rc; i++) {
    const zql_val_t *d = &all[from + i].v[0];
    bson_iter_t it;
    if (d->t == ZQL_V_DOC && bson_iter_init_from_data(&it, d->u.p, d->len))
      while (bson_iter_next(&it))
        if (col_index(&names, &ncols, &cap, bson_iter_key(&it), res->arena) < 0)
          rc = ZQL_E_NOMEM;
    for (uint32_t k = 0; k < p->nrow_names && !rc; k++)
      if (col_index(&names, &ncols, &cap, p->row_names[k], res->arena) < 0)
        rc = ZQL_E_NOMEM;
  }
  if (!rc && ncols == 0 && col_index(&names, &ncols, &cap, "_id", res->arena) < 0)
    rc = ZQL_E_NOMEM;
  rt->ncols = ncols;
  rt->names = names;
  rt->is_key = zql_arena_calloc(res->arena, ncols ? ncols : 1, sizeof *rt->is_key);
  rt->error_cells = zql_arena_calloc(res->arena, ncols ? ncols : 1, sizeof(uint64_t));
  rt->vals = zql_arena_calloc(res->arena, count * ncols > 0 ? count * ncols : 1, sizeof *rt->vals);
  if (!rc && (!rt->is_key || !rt->error_cells || !rt->vals))
    rc = ZQL_E_NOMEM;
  /* pass 2: the cells (MISSING where a row lacks a column) */
  for (uint64_t i = 0; i < count && !rc; i++) {
    zql_val_t *row = &rt->vals[i * ncols];
    const zql_val_t *v = all[from + i].v;
    bson_iter_t it;
    if (v[0].t == ZQL_V_DOC && bson_iter_init_from_data(&it, v[0].u.p, v[0].len))
      while (bson_iter_next(&it)) {
        int c = col_index(&names, &ncols, &cap, bson_iter_key(&it), res->arena);
        zql_val_t x;
        zql_val_from_iter(&it, &x);
        if (c >= 0 && !zql_val_copy(res->arena, &x, &row[c]))
          rc = ZQL_E_NOMEM;
      }
    for (uint32_t k = 0; k < p->nrow_names && !rc; k++) {
      int c = col_index(&names, &ncols, &cap, p->row_names[k], res->arena);
      if (c >= 0 && !zql_val_copy(res->arena, &v[1 + k], &row[c]))
        rc = ZQL_E_NOMEM;
    }
    for (uint32_t c = 0; c < ncols; c++)
      if (row[c].t == ZQL_V_ERROR)
        rt->error_cells[c]++;
  }
  rt->nrows = count;
  rt->into = "";
  zql_free(all);
  return rc;
}

/* }==== */

/* {==== map ============================================================================== */

static int map_chunk(run_t *r, uint32_t chunk, uint32_t worker);

/* Map task `chunk`, on whichever worker took it, into that worker's state. With a static
 * assignment, a worker that a virtual machine woke 1 to 4 ms late was the end of every map
 * stage: 8.7 ms of work per worker became 11 to 13 ms in an incremental run over 100k
 * events. */
static int map_task(void *arg, uint32_t chunk, uint32_t worker)
{
  return map_chunk(arg, chunk, worker);
}

/* The lanes of a split-dependent plan (topk, sample: their partial states depend on which
 * events went into which state, and in what order). Lane l maps chunks l, l + T, l + 2T,
 * ... in that order into worker state l, so that a given thread count always builds the
 * same partial states. A lane is not a thread: each map task takes the next chunk of a lane
 * no other thread holds (the one with the most chunks left), so a thread that a virtual
 * machine starts 1 to 4 ms late finds its lane advanced by the others instead of all of it
 * waiting (which ended the map stage that much later). */
typedef struct lanes {
  run_t *r;
  pthread_mutex_t mu;
  pthread_cond_t freed;
  uint32_t *next;  /* [T]: the lane's next chunk (>= nchunks: done) */
  bool *busy;      /* [T]: a thread maps one of its chunks */
  uint32_t *last;  /* [T]: by pool worker, the lane it mapped last (T: none yet) */
} lanes_t;

/* Map task of a split-dependent plan: one chunk, of the lane picked as above. There are
 * as many tasks as chunks and each takes one, so a task that finds every lane with chunks
 * left busy waits only for a chunk in progress to end. */
static int map_lane(void *arg, uint32_t task, uint32_t worker)
{
  lanes_t *ln = arg;
  run_t *r = ln->r;
  (void)task;
  uint32_t T = r->nw, lane = 0;
  pthread_mutex_lock(&ln->mu);
  for (;;) {
    /* the lane this thread mapped last, unless another free one has more chunks left
     * (a lane's groups stay in the cache of the CPU that maps it) */
    uint32_t left = 0, mine = worker < T ? ln->last[worker] : T;
    for (uint32_t l = 0; l < T; l++)
      if (!ln->busy[l] && ln->next[l] < r->nchunks) {
        uint32_t n = (r->nchunks - ln->next[l] + T - 1) / T;
        if (n > left || (n == left && l == mine)) {
          left = n;
          lane = l;
        }
      }
    if (left)
      break;
    pthread_cond_wait(&ln->freed, &ln->mu);
  }
  uint32_t chunk = ln->next[lane];
  ln->next[lane] += T;
  ln->busy[lane] = true;
  if (worker < T)
    ln->last[worker] = lane;
  pthread_mutex_unlock(&ln->mu);
  int rc = map_chunk(r, chunk, lane);
  pthread_mutex_lock(&ln->mu);
  ln->busy[lane] = false;
  pthread_cond_broadcast(&ln->freed);
  pthread_mutex_unlock(&ln->mu);
  return rc;
}

/* Every chunk of the range through map_task or map_lane (see the header). */
static int map_all(run_t *r, unsigned threads)
{
  if (!r->p->nondet || r->nw < 2)
    return zql_pool_run(threads, r->nchunks, map_task, r);
  lanes_t ln = {.r = r};
  ln.next = zql_calloc(r->nw, sizeof *ln.next);
  ln.busy = zql_calloc(r->nw, sizeof *ln.busy);
  ln.last = zql_calloc(r->nw, sizeof *ln.last);
  if (!ln.next || !ln.busy || !ln.last) {
    zql_free(ln.next);
    zql_free(ln.busy);
    zql_free(ln.last);
    run_fail(r, ZQL_E_NOMEM, "out of memory");
    return ZQL_E_NOMEM;
  }
  for (uint32_t l = 0; l < r->nw; l++) {
    ln.next[l] = l;
    ln.last[l] = r->nw;
  }
  pthread_mutex_init(&ln.mu, NULL);
  pthread_cond_init(&ln.freed, NULL);
  int rc = zql_pool_run(threads, r->nchunks, map_lane, &ln);
  pthread_cond_destroy(&ln.freed);
  pthread_mutex_destroy(&ln.mu);
  zql_free(ln.next);
  zql_free(ln.busy);
  zql_free(ln.last);
  return rc;
}

static int map_chunk(run_t *r, uint32_t chunk, uint32_t worker)
{
  if (r->rc)
    return r->rc;
  wstate_t *w = &r->w[worker];
  zql_vm_t *vm = &w->vm;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  void *cur = NULL;
  int rc = r->in->open(r->in->arg, r->bounds[chunk], r->bounds[chunk + 1], r->ts_lo,
                       r->ts_hi, &cur, &err);
  if (rc) {
    run_fail(r, rc, err.buf);
    zql_strbuf_release(&err);
    return rc;
  }
  zql_event_t ev[BATCH];
  for (;;) {
    int n = r->in->next(cur, ev, BATCH, &err);
    if (n < 0) {
      rc = n;
      run_fail(r, rc, err.buf);
      break;
    }
    if (n == 0)
      break;
    uint64_t bytes = 0;
    for (int i = 0; i < n; i++) {
      vm->seq = ev[i].seq;
      bytes += ev[i].len;
      if (ev[i].ts > vm->max_ts)
        vm->max_ts = ev[i].ts;
      zql_extract(vm, &ev[i]);
      rc = zql_vm_exec(vm, r->prog, vm->regs, 0);
      if (rc)
        break;
    }
    vm->events += (uint64_t)n;
    zql_arena_reset(vm->batch);
    if (rc) {
      run_fail(r, rc, "out of memory while aggregating (lower --threads or raise --mem-limit)");
      break;
    }
    atomic_fetch_add(&r->events, (unsigned long long)n);
    atomic_fetch_add(&r->bytes, bytes);
    uint64_t m = worker_mem(r, w);
    if (m > w->peak)
      w->peak = m;
    if (r->budget && m > r->budget && (rc = spill(r, w)) != 0) {
      if (!r->rc)
        run_fail(r, rc, "cannot spill partial states");
      break;
    }
    if (worker == 0 && r->o->progress)
      r->o->progress(r->o->progress_arg, atomic_load(&r->events), atomic_load(&r->bytes));
    if (r->rc)
      break;
  }
  r->in->close(cur);
  zql_strbuf_release(&err);
  return rc;
}

/* }==== */

/* {==== reduce =========================================================================== */

/* One sorted input of a k-way merge: a worker's in-memory groups, or a spilled run. */
/* A group and the first 16 bytes of its key (big-endian, zero-padded): most comparisons
 * of a sort or merge are decided by the prefix, without touching the group's memory. */
typedef struct sent {
  uint64_t p0, p1;
  const zql_group_t *g;
} sent_t;

static inline uint64_t be64(const uint8_t *k, uint32_t n)
{
  uint64_t v = 0;
  for (uint32_t i = 0; i < 8; i++)
    v = v << 8 | (i < n ? k[i] : 0);
  return v;
}

static void prefix_of(const uint8_t *k, uint32_t n, uint64_t *p0, uint64_t *p1)
{
  *p0 = be64(k, n);
  *p1 = n > 8 ? be64(k + 8, n - 8) : 0;
}

typedef struct source {
  /* in memory */
  sent_t *g;
  uint64_t n, i;
  /* spilled: records read through a buffer holding file bytes [boff, boff + blen) */
  bool spilled;
  int fd;
  uint64_t pos, end;
  uint8_t *buf;
  size_t cap;
  uint64_t boff;
  size_t blen;
  const uint8_t *rec;      /* current record: rec[0..doclen), inside buf */
  uint32_t doclen;
  /* current key and its prefix */
  const uint8_t *key;
  uint32_t klen;
  uint64_t p0, p1;
} source_t;

static int sent_cmp(const void *pa, const void *pb)
{
  const sent_t *a = pa, *b = pb;
  if (a->p0 != b->p0)
    return a->p0 < b->p0 ? -1 : 1;
  if (a->p1 != b->p1)
    return a->p1 < b->p1 ? -1 : 1;
  return key_cmp(a->g->key, a->g->klen, b->g->key, b->g->klen);
}

static bool pread_all(int fd, void *buf, size_t n, uint64_t off)
{
  char *p = buf;
  while (n) {
    ssize_t got = pread(fd, p, n, (off_t)off);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      return false;
    p += got;
    n -= (size_t)got;
    off += (uint64_t)got;
  }
  return true;
}

/* Advance a source to its next key: 1, 0 at the end, < 0 on error. */
/* Make file bytes [off, off + n) available in s->buf (one pread of up to a buffer). */
static int source_fill(source_t *s, uint64_t off, size_t n)
{
  if (off >= s->boff && off + n <= s->boff + s->blen)
    return 0;
  if (n > s->cap) {
    uint8_t *nb = zql_realloc(s->buf, n);
    if (!nb)
      return ZQL_E_NOMEM;
    s->buf = nb;
    s->cap = n;
  }
  size_t want = s->end - off < s->cap ? (size_t)(s->end - off) : s->cap;
  if (want < n)
    return ZQL_E_CORRUPT;
  if (!pread_all(s->fd, s->buf, want, off))
    return ZQL_E_IO;
  s->boff = off;
  s->blen = want;
  return 0;
}

/* Advance a source to its next key: 1, 0 at the end, < 0 on error. */
static int source_next(source_t *s)
{
  if (!s->spilled) {
    if (s->i >= s->n)
      return 0;
    s->key = s->g[s->i].g->key;
    s->klen = s->g[s->i].g->klen;
    s->p0 = s->g[s->i].p0;
    s->p1 = s->g[s->i].p1;
    s->i++;
    return 1;
  }
  if (s->pos >= s->end)
    return 0;
  if (s->end - s->pos < 5)
    return ZQL_E_CORRUPT;
  int rc = source_fill(s, s->pos, 4);
  if (rc)
    return rc;
  const uint8_t *lb = s->buf + (s->pos - s->boff);
  uint32_t len = (uint32_t)lb[0] | (uint32_t)lb[1] << 8 | (uint32_t)lb[2] << 16 |
                 (uint32_t)lb[3] << 24;
  if (len < 5 || len > s->end - s->pos)
    return ZQL_E_CORRUPT;
  if ((rc = source_fill(s, s->pos, len)) != 0)
    return rc;
  s->rec = s->buf + (s->pos - s->boff);
  s->doclen = len;
  s->pos += len;
  bson_iter_t it;
  if (!bson_iter_init_from_data(&it, s->rec, len) || !bson_iter_find(&it, "k") ||
      !BSON_ITER_HOLDS_BINARY(&it))
    return ZQL_E_CORRUPT;
  bson_subtype_t st;
  bson_iter_binary(&it, &st, &s->klen, &s->key);
  prefix_of(s->key, s->klen, &s->p0, &s->p1);
  return 1;
}

/* Fold the source's current record into the accumulator block. */
static int source_fold(run_t *r, const zql_aggslots_t *sl, source_t *s, unsigned char *acc,
                       unsigned char *tmp, zql_aggctx_t *ctx)
{
  if (!s->spilled) {
    const zql_group_t *g = s->g[s->i - 1].g;
    for (uint32_t k = 0; k < sl->n; k++) {
      if (sl->alias[k])
        continue;
      int rc = sl->defs[k]->merge(acc + sl->offset[k], g->states + sl->offset[k], ctx);
      if (rc < 0)
        return rc;
    }
    return 0;
  }
  bson_iter_t it, st;
  if (!bson_iter_init_from_data(&it, s->rec, s->doclen) || !bson_iter_find(&it, "s") ||
      !BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &st))
    return ZQL_E_CORRUPT;
  while (bson_iter_next(&st)) {
    /* {"<slot>": saved state, ...}: shared (alias) slots are not written */
    const uint8_t *d;
    uint32_t dl;
    bson_t one;
    char *end;
    unsigned long k = strtoul(bson_iter_key(&st), &end, 10);
    if (!BSON_ITER_HOLDS_DOCUMENT(&st) || *end || k >= sl->n || sl->alias[k])
      return ZQL_E_CORRUPT;
    bson_iter_document(&st, &dl, &d);
    if (!bson_init_static(&one, d, dl))
      return ZQL_E_CORRUPT;
    zql_strbuf_t e = ZQL_STRBUF_INIT;
    int rc = sl->defs[k]->load(tmp + sl->offset[k], &one, ctx, &e);
    zql_strbuf_release(&e);
    if (rc)
      return rc < 0 ? rc : ZQL_E_CORRUPT;
    rc = sl->defs[k]->merge(acc + sl->offset[k], tmp + sl->offset[k], ctx);
    sl->defs[k]->destroy(tmp + sl->offset[k], ctx);
    if (rc < 0)
      return rc;
  }
  (void)r;
  return 0;
}

typedef struct heap {
  source_t **v;
  uint32_t n;
} heap_t;

static bool src_less(const source_t *a, const source_t *b)
{
  if (a->p0 != b->p0)
    return a->p0 < b->p0;
  if (a->p1 != b->p1)
    return a->p1 < b->p1;
  return key_cmp(a->key, a->klen, b->key, b->klen) < 0;
}

static bool src_same(const source_t *a, uint64_t p0, uint64_t p1, const uint8_t *k, uint32_t n)
{
  return a->p0 == p0 && a->p1 == p1 && key_cmp(a->key, a->klen, k, n) == 0;
}

static void heap_down(heap_t *h, uint32_t i)
{
  for (;;) {
    uint32_t l = 2 * i + 1, m = i;
    if (l < h->n && src_less(h->v[l], h->v[m]))
      m = l;
    if (l + 1 < h->n && src_less(h->v[l + 1], h->v[m]))
      m = l + 1;
    if (m == i)
      return;
    source_t *t = h->v[i];
    h->v[i] = h->v[m];
    h->v[m] = t;
    i = m;
  }
}

static int rows_push(rows_t *rs, const row_t *row)
{
  if (rs->n == rs->cap) {
    uint64_t cap = rs->cap ? rs->cap * 2 : 64;
    row_t *v = zql_reallocarray(rs->v, cap, sizeof *v);
    if (!v)
      return ZQL_E_NOMEM;
    rs->v = v;
    rs->cap = cap;
  }
  rs->v[rs->n++] = *row;
  return 0;
}

/* Finalize one group: decode its key, run the final program, keep the row. */
static int finish_group(run_t *r, uint32_t t, zql_vm_t *vm, zql_val_t *regs, rows_t *out,
                        const uint8_t *key, uint32_t klen, unsigned char *acc)
{
  const zql_ptable_t *pt = &r->p->tables[t];
  zql_group_t g = {0, klen, key, acc};
  const uint8_t *kp = key, *kend = klen ? key + klen : key; /* (no NULL + 0) */
  for (uint32_t i = 0; i < pt->nkeys; i++)
    if (!zql_val_decode(&kp, kend, vm->batch, &vm->fkeys[i]))
      return ZQL_E_CORRUPT;
  vm->fgroup = &g;
  int rc = zql_vm_exec(vm, &pt->final, regs, t);
  if (rc || pt->intermediate)
    return rc; /* a per stage's final program fed the next table */
  if (pt->having_reg >= 0 &&
      !(regs[pt->having_reg].t == ZQL_V_BOOL && regs[pt->having_reg].u.b))
    return 0;
  uint32_t nextra = (pt->has_rank ? 1 : 0) + r->p->norder;
  row_t row;
  row.v = zql_arena_alloc(out->arena, (pt->ncols + nextra) * sizeof(zql_val_t));
  uint8_t *kc = zql_arena_alloc(out->arena, klen ? klen : 1);
  if (!row.v || !kc)
    return ZQL_E_NOMEM;
  if (klen)
    memcpy(kc, key, klen);
  row.key = kc;
  row.klen = klen;
  for (uint32_t c = 0; c < pt->ncols; c++)
    if (!zql_val_copy(out->arena, &regs[pt->cols[c].reg], &row.v[c]))
      return ZQL_E_NOMEM;
  uint32_t e = pt->ncols;
  if (pt->has_rank && !zql_val_copy(out->arena, &regs[pt->rank_reg], &row.v[e++]))
    return ZQL_E_NOMEM;
  for (uint32_t i = 0; i < r->p->norder; i++)
    if (!zql_val_copy(out->arena, &regs[r->p->order[i].reg], &row.v[e++]))
      return ZQL_E_NOMEM;
  row.state = zql_val_missing();
  if (r->o->keep_states && (rc = zql_save_states(r->x, t, acc, out->arena, &row.state)) != 0)
    return rc;
  return rows_push(out, &row);
}

int32_t zql_state_column(const zql_ptable_t *pt, uint32_t slot)
{
  for (uint32_t c = 0; c < pt->ncols; c++)
    if (pt->cols[c].slot == (int32_t)slot)
      return (int32_t)c;
  return -1;
}

int zql_save_states(const zql_xplan_t *x, uint32_t t, const unsigned char *acc,
                    zql_arena_t *arena, zql_val_t *out)
{
  const zql_ptable_t *pt = &x->plan->tables[t];
  const zql_aggslots_t *sl = &x->slots[t];
  bson_t d = BSON_INITIALIZER, one;
  int rc = 0;
  for (uint32_t c = 0; c < pt->ncols && !rc; c++) {
    int32_t k = pt->cols[c].slot;
    if (k < 0 || (uint32_t)k >= sl->n)
      continue;
    bson_append_document_begin(&d, pt->cols[c].name, -1, &one);
    rc = sl->defs[k]->save(acc + sl->offset[k], &one);
    bson_append_document_end(&d, &one);
  }
  for (uint32_t k = 0; k < sl->n && !rc; k++) {
    if (sl->alias[k] || zql_state_column(pt, k) >= 0)
      continue;
    char hidden[16];
    snprintf(hidden, sizeof hidden, "#%" PRIu32, k);
    bson_append_document_begin(&d, hidden, -1, &one);
    rc = sl->defs[k]->save(acc + sl->offset[k], &one);
    bson_append_document_end(&d, &one);
  }
  uint8_t *m = rc ? NULL : zql_arena_alloc(arena, d.len);
  if (m) {
    memcpy(m, bson_get_data(&d), d.len);
    *out = zql_val_doc(m, d.len, false);
  }
  bson_destroy(&d);
  return rc ? rc : m ? 0 : ZQL_E_NOMEM;
}

static int reduce_task(void *arg, uint32_t task, uint32_t worker)
{
  run_t *r = arg;
  if (r->rc)
    return r->rc;
  uint32_t t = r->t0 + task / r->R, part = task % r->R;
  const zql_aggslots_t *sl = &r->x->slots[t];
  const zql_ptable_t *pt = &r->p->tables[t];
  rows_t *out = &r->parts[t * r->R + part];
  int rc = 0;

  /* sources: each worker's groups of this partition (sorted), each spilled run's segment */
  uint32_t nsrc = r->nsrcs;
  for (unsigned w = 0; r->with_spills && w < r->nw; w++)
    for (uint32_t s = 0; s < r->w[w].nspills; s++)
      nsrc += r->w[w].spills[s].table == t;
  source_t *src = zql_calloc(nsrc ? nsrc : 1, sizeof *src);
  source_t **hv = zql_calloc(nsrc ? nsrc : 1, sizeof *hv);
  unsigned char *acc = zql_calloc(1, sl->block + 8);
  unsigned char *tmp = zql_calloc(1, sl->block + 8);
  zql_val_t *regs = zql_calloc(pt->final.nregs ? pt->final.nregs : 1, sizeof *regs);
  zql_vm_t own, *vmp = r->rvm ? &r->rvm[task] : &own;
  bool vm_ok = r->rvm ? true : zql_vm_init(&own, r->x, false) == 0;
  zql_val_t *fkeys = zql_calloc(pt->nkeys ? pt->nkeys : 1, sizeof *fkeys);
  if (!src || !hv || !acc || !tmp || !regs || !vm_ok || !fkeys) {
    rc = ZQL_E_NOMEM;
    goto done;
  }
  vmp->fkeys = fkeys;
  uint32_t k = 0;
  for (unsigned w = 0; w < r->nsrcs; w++) {
    zql_hashagg_t *h = &r->srcs[w]->tables[t];
    source_t *s = &src[k++];
    s->g = zql_calloc(h->n ? h->n : 1, sizeof *s->g);
    if (!s->g) {
      rc = ZQL_E_NOMEM;
      goto done;
    }
    for (uint64_t i = 0; i < h->cap; i++)
      if (h->tab[i].g && h->tab[i].hash % r->R == part)
        s->g[s->n++] = (sent_t){0, 0, h->tab[i].g};
    for (uint64_t i = 0; i < s->n; i++)
      prefix_of(s->g[i].g->key, s->g[i].g->klen, &s->g[i].p0, &s->g[i].p1);
    qsort(s->g, s->n, sizeof *s->g, sent_cmp);
  }
  for (unsigned w = 0; r->with_spills && w < r->nw; w++)
    for (uint32_t i = 0; i < r->w[w].nspills; i++) {
      const spill_t *sp = &r->w[w].spills[i];
      if (sp->table != t)
        continue;
      source_t *s = &src[k++];
      s->spilled = true;
      s->fd = sp->fd;
      s->pos = sp->off[part];
      s->end = sp->off[part + 1];
      s->cap = 256u << 10;
      s->buf = zql_malloc(s->cap);
      if (!s->buf) {
        rc = ZQL_E_NOMEM;
        goto done;
      }
    }
  /* room for the rows at once: growing by doubling could hold twice the memory */
  if (!pt->intermediate) {
    uint64_t expect = 0;
    for (uint32_t i = 0; i < nsrc; i++)
      expect += src[i].n;
    if (expect > out->cap) {
      row_t *nv = zql_reallocarray(out->v, expect, sizeof *nv);
      if (nv) {
        out->v = nv;
        out->cap = expect;
      }
    }
  }
  heap_t h = {hv, 0};
  for (uint32_t i = 0; i < nsrc; i++) {
    int n = source_next(&src[i]);
    if (n < 0) {
      rc = n;
      goto done;
    }
    if (n)
      h.v[h.n++] = &src[i];
  }
  for (uint32_t i = h.n / 2; i-- > 0;)
    heap_down(&h, i);

  /* k-way merge by key bytes. A key held by one in-memory group only (the common case) is
   * finalized straight from that group's states; otherwise the states of every source
   * holding it are merged into acc first. */
  uint8_t *cur = NULL;
  uint32_t curcap = 0;
  bool have = false;
  while (h.n && !rc) {
    source_t *s = h.v[0];
    if (s->klen > curcap) {
      uint8_t *nc = zql_realloc(cur, s->klen);
      if (!nc) {
        rc = ZQL_E_NOMEM;
        break;
      }
      cur = nc;
      curcap = s->klen;
    }
    uint32_t curlen = s->klen;
    if (curlen)
      memcpy(cur, s->key, curlen);
    have = true;
    const zql_group_t *single = s->spilled ? NULL : s->g[s->i - 1].g;
    uint64_t cp0 = s->p0, cp1 = s->p1;
    bool merged = false;
    if (!single) {
      for (uint32_t j = 0; j < sl->n; j++)
        if (!sl->alias[j])
          sl->defs[j]->init(acc + sl->offset[j], &sl->params[j]);
      merged = true;
      rc = source_fold(r, sl, s, acc, tmp, &vmp->actx);
    }
    /* advance s, then fold every other source at the same key */
    for (;;) {
      if (rc)
        break;
      int n = source_next(s);
      if (n < 0) {
        rc = n;
        break;
      }
      if (n == 0)
        h.v[0] = h.v[--h.n];
      heap_down(&h, 0);
      if (!h.n || !src_same(h.v[0], cp0, cp1, cur, curlen))
        break;
      s = h.v[0];
      if (!merged) {
        for (uint32_t j = 0; j < sl->n; j++)
          if (!sl->alias[j])
            sl->defs[j]->init(acc + sl->offset[j], &sl->params[j]);
        merged = true;
        rc = zql_group_merge(sl, &(zql_group_t){0, curlen, cur, acc}, single, &vmp->actx);
        if (rc > 0)
          rc = 0; /* a kind mismatch cannot happen between partial states of one plan */
        if (rc)
          break;
      }
      rc = source_fold(r, sl, s, acc, tmp, &vmp->actx);
    }
    if (!rc)
      rc = finish_group(r, t, vmp, regs, out, cur, curlen,
                        merged ? acc : (unsigned char *)single->states);
    if (merged)
      for (uint32_t j = 0; j < sl->n; j++)
        if (!sl->alias[j])
          sl->defs[j]->destroy(acc + sl->offset[j], &vmp->actx);
    zql_arena_reset(vmp->batch);
    atomic_fetch_add(&r->groups, 1);
  }
  /* no group by: exactly one row even on empty input (resolved point 3) */
  if (!rc && pt->nkeys == 0 && !have && part == zql_hash_bytes("", 0) % r->R) {
    for (uint32_t j = 0; j < sl->n; j++)
      if (!sl->alias[j])
        sl->defs[j]->init(acc + sl->offset[j], &sl->params[j]);
    rc = finish_group(r, t, vmp, regs, out, (const uint8_t *)"", 0, acc);
    for (uint32_t j = 0; j < sl->n; j++)
      if (!sl->alias[j])
        sl->defs[j]->destroy(acc + sl->offset[j], &vmp->actx);
  }
  zql_free(cur);
  if (!rc) /* this partition's groups are reduced: their memory goes back now */
    for (unsigned w = 0; w < r->nsrcs; w++)
      zql_hashagg_release_part(&r->srcs[w]->tables[t], part, &vmp->actx);
  if (!rc) {
    /* the errors the final programs counted */
    pthread_mutex_lock(&r->lock);
    for (uint32_t i = 0; i < vmp->errs.n; i++)
      zql_errtab_add(&r->w[0].vm.errs, vmp->errs.v[i].msg, vmp->errs.v[i].n);
    r->w[0].vm.overflow += vmp->overflow;
    pthread_mutex_unlock(&r->lock);
  }
done:
  if (src)
    for (uint32_t i = 0; i < nsrc; i++) {
      zql_free(src[i].g);
      zql_free(src[i].buf);
    }
  zql_free(src);
  zql_free(hv);
  zql_free(acc);
  zql_free(tmp);
  zql_free(regs);
  zql_free(fkeys);
  if (vm_ok && !r->rvm)
    zql_vm_free(vmp);
  else if (vm_ok)
    vmp->fkeys = NULL;
  if (rc) {
    const char *m = rc == ZQL_E_NOMEM ? "out of memory while reducing"
                    : rc == ZQL_E_IO  ? "cannot read a spill file"
                                      : "a spill file is damaged";
    run_fail(r, rc, m);
  }
  (void)worker;
  return rc;
}

/* }==== */

/* {==== sessions index ================================================================== */

/* The session starts of every entity of prepass table t, from its rows (entity, starts). */
static int build_sessidx(run_t *r, uint32_t t, zql_sessidx_t *ix)
{
  uint64_t n = 0;
  for (uint32_t p = 0; p < r->R; p++)
    n += r->parts[t * r->R + p].n;
  ix->cap = 16;
  while (ix->cap < n * 2)
    ix->cap *= 2;
  ix->arena = zql_arena_create(NULL);
  ix->tab = ix->arena ? zql_arena_calloc(ix->arena, ix->cap, sizeof *ix->tab) : NULL;
  if (!ix->tab)
    return ZQL_E_NOMEM;
  for (uint32_t p = 0; p < r->R; p++) {
    const rows_t *rs = &r->parts[t * r->R + p];
    for (uint64_t i = 0; i < rs->n; i++) {
      const row_t *row = &rs->v[i];
      const zql_val_t *a = &row->v[1];
      uint32_t m = 0;
      bson_iter_t it;
      if (a->t == ZQL_V_ARRAY && bson_iter_init_from_data(&it, a->u.p, a->len))
        while (bson_iter_next(&it))
          m++;
      int64_t *starts = zql_arena_alloc(ix->arena, (m ? m : 1) * sizeof *starts);
      if (!starts)
        return ZQL_E_NOMEM;
      m = 0;
      if (a->t == ZQL_V_ARRAY && bson_iter_init_from_data(&it, a->u.p, a->len))
        while (bson_iter_next(&it))
          if (BSON_ITER_HOLDS_DATE_TIME(&it))
            starts[m++] = bson_iter_date_time(&it);
      uint64_t h = zql_hash_bytes(row->key, row->klen);
      uint64_t j = h & (ix->cap - 1);
      while (ix->tab[j].key)
        j = (j + 1) & (ix->cap - 1);
      ix->tab[j] = (struct zql_sslot){h, row->key, row->klen, m, starts};
    }
  }
  return 0;
}

/* }==== */

/* {==== output order ===================================================================== */

typedef struct sortctx {
  const zql_plan_t *p;
  const zql_ptable_t *t;
} sortctx_t;

static _Thread_local const sortctx_t *g_sort;

static int row_key_cmp(const void *pa, const void *pb)
{
  const row_t *a = pa, *b = pb;
  return key_cmp(a->key, a->klen, b->key, b->klen);
}

static int row_rank_cmp(const void *pa, const void *pb)
{
  const row_t *a = pa, *b = pb;
  const zql_ptable_t *t = g_sort->t;
  for (uint32_t i = 0; i < t->nrank_within; i++) {
    int c = zql_val_cmp(&a->v[t->rank_within[i]], &b->v[t->rank_within[i]]);
    if (c)
      return c;
  }
  int c = zql_val_cmp(&a->v[t->ncols], &b->v[t->ncols]);
  if (c)
    return t->rank_desc ? -c : c;
  return key_cmp(a->key, a->klen, b->key, b->klen);
}

static int row_order_cmp(const void *pa, const void *pb)
{
  const row_t *a = pa, *b = pb;
  const zql_ptable_t *t = g_sort->t;
  uint32_t e = t->ncols + (t->has_rank ? 1 : 0);
  for (uint32_t i = 0; i < g_sort->p->norder; i++) {
    int c = zql_val_cmp(&a->v[e + i], &b->v[e + i]);
    if (c)
      return g_sort->p->order[i].desc ? -c : c;
  }
  for (uint32_t i = 0; i < t->ncols; i++) {
    int c = zql_val_cmp(&a->v[i], &b->v[i]);
    if (c)
      return c;
  }
  return key_cmp(a->key, a->klen, b->key, b->klen);
}

/* Restore the heap order of heap[0..hn) below position k (partition indexes ordered by
 * their next row's key). */
static void parts_sift(const rows_t *parts, const uint64_t *pos, uint32_t *heap, uint32_t hn,
                       uint32_t k)
{
#define HEAD(p) (&parts[p].v[pos[p]])
#define LESS(x, y) (key_cmp(HEAD(x)->key, HEAD(x)->klen, HEAD(y)->key, HEAD(y)->klen) < 0)
  for (;;) {
    uint32_t l = 2 * k + 1, m = k;
    if (l < hn && LESS(heap[l], heap[m]))
      m = l;
    if (l + 1 < hn && LESS(heap[l + 1], heap[m]))
      m = l + 1;
    if (m == k)
      return;
    uint32_t tmp = heap[k];
    heap[k] = heap[m];
    heap[m] = tmp;
    k = m;
  }
#undef HEAD
#undef LESS
}

/* The rows of table t's partitions, each sorted by key, merged into `all` in key order. */
static void merge_parts(run_t *r, uint32_t t, row_t *all)
{
  uint32_t R = r->R;
  uint64_t pos[4096];
  uint32_t heap[4096], hn = 0;
  rows_t *parts = &r->parts[t * R];
  for (uint32_t p = 0; p < R; p++) {
    pos[p] = 0;
    if (parts[p].n)
      heap[hn++] = p;
  }
  for (uint32_t i = hn / 2; i-- > 0;)
    parts_sift(parts, pos, heap, hn, i);
  uint64_t n = 0;
  while (hn) {
    uint32_t p = heap[0];
    all[n++] = parts[p].v[pos[p]];
    if (++pos[p] == parts[p].n)
      heap[0] = heap[--hn];
    parts_sift(parts, pos, heap, hn, 0);
  }
}

static bool same_within(const zql_ptable_t *t, const row_t *a, const row_t *b)
{
  for (uint32_t i = 0; i < t->nrank_within; i++)
    if (zql_val_cmp(&a->v[t->rank_within[i]], &b->v[t->rank_within[i]]) != 0)
      return false;
  return true;
}

static int collect(run_t *r, uint32_t t, zql_result_t *res, uint32_t oi)
{
  const zql_ptable_t *pt = &r->p->tables[t];
  zql_result_table_t *rt = &res->tables[oi];
  uint64_t total = 0;
  for (uint32_t p = 0; p < r->R; p++)
    total += r->parts[t * r->R + p].n;
  row_t *all = zql_calloc(total ? total : 1, sizeof *all);
  if (!all)
    return ZQL_E_NOMEM;
  uint64_t n = total;
  bool merge = !pt->has_rank && !r->p->norder;
  if (!merge) {
    n = 0;
    for (uint32_t p = 0; p < r->R; p++) {
      rows_t *rs = &r->parts[t * r->R + p];
      if (rs->n)
        memcpy(all + n, rs->v, rs->n * sizeof *all);
      n += rs->n;
      zql_free(rs->v); /* copied: give the memory back now */
      rs->v = NULL;
      rs->cap = 0;
    }
  }
  sortctx_t sc = {r->p, pt};
  g_sort = &sc;
  if (pt->has_rank) {
    qsort(all, n, sizeof *all, row_rank_cmp);
    uint64_t keep = 0, inrun = 0;
    for (uint64_t i = 0; i < n; i++) {
      if (i == 0 || !same_within(pt, &all[i], &all[i - 1]))
        inrun = 0;
      if (inrun++ < (uint64_t)pt->rank_limit)
        all[keep++] = all[i];
    }
    n = keep;
  }
  if (r->p->norder)
    qsort(all, n, sizeof *all, row_order_cmp);
  else if (pt->has_rank)
    qsort(all, n, sizeof *all, row_key_cmp);
  else {
    merge_parts(r, t, all); /* each partition's rows are already in key order */
    for (uint32_t p = 0; p < r->R; p++) {
      zql_free(r->parts[t * r->R + p].v);
      r->parts[t * r->R + p].v = NULL;
    }
  }
  g_sort = NULL;
  uint64_t from = 0, count = n;
  if (r->p->is_query) {
    if (r->p->offset > 0)
      from = (uint64_t)r->p->offset < n ? (uint64_t)r->p->offset : n;
    count = n - from;
    if (r->p->limit >= 0 && (uint64_t)r->p->limit < count)
      count = (uint64_t)r->p->limit;
  }
  rt->name = pt->name;
  rt->into = pt->into;
  rt->ncols = pt->ncols;
  rt->names = zql_arena_calloc(res->arena, pt->ncols ? pt->ncols : 1, sizeof *rt->names);
  rt->is_key = zql_arena_calloc(res->arena, pt->ncols ? pt->ncols : 1, sizeof *rt->is_key);
  rt->error_cells = zql_arena_calloc(res->arena, pt->ncols ? pt->ncols : 1, sizeof(uint64_t));
  rt->vals = zql_arena_calloc(res->arena, count * pt->ncols > 0 ? count * pt->ncols : 1,
                              sizeof *rt->vals);
  if (!rt->names || !rt->is_key || !rt->error_cells || !rt->vals) {
    zql_free(all);
    return ZQL_E_NOMEM;
  }
  for (uint32_t c = 0; c < pt->ncols; c++) {
    rt->names[c] = pt->cols[c].name;
    rt->is_key[c] = pt->cols[c].is_key;
  }
  for (uint64_t i = 0; i < count; i++)
    for (uint32_t c = 0; c < pt->ncols; c++) {
      zql_val_t *v = &rt->vals[i * pt->ncols + c];
      *v = all[from + i].v[c];
      if (v->t == ZQL_V_ERROR)
        rt->error_cells[c]++;
    }
  if (r->o->keep_states) {
    rt->state = zql_arena_calloc(res->arena, count ? count : 1, sizeof *rt->state);
    if (!rt->state) {
      zql_free(all);
      return ZQL_E_NOMEM;
    }
    for (uint64_t i = 0; i < count; i++)
      rt->state[i] = all[from + i].state;
  }
  rt->nrows = count;
  zql_free(all);
  return 0;
}

/* }==== */

static int errcount_cmp(const void *a, const void *b)
{
  return strcmp(((const zql_errcount_t *)a)->msg, ((const zql_errcount_t *)b)->msg);
}

int zql_exec_run(const zql_xplan_t *x, const zql_input_t *in, const zql_run_opts_t *o,
                 zql_result_t **out, zql_strbuf_t *err)
{
  *out = NULL;
  const zql_plan_t *p = x->plan;
  run_t r;
  memset(&r, 0, sizeof r);
  zql_pool_warm(o->threads); /* while the set-up below runs */
  r.x = x;
  r.p = p;
  r.in = in;
  r.o = o;
  r.R = p->partitions ? p->partitions : 8;
  pthread_mutex_init(&r.lock, NULL);
  atomic_init(&r.events, 0);
  atomic_init(&r.bytes, 0);
  atomic_init(&r.groups, 0);
  zql_xplan_ts_range(x, &r.ts_lo, &r.ts_hi);
  if (o->ts_lo > r.ts_lo)
    r.ts_lo = o->ts_lo;
  if (o->ts_hi < r.ts_hi)
    r.ts_hi = o->ts_hi;
  unsigned threads = o->threads ? o->threads : 1;
  if (threads > 256)
    threads = 256;
  if (x->one_worker) /* a reducer without merge: one worker, no spill (R14) */
    threads = 1;
  zql_result_t *res = NULL;
  int rc = 0;
  zql_sessidx_t *sidx = NULL;  /* session keys: per prepass table, its sessions index */
  zql_sessidx_t **sptr = NULL;

  /* the scan range, intersected with the plan's _seq bounds */
  int64_t lo = in->lo > p->seq_lo ? in->lo : p->seq_lo;
  int64_t hi = in->hi < p->seq_hi ? in->hi : p->seq_hi;
  uint32_t want = threads * 8;
  /* the bytes of (lo, hi]: the input's share by _seq count (an incremental run reads the
   * newest events of a large log: chunks sized for the whole log would be tiny, and each
   * costs a cursor and a page release) */
  uint64_t bytes = in->bytes;
  if (hi > lo && in->hi > in->lo && (uint64_t)(hi - lo) < (uint64_t)(in->hi - in->lo))
    bytes = (uint64_t)((double)in->bytes * (double)(hi - lo) / (double)(in->hi - in->lo));
  if (bytes / CHUNK_BYTES + 1 > want)
    want = (uint32_t)(bytes / CHUNK_BYTES + 1);
  if (want > MAX_CHUNKS)
    want = MAX_CHUNKS;
  r.bounds = zql_calloc(want + 1, sizeof *r.bounds);
  r.w = zql_calloc(threads, sizeof *r.w);
  r.parts = zql_calloc((size_t)r.R * (p->ntables ? p->ntables : 1), sizeof *r.parts);
  res = zql_calloc(1, sizeof *res);
  if (!r.bounds || !r.w || !r.parts || !res || !(res->arena = zql_arena_create(NULL))) {
    rc = ZQL_E_NOMEM;
    zql_strbuf_adds(&r.err, "out of memory");
    goto done;
  }
  if (hi > lo) {
    int k = in->split(in->arg, lo, hi, want, r.bounds, &r.err);
    if (k < 0) {
      rc = k;
      goto done;
    }
    r.nchunks = (uint32_t)k;
  }
  r.nw = threads;
  for (unsigned i = 0; i < threads; i++) {
    if (zql_vm_init(&r.w[i].vm, x, true) != 0) {
      r.nw = i;
      rc = ZQL_E_NOMEM;
      zql_strbuf_adds(&r.err, "out of memory");
      goto done;
    }
    r.w[i].vm.row_fn = row_keep;
    r.w[i].vm.row_arg = &r.w[i];
    r.w[i].rows.last_seq = INT64_MIN;
  }
  for (uint32_t i = 0; i < r.R * p->ntables; i++)
    if (!(r.parts[i].arena = zql_arena_create(res->arena))) {
      rc = ZQL_E_NOMEM;
      zql_strbuf_adds(&r.err, "out of memory");
      goto done;
    }
  /* three quarters of --mem-limit for the map stage's group tables (each worker its
   * share); the rest is for what the reduce and the output hold at the same time */
  r.budget = o->mem_limit && !x->one_worker ? o->mem_limit / 4 * 3 / threads : 0;

  double t0 = now_s();
  /* session keys: a first pass collects each entity's times into the prepass tables, whose
   * reduce gives every entity's session starts; the map program looks them up */
  uint32_t first_pre = p->ntables;
  for (uint32_t t = 0; t < p->ntables; t++)
    if (p->tables[t].prepass && t < first_pre)
      first_pre = t;
  if (p->pre.n && first_pre < p->ntables) {
    sidx = zql_calloc(p->ntables, sizeof *sidx);
    sptr = zql_calloc(p->ntables, sizeof *sptr);
    if (!sidx || !sptr) {
      rc = ZQL_E_NOMEM;
      zql_strbuf_adds(&r.err, "out of memory");
      goto sessions_done;
    }
    r.prog = &p->pre;
    rc = map_all(&r, threads);
    if (r.rc)
      rc = r.rc;
    if (!rc) {
      zql_vm_t **psrcs = zql_calloc(threads, sizeof *psrcs);
      if (!psrcs) {
        rc = ZQL_E_NOMEM;
        zql_strbuf_adds(&r.err, "out of memory");
        goto sessions_done;
      }
      for (unsigned i = 0; i < r.nw; i++)
        psrcs[i] = &r.w[i].vm;
      r.srcs = psrcs;
      r.nsrcs = r.nw;
      r.with_spills = true;
      r.t0 = first_pre;
      r.nt = p->ntables - first_pre;
      rc = zql_pool_run(threads, r.R * r.nt, reduce_task, &r);
      if (r.rc)
        rc = r.rc;
      zql_free(psrcs);
      r.srcs = NULL;
    }
    for (uint32_t t = first_pre; t < p->ntables && !rc; t++) {
      rc = build_sessidx(&r, t, &sidx[t]);
      sptr[t] = &sidx[t];
    }
    /* the reduce gave the prepass tables' groups back partition by partition: empty the
     * tables, or the main pass's spills would walk their freed groups (and its memory
     * count would include them) */
    for (unsigned i = 0; i < r.nw; i++)
      for (uint32_t t = first_pre; t < p->ntables; t++)
        zql_hashagg_clear(&r.w[i].vm.tables[t], &r.w[i].vm.actx);
    for (unsigned i = 0; i < r.nw; i++) { /* counters count the main pass only */
      zql_vm_t *vm = &r.w[i].vm;
      vm->sess = sptr;
      vm->events = vm->rows = vm->overflow = vm->lossy = 0;
      vm->max_ts = INT64_MIN;
      vm->actx.type_skips = 0;
      vm->errs.n = 0;
    }
    atomic_store(&r.events, 0);
    atomic_store(&r.bytes, 0);
  }
sessions_done:
  if (rc)
    goto done;
  r.prog = &p->map;
  rc = map_all(&r, threads);
  double t1 = now_s();
  if (r.rc)
    rc = r.rc;
  if (rc)
    goto done;
  /* REDUCE: the map workers' tables; a per stage first reduces its entities, whose final
   * programs feed the next table in the reduce tasks' own VMs, then those are reduced */
  zql_vm_t **srcs = zql_calloc(threads > r.R ? threads : r.R, sizeof *srcs);
  if (!srcs) {
    rc = ZQL_E_NOMEM;
    zql_strbuf_adds(&r.err, "out of memory");
    goto done;
  }
  for (unsigned i = 0; i < r.nw; i++)
    srcs[i] = &r.w[i].vm;
  r.srcs = srcs;
  r.nsrcs = r.nw;
  r.with_spills = true;
  r.t0 = 0;
  r.nt = first_pre; /* the prepass tables were reduced in the pre-pass */
  if (p->ntables > 1 && p->tables[0].intermediate) {
    r.nt = 1;
    r.rvm = zql_calloc(r.R, sizeof *r.rvm);
    for (uint32_t i = 0; r.rvm && i < r.R; i++)
      if (zql_vm_init(&r.rvm[i], x, true) != 0) {
        for (uint32_t j = 0; j < i; j++)
          zql_vm_free(&r.rvm[j]);
        zql_free(r.rvm);
        r.rvm = NULL;
      }
    if (!r.rvm) {
      zql_free(srcs);
      rc = ZQL_E_NOMEM;
      zql_strbuf_adds(&r.err, "out of memory");
      goto done;
    }
    rc = zql_pool_run(threads, r.R, reduce_task, &r);
    if (r.rc)
      rc = r.rc;
    for (uint32_t i = 0; i < r.R; i++)
      srcs[i] = &r.rvm[i];
    r.nsrcs = r.R;
    r.with_spills = false;
    r.t0 = 1;
    r.nt = p->ntables - 1;
    zql_vm_t *rvm = r.rvm;
    r.rvm = NULL;
    if (!rc) {
      rc = zql_pool_run(threads, r.R * r.nt, reduce_task, &r);
      if (r.rc)
        rc = r.rc;
    }
    for (uint32_t i = 0; i < r.R; i++) {
      /* the per stage's counters belong to the run */
      r.w[0].vm.actx.type_skips += rvm[i].actx.type_skips; /* errors: reduce_task */
      zql_vm_free(&rvm[i]);
    }
    zql_free(rvm);
  } else {
    rc = zql_pool_run(threads, r.R * r.nt, reduce_task, &r);
    if (r.rc)
      rc = r.rc;
  }
  zql_free(srcs);
  r.srcs = NULL;
  if (rc)
    goto done;
  double t2 = now_s();
  /* the map stage's group tables have been reduced: give their memory back before the
   * rows are collected */
  for (unsigned i = 0; i < r.nw; i++) {
    for (uint32_t t = 0; t < p->ntables; t++)
      zql_hashagg_free(&r.w[i].vm.tables[t], &r.w[i].vm.actx);
  }

  if (p->rowq) {
    rc = collect_rows(&r, res);
  } else {
    res->tables = zql_arena_calloc(res->arena, p->ntables ? p->ntables : 1,
                                   sizeof *res->tables);
    if (!res->tables)
      rc = ZQL_E_NOMEM;
    for (uint32_t t = 0; t < p->ntables && !rc; t++)
      if (!p->tables[t].intermediate && !p->tables[t].prepass)
        rc = collect(&r, t, res, res->ntables++);
  }
  if (rc) {
    zql_strbuf_adds(&r.err, "out of memory while collecting the result");
    goto done;
  }

  /* counters and stats */
  zql_errtab_t errs = {0};
  zql_counters_t *c = &res->counters;
  c->max_ts = INT64_MIN;
  for (unsigned i = 0; i < r.nw; i++) {
    zql_vm_t *vm = &r.w[i].vm;
    c->events += vm->events;
    if (vm->max_ts > c->max_ts)
      c->max_ts = vm->max_ts;
    c->rows += vm->rows;
    c->type_skips += vm->actx.type_skips;
    c->overflow += vm->overflow;
    c->lossy += vm->lossy;
    c->spills += r.w[i].nspills;
    c->spill_bytes += r.w[i].spill_bytes;
    for (uint32_t j = 0; j < vm->errs.n; j++)
      zql_errtab_add(&errs, vm->errs.v[j].msg, vm->errs.v[j].n);
    res->map.peak_mem += r.w[i].peak;
  }
  if (errs.n) {
    c->errors = zql_arena_calloc(res->arena, errs.n, sizeof *c->errors);
    if (c->errors) {
      memcpy(c->errors, errs.v, errs.n * sizeof *errs.v);
      c->nerrors = errs.n;
      qsort(c->errors, c->nerrors, sizeof *c->errors, errcount_cmp);
    }
    zql_free(errs.v);
  }
  res->chunks = r.nchunks;
  res->threads = r.nw;
  res->partitions = r.R;
  res->map.seconds = t1 - t0;
  res->map.rows_in = c->events;
  res->map.rows_out = c->rows;
  res->map.bytes = atomic_load(&r.bytes);
  res->reduce.seconds = t2 - t1;
  res->groups = atomic_load(&r.groups);
  res->reduce.rows_in = res->groups;
  for (uint32_t t = 0; t < res->ntables; t++)
    res->reduce.rows_out += res->tables[t].nrows;
  for (unsigned i = 0; i < r.nw; i++) /* row queries: each worker's kept rows */
    res->map.peak_mem += r.w[i].rows.arena ? zql_arena_used(r.w[i].rows.arena) : 0;
  res->output.seconds = now_s() - t2;

done:
  if (rc && err)
    zql_strbuf_adds(err, r.err.len ? r.err.buf : zql_strerror(rc));
  for (unsigned i = 0; r.w && i < r.nw; i++) {
    for (uint32_t s = 0; s < r.w[i].nspills; s++) {
      close(r.w[i].spills[s].fd);
      zql_free(r.w[i].spills[s].off);
    }
    zql_free(r.w[i].spills);
    zql_free(r.w[i].rows.v);
    zql_arena_delete(r.w[i].rows.arena);
    zql_vm_free(&r.w[i].vm);
  }
  if (r.parts)
    for (uint32_t i = 0; i < r.R * p->ntables; i++)
      zql_free(r.parts[i].v);
  zql_free(r.parts);
  if (sidx)
    for (uint32_t t = 0; t < p->ntables; t++)
      zql_arena_delete(sidx[t].arena);
  zql_free(sidx);
  zql_free(sptr);
  zql_free(r.w);
  zql_free(r.bounds);
  zql_strbuf_release(&r.err);
  pthread_mutex_destroy(&r.lock);
  if (rc) {
    zql_result_free(res);
    return rc;
  }
  *out = res;
  return 0;
}

void zql_result_free(zql_result_t *r)
{
  if (!r)
    return;
  zql_arena_delete(r->arena);
  zql_free(r);
}
