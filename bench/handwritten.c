/*
 * handwritten.c -- the engine benchmark's baseline: each benchmark query written by hand
 * as single-purpose C over the event log (bench/bench_engine.c runs it beside zql and
 * reports zql's throughput as a ratio of this program's; `make bench`).
 *
 *   bench/handwritten --data DIR --query NAME [--threads T] [--project NAME] [--print]
 *
 * What a careful engineer would write for one query, with no query engine in between:
 *
 *  - Scan: zql_evlog_reader_open, zql_evlog_split of the snapshot's (first - 1, last]
 *    into T chunks of equal bytes, one pthread per chunk, each with its own reader and
 *    cursor (readers belong to one thread), 256 zero-copy views per cursor call.
 *  - Parse: libbson's iterator over the document (bson_iter_init_from_data), one pass
 *    over the top-level keys and over `context` / `extra` only when the query reads
 *    them, each field taken at its first occurrence, and the walk stops as soon as every
 *    field the query reads was found or its filter failed (`type` precedes `context`, so
 *    a failed `type == ...` test skips the rest of the document). Each query reads only
 *    its own fields. The time of bucket(timestamp, ...) is the frame's timestamp
 *    (view.ts: the log stores the document's `timestamp` there in ms UTC) and the `_seq`
 *    of query 9 is the view's seq, so neither costs a field lookup.
 *  - Group: a per-thread open-addressing hash table (linear probing, load <= 1/2,
 *    XXH3-64 of the key bytes; the hash is kept in the slot so a probe compares the
 *    key bytes only on a hash match). A group's record {hash, key length, value, key
 *    bytes} is bump-allocated in the thread's zql_arena and never moves. After the scan
 *    the main thread merges the other threads' tables into the first one.
 *  - Output: with --print, one ndjson row per group, sorted by the keys in declaration
 *    order (null first, strings by bytes, days and hours as ISO-8601 UTC with ms) so a
 *    human can diff it with zql's output; top_downloads prints each day's ten rows in
 *    rank order. Without --print the same rows are rendered, unsorted, one at a time,
 *    and only the sum of their XXH3 hashes is printed (a checksum independent of the
 *    row order, equal for every thread count), on one line with the row count and the
 *    scan and merge times: both programs pay for formatting their results.
 *
 * The queries (the zql text is the contract, bench/bench_engine.c runs it):
 *   count_by_type    from event group by type compute n = count()
 *   pageviews_daily  ... where type == "pageview" group by day, context.project: count()
 *   users_exact      group by context.project: distinct_count(context.user), a per-project
 *                    hash set of the user strings
 *   users_hll        group by context.project: hll(context.user), p = 14 (16384 one-byte
 *                    registers; register index = top 14 bits of XXH3 of the user bytes,
 *                    value = leading zeros of the other 50 bits + 1), estimated with
 *                    Ertl's improved raw estimator (O. Ertl, "New cardinality estimation
 *                    algorithms for HyperLogLog sketches", 2017, arXiv:1702.01284), which
 *                    needs neither bias tables nor a linear-counting threshold
 *   latency          group by context.tool, bucket(timestamp, hour): exact quantiles 0.5,
 *                    0.95, 0.99 of extra.ms: every value of a group is collected, and each
 *                    quantile is the Hyndman-Fan type 7 interpolation (design/ZQL.md
 *                    resolved point 8) between the k-th and (k+1)-th smallest values, found
 *                    with quickselect (Hoare's FIND) rather than a full sort. zql answers
 *                    from a DDSketch-style sketch within 1% of these exact values
 *                    (resolved points 8 and 14), so printed quantiles may differ that much
 *   top_downloads    where type == "download", group by day, project: count(), then per day
 *                    the 10 largest counts (ties by project, R7: null first, then bytes)
 *   bytes_by_nbhd    group by context.neighborhood: sum(extra.bytes)
 *   one_project      where context.project == --project, group by day: count()
 *   groups_1m        group by _seq % 1000000: count(), sum(extra.bytes)
 *
 * Semantics kept from design/ZQL.md: a missing or null key is the null group (R6); a
 * filter keeps only TRUE (R3: a missing or non-string field never equals a string); sum
 * and quantile take int32, int64 and double values and skip everything else (R8); an
 * integer sum that would overflow int64 goes on as a double (R4); distinct and hll skip
 * missing and null users; day and hour buckets are UTC, floored. Simplifications, all
 * counted and reported on stderr so that a difference from zql is visible: a key field
 * (type, project, tool, neighborhood) or a user that is neither a string nor null/missing
 * drops the event from that query; and zql's hll hashes the normalised encoding of a value
 * (exec/value.h), this one the raw string bytes, so the two estimates may differ within
 * the sketch's error (about 0.8% at p = 14).
 *
 * Exit status: 0, 1 for an error (the log, memory), 2 for a usage error.
 */
#include "runtime/base/zql_common.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include <xxhash.h>

#include "runtime/base/alloc.h"
#include "runtime/base/arena.h"
#include "runtime/base/strbuf.h"
#include "runtime/evlog.h"

#define VIEWS 256               /* views per cursor call */
#define MAX_THREADS 256
#define HASH_SEED UINT64_C(0x62656e63682d6877) /* "bench-hw" */
#define HLL_P 14
#define HLL_M (1u << HLL_P)
#define HLL_Q (64 - HLL_P)      /* hash bits left after the register index */
#define DAY_MS INT64_C(86400000)
#define HOUR_MS INT64_C(3600000)
#define GROUPS_MOD 1000000
#define TOP_N 10

/* {==== errors, time ====} */

