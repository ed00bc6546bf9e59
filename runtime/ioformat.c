/*
 * ioformat.c -- reading and writing concatenated BSON and NDJSON, gzip or not (runtime
 * services).
 *
 * What: the format layer under `zql import`, `zql export` and `zql gen`. The contract
 * (detection, error reporting, ownership) is in ioformat.h; this comment is about how.
 *
 * Pipeline position: the edge of the system. Import reads files through here into the
 * event log; export and gen write documents through here to files or stdout.
 *
 * Reader, in three layers:
 *   1. raw bytes: read(2) from a descriptor, or a memory block. The first read lands in
 *      `in` so that the gzip magic can be checked before anything is decoded.
 *   2. decoded bytes: `buf[start, end)` is a window on the uncompressed stream; `base`
 *      is the stream offset of buf[start]. fill(r, n) makes n bytes available (or sets
 *      eof): it slides the window to the front, grows it when one record needs more
 *      room, and reads either straight into the window (plain input) or through zlib's
 *      inflate (gzip, windowBits 15+16; at the end of a member, inflateReset goes on with
 *      the next one when more input follows).
 *   3. records: BSON reads the int32 length, fills that many bytes and hands out a static
 *      bson_t over the window (no copy); NDJSON finds the next '\n' (memchr from where the
 *      last search stopped), parses the line with bson_init_from_json and, with the
 *      $datetime option, rewrites the document once if the line mentions "$datetime".
 *   Invariant: a returned document points into the window or into r->jdoc, and neither
 *   moves before the next call, because only fill() slides the window.
 *
 * Writer: documents are serialised into `out` (64 KiB); a full buffer is written to the
 * descriptor (or appended to the strbuf sink), through deflate when gzip is on. BSON is
 * written as bson_get_data() bytes, NDJSON with bson_as_relaxed_extended_json (or the
 * canonical form) plus '\n'.
 */
#include "runtime/base/zql_common.h"

#include "runtime/ioformat.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"

#define RAW_CHUNK (64u * 1024)
#define MAX_LINE (64u * 1024 * 1024) /* an NDJSON line longer than this is rejected */
#define MAX_DEPTH 200                /* $datetime rewriting recursion */

const char *zql_iofmt_name(zql_iofmt_t f)
{
  switch (f) {
  case ZQL_IOFMT_BSON: return "bson";
  case ZQL_IOFMT_NDJSON: return "ndjson";
  case ZQL_IOFMT_NDJSON_CANONICAL: return "ndjson-canonical";
  default: return "auto";
  }
}

int zql_iofmt_parse(const char *s, zql_iofmt_t *f)
{
  if (strcmp(s, "bson") == 0)
    *f = ZQL_IOFMT_BSON;
  else if (strcmp(s, "ndjson") == 0 || strcmp(s, "json") == 0)
    *f = ZQL_IOFMT_NDJSON;
  else if (strcmp(s, "ndjson-canonical") == 0)
    *f = ZQL_IOFMT_NDJSON_CANONICAL;
  else if (strcmp(s, "auto") == 0)
    *f = ZQL_IOFMT_AUTO;
  else
    return ZQL_E_USAGE;
  return 0;
}

/* {==== reader ============================================================== */

struct zql_ioreader {
  char *name;
  int fd;             /* -1: memory input */
  bool own_fd;
  const uint8_t *mem; /* memory input */
  size_t mem_len, mem_pos;
  zql_ioreader_opts_t opts;

  uint8_t *in;        /* raw input chunk (RAW_CHUNK) */
  size_t in_len, in_pos;
  bool raw_eof;
  uint64_t bytes_in;
  bool started;       /* the gzip check has run */
  bool gzip;
  z_stream z;
  bool z_live;        /* inflateInit2 succeeded */
  bool z_member_end;  /* the last inflate ended a member */

  uint8_t *buf;       /* the decoded window */
  size_t cap, start, end;
  size_t scan;        /* NDJSON: bytes after start already searched for '\n' */
  bool eof;           /* no more decoded bytes will come */
  uint64_t base;      /* stream offset of buf[start] */

