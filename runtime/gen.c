/*
 * gen.c -- deterministic synthetic SourceForge-style events (runtime services).
 *
 * What: the generator behind `zql gen`, the demos, the tests and the benchmarks. It
 * produces N events shaped like Zarkov's SourceForge events ({timestamp, type, context,
 * extra}, see ../shared/research/zarkov.md section 2.2); the exact distributions and
 * rates are listed in gen.h.
 *
 * Pipeline position: a source, beside import. Its documents go to a file or stdout
 * (runtime/cmd_gen.c, through runtime/ioformat.c) or, later, straight into the event log.
 *
 * Interface and call order: zql_gen_new -> zql_gen_next* -> zql_gen_free, or the
 * callback loop zql_gen_each. zql_gen_next rebuilds one bson_t per event (bson_reinit
 * keeps its buffer), so the steady state allocates nothing.
 *
 * Algorithm:
 *   - Randomness: xoshiro256** (Blackman and Vigna), its state seeded from --seed with
 *     splitmix64. Integers below n are (x >> 32) * n >> 32 (n < 2^32; the bias is below
 *     2^-32 and, more to the point, the same everywhere). Uniform doubles are
 *     (x >> 11) * 2^-53.
 *   - Zipf: the cumulative weights of projects (1/k) and users (1/(k + 10)) are computed
 *     once; a draw multiplies a uniform by the total and binary-searches the table.
 *   - Log-normal: median * exp(sigma * Z) with Z a sum of 12 uniforms minus 6 (Irwin-Hall;
 *     tails end at 6 sigma, which suits latencies) and exp computed here (det_exp) from
 *     +, -, *, / and exponent bits only, so no libm routine can make two machines
 *     differ. Doubles are rounded to multiples of 1/8 before they are stored.
 *   - Time: event i sits at start + (i + 0.5) * W / N plus a jitter of at most a quarter
 *     of that spacing (so jitter alone never reorders events); 3% of events are late by
 *     up to an hour, which is what makes some of them out of order.
 *   - Funnel follow-ups: a visit by a known user may schedule that user's signup_form a
 *     few events later, which may schedule signup_done, which may schedule a download.
 *     Scheduled events wait in a small min-heap ordered by (due index, sequence); when
 *     the top is due, it replaces the next base draw. A full heap drops the follow-up.
 *
 * Invariants: the output is a pure function of zql_gen_opts_t; every timestamp lies in
 * [start, start + W); exactly N events are produced; nothing here allocates per event.
 */
#include "runtime/base/zql_common.h"

#include "runtime/gen.h"

#include "runtime/base/alloc.h"
#include "runtime/base/error.h"
#include "runtime/base/tz.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* no fused multiply-add: the same bits on every machine */
#endif

#define PENDING_MAX 256
#define DAY_MS INT64_C(86400000)

enum {
  T_PAGEVIEW,
  T_DOWNLOAD,
  T_API_CALL,
  T_SEARCH,
  T_VISIT,
  T_LOGIN,
  T_COMMIT,
  T_TICKET,
  T_SIGNUP_FORM,
  T_SIGNUP_DONE,
  T_NTYPES
};

/* ORDER: the enum above. */
static const char *const type_names[T_NTYPES] = {
    "pageview", "download", "api_call", "search",      "visit",
    "login",    "commit",   "ticket",   "signup_form", "signup_done",
};

/* Base mix, per mille; ORDER: the enum (follow-up types have weight 0). */
static const uint16_t type_weights[] = {420, 160, 150, 80, 60, 50, 50, 30};

typedef struct {
  uint64_t due; /* the event index at which it may be emitted */
  uint64_t seq; /* tie-break: scheduling order */
  uint32_t user;
  uint8_t type;
} pending_t;

