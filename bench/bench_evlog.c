/*
 * bench_evlog.c -- the event log benchmark: append throughput under each fsync policy
 * against the disk's own limit, and scan throughput against a plain libbson walk, all
 * measured in one run on one filesystem (`make bench` builds and runs it; issue 3,
 * "Performance"). Figures are printed, never asserted: tests/cli/t0020-bench-smoke.sh
 * only checks that a --quick run prints its tables.
 *
 *   bench/bench_evlog [--events N] [--small N] [--appenders T] [--seconds S]
 *                     [--repeat R] [--dir DIR] [--keep] [--quick]
 *
 * Everything happens in a fresh directory DIR/bench-evlog.XXXXXX (DIR defaults to the
 * current directory: put it on the filesystem of the data directory you care about),
 * removed at the end unless --keep.
 *
 * The events. N events (default 1,000,000) come from zql_gen (seed 1, the defaults of
 * `zql gen`) and are copied into one buffer before anything is timed, so generation is
 * never measured. Each document sits behind a gap as large as the frame overhead the log
 * adds to it (the 24-byte frame header, and the 13-byte `_id: <int64>` element the
 * writer prepends to a document without `_id`): the disk-limit writers write exactly
 * these "records", so both sides move the same number of bytes per event.
 *
 * (a) The disk's limit, per policy and chunk size k (records per write), into a new file:
 *   always   write(k records) + fdatasync, in a loop: what one durable append per
 *            write can reach;
 *   batch    a writer thread writes k records per write() continuously while a second
 *            thread calls fdatasync every 10 ms (the next one starts 10 ms after the
 *            previous one started, as the log's group commit does), plus a final one;
 *   none     writes with an fdatasync every 64 MiB (the log syncs when it seals a
 *            segment, whatever the policy), and raw writes with no sync at all.
 * (b) zql_evlog_append with the same documents, batches of k per call, from one or T
 *     appender threads (batch policy: an append returns after the fdatasync that covers
 *     it, so one appender with small batches is bound by the 10 ms interval; concurrent
 *     appenders share each fdatasync, which is what an ingest server does). Time runs
 *     from the first append to the return of the last; close (the final sync of `none`)
 *     is not timed. Each row stops after its events or after --seconds, whichever comes
 *     first; the events/s of a stopped row are still a rate. The limit and log rows of a
 *     policy and k run in R interleaved rounds (--repeat, default 3) and each row keeps
 *     its best round (a row that ran into the time cap runs once). Ratio: events/s of the
 *     log over events/s of the limit row with the same policy and k.
 * (c) Scan: a log of the N events (policy none, batches of 1000) and a .bson file of the
 *     same documents (as stored: with their `_id`) written with zql_iowriter. Each walk
 *     touches every document the same way (bson_init_static, iterate the top-level keys,
 *     fold types and key lengths into a checksum, which must agree between walks):
 *       evlog       reader_open + a cursor over the whole _seq range, 256 views per call,
 *                   CRC-checked (sealed segments) and zero-copy;
 *       bson_reader bson_reader_new_from_file: libbson's own buffered read() walk;
 *       bson mmap   bson_reader_new_from_data over an mmap of the file: zero-copy, no CRC.
 *     Every walk runs once to warm the page cache, then R times (default 3); the best
 *     time counts. MB/s are document bytes per second. The target compares evlog with
 *     the faster of the two plain walks.
 *
 * MB is 10^6 bytes. Exit status: 0, or 1 when something failed (the message says what).
 */
#include "runtime/base/zql_common.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "runtime/base/strbuf.h"
#include "runtime/evlog.h"
#include "runtime/gen.h"
#include "runtime/ioformat.h"

#define FRAME_HDR 24u     /* u32 len, u32 crc, i64 seq, i64 ts (docs/formats.md) */
#define ID_ELEM 13u       /* type byte, "_id\0", int64 */
#define SYNC_INTERVAL_NS 10000000L
#define SEGMENT_BYTES (64ull * 1024 * 1024)
#define SCAN_VIEWS 256

/* {==== options, clock, helpers ====} */

