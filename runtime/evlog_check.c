/*
 * evlog_check.c -- `zql log check [--repair]`'s engine: verify every byte of an event
 * log that has a check, and repair what a crash can leave (runtime services; the
 * redis-check-aof of zql).
 *
 * Interface (evlog.h): zql_evlog_check(dir, repair, report, result, err).
 *
 * Checks, in order, each problem a line "events/FILE: offset N: what" in the report:
 *  - the directory listing (names, one .open at most and last: zql_evlog_list);
 *  - per sealed segment: header (magic, version, CRC, first _seq = name), trailer
 *    (footer and index CRCs), every record (length, CRC, dense _seq, document length)
 *    up to the index offset, and the index's contents against the records (first/last
 *    _seq, count, min/max timestamp, every sparse entry's _seq and offset);
 *  - the .open segment: header and the valid prefix of records; what follows is a torn
 *    tail (or a complete trailer: an interrupted seal);
 *  - _seq continuity from each segment to the next.
 *
 * The lock: check tries the writer lock. When a writer holds it, the bytes after the
 * .open's valid prefix may be a write in progress, so they are noted, not counted as a
 * problem (res->writer_active), and --repair refuses (ZQL_E_LOCKED). Repairs only touch
 * the .open segment: truncate the torn tail, finish the seal, or remove an .open whose
 * header was never completed and that holds nothing. Sealed data is never changed.
 */
#include "runtime/base/zql_common.h"

#include <time.h>

#include "runtime/evlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/evlog_int.h"

typedef struct ck {
  const char *evdir;
  zql_strbuf_t *report;
  zql_evlog_check_result_t *res;
} ck_t;

static void problem(ck_t *k, const char *name, uint64_t off, const char *fmt, ...)
    ZQL_PRINTF(4, 5);
static void problem(ck_t *k, const char *name, uint64_t off, const char *fmt, ...)
{
  k->res->problems++;
  if (!k->report)
    return;
  zql_strbuf_addf(k->report, "events/%s: offset %" PRIu64 ": ", name, off);
  va_list ap;
  va_start(ap, fmt);
  zql_strbuf_vaddf(k->report, fmt, ap);
  va_end(ap);
  zql_strbuf_addc(k->report, '\n');
}

static void remark(ck_t *k, const char *fmt, ...) ZQL_PRINTF(2, 3);
static void remark(ck_t *k, const char *fmt, ...)
{
  if (!k->report)
    return;
  va_list ap;
  va_start(ap, fmt);
  zql_strbuf_vaddf(k->report, fmt, ap);
  va_end(ap);
  zql_strbuf_addc(k->report, '\n');
}

/* Check the sealed segment in buf; returns its last _seq (first - 1 when unusable). */
static int64_t check_sealed(ck_t *k, const evlog_entry_t *e, const uint8_t *buf, size_t size,
                            int64_t first)
{
  const char *why;
  evlog_summary_t t;
  if (zql_evlog_trailer_parse(buf, size, size, &t, &why) < 0) {
    problem(k, e->name, size >= EVLOG_FOOTER_SIZE ? size - EVLOG_FOOTER_SIZE : 0, "%s", why);
    /* still verify the records we can find */
    evlog_summary_t s;
    int st = zql_evlog_scan(buf, size, first, 1, true, &s, NULL, &why);
    k->res->records += s.count;
    if (st == EVLOG_FRAME_BAD)
      problem(k, e->name, s.data_end, "%s", why);
    return s.last_seq;
  }
  evlog_summary_t s;
  int st = zql_evlog_scan(buf, (size_t)t.data_end, first, 1, true, &s, NULL, &why);
  k->res->records += s.count;
  if (st != EVLOG_FRAME_OK) {
    problem(k, e->name, s.data_end, "%s",
            st == EVLOG_FRAME_BAD ? why : "incomplete record before the index");
    return t.last_seq; /* the index still tells where the next segment must start */
  }
  if (t.first_seq != first || t.last_seq != s.last_seq || t.count != s.count)
    problem(k, e->name, t.data_end,
            "index says _seq %" PRId64 "..%" PRId64 " (%" PRIu64 " records), the records are %" PRId64
            "..%" PRId64 " (%" PRIu64 ")",
            t.first_seq, t.last_seq, t.count, s.first_seq, s.last_seq, s.count);
  else if (t.min_ts != s.min_ts || t.max_ts != s.max_ts)
    problem(k, e->name, t.data_end, "index timestamp range disagrees with the records");
  else {
    /* every sparse entry must point at the frame of its _seq */
    for (uint32_t i = 0; i < t.nsparse; i++) {
      int64_t seq;
      uint64_t off;
      zql_evlog_sparse_get(&t, i, &seq, &off);
      zql_evlog_view_t v;
      size_t flen;
      if (zql_evlog_frame_parse(buf + off, (size_t)(t.data_end - off), seq, true, &v, &flen,
                                &why) != EVLOG_FRAME_OK) {
        problem(k, e->name, t.data_end, "sparse index entry %u (_seq %" PRId64
                ") does not point at its record", i, seq);
        break;
      }
    }
  }
  return t.last_seq;
}

