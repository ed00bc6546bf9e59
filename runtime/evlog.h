/*
 * evlog.h -- the embedded event log: durable, CRC-framed BSON segments (runtime services).
 *
 * The event log is zql's default store of raw events, the input of every map stage and
 * the write-ahead log of ingestion. A data directory DIR holds DIR/events/:
 *
 *   LOCK                          flock()ed by the one writer (holds its pid, for messages)
 *   00000000000000000001.seg      sealed segments, named by their first _seq (20 digits),
 *   00000000000000004711.seg      immutable, each with an index trailer
 *   00000000000000009000.open     the unsealed segment (at most one, always the last)
 *
 * The byte layout is in docs/formats.md and in runtime/evlog.c's header. Every record is
 * a frame {u32 length, u32 CRC-32C, i64 _seq, i64 timestamp (ms UTC), BSON document}.
 *
 * Invariants
 *  - _seq is dense and monotonic over the whole log: the first record is 1 (or the first
 *    _seq of the oldest segment retention kept), each next record is +1, across segments.
 *  - A record is acknowledged (append returned 0) only when it is durable under the fsync
 *    policy; recovery never removes an acknowledged record. A torn tail (an incomplete or
 *    CRC-invalid suffix of the .open segment) is truncated on writer open and reported.
 *  - Sealed segments never change; a bad record inside one is ZQL_E_CORRUPT with the file
 *    and offset, never skipped. Retention removes whole sealed segments, oldest first.
 *  - One writer (ZQL_E_LOCKED for a second one); any number of readers, which take no
 *    lock, never block the writer and see only complete, CRC-valid records.
 *
 * Events: a document without `_id` gets `_id: <_seq>` (int64, first field); one with an
 * `_id` keeps it. `timestamp` must be a BSON date (ms UTC) or a BSON Timestamp (its seconds
 * give the time, design/ZQL.md R9); the document is stored unchanged and the frame holds
 * the time in ms. A missing `timestamp` is appended as a BSON date of the write time.
 * Any other type is ZQL_E_BAD_EVENT naming the field. Documents are at most 16 MiB
 * (ZQL_EVLOG_MAX_DOC) after these additions.
 *
 * Errors: functions return 0 (or a count) or a negative ZQL_E_* and append one message
 * (lowercase, no code, names the file) to `err` when it is not NULL. Nothing exits.
 *
 * Threads: a zql_evlog_t may be shared by threads (appends are serialised and their
 * fdatasync calls grouped, see zql_evlog_append). Readers and cursors belong to one
 * thread each.
 */
#ifndef ZQL_EVLOG_H
#define ZQL_EVLOG_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/base/strbuf.h"

#define ZQL_EVLOG_MAX_DOC (16u * 1024 * 1024)           /* bytes of one BSON document */
#define ZQL_EVLOG_DEFAULT_SEGMENT (64ull * 1024 * 1024) /* roll size of a segment */
#define ZQL_EVLOG_DEFAULT_STRIDE 1024u                  /* records between sparse index entries */
#define ZQL_EVLOG_DEFAULT_INTERVAL_US 10000             /* batch policy: 10 ms */

/* ==== writer ==== */

typedef enum zql_evlog_sync {
  ZQL_EVLOG_SYNC_BATCH = 0, /* background fdatasync at most once per interval; default */
  ZQL_EVLOG_SYNC_ALWAYS,    /* fdatasync before every append returns (still grouped) */
  ZQL_EVLOG_SYNC_NONE       /* never on append; on seal and close only */
} zql_evlog_sync_t;

typedef struct zql_evlog_opts {
  zql_evlog_sync_t sync;
  int64_t sync_interval_us; /* BATCH: the minimum time between two fdatasync calls */
  uint64_t segment_bytes;   /* roll when a segment would grow past this (>= 4096) */
  uint32_t index_stride;    /* sparse index entry every N records (>= 1) */
  /* The write time stamped on events without `timestamp` (tests); NULL: the real clock. */
  int64_t (*clock_ms)(void *arg);
  void *clock_arg;
  /* Recovery report: one line per repair made on open ("events/F: truncated ..."). */
  zql_strbuf_t *notes;
} zql_evlog_opts_t;

typedef struct zql_evlog zql_evlog_t;