typedef struct opts {
  uint64_t events;    /* N */
  uint64_t small;     /* events of the rows with 1 event per durable append */
  unsigned appenders; /* T */
  double seconds;     /* cap of one row */
  unsigned repeat;    /* scan repetitions */
  const char *dir;
  bool keep, quick;
} opts_t;

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, ...) ZQL_PRINTF(1, 2);
static void die(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("bench_evlog: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static void rm_tree(const char *path)
{
  if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
    fprintf(stderr, "bench_evlog: cannot remove %s: %s\n", path, strerror(errno));
}

static void join_path(char *buf, size_t n, const char *dir, const char *name)
{
  if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n)
    die("path too long: %s/%s", dir, name);
}

/* {==== the corpus: pre-generated events ====} */

typedef struct corpus {
  uint8_t *buf;          /* records: [overhead gap][document] each */
  size_t *off;           /* record i is buf[off[i], off[i+1]) */
  bson_t *docs;          /* static views of the documents inside buf */
  const bson_t **ptrs;   /* &docs[i], what zql_evlog_append takes */
  size_t n;
  uint64_t doc_bytes;    /* documents as generated */
} corpus_t;

static void corpus_build(corpus_t *c, uint64_t n)
{
  zql_gen_opts_t go;
  zql_gen_opts_init(&go);
  go.events = n;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_gen_t *g;
  if (zql_gen_new(&go, &g, &err) < 0)
    die("zql_gen_new: %s", err.buf);
  size_t cap = (size_t)n * 400 + 4096, len = 0;
  memset(c, 0, sizeof *c);
  c->buf = malloc(cap);
  c->off = malloc((n + 1) * sizeof *c->off);
  c->docs = malloc(n * sizeof *c->docs);
  c->ptrs = malloc(n * sizeof *c->ptrs);
  if (!c->buf || !c->off || !c->docs || !c->ptrs)
    die("out of memory for %" PRIu64 " events", n);
  const bson_t *d;
  size_t *doc_at = malloc(n * sizeof *doc_at);
  if (!doc_at)
    die("out of memory");
  while (c->n < n && zql_gen_next(g, &d) == 1) {
    size_t gap = FRAME_HDR + (bson_has_field(d, "_id") ? 0 : ID_ELEM);
    if (len + gap + d->len > cap) {
      cap = cap * 2 + gap + d->len;
      if (!(c->buf = realloc(c->buf, cap)))
        die("out of memory");
    }
    c->off[c->n] = len;
    memset(c->buf + len, 0xa5, gap);
    memcpy(c->buf + len + gap, bson_get_data(d), d->len);
    doc_at[c->n] = len + gap;
    len += gap + d->len;
    c->doc_bytes += d->len;
    c->n++;
  }
  c->off[c->n] = len;
  for (size_t i = 0; i < c->n; i++) {
    if (!bson_init_static(&c->docs[i], c->buf + doc_at[i], c->off[i + 1] - doc_at[i]))
      die("generated document %zu is not BSON", i);
    c->ptrs[i] = &c->docs[i];
  }
  free(doc_at);
  zql_gen_free(g);
  zql_strbuf_release(&err);
}

static void corpus_free(corpus_t *c)
{
  free(c->buf);
  free(c->off);
  free(c->docs);
  free(c->ptrs);
}

static uint64_t rec_bytes(const corpus_t *c, size_t i, size_t m)
{
  return c->off[i + m] - c->off[i];
}

/* {==== results table ====} */

typedef struct row {
  const char *policy;
  size_t k;
  unsigned threads;
  const char *what;
  uint64_t events, bytes;
  double secs;
} row_t;

static double row_eps(const row_t *r)
{
  return r->secs > 0 ? (double)r->events / r->secs : 0;
}

/* Keep the faster of two runs of a row (the first run fills an empty row). */
static void best_row(row_t *best, row_t r)
{
  if (!best->what || row_eps(&r) > row_eps(best))
    *best = r;
}

static void print_row_head(void)
{
  printf("%-7s %6s %4s  %-36s %9s %8s %12s %9s %9s\n", "policy", "batch", "thr", "what",
         "events", "seconds", "events/s", "MB/s", "vs limit");
}

static void print_row(const row_t *r, const row_t *limit)
{
  char ratio[32] = "";
  if (limit && row_eps(limit) > 0)
    snprintf(ratio, sizeof ratio, "%.1f%%", 100.0 * row_eps(r) / row_eps(limit));
  printf("%-7s %6zu %4u  %-36s %9" PRIu64 " %8.3f %12.0f %9.1f %9s\n", r->policy, r->k,
         r->threads, r->what, r->events, r->secs, row_eps(r),
         r->secs > 0 ? (double)r->bytes / r->secs / 1e6 : 0.0, ratio);
  fflush(stdout);
}

/* {==== (a) the disk's limit ====} */

typedef enum limit_mode {
  LIM_EACH,     /* always: fdatasync after every write */
  LIM_INTERVAL, /* batch: fdatasync every 10 ms from a second thread */
  LIM_SEGMENT,  /* none: fdatasync every 64 MiB */
  LIM_RAW       /* no sync */
} limit_mode_t;

typedef struct syncer {
  int fd;
  atomic_bool stop;
  int err;
} syncer_t;

static void *syncer_main(void *arg)
{
  syncer_t *s = arg;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  while (!atomic_load(&s->stop)) {
    next.tv_nsec += SYNC_INTERVAL_NS;
    if (next.tv_nsec >= 1000000000L) {
      next.tv_sec++;
      next.tv_nsec -= 1000000000L;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
      next = now; /* the last fdatasync took longer than the interval: start at once */
    else
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    if (fdatasync(s->fd) < 0)
      s->err = errno;
  }
  return NULL;
}

static void write_chunk(int fd, const uint8_t *p, size_t n, const char *path)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      die("write %s: %s", path, strerror(errno));
    p += w;
    n -= (size_t)w;
  }
}

