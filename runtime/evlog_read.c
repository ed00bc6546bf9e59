/*
 * evlog_read.c -- event log readers: snapshots, range cursors, chunking (runtime
 * services; what map stages and `zql export` read events through).
 *
 * Interface (evlog.h): zql_evlog_reader_open -> zql_evlog_cursor_open -> _cursor_next*
 * -> _cursor_close -> zql_evlog_reader_close; zql_evlog_split plans map tasks.
 *
 * A reader is a snapshot taken without any lock. Sealed segments are immutable: each is
 * mmap()ed whole and its trailer parsed (footer, then index block, both CRC-checked), so
 * opening costs no record scan. The .open segment is being appended to: it is mapped up
 * to its size at open and its frames are walked (lengths, document framing, consecutive
 * _seq: no CRC, which the cursors check); the complete frames are the snapshot. That is
 * exact for a live writer: write() makes bytes visible below the file size only once they
 * are copied, so a record still being written extends past the size and is left out, and
 * a stale or zero tail never carries the next _seq. A tail torn by a system crash (a
 * header on disk, its document not) is found by the CRC check when a cursor reads it --
 * ZQL_E_CORRUPT until the writer's recovery or `zql log check --repair` cuts it. (Checking
 * the CRCs at open would cost an incremental run over the newest events a serial pass over
 * the whole .open segment, up to 64 MiB, at every start.) The writer's hint file
 * (NNN.hint: the segment's index so far, docs/formats.md) spares even the walk over the
 * records it covers, once checked against the file (use_hint). The writer may seal
 * (rename) the .open between the directory listing and our open(): then NNN.seg is opened
 * instead.
 *
 * Cursors prune whole segments with the index (_seq range, min/max timestamp), start
 * inside a segment at the last sparse entry at or before the wanted _seq, and stop at
 * the first _seq past the range. Every record a cursor returns is CRC-checked (CRC-32C
 * runs at memory speed with SSE4.2, in the map workers); a bad one is ZQL_E_CORRUPT with
 * the file and offset. Records the range or time filter skips are only walked. Views point
 * into the mapping (no copy, no per-event allocation; valid until the reader is closed) or,
 * for a cursor that preads (the executor's: zql_evlog_cursor_use_pread), into the cursor's
 * window of 128 KiB, refilled by pread and valid until the cursor's next call. Mapping a
 * page costs a fault, and unmapping it -- at close, or earlier to keep a long scan's
 * resident set small -- a TLB shootdown on every CPU running the process's threads; for
 * records read once, that is more than the copy.
 *
 * Chunking estimates the byte position of a _seq by linear interpolation between sparse
 * index entries (and the segment's data end), sums positions over segments, cuts the byte
 * range into n equal parts and maps each cut back to a _seq, moved to the nearest sparse
 * entry when one is within a quarter of a chunk (so that the chunk's cursor starts there).
 */
#include "runtime/base/zql_common.h"


#include "runtime/evlog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/evlog_int.h"

typedef struct rseg {
  zql_evlog_seginfo_t info;
  char name[EVLOG_NAME_DIGITS + 6];
  evlog_summary_t s;
  const uint8_t *base; /* mapping; NULL: a sealed segment not mapped yet (seg_map) */
  uint8_t *tail;       /* sealed: the index block and footer, read at open (s points in) */
  size_t size;
  bool mapped;
  int fd; /* for cursors that pread: opened on first use (seg_fd); -1 not yet, -2 failed */
  uint64_t pos0; /* bytes of data of the segments before this one */
  /* A sealed segment wholly at or before the reader's map_after, known at open by its
   * name and its successor's only (no file read): lazy_first..lazy_last never change;
   * `loaded` (under the reader's mu) once a cursor entered it and its index was read. */
  bool lazy, loaded;
  int64_t lazy_first, lazy_last;
  uint64_t lazy_bytes; /* its data bytes as estimated at open (positions, chunk sizes) */
} rseg_t;

struct zql_evlog_reader {
  char *evdir;
  rseg_t *segs;
  size_t n;
  int64_t first_seq, last_seq;
  uint64_t total;     /* data bytes of all segments */
  int64_t map_after;  /* sealed segments holding a _seq above this are mapped at open;
                         those wholly at or before it are read only if a cursor enters */
  pthread_mutex_t mu; /* seg_map (cursors in several threads) */
};

struct zql_evlog_cursor {
  zql_evlog_reader_t *r;
  zql_evlog_range_t range;
  size_t seg;   /* current segment */
  size_t off;   /* offset in it; 0: not positioned yet */
  int64_t next; /* _seq expected at off */
  bool done;
  /* zql_evlog_cursor_use_pread: records are read into buf, which holds segment bseg's
   * bytes [boff, boff + blen) */
  bool pread;
  uint8_t *buf;
  size_t bcap, bseg, boff, blen;
};

void zql_evlog_range_all(zql_evlog_range_t *range)
{
  range->seq_lo = INT64_MIN;
  range->seq_hi = INT64_MAX;
  range->ts_lo = INT64_MIN;
  range->ts_hi = INT64_MAX;
}

void zql_evlog_reader_close(zql_evlog_reader_t *r)
{
  if (!r)
    return;
  for (size_t i = 0; i < r->n; i++) {
    rseg_t *g = &r->segs[i];
    if (g->mapped)
      munmap((void *)g->base, g->size);
    if (g->fd >= 0)
      close(g->fd);
    zql_free(g->tail);
    zql_free(g->s.sparse);
  }
  pthread_mutex_destroy(&r->mu);
  zql_free(r->segs);
  zql_free(r->evdir);
  zql_free(r);
}

