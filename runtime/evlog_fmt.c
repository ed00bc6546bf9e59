/*
 * evlog_fmt.c -- the event log's byte layout: frames, segment headers, index trailers,
 * and the segment directory (runtime services; used by evlog.c, evlog_read.c,
 * evlog_check.c). docs/formats.md says the same with diagrams.
 *
 * All integers are little-endian; i64 are two's complement. CRC is CRC-32C
 * (runtime/base/crc32c.h).
 *
 * Segment file events/NNNNNNNNNNNNNNNNNNNN.{open,seg}, NNN = first _seq, 20 digits:
 *
 *   offset  size  header (32 bytes)
 *        0     8  magic "ZQLEVSEG"
 *        8     4  format version (1)
 *       12     4  flags (0)
 *       16     8  first _seq (i64, equal to the file name)
 *       24     4  CRC of bytes 0..23
 *       28     4  zero
 *       32        records, back to back, then (sealed segments only) the trailer
 *
 * Record (frame), at any offset (no alignment):
 *
 *        0     4  len: bytes after the CRC field = 16 + document length
 *        4     4  CRC of bytes 0..3 (len) followed by bytes 8..8+len (all but the CRC)
 *        8     8  _seq (i64)
 *       16     8  timestamp, ms since 1970-01-01 UTC (i64)
 *       24   len-16  the BSON document; its own int32 length equals len - 16
 *
 *   A frame is valid when: 16 + 5 <= len <= 16 + 16 MiB, the whole frame is within the
 *   file (or the valid region), the CRC matches, the _seq is the previous record's + 1
 *   (the first one's is the header's first _seq) and the document length agrees with
 *   len. A reader stops at the first frame that is not valid: in a sealed segment that
 *   is corruption (before the index offset), in the .open segment it is the end.
 *
 * Trailer of a sealed segment (starts at data_end, right after the last record):
 *
 *   index block (64 + 16*n + 8 bytes)
 *        0     8  magic "ZQLEVIDX"
 *        8     4  format version (1)
 *       12     4  stride: a sparse entry every `stride` records
 *       16     8  first _seq          24  8  last _seq
 *       32     8  min timestamp       40  8  max timestamp
 *       48     8  record count        56  4  n: sparse entries   60  4  zero (in an .open
 *                 segment's hint: the length of the last record's frame, see evlog_read.c)
 *       64  16*n  sparse entries {i64 _seq, u64 offset of its frame}, for records
 *                 0, stride, 2*stride, ... (so entry 0 is the first record, at 32)
 *   64+16n     4  CRC of the index block's bytes before it
 *   68+16n     4  zero
 *   footer (the file's last 24 bytes)
 *        0     8  offset of the index block (= data_end)
 *        8     4  length of the index block
 *       12     4  CRC of footer bytes 0..11
 *       16     8  magic "ZQLEVEND"
 *
 * Invariant: a sealed file is exactly header + records + index block + footer; a reader
 * finds the index from the last 24 bytes without scanning. The .open segment never has
 * a trailer, except for an instant during sealing (trailer written and fsynced, then the
 * rename to .seg); recovery recognises such a complete trailer and finishes the rename.
 */
#include "runtime/base/zql_common.h"

#include <time.h>

#include "runtime/evlog_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/crc32c.h"
#include "runtime/base/error.h"

static const char seg_magic[8] = {'Z', 'Q', 'L', 'E', 'V', 'S', 'E', 'G'};
static const char idx_magic[8] = {'Z', 'Q', 'L', 'E', 'V', 'I', 'D', 'X'};
static const char end_magic[8] = {'Z', 'Q', 'L', 'E', 'V', 'E', 'N', 'D'};

/* {==== records ====} */

static uint32_t frame_crc(const uint8_t *p, uint32_t len)
{
  uint32_t c = zql_crc32c(p, 4);
  return zql_crc32c_extend(c, p + 8, len);
}

bool zql_evlog_frame_crc_ok(const uint8_t *p)
{
  uint32_t len = evlog_ld32(p);
  return evlog_ld32(p + 4) == frame_crc(p, len);
}

void zql_evlog_frame_head(uint8_t *head, int64_t seq, int64_t ts, uint32_t doclen)
{
  uint32_t len = EVLOG_FRAME_FIXED + doclen;
  evlog_st32(head, len);
  evlog_st64(head + 8, (uint64_t)seq);
  evlog_st64(head + 16, (uint64_t)ts);
  evlog_st32(head + 4, frame_crc(head, len));
}

