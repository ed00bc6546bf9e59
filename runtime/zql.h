/*
 * zql.h -- the public umbrella header of libzql.
 *
 * libzql is the engine as a library; the zql and zqld binaries are thin layers over it.
 * Today it holds the ZQL front end (source -> tokens -> AST -> checked AST); the planner,
 * engine, event log and stores join it with their issues. Install layout: include this
 * header as <zql/runtime/zql.h> with -I$(includedir)/zql, link with -lzql.
 *
 * Conventions: exported names start with zql_; functions return 0 or a negative ZQL_E_*
 * code (runtime/base/error.h); compile errors are collected as zql_error_t diagnostics;
 * memory comes from arenas (runtime/base/arena.h) that the caller creates and deletes.
 */
#ifndef ZQL_H
#define ZQL_H

#include "runtime/base/zql_common.h"

#include "parser/ast.h"
#include "parser/registry.h"
#include "parser/source.h"
#include "parser/zql_parse.h"
#include "runtime/base/arena.h"
#include "runtime/base/error.h"
#include "runtime/base/strbuf.h"

/* "0.1.0" */
const char *zql_version(void);

#endif
