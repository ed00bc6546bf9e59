/*
 * ackjournal.c -- the dedup journal of acknowledged ingest batches (zqld, runtime services;
 * the writer thread of zqld_ingest.c consults it before logging an acked batch).
 *
 * Format, recovery and retention rules are in ackjournal.h. Memory: every record read or
 * added becomes an entry of one array, in file order; an open-addressing hash table
 * (linear probing, power-of-two size, at most half full) maps (client, batch) to the index
 * of its newest entry. A replaced or revoked entry is only marked dead, so the table never
 * needs deletions; compaction rebuilds both from the live entries.
 *
 * Durability: add writes the new records (and a time mark when due) with one pwrite at the
 * end of the valid data and fdatasyncs; on a failure the file is cut back to where it was,
 * so a half-written record can never be mistaken for a known batch. Compaction writes a
 * temporary file, fsyncs it, renames it over the journal and fsyncs the directory (the
 * usual atomic-replace sequence), so a crash leaves either the old or the new journal.
 */
#include "runtime/base/zql_common.h"

#include "runtime/ackjournal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "runtime/base/clock.h"
#include "runtime/base/alloc.h"
#include "runtime/base/crc32c.h"
#include "runtime/base/error.h"

#define REC ZQL_ACKJOURNAL_RECORD
#define MIN_TABLE 64

typedef struct entry {
  zql_ackrec_t r;
  int64_t added_ms; /* the time mark the record follows */
  bool dead;        /* replaced, revoked, dropped or expired */
} entry_t;

struct zql_ackjournal {
  char *path;
  int fd;
  uint64_t file_bytes; /* valid bytes; the next record goes here */
  zql_ackjournal_opts_t opts;
  entry_t *ents;
  size_t nents, capents;
  size_t live;
  uint32_t *table; /* entry index + 1; 0 = empty */
  size_t tcap;     /* power of two */
  int64_t last_mark; /* time of the newest mark in the file; INT64_MIN: none */
  uint64_t live_bytes_at_compact;
  unsigned compactions;
};

/* {==== encoding ============================================================ */