static row_t run_limit(const char *tmp, const corpus_t *c, limit_mode_t mode, size_t k,
                       size_t nrec, double cap)
{
  static const char *const what[] = {"limit: write+fdatasync per write",
                                     "limit: write, fdatasync every 10 ms",
                                     "limit: write, fdatasync per 64 MiB",
                                     "limit: raw write, no sync"};
  static const char *const pol[] = {"always", "batch", "none", "none"};
  row_t r = {pol[mode], k, mode == LIM_INTERVAL ? 2 : 1, what[mode], 0, 0, 0};
  char path[4096];
  join_path(path, sizeof path, tmp, "limit.dat");
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    die("open %s: %s", path, strerror(errno));
  syncer_t s = {fd, false, 0};
  pthread_t th;
  double t0 = now_s(), deadline = t0 + cap;
  if (mode == LIM_INTERVAL && pthread_create(&th, NULL, syncer_main, &s) != 0)
    die("pthread_create failed");
  uint64_t since_sync = 0;
  size_t i = 0;
  while (i < nrec) {
    size_t m = nrec - i < k ? nrec - i : k;
    uint64_t b = rec_bytes(c, i, m);
    write_chunk(fd, c->buf + c->off[i], b, path);
    r.bytes += b;
    i += m;
    if (mode == LIM_EACH && fdatasync(fd) < 0)
      die("fdatasync %s: %s", path, strerror(errno));
    if (mode == LIM_SEGMENT && (since_sync += b) >= SEGMENT_BYTES) {
      if (fdatasync(fd) < 0)
        die("fdatasync %s: %s", path, strerror(errno));
      since_sync = 0;
    }
    if ((i / k) % 16 == 0 && now_s() > deadline)
      break;
  }
  if (mode == LIM_INTERVAL) {
    atomic_store(&s.stop, true);
    pthread_join(th, NULL);
    if (s.err)
      die("fdatasync %s: %s", path, strerror(s.err));
    if (fdatasync(fd) < 0) /* the last records are durable too */
      die("fdatasync %s: %s", path, strerror(errno));
  }
  r.secs = now_s() - t0;
  r.events = i;
  close(fd);
  unlink(path);
  return r;
}

/* {==== (b) zql_evlog_append ====} */

typedef struct append_job {
  zql_evlog_t *w;
  const corpus_t *c;
  size_t k, nrec;
  double deadline;
  atomic_size_t next_chunk;
  atomic_uint_fast64_t events, bytes;
  atomic_bool failed;
  char msg[512];
} append_job_t;

static void *appender_main(void *arg)
{
  append_job_t *j = arg;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  uint64_t ev = 0, by = 0;
  for (;;) {
    size_t i = atomic_fetch_add(&j->next_chunk, 1) * j->k;
    if (i >= j->nrec || atomic_load(&j->failed) || now_s() > j->deadline)
      break;
    size_t m = j->nrec - i < j->k ? j->nrec - i : j->k;
    if (zql_evlog_append(j->w, j->c->ptrs + i, m, NULL, &err) < 0) {
      if (!atomic_exchange(&j->failed, true))
        snprintf(j->msg, sizeof j->msg, "%s", err.buf);
      break;
    }
    ev += m;
    by += rec_bytes(j->c, i, m);
  }
  atomic_fetch_add(&j->events, ev);
  atomic_fetch_add(&j->bytes, by);
  zql_strbuf_release(&err);
  return NULL;
}