ZQL_NORETURN static void die(const char *fmt, ...) ZQL_PRINTF(1, 2);
static void die(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("handwritten: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static void *xmalloc(size_t n)
{
  void *p = zql_malloc(n ? n : 1);
  if (!p)
    die("out of memory (%zu bytes)", n);
  return p;
}

static void *xcalloc(size_t count, size_t size)
{
  void *p = zql_calloc(count ? count : 1, size ? size : 1);
  if (!p)
    die("out of memory (%zu x %zu bytes)", count, size);
  return p;
}

static void *xrealloc(void *p, size_t n)
{
  void *q = zql_realloc(p, n ? n : 1);
  if (!q)
    die("out of memory (%zu bytes)", n);
  return q;
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int64_t floor_to(int64_t t, int64_t unit)
{
  int64_t q = t / unit;
  if (t % unit < 0)
    q--;
  return q * unit;
}

/* {==== the hash table ====} */

/* A group: header, value (vsize bytes, 8-aligned), key bytes. */
typedef struct rec {
  uint64_t h;
  uint32_t klen;
  uint32_t pad;
} rec_t;

typedef struct slot {
  uint64_t h;
  rec_t *rec; /* NULL: empty */
} slot_t;

typedef struct table {
  slot_t *slots;
  size_t mask; /* slots - 1 (a power of two) */
  rec_t **recs; /* the groups in insertion order */
  size_t n, cap;
  size_t vsize;
  zql_arena_t *arena; /* the records (shared by all tables of a thread) */
} table_t;

static void table_init(table_t *t, size_t vsize, zql_arena_t *arena, size_t nslots)
{
  t->slots = xcalloc(nslots, sizeof *t->slots);
  t->mask = nslots - 1;
  t->recs = NULL;
  t->n = t->cap = 0;
  t->vsize = (vsize + 7) & ~(size_t)7;
  t->arena = arena;
}

static void table_release(table_t *t)
{
  zql_free(t->slots);
  zql_free(t->recs);
  t->slots = NULL;
  t->recs = NULL;
  t->n = t->cap = 0;
}

static inline void *rec_val(rec_t *r)
{
  return r + 1;
}

static inline const uint8_t *rec_key(const table_t *t, const rec_t *r)
{
  return (const uint8_t *)(r + 1) + t->vsize;
}

static uint64_t hash_bytes(const void *p, size_t n)
{
  return XXH3_64bits_withSeed(p, n, HASH_SEED);
}

static void table_resize(table_t *t, size_t nslots)
{
  slot_t *s = xcalloc(nslots, sizeof *s);
  size_t mask = nslots - 1;
  for (size_t i = 0; i < t->n; i++) {
    rec_t *r = t->recs[i];
    size_t j = r->h & mask;
    while (s[j].rec)
      j = (j + 1) & mask;
    s[j].h = r->h;
    s[j].rec = r;
  }
  zql_free(t->slots);
  t->slots = s;
  t->mask = mask;
}

/* Room for n groups without growing (the merge knows its upper bound). */
static void table_reserve(table_t *t, size_t n)
{
  size_t nslots = t->mask + 1;
  while (n * 2 > nslots)
    nslots *= 2;
  if (nslots > t->mask + 1)
    table_resize(t, nslots);
}

/* The value of the group with this key, a zeroed new one when absent. */
static void *table_get(table_t *t, const void *key, uint32_t klen, uint64_t h)
{
  size_t i = h & t->mask;
  for (slot_t *s; (s = &t->slots[i])->rec; i = (i + 1) & t->mask)
    if (s->h == h && s->rec->klen == klen && memcmp(rec_key(t, s->rec), key, klen) == 0)
      return rec_val(s->rec);
  if ((t->n + 1) * 2 > t->mask + 1) {
    table_resize(t, (t->mask + 1) * 2);
    for (i = h & t->mask; t->slots[i].rec; i = (i + 1) & t->mask)
      ;
  }
  rec_t *r = zql_arena_alloc(t->arena, sizeof *r + t->vsize + klen);
  if (!r)
    die("out of memory (group record)");
  r->h = h;
  r->klen = klen;
  r->pad = 0;
  memset(rec_val(r), 0, t->vsize);
  memcpy((uint8_t *)rec_val(r) + t->vsize, key, klen);
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 64;
    t->recs = xrealloc(t->recs, t->cap * sizeof *t->recs);
  }
  t->recs[t->n++] = r;
  t->slots[i].h = h;
  t->slots[i].rec = r;
  return rec_val(r);
}

/* {==== fields of an event ====} */

enum field { F_TYPE, F_USER, F_PROJECT, F_NBHD, F_TOOL, F_MS, F_BYTES, F__COUNT };
#define BIT(f) (1u << (f))
#define CTX_BITS (BIT(F_USER) | BIT(F_PROJECT) | BIT(F_NBHD) | BIT(F_TOOL))
#define EXTRA_BITS (BIT(F_MS) | BIT(F_BYTES))

/* One field as read: t is BSON_TYPE_EOD when the field is missing. */
typedef struct fval {
  bson_type_t t;
  uint32_t len;  /* UTF8 */
  const char *s; /* UTF8: points into the mapped document */
  int64_t i;     /* INT32, INT64 */
  double d;      /* DOUBLE */
} fval_t;

typedef struct fname {
  enum field f;
  uint32_t len;
  const char *name;
} fname_t;

static const fname_t ctx_names[] = {{F_USER, 4, "user"},
                                    {F_PROJECT, 7, "project"},
                                    {F_NBHD, 12, "neighborhood"},
                                    {F_TOOL, 4, "tool"}};
static const fname_t extra_names[] = {{F_MS, 2, "ms"}, {F_BYTES, 5, "bytes"}};

static void read_val(const bson_iter_t *it, fval_t *f)
{
  f->t = bson_iter_type(it);
  switch (f->t) {
  case BSON_TYPE_UTF8:
    f->s = bson_iter_utf8(it, &f->len);
    break;
  case BSON_TYPE_INT32:
    f->i = bson_iter_int32(it);
    break;
  case BSON_TYPE_INT64:
    f->i = bson_iter_int64(it);
    break;
  case BSON_TYPE_DOUBLE:
    f->d = bson_iter_double(it);
    break;
  default:
    break;
  }
}

/* {==== queries: shared pieces ====} */

typedef struct worker worker_t;

typedef struct query {
  const char *name;
  const char *zql;
  unsigned want;      /* fields read (BIT(F_*)) */
  int filter;         /* a field that must equal a string, or -1 */
  const char *filter_eq; /* that string (NULL: the --project argument) */
  const char *layout; /* key components: 's' string or null, 'd' day/hour date, 'i' int */
  const char *knames[2];
  size_t vsize;
  void (*add)(worker_t *w, const zql_evlog_view_t *v, const fval_t *f);
  void (*merge)(worker_t *w, void *dst, void *src); /* w: the destination's worker */
  void (*render)(zql_strbuf_t *sb, void *val);      /* the value fields: ,"n":1 */
  void (*destroy)(void *val);                       /* NULL: nothing to free */
} query_t;

struct worker {
  const query_t *q;
  const char *dir;
  int64_t lo, hi; /* the chunk (lo, hi] */
  const char *filter_s;
  uint32_t filter_len;
  zql_arena_t *arena;
  table_t tab;
  uint8_t *kbuf; /* key under construction */
  size_t kcap;
  uint64_t events, bad, odd; /* scanned, not BSON, dropped for an unexpected type */
  uint64_t type_skips;       /* sum/quantile inputs that were not numbers (R8) */
  double secs;
  char msg[1024];
  bool failed;
};

static uint8_t *key_room(worker_t *w, size_t n)
{
  if (n > w->kcap) {
    w->kcap = n * 2;
    w->kbuf = xrealloc(w->kbuf, w->kcap);
  }
  return w->kbuf;
}

static inline uint8_t *put_i64(uint8_t *p, int64_t v)
{
  memcpy(p, &v, 8);
  return p + 8;
}

/* A nullable string key component: tag 0 (null), or tag 1, u32 length, bytes. NULL when
 * the field is neither a string nor null/missing (the caller drops the event). */
static inline uint8_t *put_nstr(uint8_t *p, const fval_t *f)
{
  if (f->t == BSON_TYPE_UTF8) {
    *p++ = 1;
    memcpy(p, &f->len, 4);
    memcpy(p + 4, f->s, f->len);
    return p + 4 + f->len;
  }
  if (f->t == BSON_TYPE_EOD || f->t == BSON_TYPE_NULL || f->t == BSON_TYPE_UNDEFINED) {
    *p++ = 0;
    return p;
  }
  return NULL;
}

static inline size_t nstr_room(const fval_t *f)
{
  return 5 + (f->t == BSON_TYPE_UTF8 ? f->len : 0);
}

/* The group of a key built in w->kbuf[0, n). */
static inline void *group(worker_t *w, const uint8_t *end)
{
  uint32_t n = (uint32_t)(end - w->kbuf);
  return table_get(&w->tab, w->kbuf, n, hash_bytes(w->kbuf, n));
}

static inline void *group_nstr(worker_t *w, const fval_t *f)
{
  uint8_t *e = put_nstr(key_room(w, nstr_room(f)), f);
  if (!e) {
    w->odd++;
    return NULL;
  }
  return group(w, e);
}

static inline void *group_day_nstr(worker_t *w, int64_t day, const fval_t *f)
{
  uint8_t *e = put_nstr(put_i64(key_room(w, 8 + nstr_room(f)), day), f);
  if (!e) {
    w->odd++;
    return NULL;
  }
  return group(w, e);
}

static void merge_count(worker_t *w, void *dst, void *src)
{
  *(uint64_t *)dst += *(uint64_t *)src;
}


/* An exact enough sum: int64 while it fits, then the rest as a double (R4). */
typedef struct sum {
  int64_t i;
  double d;
  bool any_d; /* a double input or an int64 overflow: the result is a double */
} sum_t;

static inline void sum_int(sum_t *s, int64_t v)
{
  int64_t r;
  if (__builtin_add_overflow(s->i, v, &r)) {
    s->d += (double)v;
    s->any_d = true;
  } else
    s->i = r;
}

static inline void sum_add(worker_t *w, sum_t *s, const fval_t *f)
{
  if (f->t == BSON_TYPE_INT32 || f->t == BSON_TYPE_INT64)
    sum_int(s, f->i);
  else if (f->t == BSON_TYPE_DOUBLE) {
    s->d += f->d;
    s->any_d = true;
  } else if (f->t != BSON_TYPE_EOD && f->t != BSON_TYPE_NULL)
    w->type_skips++;
}

static void sum_merge(sum_t *d, const sum_t *s)
{
  sum_int(d, s->i);
  d->d += s->d;
  d->any_d |= s->any_d;
}

static void add_u64(zql_strbuf_t *sb, uint64_t u, bool neg)
{
  char buf[24], *p = buf + sizeof buf;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (neg)
    *--p = '-';
  zql_strbuf_add(sb, p, (size_t)(buf + sizeof buf - p));
}

static void add_i64(zql_strbuf_t *sb, int64_t v)
{
  add_u64(sb, v < 0 ? -(uint64_t)v : (uint64_t)v, v < 0);
}

static void add_double(zql_strbuf_t *sb, double x)
{
  if (!isfinite(x)) {
    zql_strbuf_adds(sb, "null");
    return;
  }
  char buf[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, x);
    if (strtod(buf, NULL) == x)
      break;
  }
  zql_strbuf_adds(sb, buf);
}

static void sum_render(zql_strbuf_t *sb, const sum_t *s)
{
  if (s->any_d)
    add_double(sb, (double)s->i + s->d);
  else
    add_i64(sb, s->i);
}

static void render_count(zql_strbuf_t *sb, void *val)
{
  zql_strbuf_adds(sb, ",\"n\":");
  add_u64(sb, *(uint64_t *)val, false);
}

/* {==== 1 count_by_type, 2 pageviews_daily, 6 top_downloads, 8 one_project ====} */

static void add_count_by_type(worker_t *w, const zql_evlog_view_t *v, const fval_t *f)
{
  uint64_t *n = group_nstr(w, &f[F_TYPE]);
  if (n)
    (*n)++;
}

/* pageviews_daily and top_downloads: the type filter was applied by the scan. */
static void add_day_project(worker_t *w, const zql_evlog_view_t *v, const fval_t *f)
{
  uint64_t *n = group_day_nstr(w, floor_to(v->ts, DAY_MS), &f[F_PROJECT]);
  if (n)
    (*n)++;
}

static void add_one_project(worker_t *w, const zql_evlog_view_t *v, const fval_t *f)
{
  uint64_t *n = group(w, put_i64(key_room(w, 8), floor_to(v->ts, DAY_MS)));
  (*n)++;
}

/* {==== 3 users_exact: a hash set of user strings per project ====} */

static void add_user(table_t *set, const char *s, uint32_t len)
{
  table_get(set, s, len, hash_bytes(s, len));
}

static table_t *new_set(worker_t *w)
{
  table_t *set = xmalloc(sizeof *set);
  table_init(set, 0, w->arena, 16);
  return set;
}

static bool user_ok(worker_t *w, const fval_t *u)
{
  if (u->t == BSON_TYPE_UTF8)
    return true;
  if (u->t != BSON_TYPE_EOD && u->t != BSON_TYPE_NULL && u->t != BSON_TYPE_UNDEFINED)
    w->odd++;
  return false;
}

static void add_users_exact(worker_t *w, const zql_evlog_view_t *v, const fval_t *f)
{
  table_t **set = group_nstr(w, &f[F_PROJECT]);
  if (!set)
    return;
  if (!*set)
    *set = new_set(w);
  if (user_ok(w, &f[F_USER]))
    add_user(*set, f[F_USER].s, f[F_USER].len);
}

static void merge_users_exact(worker_t *w, void *dst, void *src)
{
  table_t **d = dst, *s = *(table_t **)src;
  if (!*d)
    *d = new_set(w);
  for (size_t i = 0; i < s->n; i++)
    table_get(*d, rec_key(s, s->recs[i]), s->recs[i]->klen, s->recs[i]->h);
}

static void render_users_exact(zql_strbuf_t *sb, void *val)
{
  zql_strbuf_adds(sb, ",\"users\":");
  add_u64(sb, (*(table_t **)val)->n, false);
}

static void destroy_set(void *val)
{
  table_t *s = *(table_t **)val;
  if (s) {
    table_release(s);
    zql_free(s);
  }
}

/* {==== 4 users_hll: HyperLogLog, p = 14 ====} */

static void add_users_hll(worker_t *w, const zql_evlog_view_t *v, const fval_t *f)
{
  uint8_t **regs = group_nstr(w, &f[F_PROJECT]);
  if (!regs)
    return;
  if (!*regs)
    *regs = xcalloc(HLL_M, 1);
  if (!user_ok(w, &f[F_USER]))
    return;
  uint64_t h = hash_bytes(f[F_USER].s, f[F_USER].len);
  uint64_t rest = h << HLL_P;
  uint8_t rank = rest ? (uint8_t)(__builtin_clzll(rest) + 1) : HLL_Q + 1;
  uint8_t *r = &(*regs)[h >> HLL_Q];
  if (rank > *r)
    *r = rank;
}

static void merge_users_hll(worker_t *w, void *dst, void *src)
{
  uint8_t **d = dst, *s = *(uint8_t **)src;
  if (!*d)
    *d = xcalloc(HLL_M, 1);
  for (unsigned i = 0; i < HLL_M; i++)
    if (s[i] > (*d)[i])
      (*d)[i] = s[i];
}

/* Ertl (2017), eq. (ii)-(iii): sigma and tau by their fixed-point series. */
static double hll_sigma(double x)
{
  if (x == 1.0)
    return INFINITY;
  double y = 1, z = x, zp;
  do {
    x *= x;
    zp = z;
    z += x * y;
    y += y;
  } while (z != zp);
  return z;
}

static double hll_tau(double x)
{
  if (x == 0.0 || x == 1.0)
    return 0;
  double y = 1, z = 1 - x, zp;
  do {
    x = sqrt(x);
    zp = z;
    y *= 0.5;
    z -= (1 - x) * (1 - x) * y;
  } while (z != zp);
  return z / 3;
}

static uint64_t hll_estimate(const uint8_t *regs)
{
  double c[HLL_Q + 2] = {0};
  for (unsigned i = 0; i < HLL_M; i++)
    c[regs[i]] += 1;
  const double m = HLL_M;
  double z = m * hll_tau(1 - c[HLL_Q + 1] / m);
  for (int k = HLL_Q; k >= 1; k--)
    z = 0.5 * (z + c[k]);
  z += m * hll_sigma(c[0] / m);
  const double alpha_inf = 0.72134752044448170368; /* 1 / (2 ln 2) */
  return (uint64_t)llround(alpha_inf * m * m / z);
}

static void render_users_hll(zql_strbuf_t *sb, void *val)
{
  zql_strbuf_adds(sb, ",\"users\":");
  add_u64(sb, hll_estimate(*(uint8_t **)val), false);
}

static void destroy_ptr(void *val)
{
  zql_free(*(void **)val);
}

/* {==== 5 latency: exact quantiles ====} */

typedef struct dvec {
  double *v;
  size_t n, cap;
} dvec_t;

static void dvec_push(dvec_t *d, double x)
{
  if (d->n == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 16;
    d->v = xrealloc(d->v, d->cap * sizeof *d->v);
  }
  d->v[d->n++] = x;
}

static void add_latency(worker_t *w, const zql_evlog_view_t *v, const fval_t *f)
{
  const fval_t *t = &f[F_TOOL];
  uint8_t *e = put_nstr(key_room(w, nstr_room(t) + 8), t);
  if (!e) {
    w->odd++;
    return;
  }
  dvec_t *d = group(w, put_i64(e, floor_to(v->ts, HOUR_MS)));
  const fval_t *ms = &f[F_MS];
  if (ms->t == BSON_TYPE_DOUBLE)
    dvec_push(d, ms->d);
  else if (ms->t == BSON_TYPE_INT32 || ms->t == BSON_TYPE_INT64)
    dvec_push(d, (double)ms->i);
  else if (ms->t != BSON_TYPE_EOD && ms->t != BSON_TYPE_NULL)
    w->type_skips++;
}

static void merge_latency(worker_t *w, void *dst, void *src)
{
  dvec_t *d = dst, *s = src;
  if (d->n + s->n > d->cap) {
    d->cap = d->n + s->n;
    d->v = xrealloc(d->v, d->cap * sizeof *d->v);
  }
  if (s->n)
    memcpy(d->v + d->n, s->v, s->n * sizeof *s->v);
  d->n += s->n;
}

/* The k-th smallest of a[0, n) (0-based); afterwards a[k] holds it, everything before is
 * <= and everything after >= (C. A. R. Hoare, "Algorithm 65: Find", CACM 1961), with a
 * median-of-three pivot. */
static double select_k(double *a, size_t n, size_t k)
{
  ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;
  while (hi > lo) {
    ptrdiff_t mid = lo + (hi - lo) / 2;
    double x = a[lo], y = a[mid], z = a[hi];
    double p = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
    ptrdiff_t i = lo, j = hi;
    while (i <= j) {
      while (a[i] < p)
        i++;
      while (a[j] > p)
        j--;
      if (i <= j) {
        double t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    }
    if (kk <= j)
      hi = j;
    else if (kk >= i)
      lo = i;
    else
      break; /* a[j+1 .. i-1] all equal the pivot */
  }
  return a[k];
}

/* Type 7: h = (n - 1) q, x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h]). */
static double quantile7(double *a, size_t n, double q)
{
  double h = (double)(n - 1) * q;
  size_t k = (size_t)h;
  double lo = select_k(a, n, k);
  if (k + 1 >= n || h == (double)k)
    return lo;
  double hi = a[k + 1];
  for (size_t i = k + 2; i < n; i++)
    if (a[i] < hi)
      hi = a[i];
  return lo + (h - (double)k) * (hi - lo);
}

static void render_latency(zql_strbuf_t *sb, void *val)
{
  dvec_t *d = val;
  static const char *const names[] = {"p50", "p95", "p99"};
  static const double qs[] = {0.5, 0.95, 0.99};
  for (int i = 0; i < 3; i++) {
    zql_strbuf_addf(sb, ",\"%s\":", names[i]);
    if (d->n == 0)
      zql_strbuf_adds(sb, "null");
    else
      add_double(sb, quantile7(d->v, d->n, qs[i]));
  }
}

static void destroy_dvec(void *val)
{
  zql_free(((dvec_t *)val)->v);
}

/* {==== 7 bytes_by_nbhd, 9 groups_1m ====} */

static void add_bytes_by_nbhd(worker_t *w, const zql_evlog_view_t *v, const fval_t *f)
{
  sum_t *s = group_nstr(w, &f[F_NBHD]);
  if (s)
    sum_add(w, s, &f[F_BYTES]);
}

static void merge_sum(worker_t *w, void *dst, void *src)
{
  sum_merge(dst, src);
}

static void render_bytes(zql_strbuf_t *sb, void *val)
{
  zql_strbuf_adds(sb, ",\"bytes\":");
  sum_render(sb, val);
}

typedef struct cnt_sum {
  uint64_t n;
  sum_t bytes;
} cnt_sum_t;

static void add_groups_1m(worker_t *w, const zql_evlog_view_t *v, const fval_t *f)
{
  int64_t g = v->seq % GROUPS_MOD;
  if (g < 0)
    g += GROUPS_MOD; /* _seq is positive; kept for the sign rule of % on negatives */
  cnt_sum_t *c = group(w, put_i64(key_room(w, 8), g));
  c->n++;
  sum_add(w, &c->bytes, &f[F_BYTES]);
}

static void merge_groups_1m(worker_t *w, void *dst, void *src)
{
  cnt_sum_t *d = dst, *s = src;
  d->n += s->n;
  sum_merge(&d->bytes, &s->bytes);
}

static void render_groups_1m(zql_strbuf_t *sb, void *val)
{
  cnt_sum_t *c = val;
  zql_strbuf_adds(sb, ",\"n\":");
  add_u64(sb, c->n, false);
  zql_strbuf_adds(sb, ",\"bytes\":");
  sum_render(sb, &c->bytes);
}

/* {==== the query table ====} */

static const query_t queries[] = {
    {"count_by_type", "from event group by type compute n = count()", BIT(F_TYPE), -1, NULL, "s",
     {"type", NULL}, sizeof(uint64_t), add_count_by_type, merge_count, render_count, NULL},
    {"pageviews_daily",
     "from event where type == \"pageview\" group by bucket(timestamp, day) as day, "
     "context.project as project compute n = count()",
     BIT(F_TYPE) | BIT(F_PROJECT), F_TYPE, "pageview", "ds", {"day", "project"},
     sizeof(uint64_t), add_day_project, merge_count, render_count, NULL},
    {"users_exact",
     "from event group by context.project as project compute users = "
     "distinct_count(context.user)",
     BIT(F_PROJECT) | BIT(F_USER), -1, NULL, "s", {"project", NULL}, sizeof(table_t *),
     add_users_exact, merge_users_exact, render_users_exact, destroy_set},
    {"users_hll",
     "from event group by context.project as project compute users = hll(context.user)",
     BIT(F_PROJECT) | BIT(F_USER), -1, NULL, "s", {"project", NULL}, sizeof(uint8_t *),
     add_users_hll,
     merge_users_hll, render_users_hll, destroy_ptr},
    {"latency",
     "from event group by context.tool as tool, bucket(timestamp, hour) as hour compute "
     "p50 = quantile(extra.ms, 0.5), p95 = quantile(extra.ms, 0.95), "
     "p99 = quantile(extra.ms, 0.99)",
     BIT(F_TOOL) | BIT(F_MS), -1, NULL, "sd", {"tool", "hour"}, sizeof(dvec_t), add_latency,
     merge_latency, render_latency, destroy_dvec},
    {"top_downloads",
     "from event where type == \"download\" group by bucket(timestamp, day) as day, "
     "context.project as project compute n = count() rank by n desc limit 10 within (day)",
     BIT(F_TYPE) | BIT(F_PROJECT), F_TYPE, "download", "ds", {"day", "project"},
     sizeof(uint64_t), add_day_project, merge_count, render_count, NULL},
    {"bytes_by_nbhd",
     "from event group by context.neighborhood as neighborhood compute bytes = "
     "sum(extra.bytes)",
     BIT(F_NBHD) | BIT(F_BYTES), -1, NULL, "s", {"neighborhood", NULL}, sizeof(sum_t),
     add_bytes_by_nbhd, merge_sum, render_bytes, NULL},
    {"one_project",
     "from event where context.project == \"NAME\" group by bucket(timestamp, day) as day "
     "compute n = count()",
     BIT(F_PROJECT), F_PROJECT, NULL, "d", {"day", NULL}, sizeof(uint64_t), add_one_project,
     merge_count, render_count, NULL},
    {"groups_1m",
     "from event group by _seq % 1000000 as g compute n = count(), bytes = sum(extra.bytes)",
     BIT(F_BYTES), -1, NULL, "i", {"g", NULL}, sizeof(cnt_sum_t), add_groups_1m, merge_groups_1m,
     render_groups_1m, NULL},
};

/* {==== the scan ====} */

static inline bool filter_ok(const worker_t *w, const fval_t *f)
{
  return f->t == BSON_TYPE_UTF8 && f->len == w->filter_len &&
         memcmp(f->s, w->filter_s, f->len) == 0;
}

/* Walk a sub-document for the fields of `want` among `names`: false when the filter
 * field was read and failed. */
static bool walk_sub(const worker_t *w, bson_iter_t *sub, unsigned want, const fname_t *names,
                     size_t nnames, fval_t *f)
{
  while (want && bson_iter_next(sub)) {
    const char *k = bson_iter_key(sub);
    uint32_t kl = bson_iter_key_len(sub);
    for (size_t j = 0; j < nnames; j++) {
      const fname_t *fn = &names[j];
      if ((want & BIT(fn->f)) && kl == fn->len && memcmp(k, fn->name, kl) == 0) {
        read_val(sub, &f[fn->f]);
        want &= ~BIT(fn->f);
        if ((int)fn->f == w->q->filter && !filter_ok(w, &f[fn->f]))
          return false;
        break;
      }
    }
  }
  return true;
}

/* Read the query's fields of one event: false when the event is filtered out or is not
 * a BSON document. */
static bool extract(worker_t *w, const zql_evlog_view_t *v, fval_t *f)
{
  unsigned left = w->q->want;
  for (unsigned b = left; b; b &= b - 1)
    f[__builtin_ctz(b)].t = BSON_TYPE_EOD;
  bson_iter_t it, sub;
  if (!bson_iter_init_from_data(&it, v->doc, v->len)) {
    w->bad++;
    return false;
  }
  while (left && bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    uint32_t kl = bson_iter_key_len(&it);
    if (kl == 4 && (left & BIT(F_TYPE)) && memcmp(k, "type", 4) == 0) {
      read_val(&it, &f[F_TYPE]);
      left &= ~BIT(F_TYPE);
      if (w->q->filter == F_TYPE && !filter_ok(w, &f[F_TYPE]))
        return false;
    } else if (kl == 7 && (left & CTX_BITS) && memcmp(k, "context", 7) == 0) {
      if (BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub) &&
          !walk_sub(w, &sub, left & CTX_BITS, ctx_names, ZQL_ARRAY_LEN(ctx_names), f))
        return false;
      left &= ~CTX_BITS;
    } else if (kl == 5 && (left & EXTRA_BITS) && memcmp(k, "extra", 5) == 0) {
      if (BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub) &&
          !walk_sub(w, &sub, left & EXTRA_BITS, extra_names, ZQL_ARRAY_LEN(extra_names), f))
        return false;
      left &= ~EXTRA_BITS;
    }
  }
  /* A filter field that is missing never equals a string. */
  return w->q->filter < 0 || filter_ok(w, &f[w->q->filter]);
}

