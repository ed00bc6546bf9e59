/*
 * evlog.c -- the event log writer: append with group commit, roll, seal, recover, retain
 * (runtime services; the write-ahead log of ingestion and the store map stages read).
 *
 * Interface (evlog.h): zql_evlog_open -> zql_evlog_append* (any threads) / _sync / _roll /
 * _retain -> zql_evlog_close. The byte layout is in evlog_fmt.c and docs/formats.md.
 *
 * Open. Lock events/LOCK (flock, exclusive, non-blocking: ZQL_E_LOCKED names the pid the
 * holder wrote into it). List the segments; read each sealed one's footer and index (not
 * its records: `zql log check` verifies those) and require _seq continuity between
 * segments (retention may have removed a prefix, so only gaps after the first count).
 * Then recover the .open segment, the only one that can be damaged by a crash:
 *   - header incomplete and no bytes beyond it: it holds nothing; delete and recreate;
 *   - scan the records; the first frame that is not valid ends the valid prefix;
 *   - if the rest is exactly a valid trailer for that prefix, the writer died between
 *     writing the trailer and renaming: finish the seal (rename, fsync the directory);
 *   - else truncate the rest (a torn tail) and fsync. Both are reported in opts->notes.
 * No acknowledged record is ever in the truncated part: a record is acknowledged after
 * the fdatasync that covers it (policies always/batch), and the tail beyond the first bad
 * frame was written after it. With policy none, the records lost are those the OS had
 * not written when the machine (not the process) crashed.
 *
 * Append. Validate the whole batch first (document sizes, `timestamp` types), so a bad
 * event rejects the batch before any _seq is assigned. Then, under the mutex, build the
 * frames in one buffer (a document without `_id` or `timestamp` is rewritten while being
 * copied: `_id` is prepended, `timestamp` appended; no bson_t is built) and pwrite them at
 * the end of the .open segment; when the next frame would push the segment past
 * segment_bytes, write what is buffered, seal, and continue in a new segment.
 *
 * Two mutexes: append_mu serialises whole appends (and rolls, retention, close), so a
 * batch's records stay consecutive even while a seal inside it waits on the condition
 * variable; mu guards the state and the group commit, and is released while an appender
 * waits for durability, so the next batch is written meanwhile.
 *
 * Group commit (the part that decides when append returns). State under the mutex:
 * written_seq (last _seq handed to the kernel), synced_seq (last _seq known durable),
 * syncing (an fdatasync is in flight), last_sync (monotonic time it started). An appender
 * whose batch ends at `mine` loops:
 *   - synced_seq >= mine: done (someone else's fdatasync covered it);
 *   - an fdatasync is in flight: wait on the condition variable (it may not cover `mine`:
 *     its target was fixed when it started);
 *   - policy batch and the last fdatasync started less than sync_interval ago: wait until
 *     then (others append meanwhile and will share the next fdatasync);
 *   - else lead: target = written_seq, syncing = true, unlock, fdatasync, lock,
 *     synced_seq = target, broadcast.
 * So at most one fdatasync is in flight, at most one starts per interval, and every
 * appender that arrived during one waits for the next, which covers them all
 * (PostgreSQL's group commit). Policy always runs this loop with interval 0 in the
 * appending threads. Policy batch is Redis' appendfsync everysec with a 10 ms second:
 * append returns once its records are written (they survive a crash of the process at
 * once, and a crash of the machine once the next fdatasync is done), and a background
 * syncer thread runs the same loop for written_seq, starting at most one fdatasync per
 * interval, so an acknowledged record is exposed to power loss for at most about one
 * interval plus one fdatasync. Policy none returns after pwrite and syncs on seal/close. A seal fdatasyncs and so advances
 * synced_seq; it first waits for an in-flight fdatasync to finish, because that one uses
 * the segment's descriptor, which the seal closes.
 *
 * Seal: append the trailer (index + footer), fdatasync, rename NNN.open -> NNN.seg, fsync
 * the directory; then create the next NNN.open (O_EXCL, header, fdatasync, fsync dir).
 * A crash at any point leaves either the .open (recovered as above) or the .seg plus no
 * .open (a new one is created on open).
 *
 * Errors: a failed write or fdatasync makes the writer `broken` (every later call fails
 * with ZQL_E_IO): the kernel may have dropped the dirty pages (the PostgreSQL fsyncgate
 * lesson), so the only safe continuation is a reopen, which recovers from the file.
 */
#include "runtime/base/zql_common.h"

#include "runtime/evlog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/base/clock.h"
#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/evlog_int.h"

/* Refresh the .open segment's hint file each time it grew by this much (readers walk at
 * most this many bytes of records at open). */
#define HINT_EVERY ((uint64_t)2 << 20)

typedef struct sealed_seg {
  int64_t first_seq, last_seq, max_ts;
  uint64_t bytes;
} sealed_seg_t;

