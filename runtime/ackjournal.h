/*
 * ackjournal.h -- the dedup journal of acknowledged ingest batches (zqld, runtime services).
 *
 * The acked ingest endpoint (:6546, docs/zqld.md) promises exactly-once delivery to a
 * client that resends an unacknowledged batch with the same (client, batch) id: the
 * server remembers (client, batch) -> (first, last, accepted, rejected) here and answers a
 * known batch `dup: true` with the recorded range instead of logging it again.
 *
 * File DATA/ingest/acked.jnl: append-only fixed-size records, little endian, no header:
 *
 *   client[16] batch:i64 first:i64 last:i64 accepted:u32 rejected:u32 crc32c:u32
 *
 * (52 bytes; the CRC-32C covers the 48 bytes before it). Two reserved forms share it:
 *   - a time mark: client all zero, batch 0, first = wall-clock ms. Records after a mark
 *     were added at most ZQL_ACKJOURNAL_MARK_MS after it; they give records an age, so
 *     the 24-hour retention survives restarts. A mark is written before a record whenever
 *     the previous mark is older than that.
 *   - a revocation: accepted = ZQL_ACKREC_REVOKED: forget (client, batch) (its events were
 *     not logged after all; the writer's fallback paths use it).
 * A later record for the same (client, batch) replaces an earlier one.
 *
 * Protocol with the event log (zqld_ingest.c): write + fdatasync the records of a group
 * commit first, then append the events and wait until they are durable, then reply. So
 * after a crash the journal may know batches whose events never became durable: open
 * drops every (client, batch) whose latest record has `last` beyond the recovered log's
 * last _seq (those clients were never acknowledged; they retry, and the range is reused).
 * A torn or CRC-bad tail is truncated; a CRC-bad record elsewhere is dropped (the file is
 * rewritten without it).
 *
 * Retention: a record is kept while it is among the newest `keep_batches` (default
 * 65536) batches of its client or younger than `keep_ms` (default 24 h). Compaction
 * rewrites the file with the kept records (temp file, fsync, rename, fsync directory): on
 * open when anything was dropped, and from zql_ackjournal_maybe_compact once the file is
 * larger than max(compact_bytes, 2 x the live records' size).
 *
 * Threads: a journal belongs to one thread (zqld's writer thread). Errors: 0 or a negative
 * ZQL_E_* with one message naming the file in `err` (may be NULL).
 */
#ifndef ZQL_ACKJOURNAL_H
#define ZQL_ACKJOURNAL_H

#include "runtime/base/zql_common.h"

#include "runtime/base/strbuf.h"

#define ZQL_ACKJOURNAL_RECORD 52                     /* bytes per record */
#define ZQL_ACKJOURNAL_KEEP_BATCHES 65536u           /* default per client */
#define ZQL_ACKJOURNAL_KEEP_MS (24 * 3600 * 1000LL)  /* default age */
#define ZQL_ACKJOURNAL_COMPACT_BYTES (4u << 20)      /* default compaction threshold */
#define ZQL_ACKJOURNAL_MARK_MS 60000                 /* time marks at most this apart */
#define ZQL_ACKREC_REVOKED UINT32_MAX                /* `accepted` of a revocation */

typedef struct zql_ackrec {
  uint8_t client[16];
  int64_t batch;    /* > 0 */
  int64_t first;    /* first _seq of the batch's accepted events (0 when none) */
  int64_t last;     /* last _seq (0 when none) */
  uint32_t accepted;
  uint32_t rejected;
} zql_ackrec_t;

typedef struct zql_ackjournal_opts {
  uint32_t keep_batches;  /* per client; 0: ZQL_ACKJOURNAL_KEEP_BATCHES */
  int64_t keep_ms;        /* 0: ZQL_ACKJOURNAL_KEEP_MS */
  uint64_t compact_bytes; /* 0: ZQL_ACKJOURNAL_COMPACT_BYTES */
  int64_t (*clock_ms)(void *arg); /* wall clock, ms UTC; NULL: the real clock */
  void *clock_arg;
  zql_strbuf_t *notes;    /* recovery report, one line per repair (may be NULL) */
} zql_ackjournal_opts_t;

typedef struct zql_ackjournal zql_ackjournal_t;

typedef struct zql_ackjournal_info {
  size_t live;            /* (client, batch) pairs known */
  size_t clients;         /* distinct clients among them */
  uint64_t file_bytes;    /* current size of the file */
  unsigned compactions;   /* rewrites since open (including the one at open) */
} zql_ackjournal_info_t;

/* Open (creating the file and its directory if needed) and recover, as described above.
 * log_last_seq: the recovered event log's last _seq. opts may be NULL. */
int zql_ackjournal_open(const char *path, int64_t log_last_seq, const zql_ackjournal_opts_t *opts,
                        zql_ackjournal_t **out, zql_strbuf_t *err);
/* 1 and *out filled when (client, batch) is known, else 0. out may be NULL. */
int zql_ackjournal_find(const zql_ackjournal_t *j, const uint8_t client[16], int64_t batch,
                        zql_ackrec_t *out);
/* Append n records (batch > 0, client not all zero) and fdatasync, all or nothing: on an
 * error the file is cut back and nothing is known. ZQL_E_USAGE for a reserved id. */
int zql_ackjournal_add(zql_ackjournal_t *j, const zql_ackrec_t *recs, size_t n, zql_strbuf_t *err);
/* Forget n (client, batch) pairs (records with only client and batch used), durably. */
int zql_ackjournal_revoke(zql_ackjournal_t *j, const zql_ackrec_t *keys, size_t n,
                          zql_strbuf_t *err);
/* Forget pairs in memory only (the file is repaired by the next open: used after the
 * event log failed, when their `last` is not durable). */
void zql_ackjournal_forget(zql_ackjournal_t *j, const zql_ackrec_t *keys, size_t n);
/* Rewrite the file when it passed the threshold (or always when force). Returns 0 when
 * nothing was needed or the rewrite succeeded. */
int zql_ackjournal_maybe_compact(zql_ackjournal_t *j, bool force, zql_strbuf_t *err);
void zql_ackjournal_info(const zql_ackjournal_t *j, zql_ackjournal_info_t *out);
/* Close and free (NULL: no-op). Every add was already durable. */
void zql_ackjournal_close(zql_ackjournal_t *j);

#endif