static void fail(worker_t *w, const char *what, const zql_strbuf_t *err)
{
  snprintf(w->msg, sizeof w->msg, "%s: %s", what, err->buf);
  w->failed = true;
}

static void *worker_main(void *arg)
{
  worker_t *w = arg;
  double t0 = now_s();
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_evlog_reader_t *r = NULL;
  zql_evlog_cursor_t *c = NULL;
  zql_evlog_range_t range;
  zql_evlog_range_all(&range);
  range.seq_lo = w->lo;
  range.seq_hi = w->hi;
  if (zql_evlog_reader_open(w->dir, &r, &err) < 0) {
    fail(w, "zql_evlog_reader_open", &err);
    goto out;
  }
  if (zql_evlog_cursor_open(r, &range, &c, &err) < 0) {
    fail(w, "zql_evlog_cursor_open", &err);
    goto out;
  }
  zql_evlog_view_t views[VIEWS];
  fval_t f[F__COUNT];
  int n;
  while ((n = zql_evlog_cursor_next(c, views, VIEWS, &err)) > 0) {
    for (int i = 0; i < n; i++)
      if (extract(w, &views[i], f))
        w->q->add(w, &views[i], f);
    w->events += (uint64_t)n;
  }
  if (n < 0)
    fail(w, "zql_evlog_cursor_next", &err);
out:
  zql_evlog_cursor_close(c);
  zql_evlog_reader_close(r);
  zql_strbuf_release(&err);
  w->secs = now_s() - t0;
  return NULL;
}