/* Check (and repair) the .open segment; returns its last valid _seq. */
static int64_t check_open(ck_t *k, const evlog_entry_t *e, int fd, const char *path,
                          const uint8_t *buf, size_t size, bool repair)
{
  const char *why;
  int64_t first;
  if (zql_evlog_header_parse(buf, size, &first, &why) < 0) {
    if (size <= EVLOG_HDR_SIZE && k->res->writer_active) {
      remark(k, "events/%s: being created by the writer", e->name);
      return e->first_seq - 1;
    }
    problem(k, e->name, 0, "%s", why);
    if (repair && size <= EVLOG_HDR_SIZE) {
      if (unlink(path) == 0 && zql_evlog_fsync_dir(k->evdir, NULL) == 0) {
        k->res->repaired++;
        remark(k, "events/%s: removed (it held no records)", e->name);
      }
    }
    return e->first_seq - 1;
  }
  if (first != e->first_seq) {
    problem(k, e->name, 16, "header _seq %" PRId64 " disagrees with the file name", first);
    return e->first_seq - 1;
  }
  evlog_summary_t s;
  int st = zql_evlog_scan(buf, size, first, 1, true, &s, NULL, &why);
  k->res->records += s.count;
  if (st == EVLOG_FRAME_OK)
    return s.last_seq;
  if (k->res->writer_active) {
    remark(k, "events/%s: %zu bytes after offset %" PRIu64 " not complete yet (a writer is active)",
           e->name, size - (size_t)s.data_end, s.data_end);
    return s.last_seq;
  }
  evlog_summary_t t;
  const char *why2;
  if (s.count > 0 &&
      zql_evlog_trailer_parse(buf + s.data_end, size - s.data_end, size, &t, &why2) == 0 &&
      t.data_end == s.data_end && t.count == s.count) {
    problem(k, e->name, s.data_end, "interrupted seal (the index is complete, the rename is not)");
    if (repair) {
      char to[4096];
      snprintf(to, sizeof to, "%s/", k->evdir);
      size_t l = strlen(to);
      zql_evlog_name(to + l, first, true);
      if (rename(path, to) == 0 && zql_evlog_fsync_dir(k->evdir, NULL) == 0) {
        k->res->repaired++;
        remark(k, "events/%s: sealed", e->name);
      }
    }
    return s.last_seq;
  }
  problem(k, e->name, s.data_end, "torn tail: %zu bytes after the last valid record (%s)",
          size - (size_t)s.data_end, st == EVLOG_FRAME_BAD ? why : "incomplete record");
  if (repair) {
    if (ftruncate(fd, (off_t)s.data_end) == 0 && fsync(fd) == 0) {
      k->res->repaired++;
      remark(k, "events/%s: truncated to %" PRIu64 " bytes (%" PRIu64 " records kept)", e->name,
             s.data_end, s.count);
    } else {
      remark(k, "events/%s: cannot truncate: %s", e->name, strerror(errno));
    }
  }
  return s.last_seq;
}

