/*
 * mapguard.h — survive a mapped model file that shrinks under us.
 *
 * A read-only MAP_SHARED mapping of a file gets SIGBUS when a page past the
 * file's new end is touched (someone truncated or rewrote the file).  The
 * guard keeps a table of registered mappings and a process-wide SIGBUS
 * handler: a fault inside a registered mapping replaces that whole mapping
 * with anonymous zero pages, marks it damaged and returns, so the faulting
 * read sees zeros and the process goes on; any other SIGBUS goes to the
 * handler that was installed before (or kills the process as usual).
 * Whoever reads through the mapping checks lm_mapguard_damaged() afterwards
 * and fails the call.  See mapguard.c for the reasoning.
 *
 * A thread that blocks SIGBUS cannot run the handler (the kernel kills the
 * process instead), so engine threads keep SIGBUS unblocked (threads.c).
 */
#ifndef LM_MAPGUARD_H
#define LM_MAPGUARD_H

#include <stdbool.h>
#include <stddef.h>

/* Mappings guarded at once per process. */
#define LM_MAPGUARD_SLOTS 128

/* Guard the mapping [base, base+len); a slot >= 0, or -1 with a message. */
extern int	lm_mapguard_register(const void *base, size_t len, char *err, size_t errlen);

/* Stop guarding a slot (before unmapping it); -1 is allowed. */
extern void lm_mapguard_unregister(int slot);

/* True once a fault in this slot's mapping was answered with zero pages. */
extern bool lm_mapguard_damaged(int slot);

/* Faults answered with zero pages so far in this process (for tests). */
extern unsigned long lm_mapguard_faults(void);

#endif							/* LM_MAPGUARD_H */