/* {==== results ====} */

typedef struct comp {
  bool str;  /* a string component ('s'), else an int64 ('d', 'i') */
  bool null; /* str: the null key */
  int64_t i;
  const char *s;
  uint32_t len;
} comp_t;

typedef struct row {
  rec_t *rec;
  comp_t c[2];
  uint64_t n; /* top_downloads: the count ranked by */
} row_t;

static void decode_key(const char *layout, const uint8_t *k, comp_t *c)
{
  for (size_t j = 0; layout[j]; j++, c++) {
    memset(c, 0, sizeof *c);
    if (layout[j] == 's') {
      c->str = true;
      c->null = *k++ == 0;
      if (!c->null) {
        memcpy(&c->len, k, 4);
        c->s = (const char *)k + 4;
        k += 4 + c->len;
      }
    } else {
      memcpy(&c->i, k, 8);
      k += 8;
    }
  }
}

static int cmp_comp(const comp_t *a, const comp_t *b)
{
  if (!a->str)
    return (a->i > b->i) - (a->i < b->i);
  if (a->null || b->null)
    return (int)b->null - (int)a->null;
  uint32_t m = a->len < b->len ? a->len : b->len;
  int d = memcmp(a->s, b->s, m);
  if (d)
    return d;
  return (a->len > b->len) - (a->len < b->len);
}

