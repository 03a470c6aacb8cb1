/*
 * guc.c — the lmgen.* configuration parameters.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"

#include "lmgen.h"

char	   *lmgen_model_dir = NULL;

/* Register lmgen.* GUCs and reserve the prefix. */
void
GucInit(void)
{
	static char default_dir[MAXPGPATH];
	char		sharedir[MAXPGPATH];

	get_share_path(my_exec_path, sharedir);
	snprintf(default_dir, sizeof(default_dir), "%s/lmgen/models", sharedir);

	DefineCustomStringVariable("lmgen.model_dir",
							   "Directory that model file paths are resolved in.",
							   "Relative paths given to lmgen functions are looked up here; "
							   "non-superusers cannot reach files outside it.",
							   &lmgen_model_dir,
							   default_dir,
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	MarkGUCPrefixReserved("lmgen");
}