  zql_iofmt_t fmt;
  uint64_t index, line;
  uint64_t rec_off;   /* stream offset of the record next() looked at last */
  bool done;          /* the input cannot go on: next() returns 0 */
  int failed;         /* a fatal error code, returned again by next() */
  bson_t sdoc;        /* BSON: a static view into buf */
  bson_t jdoc;        /* NDJSON: the parsed line */
  bool jdoc_live;
  bson_t conv;        /* the $datetime rewrite */
  bool conv_live;
};

static int rerr(zql_ioreader_t *r, zql_strbuf_t *err, int code, const char *fmt, ...)
    ZQL_PRINTF(4, 5);
static int rerr(zql_ioreader_t *r, zql_strbuf_t *err, int code, const char *fmt, ...)
{
  if (err) {
    va_list ap;
    zql_strbuf_addf(err, "%s: ", r->name);
    va_start(ap, fmt);
    zql_strbuf_vaddf(err, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* An NDJSON record's error: "name:LINE: message". */
static int jerr(zql_ioreader_t *r, zql_strbuf_t *err, const char *fmt, ...) ZQL_PRINTF(3, 4);
static int jerr(zql_ioreader_t *r, zql_strbuf_t *err, const char *fmt, ...)
{
  if (err) {
    va_list ap;
    zql_strbuf_addf(err, "%s:%" PRIu64 ": ", r->name, r->line);
    va_start(ap, fmt);
    zql_strbuf_vaddf(err, fmt, ap);
    va_end(ap);
  }
  return ZQL_E_BAD_RECORD;
}

static int reader_new(const char *name, const zql_ioreader_opts_t *opts, zql_ioreader_t **out,
                      zql_strbuf_t *err)
{
  zql_ioreader_t *r = zql_calloc(1, sizeof *r);
  if (r) {
    r->name = zql_strndup(name, strlen(name));
    r->in = zql_malloc(RAW_CHUNK);
    r->cap = 2 * RAW_CHUNK;
    r->buf = zql_malloc(r->cap);
  }
  if (!r || !r->name || !r->in || !r->buf) {
    zql_ioreader_close(r);
    if (err)
      zql_strbuf_adds(err, "out of memory");
    return ZQL_E_NOMEM;
  }
  r->fd = -1;
  if (opts)
    r->opts = *opts;
  if (r->opts.max_doc == 0)
    r->opts.max_doc = ZQL_IO_MAX_DOC;
  r->fmt = r->opts.format == ZQL_IOFMT_NDJSON_CANONICAL ? ZQL_IOFMT_NDJSON : r->opts.format;
  *out = r;
  return 0;
}

int zql_ioreader_open_fd(int fd, bool own_fd, const char *name, const zql_ioreader_opts_t *opts,
                         zql_ioreader_t **out, zql_strbuf_t *err)
{
  int rc = reader_new(name, opts, out, err);
  if (rc < 0) {
    if (own_fd)
      close(fd);
    return rc;
  }
  (*out)->fd = fd;
  (*out)->own_fd = own_fd;
  return 0;
}

int zql_ioreader_open(const char *path, const zql_ioreader_opts_t *opts, zql_ioreader_t **out,
                      zql_strbuf_t *err)
{
  *out = NULL;
  if (strcmp(path, "-") == 0)
    return zql_ioreader_open_fd(STDIN_FILENO, false, path, opts, out, err);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (err)
      zql_strbuf_addf(err, "cannot open '%s': %s", path, strerror(errno));
    return ZQL_E_IO;
  }
  return zql_ioreader_open_fd(fd, true, path, opts, out, err);
}

int zql_ioreader_open_mem(const void *data, size_t len, const char *name,
                          const zql_ioreader_opts_t *opts, zql_ioreader_t **out,
                          zql_strbuf_t *err)
{
  *out = NULL;
  int rc = reader_new(name, opts, out, err);
  if (rc < 0)
    return rc;
  (*out)->mem = data;
  (*out)->mem_len = len;
  return 0;
}

void zql_ioreader_close(zql_ioreader_t *r)
{
  if (!r)
    return;
  if (r->own_fd && r->fd >= 0)
    close(r->fd);
  if (r->z_live)
    inflateEnd(&r->z);
  if (r->jdoc_live)
    bson_destroy(&r->jdoc);
  if (r->conv_live)
    bson_destroy(&r->conv);
  zql_free(r->buf);
  zql_free(r->in);
  zql_free(r->name);
  zql_free(r);
}

zql_iofmt_t zql_ioreader_format(const zql_ioreader_t *r)
{
  return r->fmt;
}

bool zql_ioreader_gzip(const zql_ioreader_t *r)
{
  return r->gzip;
}

uint64_t zql_ioreader_bytes_in(const zql_ioreader_t *r)
{
  return r->bytes_in;
}

/* Read up to `cap` raw bytes into dst: >0 bytes, 0 at the end, or ZQL_E_IO. */
static ssize_t raw_read(zql_ioreader_t *r, uint8_t *dst, size_t cap, zql_strbuf_t *err)
{
  if (r->fd < 0) {
    size_t n = r->mem_len - r->mem_pos;
    if (n > cap)
      n = cap;
    memcpy(dst, r->mem + r->mem_pos, n);
    r->mem_pos += n;
    r->bytes_in += n;
    return (ssize_t)n;
  }
  for (;;) {
    ssize_t n = read(r->fd, dst, cap);
    if (n >= 0) {
      r->bytes_in += (uint64_t)n;
      return n;
    }
    if (errno != EINTR)
      return rerr(r, err, ZQL_E_IO, "read error: %s", strerror(errno));
  }
}

/* Refill `in` when it is used up. Returns 0 or ZQL_E_IO. */
static int refill_in(zql_ioreader_t *r, zql_strbuf_t *err)
{
  if (r->in_pos < r->in_len || r->raw_eof)
    return 0;
  ssize_t n = raw_read(r, r->in, RAW_CHUNK, err);
  if (n < 0)
    return (int)n;
  r->in_pos = 0;
  r->in_len = (size_t)n;
  if (n == 0)
    r->raw_eof = true;
  return 0;
}

/* The first read: look for the gzip magic. */
static int start(zql_ioreader_t *r, zql_strbuf_t *err)
{
  r->started = true;
  int rc = refill_in(r, err);
  if (rc < 0)
    return rc;
  /* a magic split over two reads would be missed; reads of regular files and pipes
   * return at least 2 bytes when 2 exist except in pathological cases, so top up */
  if (r->in_len == 1 && !r->raw_eof) {
    ssize_t n = raw_read(r, r->in + 1, RAW_CHUNK - 1, err);
    if (n < 0)
      return (int)n;
    r->in_len += (size_t)n;
  }
  if (r->in_len >= 2 && r->in[0] == 0x1f && r->in[1] == 0x8b) {
    r->gzip = true;
    memset(&r->z, 0, sizeof r->z);
    if (inflateInit2(&r->z, 15 + 16) != Z_OK)
      return rerr(r, err, ZQL_E_NOMEM, "cannot start gzip decoding: out of memory");
    r->z_live = true;
  }
  return 0;
}

/* Decode up to `cap` bytes into dst: >0 bytes, 0 at the end of the stream, or an error
 * (ZQL_E_IO, or ZQL_E_BAD_RECORD for a corrupt or truncated gzip stream). */
static ssize_t produce(zql_ioreader_t *r, uint8_t *dst, size_t cap, zql_strbuf_t *err)
{
  if (!r->gzip) {
    if (r->in_pos < r->in_len) {
      size_t n = r->in_len - r->in_pos;
      if (n > cap)
        n = cap;
      memcpy(dst, r->in + r->in_pos, n);
      r->in_pos += n;
      return (ssize_t)n;
    }
    if (r->raw_eof)
      return 0;
    ssize_t n = raw_read(r, dst, cap, err);
    if (n == 0)
      r->raw_eof = true;
    return n;
  }
  for (;;) {
    int rc = refill_in(r, err);
    if (rc < 0)
      return rc;
    if (r->z_member_end) {
      if (r->in_pos == r->in_len && r->raw_eof)
        return 0; /* the last member ended with the input */
      inflateReset(&r->z);
      r->z_member_end = false;
    }
    if (r->in_pos == r->in_len && r->raw_eof) {
      r->done = true; /* nothing more can be decoded */
      return rerr(r, err, ZQL_E_BAD_RECORD, "offset %" PRIu64 ": truncated gzip stream",
                  r->base + (r->end - r->start));
    }
    r->z.next_in = r->in + r->in_pos;
    r->z.avail_in = (uInt)(r->in_len - r->in_pos);
    r->z.next_out = dst;
    r->z.avail_out = (uInt)(cap > UINT32_MAX ? UINT32_MAX : cap);
    int zrc = inflate(&r->z, Z_NO_FLUSH);
    size_t produced = (size_t)(r->z.next_out - dst);
    r->in_pos = (size_t)(r->z.next_in - r->in);
    if (zrc == Z_STREAM_END)
      r->z_member_end = true;
    else if (zrc == Z_MEM_ERROR)
      return rerr(r, err, ZQL_E_NOMEM, "out of memory while decoding gzip");
    else if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
      r->done = true;
      return rerr(r, err, ZQL_E_BAD_RECORD, "offset %" PRIu64 ": corrupt gzip stream: %s",
                  r->base + (r->end - r->start), r->z.msg ? r->z.msg : "invalid data");
    }
    if (produced > 0)
      return (ssize_t)produced;
  }
}

/* Make `need` decoded bytes available at buf[start], or all that remain (r->eof set).
 * Returns 0 or an error from produce(). */
static int fill(zql_ioreader_t *r, size_t need, zql_strbuf_t *err)
{
  while (r->end - r->start < need && !r->eof) {
    if (r->start > 0 && r->cap - r->end < RAW_CHUNK) {
      memmove(r->buf, r->buf + r->start, r->end - r->start);
      r->end -= r->start;
      r->start = 0;
    }
    if (r->cap - r->end < RAW_CHUNK || r->cap < need) {
      size_t want = r->cap * 2;
      while (want < need + RAW_CHUNK)
        want *= 2;
      uint8_t *nb = zql_realloc(r->buf, want);
      if (!nb)
        return rerr(r, err, ZQL_E_NOMEM, "out of memory reading a %zu-byte record", need);
      r->buf = nb;
      r->cap = want;
    }
    ssize_t n = produce(r, r->buf + r->end, r->cap - r->end, err);
    if (n < 0)
      return (int)n;
    if (n == 0)
      r->eof = true;
    r->end += (size_t)n;
  }
  return 0;
}

static void consume(zql_ioreader_t *r, size_t n)
{
  r->start += n;
  r->base += n;
  r->scan = 0;
}

static uint32_t le32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Keys and string values must be UTF-8 (bson_validate's UTF-8 flag does not look at
 * values in every libbson version, so walk the document). Returns NULL or a message. */
static const char *check_utf8(const bson_t *doc, int depth)
{
  bson_iter_t it;
  if (depth > MAX_DEPTH)
    return "documents nested too deeply";
  if (!bson_iter_init(&it, doc))
    return "corrupt document";
  while (bson_iter_next(&it)) {
    if (!bson_utf8_validate(bson_iter_key(&it), bson_iter_key_len(&it), false))
      return "a key is not valid UTF-8";
    if (BSON_ITER_HOLDS_UTF8(&it)) {
      uint32_t len;
      const char *v = bson_iter_utf8(&it, &len);
      if (!bson_utf8_validate(v, len, true))
        return "a string is not valid UTF-8";
    } else if (BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)) {
      const uint8_t *data;
      uint32_t len;
      bson_t sub;
      if (BSON_ITER_HOLDS_ARRAY(&it))
        bson_iter_array(&it, &len, &data);
      else
        bson_iter_document(&it, &len, &data);
      if (!bson_init_static(&sub, data, len))
        return "corrupt document";
      const char *msg = check_utf8(&sub, depth + 1);
      if (msg)
        return msg;
    }
  }
  return NULL;
}