static row_t run_append(const char *tmp, const corpus_t *c, zql_evlog_sync_t sync,
                        const char *policy, size_t k, unsigned threads, size_t nrec, double cap)
{
  row_t r = {policy, k, threads, "zql_evlog_append", 0, 0, 0};
  char dir[4096];
  join_path(dir, sizeof dir, tmp, "log-append");
  rm_tree(dir);
  zql_evlog_opts_t o;
  zql_evlog_opts_init(&o);
  o.sync = sync;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_evlog_t *w;
  if (zql_evlog_open(dir, &o, &w, &err) < 0)
    die("zql_evlog_open: %s", err.buf);
  append_job_t *j = calloc(1, sizeof *j);
  pthread_t *th = calloc(threads, sizeof *th);
  if (!j || !th)
    die("out of memory");
  j->w = w, j->c = c, j->k = k, j->nrec = nrec;
  double t0 = now_s();
  j->deadline = t0 + cap;
  for (unsigned t = 0; t < threads; t++)
    if (pthread_create(&th[t], NULL, appender_main, j) != 0)
      die("pthread_create failed");
  for (unsigned t = 0; t < threads; t++)
    pthread_join(th[t], NULL);
  r.secs = now_s() - t0;
  if (atomic_load(&j->failed))
    die("zql_evlog_append: %s", j->msg);
  r.events = atomic_load(&j->events);
  r.bytes = atomic_load(&j->bytes);
  if ((uint64_t)zql_evlog_last_seq(w) != r.events)
    die("the log holds %" PRId64 " events, %" PRIu64 " were appended", zql_evlog_last_seq(w),
        r.events);
  if (zql_evlog_close(w, &err) < 0)
    die("zql_evlog_close: %s", err.buf);
  free(th);
  free(j);
  zql_strbuf_release(&err);
  rm_tree(dir);
  return r;
}

/* {==== (c) scans ====} */

/* The per-document work every walk does. */
static inline uint64_t touch(const uint8_t *data, uint32_t len)
{
  bson_t b;
  bson_iter_t it;
  uint64_t h = len;
  if (!bson_init_static(&b, data, len) || !bson_iter_init(&it, &b))
    return 0;
  while (bson_iter_next(&it))
    h = h * 31 + (uint64_t)bson_iter_type(&it) * 7 + bson_iter_key_len(&it);
  return h;
}

typedef struct scan_res {
  uint64_t docs, bytes, sum;
  double secs;
} scan_res_t;

static scan_res_t walk_evlog(const char *dir)
{
  scan_res_t s = {0, 0, 0, 0};
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_evlog_view_t views[SCAN_VIEWS];
  double t0 = now_s();
  zql_evlog_reader_t *r;
  zql_evlog_cursor_t *cur;
  zql_evlog_range_t range;
  zql_evlog_range_all(&range);
  if (zql_evlog_reader_open(dir, &r, &err) < 0 || zql_evlog_cursor_open(r, &range, &cur, &err) < 0)
    die("evlog reader: %s", err.buf);
  int n;
  while ((n = zql_evlog_cursor_next(cur, views, SCAN_VIEWS, &err)) > 0) {
    for (int i = 0; i < n; i++) {
      s.sum += touch(views[i].doc, views[i].len);
      s.bytes += views[i].len;
    }
    s.docs += (uint64_t)n;
  }
  if (n < 0)
    die("evlog cursor: %s", err.buf);
  zql_evlog_cursor_close(cur);
  zql_evlog_reader_close(r);
  s.secs = now_s() - t0;
  zql_strbuf_release(&err);
  return s;
}

static scan_res_t walk_reader(bson_reader_t *rd)
{
  scan_res_t s = {0, 0, 0, 0};
  const bson_t *d;
  bool eof = false;
  while ((d = bson_reader_read(rd, &eof))) {
    s.sum += touch(bson_get_data(d), d->len);
    s.bytes += d->len;
    s.docs++;
  }
  if (!eof)
    die("bson_reader: a document is invalid or truncated");
  return s;
}