struct zql_evlog {
  zql_evlog_opts_t opts;
  char *evdir; /* DIR/events */
  int lock_fd;
  pthread_mutex_t append_mu; /* serialises appends, rolls, retention (taken before mu) */
  pthread_mutex_t mu;        /* everything below, and the group commit state */
  pthread_cond_t cond;
  /* the .open segment */
  int fd;
  int64_t seg_first;  /* its first _seq (its name) */
  uint64_t seg_end;   /* bytes written */
  uint64_t seg_count; /* records */
  uint32_t seg_last_len; /* the last record's frame length (for the hint) */
  int64_t seg_min_ts, seg_max_ts;
  int64_t *sparse; /* (seq, offset) pairs */
  uint32_t nsparse, sparse_cap;
  uint64_t hint_end;  /* seg_end when the hint file was last written (0: none) */
  /* sealed segments, oldest first */
  sealed_seg_t *sealed;
  size_t nsealed, sealed_cap;
  /* sequence and durability */
  int64_t next_seq;
  int64_t written_seq, synced_seq;
  bool syncing;
  struct timespec last_sync;
  bool broken;
  /* policy batch: the background syncer thread (see "Group commit" above) */
  pthread_t syncer;
  bool syncer_running, stopping;
  zql_strbuf_t buf; /* frames being built */
};

/* {==== helpers ====} */

static void seg_path(char *buf, size_t n, const char *evdir, int64_t first, bool sealed)
{
  char name[EVLOG_NAME_DIGITS + 6];
  zql_evlog_name(name, first, sealed);
  snprintf(buf, n, "%s/%s", evdir, name);
}

/* The index of the .open segment so far (what a seal writes, and the hint). */
static evlog_summary_t open_summary(const zql_evlog_t *w)
{
  evlog_summary_t s = {
      .first_seq = w->seg_first,
      .last_seq = w->seg_first + (int64_t)w->seg_count - 1,
      .min_ts = w->seg_min_ts,
      .max_ts = w->seg_max_ts,
      .count = w->seg_count,
      .data_end = w->seg_end,
      .stride = w->opts.index_stride,
      .nsparse = w->nsparse,
  };
  return s;
}

/* DIR/events/NNN.hint: the index of the .open segment NNN so far (readers/hints). */
static void hint_path(char *buf, size_t n, const char *evdir, int64_t first)
{
  snprintf(buf, n, "%s/%020" PRId64 ".hint", evdir, first);
}

static int write_all(int fd, const void *p, size_t n, uint64_t off);

/* The hint for readers (docs/formats.md): the trailer a seal would write now, in its own
 * file, so that a reader opening the log trusts the records it describes instead of
 * walking them all (each is still CRC-checked when read). Advisory: written without
 * fsync, replaced by rename; a missing, stale or damaged hint only costs the walk. Called
 * with the mutex held, after the records it describes are written. */
static void write_hint(zql_evlog_t *w)
{
  if (w->broken || w->fd < 0 || w->seg_count == 0 || w->seg_end == w->hint_end)
    return;
  evlog_summary_t s = open_summary(w);
  s.last_len = w->seg_last_len; /* readers check that one frame, not the whole last stride */
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_evlog_trailer_build(&sb, &s, w->sparse);
  char path[4096], tmp[4200];
  hint_path(path, sizeof path, w->evdir, w->seg_first);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = sb.oom ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0) {
    bool ok = write_all(fd, sb.buf, sb.len, 0) == 0;
    close(fd);
    if (ok && rename(tmp, path) == 0)
      w->hint_end = w->seg_end;
    else
      unlink(tmp);
  }
  zql_strbuf_release(&sb);
}

/* The hint of segment first is obsolete (sealed, or the segment recovered). */
static void drop_hint(const zql_evlog_t *w, int64_t first)
{
  char path[4096];
  hint_path(path, sizeof path, w->evdir, first);
  unlink(path);
}

