/*
 * model_path.c — confine model file paths to lmgen.model_dir.
 *
 * A path is joined to lmgen.model_dir when relative, then both are made
 * canonical with realpath(), which resolves "..", "." and every symlink.
 * The file is inside the directory when its canonical path starts with the
 * directory's canonical path followed by '/'.  So "../x", an absolute path
 * elsewhere, and a symlink inside the directory that points out of it are
 * all refused for non-superusers; superusers may open any readable file,
 * except where the caller asks for strict confinement (registering a model
 * always takes it from the directory).
 *
 * The confinement check comes before any other error, so a non-superuser
 * cannot learn whether a file outside the directory exists: a path that
 * does not resolve is judged by its lexical form instead.
 */
#include "postgres.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "miscadmin.h"

#include "lmgen.h"

/* Canonical form of a path, or NULL with errno set. */
static char *
canonical(const char *path)
{
	char	   *buf = palloc(PATH_MAX);

	if (realpath(path, buf) == NULL)
	{
		pfree(buf);
		return NULL;
	}
	return buf;
}

/* True when path (canonical or lexically cleaned) lies under dir. */
static bool
path_is_inside(const char *path, const char *dir)
{
	size_t		dlen = strlen(dir);

	if (dlen == 1 && dir[0] == '/')
		return path[0] == '/';
	return strncmp(path, dir, dlen) == 0 && path[dlen] == '/';
}

/* ERROR: the path leaves lmgen.model_dir. */
static void
refuse_outside(const char *path, const char *resolved, const char *dir)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("model path \"%s\" is outside lmgen.model_dir", path),
			 errdetail("It resolves to \"%s\", which is not inside \"%s\".", resolved, dir),
			 errhint("Put the model file in lmgen.model_dir, or ask a superuser to load it.")));
}

/* Resolve a user-given model path inside lmgen.model_dir (superusers may leave it unless strict). */
char *
ResolveModelPath(const char *path, bool strict)
{
	char	   *joined;
	char	   *real_file;
	char	   *real_dir;
	struct stat st;
	bool		is_super = superuser() && !strict;

	if (path[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model path must not be empty")));
	if (lmgen_model_dir == NULL || lmgen_model_dir[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lmgen.model_dir is not set"),
				 errhint("Set lmgen.model_dir to the directory that holds the model files.")));

	if (is_absolute_path(path))
		joined = pstrdup(path);
	else
		joined = psprintf("%s/%s", lmgen_model_dir, path);

	real_dir = canonical(lmgen_model_dir);
	real_file = canonical(joined);
	if (real_file == NULL)
	{
		int			save_errno = errno;

		/* judge a path that does not resolve by its lexical form */
		canonicalize_path(joined);
		if (!is_super && (real_dir == NULL || !path_is_inside(joined, real_dir)) &&
			!path_is_inside(joined, lmgen_model_dir))
			refuse_outside(path, joined, real_dir ? real_dir : lmgen_model_dir);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not find model file \"%s\": %m", path),
				 errdetail("Relative paths are looked up in lmgen.model_dir (\"%s\").", lmgen_model_dir)));
	}
	if (!is_super && (real_dir == NULL || !path_is_inside(real_file, real_dir)))
		refuse_outside(path, real_file, real_dir ? real_dir : lmgen_model_dir);
	if (stat(real_file, &st) != 0 || !S_ISREG(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model path \"%s\" is not a regular file", path)));
	pfree(joined);
	if (real_dir)
		pfree(real_dir);
	return real_file;
}
