/*
 * zqld_http.c -- zqld's HTTP API on libmicrohttpd (runtime services).
 *
 * What: the HTTP front end of zqld (contract and routes in zqld_http.h, user docs in
 * docs/zqld.md "HTTP API"); zql_http_get, the GET client of `zql status`, is in
 * http_get.c (no libmicrohttpd in the zql binary).
 * Pipeline position: beside the ZeroMQ endpoints, in front of the daemon's writer; the
 * daemon's callbacks take the decoded events to the event log.
 *
 * How:
 *   sockets   the listening socket is made here (getaddrinfo, bind, listen) and handed to
 *             MHD (MHD_OPTION_LISTEN_SOCKET), so a taken port is a precise error and the
 *             bound port is known. MHD serves each connection on a thread of its own
 *             (MHD_USE_THREAD_PER_CONNECTION, poll(2)): submit blocks until the log has the
 *             events, and in a shared polling thread that would stall every other
 *             connection of the thread; here it stalls only its own. The connection limit
 *             bounds the threads, the idle timeout frees those of slow clients.
 *   requests  the access handler (MHD_AccessHandlerCallback) is called once with the
 *             headers -- routing, auth and the early refusals (401, 404, 405, 413 from
 *             Content-Length, 415) happen there -- then once per piece of body, which is
 *             appended to a strbuf up to max_body, then once more at the end, where the
 *             body is decoded with zql_ingest_body. Accepted events are copied into one
 *             buffer as BSON; rejected ones (with their bytes) into another, so nothing
 *             is reported for a body that turns out to be unreadable. Then `rejected` is
 *             called for each rejected element, `submit` once with all valid events, and
 *             the answer lists both kinds of errors in element order.
 *   memory    a request's body counts against max_pending_bytes from its Content-Length
 *             (or as it grows, when chunked) until the request completes
 *             (MHD_OPTION_NOTIFY_COMPLETED), so many large uploads at once get 503 instead
 *             of exhausting memory.
 *   drain     zql_http_quiesce takes the listening socket back from MHD
 *             (MHD_quiesce_daemon), shuts it down so that new connections are refused at
 *             once (on Linux, shutdown(2) of a listening socket drops its queue), and waits
 *             on a condition variable for the count of requests in progress to reach 0.
 *   auth      RFC 6750 bearer tokens; each configured token is compared in time that
 *             depends only on the lengths, and every token is compared (no early exit).
 */
#include "runtime/base/zql_common.h"

#include "runtime/zqld_http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/log.h"

#define CONN_MEMORY (64u << 10)      /* MHD's per-connection pool: headers, read buffer */
#define THREAD_STACK ((size_t)1 << 20) /* per connection thread */
#define LISTEN_BACKLOG 128
#define PEER_MAX 64                  /* "[v6]:port" fits */
#define DISCARD_MAX ((uint64_t)16 << 20) /* refused body bytes read before closing */

enum route {
  ROUTE_NONE,
  ROUTE_EVENTS,
  ROUTE_STATUS,
  ROUTE_HEALTH
};

struct zql_http {
  struct MHD_Daemon *mhd;
  int lfd;              /* the listening socket */
  bool own_lfd;         /* taken back by quiesce: closed by us after MHD_stop_daemon */
  int port;
  char **tokens;
  size_t ntokens;
  uint64_t max_body, max_pending;
  zql_ingest_limits_t limits;
  int (*submit)(void *, const bson_t *const *, size_t, zql_http_events_result_t *,
                zql_strbuf_t *);
  void (*rejected)(void *, const zql_ingest_item_t *, const char *);
  int (*status)(void *, zql_strbuf_t *);
  void *arg;

  pthread_mutex_t mu;   /* guards the fields below */
  pthread_cond_t idle;  /* signalled when inflight drops to 0 */
  size_t inflight;      /* requests between their first handler call and completion */
  uint64_t pending;     /* body bytes reserved by requests in progress */
  bool quiesced;
};

/* One request (MHD's *con_cls). */
typedef struct req {
  zql_strbuf_t body;
  uint64_t reserved;    /* counted in zql_http_t.pending */
  uint64_t seen;        /* body bytes received */
  unsigned late;        /* 413 / 503 / 500 decided while the body came in: answered at the end */
  bool gzip;
  bool headers_only;    /* no body: everything is answered at the final call */
  bool body_expected;   /* first_call let the request go on to its body (POST events) */
} req_t;

void zql_http_events_result_release(zql_http_events_result_t *res)
{
  if (!res)
    return;
  for (size_t i = 0; i < res->nerrors; i++)
    zql_free(res->errors[i].why);
  zql_free(res->errors);
  memset(res, 0, sizeof *res);
}

/* {-- JSON text -- */

/* Append `s` as a JSON string (RFC 8259 section 7): quotes, backslashes and controls are
 * escaped; a byte that does not start a valid UTF-8 sequence becomes U+FFFD, so the
 * answer is valid JSON whatever a callback put in a message. */