static int write_all(int fd, const void *p, size_t n, uint64_t off)
{
  const uint8_t *b = p;
  while (n > 0) {
    ssize_t r = pwrite(fd, b, n, (off_t)off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    b += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

static int mkdir_p(const char *path, zql_strbuf_t *err)
{
  if (mkdir(path, 0777) == 0 || errno == EEXIST)
    return 0;
  return zql_fail(err, ZQL_E_IO, "cannot create directory '%s': %s", path, strerror(errno));
}

static int add_sparse(zql_evlog_t *w, int64_t seq, uint64_t off)
{
  if (w->nsparse == w->sparse_cap) {
    uint32_t ncap = w->sparse_cap ? 2 * w->sparse_cap : 64;
    int64_t *n = zql_reallocarray(w->sparse, ncap, 2 * sizeof *n);
    if (!n)
      return ZQL_E_NOMEM;
    w->sparse = n;
    w->sparse_cap = ncap;
  }
  w->sparse[2 * w->nsparse] = seq;
  w->sparse[2 * w->nsparse + 1] = (int64_t)off;
  w->nsparse++;
  return 0;
}

static int add_sealed(zql_evlog_t *w, int64_t first, int64_t last, int64_t max_ts, uint64_t bytes)
{
  if (w->nsealed == w->sealed_cap) {
    size_t ncap = w->sealed_cap ? 2 * w->sealed_cap : 16;
    sealed_seg_t *n = zql_reallocarray(w->sealed, ncap, sizeof *n);
    if (!n)
      return ZQL_E_NOMEM;
    w->sealed = n;
    w->sealed_cap = ncap;
  }
  w->sealed[w->nsealed++] = (sealed_seg_t){first, last, max_ts, bytes};
  return 0;
}

/* Start the .open segment for `first` (none exists): create, header, fdatasync, fsync
 * the directory. */
static int create_open(zql_evlog_t *w, int64_t first, zql_strbuf_t *err)
{
  char path[4096];
  seg_path(path, sizeof path, w->evdir, first, false);
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return zql_fail(err, ZQL_E_IO, "cannot create '%s': %s", path, strerror(errno));
  uint8_t hdr[EVLOG_HDR_SIZE];
  zql_evlog_header_build(hdr, first);
  if (write_all(fd, hdr, sizeof hdr, 0) < 0 || fdatasync(fd) < 0) {
    int e = errno;
    close(fd);
    unlink(path);
    return zql_fail(err, ZQL_E_IO, "cannot write '%s': %s", path, strerror(e));
  }
  int rc = zql_evlog_fsync_dir(w->evdir, err);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  w->fd = fd;
  w->seg_first = first;
  w->seg_end = EVLOG_HDR_SIZE;
  w->seg_count = 0;
  w->seg_last_len = 0;
  w->seg_min_ts = INT64_MAX;
  w->seg_max_ts = INT64_MIN;
  w->nsparse = 0;
  return 0;
}

/* Seal the .open segment (it has records): trailer, fdatasync, rename, fsync dir, then a
 * new .open. Called with the mutex held and no fdatasync in flight. */
static int seal(zql_evlog_t *w, zql_strbuf_t *err)
{
  while (w->syncing)
    pthread_cond_wait(&w->cond, &w->mu);
  evlog_summary_t s = open_summary(w);
  char from[4096], to[4096];
  seg_path(from, sizeof from, w->evdir, w->seg_first, false);
  seg_path(to, sizeof to, w->evdir, w->seg_first, true);
  zql_strbuf_reset(&w->buf);
  zql_evlog_trailer_build(&w->buf, &s, w->sparse);
  if (w->buf.oom)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory sealing '%s'", from);
  if (write_all(w->fd, w->buf.buf, w->buf.len, w->seg_end) < 0 || fdatasync(w->fd) < 0) {
    w->broken = true;
    return zql_fail(err, ZQL_E_IO, "cannot write the index of '%s': %s", from,
                          strerror(errno));
  }
  uint64_t bytes = w->seg_end + w->buf.len;
  zql_strbuf_reset(&w->buf);
  if (rename(from, to) < 0) {
    w->broken = true;
    return zql_fail(err, ZQL_E_IO, "cannot rename '%s' to '%s': %s", from, to,
                          strerror(errno));
  }
  close(w->fd);
  w->fd = -1;
  drop_hint(w, s.first_seq);
  w->hint_end = 0;
  /* everything of the sealed segment is durable now (part of a batch may be in it) */
  if (s.last_seq > w->written_seq)
    w->written_seq = s.last_seq;
  if (s.last_seq > w->synced_seq)
    w->synced_seq = s.last_seq;
  int rc = zql_evlog_fsync_dir(w->evdir, err);
  if (rc == 0)
    rc = add_sealed(w, s.first_seq, s.last_seq, s.max_ts, bytes);
  if (rc == 0)
    rc = create_open(w, w->next_seq, err);
  if (rc < 0)
    w->broken = true;
  return rc;
}

/* {==== open and recovery ====} */

static int note(zql_evlog_t *w, const char *fmt, ...) ZQL_PRINTF(2, 3);
static int note(zql_evlog_t *w, const char *fmt, ...)
{
  if (!w->opts.notes)
    return 0;
  va_list ap;
  va_start(ap, fmt);
  zql_strbuf_vaddf(w->opts.notes, fmt, ap);
  va_end(ap);
  zql_strbuf_addc(w->opts.notes, '\n');
  return 0;
}

/* Read the sealed segment's trailer (pread of the footer and index only). */
static int load_sealed(zql_evlog_t *w, const evlog_entry_t *e, zql_strbuf_t *err)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", w->evdir, e->name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return zql_fail(err, ZQL_E_IO, "cannot open '%s': %s", path, strerror(errno));
  struct stat st;
  int rc = 0;
  uint8_t *buf = NULL;
  if (fstat(fd, &st) < 0) {
    rc = zql_fail(err, ZQL_E_IO, "cannot stat '%s': %s", path, strerror(errno));
    goto out;
  }
  size_t size = (size_t)st.st_size;
  const char *why = NULL;
  uint8_t foot[EVLOG_FOOTER_SIZE];
  if (size < EVLOG_HDR_SIZE + EVLOG_FOOTER_SIZE ||
      pread(fd, foot, sizeof foot, (off_t)(size - sizeof foot)) != (ssize_t)sizeof foot) {
    rc = zql_fail(err, ZQL_E_CORRUPT, "'%s': offset %zu: file too short for a sealed segment",
                        path, size);
    goto out;
  }
  /* Read [index offset, end) and parse it as if it were the whole file's tail. */
  uint64_t ioff = evlog_ld64(foot);
  if (ioff < EVLOG_HDR_SIZE || ioff >= size) {
    rc = zql_fail(err, ZQL_E_CORRUPT, "'%s': offset %zu: damaged index footer", path,
                        size - EVLOG_FOOTER_SIZE);
    goto out;
  }
  size_t tail = size - (size_t)ioff;
  buf = zql_malloc(EVLOG_HDR_SIZE + tail);
  if (!buf) {
    rc = zql_fail(err, ZQL_E_NOMEM, "out of memory reading '%s'", path);
    goto out;
  }
  int64_t first = 0;
  if (pread(fd, buf, EVLOG_HDR_SIZE, 0) != EVLOG_HDR_SIZE ||
      zql_evlog_header_parse(buf, EVLOG_HDR_SIZE, &first, &why) < 0 || first != e->first_seq) {
    rc = zql_fail(err, ZQL_E_CORRUPT, "'%s': offset 0: %s", path,
                        why ? why : "header _seq disagrees with the file name");
    goto out;
  }
  if (pread(fd, buf + EVLOG_HDR_SIZE, tail, (off_t)ioff) != (ssize_t)tail) {
    rc = zql_fail(err, ZQL_E_IO, "cannot read '%s': %s", path, strerror(errno));
    goto out;
  }
  evlog_summary_t s;
  if (zql_evlog_trailer_parse(buf + EVLOG_HDR_SIZE, tail, size, &s, &why) < 0) {
    rc = zql_fail(err, ZQL_E_CORRUPT, "'%s': offset %" PRIu64 ": %s", path, ioff, why);
    goto out;
  }
  if (s.first_seq != e->first_seq) {
    rc = zql_fail(err, ZQL_E_CORRUPT, "'%s': offset %" PRIu64 ": index first _seq %" PRId64
                        " disagrees with the file name", path, ioff, s.first_seq);
    goto out;
  }
  rc = add_sealed(w, s.first_seq, s.last_seq, s.max_ts, size);
out:
  zql_free(buf);
  close(fd);
  return rc;
}

/* Recover the .open segment `e` (see the file header) and make it the writer's segment. */
static int recover_open(zql_evlog_t *w, const evlog_entry_t *e, zql_strbuf_t *err)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", w->evdir, e->name);
  drop_hint(w, e->first_seq); /* it may describe records a crash took away */
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return zql_fail(err, ZQL_E_IO, "cannot open '%s': %s", path, strerror(errno));
  uint8_t *buf = NULL;
  size_t size = 0;
  int64_t *sparse = NULL;
  int rc = zql_evlog_read_file(fd, path, &buf, &size, err);
  if (rc < 0)
    goto fail;
  const char *why = NULL;
  int64_t first = 0;
  if (zql_evlog_header_parse(buf, size, &first, &why) < 0) {
    if (size <= EVLOG_HDR_SIZE) {
      /* Created but the header never became durable: it holds no record. */
      note(w, "events/%s: removed a segment whose header was incomplete (%zu bytes)", e->name,
           size);
      close(fd);
      zql_free(buf);
      if (unlink(path) < 0)
        return zql_fail(err, ZQL_E_IO, "cannot remove '%s': %s", path, strerror(errno));
      return create_open(w, e->first_seq, err);
    }
    rc = zql_fail(err, ZQL_E_CORRUPT, "'%s': offset 0: %s", path, why);
    goto fail;
  }
  if (first != e->first_seq) {
    rc = zql_fail(err, ZQL_E_CORRUPT,
                        "'%s': offset 16: header _seq %" PRId64 " disagrees with the file name",
                        path, first);
    goto fail;
  }
  evlog_summary_t s;
  rc = zql_evlog_scan(buf, size, first, w->opts.index_stride, true, &s, &sparse, &why);
  if (rc < 0) {
    rc = zql_fail(err, rc, "out of memory recovering '%s'", path);
    goto fail;
  }
  if (s.data_end < size) {
    evlog_summary_t t;
    const char *why2;
    if (s.count > 0 &&
        zql_evlog_trailer_parse(buf + s.data_end, size - s.data_end, size, &t, &why2) == 0 &&
        t.data_end == s.data_end && t.first_seq == s.first_seq && t.count == s.count) {
      /* Died between the trailer's fdatasync and the rename: finish sealing. */
      char to[4096];
      seg_path(to, sizeof to, w->evdir, first, true);
      close(fd);
      fd = -1;
      if (rename(path, to) < 0) {
        rc = zql_fail(err, ZQL_E_IO, "cannot rename '%s': %s", path, strerror(errno));
        goto fail;
      }
      if ((rc = zql_evlog_fsync_dir(w->evdir, err)) < 0)
        goto fail;
      note(w, "events/%s: finished an interrupted seal (%" PRIu64 " records)", e->name, s.count);
      rc = add_sealed(w, s.first_seq, s.last_seq, s.max_ts, size);
      if (rc == 0) {
        w->next_seq = s.last_seq + 1;
        rc = create_open(w, w->next_seq, err);
      }
      zql_free(buf);
      zql_free(sparse);
      return rc;
    }
    note(w, "events/%s: truncated %zu bytes at offset %" PRIu64 " (%s; %" PRIu64
         " valid records kept, last _seq %" PRId64 ")",
         e->name, size - (size_t)s.data_end, s.data_end,
         rc == EVLOG_FRAME_BAD ? why : "incomplete record", s.count, s.last_seq);
    if (ftruncate(fd, (off_t)s.data_end) < 0 || fsync(fd) < 0) {
      rc = zql_fail(err, ZQL_E_IO, "cannot truncate '%s': %s", path, strerror(errno));
      goto fail;
    }
  }
  zql_free(buf);
  w->fd = fd;
  w->seg_first = first;
  w->seg_end = s.data_end;
  w->seg_count = s.count;
  w->seg_last_len = s.last_len;
  w->seg_min_ts = s.min_ts;
  w->seg_max_ts = s.max_ts;
  zql_free(w->sparse);
  w->sparse = sparse;
  w->nsparse = w->sparse_cap = s.nsparse;
  w->next_seq = s.last_seq + 1;
  return 0;
fail:
  if (fd >= 0)
    close(fd);
  zql_free(buf);
  zql_free(sparse);
  return rc;
}

void zql_evlog_opts_init(zql_evlog_opts_t *o)
{
  memset(o, 0, sizeof *o);
  o->sync = ZQL_EVLOG_SYNC_BATCH;
  o->sync_interval_us = ZQL_EVLOG_DEFAULT_INTERVAL_US;
  o->segment_bytes = ZQL_EVLOG_DEFAULT_SEGMENT;
  o->index_stride = ZQL_EVLOG_DEFAULT_STRIDE;
}

static void evlog_free(zql_evlog_t *w)
{
  if (w->fd >= 0)
    close(w->fd);
  if (w->lock_fd >= 0)
    close(w->lock_fd); /* releases the flock */
  pthread_mutex_destroy(&w->append_mu);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cond);
  zql_strbuf_release(&w->buf);
  zql_free(w->sparse);
  zql_free(w->sealed);
  zql_free(w->evdir);
  zql_free(w);
}