evlog_frame_status_t zql_evlog_frame_parse(const uint8_t *p, size_t avail, int64_t expect_seq,
                                           bool verify_crc, zql_evlog_view_t *v,
                                           size_t *frame_len, const char **why)
{
  if (avail < 8)
    return EVLOG_FRAME_SHORT;
  uint32_t len = evlog_ld32(p);
  if (len < EVLOG_FRAME_FIXED + EVLOG_MIN_DOC || len > EVLOG_FRAME_FIXED + ZQL_EVLOG_MAX_DOC) {
    *why = "invalid record length";
    return EVLOG_FRAME_BAD;
  }
  if (avail - 8 < len)
    return EVLOG_FRAME_SHORT;
  if (verify_crc && evlog_ld32(p + 4) != frame_crc(p, len)) {
    *why = "CRC mismatch";
    return EVLOG_FRAME_BAD;
  }
  int64_t seq = (int64_t)evlog_ld64(p + 8);
  if (expect_seq != 0 && seq != expect_seq) {
    *why = "unexpected _seq";
    return EVLOG_FRAME_BAD;
  }
  uint32_t doclen = len - EVLOG_FRAME_FIXED;
  if (evlog_ld32(p + EVLOG_FRAME_HDR) != doclen || p[EVLOG_FRAME_HDR + doclen - 1] != 0) {
    *why = "document length disagrees with the record length";
    return EVLOG_FRAME_BAD;
  }
  v->seq = seq;
  v->ts = (int64_t)evlog_ld64(p + 16);
  v->doc = p + EVLOG_FRAME_HDR;
  v->len = doclen;
  *frame_len = 8 + (size_t)len;
  return EVLOG_FRAME_OK;
}

/* {==== header ====} */

void zql_evlog_header_build(uint8_t hdr[EVLOG_HDR_SIZE], int64_t first_seq)
{
  memset(hdr, 0, EVLOG_HDR_SIZE);
  memcpy(hdr, seg_magic, 8);
  evlog_st32(hdr + 8, EVLOG_VERSION);
  evlog_st64(hdr + 16, (uint64_t)first_seq);
  evlog_st32(hdr + 24, zql_crc32c(hdr, 24));
}

int zql_evlog_header_parse(const uint8_t *hdr, size_t avail, int64_t *first_seq, const char **why)
{
  if (avail < EVLOG_HDR_SIZE) {
    *why = "incomplete segment header";
    return -1;
  }
  if (memcmp(hdr, seg_magic, 8) != 0) {
    *why = "not an event log segment (bad magic)";
    return -1;
  }
  if (evlog_ld32(hdr + 24) != zql_crc32c(hdr, 24)) {
    *why = "segment header CRC mismatch";
    return -1;
  }
  if (evlog_ld32(hdr + 8) != EVLOG_VERSION) {
    *why = "unsupported segment format version";
    return -1;
  }
  *first_seq = (int64_t)evlog_ld64(hdr + 16);
  return 0;
}

/* {==== trailer ====} */

void zql_evlog_trailer_build(zql_strbuf_t *sb, const evlog_summary_t *s, const int64_t *sparse)
{
  size_t start = sb->len;
  uint32_t idx_len = EVLOG_IDX_HEAD + EVLOG_IDX_ENTRY * s->nsparse + EVLOG_IDX_TAIL;
  if (!zql_strbuf_grow(sb, idx_len + EVLOG_FOOTER_SIZE))
    return;
  uint8_t *p = (uint8_t *)sb->buf + start;
  memset(p, 0, idx_len + EVLOG_FOOTER_SIZE);
  memcpy(p, idx_magic, 8);
  evlog_st32(p + 8, EVLOG_VERSION);
  evlog_st32(p + 12, s->stride);
  evlog_st64(p + 16, (uint64_t)s->first_seq);
  evlog_st64(p + 24, (uint64_t)s->last_seq);
  evlog_st64(p + 32, (uint64_t)s->min_ts);
  evlog_st64(p + 40, (uint64_t)s->max_ts);
  evlog_st64(p + 48, s->count);
  evlog_st32(p + 56, s->nsparse);
  evlog_st32(p + 60, s->last_len);
  for (uint32_t i = 0; i < s->nsparse; i++) {
    evlog_st64(p + EVLOG_IDX_HEAD + 16 * i, (uint64_t)sparse[2 * i]);
    evlog_st64(p + EVLOG_IDX_HEAD + 16 * i + 8, (uint64_t)sparse[2 * i + 1]);
  }
  uint32_t body = idx_len - EVLOG_IDX_TAIL;
  evlog_st32(p + body, zql_crc32c(p, body));
  uint8_t *f = p + idx_len;
  evlog_st64(f, s->data_end);
  evlog_st32(f + 8, idx_len);
  evlog_st32(f + 12, zql_crc32c(f, 12));
  memcpy(f + 16, end_magic, 8);
  sb->len = start + idx_len + EVLOG_FOOTER_SIZE;
  sb->buf[sb->len] = '\0';
}