static void st32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void st64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t ld32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld64(const uint8_t *p)
{
  return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

static void encode(uint8_t *p, const zql_ackrec_t *r)
{
  memcpy(p, r->client, 16);
  st64(p + 16, (uint64_t)r->batch);
  st64(p + 24, (uint64_t)r->first);
  st64(p + 32, (uint64_t)r->last);
  st32(p + 40, r->accepted);
  st32(p + 44, r->rejected);
  st32(p + 48, zql_crc32c(p, 48));
}

/* false when the CRC does not match */
static bool decode(const uint8_t *p, zql_ackrec_t *r)
{
  if (ld32(p + 48) != zql_crc32c(p, 48))
    return false;
  memcpy(r->client, p, 16);
  r->batch = (int64_t)ld64(p + 16);
  r->first = (int64_t)ld64(p + 24);
  r->last = (int64_t)ld64(p + 32);
  r->accepted = ld32(p + 40);
  r->rejected = ld32(p + 44);
  return true;
}

static bool zero_client(const uint8_t c[16])
{
  for (int i = 0; i < 16; i++)
    if (c[i])
      return false;
  return true;
}

static bool is_mark(const zql_ackrec_t *r)
{
  return r->batch == 0 && zero_client(r->client);
}

static void make_mark(zql_ackrec_t *m, int64_t ms)
{
  memset(m, 0, sizeof *m);
  m->first = ms;
}

/* }==== */

/* {==== index =============================================================== */

static uint64_t key_hash(const uint8_t client[16], int64_t batch)
{
  uint8_t k[24];
  memcpy(k, client, 16);
  st64(k + 16, (uint64_t)batch);
  return XXH3_64bits(k, sizeof k);
}

/* The slot of (client, batch): its entry's slot, or the empty slot where it would go. */
static size_t slot_of(const zql_ackjournal_t *j, const uint8_t client[16], int64_t batch)
{
  size_t mask = j->tcap - 1;
  size_t s = (size_t)key_hash(client, batch) & mask;
  for (;;) {
    uint32_t e = j->table[s];
    if (e == 0)
      return s;
    const zql_ackrec_t *r = &j->ents[e - 1].r;
    if (r->batch == batch && memcmp(r->client, client, 16) == 0)
      return s;
    s = (s + 1) & mask;
  }
}

/* A table for n keys, filled from the live entries. */
static int rebuild_table(zql_ackjournal_t *j, size_t n)
{
  size_t cap = MIN_TABLE;
  while (cap < 2 * n + 2)
    cap *= 2;
  uint32_t *t = zql_calloc(cap, sizeof *t);
  if (!t)
    return ZQL_E_NOMEM;
  zql_free(j->table);
  j->table = t;
  j->tcap = cap;
  for (size_t i = 0; i < j->nents; i++) {
    if (j->ents[i].dead)
      continue;
    size_t s = slot_of(j, j->ents[i].r.client, j->ents[i].r.batch);
    j->table[s] = (uint32_t)(i + 1);
  }
  return 0;
}

static bool reserve_entries(zql_ackjournal_t *j, size_t more)
{
  if (j->nents + more <= j->capents)
    return true;
  size_t cap = j->capents ? j->capents : 256;
  while (cap < j->nents + more)
    cap *= 2;
  if (cap > UINT32_MAX - 1)
    return false;
  entry_t *e = zql_reallocarray(j->ents, cap, sizeof *e);
  if (!e)
    return false;
  j->ents = e;
  j->capents = cap;
  return true;
}

/* Record r (already in the file) in memory. Needs room for one entry and a table slot. */
static void index_record(zql_ackjournal_t *j, const zql_ackrec_t *r, int64_t added_ms)
{
  size_t s = slot_of(j, r->client, r->batch);
  if (j->table[s]) {
    entry_t *old = &j->ents[j->table[s] - 1];
    if (!old->dead) {
      old->dead = true;
      j->live--;
    }
  }
  if (r->accepted == ZQL_ACKREC_REVOKED) {
    return; /* the slot keeps pointing at the dead entry: not found */
  }
  entry_t *e = &j->ents[j->nents++];
  e->r = *r;
  e->added_ms = added_ms;
  e->dead = false;
  j->table[s] = (uint32_t)j->nents;
  j->live++;
}

/* Make room for n more keys in the table (rebuilding it when it would pass half full). */
static int reserve_keys(zql_ackjournal_t *j, size_t n)
{
  if (!reserve_entries(j, n))
    return ZQL_E_NOMEM;
  if (2 * (j->nents + n) + 2 <= j->tcap)
    return 0;
  /* the table holds at most one slot per entry ever indexed since the last rebuild */
  return rebuild_table(j, j->nents + n);
}

/* }==== */

/* {==== files =============================================================== */

static int fsync_dir_of(const char *path, zql_strbuf_t *err)
{
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (!slash) {
    strcpy(dir, ".");
  } else {
    size_t n = (size_t)(slash - path);
    if (n == 0)
      n = 1;
    if (n >= sizeof dir)
      return zql_fail(err, ZQL_E_IO, "path too long: '%s'", path);
    memcpy(dir, path, n);
    dir[n] = '\0';
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return zql_fail(err, ZQL_E_IO, "cannot open directory '%s': %s", dir, strerror(errno));
  int r = fsync(fd);
  int e = errno;
  close(fd);
  if (r < 0)
    return zql_fail(err, ZQL_E_IO, "cannot fsync directory '%s': %s", dir, strerror(e));
  return 0;
}

/* mkdir -p of the directory part of path */
static int make_parent(const char *path, zql_strbuf_t *err)
{
  char buf[4096];
  size_t n = strlen(path);
  if (n >= sizeof buf)
    return zql_fail(err, ZQL_E_IO, "path too long: '%s'", path);
  memcpy(buf, path, n + 1);
  char *slash = strrchr(buf, '/');
  if (!slash || slash == buf)
    return 0;
  *slash = '\0';
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, 0750) < 0 && errno != EEXIST)
      return zql_fail(err, ZQL_E_IO, "cannot create directory '%s': %s", buf, strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0750) < 0 && errno != EEXIST)
    return zql_fail(err, ZQL_E_IO, "cannot create directory '%s': %s", buf, strerror(errno));
  return 0;
}