static int cmp_rows(const void *x, const void *y)
{
  const row_t *a = x, *b = y;
  int d = cmp_comp(&a->c[0], &b->c[0]);
  return d ? d : cmp_comp(&a->c[1], &b->c[1]);
}

/* top_downloads: day, then n descending, then project (R7 tie order). */
static int cmp_ranked(const void *x, const void *y)
{
  const row_t *a = x, *b = y;
  int d = cmp_comp(&a->c[0], &b->c[0]);
  if (d)
    return d;
  if (a->n != b->n)
    return a->n > b->n ? -1 : 1;
  return cmp_comp(&a->c[1], &b->c[1]);
}

static void add_json_str(zql_strbuf_t *sb, const char *s, size_t n)
{
  zql_strbuf_addc(sb, '"');
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch >= 0x20 && ch != '"' && ch != '\\')
      continue;
    zql_strbuf_add(sb, s + run, i - run);
    run = i + 1;
    if (ch == '"' || ch == '\\') {
      zql_strbuf_addc(sb, '\\');
      zql_strbuf_addc(sb, (char)ch);
    } else if (ch == '\n')
      zql_strbuf_adds(sb, "\\n");
    else if (ch == '\t')
      zql_strbuf_adds(sb, "\\t");
    else if (ch == '\r')
      zql_strbuf_adds(sb, "\\r");
    else
      zql_strbuf_addf(sb, "\\u%04x", ch);
  }
  zql_strbuf_add(sb, s + run, n - run);
  zql_strbuf_addc(sb, '"');
}