static int wait_durable(zql_evlog_t *w, int64_t mine, bool now_please, zql_strbuf_t *err);

/* Policy batch: the thread that makes appended records durable, at most one fdatasync per
 * sync_interval, so that appends return as soon as their records are written (Redis'
 * appendfsync everysec; the exposure window of an acknowledged record is one interval). */
static void *syncer_main(void *arg)
{
  zql_evlog_t *w = arg;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  pthread_mutex_lock(&w->mu);
  while (!w->stopping && !w->broken) {
    if (w->written_seq > w->synced_seq) {
      zql_strbuf_reset(&err);
      (void)wait_durable(w, w->written_seq, false, &err); /* failure: w->broken */
      continue;
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t ns = until.tv_nsec + w->opts.sync_interval_us * 1000;
    until.tv_sec += ns / 1000000000;
    until.tv_nsec = ns % 1000000000;
    pthread_cond_timedwait(&w->cond, &w->mu, &until); /* an append or close wakes it */
  }
  pthread_mutex_unlock(&w->mu);
  zql_strbuf_release(&err);
  return NULL;
}

int zql_evlog_open(const char *dir, const zql_evlog_opts_t *opts, zql_evlog_t **out,
                   zql_strbuf_t *err)
{
  *out = NULL;
  zql_evlog_t *w = zql_calloc(1, sizeof *w);
  if (!w)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory opening the event log");
  if (opts)
    w->opts = *opts;
  else
    zql_evlog_opts_init(&w->opts);
  if (w->opts.segment_bytes < 4096)
    w->opts.segment_bytes = 4096;
  if (w->opts.index_stride == 0)
    w->opts.index_stride = ZQL_EVLOG_DEFAULT_STRIDE;
  if (w->opts.sync_interval_us < 0)
    w->opts.sync_interval_us = 0;
  if (!w->opts.clock_ms)
    w->opts.clock_ms = zql_wall_clock;
  w->fd = w->lock_fd = -1;
  zql_strbuf_init(&w->buf);
  pthread_mutex_init(&w->append_mu, NULL);
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cond, &ca);
  pthread_condattr_destroy(&ca);

  size_t dl = strlen(dir);
  w->evdir = zql_malloc(dl + sizeof "/events");
  if (!w->evdir) {
    evlog_free(w);
    return zql_fail(err, ZQL_E_NOMEM, "out of memory opening the event log");
  }
  memcpy(w->evdir, dir, dl);
  memcpy(w->evdir + dl, "/events", sizeof "/events");
  int rc;
  evlog_entry_t *ents = NULL;
  size_t n = 0;
  if ((rc = mkdir_p(dir, err)) < 0 || (rc = mkdir_p(w->evdir, err)) < 0 ||
      (rc = zql_evlog_lock(w->evdir, &w->lock_fd, err)) < 0 ||
      (rc = zql_evlog_list(w->evdir, &ents, &n, err)) < 0)
    goto fail;
  w->next_seq = 1;
  for (size_t i = 0; i < n; i++) {
    if (!ents[i].sealed)
      break;
    if ((rc = load_sealed(w, &ents[i], err)) < 0)
      goto fail;
    const sealed_seg_t *s = &w->sealed[w->nsealed - 1];
    if (i > 0 && s->first_seq != w->next_seq) {
      rc = zql_fail(err, ZQL_E_CORRUPT,
                          "'%s/%s': starts at _seq %" PRId64 " but the previous segment ends at %" PRId64,
                          w->evdir, ents[i].name, s->first_seq, w->next_seq - 1);
      goto fail;
    }
    w->next_seq = s->last_seq + 1;
  }
  if (n > 0 && !ents[n - 1].sealed) {
    if (n > 1 && ents[n - 1].first_seq != w->next_seq) {
      rc = zql_fail(err, ZQL_E_CORRUPT,
                          "'%s/%s': starts at _seq %" PRId64 " but the previous segment ends at %" PRId64,
                          w->evdir, ents[n - 1].name, ents[n - 1].first_seq, w->next_seq - 1);
      goto fail;
    }
    if ((rc = recover_open(w, &ents[n - 1], err)) < 0)
      goto fail;
  } else if ((rc = create_open(w, w->next_seq, err)) < 0) {
    goto fail;
  }
  zql_free(ents);
  w->written_seq = w->synced_seq = w->next_seq - 1;
  if (w->opts.sync == ZQL_EVLOG_SYNC_BATCH) {
    if (pthread_create(&w->syncer, NULL, syncer_main, w) != 0) {
      rc = zql_fail(err, ZQL_E_NOMEM, "cannot start the event log's sync thread");
      evlog_free(w);
      return rc;
    }
    w->syncer_running = true;
  }
  *out = w;
  return 0;
fail:
  zql_free(ents);
  evlog_free(w);
  return rc;
}