int zql_evlog_trailer_parse(const uint8_t *tail, size_t tail_len, uint64_t file_size,
                            evlog_summary_t *s, const char **why)
{
  if (file_size < EVLOG_HDR_SIZE + EVLOG_FOOTER_SIZE + EVLOG_IDX_HEAD + EVLOG_IDX_TAIL ||
      tail_len < EVLOG_FOOTER_SIZE || tail_len > file_size) {
    *why = "file too short for a sealed segment";
    return -1;
  }
  const uint8_t *f = tail + tail_len - EVLOG_FOOTER_SIZE;
  if (memcmp(f + 16, end_magic, 8) != 0 || evlog_ld32(f + 12) != zql_crc32c(f, 12)) {
    *why = "missing or damaged index footer";
    return -1;
  }
  uint64_t off = evlog_ld64(f);
  uint32_t idx_len = evlog_ld32(f + 8);
  if (off < EVLOG_HDR_SIZE || off > file_size - EVLOG_FOOTER_SIZE ||
      idx_len != file_size - EVLOG_FOOTER_SIZE - off ||
      idx_len < EVLOG_IDX_HEAD + EVLOG_IDX_TAIL || file_size - off > tail_len) {
    *why = "index footer points outside the file";
    return -1;
  }
  const uint8_t *p = tail + (tail_len - (size_t)(file_size - off));
  uint32_t body = idx_len - EVLOG_IDX_TAIL;
  if (memcmp(p, idx_magic, 8) != 0 || evlog_ld32(p + body) != zql_crc32c(p, body)) {
    *why = "index block CRC mismatch";
    return -1;
  }
  if (evlog_ld32(p + 8) != EVLOG_VERSION) {
    *why = "unsupported index format version";
    return -1;
  }
  memset(s, 0, sizeof *s);
  s->stride = evlog_ld32(p + 12);
  s->first_seq = (int64_t)evlog_ld64(p + 16);
  s->last_seq = (int64_t)evlog_ld64(p + 24);
  s->min_ts = (int64_t)evlog_ld64(p + 32);
  s->max_ts = (int64_t)evlog_ld64(p + 40);
  s->count = evlog_ld64(p + 48);
  s->nsparse = evlog_ld32(p + 56);
  s->last_len = evlog_ld32(p + 60);
  s->data_end = off;
  s->sparse_raw = p + EVLOG_IDX_HEAD;
  if ((uint64_t)s->nsparse * EVLOG_IDX_ENTRY != body - EVLOG_IDX_HEAD || s->stride == 0 ||
      s->count == 0 || s->last_seq - s->first_seq + 1 != (int64_t)s->count ||
      s->nsparse != (s->count + s->stride - 1) / s->stride) {
    *why = "inconsistent index";
    return -1;
  }
  for (uint32_t i = 0; i < s->nsparse; i++) {
    int64_t seq;
    uint64_t o;
    zql_evlog_sparse_get(s, i, &seq, &o);
    if (seq != s->first_seq + (int64_t)i * s->stride || o < EVLOG_HDR_SIZE || o >= off) {
      *why = "inconsistent sparse index entry";
      return -1;
    }
  }
  return 0;
}

void zql_evlog_sparse_get(const evlog_summary_t *s, uint32_t i, int64_t *seq, uint64_t *off)
{
  if (s->sparse) {
    *seq = s->sparse[2 * i];
    *off = (uint64_t)s->sparse[2 * i + 1];
  } else {
    *seq = (int64_t)evlog_ld64(s->sparse_raw + EVLOG_IDX_ENTRY * i);
    *off = evlog_ld64(s->sparse_raw + EVLOG_IDX_ENTRY * i + 8);
  }
}