static void add_date(zql_strbuf_t *sb, int64_t ms)
{
  int64_t secs = floor_to(ms, 1000) / 1000;
  struct tm tm;
  time_t t = (time_t)secs;
  if (!gmtime_r(&t, &tm)) {
    zql_strbuf_addf(sb, "%" PRId64, ms);
    return;
  }
  zql_strbuf_addf(sb, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  (int)(ms - secs * 1000));
}

static void render_row(zql_strbuf_t *sb, const query_t *q, row_t *row)
{
  zql_strbuf_addc(sb, '{');
  for (size_t j = 0; q->layout[j]; j++) {
    const comp_t *c = &row->c[j];
    if (j)
      zql_strbuf_addc(sb, ',');
    zql_strbuf_addc(sb, '"');
    zql_strbuf_adds(sb, q->knames[j]);
    zql_strbuf_adds(sb, "\":");
    if (q->layout[j] == 's') {
      if (c->null)
        zql_strbuf_adds(sb, "null");
      else
        add_json_str(sb, c->s, c->len);
    } else if (q->layout[j] == 'd')
      add_date(sb, c->i);
    else
      add_i64(sb, c->i);
  }
  q->render(sb, rec_val(row->rec));
  zql_strbuf_adds(sb, "}\n");
}

/* Render the result rows: sorted by key into `sb` (print), or else each row into a
 * scratch buffer whose XXH3 is added to *sum, a checksum independent of the row order
 * that needs no sort. top_downloads always sorts: ranking is part of the query. Returns
 * the number of rows. */
