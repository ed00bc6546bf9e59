/*
 * ioformat.h -- the document file formats of import, export and gen (runtime services).
 *
 * Two formats, each possibly gzip-compressed:
 *   BSON    concatenated BSON documents, as mongodump writes .bson files and bsondump /
 *           mongorestore read them: each document is its own int32 length, its elements
 *           and a NUL; nothing between documents.
 *   NDJSON  one MongoDB extended-JSON object per line (relaxed or canonical: libbson reads
 *           both; {"$date": "2024-01-01T00:00:00Z"}, {"$numberLong": "5"}...). Blank lines
 *           are skipped; a UTF-8 byte-order mark at the start is ignored. A pretty-printed
 *           object that spans lines is not NDJSON and is reported line by line.
 *
 * Reader: zql_ioreader_open -> zql_ioreader_next* -> zql_ioreader_close. It streams: the
 * memory it holds is one record plus a read buffer, whatever the file size.
 *   - Detection (ZQL_IOFMT_AUTO): gzip by its magic bytes 1f 8b (multi-member files, as
 *     `cat a.gz b.gz` makes, are read through); then, in the uncompressed bytes, BSON if
 *     one of the first four bytes is NUL (a BSON length below 16 MiB always has a NUL as
 *     its fourth byte; JSON text never contains one), NDJSON otherwise.
 *   - next() returns 1 with a document, 0 at the end of input, or a negative ZQL_E_* with
 *     a message appended to `err` that starts with the file name and the record's line
 *     (NDJSON: "events.json:3: ...") or byte offset (BSON: "dump.bson: offset 1234: ...";
 *     offsets count the uncompressed stream). ZQL_E_BAD_RECORD is one invalid record: the
 *     caller may call next() again to go on with the next record (lenient) or stop
 *     (strict); after an error that leaves no next record (a BSON length that cannot be
 *     trusted, a document truncated at the end of input, a corrupt gzip stream) next()
 *     returns 0. ZQL_E_IO and ZQL_E_NOMEM are fatal: next() keeps returning them.
 *   - BSON documents are checked with bson_validate (structure and UTF-8) and must be at
 *     most opts.max_doc bytes (16 MiB); NDJSON documents are validated the same way.
 *   - opts.datetime applies Zarkov's JSON convention: an object that has a "$datetime" key
 *     whose value is a number of seconds since the epoch ({"$datetime": 1325376000.5}) is
 *     replaced, wherever it is, by a BSON date (milliseconds, rounded).
 *   - The document handed out belongs to the reader and stays valid until the next call
 *     to next() or close().
 *
 * Writer: zql_iowriter_open -> zql_iowriter_write* -> zql_iowriter_close. BSON output is
 * the documents' bytes exactly (so a document read from a .bson file is written back
 * byte-identical); NDJSON output is libbson's relaxed (or canonical) extended JSON, one
 * document per line. With gzip the output is one gzip member. close() flushes and
 * reports the first error of the stream.
 *
 * Paths: "-" is stdin for a reader and stdout for a writer (never closed by zql).
 */
#ifndef ZQL_IOFORMAT_H
#define ZQL_IOFORMAT_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/base/strbuf.h"

/* Largest document the reader accepts by default (MongoDB's limit). */
#define ZQL_IO_MAX_DOC (16u * 1024 * 1024)

typedef enum zql_iofmt {
  ZQL_IOFMT_AUTO,            /* reader: detect (the default); not valid for a writer */
  ZQL_IOFMT_BSON,            /* concatenated BSON documents */
  ZQL_IOFMT_NDJSON,          /* extended JSON, one per line (relaxed when writing) */
  ZQL_IOFMT_NDJSON_CANONICAL /* writer: canonical extended JSON; reader: same as NDJSON */
} zql_iofmt_t;

/* "bson", "ndjson" or "ndjson-canonical" ("auto" for AUTO). */
const char *zql_iofmt_name(zql_iofmt_t f);
/* Parse "bson", "ndjson" / "json", "ndjson-canonical", "auto". Returns 0 or ZQL_E_USAGE. */
int zql_iofmt_parse(const char *s, zql_iofmt_t *f);

/* {==== reader ============================================================== */