int zql_evlog_scan_from(const uint8_t *base, size_t size, bool verify_crc, evlog_summary_t *s,
                        int64_t **sparse, const char **why)
{
  size_t off = (size_t)s->data_end;
  evlog_frame_status_t st = EVLOG_FRAME_OK;
  while (off < size) {
    zql_evlog_view_t v;
    size_t flen;
    st = zql_evlog_frame_parse(base + off, size - off, s->last_seq + 1, verify_crc, &v, &flen,
                               why);
    if (st != EVLOG_FRAME_OK)
      break;
    if (sparse && s->count % s->stride == 0) {
      /* capacity: the next power of two >= nsparse, at least 64 (so it needs no field) */
      uint32_t n = s->nsparse;
      if (!*sparse || (n >= 64 && (n & (n - 1)) == 0)) {
        size_t ncap = !*sparse ? (n < 64 ? 64 : 2 * (size_t)n) : 2 * (size_t)n;
        while (ncap < n + 1)
          ncap *= 2;
        int64_t *g = zql_reallocarray(*sparse, ncap, 2 * sizeof *g);
        if (!g)
          return ZQL_E_NOMEM;
        *sparse = g;
      }
      (*sparse)[2 * n] = v.seq;
      (*sparse)[2 * n + 1] = (int64_t)off;
      s->nsparse++;
    }
    s->count++;
    s->last_seq = v.seq;
    if (v.ts < s->min_ts)
      s->min_ts = v.ts;
    if (v.ts > s->max_ts)
      s->max_ts = v.ts;
    off += flen;
    s->data_end = off;
    s->last_len = (uint32_t)flen;
  }
  return off == size ? EVLOG_FRAME_OK : (int)st;
}

int zql_evlog_scan(const uint8_t *base, size_t size, int64_t first_seq, uint32_t stride,
                   bool verify_crc, evlog_summary_t *s, int64_t **sparse_out, const char **why)
{
  memset(s, 0, sizeof *s);
  s->first_seq = first_seq;
  s->last_seq = first_seq - 1;
  s->min_ts = INT64_MAX;
  s->max_ts = INT64_MIN;
  s->stride = stride;
  s->data_end = EVLOG_HDR_SIZE;
  int64_t *sp = NULL;
  int rc = zql_evlog_scan_from(base, size, verify_crc, s, sparse_out ? &sp : NULL, why);
  if (rc == ZQL_E_NOMEM) {
    zql_free(sp);
    return rc;
  }
  if (sparse_out)
    *sparse_out = sp;
  return rc;
}

/* {==== the directory ====} */

void zql_evlog_name(char *buf, int64_t first_seq, bool sealed)
{
  snprintf(buf, EVLOG_NAME_DIGITS + 6, "%020" PRId64 "%s", first_seq, sealed ? ".seg" : ".open");
}

static int entry_cmp(const void *a, const void *b)
{
  const evlog_entry_t *x = a, *y = b;
  return x->first_seq < y->first_seq ? -1 : x->first_seq > y->first_seq;
}

/* One readdir pass; see zql_evlog_list. */
static int list_once(const char *evdir, evlog_entry_t **out, size_t *n, zql_strbuf_t *err)
{
  *out = NULL;
  *n = 0;
  DIR *d = opendir(evdir);
  if (!d)
    return zql_fail(err, ZQL_E_IO, "cannot open '%s': %s", evdir, strerror(errno));
  evlog_entry_t *v = NULL;
  size_t len = 0, cap = 0;
  struct dirent *de;
  int rc = 0;
  while ((de = readdir(d)) != NULL) {
    const char *nm = de->d_name;
    size_t l = strlen(nm);
    bool sealed;
    if (l == EVLOG_NAME_DIGITS + 4 && strcmp(nm + EVLOG_NAME_DIGITS, ".seg") == 0)
      sealed = true;
    else if (l == EVLOG_NAME_DIGITS + 5 && strcmp(nm + EVLOG_NAME_DIGITS, ".open") == 0)
      sealed = false;
    else
      continue;
    int64_t seq = 0;
    bool digits = true;
    for (int i = 0; i < EVLOG_NAME_DIGITS; i++) {
      if (nm[i] < '0' || nm[i] > '9' || seq > (INT64_MAX - 9) / 10) {
        digits = false;
        break;
      }
      seq = seq * 10 + (nm[i] - '0');
    }
    if (!digits || seq < 1)
      continue;
    if (len == cap) {
      size_t ncap = cap ? 2 * cap : 16;
      evlog_entry_t *nv = zql_reallocarray(v, ncap, sizeof *v);
      if (!nv) {
        rc = ZQL_E_NOMEM;
        break;
      }
      v = nv;
      cap = ncap;
    }
    memcpy(v[len].name, nm, l + 1);
    v[len].first_seq = seq;
    v[len].sealed = sealed;
    len++;
  }
  closedir(d);
  if (rc < 0) {
    zql_free(v);
    return zql_fail(err, rc, "out of memory listing '%s'", evdir);
  }
  if (len > 1)
    qsort(v, len, sizeof *v, entry_cmp);
  for (size_t i = 0; i + 1 < len; i++) {
    if (v[i].first_seq == v[i + 1].first_seq)
      rc = zql_fail(err, ZQL_E_CORRUPT, "'%s/%s' and '%s' start at the same _seq", evdir,
                          v[i].name, v[i + 1].name);
    else if (!v[i].sealed)
      rc = zql_fail(err, ZQL_E_CORRUPT,
                          "'%s/%s' is unsealed but is not the last segment", evdir, v[i].name);
    if (rc < 0) {
      zql_free(v);
      return rc;
    }
  }
  *out = v;
  *n = len;
  return 0;
}