static void json_str(zql_strbuf_t *sb, const char *s, size_t n)
{
  const uint8_t *p = (const uint8_t *)s, *end = p + n;
  zql_strbuf_addc(sb, '"');
  while (p < end) {
    uint8_t c = *p;
    if (c < 0x80) {
      switch (c) {
      case '"': zql_strbuf_adds(sb, "\\\""); break;
      case '\\': zql_strbuf_adds(sb, "\\\\"); break;
      case '\n': zql_strbuf_adds(sb, "\\n"); break;
      case '\r': zql_strbuf_adds(sb, "\\r"); break;
      case '\t': zql_strbuf_adds(sb, "\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f)
          zql_strbuf_addf(sb, "\\u%04x", c);
        else
          zql_strbuf_addc(sb, (char)c);
      }
      p++;
      continue;
    }
    /* RFC 3629 section 4: the well-formed multi-byte sequences */
    size_t len = 0;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
      len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0)
        lo = 0xa0;
      else if (c == 0xed)
        hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0)
        lo = 0x90;
      else if (c == 0xf4)
        hi = 0x8f;
    }
    bool ok = len > 0 && (size_t)(end - p) >= len && p[1] >= lo && p[1] <= hi;
    for (size_t i = 2; ok && i < len; i++)
      ok = p[i] >= 0x80 && p[i] <= 0xbf;
    if (ok) {
      zql_strbuf_add(sb, p, len);
      p += len;
    } else {
      zql_strbuf_adds(sb, "\\ufffd");
      p++;
    }
  }
  zql_strbuf_addc(sb, '"');
}

static void json_strz(zql_strbuf_t *sb, const char *s)
{
  json_str(sb, s, strlen(s));
}

/* Split "line 7, column 3: message" (ingest.h's positions) into its parts; false when
 * `s` does not start that way. */
static bool split_pos(const char *s, uint64_t *line, uint64_t *col, const char **rest)
{
  unsigned long long l, c;
  int used = 0;
  if (sscanf(s, "line %llu, column %llu: %n", &l, &c, &used) != 2 || used == 0)
    return false;
  *line = l;
  *col = c;
  *rest = s + used;
  return true;
}

/* }-- */

/* {-- responses -- */

static bool is_quiesced(zql_http_t *h)
{
  pthread_mutex_lock(&h->mu);
  bool q = h->quiesced;
  pthread_mutex_unlock(&h->mu);
  return q;
}

/* Queue a JSON answer with up to two extra headers (name, value pairs; NULL ends). */
static enum MHD_Result reply(zql_http_t *h, struct MHD_Connection *c, unsigned code,
                             const char *json, size_t len, const char *h1, const char *v1,
                             const char *h2, const char *v2)
{
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)(uintptr_t)json, MHD_RESPMEM_MUST_COPY);
  if (!r)
    return MHD_NO;
  bool ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") &&
            MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (ok && h1)
    ok = MHD_add_response_header(r, h1, v1);
  if (ok && h2)
    ok = MHD_add_response_header(r, h2, v2);
  if (ok && is_quiesced(h))
    ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result res = ok ? MHD_queue_response(c, code, r) : MHD_NO;
  MHD_destroy_response(r);
  return res;
}

/* {"error": msg} with optional headers. */
static enum MHD_Result reply_error(zql_http_t *h, struct MHD_Connection *c, unsigned code,
                                   const char *msg, const char *h1, const char *v1)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_strbuf_adds(&sb, "{\"error\": ");
  json_strz(&sb, msg);
  zql_strbuf_addc(&sb, '}');
  enum MHD_Result r = MHD_NO;
  if (!sb.oom)
    r = reply(h, c, code, sb.buf, sb.len, h1, v1, NULL, NULL);
  zql_strbuf_release(&sb);
  return r;
}