typedef struct zql_ioreader zql_ioreader_t;

typedef struct zql_ioreader_opts {
  zql_iofmt_t format; /* AUTO, BSON or NDJSON */
  bool datetime;      /* NDJSON: {"$datetime": seconds} becomes a BSON date */
  uint32_t max_doc;   /* 0: ZQL_IO_MAX_DOC */
} zql_ioreader_opts_t;

#define ZQL_IOREADER_OPTS_INIT {ZQL_IOFMT_AUTO, false, 0}

/* Where the record that next() just returned (or rejected) came from. */
typedef struct zql_iowhere {
  const char *name; /* the path as given, "-" for stdin; owned by the reader */
  uint64_t index;   /* 1-based record number, counting invalid records */
  uint64_t line;    /* NDJSON: 1-based line; BSON: 0 */
  uint64_t offset;  /* byte offset of the record in the uncompressed stream */
} zql_iowhere_t;

/* Open a file ("-": stdin). opts may be NULL (the defaults). Returns 0, or ZQL_E_IO /
 * ZQL_E_NOMEM with a message in err. Nothing is read until the first next(). */
int zql_ioreader_open(const char *path, const zql_ioreader_opts_t *opts, zql_ioreader_t **out,
                      zql_strbuf_t *err);
/* Read from an open descriptor; close it at zql_ioreader_close when own_fd. */
int zql_ioreader_open_fd(int fd, bool own_fd, const char *name, const zql_ioreader_opts_t *opts,
                         zql_ioreader_t **out, zql_strbuf_t *err);
/* Read from memory (not copied: it must outlive the reader). */
int zql_ioreader_open_mem(const void *data, size_t len, const char *name,
                          const zql_ioreader_opts_t *opts, zql_ioreader_t **out,
                          zql_strbuf_t *err);

/* The next document; see the top of this file. `where` may be NULL. */
int zql_ioreader_next(zql_ioreader_t *r, const bson_t **doc, zql_iowhere_t *where,
                      zql_strbuf_t *err);

/* The detected (or forced) format: AUTO until the first next() has seen input. */
zql_iofmt_t zql_ioreader_format(const zql_ioreader_t *r);
bool zql_ioreader_gzip(const zql_ioreader_t *r);
/* Bytes read from the file so far (compressed bytes for gzip): progress against its size. */
uint64_t zql_ioreader_bytes_in(const zql_ioreader_t *r);

void zql_ioreader_close(zql_ioreader_t *r); /* NULL is a no-op */

/* }==== */

/* {==== writer ============================================================== */

typedef struct zql_iowriter zql_iowriter_t;

typedef struct zql_iowriter_opts {
  zql_iofmt_t format; /* BSON, NDJSON or NDJSON_CANONICAL */
  bool gzip;
  int level;          /* gzip level 1..9; 0: 6 */
} zql_iowriter_opts_t;

/* Create or truncate `path` ("-": stdout). Returns 0, or ZQL_E_IO / ZQL_E_USAGE /
 * ZQL_E_NOMEM with a message in err. */
int zql_iowriter_open(const char *path, const zql_iowriter_opts_t *opts, zql_iowriter_t **out,
                      zql_strbuf_t *err);
int zql_iowriter_open_fd(int fd, bool own_fd, const char *name, const zql_iowriter_opts_t *opts,
                         zql_iowriter_t **out, zql_strbuf_t *err);
/* Append everything to `sink` (for tests and in-memory conversions). */
int zql_iowriter_open_mem(zql_strbuf_t *sink, const zql_iowriter_opts_t *opts,
                          zql_iowriter_t **out, zql_strbuf_t *err);

/* Write one document. Returns 0 or ZQL_E_IO / ZQL_E_NOMEM; after an error every later
 * call returns it again. */
int zql_iowriter_write(zql_iowriter_t *w, const bson_t *doc, zql_strbuf_t *err);

/* Flush, finish the gzip member, close an owned descriptor and free the writer (always).
 * Returns 0 or the first error of the stream (reported in err if not reported yet). */
int zql_iowriter_close(zql_iowriter_t *w, zql_strbuf_t *err);

/* }==== */

#endif
