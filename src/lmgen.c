/*
 * lmgen.c — module entry point.  _PG_init only delegates.
 */
#include "postgres.h"

#include "fmgr.h"

#include "lmgen.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Module load: register everything the extension needs. */
void
_PG_init(void)
{
	GucInit();
	ShmemInit();
	WorkerInit();
	TrainInit();
	BatchInit();
}