/* {==== append ====} */

typedef struct doc_plan {
  int64_t ts;
  bool add_id, add_ts;
  uint32_t out_len; /* document length after the additions */
} doc_plan_t;

static const char *bson_type_name(bson_type_t t)
{
  switch (t) {
  case BSON_TYPE_DOUBLE: return "double";
  case BSON_TYPE_UTF8: return "string";
  case BSON_TYPE_DOCUMENT: return "document";
  case BSON_TYPE_ARRAY: return "array";
  case BSON_TYPE_BINARY: return "binary";
  case BSON_TYPE_OID: return "ObjectId";
  case BSON_TYPE_BOOL: return "bool";
  case BSON_TYPE_NULL: return "null";
  case BSON_TYPE_INT32: return "int32";
  case BSON_TYPE_INT64: return "int64";
  case BSON_TYPE_DECIMAL128: return "decimal128";
  default: return "non-date value";
  }
}

#define ID_ELEM_LEN (1 + 4 + 8)  /* type, "_id\0", int64 */
#define TS_ELEM_LEN (1 + 10 + 8) /* type, "timestamp\0", date */

static int plan_doc(const bson_t *doc, size_t i, int64_t now, doc_plan_t *p, zql_strbuf_t *err)
{
  bson_iter_t it;
  if (!doc || !bson_iter_init(&it, doc))
    return zql_fail(err, ZQL_E_BAD_EVENT, "event %zu of the batch is not a valid BSON document", i);
  bool has_id = false, has_ts = false;
  p->ts = now;
  while (bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    if (!has_id && strcmp(k, "_id") == 0) {
      has_id = true;
    } else if (!has_ts && strcmp(k, "timestamp") == 0) {
      has_ts = true;
      bson_type_t t = bson_iter_type(&it);
      if (t == BSON_TYPE_DATE_TIME) {
        p->ts = bson_iter_date_time(&it);
      } else if (t == BSON_TYPE_TIMESTAMP) {
        uint32_t secs, inc;
        bson_iter_timestamp(&it, &secs, &inc);
        p->ts = (int64_t)secs * 1000;
      } else {
        return zql_fail(err, ZQL_E_BAD_EVENT,
                              "event %zu of the batch: field 'timestamp' is a %s; it must be a "
                              "BSON date (UTC milliseconds) or a BSON Timestamp",
                              i, bson_type_name(t));
      }
    }
  }
  p->add_id = !has_id;
  p->add_ts = !has_ts;
  uint64_t len = (uint64_t)doc->len + (p->add_id ? ID_ELEM_LEN : 0) + (p->add_ts ? TS_ELEM_LEN : 0);
  if (len > ZQL_EVLOG_MAX_DOC)
    return zql_fail(err, ZQL_E_BAD_EVENT,
                          "event %zu of the batch is %" PRIu64 " bytes; the limit is 16 MiB (%u bytes)",
                          i, len, ZQL_EVLOG_MAX_DOC);
  p->out_len = (uint32_t)len;
  return 0;
}

