/*
 * test_zqld_http.c -- unit tests of zqld's HTTP API (runtime/zqld_http.c).
 *
 * A real server on 127.0.0.1:0 and a real client: the tests speak HTTP/1.1 over a TCP
 * socket themselves (raw bytes, so malformed requests, chunked bodies and keep-alive are
 * possible), and the answers are parsed as JSON with libbson. Covered: every route and
 * status code of zqld_http.h, bearer auth on and off, NDJSON / array / single-object
 * bodies, gzip, bodies over the cap (Content-Length and chunked), the pending-bytes
 * budget, submit returning busy or an error, events refused by the daemon merged with
 * the front end's rejects by index and line, the rejected callback, at most 100 errors
 * listed, concurrent clients with disjoint _seq ranges, quiesce (a running request
 * finishes, new connections are refused, keep-alive connections are told to close),
 * bind errors, and zql_http_get (against the server, a chunked fake, refusal, timeout,
 * bad URLs).
 */
#include "runtime/base/zql_common.h"

#include "tests/unit/unit.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <zlib.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/zqld_http.h"

/* {-- the daemon side: callbacks -- */

enum mode {
  MODE_OK,
  MODE_BUSY,
  MODE_E_BUSY, /* the error table's code */
  MODE_FAIL,
  MODE_REFUSE /* events with "refuse": true are refused by "the log" */
};

typedef struct srv {
  zql_http_t *h;
  int port;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  enum mode mode;
  int64_t next_seq;
  size_t submits, events;
  zql_strbuf_t got;      /* submitted events as relaxed JSON, one a line */
  zql_strbuf_t rej;      /* rejected callback: "index:line:reason:peer-ok|" */
  size_t nrej;
  bool gate;             /* submit waits while true */
  bool in_submit;
  bool status_fail;
} srv_t;

static int cb_submit(void *arg, const bson_t *const *ev, size_t n, zql_http_events_result_t *res,
                     zql_strbuf_t *err)
{
  srv_t *s = arg;
  pthread_mutex_lock(&s->mu);
  s->in_submit = true;
  pthread_cond_broadcast(&s->cv);
  while (s->gate)
    pthread_cond_wait(&s->cv, &s->mu);
  s->submits++;
  if (s->mode == MODE_BUSY) {
    pthread_mutex_unlock(&s->mu);
    zql_strbuf_adds(err, "the ingest queue is full");
    return ZQL_HTTP_BUSY;
  }
  if (s->mode == MODE_E_BUSY) {
    pthread_mutex_unlock(&s->mu);
    zql_strbuf_adds(err, "draining");
    return ZQL_E_BUSY;
  }
  if (s->mode == MODE_FAIL) {
    pthread_mutex_unlock(&s->mu);
    zql_strbuf_adds(err, "log: disk full");
    return ZQL_E_IO;
  }
  size_t ok = 0;
  for (size_t i = 0; i < n; i++) {
    bson_iter_t it;
    if (s->mode == MODE_REFUSE && bson_iter_init_find(&it, ev[i], "refuse") &&
        bson_iter_as_bool(&it)) {
      res->errors = zql_reallocarray(res->errors, res->nerrors + 1, sizeof *res->errors);
      res->errors[res->nerrors].index = i;
      res->errors[res->nerrors].why = zql_strndup("refused by the log", 18);
      res->nerrors++;
      res->rejected++;
      continue;
    }
    char *j = bson_as_relaxed_extended_json(ev[i], NULL);
    zql_strbuf_adds(&s->got, j);
    zql_strbuf_addc(&s->got, '\n');
    bson_free(j);
    ok++;
  }
  res->accepted = ok;
  res->first = s->next_seq;
  res->last = s->next_seq + (int64_t)ok - 1;
  s->next_seq += (int64_t)ok;
  s->events += ok;
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static void cb_rejected(void *arg, const zql_ingest_item_t *it, const char *peer)
{
  srv_t *s = arg;
  pthread_mutex_lock(&s->mu);
  bool peer_ok = peer && strncmp(peer, "127.0.0.1:", 10) == 0;
  zql_strbuf_addf(&s->rej, "%zu:%" PRIu64 ":%s:%s:%.*s|", it->index, it->line,
                  zql_ingest_reason_name(it->reason), peer_ok ? "peer" : "nopeer",
                  (int)it->raw_len, (const char *)it->raw);
  s->nrej++;
  pthread_mutex_unlock(&s->mu);
}

static int cb_status(void *arg, zql_strbuf_t *json)
{
  srv_t *s = arg;
  if (s->status_fail)
    return ZQL_E_IO;
  zql_strbuf_adds(json, "{\"uptime\": 42, \"events\": 7}");
  return 0;
}

static const char *const no_tokens[] = {NULL};

/* Start a server with every callback; tokens may be NULL. */
static srv_t *srv_start(const char *const *tokens, uint64_t max_body, uint64_t max_pending)
{
  srv_t *s = test_calloc(1, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->next_seq = 1;
  zql_strbuf_init(&s->got);
  zql_strbuf_init(&s->rej);
  zql_http_opts_t o = {
      .listen = "127.0.0.1:0",
      .tokens = tokens,
      .max_body = max_body,
      .limits = ZQL_INGEST_LIMITS_INIT,
      .threads = 0,
      .max_pending_bytes = max_pending,
      .submit = cb_submit,
      .rejected = cb_rejected,
      .status = cb_status,
      .arg = s,
  };
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  int rc = zql_http_start(&o, &s->h, &err);
  if (rc)
    fail_msg("zql_http_start: %s", err.buf);
  zql_strbuf_release(&err);
  s->port = zql_http_port(s->h);
  assert_true(s->port > 0);
  return s;
}

static void srv_stop(srv_t *s)
{
  zql_http_stop(s->h);
  zql_strbuf_release(&s->got);
  zql_strbuf_release(&s->rej);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  test_free(s);
}

/* }-- */

/* {-- a raw HTTP/1.1 client -- */

typedef struct resp {
  int status;
  char head[4096];   /* status line and headers */
  zql_strbuf_t body;
} resp_t;

static void resp_release(resp_t *r)
{
  zql_strbuf_release(&r->body);
}

static int dial(int port)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static bool send_all(int fd, const void *p, size_t n)
{
  const char *c = p;
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w <= 0)
      return false;
    c += w;
    n -= (size_t)w;
  }
  return true;
}

/* Read one response (headers + Content-Length body) from fd; leftover bytes are an
 * error. Returns false on a protocol error or an early close. */