/* Defaults: batch / 10 ms / 64 MiB / 1024, real clock, no notes. */
void zql_evlog_opts_init(zql_evlog_opts_t *o);
/* Open (creating DIR and DIR/events as needed) the log for writing: take the lock, check
 * the sealed segments' indexes and _seq continuity, recover the .open segment (truncate a
 * torn tail, finish an interrupted seal). ZQL_E_LOCKED when another writer holds it,
 * ZQL_E_CORRUPT for damage recovery must not repair, ZQL_E_IO. opts may be NULL. */
int zql_evlog_open(const char *dir, const zql_evlog_opts_t *opts, zql_evlog_t **out,
                   zql_strbuf_t *err);
/* Append n documents as one batch, atomically validated: either all get consecutive _seq
 * (the first is stored in *first_seq) or none is written (ZQL_E_BAD_EVENT names the
 * document's index in the batch and the problem). Returns when the batch is durable under
 * the policy: always, fdatasynced (group commit); batch, written to the file and
 * fdatasynced by the background syncer within the interval (Redis everysec); none,
 * written. Thread-safe. An I/O error, or running out of memory in the middle of a
 * batch, makes the writer unusable (every later call fails with ZQL_E_IO; close and
 * reopen, which recovers: records of a failed batch were never acknowledged). */
int zql_evlog_append(zql_evlog_t *w, const bson_t *const *docs, size_t n, int64_t *first_seq,
                     zql_strbuf_t *err);
/* Make every appended record durable now (any policy). */
int zql_evlog_sync(zql_evlog_t *w, zql_strbuf_t *err);
/* Seal the .open segment now when it holds records and start a new one. */
int zql_evlog_roll(zql_evlog_t *w, zql_strbuf_t *err);
/* The last assigned _seq (0 for an empty log), and the next one to be assigned. */
int64_t zql_evlog_last_seq(zql_evlog_t *w);
/* The last _seq known to be on stable storage (fdatasynced). Runs scheduled in the
 * writer's process bound their (lo, hi] by it, so no run ever counts an event that a
 * machine crash could take back (and whose _seq would then be reused). */
int64_t zql_evlog_durable_seq(zql_evlog_t *w);
/* Retention: remove sealed segments, oldest first, while the oldest has max timestamp
 * < now_ms - max_age_ms (max_age_ms > 0) or the log's total bytes exceed max_bytes
 * (max_bytes > 0). The .open segment is never removed. *ndropped (may be NULL) gets the
 * number of segments removed. */
int zql_evlog_retain(zql_evlog_t *w, int64_t max_age_ms, uint64_t max_bytes, int64_t now_ms,
                     int *ndropped, zql_strbuf_t *err);
/* Sync, release the lock and free. Returns the sync result; w is freed either way. */
int zql_evlog_close(zql_evlog_t *w, zql_strbuf_t *err);

/* ==== readers ==== */

/* One record, zero-copy: doc points into the reader's mapping of the segment and stays
 * valid until the reader is closed (bson_init_static(&b, v.doc, v.len) views it). */
typedef struct zql_evlog_view {
  int64_t seq;
  int64_t ts; /* ms UTC */
  const uint8_t *doc;
  uint32_t len;
} zql_evlog_view_t;

/* What zql log stat prints for each segment. */
typedef struct zql_evlog_seginfo {
  const char *name; /* "00000000000000000001.seg" */
  bool sealed;
  uint64_t count;            /* records */
  int64_t first_seq, last_seq; /* last_seq = first_seq - 1 when empty */
  int64_t min_ts, max_ts;    /* INT64_MAX / INT64_MIN when empty */
  uint64_t bytes;            /* file size (sealed) or valid bytes (open) */
  bool hinted;               /* open: the writer's hint described its records up to a
                                point, which the reader did not walk (evlog_read.c) */
} zql_evlog_seginfo_t;

typedef struct zql_evlog_reader zql_evlog_reader_t;

/* A snapshot of the log: the sealed segments (their indexes read, their records mapped)
 * and the complete records of the .open segment as of now. Takes no lock. ZQL_E_CORRUPT
 * for a bad index or a gap. */
int zql_evlog_reader_open(const char *dir, zql_evlog_reader_t **out, zql_strbuf_t *err);
/* The same, for a reader of the records after `after_seq` mostly (an incremental run):
 * the sealed segments wholly at or before it are neither read nor mapped at open (their
 * bounds come from the file names; their bytes, until read, are estimated) but when a cursor enters one or
 * zql_evlog_reader_segment asks for its times; a cursor then fails (ZQL_E_IO) if log
 * retention removed the file in between. The snapshot can still read every record. */
