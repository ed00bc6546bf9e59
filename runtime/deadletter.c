/*
 * deadletter.c -- the dead-letter file of rejected events (zqld ingest, runtime services).
 *
 * What: the per-day NDJSON files of events zqld refused (format and contract in
 * deadletter.h). Pipeline position: beside the event log; zqld's writer thread adds a
 * line for every event ingest.c or the log rejected and flushes once per batch.
 *
 * How: a line is built as a BSON document {received, source, peer, reason, class, event |
 * raw...} and printed with bson_as_canonical_extended_json, so it reads back with any
 * extended-JSON parser; raw bytes are base64 (RFC 4648 section 4) text. Lines collect in
 * `pending` and go to the file in one write(2) per flush. The day's file is opened with
 * O_APPEND the first time a line of that UTC day is added; if it does not end with '\n'
 * (a torn write) a newline is written before anything else.
 */
#include "runtime/base/zql_common.h"

#include "runtime/deadletter.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

#define DAY_MS 86400000LL

struct zql_deadletter {
  char *dir;
  int fd;              /* the open day's file, or -1 */
  int64_t day;         /* its day number (UTC days since 1970), valid when fd >= 0 */
  int64_t pend_day;    /* the day of the pending lines */
  char path[PATH_MAX]; /* its path, for messages */
  zql_strbuf_t pending;
  size_t pending_lines;
  zql_deadletter_stats_t st;
};