static int write_all(int fd, const void *buf, size_t n, uint64_t off)
{
  const uint8_t *p = buf;
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (w == 0) {
      errno = ENOSPC;
      return -1;
    }
    p += w;
    n -= (size_t)w;
    off += (uint64_t)w;
  }
  return 0;
}

static bool keep_entry(const zql_ackjournal_t *j, const entry_t *e, int64_t now, size_t rank)
{
  if (rank < j->opts.keep_batches)
    return true;
  return now - e->added_ms < j->opts.keep_ms + ZQL_ACKJOURNAL_MARK_MS;
}

/* qsort_r (glibc; config.h defines _GNU_SOURCE) order of entry indexes: client, then
 * newest batch first. */
static int cmp_client_batch_desc(const void *a, const void *b, void *arg)
{
  const zql_ackjournal_t *j = arg;
  const entry_t *x = &j->ents[*(const size_t *)a], *y = &j->ents[*(const size_t *)b];
  int c = memcmp(x->r.client, y->r.client, 16);
  if (c)
    return c;
  return x->r.batch < y->r.batch ? 1 : x->r.batch > y->r.batch ? -1 : 0;
}

/* Apply retention to the live entries (marks expired ones dead). */
static int expire(zql_ackjournal_t *j, int64_t now)
{
  if (j->live <= j->opts.keep_batches)
    return 0; /* no client can have more than keep_batches */
  size_t *idx = zql_calloc(j->live, sizeof *idx);
  if (!idx)
    return ZQL_E_NOMEM;
  size_t n = 0;
  for (size_t i = 0; i < j->nents; i++)
    if (!j->ents[i].dead)
      idx[n++] = i;
  qsort_r(idx, n, sizeof *idx, cmp_client_batch_desc, j);
  size_t rank = 0;
  for (size_t i = 0; i < n; i++) {
    entry_t *e = &j->ents[idx[i]];
    if (i > 0 && memcmp(j->ents[idx[i - 1]].r.client, e->r.client, 16) != 0)
      rank = 0;
    if (!keep_entry(j, e, now, rank)) {
      e->dead = true;
      j->live--;
    }
    rank++;
  }
  zql_free(idx);
  return 0;
}

/* Rewrite the file with the live entries (after retention), atomically. */
static int rewrite(zql_ackjournal_t *j, zql_strbuf_t *err)
{
  int64_t now = j->opts.clock_ms(j->opts.clock_arg);
  int rc = expire(j, now);
  if (rc < 0)
    return zql_fail(err, rc, "out of memory compacting '%s'", j->path);
  /* compact the entry array (file order is kept) */
  size_t n = 0;
  for (size_t i = 0; i < j->nents; i++)
    if (!j->ents[i].dead)
      j->ents[n++] = j->ents[i];
  j->nents = n;
  if ((rc = rebuild_table(j, n)) < 0)
    return zql_fail(err, rc, "out of memory compacting '%s'", j->path);
  /* records, with a mark before each run of records of one mark time */
  size_t nmarks = 0;
  for (size_t i = 0; i < n; i++)
    if (i == 0 || j->ents[i].added_ms != j->ents[i - 1].added_ms)
      nmarks++;
  size_t bytes = (n + nmarks) * REC;
  uint8_t *buf = bytes ? zql_malloc(bytes) : NULL;
  if (bytes && !buf)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory compacting '%s'", j->path);
  uint8_t *p = buf;
  int64_t mark = INT64_MIN;
  for (size_t i = 0; i < n; i++) {
    if (i == 0 || j->ents[i].added_ms != j->ents[i - 1].added_ms) {
      zql_ackrec_t m;
      make_mark(&m, j->ents[i].added_ms);
      encode(p, &m);
      p += REC;
      mark = j->ents[i].added_ms;
    }
    encode(p, &j->ents[i].r);
    p += REC;
  }
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", j->path) >= (int)sizeof tmp) {
    zql_free(buf);
    return zql_fail(err, ZQL_E_IO, "path too long: '%s'", j->path);
  }
  int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) {
    int e = errno;
    zql_free(buf);
    return zql_fail(err, ZQL_E_IO, "cannot create '%s': %s", tmp, strerror(e));
  }
  if ((bytes && write_all(fd, buf, bytes, 0) < 0) || fsync(fd) < 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    zql_free(buf);
    return zql_fail(err, ZQL_E_IO, "cannot write '%s': %s", tmp, strerror(e));
  }
  zql_free(buf);
  if (rename(tmp, j->path) < 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    return zql_fail(err, ZQL_E_IO, "cannot rename '%s' to '%s': %s", tmp, j->path, strerror(e));
  }
  if (j->fd >= 0)
    close(j->fd);
  j->fd = fd;
  j->file_bytes = bytes;
  j->last_mark = mark;
  j->live_bytes_at_compact = bytes;
  j->compactions++;
  return fsync_dir_of(j->path, err);
}