static size_t render_all(const query_t *q, table_t *t, bool print, zql_strbuf_t *sb,
                         uint64_t *sum)
{
  row_t *rows = xcalloc(t->n, sizeof *rows);
  for (size_t i = 0; i < t->n; i++) {
    rows[i].rec = t->recs[i];
    decode_key(q->layout, rec_key(t, t->recs[i]), rows[i].c);
    rows[i].n = *(uint64_t *)rec_val(t->recs[i]); /* meaningful for counts only */
  }
  bool ranked = strcmp(q->name, "top_downloads") == 0;
  if (ranked || print)
    qsort(rows, t->n, sizeof *rows, ranked ? cmp_ranked : cmp_rows);
  zql_strbuf_t one = ZQL_STRBUF_INIT;
  size_t out = 0, in_day = 0;
  for (size_t i = 0; i < t->n; i++) {
    if (ranked) {
      in_day = i > 0 && rows[i].c[0].i == rows[i - 1].c[0].i ? in_day + 1 : 0;
      if (in_day >= TOP_N)
        continue;
    }
    if (print)
      render_row(sb, q, &rows[i]);
    else {
      zql_strbuf_reset(&one);
      render_row(&one, q, &rows[i]);
      *sum += XXH3_64bits(one.buf, one.len);
    }
    out++;
  }
  zql_free(rows);
  if (sb->oom || one.oom)
    die("out of memory (results)");
  zql_strbuf_release(&one);
  return out;
}

static void free_table(const query_t *q, table_t *t)
{
  if (q->destroy)
    for (size_t i = 0; i < t->n; i++)
      q->destroy(rec_val(t->recs[i]));
  table_release(t);
}

/* {==== main ====} */

static void usage(FILE *f)
{
  fputs("usage: handwritten --data DIR --query NAME [--threads T] [--project NAME] [--print]\n"
        "  --data DIR       the data directory (its events/ log is read)\n"
        "  --query NAME     one of the queries below\n"
        "  --threads T      scan threads (default 1): the log is split into T chunks\n"
        "  --project NAME   one_project: the project whose events are counted\n"
        "  --print          print the result rows as ndjson, sorted by key (default: one\n"
        "                   line with the row count and a checksum of those rows)\n"
        "queries:\n",
        f);
  for (size_t i = 0; i < ZQL_ARRAY_LEN(queries); i++)
    fprintf(f, "  %-16s %s\n", queries[i].name, queries[i].zql);
}

