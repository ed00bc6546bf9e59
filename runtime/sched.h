/*
 * sched.h -- schedules of stored aggregates and zqld's scheduler state machine (runtime
 * services; design/ZQL.md R18, docs/scheduling.md).
 *
 * Two parts:
 *
 * 1. zql_schedule_t: one aggregate's `schedule` clause, parsed from the plan's text
 *    (zql_plan_t.schedule, "schedule every 5s" or "every 5s") by zql_schedule_parse.
 *
 * 2. zql_sched_t: the scheduler. It decides WHEN each aggregate runs; it never runs
 *    anything, starts no thread and reads no clock: every call gets the current time
 *    (UTC ms) from the caller, so tests drive it with an injected clock. zqld's main loop:
 *
 *        zql_sched_set(s, name, &schedule, now, err)   for each stored aggregate
 *        loop:
 *          while (zql_sched_next(s, now, &name))   start a run of `name` (a worker calls
 *                                                   zql_incr_run)
 *          sleep until zql_sched_wakeup(s), a run finishing, or new events
 *          on a run's end:  zql_sched_done(s, name, now, ok, error)
 *                           zql_sched_committed(s, name, now, did_work)
 *          on new events:   zql_sched_events(s, name, now) for each `on event` aggregate
 *                           whose predicate matched one of them
 *
 *    Rules (R18 and the zqld design):
 *    - One run per aggregate at a time; at most max_parallel runs at once. A due
 *      aggregate that cannot start waits; among due aggregates the one due longest
 *      starts first (ties: name order), so none starves.
 *    - `every d`: due when added, then d after the START of its previous run (runs never
 *      overlap, so a run longer than d is followed at once by the next).
 *    - `cron "..."`: due at zql_cron_next in the schedule's zone; after a run, at the
 *      next fire time after that run's start (a run that outlasts fire times is followed
 *      by one catch-up run, not by one per missed time).
 *    - `on event [pred]`: zql_sched_events arms a run at now + settle (the aggregate's
 *      settle, else opts.default_settle_ms); further events inside the window do not
 *      move it, so a burst becomes one run.
 *    - `after X`: due when X commits with work done (zql_sched_committed).
 *    - `on close`: due when a bucket of the aggregate closes: the scheduler computes the
 *      close times itself when the schedule carries the bucket (zql_schedule_set_close:
 *      bucket end + lateness), and the daemon may also report closes with
 *      zql_sched_bucket_close.
 *    - no schedule: due only when zql_sched_trigger asks (an on-demand run).
 *    - A trigger arriving while the aggregate runs sets a pending flag: exactly one
 *      follow-up run happens after the current one, however many triggers came.
 *    - A failed run is retried at now + backoff: retry_min_ms doubling per consecutive
 *      failure up to retry_max_ms, times a random factor in [0.8, 1.2] (clamped to
 *      retry_max_ms); the schedule's own times and triggers wait for the retry, other
 *      aggregates are not affected. A success resets the backoff.
 *
 * Threads: none inside; a zql_sched_t belongs to one thread (or the caller's mutex).
 * Errors: 0 or a negative ZQL_E_* (runtime/base/error.h), with a one-line lowercase
 * message appended to `err` where a function takes one.
 */
#ifndef ZQL_SCHED_H
#define ZQL_SCHED_H

#include "runtime/base/zql_common.h"

#include "runtime/base/strbuf.h"
#include "runtime/base/tz.h"
#include "runtime/base/cron.h"

/* {==== schedules ======================================================================== */

typedef enum zql_schedule_kind {
  ZQL_SCHEDULE_NONE,  /* no schedule clause: on demand only */
  ZQL_SCHEDULE_EVERY, /* every d */
  ZQL_SCHEDULE_CRON,  /* cron "..." in a zone */
  ZQL_SCHEDULE_EVENT, /* on event [predicate] */
  ZQL_SCHEDULE_CLOSE, /* on close */
  ZQL_SCHEDULE_AFTER  /* after X */
} zql_schedule_kind_t;