static int next_bson(zql_ioreader_t *r, const bson_t **doc, zql_strbuf_t *err)
{
  uint64_t off = r->rec_off = r->base;
  int rc = fill(r, 4, err);
  if (rc < 0)
    return rc;
  size_t avail = r->end - r->start;
  if (avail == 0)
    return 0;
  r->index++;
  if (avail < 4) {
    r->done = true;
    return rerr(r, err, ZQL_E_BAD_RECORD,
                "offset %" PRIu64 ": truncated BSON document at end of input (%zu bytes)", off,
                avail);
  }
  uint32_t len = le32(r->buf + r->start);
  if (len < 5 || len > r->opts.max_doc) {
    r->done = true; /* the next document cannot be found without a length */
    return rerr(r, err, ZQL_E_BAD_RECORD,
                "offset %" PRIu64 ": invalid BSON document length %" PRIu32
                " (must be 5 to %" PRIu32 "; is this really a .bson file?)",
                off, len, r->opts.max_doc);
  }
  if ((rc = fill(r, len, err)) < 0)
    return rc;
  avail = r->end - r->start;
  if (avail < len) {
    r->done = true;
    return rerr(r, err, ZQL_E_BAD_RECORD,
                "offset %" PRIu64 ": truncated BSON document at end of input (%zu of %" PRIu32
                " bytes)",
                off, avail, len);
  }
  const uint8_t *data = r->buf + r->start;
  consume(r, len); /* the bytes stay in place until the next fill() */
  bson_error_t berr;
  if (!bson_init_static(&r->sdoc, data, len))
    return rerr(r, err, ZQL_E_BAD_RECORD,
                "offset %" PRIu64 ": invalid BSON document (it does not end with a NUL)", off);
  const char *bad = NULL;
  if (!bson_validate_with_error(&r->sdoc, BSON_VALIDATE_NONE, &berr))
    bad = berr.message;
  else
    bad = check_utf8(&r->sdoc, 0);
  if (bad)
    return rerr(r, err, ZQL_E_BAD_RECORD, "offset %" PRIu64 ": invalid BSON document: %s", off,
                bad);
  *doc = &r->sdoc;
  return 1;
}

