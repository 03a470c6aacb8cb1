/*
 * model_path.c — confine model file paths to lmgen.model_dir.
 *
 * For a non-superuser (and for every caller that asks for strict
 * confinement: registering and opening registered models) a path is
 * resolved by this file itself, one component at a time, starting from the
 * canonical model directory, and nothing outside that directory is ever
 * looked at:
 *
 *   - an absolute path must start with lmgen.model_dir (as set, or in its
 *     canonical form); the rest is walked like a relative path;
 *   - ".." steps back inside the resolved prefix (which holds no symlinks,
 *     so this is what the kernel would do) and is refused at the directory;
 *   - a symlink inside the directory is read with readlink(); an absolute
 *     target must lie inside the directory, a relative one is walked from
 *     the link's directory under the same rules.
 *
 * Every refusal has one message that names the path as the user gave it
 * and never a resolved one, and it comes before any look outside: so
 * "/proc/self/root/etc/passwd", "/proc/self/cwd/...", "/proc/self/fd/2", a
 * symlink out of the directory and "../x" are refused alike whether or not
 * the file exists, and neither the data directory nor the log file is
 * shown.  A missing file is reported as missing only when the path stays
 * inside the directory.  The caller opens the returned path, which has no
 * symlinks left; so what is opened is what was checked (short of someone
 * who may write into the model directory swapping files in between).
 *
 * A superuser's path (when not strict) goes through realpath() and may
 * point anywhere.
 */
#include "postgres.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"

#include "lmgen.h"

/* Symlinks followed in one path before giving up (the kernel's limit). */
#define MAX_SYMLINKS 40

/* Canonical form of a path (realpath), or NULL with errno set. */
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

/* The part of path after dir and a '/', or NULL when path is not under dir. */
static const char *
path_below(const char *path, const char *dir)
{
	size_t		dlen = strlen(dir);

	if (dlen == 1 && dir[0] == '/')
		return path[0] == '/' ? path + 1 : NULL;
	if (strncmp(path, dir, dlen) == 0 && (path[dlen] == '/' || path[dlen] == '\0'))
		return path[dlen] == '/' ? path + dlen + 1 : path + dlen;
	return NULL;
}

/* ERROR: the path leaves lmgen.model_dir (no resolved path is shown). */
static void
refuse_outside(const char *path)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("model path \"%s\" is outside lmgen.model_dir", path),
			 errhint("Put the model file in lmgen.model_dir, or ask a superuser to load it.")));
}

/* ERROR: the file is missing (path as given; errno set by the caller). */
static void
report_missing(const char *path)
{
	ereport(ERROR,
			(errcode_for_file_access(),
			 errmsg("could not find model file \"%s\": %m", path),
			 errdetail("Relative paths are looked up in lmgen.model_dir (\"%s\").", lmgen_model_dir)));
}

/* Canonical lmgen.model_dir; ERROR when it is unset or cannot be resolved. */
static char *
model_dir_canonical(void)
{
	char	   *real_dir;

	if (lmgen_model_dir == NULL || lmgen_model_dir[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lmgen.model_dir is not set"),
				 errhint("Set lmgen.model_dir to the directory that holds the model files.")));
	real_dir = canonical(lmgen_model_dir);
	if (real_dir == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open lmgen.model_dir \"%s\": %m", lmgen_model_dir),
				 errhint("Set lmgen.model_dir to the directory that holds the model files.")));
	return real_dir;
}

/*
 * Walk rel (a path relative to the canonical directory real_dir) one
 * component at a time without leaving real_dir; path is the user's text for
 * messages.  Returns the canonical file path; ERROR when outside, missing or
 * not a regular file.
 */