/* Append the frame of `doc` with `seq` to w->buf. */
static void build_frame(zql_evlog_t *w, const bson_t *doc, const doc_plan_t *p, int64_t seq)
{
  zql_strbuf_t *b = &w->buf;
  if (!zql_strbuf_grow(b, EVLOG_FRAME_HDR + p->out_len))
    return;
  size_t start = b->len;
  uint8_t *f = (uint8_t *)b->buf + start;
  uint8_t *d = f + EVLOG_FRAME_HDR;
  const uint8_t *src = bson_get_data(doc);
  if (!p->add_id && !p->add_ts) {
    memcpy(d, src, doc->len);
  } else {
    uint8_t *q = d;
    evlog_st32(q, p->out_len);
    q += 4;
    if (p->add_id) {
      *q++ = BSON_TYPE_INT64;
      memcpy(q, "_id", 4);
      q += 4;
      evlog_st64(q, (uint64_t)seq);
      q += 8;
    }
    memcpy(q, src + 4, doc->len - 5); /* the elements, without length and terminator */
    q += doc->len - 5;
    if (p->add_ts) {
      *q++ = BSON_TYPE_DATE_TIME;
      memcpy(q, "timestamp", 10);
      q += 10;
      evlog_st64(q, (uint64_t)p->ts);
      q += 8;
    }
    *q = 0;
  }
  zql_evlog_frame_head(f, seq, p->ts, p->out_len);
  b->len = start + EVLOG_FRAME_HDR + p->out_len;
  b->buf[b->len] = '\0';
}