/* {-- $datetime rewriting -- */

/* Does `doc` have a "$datetime" key? Then *secs is its value (0 if not a number). */
static bool datetime_of(const bson_t *doc, bool *is_number, double *secs)
{
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, "$datetime"))
    return false;
  *is_number = BSON_ITER_HOLDS_NUMBER(&it);
  *secs = *is_number ? bson_iter_as_double(&it) : 0;
  return true;
}

/* Copy src into dst (already begun), replacing $datetime objects by dates. Returns 0 or a
 * message (static) for an invalid $datetime. */
static const char *convert(const bson_t *src, bson_t *dst, int depth)
{
  if (depth > MAX_DEPTH)
    return "documents nested too deeply";
  bson_iter_t it;
  if (!bson_iter_init(&it, src))
    return "invalid document";
  while (bson_iter_next(&it)) {
    const char *key = bson_iter_key(&it);
    uint32_t klen = bson_iter_key_len(&it);
    if (!BSON_ITER_HOLDS_DOCUMENT(&it) && !BSON_ITER_HOLDS_ARRAY(&it)) {
      bson_append_iter(dst, key, (int)klen, &it);
      continue;
    }
    const uint8_t *data;
    uint32_t len;
    bool is_array = BSON_ITER_HOLDS_ARRAY(&it);
    if (is_array)
      bson_iter_array(&it, &len, &data);
    else
      bson_iter_document(&it, &len, &data);
    bson_t sub;
    if (!bson_init_static(&sub, data, len))
      return "invalid document";
    bool is_number;
    double secs;
    if (!is_array && datetime_of(&sub, &is_number, &secs)) {
      if (!is_number)
        return "'$datetime' must be a number of seconds since 1970";
      if (!(secs > -1e14 && secs < 1e14))
        return "'$datetime' is out of range";
      double ms = secs * 1000;
      bson_append_date_time(dst, key, (int)klen, (int64_t)(ms < 0 ? ms - 0.5 : ms + 0.5));
      continue;
    }
    bson_t child;
    if (is_array)
      bson_append_array_begin(dst, key, (int)klen, &child);
    else
      bson_append_document_begin(dst, key, (int)klen, &child);
    const char *msg = convert(&sub, &child, depth + 1);
    if (is_array)
      bson_append_array_end(dst, &child);
    else
      bson_append_document_end(dst, &child);
    if (msg)
      return msg;
  }
  return NULL;
}

