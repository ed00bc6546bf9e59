/*
 * evlog_int.h -- internals shared by the event log's files (evlog.c writer, evlog_read.c
 * readers, evlog_check.c maintenance, evlog_fmt.c byte layout). Not a public header.
 *
 * The byte layout itself is documented in evlog_fmt.c and docs/formats.md.
 */
#ifndef ZQL_EVLOG_INT_H
#define ZQL_EVLOG_INT_H

#include "runtime/base/zql_common.h"

#include "runtime/base/strbuf.h"
#include "runtime/evlog.h"

#define EVLOG_VERSION 1u
#define EVLOG_HDR_SIZE 32u        /* segment header */
#define EVLOG_FRAME_HDR 24u       /* u32 len, u32 crc, i64 seq, i64 ts */
#define EVLOG_FRAME_FIXED 16u     /* the part of `len` that is not the document */
#define EVLOG_IDX_HEAD 64u        /* index block head, before the sparse entries */
#define EVLOG_IDX_ENTRY 16u       /* i64 seq, u64 offset */
#define EVLOG_IDX_TAIL 8u         /* u32 crc, u32 zero */
#define EVLOG_FOOTER_SIZE 24u     /* u64 index offset, u32 index length, u32 crc, magic */
#define EVLOG_NAME_DIGITS 20
#define EVLOG_MIN_DOC 5u

/* {==== little-endian access (unaligned) ====} */
static inline uint32_t evlog_ld32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t evlog_ld64(const uint8_t *p)
{
  return (uint64_t)evlog_ld32(p) | (uint64_t)evlog_ld32(p + 4) << 32;
}
static inline void evlog_st32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}
static inline void evlog_st64(uint8_t *p, uint64_t v)
{
  evlog_st32(p, (uint32_t)v);
  evlog_st32(p + 4, (uint32_t)(v >> 32));
}

/* {==== records ====} */
typedef enum {
  EVLOG_FRAME_OK,
  EVLOG_FRAME_SHORT, /* fewer bytes than the frame needs: the end, or a torn tail */
  EVLOG_FRAME_BAD    /* a length, CRC, _seq or document length that is wrong */
} evlog_frame_status_t;

/* Parse the frame at p (avail bytes). expect_seq: the _seq it must carry (0: any). On OK
 * fills *v and *frame_len. On BAD, *why says what was wrong (static text). verify_crc:
 * false skips the CRC (records a reader already verified). */
/* The CRC of a frame that zql_evlog_frame_parse accepted (with or without verify_crc). */
bool zql_evlog_frame_crc_ok(const uint8_t *p);
evlog_frame_status_t zql_evlog_frame_parse(const uint8_t *p, size_t avail, int64_t expect_seq,
                                           bool verify_crc, zql_evlog_view_t *v,
                                           size_t *frame_len, const char **why);
/* Write the 24-byte frame head for a document already at head + 24. */
void zql_evlog_frame_head(uint8_t *head, int64_t seq, int64_t ts, uint32_t doclen);

/* {==== segment header, index and footer ====} */
void zql_evlog_header_build(uint8_t hdr[EVLOG_HDR_SIZE], int64_t first_seq);
/* 0 when valid; *why otherwise. */
int zql_evlog_header_parse(const uint8_t *hdr, size_t avail, int64_t *first_seq, const char **why);

/* What a segment's index says (sealed) or a scan found (open). */
typedef struct evlog_summary {
  int64_t first_seq, last_seq; /* last = first - 1 when empty */
  int64_t min_ts, max_ts;
  uint64_t count;
  uint64_t data_end; /* offset after the last record */
  uint32_t stride;
  uint32_t nsparse;
  uint32_t last_len; /* the last record's frame length: kept by scans and in a hint (at
                        offset 60 of its index block); a sealed trailer has 0 there */
  const uint8_t *sparse_raw; /* sealed: nsparse entries of 16 bytes in the mapping */
  int64_t *sparse;           /* open (reader scan): seq, offset pairs; zql_malloc'ed */
} evlog_summary_t;

/* Append the index block and footer for a segment to sb. sparse: nsparse (seq, offset)
 * pairs. */
void zql_evlog_trailer_build(zql_strbuf_t *sb, const evlog_summary_t *s, const int64_t *sparse);
/* Parse the trailer of a sealed file of file_size bytes, given its last tail_len bytes at
 * `tail` (the whole file, or at least [index offset, end)): fills s (sparse_raw points into
 * tail). 0, or -1 with *why. */
int zql_evlog_trailer_parse(const uint8_t *tail, size_t tail_len, uint64_t file_size,
                            evlog_summary_t *s, const char **why);
/* The i-th sparse entry (either representation). */
void zql_evlog_sparse_get(const evlog_summary_t *s, uint32_t i, int64_t *seq, uint64_t *off);

/* Scan records from EVLOG_HDR_SIZE of a segment of `size` bytes: stops at the first frame
 * that is not OK (with verify_crc false, the CRC is not part of OK: the frame's structure,
 * lengths and consecutive _seq are). Fills s (count, ranges, data_end = end of the valid
 * prefix). When
 * sparse_out is not NULL, collects a sparse entry every `stride` records into a
 * zql_malloc'ed array (*sparse_out, *nsparse). Returns the status of the stopping frame
 * (OK when the scan reached `size` exactly), and *why for BAD. ZQL_E_NOMEM possible. */
int zql_evlog_scan(const uint8_t *base, size_t size, int64_t first_seq, uint32_t stride,
                   bool verify_crc, evlog_summary_t *s, int64_t **sparse_out, const char **why);
/* Go on scanning from s->data_end with the counts, ranges and sparse entries (*sparse,
 * whose capacity is the next power of two >= s->nsparse, at least 64; NULL: none yet)
 * already in s. Same results. */
int zql_evlog_scan_from(const uint8_t *base, size_t size, bool verify_crc, evlog_summary_t *s,
                        int64_t **sparse, const char **why);

/* {==== the directory ====} */
typedef struct evlog_entry {
  char name[EVLOG_NAME_DIGITS + 6]; /* 20 digits + ".open" + NUL */
  int64_t first_seq;
  bool sealed;
} evlog_entry_t;

/* List DIR/events/ segment files sorted by first _seq (zql_malloc'ed array). Other files
 * are ignored. Fails with ZQL_E_CORRUPT on two files with the same first _seq or an
 * .open that is not last. */
int zql_evlog_list(const char *evdir, evlog_entry_t **out, size_t *n, zql_strbuf_t *err);
/* Call once(arg, err) until it returns something else than ZQL_E_CORRUPT, at most 20
 * times with growing 1..20 ms pauses: for lock-free views of a directory a writer is
 * changing, whose transient inconsistencies never exist on disk. The last attempt's
 * message goes to err. */
int zql_evlog_retry_corrupt(int (*once)(void *arg, zql_strbuf_t *err), void *arg,
                            zql_strbuf_t *err);
void zql_evlog_name(char *buf, int64_t first_seq, bool sealed);
/* Read a whole file into a zql_malloc'ed buffer (size in *len). */
int zql_evlog_read_file(int fd, const char *path, uint8_t **out, size_t *len, zql_strbuf_t *err);
/* fsync a directory. */
int zql_evlog_fsync_dir(const char *path, zql_strbuf_t *err);
/* Lock DIR/events/LOCK: exclusive non-blocking. *fd gets the open lock file. ZQL_E_LOCKED
 * names the holder's pid when it wrote one. */
int zql_evlog_lock(const char *evdir, int *fd, zql_strbuf_t *err);

#endif
