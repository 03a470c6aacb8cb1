/*
 * hash.c — SipHash-1-3 (Aumasson and Bernstein) with a random key drawn once
 * per process; chaining mixes the previous hash into the key.
 */
#include "hash.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t hash_key[2];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

/* Draw the process's hash key (getrandom, else clock and pid). */
static void
hash_key_init(void)
{
	if (getrandom(hash_key, sizeof(hash_key), GRND_NONBLOCK) != (ssize_t) sizeof(hash_key))
	{
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		hash_key[0] = (uint64_t) ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t) getpid();
		hash_key[1] = (uint64_t) ts.tv_sec * 0xbf58476d1ce4e5b9ULL ^ (uint64_t) (uintptr_t) &ts;
	}
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND \
	do { \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

/* Hash n bytes, chained from h. */
uint64_t
lm_hash(uint64_t h, const void *data, size_t n)
{
	const uint8_t *p = data;
	uint64_t	k0,
				k1,
				v0,
				v1,
				v2,
				v3,
				m,
				b;
	size_t		i;

	pthread_once(&hash_key_once, hash_key_init);
	k0 = hash_key[0] ^ h;
	k1 = hash_key[1];
	v0 = k0 ^ 0x736f6d6570736575ULL;
	v1 = k1 ^ 0x646f72616e646f6dULL;
	v2 = k0 ^ 0x6c7967656e657261ULL;
	v3 = k1 ^ 0x7465646279746573ULL;
	for (i = 0; i + 8 <= n; i += 8)
	{
		memcpy(&m, p + i, 8);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	b = (uint64_t) n << 56;
	for (size_t j = 0; i + j < n; j++)
		b |= (uint64_t) p[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}