/* mkdir -p, mode 0750 for what it creates. */
static int make_dirs(const char *dir, zql_strbuf_t *err)
{
  size_t n = strlen(dir);
  char *p = zql_strndup(dir, n);
  if (!p)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory");
  int rc = 0;
  for (size_t k = 1; k <= n && rc == 0; k++) {
    if (p[k] != '/' && p[k] != '\0')
      continue;
    char c = p[k];
    p[k] = '\0';
    if (mkdir(p, 0750) != 0 && errno != EEXIST)
      rc = zql_fail(err, ZQL_E_IO, "cannot create directory '%s': %s", p, strerror(errno));
    p[k] = c;
  }
  struct stat sb;
  if (rc == 0 && (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
    rc = zql_fail(err, ZQL_E_IO, "dead-letter directory '%s' is not a directory", dir);
  zql_free(p);
  return rc;
}

int zql_deadletter_open(const char *dir, zql_deadletter_t **out, zql_strbuf_t *err)
{
  *out = NULL;
  if (strlen(dir) + 32 > PATH_MAX)
    return zql_fail(err, ZQL_E_IO, "dead-letter directory name too long: '%s'", dir);
  int rc = make_dirs(dir, err);
  if (rc != 0)
    return rc;
  zql_deadletter_t *dl = zql_calloc(1, sizeof *dl);
  if (!dl || !(dl->dir = zql_strndup(dir, strlen(dir)))) {
    zql_free(dl);
    return zql_fail(err, ZQL_E_NOMEM, "out of memory");
  }
  dl->fd = -1;
  zql_strbuf_init(&dl->pending);
  *out = dl;
  return 0;
}

const char *zql_deadletter_dir(const zql_deadletter_t *dl)
{
  return dl->dir;
}

static int64_t day_of(int64_t ms)
{
  return ms >= 0 ? ms / DAY_MS : -((-ms + DAY_MS - 1) / DAY_MS);
}

static int write_all(int fd, const char *p, size_t n)
{
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Open (append) the file of `day`, closing another day's file (fdatasynced first). */
static int open_day(zql_deadletter_t *dl, int64_t day, zql_strbuf_t *err)
{
  if (dl->fd >= 0 && dl->day == day)
    return 0;
  if (dl->fd >= 0) {
    int r = fdatasync(dl->fd);
    int e = errno;
    close(dl->fd);
    dl->fd = -1;
    if (r != 0)
      return zql_fail(err, ZQL_E_IO, "cannot sync '%s': %s", dl->path, strerror(e));
  }
  time_t secs = (time_t)(day * 86400);
  struct tm tm;
  gmtime_r(&secs, &tm);
  snprintf(dl->path, sizeof dl->path, "%s/%04d-%02d-%02d.ndjson", dl->dir, tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday);
  int fd = open(dl->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0)
    return zql_fail(err, ZQL_E_IO, "cannot open '%s': %s", dl->path, strerror(errno));
  /* a torn last line (no trailing newline) is ended, so the next line parses */
  off_t size = lseek(fd, 0, SEEK_END);
  if (size > 0) {
    char last;
    if (pread(fd, &last, 1, size - 1) != 1 || (last != '\n' && write_all(fd, "\n", 1) != 0)) {
      int e = errno;
      close(fd);
      return zql_fail(err, ZQL_E_IO, "cannot repair the last line of '%s': %s", dl->path,
                     strerror(e));
    }
    if (last != '\n')
      dl->st.bytes_written++;
  }
  dl->fd = fd;
  dl->day = day;
  return 0;
}

int zql_deadletter_flush(zql_deadletter_t *dl, bool sync, zql_strbuf_t *err)
{
  if (dl->pending.len == 0)
    return 0;
  int rc = open_day(dl, dl->pend_day, err);
  if (rc == 0 && write_all(dl->fd, dl->pending.buf, dl->pending.len) != 0)
    rc = zql_fail(err, ZQL_E_IO, "cannot write '%s': %s", dl->path, strerror(errno));
  if (rc == 0)
    dl->st.bytes_written += dl->pending.len;
  if (rc == 0 && sync && fdatasync(dl->fd) != 0)
    rc = zql_fail(err, ZQL_E_IO, "cannot sync '%s': %s", dl->path, strerror(errno));
  if (rc != 0 && dl->pending.len) {
    dl->st.write_errors++;
    dl->st.lines_lost += dl->pending_lines;
    if (dl->fd >= 0) { /* reopen next time: a partial write leaves a torn line to repair */
      close(dl->fd);
      dl->fd = -1;
    }
  }
  zql_strbuf_reset(&dl->pending);
  dl->pending_lines = 0;
  return rc;
}

void zql_deadletter_close(zql_deadletter_t *dl)
{
  if (!dl)
    return;
  zql_deadletter_flush(dl, false, NULL);
  if (dl->fd >= 0)
    close(dl->fd);
  zql_strbuf_release(&dl->pending);
  zql_free(dl->dir);
  zql_free(dl);
}

/* Append s as UTF-8: every byte that does not start a valid sequence becomes U+FFFD. */
static void append_utf8(bson_t *doc, const char *key, const char *s)
{
  size_t n = strlen(s);
  if (bson_utf8_validate(s, n, false)) {
    bson_append_utf8(doc, key, -1, s, (int)n);
    return;
  }
  zql_strbuf_t fixed = ZQL_STRBUF_INIT;
  const char *end = s + n;
  while (s < end) {
    size_t k = 1;
    if ((uint8_t)*s >= 0x80) {
      k = (uint8_t)*s >= 0xF0 ? 4 : (uint8_t)*s >= 0xE0 ? 3 : 2;
      if ((size_t)(end - s) < k || (uint8_t)*s < 0xC2 || (uint8_t)*s > 0xF4 ||
          !bson_utf8_validate(s, k, false)) {
        zql_strbuf_adds(&fixed, "\xEF\xBF\xBD");
        s++;
        continue;
      }
    }
    zql_strbuf_add(&fixed, s, k);
    s += k;
  }
  bson_append_utf8(doc, key, -1, fixed.buf, (int)fixed.len);
  zql_strbuf_release(&fixed);
}

/* RFC 4648 section 4 base64, with padding. */
static void base64(zql_strbuf_t *out, const uint8_t *p, size_t n)
{
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (!zql_strbuf_grow(out, (n + 2) / 3 * 4))
    return;
  size_t k = 0;
  for (; k + 3 <= n; k += 3) {
    uint32_t v = (uint32_t)p[k] << 16 | (uint32_t)p[k + 1] << 8 | p[k + 2];
    char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
    zql_strbuf_add(out, q, 4);
  }
  if (n - k == 1) {
    uint32_t v = (uint32_t)p[k] << 16;
    char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], '=', '='};
    zql_strbuf_add(out, q, 4);
  } else if (n - k == 2) {
    uint32_t v = (uint32_t)p[k] << 16 | (uint32_t)p[k + 1] << 8;
    char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], '='};
    zql_strbuf_add(out, q, 4);
  }
}