/* }==== */

/* {==== API ================================================================= */

int zql_ackjournal_open(const char *path, int64_t log_last_seq, const zql_ackjournal_opts_t *opts,
                        zql_ackjournal_t **out, zql_strbuf_t *err)
{
  *out = NULL;
  zql_ackjournal_t *j = zql_calloc(1, sizeof *j);
  if (!j)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory opening '%s'", path);
  j->fd = -1;
  j->last_mark = INT64_MIN;
  if (opts)
    j->opts = *opts;
  if (!j->opts.keep_batches)
    j->opts.keep_batches = ZQL_ACKJOURNAL_KEEP_BATCHES;
  if (j->opts.keep_ms <= 0)
    j->opts.keep_ms = ZQL_ACKJOURNAL_KEEP_MS;
  if (!j->opts.compact_bytes)
    j->opts.compact_bytes = ZQL_ACKJOURNAL_COMPACT_BYTES;
  if (!j->opts.clock_ms)
    j->opts.clock_ms = zql_wall_clock;
  int rc;
  uint8_t *data = NULL;
  if (!(j->path = zql_strndup(path, strlen(path)))) {
    rc = zql_fail(err, ZQL_E_NOMEM, "out of memory opening '%s'", path);
    goto bad;
  }
  if ((rc = make_parent(path, err)) < 0)
    goto bad;
  bool created = access(path, F_OK) != 0;
  j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (j->fd < 0) {
    rc = zql_fail(err, ZQL_E_IO, "cannot open '%s': %s", path, strerror(errno));
    goto bad;
  }
  if (created && (rc = fsync_dir_of(path, err)) < 0)
    goto bad;
  struct stat st;
  if (fstat(j->fd, &st) < 0) {
    rc = zql_fail(err, ZQL_E_IO, "cannot stat '%s': %s", path, strerror(errno));
    goto bad;
  }
  uint64_t size = (uint64_t)st.st_size;
  size_t nrec = (size_t)(size / REC);
  if (size) {
    data = zql_malloc((size_t)size);
    if (!data) {
      rc = zql_fail(err, ZQL_E_NOMEM, "out of memory reading '%s'", path);
      goto bad;
    }
    ssize_t got = 0;
    while ((uint64_t)got < size) {
      ssize_t r = pread(j->fd, data + got, (size_t)size - (size_t)got, got);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0) {
        rc = zql_fail(err, ZQL_E_IO, "cannot read '%s': %s", path, r < 0 ? strerror(errno) : "short read");
        goto bad;
      }
      got += r;
    }
  }
  if (!reserve_entries(j, nrec + 1) || rebuild_table(j, nrec + 1) < 0) {
    rc = zql_fail(err, ZQL_E_NOMEM, "out of memory reading '%s'", path);
    goto bad;
  }
  /* the valid prefix ends after the last record with a good CRC */
  size_t good_end = 0, bad_inside = 0;
  for (size_t i = 0; i < nrec; i++) {
    zql_ackrec_t r;
    if (decode(data + i * REC, &r))
      good_end = i + 1;
  }
  int64_t mark = INT64_MIN;
  for (size_t i = 0; i < good_end; i++) {
    zql_ackrec_t r;
    if (!decode(data + i * REC, &r)) {
      bad_inside++;
      continue;
    }
    if (is_mark(&r)) {
      mark = r.first;
      continue;
    }
    if (r.batch <= 0 || zero_client(r.client)) {
      bad_inside++;
      continue;
    }
    index_record(j, &r, mark == INT64_MIN ? 0 : mark);
  }
  j->last_mark = mark;
  j->file_bytes = (uint64_t)good_end * REC;
  size_t dropped = 0;
  for (size_t i = 0; i < j->nents; i++) {
    entry_t *e = &j->ents[i];
    if (!e->dead && e->r.last > log_last_seq) {
      e->dead = true;
      j->live--;
      dropped++;
    }
  }
  bool need_rewrite = dropped > 0 || bad_inside > 0 || j->nents > j->live;
  if (size > j->file_bytes && j->opts.notes)
    zql_strbuf_addf(j->opts.notes, "%s: truncated a torn tail of %" PRIu64 " bytes at offset %" PRIu64 "\n",
                    path, size - j->file_bytes, j->file_bytes);
  if (bad_inside && j->opts.notes)
    zql_strbuf_addf(j->opts.notes, "%s: dropped %zu damaged records\n", path, bad_inside);
  if (dropped && j->opts.notes)
    zql_strbuf_addf(j->opts.notes,
                    "%s: forgot %zu batches beyond the event log's last _seq %" PRId64 "\n", path,
                    dropped, log_last_seq);
  zql_free(data);
  data = NULL;
  if (need_rewrite || j->file_bytes > j->opts.compact_bytes) {
    if ((rc = rewrite(j, err)) < 0)
      goto bad;
  } else {
    if (size > j->file_bytes) {
      if (ftruncate(j->fd, (off_t)j->file_bytes) < 0 || fsync(j->fd) < 0) {
        rc = zql_fail(err, ZQL_E_IO, "cannot truncate '%s': %s", path, strerror(errno));
        goto bad;
      }
    }
    j->live_bytes_at_compact = j->file_bytes;
  }
  *out = j;
  return 0;