static char *
walk_inside(const char *path, const char *real_dir, const char *rel)
{
	StringInfoData resolved;	/* canonical prefix walked so far */
	StringInfoData pending;		/* components still to walk, '/'-separated */
	size_t		dir_len = strlen(real_dir);
	int			links = 0;
	struct stat st;
	bool		have_st = false;

	initStringInfo(&resolved);
	appendStringInfoString(&resolved, real_dir);
	initStringInfo(&pending);
	appendStringInfoString(&pending, rel);

	while (pending.len > 0)
	{
		char	   *slash = strchr(pending.data, '/');
		size_t		clen = slash ? (size_t) (slash - pending.data) : (size_t) pending.len;
		char	   *comp = pnstrdup(pending.data, clen);
		size_t		used = slash ? clen + 1 : clen;

		/* drop the component from pending */
		memmove(pending.data, pending.data + used, pending.len - used + 1);
		pending.len -= used;

		if (comp[0] == '\0' || strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0)
		{
			char	   *last = strrchr(resolved.data, '/');

			if ((size_t) resolved.len <= dir_len)
				refuse_outside(path);
			resolved.len = (int) (last - resolved.data);
			resolved.data[resolved.len] = '\0';
			/* the root directory stays "/" */
			if (resolved.len == 0)
				appendStringInfoChar(&resolved, '/');
			have_st = false;
			continue;
		}
		{
			int			prefix_len = resolved.len;

			if (resolved.data[resolved.len - 1] != '/')
				appendStringInfoChar(&resolved, '/');
			appendStringInfoString(&resolved, comp);
			if (lstat(resolved.data, &st) != 0)
				report_missing(path);
			have_st = true;
			if (S_ISLNK(st.st_mode))
			{
				char		target[PATH_MAX];
				ssize_t		n = readlink(resolved.data, target, sizeof(target) - 1);
				StringInfoData next;

				if (n < 0)
					report_missing(path);
				target[n] = '\0';
				if (++links > MAX_SYMLINKS)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("model path \"%s\" has too many levels of symbolic links", path)));
				/* back to the link's directory, then walk the target */
				resolved.len = prefix_len;
				resolved.data[prefix_len] = '\0';
				initStringInfo(&next);
				if (target[0] == '/')
				{
					const char *below;

					canonicalize_path(target);
					below = path_below(target, real_dir);
					if (below == NULL)
						refuse_outside(path);
					resolved.len = (int) dir_len;
					resolved.data[dir_len] = '\0';
					appendStringInfoString(&next, below);
				}
				else
					appendStringInfoString(&next, target);
				appendStringInfoChar(&next, '/');
				appendStringInfoString(&next, pending.data);
				resetStringInfo(&pending);
				appendStringInfoString(&pending, next.data);
				pfree(next.data);
				have_st = false;
			}
		}
		pfree(comp);
	}
	if (!have_st && stat(resolved.data, &st) != 0)
		report_missing(path);
	if (!S_ISREG(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model path \"%s\" is not a regular file", path)));
	pfree(pending.data);
	return resolved.data;
}

/* Resolve a user-given model path inside lmgen.model_dir (superusers may leave it unless strict). */
char *
ResolveModelPath(const char *path, bool strict)
{
	char	   *real_dir;
	char	   *result;

	if (path[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model path must not be empty")));
	real_dir = model_dir_canonical();

	if (superuser() && !strict)
	{
		char	   *joined = is_absolute_path(path) ? pstrdup(path)
			: psprintf("%s/%s", lmgen_model_dir, path);
		struct stat st;

		result = canonical(joined);
		if (result == NULL)
			report_missing(path);
		if (stat(result, &st) != 0 || !S_ISREG(st.st_mode))
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("model path \"%s\" is not a regular file", path)));
		pfree(joined);
	}
	else if (is_absolute_path(path))
	{
		/* the directory as set or in canonical form, then walk the rest */
		char	   *lex = pstrdup(path);
		char	   *dir_lex = pstrdup(lmgen_model_dir);
		const char *rel;

		canonicalize_path(lex);
		canonicalize_path(dir_lex);
		rel = path_below(lex, dir_lex);
		if (rel == NULL)
			rel = path_below(lex, real_dir);
		if (rel == NULL)
			refuse_outside(path);
		result = walk_inside(path, real_dir, rel);
		pfree(lex);
		pfree(dir_lex);
	}
	else
		result = walk_inside(path, real_dir, path);
	pfree(real_dir);
	return result;
}
