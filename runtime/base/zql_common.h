/*
 * zql_common.h -- the first include of every zql .c file (layer 0).
 *
 * Pulls in config.h, the feature-test macros and the C11 basics every file uses, and
 * defines ZQL_BUG(), the only sanctioned way to stop the process: it is for broken
 * invariants inside zql, never for bad user input (which becomes a zql_error_t).
 */
#ifndef ZQL_COMMON_H
#define ZQL_COMMON_H

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZQL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__) || defined(__clang__)
#define ZQL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define ZQL_NORETURN __attribute__((noreturn))
#define ZQL_UNUSED __attribute__((unused))
#else
#define ZQL_PRINTF(f, a)
#define ZQL_NORETURN
#define ZQL_UNUSED
#endif

/* Report a broken internal invariant (file and line) and abort. Never for user input. */
ZQL_NORETURN void zql_bug_at(const char *file, int line, const char *fmt, ...)
    ZQL_PRINTF(3, 4);
#define ZQL_BUG(...) zql_bug_at(__FILE__, __LINE__, __VA_ARGS__)

#endif
