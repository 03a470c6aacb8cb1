/*
 * hash.h — the engine's one string hash for hash tables built from
 * untrusted files (GGUF keys and tensor names, vocabulary texts, merges).
 *
 * SipHash-1-3 keyed with a random per-process key: nobody can craft a file
 * whose names all collide and so turn a table insert into a linear scan
 * (hash flooding), which an unkeyed hash such as FNV-1a allows.
 */
#ifndef LM_HASH_H
#define LM_HASH_H

#include <stddef.h>
#include <stdint.h>

#define LM_HASH_INIT 0			/* start value for lm_hash */

/* Hash n bytes, chained from h (LM_HASH_INIT for a fresh hash). */
extern uint64_t lm_hash(uint64_t h, const void *data, size_t n);

#endif							/* LM_HASH_H */