/* }-- */

static bool blank(const uint8_t *p, size_t n)
{
  for (size_t k = 0; k < n; k++)
    if (p[k] != ' ' && p[k] != '\t' && p[k] != '\r' && p[k] != '\f' && p[k] != '\v')
      return false;
  return true;
}

static int next_json(zql_ioreader_t *r, const bson_t **doc, zql_strbuf_t *err)
{
  for (;;) {
    /* find the end of the next line */
    uint8_t *nl = NULL;
    bool too_long = false;
    for (;;) {
      size_t avail = r->end - r->start;
      if (r->scan < avail) {
        nl = memchr(r->buf + r->start + r->scan, '\n', avail - r->scan);
        if (nl)
          break;
        r->scan = avail;
      }
      if (r->eof)
        break;
      if (avail >= MAX_LINE) {
        too_long = true; /* drop what we have and keep looking for the newline */
        r->base += avail;
        r->start = r->end;
        r->scan = 0;
      }
      int rc = fill(r, r->end - r->start + 1, err);
      if (rc < 0)
        return rc;
    }
    size_t linelen = nl ? (size_t)(nl - (r->buf + r->start)) : r->end - r->start;
    if (!nl && linelen == 0 && !too_long)
      return 0;
    r->rec_off = r->base;
    const uint8_t *p = r->buf + r->start;
    consume(r, linelen + (nl ? 1 : 0));
    r->line++;
    if (too_long) {
      r->index++;
      return jerr(r, err, "line longer than %u bytes", MAX_LINE);
    }
    if (r->line == 1 && linelen >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
      p += 3; /* a byte-order mark */
      linelen -= 3;
    }
    if (blank(p, linelen))
      continue;
    r->index++;
    size_t k = 0;
    while (p[k] == ' ' || p[k] == '\t')
      k++;
    if (p[k] != '{') {
      if (p[k] == '[')
        return jerr(r, err, "a JSON array is not a document (NDJSON is one object per"
                    " line; mongoexport --jsonArray output must be split)");
      return jerr(r, err, "expected a JSON object");
    }
    if (r->jdoc_live) {
      bson_destroy(&r->jdoc);
      r->jdoc_live = false;
    }
    bson_error_t berr;
    if (!bson_init_from_json(&r->jdoc, (const char *)p, (ssize_t)linelen, &berr))
      return jerr(r, err, "invalid JSON: %s", berr.message);
    r->jdoc_live = true;
    const char *bad = check_utf8(&r->jdoc, 0);
    if (bad)
      return jerr(r, err, "invalid document: %s", bad);
    *doc = &r->jdoc;
    if (r->opts.datetime && memmem(p, linelen, "$datetime", 9)) {
      bool is_number;
      double secs;
      if (datetime_of(&r->jdoc, &is_number, &secs))
        return jerr(r, err, "the document itself is a '$datetime' object");
      if (r->conv_live)
        bson_reinit(&r->conv);
      else
        bson_init(&r->conv);
      r->conv_live = true;
      const char *msg = convert(&r->jdoc, &r->conv, 0);
      if (msg)
        return jerr(r, err, "%s", msg);
      *doc = &r->conv;
    }
    return 1;
  }
}

