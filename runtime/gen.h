/*
 * gen.h -- deterministic synthetic SourceForge-style events (runtime services).
 *
 * `zql gen` and the tests and benchmarks draw their events from here. The generator is an
 * iterator: zql_gen_new() with the options, then zql_gen_next() hands out one bson_t at
 * a time (the same bson_t, rebuilt for each event: no allocation per event beyond the
 * growth of that one buffer), zql_gen_free() at the end. zql_gen_each() is the callback
 * form of the same loop.
 *
 * Determinism: the stream is a pure function of the options. The generator has its own
 * PRNG (xoshiro256**, seeded through splitmix64 from --seed), draws normal deviates as a
 * sum of 12 uniforms and computes exp() with its own polynomial, so only IEEE-754 basic
 * operations touch the values (no libm, no rand(), no clock): the same seed gives the
 * same bytes on every machine. Doubles are rounded to multiples of 1/8 so that their
 * JSON form is short and exact.
 *
 * The data, exactly (rates are per event of the type named; "U(a,b)" is uniform):
 *
 *   timestamp  BSON date. Event i of N has the nominal time start + (i + 0.5) * W / N for
 *              the window W = days * 86400 s; 97% get a jitter of U(-j, +j) with
 *              j = min(5 s, W / 4N), 3% arrive late, U(0, 1 h) before their nominal time
 *              (so the stream increases on average and about 3% of events are out of
 *              order). Clamped to [start, start + W).
 *   type       base mix (per mille): pageview 420, download 160, api_call 150, search 80,
 *              visit 60, login 50, commit 50, ticket 30. Funnel follow-ups replace base
 *              draws: 40% of visits with a user are followed (1-30 events later) by the
 *              same user's signup_form, 60% of those by signup_done, 50% of those by a
 *              download. So about 2.3% of events are signup_form, 1.4% signup_done.
 *   context    user: "user<k>", Zipf-Mandelbrot over --users (weight 1/(k + 10), k from 1);
 *                absent in 3% of base events (never in funnel follow-ups).
 *              project: "<stem><suffix>[<n>]", Zipf over --projects (weight 1/k, k from 1);
 *                every type except login and signup_*.
 *              neighborhood: "projects" 90%, "users" 7%, "teams" 3% (fixed per project).
 *              tool: per type (pageview: summary/wiki/tickets/code/files/discussion;
 *                download: files; search: search; commit: git/svn/hg; ticket: tickets;
 *                login, signup_*: auth; api_call: rest; visit: home).
 *              country: ISO code, fixed per user (US 30%, DE 10%, IN 10%, CN 8%, BR 6%,
 *                GB 6%, FR 5%, JP 4%, RU 4%, CA 3%, 12 others 1-2% each); drawn per event
 *                when the user is absent.
 *              agent_class: "bot" or "human" on pageview (bot 15%), download, search and
 *                visit (bot 5%).
 *              endpoint: api_call only, one of 8 REST routes ("GET /rest/p/{project}"...).
 *   extra      pageview: path, bytes (int32, log-normal, median 24 KiB), ms, status.
 *              download: file ("<project>-1.<v>.<ext>", 8 per project, weight 1/(v+1)),
 *                bytes (int64, log-normal, median ~4 MB), tags (array of 0-3 strings,
 *                fixed per file), mirror.
 *              api_call: ms (log-normal, a median per endpoint, sigma 0.6, 1% of calls
 *                10x slower), status (200 90%, 201 2%, 304 2%, 400 1%, 401 1%, 404 2%,
 *                429 0.5%, 500 1%, 502 0.2%, 503 0.3%).
 *              search: query (1-3 words), results (int32), ms.
 *              commit: branch, files, added, removed (int32).
 *              login: method, success (bool, 95% true).
 *              ticket: action, ticket (int32), priority (1-5).
 *              visit: referrer, landing.  signup_form: step.  signup_done: method.
 *   missing    extra.bytes absent in 2% of pageviews and downloads.
 *   malformed  extra.bytes is a string like "12k" in 0.5% of pageviews and downloads;
 *              extra.ms is negative in 0.3% and null in 0.3% of the events that carry it
 *              (pageview, api_call, search).
 *
 * Every field read by the examples (examples/NAME.zql) exists: type, timestamp, context.{user, project,
 * country, endpoint, agent_class}, extra.{ms, status, bytes, file, tags}.
 */
#ifndef ZQL_GEN_H
#define ZQL_GEN_H

#include "runtime/base/zql_common.h"

#include <bson/bson.h>

#include "runtime/base/strbuf.h"

/* 2024-01-01T00:00:00Z in ms since the epoch: the default window start. */
#define ZQL_GEN_DEFAULT_START_MS INT64_C(1704067200000)

/* Limits enforced by zql_gen_new (ZQL_E_USAGE past them). */
#define ZQL_GEN_MAX_DAYS 36500u
#define ZQL_GEN_MAX_PROJECTS 1000000u
#define ZQL_GEN_MAX_USERS 10000000u

typedef struct zql_gen_opts {
  uint64_t events;   /* N: how many events (default 1000) */
  uint64_t seed;     /* default 1 */
  uint32_t days;     /* window length in days, >= 1 (default 7) */
  uint32_t projects; /* >= 1 (default 200) */
  uint32_t users;    /* >= 1 (default 5000) */
  int64_t start_ms;  /* window start, UTC ms since the epoch (default 2024-01-01) */
} zql_gen_opts_t;

typedef struct zql_gen zql_gen_t;

/* Fill `o` with the defaults above. */
void zql_gen_opts_init(zql_gen_opts_t *o);

/* A generator for `o` (copied). Returns 0, ZQL_E_USAGE for an option out of range or
 * ZQL_E_NOMEM, with a message in `err` (may be NULL). */
int zql_gen_new(const zql_gen_opts_t *o, zql_gen_t **out, zql_strbuf_t *err);

/* The next event: 1 and *doc (owned by the generator, valid until the next call or
 * zql_gen_free), or 0 once all N events were produced. */
int zql_gen_next(zql_gen_t *g, const bson_t **doc);

/* How many events zql_gen_next has produced so far. */
uint64_t zql_gen_count(const zql_gen_t *g);

void zql_gen_free(zql_gen_t *g); /* NULL is a no-op */

/* Callback form: generate all N events of `o`, calling fn for each. fn returns 0 to go on
 * or a negative code to stop; that code is returned. Returns 0 when all were produced. */
typedef int (*zql_gen_fn)(const bson_t *doc, void *arg);
int zql_gen_each(const zql_gen_opts_t *o, zql_gen_fn fn, void *arg, zql_strbuf_t *err);

/* Parse "YYYY-MM-DD" (midnight UTC) or "YYYY-MM-DDTHH:MM[:SS[.fff]]" with Z or an offset
 * (+HH:MM, +HHMM, +HH) into UTC ms since the epoch, with zql_iso8601_scan
 * (runtime/base/tz.h). Returns 0, or ZQL_E_USAGE for anything else. */
int zql_gen_parse_date(const char *s, int64_t *ms);

#endif