static bool read_response_head(int fd, resp_t *r, bool head);

static bool read_response(int fd, resp_t *r)
{
  return read_response_head(fd, r, false);
}

/* head: the answer to a HEAD request (Content-Length but no body) */
static bool read_response_head(int fd, resp_t *r, bool head)
{
  memset(r, 0, sizeof *r);
  zql_strbuf_init(&r->body);
  char buf[1 << 16];
  size_t len = 0;
  char *he = NULL;
  while (!he) {
    if (len == sizeof buf - 1)
      return false;
    ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
    if (n <= 0)
      return false;
    len += (size_t)n;
    buf[len] = '\0';
    he = strstr(buf, "\r\n\r\n");
  }
  size_t hl = (size_t)(he - buf) + 2;
  if (hl >= sizeof r->head)
    return false;
  memcpy(r->head, buf, hl);
  r->head[hl] = '\0';
  if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
    return false;
  const char *cl = strcasestr(r->head, "\r\nContent-Length:");
  size_t want = cl && !head ? strtoul(cl + 17, NULL, 10) : 0;
  size_t have = len - (hl + 2);
  zql_strbuf_add(&r->body, he + 4, have);
  while (r->body.len < want) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      return false;
    zql_strbuf_add(&r->body, buf, (size_t)n);
  }
  return r->body.len == want;
}

/* Send raw bytes on a new connection and read the answer. */
static bool raw_request(int port, const void *raw, size_t len, resp_t *r)
{
  int fd = dial(port);
  if (fd < 0)
    return false;
  bool ok = send_all(fd, raw, len) &&
            read_response_head(fd, r, strncmp(raw, "HEAD ", 5) == 0);
  close(fd);
  return ok;
}

/* METHOD path with extra header lines (each ending in \r\n) and a body. */
static bool request(int port, const char *method, const char *path, const char *headers,
                    const void *body, size_t len, resp_t *r)
{
  zql_strbuf_t q = ZQL_STRBUF_INIT;
  zql_strbuf_addf(&q, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n", method,
                  path);
  if (body)
    zql_strbuf_addf(&q, "Content-Length: %zu\r\n", len);
  zql_strbuf_addf(&q, "%s\r\n", headers ? headers : "");
  if (body)
    zql_strbuf_add(&q, body, len);
  bool ok = raw_request(port, q.buf, q.len, r);
  zql_strbuf_release(&q);
  return ok;
}

static bool post(int port, const char *headers, const char *body, resp_t *r)
{
  return request(port, "POST", "/api/v1/events", headers, body, strlen(body), r);
}

/* The value of a response header (case-insensitive name), copied into out. */
static const char *header(const resp_t *r, const char *name, char *out, size_t outsz)
{
  char pat[128];
  snprintf(pat, sizeof pat, "\r\n%s:", name);
  const char *p = strcasestr(r->head, pat);
  if (!p)
    return NULL;
  p += strlen(pat);
  while (*p == ' ')
    p++;
  size_t n = strcspn(p, "\r");
  if (n >= outsz)
    n = outsz - 1;
  memcpy(out, p, n);
  out[n] = '\0';
  return out;
}

static void assert_header(const resp_t *r, const char *name, const char *value)
{
  char v[256];
  if (!header(r, name, v, sizeof v))
    fail_msg("no header %s in:\n%s", name, r->head);
  assert_string_equal(v, value);
}

/* The JSON body as BSON (asserts it is valid JSON). */
static bson_t *json_of(const resp_t *r)
{
  bson_error_t e;
  bson_t *b = bson_new_from_json((const uint8_t *)r->body.buf, (ssize_t)r->body.len, &e);
  if (!b)
    fail_msg("not JSON (%s): %s", e.message, r->body.buf);
  return b;
}

static int64_t jint(const bson_t *b, const char *path)
{
  bson_iter_t it, d;
  if (!bson_iter_init(&it, b) || !bson_iter_find_descendant(&it, path, &d))
    fail_msg("no field %s", path);
  if (!BSON_ITER_HOLDS_NUMBER(&d))
    fail_msg("field %s is not a number", path);
  return bson_iter_as_int64(&d);
}

static const char *jstr(const bson_t *b, const char *path)
{
  bson_iter_t it, d;
  if (!bson_iter_init(&it, b) || !bson_iter_find_descendant(&it, path, &d) ||
      !BSON_ITER_HOLDS_UTF8(&d))
    fail_msg("no string field %s", path);
  return bson_iter_utf8(&d, NULL);
}

static bool jhas(const bson_t *b, const char *path)
{
  bson_iter_t it, d;
  return bson_iter_init(&it, b) && bson_iter_find_descendant(&it, path, &d);
}

static bool jnull(const bson_t *b, const char *path)
{
  bson_iter_t it, d;
  return bson_iter_init(&it, b) && bson_iter_find_descendant(&it, path, &d) &&
         BSON_ITER_HOLDS_NULL(&d);
}

static uint32_t jcount(const bson_t *b, const char *path)
{
  bson_iter_t it, d, a;
  if (!bson_iter_init(&it, b) || !bson_iter_find_descendant(&it, path, &d) ||
      !BSON_ITER_HOLDS_ARRAY(&d) || !bson_iter_recurse(&d, &a))
    fail_msg("no array %s", path);
  uint32_t n = 0;
  while (bson_iter_next(&a))
    n++;
  return n;
}

/* }-- */

/* {-- routes, methods, auth -- */

