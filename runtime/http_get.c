#include "runtime/base/zql_common.h"
/*
 * http_get.c -- zql_http_get: a minimal HTTP/1.1 GET client over a TCP socket (runtime
 * services), for `zql status` (GET /api/v1/status of zqld). Declared in zqld_http.h; kept
 * apart from the server so that the zql binary does not link libmicrohttpd.
 *
 * http:// only; Content-Length, chunked and read-to-close bodies; 1xx answers skipped;
 * bodies capped at 64 MiB; one deadline for connect, send and receive.
 */

#include "runtime/zqld_http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/clock.h"

#define GET_MAX_BODY ((size_t)64 << 20) /* bodies past this are an error */
#define GET_MAX_HEAD ((size_t)64 << 10) /* response headers */
#define GET_TIMEOUT_MS 10000             /* timeout_ms <= 0 */

/* {-- zql_http_get -- */

static void sb_truncate(zql_strbuf_t *sb, size_t n)
{
  sb->len = n;
  if (sb->alloc)
    sb->buf[n] = '\0';
}

/* Wait for `ev` on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short ev, int64_t deadline)
{
  for (;;) {
    int64_t left = deadline - zql_mono_ms();
    if (left <= 0)
      return 0;
    struct pollfd p = {fd, ev, 0};
    int n = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
    if (n > 0)
      return 1;
    if (n == 0)
      return 0;
    if (errno != EINTR)
      return -1;
  }
}

typedef struct url {
  char host[256];
  char port[8];
  const char *path; /* into the url */
  char hostport[272]; /* for Host: */
} url_t;

static int parse_url(const char *s, url_t *u, zql_strbuf_t *err)
{
  if (strncasecmp(s, "https://", 8) == 0) {
    zql_strbuf_addf(err, "%s: https is not supported; use http://", s);
    return ZQL_E_USAGE;
  }
  if (strncasecmp(s, "http://", 7) != 0)
    goto bad;
  const char *p = s + 7, *hs, *he;
  if (*p == '[') {
    hs = p + 1;
    he = strchr(hs, ']');
    if (!he)
      goto bad;
    p = he + 1;
  } else {
    hs = p;
    p += strcspn(p, ":/?#");
    he = p;
  }
  if (he == hs || (size_t)(he - hs) >= sizeof u->host || memchr(hs, '@', (size_t)(he - hs)))
    goto bad;
  memcpy(u->host, hs, (size_t)(he - hs));
  u->host[he - hs] = '\0';
  strcpy(u->port, "80");
  if (*p == ':') {
    p++;
    size_t n = strspn(p, "0123456789");
    if (n == 0 || n > 5 || strtoul(p, NULL, 10) == 0 || strtoul(p, NULL, 10) > 65535)
      goto bad;
    memcpy(u->port, p, n);
    u->port[n] = '\0';
    p += n;
  }
  if (*p && *p != '/')
    goto bad;
  u->path = *p ? p : "/";
  for (const char *q = u->path; *q; q++)
    if ((unsigned char)*q <= 0x20 || *q == 0x7f)
      goto bad;
  bool v6 = strchr(u->host, ':') != NULL;
  snprintf(u->hostport, sizeof u->hostport, v6 ? "[%s]:%s" : "%s:%s", u->host, u->port);
  return 0;
bad:
  zql_strbuf_addf(err, "invalid URL '%s': use http://HOST[:PORT]/PATH", s);
  return ZQL_E_USAGE;
}

static int connect_to(const url_t *u, int64_t deadline, int *fd_out, zql_strbuf_t *err)
{
  struct addrinfo hints, *ai = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  int g = getaddrinfo(u->host, u->port, &hints, &ai);
  if (g != 0) {
    zql_strbuf_addf(err, "%s: %s", u->hostport, gai_strerror(g));
    return ZQL_E_IO;
  }
  int fd = -1, err_no = ECONNREFUSED;
  bool timed_out = false;
  for (struct addrinfo *a = ai; a && fd < 0 && !timed_out; a = a->ai_next) {
    fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      err_no = errno;
      continue;
    }
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
      break;
    if (errno == EINPROGRESS) {
      int w = wait_fd(fd, POLLOUT, deadline);
      int soerr = 0;
      socklen_t sl = sizeof soerr;
      if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
        break;
      if (w == 0)
        timed_out = true;
      err_no = w == 1 ? soerr : errno;
    } else {
      err_no = errno;
    }
    close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  if (fd < 0) {
    if (timed_out)
      zql_strbuf_addf(err, "%s: connection timed out", u->hostport);
    else
      zql_strbuf_addf(err, "%s: %s", u->hostport, strerror(err_no));
    return ZQL_E_IO;
  }
  *fd_out = fd;
  return 0;
}