int zql_ioreader_next(zql_ioreader_t *r, const bson_t **doc, zql_iowhere_t *where,
                      zql_strbuf_t *err)
{
  *doc = NULL;
  if (r->failed)
    return rerr(r, err, r->failed, "%s", "the input was abandoned after an error");
  if (r->done)
    return 0;
  int rc;
  if (!r->started && (rc = start(r, err)) < 0)
    goto fail;
  if (r->fmt == ZQL_IOFMT_AUTO) {
    if ((rc = fill(r, 4, err)) < 0)
      goto fail;
    size_t avail = r->end - r->start;
    if (avail == 0)
      return 0;
    r->fmt = memchr(r->buf + r->start, 0, avail < 4 ? avail : 4) ? ZQL_IOFMT_BSON
                                                                 : ZQL_IOFMT_NDJSON;
  }
  r->rec_off = r->base;
  rc = r->fmt == ZQL_IOFMT_BSON ? next_bson(r, doc, err) : next_json(r, doc, err);
  if (where) {
    where->name = r->name;
    where->index = r->index;
    where->line = r->fmt == ZQL_IOFMT_BSON ? 0 : r->line;
    where->offset = r->rec_off;
  }
  if (rc >= 0 || rc == ZQL_E_BAD_RECORD)
    return rc; /* a gzip failure has set r->done already */
fail:
  if (rc != ZQL_E_BAD_RECORD)
    r->failed = rc;
  return rc;
}