static int pread_all(int fd, void *buf, size_t n, off_t at)
{
  uint8_t *p = buf;
  while (n > 0) {
    ssize_t k = pread(fd, p, n, at);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      if (k == 0)
        errno = EIO; /* shorter than its size said */
      return -1;
    }
    p += k;
    n -= (size_t)k;
    at += k;
  }
  return 0;
}

/* Whether the frame at off (before end) is a whole record with _seq seq, read through fd
 * into *buf (grown as needed) rather than through the mapping: checking a hint touches one
 * page per sparse entry, ~100 of a full .open segment, and their page faults would come
 * one by one before the map workers start. *flen is the frame's length. */
static bool frame_at(int fd, uint64_t off, uint64_t end, int64_t seq, uint8_t **buf,
                     size_t *cap, size_t *flen)
{
  size_t want = 512;
  for (;;) {
    size_t n = end - off < want ? (size_t)(end - off) : want;
    if (n > *cap) {
      uint8_t *g = zql_realloc(*buf, n);
      if (!g)
        return false;
      *buf = g;
      *cap = n;
    }
    if (pread_all(fd, *buf, n, (off_t)off) != 0)
      return false;
    zql_evlog_view_t v;
    const char *why = NULL;
    evlog_frame_status_t st = zql_evlog_frame_parse(*buf, n, seq, false, &v, flen, &why);
    if (st != EVLOG_FRAME_SHORT || n < want || n < 8)
      return st == EVLOG_FRAME_OK;
    want = 8 + (size_t)evlog_ld32(*buf); /* a record larger than the window */
  }
}

/* Do the frames from the one at off (_seq seq) end exactly at end, the last with _seq
 * last? The records are read at once when they take at most 8 MiB (a stride of huge
 * records is walked one record at a time). buf, cap: frame_at's. */
static bool walk_to(int fd, uint64_t off, int64_t seq, uint64_t end, int64_t last,
                    uint8_t **buf, size_t *cap)
{
  size_t span = (size_t)(end - off);
  if (span <= ((size_t)8 << 20) && span > *cap) {
    uint8_t *g = zql_realloc(*buf, span);
    if (!g)
      return false;
    *buf = g;
    *cap = span;
  }
  if (span <= *cap) {
    if (pread_all(fd, *buf, span, (off_t)off) != 0)
      return false;
    size_t at = 0;
    while (at < span) {
      zql_evlog_view_t v;
      size_t flen;
      const char *why = NULL;
      if (zql_evlog_frame_parse(*buf + at, span - at, seq, false, &v, &flen, &why) !=
          EVLOG_FRAME_OK)
        return false;
      at += flen;
      seq++;
    }
    off = end;
  } else {
    while (off < end) {
      size_t flen;
      if (!frame_at(fd, off, end, seq, buf, cap, &flen))
        return false;
      off += flen;
      seq++;
    }
  }
  return off == end && seq - 1 == last;
}

/* The writer's hint for the .open segment first (evlog.c write_hint): its index so far.
 * Used only when it agrees with the file (fd, size bytes): every sparse entry starts a
 * frame with its _seq, and the last record -- of the length the hint gives -- ends exactly
 * at the hint's data_end with its last _seq (a hint without that length: the frames after
 * the last sparse entry are walked to data_end). Then *s describes the records up to
 * data_end (sparse copied). */
static bool use_hint(const zql_evlog_reader_t *r, int fd, size_t size, int64_t first,
                     evlog_summary_t *s)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%020" PRId64 ".hint", r->evdir, first);
  int hfd = open(path, O_RDONLY | O_CLOEXEC);
  if (hfd < 0)
    return false;
  uint8_t *h = NULL, *fb = NULL;
  size_t hl = 0, fcap = 0;
  int rc = zql_evlog_read_file(hfd, path, &h, &hl, NULL);
  close(hfd);
  if (rc < 0)
    return false;
  bool ok = false;
  const char *why = NULL;
  evlog_summary_t hs;
  int64_t *sp = NULL;
  if (hl < EVLOG_FOOTER_SIZE)
    goto done;
  uint64_t data_end = evlog_ld64(h + hl - EVLOG_FOOTER_SIZE);
  if (data_end < EVLOG_HDR_SIZE || data_end > size ||
      zql_evlog_trailer_parse(h, hl, data_end + hl, &hs, &why) < 0 || hs.first_seq != first ||
      hs.nsparse == 0)
    goto done;
  size_t cap = 64;
  while (cap < hs.nsparse)
    cap *= 2;
  if (!(sp = zql_malloc(cap * 2 * sizeof *sp)))
    goto done;
  for (uint32_t i = 0; i < hs.nsparse; i++) {
    int64_t seq;
    uint64_t off;
    size_t flen;
    zql_evlog_sparse_get(&hs, i, &seq, &off);
    if (off >= data_end || !frame_at(fd, off, data_end, seq, &fb, &fcap, &flen))
      goto done;
    sp[2 * i] = seq;
    sp[2 * i + 1] = (int64_t)off;
  }
  uint64_t off = (uint64_t)sp[2 * (hs.nsparse - 1) + 1];
  int64_t seq = sp[2 * (hs.nsparse - 1)];
  if (hs.last_len) {
    /* the last record, of the length the hint gives: it ends exactly at data_end with the
     * last _seq (one read, where walking the last stride read up to a stride of records) */
    size_t flen;
    if (hs.last_len > data_end - off ||
        !frame_at(fd, data_end - hs.last_len, data_end, hs.last_seq, &fb, &fcap, &flen) ||
        flen != hs.last_len)
      goto done;
  } else if (!walk_to(fd, off, seq, data_end, hs.last_seq, &fb, &fcap)) {
    goto done; /* a hint written before it kept that length: the last stride is walked */
  }
  *s = hs;
  s->sparse_raw = NULL;
  s->sparse = sp;
  sp = NULL;
  ok = true;