/*
 * readdir() is not atomic with respect to rename(): while a writer seals NNN.open into
 * NNN.seg and creates the next .open, one listing can show both names of the segment, or
 * the old .open followed by the new one. Neither state exists on disk (the rename is
 * atomic), so a listing that looks corrupt is taken again, a few times, before the
 * corruption is believed: a reader or `zql log check` next to a busy writer never reports
 * a segment that was merely being sealed.
 */
int zql_evlog_retry_corrupt(int (*once)(void *arg, zql_strbuf_t *err), void *arg,
                            zql_strbuf_t *err)
{
  enum { ATTEMPTS = 20 };
  int rc = 0;
  for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
    zql_strbuf_t e = ZQL_STRBUF_INIT;
    rc = once(arg, &e);
    if (rc != ZQL_E_CORRUPT || attempt == ATTEMPTS - 1) {
      if (rc < 0 && err)
        zql_strbuf_add(err, e.buf, e.len);
      zql_strbuf_release(&e);
      return rc;
    }
    zql_strbuf_release(&e);
    struct timespec ts = {0, 1000000L * (attempt + 1)}; /* 1, 2, 3 ... ms */
    nanosleep(&ts, NULL);
  }
  return rc;
}

typedef struct {
  const char *evdir;
  evlog_entry_t **out;
  size_t *n;
} list_args_t;

static int list_attempt(void *arg, zql_strbuf_t *err)
{
  list_args_t *a = arg;
  return list_once(a->evdir, a->out, a->n, err);
}

int zql_evlog_list(const char *evdir, evlog_entry_t **out, size_t *n, zql_strbuf_t *err)
{
  list_args_t a = {evdir, out, n};
  return zql_evlog_retry_corrupt(list_attempt, &a, err);
}

int zql_evlog_read_file(int fd, const char *path, uint8_t **out, size_t *len, zql_strbuf_t *err)
{
  *out = NULL;
  *len = 0;
  struct stat st;
  if (fstat(fd, &st) < 0)
    return zql_fail(err, ZQL_E_IO, "cannot stat '%s': %s", path, strerror(errno));
  size_t size = (size_t)st.st_size;
  uint8_t *buf = zql_malloc(size ? size : 1);
  if (!buf)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory reading '%s'", path);
  size_t got = 0;
  while (got < size) {
    ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      zql_free(buf);
      return zql_fail(err, ZQL_E_IO, "cannot read '%s': %s", path, strerror(errno));
    }
    if (r == 0)
      break; /* the file shrank: use what we got */
    got += (size_t)r;
  }
  *out = buf;
  *len = got;
  return 0;
}

int zql_evlog_fsync_dir(const char *path, zql_strbuf_t *err)
{
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return zql_fail(err, ZQL_E_IO, "cannot open '%s': %s", path, strerror(errno));
  int rc = 0;
  if (fsync(fd) < 0)
    rc = zql_fail(err, ZQL_E_IO, "cannot fsync '%s': %s", path, strerror(errno));
  close(fd);
  return rc;
}

int zql_evlog_lock(const char *evdir, int *fdp, zql_strbuf_t *err)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/LOCK", evdir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return zql_fail(err, ZQL_E_IO, "cannot open '%s': %s", path, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    if (e == EWOULDBLOCK) {
      char pid[32] = "";
      ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
      if (r > 0)
        pid[r] = '\0';
      pid[strcspn(pid, "\n")] = '\0';
      close(fd);
      return zql_fail(err, ZQL_E_LOCKED,
                            "event log '%s' is locked by another writer%s%s%s", evdir,
                            pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
    }
    close(fd);
    return zql_fail(err, ZQL_E_IO, "cannot lock '%s': %s", path, strerror(e));
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0) {
    /* the pid is only for messages */
  }
  *fdp = fd;
  return 0;
}
