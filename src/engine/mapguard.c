/*
 * mapguard.c — a SIGBUS guard for mapped model files.
 *
 * Why a guard and not a private copy.  Model weights are mapped read-only
 * and MAP_SHARED, so every backend that uses a model shares one copy in the
 * page cache (SmolLM2 is 94 MiB, Gemma 3 270M 241 MiB).  Reading the weights
 * into memory the backend owns would make a changed file harmless too, but
 * it costs that much RAM per backend (and the read at every open), for an
 * event that happens only when an administrator replaces a file in place.
 * Measured here (Xeon, page cache warm): reading SmolLM2 into private
 * memory takes 55 ms and 94 MiB per backend, Gemma 3 140 ms and 241 MiB.
 * The guard keeps the mapping: it costs nothing until the file shrinks,
 * plus one fstat() per forward pass (200 ns, against milliseconds for the
 * pass) to notice a rewrite in place, which never faults.  (The background
 * worker will later hold one validated copy in shared memory for everyone;
 * this guard covers the backends' own mappings.)
 *
 * What happens on a fault.  Touching a page of a MAP_SHARED mapping beyond
 * the file's current end raises SIGBUS synchronously on the touching
 * thread.  The handler looks the address up in a fixed table of registered
 * mappings (no locks, no allocation: it only reads atomics), and for a hit
 * maps anonymous zero pages over the whole mapping with mmap(MAP_FIXED) — a
 * single system call, safe in a signal handler — marks the slot damaged and
 * returns; the faulting instruction is restarted and reads zeros.  Garbage
 * weights give garbage numbers but no wild memory access: the kernels index
 * only by shapes and offsets validated at open, never by weight values.  The
 * caller (gguf.c: lm_gguf_unchanged) then reports the damage as an error.
 *
 * Any other SIGBUS is handed to the previous disposition: its handler is
 * called, or, when it was the default (or ignore), the default is restored
 * and the signal raised again, so a real bug still dumps core as before.
 *
 * Registration happens on the thread that opens files, and never while a
 * guarded mapping is being read by another thread of the engine; a slot is
 * published by storing its base last (release) and withdrawn by clearing
 * the base first, so the handler never sees a half-written slot.
 */
#include "mapguard.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

/* One guarded mapping. */
typedef struct guard_slot
{
	_Atomic(uintptr_t) base;	/* start address; 0 when the slot is free */
	_Atomic(size_t) len;		/* length in bytes */
	atomic_int	damaged;		/* set by the handler */
} guard_slot;

static guard_slot slots[LM_MAPGUARD_SLOTS];
static atomic_ulong n_faults;
static struct sigaction previous;	/* SIGBUS disposition before ours */
static bool installed;

/* Hand a SIGBUS that is not ours to the previous disposition. */
static void
chain_previous(int sig, siginfo_t *info, void *uctx)
{
	if (previous.sa_flags & SA_SIGINFO)
		previous.sa_sigaction(sig, info, uctx);
	else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN)
		previous.sa_handler(sig);
	else
	{
		struct sigaction dfl;

		/* default action: die as if no handler had been installed */
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		sigemptyset(&dfl.sa_mask);
		sigaction(SIGBUS, &dfl, NULL);
		raise(SIGBUS);
	}
}

/* SIGBUS handler: zero-fill a guarded mapping that faulted, else chain. */
static void
on_sigbus(int sig, siginfo_t *info, void *uctx)
{
	uintptr_t	addr = (uintptr_t) info->si_addr;

	for (int i = 0; i < LM_MAPGUARD_SLOTS; i++)
	{
		uintptr_t	base = atomic_load_explicit(&slots[i].base, memory_order_acquire);
		size_t		len;

		if (base == 0 || addr < base)
			continue;
		len = atomic_load_explicit(&slots[i].len, memory_order_relaxed);
		if (addr - base >= len)
			continue;
		if (mmap((void *) base, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
			MAP_FAILED)
			break;
		atomic_store(&slots[i].damaged, 1);
		atomic_fetch_add(&n_faults, 1);
		return;
	}
	chain_previous(sig, info, uctx);
}

/* Install the handler once; false with errno on failure. */
static bool
install_handler(void)
{
	struct sigaction sa;

	if (installed)
		return true;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &previous) != 0)
		return false;
	installed = true;
	return true;
}

/* Guard a mapping. */
int
lm_mapguard_register(const void *base, size_t len, char *err, size_t errlen)
{
	if (!install_handler())
	{
		snprintf(err, errlen, "could not install the SIGBUS handler that guards mapped files");
		return -1;
	}
	for (int i = 0; i < LM_MAPGUARD_SLOTS; i++)
	{
		if (atomic_load(&slots[i].base) != 0)
			continue;
		atomic_store(&slots[i].len, len);
		atomic_store(&slots[i].damaged, 0);
		atomic_store_explicit(&slots[i].base, (uintptr_t) base, memory_order_release);
		return i;
	}
	snprintf(err, errlen, "too many model files open at once in this process (at most %d)",
			 LM_MAPGUARD_SLOTS);
	return -1;
}

/* Stop guarding a slot. */
void
lm_mapguard_unregister(int slot)
{
	if (slot < 0 || slot >= LM_MAPGUARD_SLOTS)
		return;
	atomic_store(&slots[slot].base, 0);
}

/* Whether the slot's mapping was replaced by zero pages. */
bool
lm_mapguard_damaged(int slot)
{
	if (slot < 0 || slot >= LM_MAPGUARD_SLOTS)
		return false;
	return atomic_load(&slots[slot].damaged) != 0;
}

/* Faults answered so far. */
unsigned long
lm_mapguard_faults(void)
{
	return atomic_load(&n_faults);
}