struct zql_gen {
  zql_gen_opts_t o;
  uint64_t s[4];     /* xoshiro256** state */
  uint64_t i;        /* events produced */
  int64_t span_ms;   /* W */
  double step_ms;    /* W / N */
  uint32_t jitter_ms; /* min(5 s, W / 4N): the jitter is U(-jitter_ms, +jitter_ms) */
  double *proj_cdf;  /* proj_cdf[k - 1] = sum of the weights of ranks 1..k */
  double *user_cdf;
  pending_t heap[PENDING_MAX];
  size_t npending;
  uint64_t pseq;
  bson_t doc;
};

/* {==== randomness =========================================================== */

static uint64_t splitmix64(uint64_t *x)
{
  uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* A stateless hash of a small integer: fixed attributes of projects, users and files. */
static uint64_t mix64(uint64_t x)
{
  return splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
  return (x << k) | (x >> (64 - k));
}

static uint64_t next64(zql_gen_t *g)
{
  uint64_t *s = g->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/* An integer in [0, n), n <= 2^32. */
static uint32_t below(zql_gen_t *g, uint32_t n)
{
  return (uint32_t)(((next64(g) >> 32) * (uint64_t)n) >> 32);
}

/* A double in [0, 1). */
static double unit(zql_gen_t *g)
{
  return (double)(next64(g) >> 11) * (1.0 / 9007199254740992.0);
}

/* A standard normal deviate, approximately (Irwin-Hall, 12 uniforms). */
static double normal(zql_gen_t *g)
{
  double sum = 0;
  for (int k = 0; k < 12; k++)
    sum += unit(g);
  return sum - 6.0;
}

/* exp(x) for |x| <= 700 from basic operations only: x = k ln2 + r with |r| <= ln2/2
 * (Cody-Waite split of ln2), a degree-13 Taylor polynomial for e^r (error < 1e-17),
 * then 2^k from the exponent bits. */
static double det_exp(double x)
{
  if (x > 700)
    x = 700;
  if (x < -700)
    x = -700;
  double y = x * 1.4426950408889634 + 0.5;
  int64_t k = (int64_t)y; /* truncates towards zero: make it a floor */
  if ((double)k > y)
    k--;
  double kf = (double)k;
  double r = (x - kf * 6.93147180369123816490e-01) - kf * 1.90821492927058770002e-10;
  double p = 1.0;
  for (int n = 13; n >= 1; n--)
    p = 1.0 + p * r / n;
  union {
    uint64_t u;
    double d;
  } two = {.u = (uint64_t)(k + 1023) << 52};
  return p * two.d;
}

/* median * e^(sigma Z), rounded to a multiple of 1/8. */
static double lognormal(zql_gen_t *g, double median, double sigma)
{
  double v = median * det_exp(sigma * normal(g));
  return (double)(int64_t)(v * 8 + 0.5) / 8;
}

/* An index into a table of weights that sum to `total`. */
static size_t pick(zql_gen_t *g, const uint16_t *w, size_t n, uint32_t total)
{
  uint32_t r = below(g, total);
  for (size_t k = 0; k < n; k++) {
    if (r < w[k])
      return k;
    r -= w[k];
  }
  return n - 1;
}

#define PICK(g, table, total) pick(g, table, ZQL_ARRAY_LEN(table), total)

/* A rank 1..n from cumulative weights. */
static uint32_t zipf(zql_gen_t *g, const double *cdf, uint32_t n)
{
  double u = unit(g) * cdf[n - 1];
  uint32_t lo = 0, hi = n - 1; /* the first k with cdf[k] > u */
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (cdf[mid] > u)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo + 1;
}

/* }==== */

/* {==== the vocabulary ======================================================= */

static const char *const stems[32] = {
    "aurora", "basil",  "cobalt", "delta",  "ember", "fjord",  "gecko",  "harbor",
    "iris",   "juniper", "kestrel", "lumen", "magpie", "nimbus", "onyx",  "pixel",
    "quartz", "raven",  "sable",  "tundra", "umbra", "vortex", "willow", "xenon",
    "yarrow", "zephyr", "atlas",  "beacon", "cipher", "drift", "echo",   "flux",
};
static const char *const suffixes[8] = {"",     "-tools", "-lib",  "-utils",
                                        "-server", "-gui", "-docs", "-plugins"};

/* Project of rank k (1-based): stem, suffix, and a number past the first 256. */
static void project_name(char *buf, size_t cap, uint32_t k)
{
  uint32_t i = k - 1;
  if (i < 256)
    snprintf(buf, cap, "%s%s", stems[i % 32], suffixes[(i / 32) % 8]);
  else
    snprintf(buf, cap, "%s%s-%" PRIu32, stems[i % 32], suffixes[(i / 32) % 8], i / 256 + 1);
}

static const char *const neighborhoods[] = {"projects", "users", "teams"};

static const char *const countries[] = {"US", "DE", "IN", "CN", "BR", "GB", "FR", "JP",
                                        "RU", "CA", "ES", "IT", "PL", "NL", "SE", "KR",
                                        "AU", "MX", "UA", "TR", "ID", "AR"};
static const uint16_t country_w[] = {300, 100, 100, 80, 60, 60, 50, 40, 40, 30, 15,
                                     15,  15,  10,  10, 15, 10, 10, 10, 10, 10, 10};

static const char *const pv_tools[] = {"summary", "wiki", "tickets", "code", "files", "discussion"};
static const uint16_t pv_tool_w[] = {300, 200, 150, 150, 120, 80};

static const struct {
  const char *route;
  double median_ms;
} endpoints[] = {
    {"GET /rest/p/{project}", 35},           {"GET /rest/p/{project}/files", 60},
    {"GET /rest/search", 120},               {"GET /rest/p/{project}/wiki", 45},
    {"GET /rest/u/{user}", 25},              {"GET /rest/p/{project}/code/log", 250},
    {"POST /rest/p/{project}/tickets", 180}, {"POST /rest/auth/token", 90},
};
static const uint16_t endpoint_w[] = {250, 150, 150, 120, 100, 80, 80, 70}; /* ORDER: endpoints */

static const int32_t api_status[] = {200, 201, 304, 400, 401, 404, 429, 500, 502, 503};
static const uint16_t api_status_w[] = {9000, 200, 200, 100, 100, 200, 50, 100, 20, 30};
static const int32_t pv_status[] = {200, 304, 404, 500};
static const uint16_t pv_status_w[] = {9300, 400, 250, 50};

static const char *const exts[8] = {"tar.gz", "zip", "exe", "dmg", "tar.bz2", "deb", "rpm", "msi"};
static const uint16_t file_w[8] = {840, 420, 280, 210, 168, 140, 120, 105}; /* 840/(v+1) */
static const char *const tags[9] = {"stable", "beta",  "linux",  "windows", "macos",
                                    "source", "docs", "x86_64", "arm64"};
static const char *const mirrors[8] = {"master", "iweb", "netix", "freefr",
                                       "jaist",  "kent", "nchc",  "phoenixnap"};

static const char *const words[24] = {
    "linux",  "editor", "backup", "game",    "emulator", "driver", "python", "java",
    "media",  "player", "ftp",    "client",  "server",   "icons",  "fonts",  "firmware",
    "wiki",   "chess",  "audio",  "convert", "pdf",      "sync",   "vpn",    "router"};

static const char *const branches[] = {"main", "master", "develop", "feature/next"};
static const uint16_t branch_w[] = {50, 30, 15, 5};
static const char *const scms[] = {"git", "svn", "hg"};
static const uint16_t scm_w[] = {70, 20, 10};
static const char *const login_methods[] = {"password", "oauth", "openid"};
static const uint16_t login_method_w[] = {800, 150, 50};
static const char *const ticket_actions[] = {"create", "comment", "modify", "close"};
static const uint16_t ticket_action_w[] = {250, 450, 200, 100};
static const char *const referrers[] = {"",         "google.com", "github.com", "reddit.com",
                                        "news.ycombinator.com", "duckduckgo.com"};
static const uint16_t referrer_w[] = {300, 400, 120, 80, 50, 50};
static const char *const signup_methods[] = {"email", "github", "google"};
static const uint16_t signup_method_w[] = {60, 25, 15};

/* }==== */

/* {==== options and lifetime ================================================= */

void zql_gen_opts_init(zql_gen_opts_t *o)
{
  o->events = 1000;
  o->seed = 1;
  o->days = 7;
  o->projects = 200;
  o->users = 5000;
  o->start_ms = ZQL_GEN_DEFAULT_START_MS;
}

static double *build_cdf(uint32_t n, double offset)
{
  double *cdf = zql_calloc(n, sizeof *cdf);
  if (!cdf)
    return NULL;
  double sum = 0;
  for (uint32_t k = 1; k <= n; k++) {
    sum += 1.0 / ((double)k + offset);
    cdf[k - 1] = sum;
  }
  return cdf;
}

static int seterr(zql_strbuf_t *err, int code, const char *msg)
{
  if (err)
    zql_strbuf_adds(err, msg);
  return code;
}

int zql_gen_new(const zql_gen_opts_t *o, zql_gen_t **out, zql_strbuf_t *err)
{
  *out = NULL;
  if (o->days < 1 || o->days > ZQL_GEN_MAX_DAYS)
    return seterr(err, ZQL_E_USAGE, "days must be between 1 and 36500");
  if (o->projects < 1 || o->projects > ZQL_GEN_MAX_PROJECTS)
    return seterr(err, ZQL_E_USAGE, "projects must be between 1 and 1000000");
  if (o->users < 1 || o->users > ZQL_GEN_MAX_USERS)
    return seterr(err, ZQL_E_USAGE, "users must be between 1 and 10000000");
  /* the window must stay inside the years 0..9999 that extended JSON can print */
  if (o->start_ms < INT64_C(-62167219200000) ||
      o->start_ms > INT64_C(253402300799999) - (int64_t)o->days * DAY_MS)
    return seterr(err, ZQL_E_USAGE, "start date out of range (years 0000 to 9999)");

  zql_gen_t *g = zql_calloc(1, sizeof *g);
  if (!g)
    return seterr(err, ZQL_E_NOMEM, "out of memory");
  g->o = *o;
  bson_init(&g->doc);
  g->proj_cdf = build_cdf(o->projects, 0.0);
  g->user_cdf = build_cdf(o->users, 10.0);
  if (!g->proj_cdf || !g->user_cdf) {
    zql_gen_free(g);
    return seterr(err, ZQL_E_NOMEM, "out of memory");
  }
  uint64_t x = o->seed;
  for (int k = 0; k < 4; k++)
    g->s[k] = splitmix64(&x);
  g->span_ms = (int64_t)o->days * DAY_MS;
  g->step_ms = o->events ? (double)g->span_ms / (double)o->events : 0;
  g->jitter_ms = g->step_ms / 4 < 5000 ? (uint32_t)(g->step_ms / 4) : 5000;
  *out = g;
  return 0;
}

void zql_gen_free(zql_gen_t *g)
{
  if (!g)
    return;
  bson_destroy(&g->doc);
  zql_free(g->proj_cdf);
  zql_free(g->user_cdf);
  zql_free(g);
}

uint64_t zql_gen_count(const zql_gen_t *g)
{
  return g->i;
}

/* }==== */

/* {==== funnel follow-ups: a min-heap on (due, seq) ============================ */

static bool pending_less(const pending_t *a, const pending_t *b)
{
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void schedule(zql_gen_t *g, uint8_t type, uint32_t user)
{
  uint64_t due = g->i + 1 + below(g, 30);
  if (g->npending == PENDING_MAX)
    return;
  size_t c = g->npending++;
  pending_t p = {due, g->pseq++, user, type};
  while (c > 0) {
    size_t parent = (c - 1) / 2;
    if (!pending_less(&p, &g->heap[parent]))
      break;
    g->heap[c] = g->heap[parent];
    c = parent;
  }
  g->heap[c] = p;
}

static pending_t unschedule(zql_gen_t *g)
{
  pending_t top = g->heap[0];
  pending_t last = g->heap[--g->npending];
  size_t c = 0, n = g->npending;
  for (;;) {
    size_t l = 2 * c + 1, m = c;
    const pending_t *best = &last;
    if (l < n && pending_less(&g->heap[l], best)) {
      m = l;
      best = &g->heap[l];
    }
    if (l + 1 < n && pending_less(&g->heap[l + 1], best))
      m = l + 1;
    if (m == c)
      break;
    g->heap[c] = g->heap[m];
    c = m;
  }
  if (n > 0)
    g->heap[c] = last;
  return top;
}

/* }==== */

/* {==== one event ============================================================ */

#define APPEND_STR(doc, k, v) bson_append_utf8(doc, k, -1, v, -1)

static int64_t event_time(zql_gen_t *g)
{
  int64_t t = g->o.start_ms + (int64_t)(((double)g->i + 0.5) * g->step_ms);
  if (below(g, 100) < 3)
    t -= (int64_t)below(g, 3600000);
  else
    t += (int64_t)below(g, 2 * g->jitter_ms + 1) - g->jitter_ms;
  if (t < g->o.start_ms)
    t = g->o.start_ms;
  if (t >= g->o.start_ms + g->span_ms)
    t = g->o.start_ms + g->span_ms - 1;
  return t;
}

/* extra.ms, with the malformed cases: 0.3% negative, 0.3% null. */
static void append_ms(zql_gen_t *g, bson_t *extra, double median, double sigma)
{
  double ms = lognormal(g, median, sigma);
  uint32_t r = below(g, 1000);
  if (r < 3)
    bson_append_double(extra, "ms", -1, -ms);
  else if (r < 6)
    bson_append_null(extra, "ms", -1);
  else
    bson_append_double(extra, "ms", -1, ms);
}

/* extra.bytes: 2% absent, 0.5% a string like "12k", else an integer. */
static void append_bytes(zql_gen_t *g, bson_t *extra, double median, double sigma, bool wide)
{
  double v = lognormal(g, median, sigma);
  int64_t bytes = (int64_t)v + 1;
  uint32_t r = below(g, 1000);
  if (r < 20)
    return;
  if (r < 25) {
    char s[32];
    snprintf(s, sizeof s, "%" PRId64 "k", (bytes + 512) / 1024);
    APPEND_STR(extra, "bytes", s);
  } else if (wide) {
    bson_append_int64(extra, "bytes", -1, bytes);
  } else {
    bson_append_int32(extra, "bytes", -1, (int32_t)(bytes > INT32_MAX ? INT32_MAX : bytes));
  }
}

static void append_download(zql_gen_t *g, bson_t *extra, uint32_t proj, const char *pname)
{
  size_t v = PICK(g, file_w, 2283);
  char file[160];
  snprintf(file, sizeof file, "%s-1.%zu.%s", pname, v, exts[v]);
  APPEND_STR(extra, "file", file);
  append_bytes(g, extra, 4e6, 1.0, true);
  bson_t arr;
  bson_append_array_begin(extra, "tags", -1, &arr);
  uint64_t h = mix64((uint64_t)proj * 8 + v);
  unsigned ntags = (unsigned)(h % 4), used = 0;
  h /= 4;
  for (unsigned t = 0; t < ntags; t++) {
    unsigned pos = (unsigned)(h % 9);
    h /= 9;
    while (used & (1u << pos))
      pos = (pos + 1) % 9;
    used |= 1u << pos;
    char key[16];
    const char *kp;
    bson_uint32_to_string(t, &kp, key, sizeof key);
    bson_append_utf8(&arr, kp, -1, tags[pos], -1);
  }
  bson_append_array_end(extra, &arr);
  APPEND_STR(extra, "mirror", mirrors[below(g, 8)]);
}

/* Build event number g->i of type `type` into g->doc. `user` is a user rank, or 0 to
 * draw one (or none); follow-ups pass their user. */
static void build_event(zql_gen_t *g, unsigned type, uint32_t user, bool followup)
{
  bson_t *d = &g->doc;
  bson_reinit(d);
  bson_append_date_time(d, "timestamp", -1, event_time(g));
  APPEND_STR(d, "type", type_names[type]);

  if (!followup)
    user = below(g, 1000) < 30 ? 0 : zipf(g, g->user_cdf, g->o.users);
  bool has_project = type != T_LOGIN && type != T_SIGNUP_FORM && type != T_SIGNUP_DONE;
  uint32_t proj = has_project ? zipf(g, g->proj_cdf, g->o.projects) : 0;
  char pname[96] = "", uname[32];
  if (proj)
    project_name(pname, sizeof pname, proj);

  bson_t ctx;
  bson_append_document_begin(d, "context", -1, &ctx);
  if (user) {
    snprintf(uname, sizeof uname, "user%" PRIu32, user);
    APPEND_STR(&ctx, "user", uname);
  }
  if (proj) {
    APPEND_STR(&ctx, "project", pname);
    uint32_t h = (uint32_t)(mix64(proj) % 100); /* fixed per project: 90/7/3 */
    APPEND_STR(&ctx, "neighborhood", neighborhoods[h < 90 ? 0 : h < 97 ? 1 : 2]);
  }
  const char *tool = "auth";
  switch (type) {
  case T_PAGEVIEW: tool = pv_tools[PICK(g, pv_tool_w, 1000)]; break;
  case T_DOWNLOAD: tool = "files"; break;
  case T_SEARCH: tool = "search"; break;
  case T_COMMIT: tool = scms[PICK(g, scm_w, 100)]; break;
  case T_TICKET: tool = "tickets"; break;
  case T_API_CALL: tool = "rest"; break;
  case T_VISIT: tool = "home"; break;
  default: break;
  }
  APPEND_STR(&ctx, "tool", tool);
  size_t country;
  if (user) {
    uint32_t h = (uint32_t)(mix64(UINT64_C(0x5eed) ^ ((uint64_t)user << 20)) % 1000);
    country = 0;
    while (country + 1 < ZQL_ARRAY_LEN(country_w) && h >= country_w[country])
      h -= country_w[country++];
  } else {
    country = PICK(g, country_w, 1000);
  }
  APPEND_STR(&ctx, "country", countries[country]);
  if (type == T_PAGEVIEW || type == T_DOWNLOAD || type == T_SEARCH || type == T_VISIT) {
    uint32_t bot_pm = type == T_PAGEVIEW ? 150 : 50;
    APPEND_STR(&ctx, "agent_class", below(g, 1000) < bot_pm ? "bot" : "human");
  }
  size_t ep = 0;
  if (type == T_API_CALL) {
    ep = PICK(g, endpoint_w, 1000);
    APPEND_STR(&ctx, "endpoint", endpoints[ep].route);
  }
  bson_append_document_end(d, &ctx);

  bson_t ex;
  char s[160];
  bson_append_document_begin(d, "extra", -1, &ex);
  switch (type) {
  case T_PAGEVIEW:
    snprintf(s, sizeof s, "/p/%s/%s/", pname, tool);
    APPEND_STR(&ex, "path", s);
    append_bytes(g, &ex, 24576, 0.8, false);
    append_ms(g, &ex, 80, 0.7);
    bson_append_int32(&ex, "status", -1, pv_status[PICK(g, pv_status_w, 10000)]);
    break;
  case T_DOWNLOAD:
    append_download(g, &ex, proj, pname);
    break;
  case T_API_CALL: {
    double median = endpoints[ep].median_ms;
    if (below(g, 100) < 1)
      median *= 10;
    append_ms(g, &ex, median, 0.6);
    bson_append_int32(&ex, "status", -1, api_status[PICK(g, api_status_w, 10000)]);
    break;
  }
  case T_SEARCH: {
    size_t n = 1 + below(g, 3), len = 0;
    for (size_t k = 0; k < n; k++)
      len += (size_t)snprintf(s + len, sizeof s - len, "%s%s", k ? " " : "", words[below(g, 24)]);
    APPEND_STR(&ex, "query", s);
    bson_append_int32(&ex, "results", -1, (int32_t)below(g, 500));
    append_ms(g, &ex, 120, 0.8);
    break;
  }
  case T_COMMIT:
    APPEND_STR(&ex, "branch", branches[PICK(g, branch_w, 100)]);
    bson_append_int32(&ex, "files", -1, 1 + (int32_t)lognormal(g, 2, 1.0));
    bson_append_int32(&ex, "added", -1, (int32_t)lognormal(g, 20, 1.2));
    bson_append_int32(&ex, "removed", -1, (int32_t)lognormal(g, 8, 1.2));
    break;
  case T_LOGIN:
    APPEND_STR(&ex, "method", login_methods[PICK(g, login_method_w, 1000)]);
    bson_append_bool(&ex, "success", -1, below(g, 100) < 95);
    break;
  case T_TICKET:
    APPEND_STR(&ex, "action", ticket_actions[PICK(g, ticket_action_w, 1000)]);
    bson_append_int32(&ex, "ticket", -1, 1 + (int32_t)below(g, 2000));
    bson_append_int32(&ex, "priority", -1, 1 + (int32_t)below(g, 5));
    break;
  case T_VISIT:
    APPEND_STR(&ex, "referrer", referrers[PICK(g, referrer_w, 1000)]);
    snprintf(s, sizeof s, "/p/%s/", pname);
    APPEND_STR(&ex, "landing", s);
    break;
  case T_SIGNUP_FORM:
    bson_append_int32(&ex, "step", -1, 1);
    break;
  case T_SIGNUP_DONE:
    APPEND_STR(&ex, "method", signup_methods[PICK(g, signup_method_w, 100)]);
    break;
  default:
    ZQL_BUG("unknown event type %u", type);
  }
  bson_append_document_end(d, &ex);

  /* the funnel: schedule the user's next step */
  if (user && type == T_VISIT && below(g, 100) < 40)
    schedule(g, T_SIGNUP_FORM, user);
  else if (type == T_SIGNUP_FORM && below(g, 100) < 60)
    schedule(g, T_SIGNUP_DONE, user);
  else if (type == T_SIGNUP_DONE && below(g, 100) < 50)
    schedule(g, T_DOWNLOAD, user);
}

int zql_gen_next(zql_gen_t *g, const bson_t **doc)
{
  if (g->i >= g->o.events)
    return 0;
  if (g->npending > 0 && g->heap[0].due <= g->i) {
    pending_t p = unschedule(g);
    build_event(g, p.type, p.user, true);
  } else {
    build_event(g, (unsigned)PICK(g, type_weights, 1000), 0, false);
  }
  g->i++;
  *doc = &g->doc;
  return 1;
}

int zql_gen_each(const zql_gen_opts_t *o, zql_gen_fn fn, void *arg, zql_strbuf_t *err)
{
  zql_gen_t *g;
  int rc = zql_gen_new(o, &g, err);
  if (rc < 0)
    return rc;
  const bson_t *doc;
  while ((rc = zql_gen_next(g, &doc)) == 1) {
    if ((rc = fn(doc, arg)) < 0)
      break;
  }
  zql_gen_free(g);
  return rc < 0 ? rc : 0;
}

/* }==== */

/* {==== dates ================================================================ */

/* Parsing is zql's one ISO-8601 parser (runtime/base/tz.h); a date alone means its
 * midnight UTC, and a date-time needs an offset (no local-time guesses). */
int zql_gen_parse_date(const char *s, int64_t *ms)
{
  zql_iso_t iso;
  if (zql_iso8601_scan(s, strlen(s), &iso, NULL) < 0 || (iso.has_time && !iso.has_offset) ||
      zql_iso8601_resolve(&iso, zql_tz_utc(), ms, NULL) < 0)
    return ZQL_E_USAGE;
  return 0;
}

/* }==== */