/* }==== */

/* {==== writer ============================================================== */

#define OUT_CHUNK (64u * 1024)

struct zql_iowriter {
  char *name;
  int fd;
  bool own_fd;
  zql_strbuf_t *sink;
  zql_iowriter_opts_t opts;
  uint8_t *out; /* pending serialised bytes */
  size_t len;
  uint8_t *zbuf; /* deflate output */
  z_stream z;
  bool z_live;
  int failed;
  bool reported; /* the failure's message is in some err already */
};

static int werr(zql_iowriter_t *w, zql_strbuf_t *err, int code, const char *fmt, ...)
    ZQL_PRINTF(4, 5);
static int werr(zql_iowriter_t *w, zql_strbuf_t *err, int code, const char *fmt, ...)
{
  w->failed = code;
  w->reported = err != NULL;
  if (err) {
    va_list ap;
    zql_strbuf_addf(err, "%s: ", w->name);
    va_start(ap, fmt);
    zql_strbuf_vaddf(err, fmt, ap);
    va_end(ap);
  }
  return code;
}

static void writer_free(zql_iowriter_t *w)
{
  if (w->z_live)
    deflateEnd(&w->z);
  if (w->own_fd && w->fd >= 0)
    close(w->fd);
  zql_free(w->out);
  zql_free(w->zbuf);
  zql_free(w->name);
  zql_free(w);
}