/* Write w->buf at the end of the segment; its frames hold `nrec` records from `seq0`. */
static int flush_buf(zql_evlog_t *w, zql_strbuf_t *err)
{
  if (w->buf.len == 0)
    return 0;
  if (write_all(w->fd, w->buf.buf, w->buf.len, w->seg_end) < 0) {
    int e = errno;
    /* The writer refuses further appends; whatever part of the batch reached the file is
     * left as it is (recovery on reopen cuts a torn tail and keeps complete records). No
     * truncation here: readers map the .open segment and may already have accepted the
     * complete records of a partial write (evlog_read.c), and a cut below them would
     * make their pages fault. */
    w->broken = true;
    char path[4096];
    seg_path(path, sizeof path, w->evdir, w->seg_first, false);
    return zql_fail(err, ZQL_E_IO, "cannot write '%s': %s", path, strerror(e));
  }
  w->seg_end += w->buf.len;
  zql_strbuf_reset(&w->buf);
  return 0;
}

static int64_t ts_diff_us(const struct timespec *a, const struct timespec *b)
{
  return (int64_t)(a->tv_sec - b->tv_sec) * 1000000 + (a->tv_nsec - b->tv_nsec) / 1000;
}

/* Wait (mutex held) until `mine` is durable, leading an fdatasync when it is our turn. */
static int wait_durable(zql_evlog_t *w, int64_t mine, bool now_please, zql_strbuf_t *err)
{
  for (;;) {
    if (w->synced_seq >= mine)
      return 0;
    if (w->broken)
      return zql_fail(err, ZQL_E_IO, "the event log '%s' failed to sync; reopen it", w->evdir);
    if (w->syncing) {
      pthread_cond_wait(&w->cond, &w->mu);
      continue;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!now_please && w->opts.sync == ZQL_EVLOG_SYNC_BATCH && w->opts.sync_interval_us > 0) {
      int64_t since = ts_diff_us(&now, &w->last_sync);
      if (since >= 0 && since < w->opts.sync_interval_us) {
        struct timespec until = w->last_sync;
        int64_t ns = until.tv_nsec + w->opts.sync_interval_us * 1000;
        until.tv_sec += ns / 1000000000;
        until.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&w->cond, &w->mu, &until);
        continue;
      }
    }
    int64_t target = w->written_seq;
    int fd = w->fd;
    w->syncing = true;
    w->last_sync = now;
    pthread_mutex_unlock(&w->mu);
    int r = fdatasync(fd);
    int e = errno;
    pthread_mutex_lock(&w->mu);
    w->syncing = false;
    if (r < 0)
      w->broken = true;
    else if (target > w->synced_seq)
      w->synced_seq = target;
    pthread_cond_broadcast(&w->cond);
    if (r < 0)
      return zql_fail(err, ZQL_E_IO, "cannot fdatasync the event log '%s': %s", w->evdir,
                            strerror(e));
  }
}

int zql_evlog_append(zql_evlog_t *w, const bson_t *const *docs, size_t n, int64_t *first_seq,
                     zql_strbuf_t *err)
{
  if (first_seq)
    *first_seq = 0;
  if (n == 0)
    return 0;
  doc_plan_t small[64];
  doc_plan_t *plan = n <= ZQL_ARRAY_LEN(small) ? small : zql_calloc(n, sizeof *plan);
  if (!plan)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory appending %zu events", n);
  int64_t now = w->opts.clock_ms(w->opts.clock_arg);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = plan_doc(docs[i], i, now, &plan[i], err);
  if (rc < 0)
    goto out;

  pthread_mutex_lock(&w->append_mu);
  pthread_mutex_lock(&w->mu);
  if (w->broken) {
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_unlock(&w->append_mu);
    rc = zql_fail(err, ZQL_E_IO, "the event log '%s' had a write error; reopen it", w->evdir);
    goto out;
  }
  int64_t seq0 = w->next_seq;
  zql_strbuf_reset(&w->buf);
  for (size_t i = 0; i < n && rc == 0; i++) {
    uint64_t flen = EVLOG_FRAME_HDR + plan[i].out_len;
    /* the sealed file = records + this frame + the trailer, at most segment_bytes */
    uint64_t trailer = EVLOG_IDX_HEAD + EVLOG_IDX_ENTRY * ((uint64_t)w->nsparse + 1) +
                       EVLOG_IDX_TAIL + EVLOG_FOOTER_SIZE;
    if (w->seg_count > 0 && w->seg_end + w->buf.len + flen + trailer > w->opts.segment_bytes) {
      if ((rc = flush_buf(w, err)) < 0 || (rc = seal(w, err)) < 0)
        break;
    }
    int64_t seq = w->next_seq;
    uint64_t off = w->seg_end + w->buf.len;
    if (w->seg_count % w->opts.index_stride == 0 && (rc = add_sparse(w, seq, off)) < 0) {
      zql_fail(err, rc, "out of memory appending %zu events", n);
      break;
    }
    build_frame(w, docs[i], &plan[i], seq);
    if (w->buf.oom) {
      rc = zql_fail(err, ZQL_E_NOMEM, "out of memory appending %zu events", n);
      break;
    }
    w->next_seq++;
    w->seg_count++;
    w->seg_last_len = (uint32_t)flen;
    if (plan[i].ts < w->seg_min_ts)
      w->seg_min_ts = plan[i].ts;
    if (plan[i].ts > w->seg_max_ts)
      w->seg_max_ts = plan[i].ts;
  }
  if (rc == 0)
    rc = flush_buf(w, err);
  if (rc < 0) {
    /* Nothing of a failed batch counts; the writer is broken (I/O) or the state must be
     * rolled back (out of memory before anything of this segment was written). */
    w->broken = true;
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_unlock(&w->append_mu);
    goto out;
  }
  w->written_seq = w->next_seq - 1;
  if (w->seg_end - w->hint_end >= HINT_EVERY)
    write_hint(w);
  pthread_mutex_unlock(&w->append_mu); /* the next batch may be written during our wait */
  if (w->opts.sync == ZQL_EVLOG_SYNC_ALWAYS)
    rc = wait_durable(w, w->written_seq, false, err);
  else if (w->opts.sync == ZQL_EVLOG_SYNC_BATCH)
    pthread_cond_broadcast(&w->cond); /* the syncer makes it durable within the interval */
  pthread_mutex_unlock(&w->mu);
  if (rc == 0 && first_seq)
    *first_seq = seq0;
out:
  if (plan != small)
    zql_free(plan);
  return rc;
}