/* The value of header `name` in the header block [h, end), or NULL. */
static const char *find_header(const char *h, const char *end, const char *name, size_t *vlen)
{
  size_t nl = strlen(name);
  const char *p = memchr(h, '\n', (size_t)(end - h)); /* skip the status line */
  while (p && p + 1 < end) {
    const char *line = p + 1;
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (!eol)
      eol = end;
    if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1, *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
      *vlen = (size_t)(ve - v);
      return v;
    }
    p = eol < end ? eol : NULL;
  }
  return NULL;
}

/* Decode a chunked body (RFC 9112 section 7.1) from [p, end): 1 complete (appended to
 * out), 0 needs more bytes, -1 malformed. */
static int dechunk(const char *p, const char *end, zql_strbuf_t *out)
{
  size_t start = out->len;
  for (;;) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol)
      goto more;
    char *stop;
    errno = 0;
    unsigned long long n = strtoull(p, &stop, 16);
    if (stop == p || errno == ERANGE || (*stop != '\r' && *stop != ';' && *stop != '\n' &&
                                         *stop != ' ' && *stop != '\t'))
      return -1;
    p = eol + 1;
    if (n == 0) {
      /* trailers, then an empty line */
      for (;;) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
          goto more;
        bool empty = e == p || (e == p + 1 && *p == '\r');
        p = e + 1;
        if (empty)
          return 1;
      }
    }
    if (n > GET_MAX_BODY || out->len - start + n > GET_MAX_BODY)
      return -1;
    if ((size_t)(end - p) < n + 2)
      goto more;
    zql_strbuf_add(out, p, (size_t)n);
    p += n;
    if (*p == '\r')
      p++;
    if (*p != '\n')
      return -1;
    p++;
  }
more:
  sb_truncate(out, start); /* start over with more bytes */
  return 0;
}

/* Is the response in buf complete? 1 yes (status and body set), 0 not yet, -1 malformed
 * (message in err). eof: the server closed the connection. */
static int parse_response(const zql_strbuf_t *buf, bool eof, int *status, zql_strbuf_t *body,
                          const char *what, zql_strbuf_t *err)
{
  const char *b = buf->buf, *end = buf->buf + buf->len;
  for (;;) {
    const char *he = NULL;
    for (const char *p = b; p + 1 < end; p++) {
      if (p[0] == '\n' && p[1] == '\n') {
        he = p + 2;
        break;
      }
      if (p + 3 < end && memcmp(p, "\r\n\r\n", 4) == 0) {
        he = p + 4;
        break;
      }
    }
    if (!he) {
      if (eof || buf->len > GET_MAX_HEAD)
        goto bad;
      return 0;
    }
    int major, minor, code, used = 0;
    if (sscanf(b, "HTTP/%d.%d %3d%n", &major, &minor, &code, &used) != 3 || major != 1 ||
        code < 100 || code > 599)
      goto bad;
    if (code >= 100 && code < 200 && code != 101) {
      b = he; /* an interim response (100 Continue): the real one follows */
      continue;
    }
    size_t vl;
    const char *te = find_header(b, he, "Transfer-Encoding", &vl);
    const char *cl = find_header(b, he, "Content-Length", &vl);
    if (te && vl >= 7 && strncasecmp(te + vl - 7, "chunked", 7) == 0) {
      size_t mark = body->len;
      int d = dechunk(he, end, body);
      if (d < 0)
        goto bad;
      if (d == 0) {
        sb_truncate(body, mark);
        if (eof)
          goto bad;
        return 0;
      }
    } else if (cl) {
      char *stop;
      errno = 0;
      unsigned long long n = strtoull(cl, &stop, 10);
      if (stop == cl || errno == ERANGE || n > GET_MAX_BODY)
        goto bad;
      if ((uint64_t)(end - he) < n) {
        if (eof)
          goto bad;
        return 0;
      }
      zql_strbuf_add(body, he, (size_t)n);
    } else {
      if (!eof)
        return 0; /* the body runs to the close */
      zql_strbuf_add(body, he, (size_t)(end - he));
    }
    *status = code;
    return 1;
  }
bad:
  zql_strbuf_addf(err, "%s: %s", what, eof ? "the response is truncated or not HTTP"
                                           : "the response is not HTTP");
  return -1;
}