static enum MHD_Result reply_busy(zql_http_t *h, struct MHD_Connection *c, const char *msg)
{
  return reply_error(h, c, MHD_HTTP_SERVICE_UNAVAILABLE, msg, MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

/* }-- */

/* {-- request state and accounting -- */

/* Count `extra` more body bytes for r; false when that would pass max_pending. */
static bool reserve(zql_http_t *h, req_t *r, uint64_t extra)
{
  pthread_mutex_lock(&h->mu);
  bool ok = h->pending <= h->max_pending && extra <= h->max_pending - h->pending;
  if (ok) {
    h->pending += extra;
    r->reserved += extra;
  }
  pthread_mutex_unlock(&h->mu);
  return ok;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
  zql_http_t *h = cls;
  req_t *r = *con_cls;
  if (!r)
    return;
  *con_cls = NULL;
  pthread_mutex_lock(&h->mu);
  h->pending -= r->reserved;
  if (--h->inflight == 0)
    pthread_cond_broadcast(&h->idle);
  pthread_mutex_unlock(&h->mu);
  zql_strbuf_release(&r->body);
  zql_free(r);
}

/* "ADDR:PORT" / "[ADDR]:PORT" of the client, or "" when unknown. */
static void peer_name(struct MHD_Connection *c, char out[PEER_MAX])
{
  out[0] = '\0';
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (!ci || !ci->client_addr)
    return;
  const struct sockaddr *sa = ci->client_addr;
  socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                            : sizeof(struct sockaddr_in);
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (getnameinfo(sa, len, host, sizeof host, serv, sizeof serv,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return;
  snprintf(out, PEER_MAX, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

/* }-- */

/* {-- auth -- */

/* Equal in time that depends on the lengths only. */
static bool token_equal(const char *a, size_t alen, const char *b, size_t blen)
{
  size_t n = alen > blen ? alen : blen;
  unsigned diff = alen != blen;
  for (size_t i = 0; i < n; i++) {
    unsigned char ca = i < alen ? (unsigned char)a[i] : 0;
    unsigned char cb = i < blen ? (unsigned char)b[i] : 0;
    diff |= (unsigned)(ca ^ cb);
  }
  return diff == 0;
}

/* 0: authorized; 1: no credentials; 2: a wrong token. */
static int check_auth(zql_http_t *h, struct MHD_Connection *c)
{
  const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!v)
    return 1;
  while (*v == ' ' || *v == '\t')
    v++;
  if (strncasecmp(v, "Bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
    return 1;
  v += 6;
  while (*v == ' ' || *v == '\t')
    v++;
  size_t n = strlen(v);
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
    n--;
  bool match = false;
  for (size_t i = 0; i < h->ntokens; i++)
    match |= token_equal(h->tokens[i], strlen(h->tokens[i]), v, n);
  return match ? 0 : 2;
}

/* }-- */

/* {-- POST /api/v1/events -- */

typedef struct ok_ev {
  size_t off, len;       /* in coll_t.events */
  size_t index;          /* element number in the body */
  uint64_t line, column;
} ok_ev_t;

typedef struct bad_ev {
  size_t index;
  uint64_t line, column;
  zql_ingest_reason_t reason;
  size_t why_off, why_len;   /* in coll_t.bad */
  size_t doc_off, doc_len;   /* doc_len 0: no document as received */
  size_t raw_off, raw_len;
} bad_ev_t;

typedef struct coll {
  zql_strbuf_t events;   /* accepted events, BSON, back to back */
  ok_ev_t *ok;
  size_t nok, capok;
  zql_strbuf_t bad;      /* messages and bytes of rejected elements */
  bad_ev_t *rej;
  size_t nrej, caprej;
} coll_t;

static bool grow_array(void **p, size_t *cap, size_t n, size_t size)
{
  if (n < *cap)
    return true;
  size_t nc = *cap ? *cap * 2 : 64;
  void *q = zql_reallocarray(*p, nc, size);
  if (!q)
    return false;
  *p = q;
  *cap = nc;
  return true;
}

static int collect(void *arg, const zql_ingest_item_t *it)
{
  coll_t *co = arg;
  if (it->event) {
    if (!grow_array((void **)&co->ok, &co->capok, co->nok, sizeof *co->ok))
      return ZQL_E_NOMEM;
    ok_ev_t *e = &co->ok[co->nok++];
    e->off = co->events.len;
    e->len = it->event->len;
    e->index = it->index;
    e->line = it->line;
    e->column = it->column;
    zql_strbuf_add(&co->events, bson_get_data(it->event), it->event->len);
    return co->events.oom ? ZQL_E_NOMEM : 0;
  }
  if (!grow_array((void **)&co->rej, &co->caprej, co->nrej, sizeof *co->rej))
    return ZQL_E_NOMEM;
  bad_ev_t *b = &co->rej[co->nrej++];
  memset(b, 0, sizeof *b);
  b->index = it->index;
  b->line = it->line;
  b->column = it->column;
  b->reason = it->reason;
  const char *why = it->why ? it->why : "";
  b->why_off = co->bad.len;
  b->why_len = strlen(why);
  zql_strbuf_add(&co->bad, why, b->why_len + 1); /* with its NUL */
  if (it->received) {
    b->doc_off = co->bad.len;
    b->doc_len = it->received->len;
    zql_strbuf_add(&co->bad, bson_get_data(it->received), it->received->len);
  }
  b->raw_off = co->bad.len;
  b->raw_len = it->raw ? it->raw_len : 0;
  if (b->raw_len)
    zql_strbuf_add(&co->bad, it->raw, it->raw_len);
  return co->bad.oom ? ZQL_E_NOMEM : 0;
}

static void coll_release(coll_t *co)
{
  zql_strbuf_release(&co->events);
  zql_strbuf_release(&co->bad);
  zql_free(co->ok);
  zql_free(co->rej);
}

/* One error of the answer, in element order. */
typedef struct out_err {
  size_t index;
  uint64_t line, column;
  const char *why;
} out_err_t;

static void add_error_json(zql_strbuf_t *sb, const out_err_t *e, bool first)
{
  const char *msg = e->why;
  uint64_t l, c;
  const char *rest;
  if (split_pos(msg, &l, &c, &rest))
    msg = rest;
  zql_strbuf_addf(sb, "%s{\"index\": %zu, \"line\": %" PRIu64 ", \"column\": %" PRIu64
                  ", \"error\": ", first ? "" : ", ", e->index, e->line, e->column);
  json_strz(sb, msg);
  zql_strbuf_addc(sb, '}');
}

/* The answer to a readable body: front-end rejects (co->rej) and the daemon's (res). */
static enum MHD_Result answer_events(zql_http_t *h, struct MHD_Connection *c, const coll_t *co,
                                     const zql_http_events_result_t *res)
{
  size_t accepted = res ? res->accepted : 0;
  size_t rejected = co->nrej + (res ? res->rejected : 0);
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  zql_strbuf_addf(&sb, "{\"accepted\": %zu, \"rejected\": %zu, ", accepted, rejected);
  if (accepted > 0)
    zql_strbuf_addf(&sb, "\"first\": %" PRId64 ", \"last\": %" PRId64 ", ", res->first,
                    res->last);
  else
    zql_strbuf_adds(&sb, "\"first\": null, \"last\": null, ");
  zql_strbuf_adds(&sb, "\"errors\": [");
  /* merge the two lists (both in element order) */
  size_t i = 0, j = 0, listed = 0;
  size_t nres = res ? res->nerrors : 0;
  if (nres > ZQL_HTTP_MAX_ERRORS)
    nres = ZQL_HTTP_MAX_ERRORS;
  while (listed < ZQL_HTTP_MAX_ERRORS && (i < co->nrej || j < nres)) {
    out_err_t e;
    const ok_ev_t *ok = NULL;
    if (j < nres) {
      size_t k = res->errors[j].index;
      ok = k < co->nok ? &co->ok[k] : NULL;
      if (!ok) { /* an index the daemon got wrong: not listable */
        j++;
        continue;
      }
    }
    if (i < co->nrej && (!ok || co->rej[i].index < ok->index)) {
      const bad_ev_t *b = &co->rej[i++];
      e = (out_err_t){b->index, b->line, b->column, co->bad.buf + b->why_off};
    } else {
      const char *why = res->errors[j].why;
      e = (out_err_t){ok->index, ok->line, ok->column, why ? why : "refused by the event log"};
      j++;
    }
    add_error_json(&sb, &e, listed == 0);
    listed++;
  }
  zql_strbuf_adds(&sb, "]}");
  enum MHD_Result r = MHD_NO;
  unsigned code = accepted == 0 && rejected > 0 ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_OK;
  if (!sb.oom)
    r = reply(h, c, code, sb.buf, sb.len, NULL, NULL, NULL, NULL);
  zql_strbuf_release(&sb);
  return r;
}

/* A body that cannot be read at all: {"error": ..., "line": l, "column": c}. */
static enum MHD_Result answer_bad_body(zql_http_t *h, struct MHD_Connection *c, const char *msg)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  uint64_t l, col;
  const char *rest;
  zql_strbuf_adds(&sb, "{\"error\": ");
  if (split_pos(msg, &l, &col, &rest)) {
    json_strz(&sb, rest);
    zql_strbuf_addf(&sb, ", \"line\": %" PRIu64 ", \"column\": %" PRIu64, l, col);
  } else {
    json_strz(&sb, msg);
  }
  zql_strbuf_addc(&sb, '}');
  enum MHD_Result r = MHD_NO;
  if (!sb.oom)
    r = reply(h, c, MHD_HTTP_BAD_REQUEST, sb.buf, sb.len, NULL, NULL, NULL, NULL);
  zql_strbuf_release(&sb);
  return r;
}

/* Hand the accepted events to submit and answer. */
static enum MHD_Result submit_events(zql_http_t *h, struct MHD_Connection *c, coll_t *co)
{
  zql_http_events_result_t res;
  memset(&res, 0, sizeof res);
  if (co->nok == 0)
    return answer_events(h, c, co, &res);
  /* bson_t is 128-byte aligned (BSON_EXTRA_ALIGN): align the array by hand */
  size_t align = _Alignof(bson_t);
  if (co->nok > (SIZE_MAX - align) / sizeof(bson_t))
    return reply_error(h, c, MHD_HTTP_INTERNAL_SERVER_ERROR, zql_strerror(ZQL_E_NOMEM), NULL,
                       NULL);
  void *mem = zql_malloc(co->nok * sizeof(bson_t) + align);
  const bson_t **ptrs = zql_calloc(co->nok, sizeof *ptrs);
  if (!mem || !ptrs) {
    zql_free(mem);
    zql_free(ptrs);
    return reply_error(h, c, MHD_HTTP_INTERNAL_SERVER_ERROR, zql_strerror(ZQL_E_NOMEM), NULL,
                       NULL);
  }
  bson_t *docs = (bson_t *)(((uintptr_t)mem + align - 1) & ~(uintptr_t)(align - 1));
  for (size_t i = 0; i < co->nok; i++) {
    if (!bson_init_static(&docs[i], (const uint8_t *)co->events.buf + co->ok[i].off,
                          co->ok[i].len))
      ZQL_BUG("an accepted event is not a BSON document");
    ptrs[i] = &docs[i];
  }
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = h->submit(h->arg, ptrs, co->nok, &res, &err);
  zql_free(ptrs);
  zql_free(mem);
  enum MHD_Result r;
  if (rc == ZQL_E_BUSY || rc == ZQL_HTTP_BUSY) {
    r = reply_busy(h, c, err.len ? err.buf : "busy");
  } else if (rc != 0) {
    r = reply_error(h, c, MHD_HTTP_INTERNAL_SERVER_ERROR, err.len ? err.buf : zql_strerror(rc),
                    NULL, NULL);
  } else {
    r = answer_events(h, c, co, &res);
  }
  zql_http_events_result_release(&res);
  zql_strbuf_release(&err);
  return r;
}

static enum MHD_Result finish_events(zql_http_t *h, struct MHD_Connection *c, req_t *r)
{
  const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_CONTENT_TYPE);
  zql_ingest_limits_t lim = h->limits;
  lim.max_body_bytes = h->max_body;
  coll_t co;
  memset(&co, 0, sizeof co);
  zql_strbuf_init(&co.events);
  zql_strbuf_init(&co.bad);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_ingest_body(r->body.buf, r->body.len, r->gzip, ctype, &lim, collect, &co, NULL,
                           &err);
  /* the body is decoded: its bytes are no longer needed */
  zql_strbuf_release(&r->body);
  enum MHD_Result res;
  if (rc == ZQL_E_BAD_EVENT) {
    res = answer_bad_body(h, c, err.len ? err.buf : "the body cannot be read");
  } else if (rc != 0) {
    res = reply_error(h, c, MHD_HTTP_INTERNAL_SERVER_ERROR, zql_strerror(rc), NULL, NULL);
  } else {
    if (h->rejected && co.nrej > 0) {
      char peer[PEER_MAX];
      peer_name(c, peer);
      for (size_t i = 0; i < co.nrej; i++) {
        const bad_ev_t *b = &co.rej[i];
        bson_t received;
        bool has_doc = b->doc_len > 0 &&
                       bson_init_static(&received, (const uint8_t *)co.bad.buf + b->doc_off,
                                        b->doc_len);
        zql_ingest_item_t it = {
            .index = b->index,
            .line = b->line,
            .column = b->column,
            .event = NULL,
            .received = has_doc ? &received : NULL,
            .raw = b->raw_len ? co.bad.buf + b->raw_off : NULL,
            .raw_len = b->raw_len,
            .reason = b->reason,
            .why = co.bad.buf + b->why_off,
        };
        h->rejected(h->arg, &it, peer[0] ? peer : NULL);
      }
    }
    res = submit_events(h, c, &co);
  }
  coll_release(&co);
  zql_strbuf_release(&err);
  return res;
}

/* }-- */

/* {-- the access handler -- */

static enum route match_route(const char *url)
{
  if (strcmp(url, "/api/v1/events") == 0)
    return ROUTE_EVENTS;
  if (strcmp(url, "/api/v1/status") == 0)
    return ROUTE_STATUS;
  if (strcmp(url, "/api/v1/health") == 0)
    return ROUTE_HEALTH;
  return ROUTE_NONE;
}

static enum MHD_Result reply_status(zql_http_t *h, struct MHD_Connection *c)
{
  zql_strbuf_t sb = ZQL_STRBUF_INIT;
  int rc = h->status(h->arg, &sb);
  if (rc == 0 && sb.oom)
    rc = ZQL_E_NOMEM;
  enum MHD_Result r = rc == 0 ? reply(h, c, MHD_HTTP_OK, sb.buf, sb.len, NULL, NULL, NULL, NULL)
                              : reply_error(h, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                            zql_strerror(rc), NULL, NULL);
  zql_strbuf_release(&sb);
  return r;
}

/* The first call of a request: its headers are in. */
static enum MHD_Result first_call(zql_http_t *h, struct MHD_Connection *c, const char *url,
                                  const char *method, req_t *r)
{
  enum route route = match_route(url);
  if (route != ROUTE_HEALTH && h->ntokens > 0) {
    int a = check_auth(h, c);
    if (a == 1)
      return reply_error(h, c, MHD_HTTP_UNAUTHORIZED, "a bearer token is required",
                         MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"zqld\"");
    if (a == 2)
      return reply_error(h, c, MHD_HTTP_UNAUTHORIZED, "the bearer token is not valid",
                         MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                         "Bearer realm=\"zqld\", error=\"invalid_token\"");
  }
  if (route == ROUTE_NONE || (route == ROUTE_EVENTS && !h->submit) ||
      (route == ROUTE_STATUS && !h->status)) {
    zql_strbuf_t msg = ZQL_STRBUF_INIT;
    zql_strbuf_addf(&msg, "no route %s %s", method, url);
    enum MHD_Result res = msg.oom ? MHD_NO
                                  : reply_error(h, c, MHD_HTTP_NOT_FOUND, msg.buf, NULL, NULL);
    zql_strbuf_release(&msg);
    return res;
  }
  bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
  if (route != ROUTE_EVENTS) {
    if (!get)
      return reply_error(h, c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed; use GET",
                         MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (route == ROUTE_HEALTH) {
      static const char ok[] = "{\"ok\": true}";
      return reply(h, c, MHD_HTTP_OK, ok, sizeof ok - 1, NULL, NULL, NULL, NULL);
    }
    return reply_status(h, c);
  }
  if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
    return reply_error(h, c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed; use POST",
                       MHD_HTTP_HEADER_ALLOW, "POST");
  const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_CONTENT_ENCODING);
  if (enc && *enc && strcasecmp(enc, "identity") != 0) {
    if (strcasecmp(enc, "gzip") == 0 || strcasecmp(enc, "x-gzip") == 0) {
      r->gzip = true;
    } else {
      zql_strbuf_t msg = ZQL_STRBUF_INIT;
      zql_strbuf_addf(&msg, "Content-Encoding '%s' is not supported; send gzip or identity",
                      enc);
      enum MHD_Result res = msg.oom ? MHD_NO
                                    : reply_error(h, c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                                  msg.buf, NULL, NULL);
      zql_strbuf_release(&msg);
      return res;
    }
  }
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl) {
    /* MHD has checked the syntax: digits only */
    errno = 0;
    unsigned long long n = strtoull(cl, NULL, 10);
    if (errno == ERANGE || n > h->max_body) {
      zql_strbuf_t msg = ZQL_STRBUF_INIT;
      zql_strbuf_addf(&msg, "the body is %s bytes; the limit is %" PRIu64 " (max_body)", cl,
                      h->max_body);
      enum MHD_Result res = msg.oom ? MHD_NO
                                    : reply_error(h, c, MHD_HTTP_CONTENT_TOO_LARGE, msg.buf,
                                                  NULL, NULL);
      zql_strbuf_release(&msg);
      return res;
    }
    if (!reserve(h, r, n))
      return reply_busy(h, c, "too many request bodies in memory; retry later");
    if (n > 0 && !zql_strbuf_grow(&r->body, (size_t)n))
      return reply_error(h, c, MHD_HTTP_INTERNAL_SERVER_ERROR, zql_strerror(ZQL_E_NOMEM),
                         NULL, NULL);
  }
  r->body_expected = true;
  return MHD_YES; /* go on with the body */
}

/* Does the request announce a body? */
static bool has_body(struct MHD_Connection *c)
{
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl && strspn(cl, "0") != strlen(cl))
    return true;
  return MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

/* A piece of body: append, or note why it cannot be kept (answered at the end). */
static void body_piece(zql_http_t *h, req_t *r, const char *data, size_t n)
{
  if (r->late)
    return;
  uint64_t total = (uint64_t)r->body.len + n;
  if (total > h->max_body) {
    r->late = MHD_HTTP_CONTENT_TOO_LARGE;
    zql_strbuf_release(&r->body);
    return;
  }
  if (total > r->reserved && !reserve(h, r, total - r->reserved)) {
    r->late = MHD_HTTP_SERVICE_UNAVAILABLE;
    zql_strbuf_release(&r->body);
    return;
  }
  zql_strbuf_add(&r->body, data, n);
  if (r->body.oom) {
    r->late = MHD_HTTP_INTERNAL_SERVER_ERROR;
    zql_strbuf_release(&r->body);
  }
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
  zql_http_t *h = cls;
  req_t *r = *con_cls;
  if (!r) {
    r = zql_calloc(1, sizeof *r);
    if (!r)
      return MHD_NO; /* closes the connection */
    zql_strbuf_init(&r->body);
    *con_cls = r;
    pthread_mutex_lock(&h->mu);
    h->inflight++;
    pthread_mutex_unlock(&h->mu);
    /* MHD closes the connection after an answer queued before the request is complete,
     * even one without a body: requests without a body are answered at the final call
     * (keep-alive), requests with one are refused at once (the body is not read) */
    if (!has_body(c)) {
      r->headers_only = true;
      return MHD_YES;
    }
    return first_call(h, c, url, method, r);
  }
  if (*upload_size > 0) {
    r->seen += *upload_size;
    body_piece(h, r, upload, *upload_size);
    *upload_size = 0;
    /* MHD cannot answer in the middle of a body: a refused chunked body is read to its
     * end, but not forever */
    if (r->late && r->seen > h->max_body + DISCARD_MAX)
      return MHD_NO;
    return MHD_YES;
  }
  if (r->headers_only && !r->body_expected) {
    enum MHD_Result res = first_call(h, c, url, method, r);
    if (!r->body_expected)
      return res; /* answered (or MHD_NO) */
  }
  switch (r->late) {
  case 0:
    return finish_events(h, c, r);
  case MHD_HTTP_CONTENT_TOO_LARGE: {
    char msg[96];
    snprintf(msg, sizeof msg, "the body is larger than the limit, %" PRIu64 " bytes (max_body)",
             h->max_body);
    return reply_error(h, c, MHD_HTTP_CONTENT_TOO_LARGE, msg, NULL, NULL);
  }
  case MHD_HTTP_SERVICE_UNAVAILABLE:
    return reply_busy(h, c, "too many request bodies in memory; retry later");
  default:
    return reply_error(h, c, MHD_HTTP_INTERNAL_SERVER_ERROR, zql_strerror(ZQL_E_NOMEM), NULL,
                       NULL);
  }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) ZQL_PRINTF(2, 0);
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  if (!zql_log_enabled(ZQL_LOG_DEBUG))
    return;
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  zql_log(ZQL_LOG_DEBUG, "http: %s", line);
}

/* }-- */

/* {-- start and stop -- */

/* Split "HOST:PORT" / "[V6]:PORT" into host (no brackets; "*" for every interface) and
 * port. */
static int parse_listen(const char *listen, char *host, size_t hostsz, char *port,
                        zql_strbuf_t *err)
{
  const char *colon, *hs, *he;
  if (!listen || !*listen)
    goto bad;
  if (listen[0] == '[') {
    he = strchr(listen, ']');
    if (!he || he[1] != ':')
      goto bad;
    hs = listen + 1;
    colon = he + 1;
  } else {
    colon = strrchr(listen, ':');
    if (!colon || memchr(listen, ':', (size_t)(colon - listen)))
      goto bad;
    hs = listen;
    he = colon;
  }
  if (he == hs || (size_t)(he - hs) >= hostsz)
    goto bad;
  memcpy(host, hs, (size_t)(he - hs));
  host[he - hs] = '\0';
  const char *p = colon + 1;
  size_t n = strlen(p);
  if (n == 0 || n > 5 || strspn(p, "0123456789") != n || strtoul(p, NULL, 10) > 65535)
    goto bad;
  memcpy(port, p, n + 1);
  return 0;
bad:
  zql_strbuf_addf(err, "invalid HTTP listen address '%s': use HOST:PORT, [IPV6]:PORT or *:PORT",
                  listen ? listen : "");
  return ZQL_E_USAGE;
}

static int bind_one(const struct sockaddr *sa, socklen_t len, bool dual, int *err_no)
{
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err_no = errno;
    return -1;
  }
  int one = 1, zero = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (sa->sa_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual ? &zero : &one, sizeof one);
  if (bind(fd, sa, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
    *err_no = errno;
    close(fd);
    return -1;
  }
  return fd;
}

/* A listening socket for `listen`, and its port. */
static int open_listener(const char *listen, int *fd_out, int *port_out, zql_strbuf_t *err)
{
  char host[256], port[8];
  int rc = parse_listen(listen, host, sizeof host, port, err);
  if (rc)
    return rc;
  int fd = -1, err_no = 0;
  if (strcmp(host, "*") == 0) {
    /* every interface: IPv6 and IPv4 on one socket, or IPv4 alone without IPv6 */
    struct sockaddr_in6 s6;
    memset(&s6, 0, sizeof s6);
    s6.sin6_family = AF_INET6;
    s6.sin6_addr = in6addr_any;
    s6.sin6_port = htons((uint16_t)strtoul(port, NULL, 10));
    fd = bind_one((const struct sockaddr *)&s6, sizeof s6, true, &err_no);
    if (fd < 0 && (err_no == EAFNOSUPPORT || err_no == EADDRNOTAVAIL)) {
      struct sockaddr_in s4;
      memset(&s4, 0, sizeof s4);
      s4.sin_family = AF_INET;
      s4.sin_addr.s_addr = htonl(INADDR_ANY);
      s4.sin_port = s6.sin6_port;
      fd = bind_one((const struct sockaddr *)&s4, sizeof s4, false, &err_no);
    }
  } else {
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int g = getaddrinfo(host, port, &hints, &ai);
    if (g != 0) {
      zql_strbuf_addf(err, "cannot listen on %s: %s", listen, gai_strerror(g));
      return ZQL_E_IO;
    }
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next)
      fd = bind_one(a->ai_addr, a->ai_addrlen, false, &err_no);
    freeaddrinfo(ai);
  }
  if (fd < 0) {
    zql_strbuf_addf(err, "cannot listen on %s: %s", listen, strerror(err_no));
    return ZQL_E_IO;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
    zql_strbuf_addf(err, "cannot listen on %s: %s", listen, strerror(errno));
    close(fd);
    return ZQL_E_IO;
  }
  *port_out = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  *fd_out = fd;
  return 0;
}

static void free_tokens(zql_http_t *h)
{
  for (size_t i = 0; i < h->ntokens; i++)
    zql_free(h->tokens[i]);
  zql_free(h->tokens);
  h->tokens = NULL;
  h->ntokens = 0;
}

static int http_start(const zql_http_opts_t *opts, zql_http_t **out, zql_strbuf_t *err);

int zql_http_start(const zql_http_opts_t *opts, zql_http_t **out, zql_strbuf_t *err)
{
  zql_strbuf_t local = ZQL_STRBUF_INIT;
  int rc = http_start(opts, out, err ? err : &local);
  zql_strbuf_release(&local);
  return rc;
}

static int http_start(const zql_http_opts_t *opts, zql_http_t **out, zql_strbuf_t *err)
{
  *out = NULL;
  zql_http_t *h = zql_calloc(1, sizeof *h);
  if (!h)
    goto nomem;
  h->lfd = -1;
  size_t nt = 0;
  for (const char *const *t = opts->tokens; t && *t; t++)
    nt++;
  if (nt) {
    h->tokens = zql_calloc(nt, sizeof *h->tokens);
    if (!h->tokens)
      goto nomem;
    for (size_t i = 0; i < nt; i++) {
      if (!opts->tokens[i][0])
        continue; /* an empty token would match an empty credential */
      if (!(h->tokens[h->ntokens] = zql_strndup(opts->tokens[i], strlen(opts->tokens[i]))))
        goto nomem;
      h->ntokens++;
    }
  }
  h->max_body = opts->max_body ? opts->max_body : ZQL_INGEST_MAX_BODY_DEFAULT;
  h->max_pending = opts->max_pending_bytes ? opts->max_pending_bytes
                   : h->max_body > UINT64_MAX / 4 ? UINT64_MAX
                                                  : 4 * h->max_body;
  if (h->max_body > SIZE_MAX / 2)
    h->max_body = SIZE_MAX / 2;
  h->limits = opts->limits;
  h->submit = opts->submit;
  h->rejected = opts->rejected;
  h->status = opts->status;
  h->arg = opts->arg;
  if (pthread_mutex_init(&h->mu, NULL) != 0) {
    free_tokens(h);
    zql_free(h);
    goto nomem_quiet;
  }
  if (pthread_cond_init(&h->idle, NULL) != 0) {
    pthread_mutex_destroy(&h->mu);
    free_tokens(h);
    zql_free(h);
    goto nomem_quiet;
  }
  int rc = open_listener(opts->listen, &h->lfd, &h->port, err);
  if (rc) {
    zql_http_stop(h);
    return rc;
  }
  unsigned conns = opts->threads ? opts->threads : ZQL_HTTP_THREADS_DEFAULT;
  errno = 0;
  h->mhd = MHD_start_daemon(
      MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
          MHD_USE_ERROR_LOG,
      0, NULL, NULL, handle, h,
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, (void *)h,
      MHD_OPTION_LISTEN_SOCKET, (MHD_socket)h->lfd,
      MHD_OPTION_CONNECTION_LIMIT, conns,
      MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ZQL_HTTP_TIMEOUT_S,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
      MHD_OPTION_NOTIFY_COMPLETED, completed, (void *)h,
      MHD_OPTION_END);
  if (!h->mhd) {
    zql_strbuf_addf(err, "cannot start the HTTP server on %s%s%s", opts->listen,
                    errno ? ": " : "", errno ? strerror(errno) : "");
    zql_http_stop(h);
    return ZQL_E_IO;
  }
  *out = h;
  return 0;
nomem:
  if (h) {
    free_tokens(h);
    zql_free(h);
  }
nomem_quiet:
  zql_strbuf_adds(err, zql_strerror(ZQL_E_NOMEM));
  return ZQL_E_NOMEM;
}

int zql_http_port(const zql_http_t *h)
{
  return h->port;
}

void zql_http_quiesce(zql_http_t *h)
{
  pthread_mutex_lock(&h->mu);
  bool again = h->quiesced;
  h->quiesced = true;
  pthread_mutex_unlock(&h->mu);
  if (again)
    return;
  MHD_socket s = MHD_quiesce_daemon(h->mhd);
  if (s != MHD_INVALID_SOCKET) {
    /* ours now; closed after MHD_stop_daemon (microhttpd.h), refused from now on */
    h->own_lfd = true;
    shutdown(s, SHUT_RDWR);
  }
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ZQL_HTTP_TIMEOUT_S;
  pthread_mutex_lock(&h->mu);
  while (h->inflight > 0) {
    if (pthread_cond_timedwait(&h->idle, &h->mu, &until) == ETIMEDOUT) {
      zql_log(ZQL_LOG_WARN, "http: %zu request(s) still running after %d s of draining",
              h->inflight, ZQL_HTTP_TIMEOUT_S);
      break;
    }
  }
  pthread_mutex_unlock(&h->mu);
}

void zql_http_stop(zql_http_t *h)
{
  if (!h)
    return;
  if (h->mhd)
    MHD_stop_daemon(h->mhd); /* closes the listening socket unless quiesced */
  if (h->lfd >= 0 && (!h->mhd || h->own_lfd))
    close(h->lfd);
  pthread_cond_destroy(&h->idle);
  pthread_mutex_destroy(&h->mu);
  free_tokens(h);
  zql_free(h);
}

/* }-- */