static scan_res_t walk_bson_file(const char *path)
{
  double t0 = now_s();
  bson_error_t e;
  bson_reader_t *rd = bson_reader_new_from_file(path, &e);
  if (!rd)
    die("bson_reader_new_from_file %s: %s", path, e.message);
  scan_res_t s = walk_reader(rd);
  bson_reader_destroy(rd);
  s.secs = now_s() - t0;
  return s;
}

static scan_res_t walk_bson_mmap(const char *path)
{
  double t0 = now_s();
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0)
    die("open %s: %s", path, strerror(errno));
  void *m = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0) : NULL;
  if (m == MAP_FAILED)
    die("mmap %s: %s", path, strerror(errno));
  bson_reader_t *rd = bson_reader_new_from_data(m, (size_t)st.st_size);
  scan_res_t s = walk_reader(rd);
  bson_reader_destroy(rd);
  if (m)
    munmap(m, (size_t)st.st_size);
  close(fd);
  s.secs = now_s() - t0;
  return s;
}

typedef scan_res_t (*walk_fn)(const char *);

/* Warm up once, then the best of `repeat` runs. */
static scan_res_t best_of(walk_fn fn, const char *path, unsigned repeat)
{
  scan_res_t best = fn(path);
  for (unsigned i = 0; i < repeat; i++) {
    scan_res_t s = fn(path);
    if (i == 0 || s.secs < best.secs)
      best = s;
  }
  return best;
}

static void build_scan_inputs(const char *dir, const char *bson_path, const corpus_t *c)
{
  zql_evlog_opts_t o;
  zql_evlog_opts_init(&o);
  o.sync = ZQL_EVLOG_SYNC_NONE;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  zql_evlog_t *w;
  if (zql_evlog_open(dir, &o, &w, &err) < 0)
    die("zql_evlog_open: %s", err.buf);
  for (size_t i = 0; i < c->n; i += 1000) {
    size_t m = c->n - i < 1000 ? c->n - i : 1000;
    if (zql_evlog_append(w, c->ptrs + i, m, NULL, &err) < 0)
      die("zql_evlog_append: %s", err.buf);
  }
  if (zql_evlog_close(w, &err) < 0)
    die("zql_evlog_close: %s", err.buf);
  /* The .bson file: the documents exactly as the log stores them. */
  zql_iowriter_opts_t wo = {ZQL_IOFMT_BSON, false, 0};
  zql_iowriter_t *iw;
  if (zql_iowriter_open(bson_path, &wo, &iw, &err) < 0)
    die("zql_iowriter_open: %s", err.buf);
  zql_evlog_reader_t *r;
  zql_evlog_cursor_t *cur;
  zql_evlog_range_t range;
  zql_evlog_range_all(&range);
  if (zql_evlog_reader_open(dir, &r, &err) < 0 || zql_evlog_cursor_open(r, &range, &cur, &err) < 0)
    die("evlog reader: %s", err.buf);
  zql_evlog_view_t views[SCAN_VIEWS];
  int n;
  while ((n = zql_evlog_cursor_next(cur, views, SCAN_VIEWS, &err)) > 0)
    for (int i = 0; i < n; i++) {
      bson_t b;
      if (!bson_init_static(&b, views[i].doc, views[i].len) || zql_iowriter_write(iw, &b, &err) < 0)
        die("writing %s: %s", bson_path, err.buf);
    }
  if (n < 0)
    die("evlog cursor: %s", err.buf);
  zql_evlog_cursor_close(cur);
  zql_evlog_reader_close(r);
  if (zql_iowriter_close(iw, &err) < 0)
    die("zql_iowriter_close: %s", err.buf);
  zql_strbuf_release(&err);
}

static void print_scan(const char *what, const scan_res_t *s, const scan_res_t *peer)
{
  char ratio[32] = "";
  if (peer && s->secs > 0)
    snprintf(ratio, sizeof ratio, "%.1f%%", 100.0 * peer->secs / s->secs);
  printf("%-52s %9" PRIu64 " %8.3f %12.0f %9.1f %9s\n", what, s->docs, s->secs,
         (double)s->docs / s->secs, (double)s->bytes / s->secs / 1e6, ratio);
  fflush(stdout);
}

/* {==== main ====} */

