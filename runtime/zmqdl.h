/*
 * zmqdl.h -- libzmq for the zql client side, loaded when first needed (runtime services).
 *
 * The `zql` program links neither libzmq nor what it pulls in (libstdc++, libsodium,
 * OpenPGM, NORM, Kerberos): loading those costs about 1.2 ms at every start, which every
 * `zql agg run` and `zql -c` would pay for the sake of `zql send` and `zql keygen`. The
 * files of the client (client.c, cmd_send.c, cmd_keygen.c) include this header instead of
 * <zmq.h> alone: their zmq_* calls go through a table filled by dlopen("libzmq.so.5")
 * on the first zql_zmq_load(), which each entry point calls before any other zmq_*
 * function (a failure is an error message, never a call through a missing pointer).
 * zqld and the tests link libzmq anyway; dlopen then finds the same library.
 */
#ifndef ZQL_ZMQDL_H
#define ZQL_ZMQDL_H

#include "runtime/base/zql_common.h"

#include <zmq.h>

typedef struct zql_zmq_api {
  __typeof__(&zmq_ctx_new) ctx_new;
  __typeof__(&zmq_ctx_term) ctx_term;
  __typeof__(&zmq_socket) socket;
  __typeof__(&zmq_close) close;
  __typeof__(&zmq_setsockopt) setsockopt;
  __typeof__(&zmq_connect) connect;
  __typeof__(&zmq_bind) bind;
  __typeof__(&zmq_send) send;
  __typeof__(&zmq_msg_init) msg_init;
  __typeof__(&zmq_msg_close) msg_close;
  __typeof__(&zmq_msg_recv) msg_recv;
  __typeof__(&zmq_msg_more) msg_more;
  __typeof__(&zmq_msg_data) msg_data;
  __typeof__(&zmq_msg_size) msg_size;
  __typeof__(&zmq_msg_move) msg_move;
  __typeof__(&zmq_poll) poll;
  __typeof__(&zmq_curve_keypair) curve_keypair;
  __typeof__(&zmq_curve_public) curve_public;
  __typeof__(&zmq_z85_decode) z85_decode;
  __typeof__(&zmq_z85_encode) z85_encode;
  __typeof__(&zmq_strerror) strerror;
  __typeof__(&zmq_socket_monitor) socket_monitor;
} zql_zmq_api_t;

extern zql_zmq_api_t zql_zmq_api;

/* Load libzmq once (thread-safe). 0, or -1 with the reason in err (NUL-terminated). */
int zql_zmq_load(char *err, size_t errlen);

#ifndef ZQL_ZMQDL_IMPL
#define zmq_ctx_new zql_zmq_api.ctx_new
#define zmq_ctx_term zql_zmq_api.ctx_term
#define zmq_socket zql_zmq_api.socket
#define zmq_close zql_zmq_api.close
#define zmq_setsockopt zql_zmq_api.setsockopt
#define zmq_connect zql_zmq_api.connect
#define zmq_bind zql_zmq_api.bind
#define zmq_send zql_zmq_api.send
#define zmq_msg_init zql_zmq_api.msg_init
#define zmq_msg_close zql_zmq_api.msg_close
#define zmq_msg_recv zql_zmq_api.msg_recv
#define zmq_msg_more zql_zmq_api.msg_more
#define zmq_msg_data zql_zmq_api.msg_data
#define zmq_msg_size zql_zmq_api.msg_size
#define zmq_msg_move zql_zmq_api.msg_move
#define zmq_poll zql_zmq_api.poll
#define zmq_curve_keypair zql_zmq_api.curve_keypair
#define zmq_curve_public zql_zmq_api.curve_public
#define zmq_z85_decode zql_zmq_api.z85_decode
#define zmq_z85_encode zql_zmq_api.z85_encode
#define zmq_strerror zql_zmq_api.strerror
#define zmq_socket_monitor zql_zmq_api.socket_monitor
#endif

#endif