done:
  zql_free(sp);
  zql_free(fb);
  zql_free(h);
  return ok;
}

/* The index block and footer of a sealed segment of `size` bytes: the footer says where
 * the block starts (a footer that makes no sense yields just the footer, for trailer_parse
 * to reject with its own words). */
static int read_tail(int fd, const char *path, size_t size, uint8_t **out, size_t *len,
                     zql_strbuf_t *err)
{
  uint8_t f[EVLOG_FOOTER_SIZE];
  size_t n = size < EVLOG_FOOTER_SIZE ? size : EVLOG_FOOTER_SIZE;
  if (pread_all(fd, f, n, (off_t)(size - n)) != 0)
    return zql_fail(err, ZQL_E_IO, "cannot read '%s': %s", path, strerror(errno));
  if (n == EVLOG_FOOTER_SIZE) {
    uint64_t off = evlog_ld64(f);
    if (off >= EVLOG_HDR_SIZE && off < size - EVLOG_FOOTER_SIZE)
      n = size - (size_t)off;
  }
  uint8_t *b = zql_malloc(n ? n : 1);
  if (!b)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory reading '%s'", path);
  if (pread_all(fd, b, n, (off_t)(size - n)) != 0) {
    zql_free(b);
    return zql_fail(err, ZQL_E_IO, "cannot read '%s': %s", path, strerror(errno));
  }
  *out = b;
  *len = n;
  return 0;
}

/* Map sealed segment g's file (fd open on it). */
static int map_fd(rseg_t *g, int fd, const char *path, zql_strbuf_t *err)
{
  void *m = mmap(NULL, g->size, PROT_READ, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED)
    return zql_fail(err, ZQL_E_IO, "cannot map '%s': %s", path, strerror(errno));
  g->base = m;
  g->mapped = true;
  return 0;
}

/* A cursor enters sealed segment g: map it now if the open did not. The file is the one
 * the open read (a sealed segment never changes; its size is checked), unless retention
 * removed it since: then the reader's snapshot is gone and the caller is told so. */
static int load_seg(zql_evlog_reader_t *r, rseg_t *g, const evlog_entry_t *e, zql_strbuf_t *err);
static int seg_load_lazy(zql_evlog_reader_t *r, rseg_t *g, zql_strbuf_t *err);

static int seg_map(zql_evlog_reader_t *r, rseg_t *g, zql_strbuf_t *err)
{
  pthread_mutex_lock(&r->mu);
  int rc = g->lazy && !g->loaded ? seg_load_lazy(r, g, err) : 0;
  if (!rc && !g->base) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", r->evdir, g->name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 && errno == ENOENT)
      rc = zql_fail(err, ZQL_E_IO,
                          "'%s' was removed (log retention) while this reader was open; "
                          "run again", path);
    else if (fd < 0 || fstat(fd, &st) < 0)
      rc = zql_fail(err, ZQL_E_IO, "cannot open '%s': %s", path, strerror(errno));
    else if ((size_t)st.st_size != g->size)
      rc = zql_fail(err, ZQL_E_CORRUPT, "'%s' changed size since it was opened (%zu bytes, "
                          "now %jd): a sealed segment never changes", path, g->size,
                          (intmax_t)st.st_size);
    else
      rc = map_fd(g, fd, path, err);
    if (fd >= 0)
      close(fd);
  }
  pthread_mutex_unlock(&r->mu);
  return rc;
}