static void test_health_status_routes(void **state)
{
  srv_t *s = srv_start(NULL, 0, 0);
  resp_t r;
  assert_true(request(s->port, "GET", "/api/v1/health", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 200);
  assert_header(&r, "Content-Type", "application/json");
  assert_string_equal(r.body.buf, "{\"ok\": true}");
  resp_release(&r);

  assert_true(request(s->port, "HEAD", "/api/v1/health", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 200);
  resp_release(&r);

  assert_true(request(s->port, "GET", "/api/v1/status", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 200);
  assert_header(&r, "Content-Type", "application/json");
  bson_t *b = json_of(&r);
  assert_int_equal(jint(b, "uptime"), 42);
  bson_destroy(b);
  resp_release(&r);

  s->status_fail = true;
  assert_true(request(s->port, "GET", "/api/v1/status", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 500);
  b = json_of(&r);
  assert_string_equal(jstr(b, "error"), zql_strerror(ZQL_E_IO));
  bson_destroy(b);
  resp_release(&r);

  /* a query string does not change the route */
  assert_true(request(s->port, "GET", "/api/v1/health?x=1", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 200);
  resp_release(&r);

  assert_true(request(s->port, "GET", "/nope", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 404);
  assert_header(&r, "Content-Type", "application/json");
  b = json_of(&r);
  assert_string_equal(jstr(b, "error"), "no route GET /nope");
  bson_destroy(b);
  resp_release(&r);

  assert_true(request(s->port, "GET", "/api/v1/events/", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 404);
  resp_release(&r);

  assert_true(request(s->port, "POST", "/api/v1/health", NULL, "{}", 2, &r));
  assert_int_equal(r.status, 405);
  assert_header(&r, "Allow", "GET, HEAD");
  b = json_of(&r);
  assert_true(jhas(b, "error"));
  bson_destroy(b);
  resp_release(&r);

  assert_true(request(s->port, "DELETE", "/api/v1/status", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 405);
  assert_header(&r, "Allow", "GET, HEAD");
  resp_release(&r);

  assert_true(request(s->port, "GET", "/api/v1/events", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 405);
  assert_header(&r, "Allow", "POST");
  resp_release(&r);
  srv_stop(s);
}

static void test_routes_without_callbacks(void **state)
{
  zql_http_opts_t o = {.listen = "127.0.0.1:0", .tokens = no_tokens};
  zql_http_t *h;
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  assert_int_equal(zql_http_start(&o, &h, &err), 0);
  resp_t r;
  assert_true(post(zql_http_port(h), NULL, "{}\n", &r));
  assert_int_equal(r.status, 404);
  resp_release(&r);
  assert_true(request(zql_http_port(h), "GET", "/api/v1/status", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 404);
  resp_release(&r);
  assert_true(request(zql_http_port(h), "GET", "/api/v1/health", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 200);
  resp_release(&r);
  zql_http_stop(h);
  zql_http_stop(NULL);
  zql_strbuf_release(&err);
}

static void test_auth(void **state)
{
  const char *const tokens[] = {"s3cret-token", "", "second", NULL};
  srv_t *s = srv_start(tokens, 0, 0);
  resp_t r;
  /* health needs no token */
  assert_true(request(s->port, "GET", "/api/v1/health", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 200);
  resp_release(&r);

  assert_true(request(s->port, "GET", "/api/v1/status", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 401);
  assert_header(&r, "WWW-Authenticate", "Bearer realm=\"zqld\"");
  assert_header(&r, "Content-Type", "application/json");
  bson_t *b = json_of(&r);
  assert_string_equal(jstr(b, "error"), "a bearer token is required");
  bson_destroy(b);
  resp_release(&r);

  const char *wrong[] = {
      "Authorization: Bearer s3cret-tokeN\r\n", "Authorization: Bearer s3cret-token2\r\n",
      "Authorization: Bearer s3cret\r\n",       "Authorization: Bearer \r\n",
      "Authorization: Bearer x\r\n",
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(wrong); i++) {
    assert_true(request(s->port, "GET", "/api/v1/status", wrong[i], NULL, 0, &r));
    assert_int_equal(r.status, 401);
    char v[256];
    assert_non_null(header(&r, "WWW-Authenticate", v, sizeof v));
    assert_true(strncmp(v, "Bearer", 6) == 0);
    resp_release(&r);
  }
  /* another scheme is no credential */
  assert_true(request(s->port, "GET", "/api/v1/status", "Authorization: Basic czNjcmV0\r\n",
                      NULL, 0, &r));
  assert_int_equal(r.status, 401);
  assert_header(&r, "WWW-Authenticate", "Bearer realm=\"zqld\"");
  resp_release(&r);

  const char *right[] = {
      "Authorization: Bearer s3cret-token\r\n",
      "Authorization: bearer   s3cret-token  \r\n",
      "Authorization: Bearer second\r\n",
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(right); i++) {
    assert_true(request(s->port, "GET", "/api/v1/status", right[i], NULL, 0, &r));
    assert_int_equal(r.status, 200);
    resp_release(&r);
  }
  /* unknown routes and events need the token too */
  assert_true(request(s->port, "GET", "/nope", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 401);
  resp_release(&r);
  assert_true(post(s->port, NULL, "{\"type\": \"a\"}\n", &r));
  assert_int_equal(r.status, 401);
  resp_release(&r);
  assert_int_equal(s->submits, 0);
  assert_true(post(s->port, "Authorization: Bearer second\r\n", "{\"type\": \"a\"}\n", &r));
  assert_int_equal(r.status, 200);
  resp_release(&r);
  assert_int_equal(s->events, 1);

  /* a refusal of a request without a body keeps the connection: retry on it */
  int fd = dial(s->port);
  assert_true(fd >= 0);
  const char *q1 = "GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n";
  const char *q2 = "GET /api/v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer second\r\n\r\n";
  assert_true(send_all(fd, q1, strlen(q1)));
  assert_true(read_response(fd, &r));
  assert_int_equal(r.status, 401);
  resp_release(&r);
  assert_true(send_all(fd, q2, strlen(q2)));
  assert_true(read_response(fd, &r));
  assert_int_equal(r.status, 200);
  resp_release(&r);
  close(fd);
  srv_stop(s);
}

/* }-- */

/* {-- POST /api/v1/events -- */

static void test_events_ndjson(void **state)
{
  srv_t *s = srv_start(no_tokens, 0, 0);
  s->next_seq = 100;
  resp_t r;
  const char *body = "{\"type\": \"a\", \"n\": 1}\n"
                     "{\"type\": 5}\n"
                     "\n"
                     "{\"type\": \"c\", \"timestamp\": {\"$datetime\": 1.5}}\n";
  assert_true(post(s->port, "Content-Type: application/x-ndjson\r\n", body, &r));
  assert_int_equal(r.status, 200);
  assert_header(&r, "Content-Type", "application/json");
  bson_t *b = json_of(&r);
  assert_int_equal(jint(b, "accepted"), 2);
  assert_int_equal(jint(b, "rejected"), 1);
  assert_int_equal(jint(b, "first"), 100);
  assert_int_equal(jint(b, "last"), 101);
  assert_int_equal(jcount(b, "errors"), 1);
  assert_int_equal(jint(b, "errors.0.index"), 1);
  assert_int_equal(jint(b, "errors.0.line"), 2);
  assert_int_equal(jint(b, "errors.0.column"), 1);
  assert_string_equal(jstr(b, "errors.0.error"),
                      "field 'type' is a number; it must be a string");
  bson_destroy(b);
  resp_release(&r);
  /* the events reached submit in order, $datetime converted */
  assert_non_null(strstr(s->got.buf, "\"type\" : \"a\", \"n\" : 1 }\n"));
  const char *c = strstr(s->got.buf, "\"type\" : \"c\"");
  assert_non_null(c);
  assert_true(c > strstr(s->got.buf, "\"type\" : \"a\""));
  assert_non_null(strstr(s->got.buf, "\"$date\" : \"1970-01-01T00:00:01.500Z\""));
  /* the rejected element was reported before submit, with its bytes and the peer */
  assert_int_equal(s->nrej, 1);
  assert_string_equal(s->rej.buf, "1:2:schema:peer:{\"type\": 5}|");
  srv_stop(s);
}

static void test_events_array_and_object(void **state)
{
  srv_t *s = srv_start(no_tokens, 0, 0);
  resp_t r;
  const char *arr = "[\n  {\"type\": \"a\"},\n  {\"_id\": 1},\n  {\"type\": \"b\"}\n]";
  assert_true(post(s->port, "Content-Type: application/json; charset=utf-8\r\n", arr, &r));
  assert_int_equal(r.status, 200);
  bson_t *b = json_of(&r);
  assert_int_equal(jint(b, "accepted"), 2);
  assert_int_equal(jint(b, "rejected"), 1);
  assert_int_equal(jint(b, "first"), 1);
  assert_int_equal(jint(b, "last"), 2);
  assert_int_equal(jint(b, "errors.0.index"), 1);
  assert_int_equal(jint(b, "errors.0.line"), 3);
  assert_int_equal(jint(b, "errors.0.column"), 3);
  assert_string_equal(jstr(b, "errors.0.error"), "field '_id' is assigned by the server");
  bson_destroy(b);
  resp_release(&r);

  /* one object spanning lines */
  assert_true(post(s->port, "Content-Type: application/json\r\n",
                   "{\n \"type\": \"one\",\n \"context\": {\"u\": 1}\n}\n", &r));
  assert_int_equal(r.status, 200);
  b = json_of(&r);
  assert_int_equal(jint(b, "accepted"), 1);
  assert_int_equal(jint(b, "rejected"), 0);
  assert_int_equal(jint(b, "first"), 3);
  assert_int_equal(jint(b, "last"), 3);
  assert_int_equal(jcount(b, "errors"), 0);
  bson_destroy(b);
  resp_release(&r);
  assert_int_equal(s->submits, 2);

  /* an empty body is a valid no-op: submit is not called */
  assert_true(post(s->port, NULL, "", &r));
  assert_int_equal(r.status, 200);
  b = json_of(&r);
  assert_int_equal(jint(b, "accepted"), 0);
  assert_int_equal(jint(b, "rejected"), 0);
  assert_true(jnull(b, "first"));
  assert_true(jnull(b, "last"));
  bson_destroy(b);
  resp_release(&r);
  assert_int_equal(s->submits, 2);
  srv_stop(s);
}

static void test_events_all_rejected(void **state)
{
  srv_t *s = srv_start(no_tokens, 0, 0);
  resp_t r;
  assert_true(post(s->port, NULL, "{\"type\": 1}\nnot json\n", &r));
  assert_int_equal(r.status, 400);
  bson_t *b = json_of(&r);
  assert_int_equal(jint(b, "accepted"), 0);
  assert_int_equal(jint(b, "rejected"), 2);
  assert_true(jnull(b, "first"));
  assert_int_equal(jcount(b, "errors"), 2);
  assert_int_equal(jint(b, "errors.1.index"), 1);
  assert_int_equal(jint(b, "errors.1.line"), 2);
  assert_true(strlen(jstr(b, "errors.1.error")) > 0);
  assert_null(strstr(jstr(b, "errors.1.error"), "line 2"));
  bson_destroy(b);
  resp_release(&r);
  assert_int_equal(s->submits, 0);
  assert_int_equal(s->nrej, 2);
  assert_non_null(strstr(s->rej.buf, "1:2:malformed:peer:not json|"));
  srv_stop(s);
}

static void test_events_unreadable_body(void **state)
{
  srv_t *s = srv_start(no_tokens, 0, 0);
  resp_t r;
  /* a broken array: nothing of it is submitted or reported */
  assert_true(post(s->port, "Content-Type: application/json\r\n",
                   "[{\"type\": 1},\n {\"type\": \"a\"},\n {\"b\": ", &r));
  assert_int_equal(r.status, 400);
  bson_t *b = json_of(&r);
  assert_true(strlen(jstr(b, "error")) > 0);
  assert_int_equal(jint(b, "line"), 3);
  assert_true(jint(b, "column") > 1);
  assert_false(jhas(b, "accepted"));
  bson_destroy(b);
  resp_release(&r);
  assert_int_equal(s->submits, 0);
  assert_int_equal(s->nrej, 0);

  /* a corrupt gzip body */
  assert_true(post(s->port, "Content-Encoding: gzip\r\n", "\x1f\x8b this is not deflate", &r));
  assert_int_equal(r.status, 400);
  b = json_of(&r);
  assert_true(strncmp(jstr(b, "error"), "gzip", 4) == 0);
  assert_false(jhas(b, "line"));
  bson_destroy(b);
  resp_release(&r);

  /* an encoding zqld does not read */
  assert_true(post(s->port, "Content-Encoding: br\r\n", "{}", &r));
  assert_int_equal(r.status, 415);
  b = json_of(&r);
  assert_string_equal(jstr(b, "error"),
                      "Content-Encoding 'br' is not supported; send gzip or identity");
  bson_destroy(b);
  resp_release(&r);
  assert_int_equal(s->submits, 0);
  srv_stop(s);
}

static void gzip_text(const char *text, zql_strbuf_t *out)
{
  z_stream z;
  memset(&z, 0, sizeof z);
  assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  uLong bound = deflateBound(&z, (uLong)strlen(text));
  assert_true(zql_strbuf_grow(out, bound));
  z.next_in = (Bytef *)(uintptr_t)text;
  z.avail_in = (uInt)strlen(text);
  z.next_out = (Bytef *)out->buf;
  z.avail_out = (uInt)bound;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  out->len = z.total_out;
  deflateEnd(&z);
}

static void test_events_gzip(void **state)
{
  srv_t *s = srv_start(no_tokens, 0, 0);
  zql_strbuf_t text = ZQL_STRBUF_INIT, gz = ZQL_STRBUF_INIT, q = ZQL_STRBUF_INIT;
  for (int i = 0; i < 500; i++)
    zql_strbuf_addf(&text, "{\"type\": \"g\", \"i\": %d}\n", i);
  gzip_text(text.buf, &gz);
  assert_true(gz.len < text.len / 4);
  zql_strbuf_addf(&q, "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  "Content-Type: application/x-ndjson\r\nContent-Encoding: gzip\r\n"
                  "Content-Length: %zu\r\n\r\n", gz.len);
  zql_strbuf_add(&q, gz.buf, gz.len);
  resp_t r;
  assert_true(raw_request(s->port, q.buf, q.len, &r));
  assert_int_equal(r.status, 200);
  bson_t *b = json_of(&r);
  assert_int_equal(jint(b, "accepted"), 500);
  assert_int_equal(jint(b, "first"), 1);
  assert_int_equal(jint(b, "last"), 500);
  bson_destroy(b);
  resp_release(&r);
  assert_non_null(strstr(s->got.buf, "\"i\" : 499 }"));
  zql_strbuf_release(&text);
  zql_strbuf_release(&gz);
  zql_strbuf_release(&q);
  srv_stop(s);
}

static void test_events_chunked(void **state)
{
  srv_t *s = srv_start(no_tokens, 100, 0);
  const char *ok = "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n"
                   "e\r\n{\"type\": \"a\"}\n\r\n"
                   "e\r\n{\"type\": \"b\"}\n\r\n"
                   "0\r\n\r\n";
  resp_t r;
  assert_true(raw_request(s->port, ok, strlen(ok), &r));
  assert_int_equal(r.status, 200);
  bson_t *b = json_of(&r);
  assert_int_equal(jint(b, "accepted"), 2);
  bson_destroy(b);
  resp_release(&r);

  /* 4 chunks of 40 bytes: 160 > max_body 100, found while reading, answered at the end */
  zql_strbuf_t q = ZQL_STRBUF_INIT;
  zql_strbuf_adds(&q, "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 4; i++)
    zql_strbuf_addf(&q, "28\r\n{\"type\": \"x\", \"pad\": \"%014d\"}\n\r\n", i);
  zql_strbuf_adds(&q, "0\r\n\r\n");
  assert_true(raw_request(s->port, q.buf, q.len, &r));
  assert_int_equal(r.status, 413);
  b = json_of(&r);
  assert_non_null(strstr(jstr(b, "error"), "max_body"));
  bson_destroy(b);
  resp_release(&r);
  zql_strbuf_release(&q);
  assert_int_equal(s->submits, 1);
  srv_stop(s);
}

static void test_events_too_large(void **state)
{
  srv_t *s = srv_start(no_tokens, 1000, 0);
  /* only the headers are sent: the answer comes before any body byte */
  const char *q = "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000000\r\n\r\n";
  resp_t r;
  assert_true(raw_request(s->port, q, strlen(q), &r));
  assert_int_equal(r.status, 413);
  assert_header(&r, "Content-Type", "application/json");
  bson_t *b = json_of(&r);
  assert_string_equal(jstr(b, "error"),
                      "the body is 5000000000 bytes; the limit is 1000 (max_body)");
  bson_destroy(b);
  resp_release(&r);

  /* at the limit it is read */
  char body[1001];
  memset(body, ' ', 1000);
  memcpy(body, "{\"type\": \"a\"}\n", 14);
  body[1000] = '\0';
  assert_true(post(s->port, NULL, body, &r));
  assert_int_equal(r.status, 200);
  resp_release(&r);
  body[999] = '\n';
  char big[1002];
  memcpy(big, body, 1000);
  big[1000] = '\n';
  big[1001] = '\0';
  assert_true(post(s->port, NULL, big, &r));
  assert_int_equal(r.status, 413);
  resp_release(&r);
  assert_int_equal(s->submits, 1);
  srv_stop(s);
}

static void test_pending_budget(void **state)
{
  /* bodies of at most 1000 bytes, but only 100 in memory at once */
  srv_t *s = srv_start(no_tokens, 1000, 100);
  char body[201];
  memset(body, ' ', 200);
  memcpy(body, "{\"type\": \"a\"}\n", 14);
  body[200] = '\0';
  resp_t r;
  assert_true(post(s->port, NULL, body, &r));
  assert_int_equal(r.status, 503);
  assert_header(&r, "Retry-After", "1");
  resp_release(&r);
  assert_true(post(s->port, NULL, "{\"type\": \"small\"}\n", &r));
  assert_int_equal(r.status, 200);
  resp_release(&r);
  srv_stop(s);
}

static void test_submit_busy_and_failure(void **state)
{
  srv_t *s = srv_start(no_tokens, 0, 0);
  resp_t r;
  s->mode = MODE_BUSY;
  assert_true(post(s->port, NULL, "{\"type\": \"a\"}\n{\"type\": 2}\n", &r));
  assert_int_equal(r.status, 503);
  assert_header(&r, "Retry-After", "1");
  assert_header(&r, "Content-Type", "application/json");
  bson_t *b = json_of(&r);
  assert_string_equal(jstr(b, "error"), "the ingest queue is full");
  bson_destroy(b);
  resp_release(&r);
  assert_int_equal(s->nrej, 1); /* rejected elements are reported before submit */

  s->mode = MODE_E_BUSY;
  assert_true(post(s->port, NULL, "{\"type\": \"a\"}\n", &r));
  assert_int_equal(r.status, 503);
  assert_header(&r, "Retry-After", "1");
  b = json_of(&r);
  assert_string_equal(jstr(b, "error"), "draining");
  bson_destroy(b);
  resp_release(&r);

  s->mode = MODE_FAIL;
  assert_true(post(s->port, NULL, "{\"type\": \"a\"}\n", &r));
  assert_int_equal(r.status, 500);
  b = json_of(&r);
  assert_string_equal(jstr(b, "error"), "log: disk full");
  bson_destroy(b);
  resp_release(&r);

  s->mode = MODE_OK;
  assert_true(post(s->port, NULL, "{\"type\": \"a\"}\n", &r));
  assert_int_equal(r.status, 200);
  resp_release(&r);
  srv_stop(s);
}

static void test_submit_refusals_merged(void **state)
{
  srv_t *s = srv_start(no_tokens, 0, 0);
  s->mode = MODE_REFUSE;
  resp_t r;
  const char *body = "{\"type\": \"a\"}\n"                 /* 0: ok */
                     "{\"type\": 1}\n"                     /* 1: front end */
                     "{\"type\": \"b\", \"refuse\": true}\n" /* 2: the log (submitted #1) */
                     "{\"type\": \"c\"}\n"                 /* 3: ok */
                     "{\"refuse\": true}\n";               /* 4: the log (submitted #3) */
  assert_true(post(s->port, NULL, body, &r));
  assert_int_equal(r.status, 200);
  bson_t *b = json_of(&r);
  assert_int_equal(jint(b, "accepted"), 2);
  assert_int_equal(jint(b, "rejected"), 3);
  assert_int_equal(jcount(b, "errors"), 3);
  assert_int_equal(jint(b, "errors.0.index"), 1);
  assert_int_equal(jint(b, "errors.0.line"), 2);
  assert_int_equal(jint(b, "errors.1.index"), 2);
  assert_int_equal(jint(b, "errors.1.line"), 3);
  assert_string_equal(jstr(b, "errors.1.error"), "refused by the log");
  assert_int_equal(jint(b, "errors.2.index"), 4);
  assert_int_equal(jint(b, "errors.2.line"), 5);
  bson_destroy(b);
  resp_release(&r);

  /* only refusals: 400 */
  assert_true(post(s->port, NULL, "{\"refuse\": true}\n", &r));
  assert_int_equal(r.status, 400);
  b = json_of(&r);
  assert_int_equal(jint(b, "rejected"), 1);
  assert_int_equal(jint(b, "errors.0.index"), 0);
  bson_destroy(b);
  resp_release(&r);
  srv_stop(s);
}

static void test_errors_capped(void **state)
{
  srv_t *s = srv_start(no_tokens, 0, 0);
  zql_strbuf_t body = ZQL_STRBUF_INIT;
  for (int i = 0; i < 150; i++)
    zql_strbuf_addf(&body, "{\"type\": %d}\n", i);
  zql_strbuf_adds(&body, "{\"type\": \"fine\"}\n");
  resp_t r;
  assert_true(post(s->port, NULL, body.buf, &r));
  assert_int_equal(r.status, 200);
  bson_t *b = json_of(&r);
  assert_int_equal(jint(b, "accepted"), 1);
  assert_int_equal(jint(b, "rejected"), 150);
  assert_int_equal(jcount(b, "errors"), ZQL_HTTP_MAX_ERRORS);
  assert_int_equal(jint(b, "errors.99.index"), 99);
  assert_int_equal(jint(b, "errors.99.line"), 100);
  bson_destroy(b);
  resp_release(&r);
  assert_int_equal(s->nrej, 150);
  zql_strbuf_release(&body);
  srv_stop(s);
}

static void test_malformed_requests(void **state)
{
  srv_t *s = srv_start(no_tokens, 0, 0);
  const char *bad[] = {
      "GARBAGE\r\n\r\n",
      "GET /api/v1/health HTTP/1.1\r\nthis header has no colon\r\n\r\n",
      "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "GET /api/v1/health HTTP/9.9\r\nHost: x\r\n\r\n",
  };
  for (size_t i = 0; i < ZQL_ARRAY_LEN(bad); i++) {
    int fd = dial(s->port);
    assert_true(fd >= 0);
    assert_true(send_all(fd, bad[i], strlen(bad[i])));
    resp_t r;
    /* either an error answer or a closed connection; never a success, never a crash */
    if (read_response(fd, &r))
      assert_true(r.status >= 400);
    resp_release(&r);
    close(fd);
  }
  /* a client that goes away in the middle of a body */
  int fd = dial(s->port);
  assert_true(fd >= 0);
  const char *half = "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"ty";
  assert_true(send_all(fd, half, strlen(half)));
  close(fd);
  /* a huge header */
  zql_strbuf_t q = ZQL_STRBUF_INIT;
  zql_strbuf_adds(&q, "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ");
  zql_strbuf_addchars(&q, 'a', 200000);
  zql_strbuf_adds(&q, "\r\n\r\n");
  fd = dial(s->port);
  assert_true(fd >= 0);
  resp_t r;
  if (send_all(fd, q.buf, q.len) && read_response(fd, &r))
    assert_true(r.status >= 400);
  resp_release(&r);
  close(fd);
  zql_strbuf_release(&q);
  /* still serving */
  assert_true(request(s->port, "GET", "/api/v1/health", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 200);
  resp_release(&r);
  assert_int_equal(s->submits, 0);
  srv_stop(s);
}

/* }-- */

/* {-- concurrency and draining -- */

#define CLIENTS 8
#define REQS 25
#define PER 4

typedef struct client_arg {
  int port;
  int failures;
  int64_t first[REQS], last[REQS];
} client_arg_t;

static void *client_main(void *p)
{
  client_arg_t *a = p;
  char body[512];
  size_t n = 0;
  for (int i = 0; i < PER; i++)
    n += (size_t)snprintf(body + n, sizeof body - n, "{\"type\": \"c\", \"i\": %d}\n", i);
  for (int i = 0; i < REQS; i++) {
    resp_t r;
    if (!post(a->port, NULL, body, &r) || r.status != 200) {
      a->failures++;
      resp_release(&r);
      continue;
    }
    bson_error_t e;
    bson_t *b = bson_new_from_json((const uint8_t *)r.body.buf, (ssize_t)r.body.len, &e);
    bson_iter_t it;
    if (!b || !bson_iter_init_find(&it, b, "first"))
      a->failures++;
    else
      a->first[i] = bson_iter_as_int64(&it);
    if (b && bson_iter_init_find(&it, b, "last"))
      a->last[i] = bson_iter_as_int64(&it);
    if (b && bson_iter_init_find(&it, b, "accepted") && bson_iter_as_int64(&it) != PER)
      a->failures++;
    if (b)
      bson_destroy(b);
    resp_release(&r);
  }
  return NULL;
}

static void test_concurrent_clients(void **state)
{
  srv_t *s = srv_start(no_tokens, 0, 0);
  pthread_t th[CLIENTS];
  client_arg_t *args = test_calloc(CLIENTS, sizeof *args);
  for (int i = 0; i < CLIENTS; i++) {
    args[i].port = s->port;
    assert_int_equal(pthread_create(&th[i], NULL, client_main, &args[i]), 0);
  }
  for (int i = 0; i < CLIENTS; i++)
    pthread_join(th[i], NULL);
  /* every range has PER events, and together they are 1..N without overlap */
  const int64_t total = CLIENTS * REQS * PER;
  bool *seen = test_calloc((size_t)total + 1, sizeof *seen);
  for (int i = 0; i < CLIENTS; i++) {
    assert_int_equal(args[i].failures, 0);
    for (int j = 0; j < REQS; j++) {
      assert_int_equal(args[i].last[j] - args[i].first[j] + 1, PER);
      for (int64_t q = args[i].first[j]; q <= args[i].last[j]; q++) {
        assert_true(q >= 1 && q <= total);
        assert_false(seen[q]);
        seen[q] = true;
      }
    }
  }
  assert_int_equal(s->events, (size_t)total);
  assert_int_equal(s->submits, CLIENTS * REQS);
  test_free(seen);
  test_free(args);
  srv_stop(s);
}

typedef struct bg {
  srv_t *s;
  resp_t r;
  bool ok;
  bool done;
} bg_t;

static void *bg_post(void *p)
{
  bg_t *b = p;
  b->ok = post(b->s->port, NULL, "{\"type\": \"slow\"}\n", &b->r);
  return NULL;
}

static void *bg_quiesce(void *p)
{
  bg_t *b = p;
  zql_http_quiesce(b->s->h);
  __atomic_store_n(&b->done, true, __ATOMIC_SEQ_CST);
  return NULL;
}

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void test_quiesce(void **state)
{
  srv_t *s = srv_start(no_tokens, 0, 0);
  /* a keep-alive connection, idle when the drain starts */
  int ka = dial(s->port);
  assert_true(ka >= 0);
  const char *get = "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n";
  resp_t r;
  assert_true(send_all(ka, get, strlen(get)));
  assert_true(read_response(ka, &r));
  assert_int_equal(r.status, 200);
  char v[64];
  assert_true(!header(&r, "Connection", v, sizeof v) || strcasecmp(v, "close") != 0);
  resp_release(&r);

  /* a request stuck in submit */
  s->gate = true;
  bg_t req = {.s = s}, q = {.s = s};
  pthread_t t1, t2;
  assert_int_equal(pthread_create(&t1, NULL, bg_post, &req), 0);
  pthread_mutex_lock(&s->mu);
  while (!s->in_submit)
    pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);

  assert_int_equal(pthread_create(&t2, NULL, bg_quiesce, &q), 0);
  sleep_ms(300);
  /* the drain waits for the running request */
  assert_false(__atomic_load_n(&q.done, __ATOMIC_SEQ_CST));
  /* new connections are refused */
  int fd = dial(s->port);
  assert_true(fd < 0);
  assert_int_equal(errno, ECONNREFUSED);
  /* a request on the open connection is still answered, and told to close */
  assert_true(send_all(ka, get, strlen(get)));
  assert_true(read_response(ka, &r));
  assert_int_equal(r.status, 200);
  assert_header(&r, "Connection", "close");
  resp_release(&r);
  char c;
  assert_int_equal(recv(ka, &c, 1, 0), 0); /* closed by the server */
  close(ka);

  pthread_mutex_lock(&s->mu);
  s->gate = false;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  assert_true(q.done);
  assert_true(req.ok);
  assert_int_equal(req.r.status, 200);
  bson_t *b = json_of(&req.r);
  assert_int_equal(jint(b, "accepted"), 1);
  bson_destroy(b);
  resp_release(&req.r);
  zql_http_quiesce(s->h); /* again: a no-op */
  srv_stop(s);
}

/* }-- */

/* {-- start errors -- */

static void test_listen_errors(void **state)
{
  srv_t *s = srv_start(no_tokens, 0, 0);
  zql_strbuf_t err = ZQL_STRBUF_INIT;
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", s->port);
  zql_http_opts_t o = {.listen = addr};
  zql_http_t *h = (zql_http_t *)&o;
  assert_int_equal(zql_http_start(&o, &h, &err), ZQL_E_IO);
  assert_null(h);
  assert_non_null(strstr(err.buf, "cannot listen on 127.0.0.1:"));
  assert_non_null(strstr(err.buf, strerror(EADDRINUSE)));
  srv_stop(s);

  const char *bad[] = {"", "8081", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
                       "127.0.0.1:80x", "[::1", "[::1]8081", "::1:8081", ":8081"};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(bad); i++) {
    zql_strbuf_reset(&err);
    o.listen = bad[i];
    assert_int_equal(zql_http_start(&o, &h, &err), ZQL_E_USAGE);
    assert_non_null(strstr(err.buf, "invalid HTTP listen address"));
  }
  zql_strbuf_reset(&err);
  o.listen = "no-such-host.invalid:8081";
  assert_int_equal(zql_http_start(&o, &h, &err), ZQL_E_IO);

  /* every interface, reached over IPv4 loopback */
  o.listen = "*:0";
  assert_int_equal(zql_http_start(&o, &h, &err), 0);
  resp_t r;
  assert_true(request(zql_http_port(h), "GET", "/api/v1/health", NULL, NULL, 0, &r));
  assert_int_equal(r.status, 200);
  resp_release(&r);
  zql_http_stop(h);
  zql_strbuf_release(&err);
}

/* }-- */

/* {-- zql_http_get -- */

static void test_get_client(void **state)
{
  const char *const tokens[] = {"tok", NULL};
  srv_t *s = srv_start(tokens, 0, 0);
  char url[128];
  zql_strbuf_t body = ZQL_STRBUF_INIT, err = ZQL_STRBUF_INIT;
  int status = 0;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/health", s->port);
  assert_int_equal(zql_http_get(url, NULL, 2000, &status, &body, &err), 0);
  assert_int_equal(status, 200);
  assert_string_equal(body.buf, "{\"ok\": true}");

  zql_strbuf_reset(&body);
  snprintf(url, sizeof url, "http://localhost:%d/api/v1/status", s->port);
  assert_int_equal(zql_http_get(url, NULL, 2000, &status, &body, &err), 0);
  assert_int_equal(status, 401);
  assert_non_null(strstr(body.buf, "bearer token"));

  zql_strbuf_reset(&body);
  assert_int_equal(zql_http_get(url, "wrong", 2000, &status, &body, &err), 0);
  assert_int_equal(status, 401);

  zql_strbuf_reset(&body);
  assert_int_equal(zql_http_get(url, "tok", 2000, &status, &body, &err), 0);
  assert_int_equal(status, 200);
  assert_string_equal(body.buf, "{\"uptime\": 42, \"events\": 7}");

  zql_strbuf_reset(&body);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/missing", s->port);
  assert_int_equal(zql_http_get(url, "tok", 0, &status, &body, &err), 0);
  assert_int_equal(status, 404);
  assert_string_equal(err.buf, "");

  assert_int_equal(zql_http_get("http://127.0.0.1:1/x", "bad\r\ntoken", 100, &status, &body,
                                &err), ZQL_E_USAGE);
  assert_int_equal(zql_http_get("nonsense", NULL, 100, &status, &body, NULL), ZQL_E_USAGE);
  srv_stop(s);

  const char *bad[] = {"ftp://x/", "https://127.0.0.1/", "http://", "http://:80/",
                       "http://h:0/", "http://h:99999/", "http://h:80x/", "http://u@h/",
                       "http://h/a b", "http://[::1/", "127.0.0.1:8081/"};
  for (size_t i = 0; i < ZQL_ARRAY_LEN(bad); i++) {
    zql_strbuf_reset(&err);
    assert_int_equal(zql_http_get(bad[i], NULL, 100, &status, &body, &err), ZQL_E_USAGE);
    assert_true(err.len > 0);
  }
  zql_strbuf_release(&body);
  zql_strbuf_release(&err);
}

/* A one-shot fake server: accepts one connection, reads the request, writes `reply`
 * (NULL: writes nothing and waits until the client goes away). */
typedef struct fake {
  int lfd, port;
  const char *reply;
  char request[2048];
} fake_t;

static void fake_open(fake_t *f, const char *reply)
{
  memset(f, 0, sizeof *f);
  f->reply = reply;
  f->lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(f->lfd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(f->lfd, 4), 0);
  socklen_t l = sizeof a;
  assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &l), 0);
  f->port = ntohs(a.sin_port);
}

static void *fake_main(void *p)
{
  fake_t *f = p;
  int fd = accept(f->lfd, NULL, NULL);
  if (fd < 0)
    return NULL;
  size_t n = 0;
  while (n < sizeof f->request - 1 && !strstr(f->request, "\r\n\r\n")) {
    ssize_t k = recv(fd, f->request + n, sizeof f->request - 1 - n, 0);
    if (k <= 0)
      break;
    n += (size_t)k;
    f->request[n] = '\0';
  }
  if (f->reply)
    send_all(fd, f->reply, strlen(f->reply));
  else
    while (recv(fd, f->request + n, 1, 0) > 0) /* until the client gives up */
      ;
  close(fd);
  return NULL;
}

static int fake_get(fake_t *f, const char *path, int timeout_ms, int *status, zql_strbuf_t *body,
                    zql_strbuf_t *err)
{
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, fake_main, f), 0);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->port, path);
  int rc = zql_http_get(url, "T0k", timeout_ms, status, body, err);
  pthread_join(t, NULL);
  close(f->lfd);
  return rc;
}

static void test_get_protocol(void **state)
{
  zql_strbuf_t body = ZQL_STRBUF_INIT, err = ZQL_STRBUF_INIT;
  int status = 0;
  fake_t f;

  /* an interim 100, then a chunked body with an extension and a trailer */
  fake_open(&f, "HTTP/1.1 100 Continue\r\n\r\n"
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n");
  assert_int_equal(fake_get(&f, "/s?q=1", 2000, &status, &body, &err), 0);
  assert_int_equal(status, 200);
  assert_string_equal(body.buf, "hello world");
  assert_non_null(strstr(f.request, "GET /s?q=1 HTTP/1.1\r\n"));
  assert_non_null(strstr(f.request, "\r\nAuthorization: Bearer T0k\r\n"));
  assert_non_null(strstr(f.request, "\r\nHost: 127.0.0.1:"));
  assert_non_null(strstr(f.request, "\r\nConnection: close\r\n"));

  /* no length: the body runs to the close */
  zql_strbuf_reset(&body);
  fake_open(&f, "HTTP/1.0 503 Busy\r\nContent-Type: application/json\r\n\r\n{\"a\": 1}");
  assert_int_equal(fake_get(&f, "/", 2000, &status, &body, &err), 0);
  assert_int_equal(status, 503);
  assert_string_equal(body.buf, "{\"a\": 1}");

  /* a body shorter than its Content-Length */
  zql_strbuf_reset(&body);
  fake_open(&f, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  assert_int_equal(fake_get(&f, "/", 2000, &status, &body, &err), ZQL_E_IO);
  assert_non_null(strstr(err.buf, "truncated"));
  assert_string_equal(body.buf, "");

  /* not HTTP */
  zql_strbuf_reset(&err);
  fake_open(&f, "SSH-2.0-OpenSSH\r\n\r\n");
  assert_int_equal(fake_get(&f, "/", 2000, &status, &body, &err), ZQL_E_IO);

  /* a broken chunk */
  zql_strbuf_reset(&err);
  fake_open(&f, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
  assert_int_equal(fake_get(&f, "/", 2000, &status, &body, &err), ZQL_E_IO);
  assert_string_equal(body.buf, "");

  /* no answer at all: the timeout */
  zql_strbuf_reset(&err);
  fake_open(&f, NULL);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  assert_int_equal(fake_get(&f, "/", 300, &status, &body, &err), ZQL_E_IO);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
  assert_true(ms >= 250 && ms < 5000);
  assert_non_null(strstr(err.buf, "timed out"));

  /* nobody listening */
  zql_strbuf_reset(&err);
  fake_open(&f, NULL);
  int port = f.port;
  close(f.lfd);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
  assert_int_equal(zql_http_get(url, NULL, 1000, &status, &body, &err), ZQL_E_IO);
  assert_non_null(strstr(err.buf, strerror(ECONNREFUSED)));
  zql_strbuf_release(&body);
  zql_strbuf_release(&err);
}

/* }-- */

int zql_unit_zqld_http(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_health_status_routes),
      cmocka_unit_test(test_routes_without_callbacks),
      cmocka_unit_test(test_auth),
      cmocka_unit_test(test_events_ndjson),
      cmocka_unit_test(test_events_array_and_object),
      cmocka_unit_test(test_events_all_rejected),
      cmocka_unit_test(test_events_unreadable_body),
      cmocka_unit_test(test_events_gzip),
      cmocka_unit_test(test_events_chunked),
      cmocka_unit_test(test_events_too_large),
      cmocka_unit_test(test_pending_budget),
      cmocka_unit_test(test_submit_busy_and_failure),
      cmocka_unit_test(test_submit_refusals_merged),
      cmocka_unit_test(test_errors_capped),
      cmocka_unit_test(test_malformed_requests),
      cmocka_unit_test(test_concurrent_clients),
      cmocka_unit_test(test_quiesce),
      cmocka_unit_test(test_listen_errors),
      cmocka_unit_test(test_get_client),
      cmocka_unit_test(test_get_protocol),
  };
  return cmocka_run_group_tests_name("zqld_http", tests, NULL, NULL);
}