typedef struct zql_schedule {
  zql_schedule_kind_t kind;
  int64_t every_ms;      /* EVERY: > 0 */
  zql_cron_t cron;       /* CRON */
  const zql_tz_t *tz;    /* CRON: the zone (a cached zone, valid for the process) */
  char *predicate;       /* EVENT: the predicate's text, NULL for every event */
  char *after;           /* AFTER: the aggregate's name */
  int64_t settle_ms;     /* EVENT: the coalescing window; 0: the scheduler's default */
  bool has_bucket;       /* CLOSE: zql_schedule_set_close gave the bucket */
  zql_bucket_t bucket;   /* CLOSE: the aggregate's (first) time bucket */
  int64_t lateness_ms;   /* CLOSE: how long after its end a bucket closes */
  char *text;            /* normalised text for status: "every 1m30s", "on demand",
                            "cron \"0 9 * * 1-5\" tz \"Europe/London\"", "after users" */
} zql_schedule_t;

/* Parse a schedule clause as the plan keeps it (NULL: no clause, kind NONE). The text may
 * start with the keyword `schedule`; then one of
 *     every DURATION     a ZQL duration (250ms, 5s, 1m, 1h30m, 2d, 1w) or constant
 *                        arithmetic over durations and numbers (`1d / 2.0`, `(1h + 30m) * 2`),
 *                        rounded to whole milliseconds, > 0
 *     cron "EXPR"        runtime/cron.h; "@every DURATION" inside the string means
 *                        `every DURATION` (the analyzer accepts it there)
 *     on event [PRED]    PRED kept as text (the daemon evaluates it), NULL when absent
 *     on close
 *     after NAME         NAME may be back-quoted
 * settle_ms is the aggregate's `settle` (0: none; used by `on event`), tz_name the zone of
 * a cron schedule (the aggregate's first bucket zone; NULL: UTC). Returns 0 and fills *out
 * (release it with zql_schedule_release), or
 *     ZQL_E_BAD_CRON             the cron expression is invalid (message with its column)
 *     ZQL_E_BAD_DURATION_VALUE   the duration is not a positive constant
 *     ZQL_E_UNSUPPORTED          `every $param`: the text alone cannot give the value
 *     ZQL_E_SYNTAX               none of the forms above
 *     ZQL_E_UNKNOWN_TIMEZONE ... from zql_tz_load
 *     ZQL_E_NOMEM
 * with a message in err (when not NULL); *out is then empty (safe to release). */
int zql_schedule_parse(const char *text, int64_t settle_ms, const char *tz_name,
                       zql_schedule_t *out, zql_strbuf_t *err);

/* An `every` schedule of ms milliseconds without text to parse (for a caller that has the
 * folded value). 0, ZQL_E_BAD_DURATION_VALUE (ms <= 0) or ZQL_E_NOMEM. */
int zql_schedule_every(int64_t ms, zql_schedule_t *out);

/* Give an `on close` schedule its bucket (copied; b->tz must stay valid, as cached zones
 * do) and lateness >= 0: the scheduler then arms a run at every bucket end + lateness.
 * 0, or ZQL_E_USAGE when s is not `on close` or lateness is negative. */
int zql_schedule_set_close(zql_schedule_t *s, const zql_bucket_t *b, int64_t lateness_ms);

/* The first close strictly after t: the end of the bucket holding t - lateness, plus the
 * lateness. INT64_MAX when s has no bucket or the time is out of range. */
int64_t zql_schedule_next_close(const zql_schedule_t *s, int64_t t_ms);

void zql_schedule_release(zql_schedule_t *s); /* frees the strings; *s becomes NONE */

/* }==== */

/* {==== the scheduler ==================================================================== */

typedef struct zql_sched zql_sched_t;

typedef struct zql_sched_opts {
  int max_parallel;          /* runs at once; <= 0: 2 */
  int64_t retry_min_ms;      /* first retry delay; <= 0: 1 s */
  int64_t retry_max_ms;      /* longest retry delay; <= 0: 5 min (raised to retry_min) */
  int64_t default_settle_ms; /* `on event` window without `settle`; < 0: 200 ms */
  uint64_t seed;             /* of the jitter's generator (tests: fixed; zqld: random) */
} zql_sched_opts_t;

/* The defaults of [scheduler] (zqld.md): 2 runs, 1 s .. 5 min, 200 ms, seed 1. */
#define ZQL_SCHED_OPTS_INIT {2, 1000, 300000, 200, 1}

/* A scheduler without entries (opts NULL: the defaults), or NULL when out of memory. */
zql_sched_t *zql_sched_new(const zql_sched_opts_t *opts);
void zql_sched_free(zql_sched_t *s); /* NULL is a no-op */