static int load_seg(zql_evlog_reader_t *r, rseg_t *g, const evlog_entry_t *e, zql_strbuf_t *err)
{
  char path[4096];
  bool sealed = e->sealed;
  snprintf(path, sizeof path, "%s/%s", r->evdir, e->name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && !sealed) {
    sealed = true; /* sealed since we listed the directory */
    zql_evlog_name(g->name, e->first_seq, true);
    snprintf(path, sizeof path, "%s/%s", r->evdir, g->name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0 && errno == ENOENT && sealed && r->last_seq < r->first_seq)
    return 1; /* removed by retention after we listed it: the log starts later */
  if (fd < 0)
    return zql_fail(err, ZQL_E_IO, "cannot open '%s': %s", path, strerror(errno));
  const char *why = NULL;
  int rc = 0;
  int64_t first = 0;
  if (sealed) {
    /* Only the header and the index are read (pread: no mapping to set up and tear down
     * for segments a cursor never enters); seg_map maps the records when one does. */
    struct stat st;
    if (fstat(fd, &st) < 0) {
      rc = zql_fail(err, ZQL_E_IO, "cannot stat '%s': %s", path, strerror(errno));
      goto out;
    }
    g->size = (size_t)st.st_size;
    uint8_t hdr[EVLOG_HDR_SIZE];
    if (g->size < EVLOG_HDR_SIZE || pread_all(fd, hdr, EVLOG_HDR_SIZE, 0) != 0) {
      rc = g->size < EVLOG_HDR_SIZE
               ? zql_fail(err, ZQL_E_CORRUPT, "'%s': offset 0: incomplete segment header", path)
               : zql_fail(err, ZQL_E_IO, "cannot read '%s': %s", path, strerror(errno));
      goto out;
    }
    if (zql_evlog_header_parse(hdr, EVLOG_HDR_SIZE, &first, &why) < 0 || first != e->first_seq) {
      rc = zql_fail(err, ZQL_E_CORRUPT, "'%s': offset 0: %s", path,
                          why ? why : "header _seq disagrees with the file name");
      goto out;
    }
    size_t tl = 0;
    if ((rc = read_tail(fd, path, g->size, &g->tail, &tl, err)) != 0)
      goto out;
    if (zql_evlog_trailer_parse(g->tail, tl, g->size, &g->s, &why) < 0 ||
        g->s.first_seq != first) {
      rc = zql_fail(err, ZQL_E_CORRUPT, "'%s': offset %zu: %s", path,
                          g->size - EVLOG_FOOTER_SIZE, why ? why : "index disagrees with the header");
      goto out;
    }
    g->info.bytes = g->size;
    if (g->s.last_seq > r->map_after && (rc = map_fd(g, fd, path, err)) != 0)
      goto out;
  } else {
    /* Mapped too, not copied: an incremental run over the newest events would otherwise
     * pay for reading the whole .open segment (up to 64 MiB) at every start. Safe because
     * nothing ever truncates a segment below a complete, CRC-valid record -- the only
     * bytes the scan below accepts and cursors touch (the writer's recovery and `log check
     * --repair` cut torn or corrupt tails only) -- so no access can fault (SIGBUS). */
    struct stat st;
    if (fstat(fd, &st) < 0) {
      rc = zql_fail(err, ZQL_E_IO, "cannot stat '%s': %s", path, strerror(errno));
      goto out;
    }
    g->size = (size_t)st.st_size;
    const uint8_t *buf = (const uint8_t *)"";
    if (g->size) {
      void *m = mmap(NULL, g->size, PROT_READ, MAP_SHARED, fd, 0);
      if (m == MAP_FAILED) {
        rc = zql_fail(err, ZQL_E_IO, "cannot map '%s': %s", path, strerror(errno));
        goto out;
      }
      g->base = buf = m;
      g->mapped = true;
    }
    if (zql_evlog_header_parse(buf, g->size, &first, &why) < 0) {
      if (g->size > EVLOG_HDR_SIZE) {
        rc = zql_fail(err, ZQL_E_CORRUPT, "'%s': offset 0: %s", path, why);
        goto out;
      }
      /* A segment being created: no records yet. */
      first = e->first_seq;
      memset(&g->s, 0, sizeof g->s);
      g->s.first_seq = first;
      g->s.last_seq = first - 1;
      g->s.min_ts = INT64_MAX;
      g->s.max_ts = INT64_MIN;
      g->s.data_end = EVLOG_HDR_SIZE;
      g->s.stride = ZQL_EVLOG_DEFAULT_STRIDE;
    } else if (use_hint(r, fd, g->size, first, &g->s)) {
      /* the writer's hint covers the records up to its data_end: walk only the rest */
      g->info.hinted = true;
      rc = zql_evlog_scan_from(buf, g->size, false, &g->s, &g->s.sparse, &why);
      if (rc < 0) {
        rc = zql_fail(err, rc, "out of memory reading '%s'", path);
        goto out;
      }
      rc = 0;
    } else {
      /* structure only: see the header comment (CRCs are checked as records are read);
       * every page is walked, so map them all at once rather than fault by fault */
#ifdef MADV_POPULATE_READ
      madvise((void *)(uintptr_t)buf, g->size, MADV_POPULATE_READ);
#endif
      rc = zql_evlog_scan(buf, g->size, first, ZQL_EVLOG_DEFAULT_STRIDE, false, &g->s,
                          &g->s.sparse, &why);
      if (rc < 0) {
        rc = zql_fail(err, rc, "out of memory reading '%s'", path);
        goto out;
      }
      rc = 0;
    }
    g->info.bytes = g->s.data_end;
  }
  g->info.sealed = sealed;
  g->info.count = g->s.count;
  g->info.first_seq = g->s.first_seq;
  g->info.last_seq = g->s.last_seq;
  g->info.min_ts = g->s.min_ts;
  g->info.max_ts = g->s.max_ts;
out:
  close(fd);
  return rc;
}

/* Segment g (sealed, named in e) holds _seq first..last, all at or before the reader's
 * map_after: set it up from that alone, for a reader that will likely never enter it (an
 * incremental run over the newest events of a long log would otherwise read the header
 * and index of every segment -- 43 files of the 10M-event benchmark, 0.5 ms, and more when
 * those pages have left the page cache -- or stat each, 0.2 ms). Its time range is unknown
 * until loaded (cursors treat it as anything); its bytes are estimated once the open is
 * done (estimate_lazy). */
static void seg_lazy(rseg_t *g, const evlog_entry_t *e, int64_t last)
{
  g->lazy = true;
  g->lazy_first = e->first_seq;
  g->lazy_last = last;
  memset(&g->s, 0, sizeof g->s);
  g->s.first_seq = e->first_seq;
  g->s.last_seq = last;
  g->s.count = (uint64_t)(last - e->first_seq + 1);
  g->s.min_ts = INT64_MIN;
  g->s.max_ts = INT64_MAX;
  g->s.data_end = EVLOG_HDR_SIZE; /* no data counted until estimate_lazy */
  g->info.sealed = true;
  g->info.count = g->s.count;
  g->info.first_seq = e->first_seq;
  g->info.last_seq = last;
  g->info.min_ts = INT64_MIN;
  g->info.max_ts = INT64_MAX;
}

/* The lazy segments' bytes, at the average bytes per record of the segments read (all of a
 * log's segments but the newest have the configured size), and every segment's position
 * with them: byte positions only size the chunks of a run (zql_evlog_split), so an
 * estimate does, and it never changes afterwards, which keeps positions monotonic. */
static void estimate_lazy(zql_evlog_reader_t *r)
{
  uint64_t bytes = 0, recs = 0;
  for (size_t i = 0; i < r->n; i++)
    if (!r->segs[i].lazy) {
      bytes += r->segs[i].s.data_end - EVLOG_HDR_SIZE;
      recs += r->segs[i].s.count;
    }
  double per = recs ? (double)bytes / (double)recs : 256.0;
  r->total = 0;
  for (size_t i = 0; i < r->n; i++) {
    rseg_t *g = &r->segs[i];
    g->pos0 = r->total;
    if (g->lazy) {
      g->lazy_bytes = (uint64_t)(per * (double)g->s.count);
      g->info.bytes = g->lazy_bytes + EVLOG_HDR_SIZE;
      r->total += g->lazy_bytes;
    } else {
      r->total += g->s.data_end - EVLOG_HDR_SIZE;
    }
  }
}

/* Read the header and index of lazy segment g, which must agree with what the open
 * assumed (r->mu held). */
static int seg_load_lazy(zql_evlog_reader_t *r, rseg_t *g, zql_strbuf_t *err)
{
  evlog_entry_t e;
  memset(&e, 0, sizeof e);
  memcpy(e.name, g->name, sizeof e.name < sizeof g->name ? sizeof e.name : sizeof g->name);
  e.first_seq = g->lazy_first;
  e.sealed = true;
  int rc = load_seg(r, g, &e, err);
  if (rc == 1)
    rc = zql_fail(err, ZQL_E_IO, "'%s/%s' was removed (log retention) while this "
                        "reader was open; run again", r->evdir, g->name);
  if (rc == 0 && (g->s.first_seq != g->lazy_first || g->s.last_seq != g->lazy_last))
    rc = zql_fail(err, ZQL_E_CORRUPT, "'%s/%s' changed since the reader was opened "
                        "(_seq %" PRId64 "..%" PRId64 ", expected ..%" PRId64 ")", r->evdir,
                        g->name, g->s.first_seq, g->s.last_seq, g->lazy_last);
  if (rc == 0)
    g->loaded = true;
  return rc;
}

/* One attempt at a snapshot; see zql_evlog_reader_open. */
static int reader_open_once(const char *dir, int64_t map_after, zql_evlog_reader_t **out,
                            zql_strbuf_t *err)
{
  *out = NULL;
  zql_evlog_reader_t *r = zql_calloc(1, sizeof *r);
  if (!r)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory opening a reader");
  pthread_mutex_init(&r->mu, NULL);
  r->map_after = map_after;
  size_t dl = strlen(dir);
  r->evdir = zql_malloc(dl + sizeof "/events");
  if (!r->evdir) {
    zql_free(r);
    return zql_fail(err, ZQL_E_NOMEM, "out of memory opening a reader");
  }
  memcpy(r->evdir, dir, dl);
  memcpy(r->evdir + dl, "/events", sizeof "/events");
  evlog_entry_t *ents = NULL;
  size_t n = 0;
  int rc = zql_evlog_list(r->evdir, &ents, &n, err);
  if (rc < 0)
    goto fail;
  size_t cap = n + 4;
  r->segs = zql_calloc(cap, sizeof *r->segs);
  if (!r->segs) {
    rc = zql_fail(err, ZQL_E_NOMEM, "out of memory opening a reader");
    goto fail;
  }
  r->first_seq = n ? ents[0].first_seq : 1;
  r->last_seq = r->first_seq - 1;
  /* The listing only tells where the log starts: from there the chain is followed by
   * name, segment NNN being followed by segment (its last _seq + 1), because readdir()
   * can miss a file that a busy writer creates and seals while we list. */
  size_t li = 0; /* the listed entry we start from */
  evlog_entry_t cur;
  if (n > 0)
    cur = ents[0];
  while (n > 0) {
    if (r->n == cap) {
      rseg_t *ns = zql_reallocarray(r->segs, cap * 2, sizeof *ns);
      if (!ns) {
        rc = zql_fail(err, ZQL_E_NOMEM, "out of memory opening a reader");
        goto fail;
      }
      memset(ns + cap, 0, cap * sizeof *ns);
      cap *= 2;
      r->segs = ns;
      for (size_t k = 0; k < r->n; k++)
        r->segs[k].info.name = r->segs[k].name;
    }
    rseg_t *g = &r->segs[r->n];
    memcpy(g->name, cur.name, sizeof g->name);
    g->info.name = g->name;
    g->fd = -1;
    r->n++;
    rc = 1;
    if (map_after != INT64_MIN && cur.sealed && li + 1 < n && ents[li].first_seq == cur.first_seq &&
        ents[li + 1].first_seq > cur.first_seq && ents[li + 1].first_seq - 1 <= map_after) {
      seg_lazy(g, &cur, ents[li + 1].first_seq - 1);
      rc = 0;
    }
    if (rc != 0 && (rc = load_seg(r, g, &cur, err)) < 0)
      goto fail;
    if (rc == 1) { /* the oldest segment vanished: the snapshot starts at the next one */
      r->n--;
      memset(g, 0, sizeof *g);
      if (++li >= n)
        break;
      cur = ents[li];
      r->first_seq = cur.first_seq;
      r->last_seq = r->first_seq - 1;
      continue;
    }
    if (g->s.first_seq != r->last_seq + 1) {
      rc = zql_fail(err, ZQL_E_CORRUPT,
                          "'%s/%s': starts at _seq %" PRId64 " but the previous segment ends at %" PRId64,
                          r->evdir, g->name, g->s.first_seq, r->last_seq);
      goto fail;
    }
    r->last_seq = g->s.last_seq;
    g->pos0 = r->total;
    r->total += g->s.data_end - EVLOG_HDR_SIZE;
    if (!g->info.sealed)
      break; /* the .open segment is the last one */
    /* the next segment: sealed, or being written (try .seg again in case it was sealed
     * between the two probes) */
    int64_t next = r->last_seq + 1;
    bool found = false;
    while (li + 1 < n && ents[li + 1].first_seq < next)
      li++;
    if (li + 1 < n && ents[li + 1].first_seq == next) { /* listed: no need to probe */
      cur = ents[++li];
      found = true;
    }
    for (int probe = 0; probe < 3 && !found; probe++) {
      bool sealed = probe != 1;
      char path[4096];
      zql_evlog_name(cur.name, next, sealed);
      snprintf(path, sizeof path, "%s/%s", r->evdir, cur.name);
      if (access(path, F_OK) == 0) {
        cur.first_seq = next;
        cur.sealed = sealed;
        found = true;
      }
    }
    if (!found) {
      /* the end, unless the listing knows of later segments: then one is missing */
      for (size_t k = 0; k < n; k++)
        if (ents[k].first_seq > next) {
          rc = zql_fail(err, ZQL_E_CORRUPT,
                              "'%s': no segment starts at _seq %" PRId64 " but '%s' starts later",
                              r->evdir, next, ents[k].name);
          goto fail;
        }
      break;
    }
  }
  zql_free(ents);
  if (map_after != INT64_MIN)
    estimate_lazy(r);
  *out = r;
  return 0;
fail:
  zql_free(ents);
  zql_evlog_reader_close(r);
  return rc;
}

/*
 * A snapshot is taken without any lock, so a writer can seal the .open segment, start the
 * next one and seal that too while we list and read: the pieces then disagree (a
 * segment that seems to start past the end of the previous one). That state never exists
 * on disk, so an inconsistent snapshot is taken again, a few times, with short pauses,
 * before the inconsistency is reported as corruption.
 */
typedef struct {
  const char *dir;
  int64_t map_after;
  zql_evlog_reader_t **out;
} open_args_t;

static int open_attempt(void *arg, zql_strbuf_t *err)
{
  open_args_t *a = arg;
  return reader_open_once(a->dir, a->map_after, a->out, err);
}

int zql_evlog_reader_open(const char *dir, zql_evlog_reader_t **out, zql_strbuf_t *err)
{
  return zql_evlog_reader_open_after(dir, INT64_MIN, out, err);
}

int zql_evlog_reader_open_after(const char *dir, int64_t after_seq, zql_evlog_reader_t **out,
                                zql_strbuf_t *err)
{
  open_args_t a = {dir, after_seq, out};
  return zql_evlog_retry_corrupt(open_attempt, &a, err);
}

size_t zql_evlog_reader_nsegments(const zql_evlog_reader_t *r)
{
  return r->n;
}

const zql_evlog_seginfo_t *zql_evlog_reader_segment(const zql_evlog_reader_t *r, size_t i)
{
  if (i >= r->n)
    return NULL;
  rseg_t *g = &((zql_evlog_reader_t *)(uintptr_t)r)->segs[i];
  if (g->lazy) { /* its times are asked for: read its index (if that fails, the unknown
                    times stay the widest, and a cursor entering it reports the error) */
    zql_evlog_reader_t *w = (zql_evlog_reader_t *)(uintptr_t)r;
    pthread_mutex_lock(&w->mu);
    if (!g->loaded) {
      zql_strbuf_t e = ZQL_STRBUF_INIT;
      seg_load_lazy(w, g, &e);
      zql_strbuf_release(&e);
    }
    pthread_mutex_unlock(&w->mu);
  }
  return &g->info;
}

uint64_t zql_evlog_reader_bytes(const zql_evlog_reader_t *r)
{
  uint64_t n = 0;
  for (size_t i = 0; i < r->n; i++)
    n += r->segs[i].lazy ? r->segs[i].lazy_bytes + EVLOG_HDR_SIZE /* estimate_lazy */
                         : r->segs[i].info.bytes;
  return n;
}

int64_t zql_evlog_reader_first_seq(const zql_evlog_reader_t *r)
{
  return r->first_seq;
}

int64_t zql_evlog_reader_last_seq(const zql_evlog_reader_t *r)
{
  return r->last_seq;
}

/* {==== cursors ====} */

int zql_evlog_cursor_open(zql_evlog_reader_t *r, const zql_evlog_range_t *range,
                          zql_evlog_cursor_t **out, zql_strbuf_t *err)
{
  zql_evlog_cursor_t *c = zql_calloc(1, sizeof *c);
  if (!c)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory opening a cursor");
  c->r = r;
  if (range)
    c->range = *range;
  else
    zql_evlog_range_all(&c->range);
  *out = c;
  return 0;
}

void zql_evlog_cursor_close(zql_evlog_cursor_t *c)
{
  if (c)
    zql_free(c->buf);
  zql_free(c);
}

void zql_evlog_cursor_use_pread(zql_evlog_cursor_t *c)
{
  c->pread = true;
}

/* Segment g's file, opened once for the cursors that pread (the reader's mu held). The
 * .open segment may have been sealed (renamed) since the reader opened it: its bytes up to
 * data_end are the same under the sealed name. err may be NULL. */
static int seg_fd(zql_evlog_reader_t *r, rseg_t *g, zql_strbuf_t *err)
{
  char path[4096];
  int e = 0;
  pthread_mutex_lock(&r->mu);
  if (g->fd == -1) {
    snprintf(path, sizeof path, "%s/%s", r->evdir, g->name);
    g->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (g->fd < 0 && errno == ENOENT && !g->info.sealed) {
      char sealed[sizeof g->name];
      zql_evlog_name(sealed, g->s.first_seq, true);
      snprintf(path, sizeof path, "%s/%s", r->evdir, sealed);
      g->fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (g->fd < 0) {
      e = errno;
      g->fd = -2; /* not again: the cursors read the mapping (window) */
    }
  }
  int fd = g->fd;
  pthread_mutex_unlock(&r->mu);
  if (fd >= 0)
    return 0;
  snprintf(path, sizeof path, "%s/%s", r->evdir, g->name);
  return zql_fail(err, ZQL_E_IO, "cannot open '%s': %s", path,
                  strerror(e ? e : ENOENT));
}

#define PREAD_WINDOW ((size_t)128 << 10) /* below the mmap threshold: the heap reuses it */

/* A cursor that preads: point *fp at the frame at c->off of segment g in buf, with *avail
 * bytes after it there -- the whole frame, unless the segment's data ends first (then
 * frame_parse says what is wrong). Refilling overwrites the records of the views this call
 * of cursor_next already filled: with got > 0 it returns 0, for the caller to hand those
 * out first. Returns 1, 0 or a negative error. */
static int window(zql_evlog_cursor_t *c, rseg_t *g, size_t got, const uint8_t **fp,
                  size_t *avail, zql_strbuf_t *err)
{
  size_t end = g->s.data_end;
  if (c->bseg == c->seg && c->off >= c->boff && c->off - c->boff + 8 <= c->blen) {
    size_t at = c->off - c->boff, have = c->blen - at;
    if (have >= 8 + (size_t)evlog_ld32(c->buf + at) || c->boff + c->blen >= end) {
      *fp = c->buf + at;
      *avail = have;
      return 1;
    }
  }
  if (got)
    return 0;
  if (seg_fd(c->r, g, NULL) != 0) {
    if (g->base) { /* removed (log retention) since the reader mapped it: read the mapping */
      *fp = g->base + c->off;
      *avail = end - c->off;
      return 1;
    }
    return seg_fd(c->r, g, err);
  }
  size_t want = PREAD_WINDOW;
  for (;;) {
    size_t n = end - c->off < want ? end - c->off : want;
    if (n > c->bcap) {
      uint8_t *b = zql_realloc(c->buf, n);
      if (!b)
        return zql_fail(err, ZQL_E_NOMEM, "out of memory reading '%s/%s'", c->r->evdir,
                        g->name);
      c->buf = b;
      c->bcap = n;
    }
    if (pread_all(g->fd, c->buf, n, (off_t)c->off) != 0)
      return zql_fail(err, ZQL_E_IO, "cannot read '%s/%s': %s", c->r->evdir, g->name,
                      strerror(errno));
    c->bseg = c->seg;
    c->boff = c->off;
    c->blen = n;
    /* a record larger than the window: read it whole (a length past the largest record
     * is left for frame_parse to reject) */
    size_t need = n >= 8 ? 8 + (size_t)evlog_ld32(c->buf) : 0;
    if (need > n && n < end - c->off && need <= 8 + EVLOG_FRAME_FIXED + ZQL_EVLOG_MAX_DOC) {
      want = need;
      continue;
    }
    break;
  }
  *fp = c->buf;
  *avail = c->blen;
  return 1;
}

/* Does segment g hold anything of the range? */
static bool seg_wanted(const rseg_t *g, const zql_evlog_range_t *q)
{
  return g->s.count > 0 && g->s.last_seq > q->seq_lo && g->s.first_seq <= q->seq_hi &&
         g->s.max_ts >= q->ts_lo && g->s.min_ts < q->ts_hi;
}

/* The offset and _seq of the last sparse entry at or before `seq`. */
static void seek(const evlog_summary_t *s, int64_t seq, size_t *off, int64_t *at)
{
  uint32_t lo = 0, hi = s->nsparse; /* find the last entry with entry.seq <= seq */
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    int64_t ms;
    uint64_t mo;
    zql_evlog_sparse_get(s, mid, &ms, &mo);
    if (ms <= seq)
      lo = mid;
    else
      hi = mid;
  }
  if (s->nsparse == 0) {
    *off = EVLOG_HDR_SIZE;
    *at = s->first_seq;
    return;
  }
  uint64_t o;
  zql_evlog_sparse_get(s, lo, at, &o);
  if (*at > seq) { /* seq before the segment */
    *off = EVLOG_HDR_SIZE;
    *at = s->first_seq;
    return;
  }
  *off = (size_t)o;
}

int zql_evlog_cursor_next(zql_evlog_cursor_t *c, zql_evlog_view_t *views, size_t max,
                          zql_strbuf_t *err)
{
  zql_evlog_reader_t *r = c->r;
  const zql_evlog_range_t *q = &c->range;
  size_t got = 0;
  while (got < max && !c->done && c->seg < r->n) {
    rseg_t *g = &r->segs[c->seg];
    if (c->off == 0) {
      if (g->lazy) { /* read its index only if the range reaches into it */
        if (g->lazy_first > q->seq_hi) {
          c->done = true;
          break;
        }
        if (g->lazy_last <= q->seq_lo) {
          c->seg++;
          continue;
        }
        int lrc = seg_map(r, g, err);
        if (lrc)
          return lrc;
      }
      if (g->s.first_seq > q->seq_hi) {
        c->done = true;
        break;
      }
      if (!seg_wanted(g, q)) {
        c->seg++;
        continue;
      }
      int mrc = g->base ? 0 : seg_map(r, g, err);
      if (mrc)
        return mrc;
      int64_t want = q->seq_lo < g->s.first_seq ? g->s.first_seq : q->seq_lo + 1;
      seek(&g->s, want, &c->off, &c->next);
    }
    while (got < max && c->off < g->s.data_end) {
      zql_evlog_view_t v;
      size_t flen;
      const char *why = "record extends past the index";
      const uint8_t *fp = g->base + c->off;
      size_t avail = g->s.data_end - c->off;
      if (c->pread) {
        int w = window(c, g, got, &fp, &avail, err);
        if (w < 0)
          return w;
        if (w == 0)
          return (int)got;
      }
      evlog_frame_status_t st = zql_evlog_frame_parse(fp, avail, c->next, false, &v, &flen, &why);
      if (st != EVLOG_FRAME_OK)
        return zql_fail(err, ZQL_E_CORRUPT, "'%s/%s': offset %zu: %s", r->evdir, g->name,
                              c->off, why);
      if (v.seq > q->seq_hi) {
        c->done = true;
        break;
      }
      size_t at = c->off;
      c->off += flen;
      c->next++;
      if (v.seq <= q->seq_lo || v.ts < q->ts_lo || v.ts >= q->ts_hi)
        continue;
      /* every record handed out is CRC-checked (only those: a range or time filter does
       * not pay for the records it skips) */
      if (!zql_evlog_frame_crc_ok(fp))
        return zql_fail(err, ZQL_E_CORRUPT, "'%s/%s': offset %zu: CRC mismatch",
                              r->evdir, g->name, at);
      views[got++] = v;
    }
    if (c->off >= g->s.data_end) {
      c->seg++;
      c->off = 0;
    }
  }
  return (int)got;
}

/* {==== chunking ====} */

/* Byte position (over all segments' data) where record `seq` starts; seq in
 * [first, last + 1]. */
static double seq_pos(const zql_evlog_reader_t *r, int64_t seq)
{
  for (size_t i = 0; i < r->n; i++) {
    const rseg_t *g = &r->segs[i];
    if (seq > g->s.last_seq)
      continue;
    if (seq < g->s.first_seq)
      seq = g->s.first_seq;
    if (g->lazy) /* by _seq, linearly over its estimated bytes, loaded or not */
      return (double)g->pos0 +
             (double)g->lazy_bytes * (double)(seq - g->lazy_first) / (double)(g->lazy_last - g->lazy_first + 1);
    size_t off;
    int64_t at;
    seek(&g->s, seq, &off, &at);
    /* interpolate between this entry and the next one (or the data end); the next: the
     * first entry past `at`, found by bisection (split calls this for every step of its
     * own bisection, so a scan of the entries cost a run over 100k events 0.05 ms) */
    int64_t nseq = g->s.last_seq + 1;
    uint64_t noff = g->s.data_end;
    uint32_t klo = 0, khi = g->s.nsparse;
    while (klo < khi) {
      uint32_t mid = klo + (khi - klo) / 2;
      int64_t ks;
      uint64_t ko;
      zql_evlog_sparse_get(&g->s, mid, &ks, &ko);
      if (ks > at)
        khi = mid;
      else
        klo = mid + 1;
    }
    if (klo < g->s.nsparse)
      zql_evlog_sparse_get(&g->s, klo, &nseq, &noff);
    double frac = nseq > at ? (double)(seq - at) / (double)(nseq - at) : 0.0;
    return (double)g->pos0 + (double)(off - EVLOG_HDR_SIZE) +
           frac * (double)(noff - off);
  }
  return (double)r->total;
}

/* The _seq whose start is nearest to byte position pos. */
static int64_t pos_seq(const zql_evlog_reader_t *r, double pos)
{
  int64_t lo = r->first_seq, hi = r->last_seq + 1; /* positions are monotonic in seq */
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (seq_pos(r, mid) < pos)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* The _seq of the sparse entry nearest to record seq, in seq's segment (its data end
 * counts: the next segment's first record is an entry of that one); seq itself in a
 * segment whose index is not read. A cursor that starts at an entry reads no record
 * before its first: one that starts elsewhere reads and walks the records from the entry
 * before, up to a stride (1024 by default, about 250 KiB of events). */
static int64_t sparse_near(const zql_evlog_reader_t *r, int64_t seq)
{
  for (size_t i = 0; i < r->n; i++) {
    const rseg_t *g = &r->segs[i];
    if (g->lazy ? seq > g->lazy_last : seq > g->s.last_seq)
      continue;
    if (g->lazy || seq <= g->s.first_seq || g->s.stride == 0)
      return seq;
    size_t off;
    int64_t at;
    seek(&g->s, seq, &off, &at);
    int64_t next = at + (int64_t)g->s.stride;
    if (next > g->s.last_seq + 1)
      next = g->s.last_seq + 1;
    return seq - at <= next - seq ? at : next;
  }
  return seq;
}

int zql_evlog_split(const zql_evlog_reader_t *r, int64_t lo, int64_t hi, size_t n,
                    int64_t *bounds, zql_strbuf_t *err)
{
  (void)err;
  if (lo < r->first_seq - 1)
    lo = r->first_seq - 1;
  if (hi > r->last_seq)
    hi = r->last_seq;
  if (n == 0 || hi <= lo)
    return 0;
  double p0 = seq_pos(r, lo + 1), p1 = seq_pos(r, hi + 1);
  /* a chunk starts at a sparse entry when one lies within a quarter of a chunk's records
   * of the cut: in a run over the newest 100k events (16 chunks of 6k), each chunk read
   * and walked 500 records on average before its first */
  int64_t slack = (hi - lo) / (int64_t)n / 4;
  size_t k = 0;
  bounds[k++] = lo;
  for (size_t i = 1; i < n; i++) {
    /* chunk boundary b: records up to b are in the chunk, so b + 1 starts the next */
    int64_t first = pos_seq(r, p0 + (p1 - p0) * (double)i / (double)n);
    int64_t near = sparse_near(r, first);
    if (near - first <= slack && first - near <= slack)
      first = near;
    int64_t b = first - 1;
    if (b > bounds[k - 1] && b < hi)
      bounds[k++] = b;
  }
  bounds[k++] = hi;
  return (int)(k - 1);
}
