#include "runtime/base/zql_common.h"
/*
 * zmqdl.c -- libzmq loaded on first use by the client side of zql (runtime services):
 * see zmqdl.h for why.
 */
#define ZQL_ZMQDL_IMPL 1
#include "runtime/zmqdl.h"

#include <dlfcn.h>
#include <pthread.h>

zql_zmq_api_t zql_zmq_api;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[256];

#define SYM(field, name)                                                                      \
  do {                                                                                        \
    void *p_ = dlsym(h, name);                                                                \
    if (!p_) {                                                                                \
      snprintf(load_error, sizeof load_error, "libzmq.so.5 has no %s", name);                 \
      return;                                                                                 \
    }                                                                                         \
    memcpy(&a.field, &p_, sizeof p_); /* object to function pointer (POSIX dlsym) */        \
  } while (0)

static void load(void)
{
  void *h = dlopen("libzmq.so.5", RTLD_NOW | RTLD_LOCAL);
  if (!h)
    h = dlopen("libzmq.so", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    snprintf(load_error, sizeof load_error, "cannot load libzmq (%s); install libzmq5",
             e ? e : "dlopen failed");
    return;
  }
  zql_zmq_api_t a;
  SYM(ctx_new, "zmq_ctx_new");
  SYM(ctx_term, "zmq_ctx_term");
  SYM(socket, "zmq_socket");
  SYM(close, "zmq_close");
  SYM(setsockopt, "zmq_setsockopt");
  SYM(connect, "zmq_connect");
  SYM(bind, "zmq_bind");
  SYM(send, "zmq_send");
  SYM(msg_init, "zmq_msg_init");
  SYM(msg_close, "zmq_msg_close");
  SYM(msg_recv, "zmq_msg_recv");
  SYM(msg_more, "zmq_msg_more");
  SYM(msg_data, "zmq_msg_data");
  SYM(msg_size, "zmq_msg_size");
  SYM(msg_move, "zmq_msg_move");
  SYM(poll, "zmq_poll");
  SYM(curve_keypair, "zmq_curve_keypair");
  SYM(curve_public, "zmq_curve_public");
  SYM(z85_decode, "zmq_z85_decode");
  SYM(z85_encode, "zmq_z85_encode");
  SYM(strerror, "zmq_strerror");
  SYM(socket_monitor, "zmq_socket_monitor");
  zql_zmq_api = a;
}

int zql_zmq_load(char *err, size_t errlen)
{
  pthread_once(&once, load);
  if (zql_zmq_api.ctx_new)
    return 0;
  if (err && errlen)
    snprintf(err, errlen, "%s", load_error[0] ? load_error : "libzmq could not be loaded");
  return -1;
}