ZQL_NORETURN static void usage_error(const char *fmt, ...) ZQL_PRINTF(1, 2);
static void usage_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("handwritten: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  usage(stderr);
  exit(2);
}

int main(int argc, char **argv)
{
  const char *dir = NULL, *qname = NULL, *project = NULL;
  unsigned threads = 1;
  bool print = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--print") == 0)
      print = true;
    else if (!v && (strcmp(a, "--data") == 0 || strcmp(a, "--query") == 0 ||
                    strcmp(a, "--threads") == 0 || strcmp(a, "--project") == 0))
      usage_error("%s needs a value", a);
    else if (strcmp(a, "--data") == 0)
      dir = v, i++;
    else if (strcmp(a, "--query") == 0)
      qname = v, i++;
    else if (strcmp(a, "--project") == 0)
      project = v, i++;
    else if (strcmp(a, "--threads") == 0) {
      char *end;
      errno = 0;
      unsigned long t = strtoul(v, &end, 10);
      if (errno || *end || v[0] == '-' || t < 1 || t > MAX_THREADS)
        usage_error("--threads needs an integer from 1 to %d", MAX_THREADS);
      threads = (unsigned)t, i++;
    } else
      usage_error("unknown argument '%s'", a);
  }
  if (!dir || !qname)
    usage_error("--data and --query are required");
  const query_t *q = NULL;
  for (size_t i = 0; i < ZQL_ARRAY_LEN(queries); i++)
    if (strcmp(queries[i].name, qname) == 0)
      q = &queries[i];
  if (!q)
    usage_error("unknown query '%s'", qname);
  if (q->filter >= 0 && !q->filter_eq && !project)
    usage_error("%s needs --project NAME", q->name);

  /* The snapshot's range, split into chunks of equal bytes. */
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_evlog_reader_t *r;
  if (zql_evlog_reader_open(dir, &r, &err) < 0)
    die("%s", err.buf);
  int64_t lo = zql_evlog_reader_first_seq(r) - 1, hi = zql_evlog_reader_last_seq(r);
  int64_t bounds[MAX_THREADS + 1];
  int k = zql_evlog_split(r, lo, hi, threads, bounds, &err);
  zql_evlog_reader_close(r);
  if (k < 0)
    die("zql_evlog_split: %s", err.buf);

  double t0 = now_s();
  size_t nw = k > 0 ? (size_t)k : 1;
  worker_t *ws = xcalloc(nw, sizeof *ws);
  pthread_t *th = xcalloc(nw, sizeof *th);
  for (size_t i = 0; i < nw; i++) {
    worker_t *w = &ws[i];
    w->q = q;
    w->dir = dir;
    w->lo = k > 0 ? bounds[i] : lo;
    w->hi = k > 0 ? bounds[i + 1] : lo; /* an empty log: one empty chunk */
    if (q->filter >= 0) {
      w->filter_s = q->filter_eq ? q->filter_eq : project;
      w->filter_len = (uint32_t)strlen(w->filter_s);
    }
    if (!(w->arena = zql_arena_create(NULL)))
      die("out of memory (arena)");
    table_init(&w->tab, q->vsize, w->arena, 64);
    if (pthread_create(&th[i], NULL, worker_main, w) != 0)
      die("pthread_create failed");
  }
  uint64_t events = 0, bad = 0, odd = 0, skips = 0;
  for (size_t i = 0; i < nw; i++) {
    pthread_join(th[i], NULL);
    if (ws[i].failed)
      die("%s", ws[i].msg);
    events += ws[i].events;
    bad += ws[i].bad;
    odd += ws[i].odd;
    skips += ws[i].type_skips;
  }
  double t1 = now_s();
  if (events != (uint64_t)(hi - lo))
    die("the scan saw %" PRIu64 " events, the snapshot holds %" PRId64, events, hi - lo);

  /* Merge into the first thread's table (its arena gets the new records). */
  table_t *t = &ws[0].tab;
  size_t total = 0;
  for (size_t i = 0; i < nw; i++)
    total += ws[i].tab.n;
  table_reserve(t, total);
  for (size_t i = 1; i < nw; i++) {
    table_t *s = &ws[i].tab;
    for (size_t j = 0; j < s->n; j++) {
      rec_t *sr = s->recs[j];
      q->merge(&ws[0], table_get(t, rec_key(s, sr), sr->klen, sr->h), rec_val(sr));
    }
    free_table(q, s);
    zql_arena_delete(ws[i].arena);
  }
  zql_strbuf_t out = ZQL_STRBUF_INIT;
  uint64_t sum = 0;
  size_t rows = render_all(q, t, print, &out, &sum);
  double t2 = now_s();
  if (print)
    fwrite(out.buf, 1, out.len, stdout);
  else
    printf("%s: %" PRIu64 " events, %zu rows, checksum %016" PRIx64
           ", threads %zu, scan %.3f s, merge and output %.3f s\n",
           q->name, events, rows, sum, nw, t1 - t0,
           t2 - t1);
  if (bad || odd || skips)
    fprintf(stderr,
            "handwritten: %s: %" PRIu64 " documents not BSON, %" PRIu64
            " events dropped for a key or user of an unexpected type, %" PRIu64
            " non-numeric inputs skipped\n",
            q->name, bad, odd, skips);
  if (fflush(stdout) != 0 || ferror(stdout))
    die("writing the output: %s", strerror(errno));
  zql_strbuf_release(&out);
  free_table(q, t);
  zql_arena_delete(ws[0].arena);
  for (size_t i = 0; i < nw; i++)
    zql_free(ws[i].kbuf);
  zql_free(ws);
  zql_free(th);
  zql_strbuf_release(&err);
  return 0;
}