static void usage(FILE *f)
{
  fputs("usage: bench_evlog [--events N] [--small N] [--appenders T] [--seconds S]\n"
        "                   [--repeat R] [--dir DIR] [--keep] [--quick]\n"
        "  --events N     events of the scan and of most append rows (default 1000000)\n"
        "  --small N      events of the rows with one event per durable append (default 2000)\n"
        "  --appenders T  concurrent appenders of the group-commit rows (default 8)\n"
        "  --seconds S    stop a row after S seconds (default 10)\n"
        "  --repeat R     rounds of each append row and scan walks; the best counts (default 3)\n"
        "  --dir DIR      work in a new directory under DIR (default .)\n"
        "  --keep         keep the work directory\n"
        "  --quick        a smoke run: --events 2000 --small 50 --seconds 0.5 --repeat 1\n",
        f);
}

static uint64_t parse_u64(const char *opt, const char *s)
{
  char *end;
  errno = 0;
  unsigned long long v = s ? strtoull(s, &end, 10) : 0;
  if (!s || errno || *end || v == 0 || s[0] == '-')
    die("%s needs a positive integer", opt);
  return v;
}

int main(int argc, char **argv)
{
  opts_t o = {1000000, 2000, 8, 10.0, 3, ".", false, false};
  bool set_events = false, set_small = false, set_seconds = false, set_repeat = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--events") == 0)
      o.events = parse_u64(a, v), set_events = true, i++;
    else if (strcmp(a, "--small") == 0)
      o.small = parse_u64(a, v), set_small = true, i++;
    else if (strcmp(a, "--appenders") == 0)
      o.appenders = (unsigned)parse_u64(a, v), i++;
    else if (strcmp(a, "--repeat") == 0)
      o.repeat = (unsigned)parse_u64(a, v), set_repeat = true, i++;
    else if (strcmp(a, "--seconds") == 0) {
      char *end;
      o.seconds = v ? strtod(v, &end) : 0;
      if (!v || *end || !(o.seconds > 0))
        die("--seconds needs a positive number");
      set_seconds = true, i++;
    } else if (strcmp(a, "--dir") == 0) {
      if (!v)
        die("--dir needs a directory");
      o.dir = v, i++;
    } else if (strcmp(a, "--keep") == 0)
      o.keep = true;
    else if (strcmp(a, "--quick") == 0)
      o.quick = true;
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (o.quick) {
    if (!set_events)
      o.events = 2000;
    if (!set_small)
      o.small = 50;
    if (!set_seconds)
      o.seconds = 0.5;
    if (!set_repeat)
      o.repeat = 1;
  }
  if (o.appenders > 256)
    die("--appenders is at most 256");
  if (o.small > o.events)
    o.small = o.events;

  /* The command as typed: libtool runs bench/.libs/lt-bench_evlog for bench/bench_evlog. */
  char self[4096];
  snprintf(self, sizeof self, "%s", argv[0]);
  char *libs = strstr(self, ".libs/");
  if (libs) {
    const char *base = libs + 6;
    if (strncmp(base, "lt-", 3) == 0)
      base += 3;
    memmove(libs, base, strlen(base) + 1);
  }
  printf("command: %s", self);
  for (int i = 1; i < argc; i++)
    printf(" %s", argv[i]);
  putchar('\n');
  time_t t = time(NULL);
  char date[64];
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
  struct utsname un;
  if (uname(&un) == 0)
    printf("date: %s  host: %s %s %s  cores: %ld\n", date, un.sysname, un.release, un.machine,
           sysconf(_SC_NPROCESSORS_ONLN));
  char tmpl[4096];
  join_path(tmpl, sizeof tmpl, o.dir, "bench-evlog.XXXXXX");
  char *tmp = mkdtemp(tmpl);
  if (!tmp)
    die("cannot create a directory under %s: %s", o.dir, strerror(errno));
  printf("work directory: %s%s\n", tmp, o.keep ? " (kept)" : " (removed at the end)");

  corpus_t c;
  double g0 = now_s();
  corpus_build(&c, o.events);
  printf("events: %zu from zql_gen (seed 1), %.1f MB of documents, %.1f MB as records "
         "(avg %.0f bytes per record), generated in %.2f s (not timed below)\n",
         c.n, (double)c.doc_bytes / 1e6, (double)c.off[c.n] / 1e6,
         (double)c.off[c.n] / (double)c.n, now_s() - g0);
  printf("each row stops after its events or %.1f s; append rows: best of %u interleaved "
         "rounds; MB = 10^6 bytes\n\n", o.seconds, o.repeat);

  size_t big = 1000;
  printf("== append: (a) the disk's limit and (b) zql_evlog_append, same records ==\n");
  print_row_head();
  struct {
    limit_mode_t mode;
    zql_evlog_sync_t sync;
    const char *policy;
  } pols[] = {{LIM_EACH, ZQL_EVLOG_SYNC_ALWAYS, "always"},
              {LIM_INTERVAL, ZQL_EVLOG_SYNC_BATCH, "batch"},
              {LIM_SEGMENT, ZQL_EVLOG_SYNC_NONE, "none"}};
  for (size_t p = 0; p < ZQL_ARRAY_LEN(pols); p++) {
    size_t ks[2] = {1, big};
    for (size_t q = 0; q < 2; q++) {
      size_t k = ks[q];
      /* durable appends of one event are slow by nature: fewer of them */
      size_t nrec = (k == 1 && pols[p].sync != ZQL_EVLOG_SYNC_NONE) ? o.small : c.n;
      /* Interleaved rounds, best of each row: one round of a row that ran into the time
       * cap is enough (its rate is steady), short rows are noisy on a virtual disk. */
      bool batch = pols[p].sync == ZQL_EVLOG_SYNC_BATCH && o.appenders > 1;
      row_t lim = {0}, raw = {0}, a1 = {0}, at = {0};
      for (unsigned round = 0; round < o.repeat; round++) {
        if (round == 0 || lim.secs < o.seconds)
          best_row(&lim, run_limit(tmp, &c, pols[p].mode, k, nrec, o.seconds));
        if (pols[p].mode == LIM_SEGMENT && (round == 0 || raw.secs < o.seconds))
          best_row(&raw, run_limit(tmp, &c, LIM_RAW, k, nrec, o.seconds));
        if (round == 0 || a1.secs < o.seconds)
          best_row(&a1, run_append(tmp, &c, pols[p].sync, pols[p].policy, k, 1, nrec, o.seconds));
        if (batch && (round == 0 || at.secs < o.seconds))
          best_row(&at, run_append(tmp, &c, pols[p].sync, pols[p].policy, k, o.appenders, nrec,
                                   o.seconds));
      }
      print_row(&lim, NULL);
      if (pols[p].mode == LIM_SEGMENT)
        print_row(&raw, NULL);
      print_row(&a1, &lim);
      if (batch)
        print_row(&at, &lim);
    }
  }

  printf("\n== scan: every document of the log vs a plain libbson walk of the same bytes ==\n");
  char logdir[4096], bson_path[4096];
  join_path(logdir, sizeof logdir, tmp, "log-scan");
  join_path(bson_path, sizeof bson_path, tmp, "events.bson");
  build_scan_inputs(logdir, bson_path, &c);
  scan_res_t ev = best_of(walk_evlog, logdir, o.repeat);
  scan_res_t rf = best_of(walk_bson_file, bson_path, o.repeat);
  scan_res_t rm = best_of(walk_bson_mmap, bson_path, o.repeat);
  if (ev.docs != c.n || rf.docs != c.n || rm.docs != c.n || ev.sum != rf.sum || ev.sum != rm.sum ||
      ev.bytes != rf.bytes)
    die("the walks disagree: %" PRIu64 "/%" PRIu64 "/%" PRIu64 " documents", ev.docs, rf.docs,
        rm.docs);
  const scan_res_t *peer = rf.secs < rm.secs ? &rf : &rm;
  printf("%-52s %9s %8s %12s %9s %9s\n", "walk (best of runs, page cache warm)", "docs",
         "seconds", "docs/s", "MB/s", "vs peer");
  print_scan("bson_reader_new_from_file (libbson read() walk)", &rf, NULL);
  print_scan("bson_reader_new_from_data over mmap (zero-copy)", &rm, NULL);
  print_scan("zql_evlog cursor, full _seq range (CRC-checked)", &ev, peer);
  printf("peer: the faster plain walk (%s); documents %.1f MB, checksum %016" PRIx64 "\n",
         peer == &rf ? "read()" : "mmap", (double)ev.bytes / 1e6, ev.sum);

  corpus_free(&c);
  if (!o.keep)
    rm_tree(tmp);
  printf("\ndone\n");
  return 0;
}