int zql_evlog_reader_open_after(const char *dir, int64_t after_seq, zql_evlog_reader_t **out,
                                zql_strbuf_t *err);
void zql_evlog_reader_close(zql_evlog_reader_t *r);
size_t zql_evlog_reader_nsegments(const zql_evlog_reader_t *r);
const zql_evlog_seginfo_t *zql_evlog_reader_segment(const zql_evlog_reader_t *r, size_t i);
/* The bytes of the snapshot's segments, without reading the index of a segment an
 * open_after reader left unread (its bytes are then estimated from the others' bytes per
 * record: this sizes the chunks of a run). */
uint64_t zql_evlog_reader_bytes(const zql_evlog_reader_t *r);
/* _seq bounds of the snapshot: records first..last (last = first - 1 when empty). */
int64_t zql_evlog_reader_first_seq(const zql_evlog_reader_t *r);
int64_t zql_evlog_reader_last_seq(const zql_evlog_reader_t *r);

/* A scan range: _seq in (seq_lo, seq_hi] and timestamp in [ts_lo, ts_hi). */
typedef struct zql_evlog_range {
  int64_t seq_lo, seq_hi;
  int64_t ts_lo, ts_hi;
} zql_evlog_range_t;
/* Everything: (INT64_MIN, INT64_MAX], [INT64_MIN, INT64_MAX). */
void zql_evlog_range_all(zql_evlog_range_t *range);

typedef struct zql_evlog_cursor zql_evlog_cursor_t;
/* A cursor over the records of `range`, in _seq order; segments outside the range (by
 * their index) are never touched and a _seq start is found by the sparse index. */
int zql_evlog_cursor_open(zql_evlog_reader_t *r, const zql_evlog_range_t *range,
                          zql_evlog_cursor_t **out, zql_strbuf_t *err);
/* Fill up to max views: returns the number filled (> 0), 0 at the end, or ZQL_E_CORRUPT
 * (a CRC-invalid record in a sealed segment: file and offset in err). */
int zql_evlog_cursor_next(zql_evlog_cursor_t *c, zql_evlog_view_t *views, size_t max,
                          zql_strbuf_t *err);
void zql_evlog_cursor_close(zql_evlog_cursor_t *c);
/* Read records with pread into a buffer of the cursor instead of through the reader's
 * mappings (call before the first zql_evlog_cursor_next). Views are then valid only until
 * the cursor's next call. Cheaper for records read once that the process has not mapped
 * yet: a page costs a fault to map and a TLB shootdown to unmap, more than its copy
 * (docs/performance.md). */
void zql_evlog_cursor_use_pread(zql_evlog_cursor_t *c);

/* Split (lo, hi] (clamped to the snapshot) into at most n chunks of roughly equal bytes
 * (estimated from the sparse indexes): bounds[0] = lo < bounds[1] < ... < bounds[k] = hi,
 * chunk i is (bounds[i], bounds[i+1]]. bounds has room for n + 1 values; returns k (0 when
 * the range is empty) or a negative error. */
int zql_evlog_split(const zql_evlog_reader_t *r, int64_t lo, int64_t hi, size_t n,
                    int64_t *bounds, zql_strbuf_t *err);

/* ==== maintenance ==== */

typedef struct zql_evlog_check_result {
  unsigned segments;  /* files examined */
  uint64_t records;   /* valid records seen */
  unsigned problems;  /* problems found (each one is a line of the report) */
  unsigned repaired;  /* of which repaired */
  bool writer_active; /* a writer held the lock: an incomplete tail is not a problem */
} zql_evlog_check_result_t;

/* Verify every header, record CRC, _seq and index of DIR/events; append one line per
 * problem ("events/F: offset N: what") to report. With repair (needs the writer lock:
 * ZQL_E_LOCKED otherwise): truncate a torn tail of the .open segment, finish an
 * interrupted seal, remove an .open segment whose header was never completed. Sealed
 * data is never changed. Returns 0 when the check ran (see res), < 0 when it could not. */
int zql_evlog_check(const char *dir, bool repair, zql_strbuf_t *report,
                    zql_evlog_check_result_t *res, zql_strbuf_t *err);

#endif
