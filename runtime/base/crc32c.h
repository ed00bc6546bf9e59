/*
 * crc32c.h -- CRC-32C (Castagnoli), the checksum of zql's durable formats (layer 0).
 *
 * The CRC of the iSCSI standard (RFC 3720 appendix B.4), of ext4 metadata and of
 * LevelDB/RocksDB log records: reflected polynomial 0x82F63B78, initial value and final
 * xor 0xFFFFFFFF. zql_crc32c("123456789", 9) == 0xE3069283.
 *
 * Incremental use: crc = zql_crc32c_extend(0, a, na); crc = zql_crc32c_extend(crc, b, nb)
 * gives the same value as one call over the concatenation (0 is the CRC of no bytes).
 *
 * The function is pure and thread-safe; it uses the SSE4.2 crc32 instruction when the CPU
 * has it (checked with cpuid on every call; the check is a load of a value the C runtime
 * set at startup) and portable slicing-by-8 tables otherwise. Both give identical results.
 */
#ifndef ZQL_CRC32C_H
#define ZQL_CRC32C_H

#include "runtime/base/zql_common.h"

/* CRC-32C of n bytes at p (p may be NULL when n == 0). */
uint32_t zql_crc32c(const void *p, size_t n);
/* Continue `crc` (a previous result, or 0) over n more bytes. */
uint32_t zql_crc32c_extend(uint32_t crc, const void *p, size_t n);
/* The portable path only (for tests and benchmarks). */
uint32_t zql_crc32c_portable(uint32_t crc, const void *p, size_t n);
/* True when zql_crc32c uses the hardware instruction. */
bool zql_crc32c_hw(void);

#endif
