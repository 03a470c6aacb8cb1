/*
 * lmgen.h — declarations shared by the Postgres glue (the .c files in src/).
 */
#ifndef LMGEN_H
#define LMGEN_H

#include "postgres.h"

/* GUC lmgen.model_dir: directory that model paths are resolved in. */
extern char *lmgen_model_dir;

/* Register the GUCs (guc.c). */
extern void GucInit(void);

/*
 * Resolve a user-given model path inside lmgen.model_dir and return the
 * canonical absolute path (palloc'd); ERROR when it leaves the directory
 * (superusers may, unless strict), or when the file does not exist.
 */
extern char *ResolveModelPath(const char *path, bool strict);

#endif							/* LMGEN_H */