/* Add the aggregate `name` with a copy of *sc, or replace its schedule (a SIGHUP reload
 * calls this for every aggregate). An unchanged schedule keeps the entry's timing; a
 * changed one recomputes its own times from now (an `every` entry counts from its last
 * start), keeps triggers that have armed a run, and keeps a pending retry. A running
 * entry keeps running and follows the new schedule after its run. Returns 0, or
 *     ZQL_E_CYCLE   `after` edges would form a cycle: "schedule cycle: a after b after a"
 *     ZQL_E_NOMEM
 * (message in err when not NULL); on error nothing changes. */
int zql_sched_set(zql_sched_t *s, const char *name, const zql_schedule_t *sc, int64_t now_ms,
                  zql_strbuf_t *err);
/* Drop an aggregate. A running one finishes its run (zql_sched_done still expected) but
 * is never started again unless zql_sched_set adds it back. 0 or ZQL_E_NO_AGG. */
int zql_sched_remove(zql_sched_t *s, const char *name);

/* Triggers. Each returns 0, or ZQL_E_NO_AGG for an unknown name. A trigger that applies
 * while the entry runs sets its pending flag instead (one follow-up run). */
/* New events matched name's `on event` predicate: arm a run at now + settle unless one is
 * armed already (ignored for other kinds). */
int zql_sched_events(zql_sched_t *s, const char *name, int64_t now_ms);
/* `name` committed: when did_work, every `after name` entry becomes due at now. Returns
 * the number of entries triggered (>= 0); an unknown name is fine (none depends on it). */
int zql_sched_committed(zql_sched_t *s, const char *name, int64_t now_ms, bool did_work);
/* A bucket of `name` closes at close_ms (may be in the future): due then (ignored unless
 * the schedule is `on close`). */
int zql_sched_bucket_close(zql_sched_t *s, const char *name, int64_t close_ms);
/* Run `name` now whatever its schedule (`zql agg run` through the daemon, a catch-up run
 * at start); a pending retry still waits for its backoff. */
int zql_sched_trigger(zql_sched_t *s, const char *name, int64_t now_ms);

/* Dispatch: when fewer than max_parallel runs are active and some entry is due at now,
 * mark the one due longest as running (its start is now), set *name (valid until the
 * entry is freed: zql_sched_done after zql_sched_remove, or zql_sched_free) and return 1;
 * else return 0. */
int zql_sched_next(zql_sched_t *s, int64_t now_ms, const char **name);
/* When the next entry becomes due (UTC ms; possibly <= now: call zql_sched_next), or
 * INT64_MAX when none is armed or max_parallel runs are active (then wait for a run to
 * end). Call again after every change. */
int64_t zql_sched_wakeup(const zql_sched_t *s);
/* The run of `name` started by zql_sched_next ended at now. ok: the failure count resets
 * and the next due time follows the schedule (plus a pending follow-up); !ok: error (may
 * be NULL) is kept for status and a retry is armed. 0, or ZQL_E_NO_AGG when `name` is not
 * running. */
int zql_sched_done(zql_sched_t *s, const char *name, int64_t now_ms, bool ok, const char *error);

/* Status of one entry. Strings live until the entry's next change. */
typedef struct zql_sched_info {
  const char *kind;         /* "none", "every", "cron", "event", "close", "after" */
  const char *schedule;     /* the schedule's normalised text (zql_schedule_t.text) */
  int64_t next_due_ms;      /* INT64_MAX: not armed (while running: a pending follow-up) */
  bool running;
  bool pending;             /* a follow-up run will start after the current one */
  uint32_t failures;        /* consecutive failed runs */
  const char *last_error;   /* of the last failed run, NULL after a success */
  int64_t last_start_ms;    /* INT64_MIN: never started */
  int64_t last_end_ms;      /* INT64_MIN: never ended */
} zql_sched_info_t;

/* 0 and *out, or ZQL_E_NO_AGG. */
int zql_sched_info(const zql_sched_t *s, const char *name, zql_sched_info_t *out);
/* The i-th aggregate in name order (for `zql status`), NULL past the end. */
const char *zql_sched_nth(const zql_sched_t *s, size_t i);
/* Runs active now. */
int zql_sched_active(const zql_sched_t *s);

/* }==== */

#endif