static int check_once(const char *dir, bool repair, zql_strbuf_t *report,
                    zql_evlog_check_result_t *res, zql_strbuf_t *err)
{
  memset(res, 0, sizeof *res);
  size_t dl = strlen(dir);
  char *evdir = zql_malloc(dl + sizeof "/events");
  if (!evdir)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory");
  memcpy(evdir, dir, dl);
  memcpy(evdir + dl, "/events", sizeof "/events");
  ck_t k = {evdir, report, res};
  int lock_fd = -1;
  evlog_entry_t *ents = NULL;
  size_t n = 0;
  int rc = zql_evlog_lock(evdir, &lock_fd, NULL);
  if (rc == ZQL_E_LOCKED) {
    if (repair) {
      rc = zql_evlog_lock(evdir, &lock_fd, err);
      goto out;
    }
    res->writer_active = true;
  } else if (rc < 0) {
    /* no directory, or read-only: plain checks still work when the listing does */
    lock_fd = -1;
    if (repair) {
      rc = zql_evlog_lock(evdir, &lock_fd, err);
      goto out;
    }
  }
  if ((rc = zql_evlog_list(evdir, &ents, &n, err)) < 0)
    goto out;
  int64_t prev_last = 0;
  /* Follow the chain by name from the first listed segment (segment NNN is followed by
   * segment last_seq + 1): readdir() can miss files that an active writer creates and
   * seals while we list. A listed segment the chain does not reach is checked too. */
  size_t li = 0;
  evlog_entry_t cur;
  bool have = n > 0, first_seg = true;
  if (have)
    cur = ents[0];
  while (have) {
    const evlog_entry_t *e = &cur;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", evdir, e->name);
    int fd = open(path, (repair && !e->sealed ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && !e->sealed) {
      /* sealed since we looked: check the .seg instead */
      zql_evlog_name(cur.name, cur.first_seq, true);
      cur.sealed = true;
      snprintf(path, sizeof path, "%s/%s", evdir, e->name);
      fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
      rc = zql_fail(err, ZQL_E_IO, "cannot open '%s': %s", path, strerror(errno));
      goto out;
    }
    uint8_t *buf = NULL;
    size_t size = 0;
    rc = zql_evlog_read_file(fd, path, &buf, &size, err);
    if (rc < 0) {
      close(fd);
      goto out;
    }
    res->segments++;
    const char *why;
    int64_t first = e->first_seq, last;
    if (!first_seg && first != prev_last + 1)
      problem(&k, e->name, 16, "starts at _seq %" PRId64 " but the previous segment ends at %" PRId64,
              first, prev_last);
    first_seg = false;
    if (e->sealed) {
      int64_t hs;
      if (zql_evlog_header_parse(buf, size, &hs, &why) < 0) {
        problem(&k, e->name, 0, "%s", why);
        last = first - 1;
      } else if (hs != first) {
        problem(&k, e->name, 16, "header _seq %" PRId64 " disagrees with the file name", hs);
        last = first - 1;
      } else {
        last = check_sealed(&k, e, buf, size, first);
      }
    } else {
      last = check_open(&k, e, fd, path, buf, size, repair);
    }
    prev_last = last;
    zql_free(buf);
    close(fd);
    if (!e->sealed)
      break; /* the .open segment is the last one */
    /* the next segment by name (.seg, .open, .seg again: it may be sealed meanwhile) */
    int64_t next = last + 1;
    have = false;
    for (int probe = 0; probe < 3 && !have && last >= first; probe++) {
      char np[4096];
      evlog_entry_t cand;
      cand.first_seq = next;
      cand.sealed = probe != 1;
      zql_evlog_name(cand.name, next, cand.sealed);
      snprintf(np, sizeof np, "%s/%s", evdir, cand.name);
      if (access(np, F_OK) == 0) {
        cur = cand;
        have = true;
      }
    }
    if (!have) { /* continue with the next listed segment, if any (the gap is a problem) */
      while (li < n && ents[li].first_seq <= first)
        li++;
      if (li < n) {
        cur = ents[li];
        have = true;
      }
    }
  }
  rc = 0;
out:
  zql_free(ents);
  if (lock_fd >= 0)
    close(lock_fd);
  zql_free(evdir);
  return rc;
}

/*
 * Next to an active writer, a listing and the files read after it can disagree while a
 * segment is being sealed (see zql_evlog_list): a check that finds problems while a writer
 * is active is run again, a few times, and only problems that persist are reported.
 */
int zql_evlog_check(const char *dir, bool repair, zql_strbuf_t *report,
                    zql_evlog_check_result_t *res, zql_strbuf_t *err)
{
  int rc = 0;
  for (int attempt = 0; attempt < 10; attempt++) {
    size_t mark = report ? report->len : 0;
    rc = check_once(dir, repair, report, res, err);
    if (rc < 0 || !res->writer_active || res->problems == 0 || attempt == 9)
      return rc;
    if (report) { /* forget this attempt's lines */
      report->len = mark;
      report->buf[mark] = '\0';
    }
    struct timespec ts = {0, 2000000L * (attempt + 1)};
    nanosleep(&ts, NULL);
  }
  return rc;
}