static int http_get(const char *url, const char *token, int timeout_ms, int *status,
                    zql_strbuf_t *body, zql_strbuf_t *err);

int zql_http_get(const char *url, const char *token, int timeout_ms, int *status,
                 zql_strbuf_t *body, zql_strbuf_t *err)
{
  zql_strbuf_t local = ZQL_STRBUF_INIT;
  int rc = http_get(url, token, timeout_ms, status, body, err ? err : &local);
  zql_strbuf_release(&local);
  return rc;
}

static int http_get(const char *url, const char *token, int timeout_ms, int *status,
                    zql_strbuf_t *body, zql_strbuf_t *err)
{
  url_t u;
  int rc = parse_url(url, &u, err);
  if (rc)
    return rc;
  if (token && strpbrk(token, "\r\n")) {
    zql_strbuf_adds(err, "the token must not contain line breaks");
    return ZQL_E_USAGE;
  }
  int64_t deadline = zql_mono_ms() + (timeout_ms > 0 ? timeout_ms : GET_TIMEOUT_MS);
  int fd;
  rc = connect_to(&u, deadline, &fd, err);
  if (rc)
    return rc;
  zql_strbuf_t req = ZQL_STRBUF_INIT, in = ZQL_STRBUF_INIT;
  zql_strbuf_addf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: zql\r\n"
                  "Accept: application/json\r\nConnection: close\r\n", u.path, u.hostport);
  if (token)
    zql_strbuf_addf(&req, "Authorization: Bearer %s\r\n", token);
  zql_strbuf_adds(&req, "\r\n");
  if (req.oom) {
    rc = ZQL_E_NOMEM;
    zql_strbuf_adds(err, zql_strerror(rc));
    goto out;
  }
  for (size_t off = 0; off < req.len;) {
    ssize_t n = send(fd, req.buf + off, req.len - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int w = wait_fd(fd, POLLOUT, deadline);
      if (w == 1)
        continue;
      zql_strbuf_addf(err, "%s: %s", url, w == 0 ? "timed out" : strerror(errno));
    } else {
      zql_strbuf_addf(err, "%s: %s", url, strerror(errno));
    }
    rc = ZQL_E_IO;
    goto out;
  }
  size_t body_start = body->len;
  for (;;) {
    int w = wait_fd(fd, POLLIN, deadline);
    if (w <= 0) {
      zql_strbuf_addf(err, "%s: %s", url, w == 0 ? "timed out" : strerror(errno));
      rc = ZQL_E_IO;
      goto out;
    }
    if (!zql_strbuf_grow(&in, 16384)) {
      rc = ZQL_E_NOMEM;
      zql_strbuf_adds(err, zql_strerror(rc));
      goto out;
    }
    ssize_t n = recv(fd, in.buf + in.len, 16384, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
        continue;
      zql_strbuf_addf(err, "%s: %s", url, strerror(errno));
      rc = ZQL_E_IO;
      goto out;
    }
    in.len += (size_t)n;
    in.buf[in.len] = '\0';
    if (in.len > GET_MAX_BODY + GET_MAX_HEAD) {
      zql_strbuf_addf(err, "%s: the response is larger than %zu bytes", url, GET_MAX_BODY);
      rc = ZQL_E_IO;
      goto out;
    }
    int p = parse_response(&in, n == 0, status, body, url, err);
    if (p != 0) {
      rc = p > 0 ? 0 : ZQL_E_IO;
      if (rc == 0 && body->oom) {
        rc = ZQL_E_NOMEM;
        zql_strbuf_adds(err, zql_strerror(rc));
      }
      if (rc)
        sb_truncate(body, body_start);
      goto out;
    }
  }
out:
  close(fd);
  zql_strbuf_release(&req);
  zql_strbuf_release(&in);
  return rc;
}

/* }-- */