bad:
  zql_free(data);
  zql_ackjournal_close(j);
  return rc;
}

int zql_ackjournal_find(const zql_ackjournal_t *j, const uint8_t client[16], int64_t batch,
                        zql_ackrec_t *out)
{
  size_t s = slot_of(j, client, batch);
  if (!j->table[s])
    return 0;
  const entry_t *e = &j->ents[j->table[s] - 1];
  if (e->dead)
    return 0;
  if (out)
    *out = e->r;
  return 1;
}

/* Write n records (with a mark first when due) and fdatasync; then index them. */
static int append_records(zql_ackjournal_t *j, const zql_ackrec_t *recs, size_t n,
                          zql_strbuf_t *err)
{
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (recs[i].batch <= 0 || zero_client(recs[i].client))
      return zql_fail(err, ZQL_E_USAGE, "%s: batch ids are > 0 and client ids not all zero",
                  j->path);
  int rc = reserve_keys(j, n);
  if (rc < 0)
    return zql_fail(err, rc, "out of memory adding to '%s'", j->path);
  int64_t now = j->opts.clock_ms(j->opts.clock_arg);
  bool mark = j->last_mark == INT64_MIN || now - j->last_mark >= ZQL_ACKJOURNAL_MARK_MS ||
              now < j->last_mark;
  size_t bytes = (n + (mark ? 1 : 0)) * REC;
  uint8_t small[16 * REC];
  uint8_t *buf = bytes <= sizeof small ? small : zql_malloc(bytes);
  if (!buf)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory adding to '%s'", j->path);
  uint8_t *p = buf;
  if (mark) {
    zql_ackrec_t m;
    make_mark(&m, now);
    encode(p, &m);
    p += REC;
  }
  for (size_t i = 0; i < n; i++, p += REC)
    encode(p, &recs[i]);
  if (write_all(j->fd, buf, bytes, j->file_bytes) < 0 || fdatasync(j->fd) < 0) {
    int e = errno;
    if (ftruncate(j->fd, (off_t)j->file_bytes) == 0)
      (void)fdatasync(j->fd);
    if (buf != small)
      zql_free(buf);
    return zql_fail(err, ZQL_E_IO, "cannot write '%s': %s", j->path, strerror(e));
  }
  if (buf != small)
    zql_free(buf);
  j->file_bytes += bytes;
  if (mark)
    j->last_mark = now;
  for (size_t i = 0; i < n; i++)
    index_record(j, &recs[i], j->last_mark);
  return 0;
}