static int writer_new(const char *name, const zql_iowriter_opts_t *opts, zql_iowriter_t **out,
                      zql_strbuf_t *err)
{
  *out = NULL;
  if (opts->format != ZQL_IOFMT_BSON && opts->format != ZQL_IOFMT_NDJSON &&
      opts->format != ZQL_IOFMT_NDJSON_CANONICAL) {
    if (err)
      zql_strbuf_adds(err, "an output format must be bson or ndjson");
    return ZQL_E_USAGE;
  }
  zql_iowriter_t *w = zql_calloc(1, sizeof *w);
  if (!w)
    goto oom;
  w->fd = -1;
  w->opts = *opts;
  w->name = zql_strndup(name, strlen(name));
  w->out = zql_malloc(OUT_CHUNK);
  if (!w->name || !w->out)
    goto oom;
  if (opts->gzip) {
    if (!(w->zbuf = zql_malloc(OUT_CHUNK)))
      goto oom;
    int level = opts->level >= 1 && opts->level <= 9 ? opts->level : 6;
    if (deflateInit2(&w->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      goto oom;
    w->z_live = true;
  }
  *out = w;
  return 0;
oom:
  if (w)
    writer_free(w);
  if (err)
    zql_strbuf_adds(err, "out of memory");
  return ZQL_E_NOMEM;
}

int zql_iowriter_open_fd(int fd, bool own_fd, const char *name, const zql_iowriter_opts_t *opts,
                         zql_iowriter_t **out, zql_strbuf_t *err)
{
  int rc = writer_new(name, opts, out, err);
  if (rc < 0) {
    if (own_fd)
      close(fd);
    return rc;
  }
  (*out)->fd = fd;
  (*out)->own_fd = own_fd;
  return 0;
}

int zql_iowriter_open(const char *path, const zql_iowriter_opts_t *opts, zql_iowriter_t **out,
                      zql_strbuf_t *err)
{
  *out = NULL;
  if (strcmp(path, "-") == 0)
    return zql_iowriter_open_fd(STDOUT_FILENO, false, path, opts, out, err);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    if (err)
      zql_strbuf_addf(err, "cannot create '%s': %s", path, strerror(errno));
    return ZQL_E_IO;
  }
  return zql_iowriter_open_fd(fd, true, path, opts, out, err);
}

int zql_iowriter_open_mem(zql_strbuf_t *sink, const zql_iowriter_opts_t *opts,
                          zql_iowriter_t **out, zql_strbuf_t *err)
{
  int rc = writer_new("<memory>", opts, out, err);
  if (rc == 0)
    (*out)->sink = sink;
  return rc;
}

/* Hand n bytes to the descriptor or the sink. */
static int emit(zql_iowriter_t *w, const uint8_t *p, size_t n, zql_strbuf_t *err)
{
  if (w->sink) {
    zql_strbuf_add(w->sink, p, n);
    if (w->sink->oom)
      return werr(w, err, ZQL_E_NOMEM, "out of memory");
    return 0;
  }
  while (n > 0) {
    ssize_t k = write(w->fd, p, n);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      return werr(w, err, ZQL_E_IO, "write error: %s", strerror(errno));
    }
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Push the pending bytes out (through deflate with `flush`, Z_NO_FLUSH or Z_FINISH). */
static int drain(zql_iowriter_t *w, int flush, zql_strbuf_t *err)
{
  if (!w->z_live) {
    int rc = emit(w, w->out, w->len, err);
    w->len = 0;
    return rc;
  }
  w->z.next_in = w->out;
  w->z.avail_in = (uInt)w->len;
  for (;;) {
    w->z.next_out = w->zbuf;
    w->z.avail_out = OUT_CHUNK;
    int zrc = deflate(&w->z, flush);
    if (zrc == Z_STREAM_ERROR)
      return werr(w, err, ZQL_E_INTERNAL, "gzip encoder failed");
    size_t have = OUT_CHUNK - w->z.avail_out;
    int rc = have ? emit(w, w->zbuf, have, err) : 0;
    if (rc < 0)
      return rc;
    if (flush == Z_FINISH ? zrc == Z_STREAM_END : w->z.avail_in == 0 && w->z.avail_out != 0)
      break;
  }
  w->len = 0;
  return 0;
}

static int put(zql_iowriter_t *w, const void *data, size_t n, zql_strbuf_t *err)
{
  const uint8_t *p = data;
  while (n > 0) {
    size_t room = OUT_CHUNK - w->len;
    size_t k = n < room ? n : room;
    memcpy(w->out + w->len, p, k);
    w->len += k;
    p += k;
    n -= k;
    if (w->len == OUT_CHUNK) {
      int rc = drain(w, Z_NO_FLUSH, err);
      if (rc < 0)
        return rc;
    }
  }
  return 0;
}

int zql_iowriter_write(zql_iowriter_t *w, const bson_t *doc, zql_strbuf_t *err)
{
  if (w->failed)
    return w->failed;
  if (w->opts.format == ZQL_IOFMT_BSON)
    return put(w, bson_get_data(doc), doc->len, err);
  size_t len;
  char *s = w->opts.format == ZQL_IOFMT_NDJSON_CANONICAL
                ? bson_as_canonical_extended_json(doc, &len)
                : bson_as_relaxed_extended_json(doc, &len);
  if (!s)
    return werr(w, err, ZQL_E_BAD_RECORD, "document cannot be converted to JSON");
  int rc = put(w, s, len, err);
  bson_free(s);
  if (rc == 0)
    rc = put(w, "\n", 1, err);
  return rc;
}

int zql_iowriter_close(zql_iowriter_t *w, zql_strbuf_t *err)
{
  if (!w)
    return 0;
  int rc = w->failed;
  if (rc == 0)
    rc = drain(w, w->z_live ? Z_FINISH : Z_NO_FLUSH, err);
  else if (!w->reported)
    werr(w, err, rc, "%s", "output abandoned after an error");
  if (rc == 0 && w->own_fd && w->fd >= 0) {
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) < 0)
      rc = werr(w, err, ZQL_E_IO, "close failed: %s", strerror(errno));
  }
  writer_free(w);
  return rc;
}

/* }==== */