int zql_evlog_sync(zql_evlog_t *w, zql_strbuf_t *err)
{
  pthread_mutex_lock(&w->mu);
  int rc;
  if (w->broken) {
    rc = zql_fail(err, ZQL_E_IO, "the event log '%s' had a write error; reopen it", w->evdir);
  } else {
    rc = wait_durable(w, w->written_seq, true, err);
  }
  pthread_mutex_unlock(&w->mu);
  return rc;
}

int zql_evlog_roll(zql_evlog_t *w, zql_strbuf_t *err)
{
  pthread_mutex_lock(&w->append_mu);
  pthread_mutex_lock(&w->mu);
  int rc = 0;
  if (w->broken)
    rc = zql_fail(err, ZQL_E_IO, "the event log '%s' had a write error; reopen it", w->evdir);
  else if (w->seg_count > 0)
    rc = seal(w, err);
  pthread_mutex_unlock(&w->mu);
  pthread_mutex_unlock(&w->append_mu);
  return rc;
}

int64_t zql_evlog_durable_seq(zql_evlog_t *w)
{
  pthread_mutex_lock(&w->mu);
  int64_t d = w->synced_seq;
  pthread_mutex_unlock(&w->mu);
  return d;
}

int64_t zql_evlog_last_seq(zql_evlog_t *w)
{
  pthread_mutex_lock(&w->mu);
  int64_t s = w->next_seq - 1;
  pthread_mutex_unlock(&w->mu);
  return s;
}

int zql_evlog_retain(zql_evlog_t *w, int64_t max_age_ms, uint64_t max_bytes, int64_t now_ms,
                     int *ndropped, zql_strbuf_t *err)
{
  if (ndropped)
    *ndropped = 0;
  pthread_mutex_lock(&w->append_mu);
  pthread_mutex_lock(&w->mu);
  uint64_t total = w->seg_end;
  for (size_t i = 0; i < w->nsealed; i++)
    total += w->sealed[i].bytes;
  size_t drop = 0;
  while (drop < w->nsealed) {
    const sealed_seg_t *s = &w->sealed[drop];
    bool old = max_age_ms > 0 && s->max_ts < now_ms - max_age_ms;
    bool big = max_bytes > 0 && total > max_bytes;
    if (!old && !big)
      break;
    total -= s->bytes;
    drop++;
  }
  int rc = 0;
  size_t done = 0;
  for (; done < drop; done++) {
    char path[4096];
    seg_path(path, sizeof path, w->evdir, w->sealed[done].first_seq, true);
    if (unlink(path) < 0 && errno != ENOENT) {
      rc = zql_fail(err, ZQL_E_IO, "cannot remove '%s': %s", path, strerror(errno));
      break;
    }
  }
  if (done > 0) {
    memmove(w->sealed, w->sealed + done, (w->nsealed - done) * sizeof *w->sealed);
    w->nsealed -= done;
    int r2 = zql_evlog_fsync_dir(w->evdir, rc < 0 ? NULL : err);
    if (rc == 0)
      rc = r2;
  }
  pthread_mutex_unlock(&w->mu);
  pthread_mutex_unlock(&w->append_mu);
  if (ndropped)
    *ndropped = (int)done;
  return rc;
}

int zql_evlog_close(zql_evlog_t *w, zql_strbuf_t *err)
{
  if (!w)
    return 0;
  int rc = 0;
  if (w->syncer_running) {
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->syncer, NULL);
    w->syncer_running = false;
  }
  pthread_mutex_lock(&w->append_mu);
  pthread_mutex_lock(&w->mu);
  while (w->syncing)
    pthread_cond_wait(&w->cond, &w->mu);
  if (!w->broken && w->written_seq > w->synced_seq && fdatasync(w->fd) < 0)
    rc = zql_fail(err, ZQL_E_IO, "cannot fdatasync the event log '%s': %s", w->evdir,
                        strerror(errno));
  if (!rc)
    write_hint(w);
  pthread_mutex_unlock(&w->mu);
  pthread_mutex_unlock(&w->append_mu);
  evlog_free(w);
  return rc;
}