int zql_deadletter_add(zql_deadletter_t *dl, int64_t now_ms, const char *source,
                       const char *peer, zql_ingest_reason_t cls, const char *reason,
                       const bson_t *event, const void *raw, size_t rawlen, zql_strbuf_t *err)
{
  int64_t day = day_of(now_ms);
  if (dl->pending.len && day != dl->pend_day) {
    /* a line never straddles files: the previous day's lines go out first */
    int rc = zql_deadletter_flush(dl, true, err);
    if (rc != 0)
      return rc;
  }
  bson_t line;
  bson_init(&line);
  bson_append_date_time(&line, "received", -1, now_ms);
  append_utf8(&line, "source", source ? source : "");
  if (peer && *peer)
    append_utf8(&line, "peer", peer);
  append_utf8(&line, "reason", reason ? reason : "");
  if ((unsigned)cls >= ZQL_INGEST_REASONS)
    cls = ZQL_INGEST_MALFORMED;
  append_utf8(&line, "class", zql_ingest_reason_name(cls));
  zql_strbuf_t b64 = ZQL_STRBUF_INIT;
  if (event) {
    bson_append_document(&line, "event", -1, event);
  } else {
    size_t keep = rawlen > ZQL_DEADLETTER_RAW_MAX ? ZQL_DEADLETTER_RAW_MAX : rawlen;
    base64(&b64, raw, keep);
    bson_append_utf8(&line, "raw", -1, b64.buf, (int)b64.len);
    if (keep < rawlen) {
      bson_append_bool(&line, "raw_truncated", -1, true);
      bson_append_int64(&line, "raw_size", -1, (int64_t)rawlen);
    }
  }
  size_t jlen = 0;
  char *json = b64.oom ? NULL : bson_as_canonical_extended_json(&line, &jlen);
  bson_destroy(&line);
  bool b64_oom = b64.oom;
  zql_strbuf_release(&b64);
  if (!json && event && !b64_oom) /* not printable (bad UTF-8 inside): keep its bytes */
    return zql_deadletter_add(dl, now_ms, source, peer, cls, reason, NULL, bson_get_data(event),
                              event->len, err);
  if (!json)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory");
  dl->pend_day = day;
  zql_strbuf_add(&dl->pending, json, jlen);
  zql_strbuf_addc(&dl->pending, '\n');
  bson_free(json);
  if (dl->pending.oom) {
    dl->st.lines_lost += dl->pending_lines;
    zql_strbuf_release(&dl->pending);
    dl->pending_lines = 0;
    return zql_fail(err, ZQL_E_NOMEM, "out of memory");
  }
  dl->pending_lines++;
  dl->st.lines++;
  dl->st.by_class[cls]++;
  return 0;
}

uint64_t zql_deadletter_count(const zql_deadletter_t *dl, zql_ingest_reason_t cls)
{
  if (cls == ZQL_INGEST_OK)
    return dl->st.lines;
  return (unsigned)cls < ZQL_INGEST_REASONS ? dl->st.by_class[cls] : 0;
}

void zql_deadletter_stats(const zql_deadletter_t *dl, zql_deadletter_stats_t *out)
{
  *out = dl->st;
}