int zql_ackjournal_add(zql_ackjournal_t *j, const zql_ackrec_t *recs, size_t n, zql_strbuf_t *err)
{
  for (size_t i = 0; i < n; i++)
    if (recs[i].accepted == ZQL_ACKREC_REVOKED)
      return zql_fail(err, ZQL_E_USAGE, "%s: 'accepted' %u is reserved", j->path, ZQL_ACKREC_REVOKED);
  return append_records(j, recs, n, err);
}

int zql_ackjournal_revoke(zql_ackjournal_t *j, const zql_ackrec_t *keys, size_t n,
                          zql_strbuf_t *err)
{
  if (n == 0)
    return 0;
  zql_ackrec_t *r = zql_calloc(n, sizeof *r);
  if (!r)
    return zql_fail(err, ZQL_E_NOMEM, "out of memory revoking in '%s'", j->path);
  for (size_t i = 0; i < n; i++) {
    memcpy(r[i].client, keys[i].client, 16);
    r[i].batch = keys[i].batch;
    r[i].accepted = ZQL_ACKREC_REVOKED;
  }
  int rc = append_records(j, r, n, err);
  zql_free(r);
  return rc;
}

void zql_ackjournal_forget(zql_ackjournal_t *j, const zql_ackrec_t *keys, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    size_t s = slot_of(j, keys[i].client, keys[i].batch);
    if (j->table[s]) {
      entry_t *e = &j->ents[j->table[s] - 1];
      if (!e->dead) {
        e->dead = true;
        j->live--;
      }
    }
  }
}

int zql_ackjournal_maybe_compact(zql_ackjournal_t *j, bool force, zql_strbuf_t *err)
{
  uint64_t limit = j->opts.compact_bytes;
  if (2 * j->live_bytes_at_compact > limit)
    limit = 2 * j->live_bytes_at_compact;
  if (!force && j->file_bytes <= limit)
    return 0;
  return rewrite(j, err);
}

void zql_ackjournal_info(const zql_ackjournal_t *j, zql_ackjournal_info_t *out)
{
  memset(out, 0, sizeof *out);
  out->live = j->live;
  out->file_bytes = j->file_bytes;
  out->compactions = j->compactions;
  /* distinct clients: neighbours in (client, batch) order */
  size_t *idx = j->live ? zql_calloc(j->live, sizeof *idx) : NULL;
  if (!idx)
    return;
  size_t n = 0;
  for (size_t i = 0; i < j->nents; i++)
    if (!j->ents[i].dead)
      idx[n++] = i;
  qsort_r(idx, n, sizeof *idx, cmp_client_batch_desc, (void *)j);
  for (size_t i = 0; i < n; i++)
    if (i == 0 || memcmp(j->ents[idx[i - 1]].r.client, j->ents[idx[i]].r.client, 16) != 0)
      out->clients++;
  zql_free(idx);
}

void zql_ackjournal_close(zql_ackjournal_t *j)
{
  if (!j)
    return;
  if (j->fd >= 0)
    close(j->fd);
  zql_free(j->ents);
  zql_free(j->table);
  zql_free(j->path);
  zql_free(j);
}

/* }==== */
