/*
 * sqlfuncs_registry.c — the model registry: lmgen.load_model,
 * lmgen.unload_model, lmgen.set_default_model, and the registration of the
 * models `make model` installs.
 *
 * The registry is the table lmgen.model_registry (one per database, kept by
 * pg_dump).  Writes go through SPI as the calling user, so the table's
 * grants (INSERT/UPDATE/DELETE to lmgen_admin) hold; the functions check
 * membership first to give a clear error.  A model is validated when it is
 * registered: the path must lie inside lmgen.model_dir (for superusers too)
 * and the file must be a valid GGUF file.  A statement trigger on the table
 * (lmgen_registry_changed) invalidates the backends' cached lookups
 * (model_cache.c) after every change, however it was made.  The file's
 * size and sha256 are recorded at registration, and on a Citus coordinator
 * every change is sent on to the workers (registry_cluster.c).
 */
#include "postgres.h"

#include <sys/stat.h>

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"

#include "lmgen.h"
#include "gguf.h"
#include "model_info.h"
#include "registry_cluster.h"

PG_FUNCTION_INFO_V1(lmgen_load_model);
PG_FUNCTION_INFO_V1(lmgen_unload_model);
PG_FUNCTION_INFO_V1(lmgen_set_default_model);
PG_FUNCTION_INFO_V1(lmgen_register_installed_models);
PG_FUNCTION_INFO_V1(lmgen_registry_changed);

/* ERROR unless the caller is a superuser or a member of lmgen_admin. */
void
CheckRegistryAdmin(void)
{
	Oid			admin = get_role_oid("lmgen_admin", true);

	if (superuser())
		return;
	if (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to change the lmgen model registry"),
			 errhint("Ask a superuser to run: GRANT lmgen_admin TO %s;",
					 quote_identifier(GetUserNameFromId(GetUserId(), false)))));
}

/* ERROR unless name is a valid model name. */
static void
CheckModelName(const char *name)
{
	size_t		len = strlen(name);
	bool		ok = len >= 1 && len <= 63 && isalnum((unsigned char) name[0]);

	for (size_t i = 0; ok && i < len; i++)
		ok = isalnum((unsigned char) name[i]) || name[i] == '_' || name[i] == '.' || name[i] == '-';
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid model name \"%s\"", name),
				 errdetail("Model names are 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit.")));
}

/* Run a registry statement with text parameters; returns SPI_processed. */
static uint64
RegistryExec(const char *sql, int nargs, const char **args)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	int			rc;

	Assert(nargs <= 4);
	for (int i = 0; i < nargs; i++)
		values[i] = CStringGetTextDatum(args[i]);
	rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);
	if (rc < 0)
		elog(ERROR, "lmgen registry statement failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* True when a model of that name is registered (inside an SPI connection). */
static bool
ModelRegistered(const char *name)
{
	return RegistryExec("SELECT 1 FROM lmgen.model_registry WHERE name = $1", 1, &name) > 0;
}

/* Validate the file and insert the registry row (inside an SPI connection). */
static void
RegisterModel(const char *name, const char *path, bool make_default)
{
	char	   *resolved = ResolveModelPath(path, true);
	char		err[512];
	lm_gguf    *g = lm_gguf_open(resolved, err, sizeof(err));
	lm_model_info info;
	Oid			types[9] = {TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID, INT8OID, BOOLOID, INT8OID, TEXTOID};
	Datum		values[9];
	char		nulls[10] = "         ";
	int64		file_size;
	char	   *sha256;
	int			rc;

	if (g == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid model file \"%s\": %s", path, err),
				 errhint("Check that the file is a complete GGUF model (version 2 or 3).")));
	lm_model_info_get(g, &info);
	if (!lm_gguf_unchanged(g, err, sizeof(err)))
	{
		lm_gguf_close(g);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model file \"%s\" changed on disk while it was read", path),
				 errdetail("%s.", err)));
	}
	lm_gguf_close(g);
	sha256 = ModelFileSha256(resolved, path, &file_size);

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(path);
	values[2] = CStringGetTextDatum(info.architecture);
	values[3] = Int64GetDatum((int64) info.n_params);
	values[4] = CStringGetTextDatum(info.quantization);
	values[5] = Int64GetDatum(info.context_length);
	values[6] = BoolGetDatum(make_default);
	values[7] = Int64GetDatum(file_size);
	values[8] = CStringGetTextDatum(sha256);
	if (info.architecture[0] == '\0')
		nulls[2] = 'n';
	if (info.quantization[0] == '\0')
		nulls[4] = 'n';
	if (info.context_length < 0)
		nulls[5] = 'n';
	rc = SPI_execute_with_args("INSERT INTO lmgen.model_registry "
							   "(name, path, architecture, parameters, quantization, context_length, is_default, "
							   "file_size, sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
							   9, types, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "lmgen registry insert failed: %s", SPI_result_code_string(rc));
}

/* lmgen.load_model(name text, path text) RETURNS void */
Datum
lmgen_load_model(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	bool		first;

	CheckRegistryAdmin();
	CheckModelName(name);
	SPI_connect();
	LockRegistryForCluster();
	if (ModelRegistered(name))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("model \"%s\" is already registered", name),
				 errhint("Call lmgen.unload_model('%s') first, or choose another name.", name)));
	first = RegistryExec("SELECT 1 FROM lmgen.model_registry WHERE is_default", 0, NULL) == 0;
	RegisterModel(name, path, first);
	PropagateRegistry();
	SPI_finish();
	PG_RETURN_VOID();
}

/* lmgen.unload_model(name text) RETURNS void */
Datum
lmgen_unload_model(PG_FUNCTION_ARGS)
{
	const char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	CheckRegistryAdmin();
	SPI_connect();
	LockRegistryForCluster();
	if (RegistryExec("DELETE FROM lmgen.model_registry WHERE name = $1", 1, &name) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" is not registered", name),
				 errhint("SELECT name FROM lmgen.models lists the registered models.")));
	PropagateRegistry();
	SPI_finish();
	PG_RETURN_VOID();
}

/* lmgen.set_default_model(name text) RETURNS void */
Datum
lmgen_set_default_model(PG_FUNCTION_ARGS)
{
	const char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	CheckRegistryAdmin();
	SPI_connect();
	LockRegistryForCluster();
	if (!ModelRegistered(name))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" is not registered", name),
				 errhint("Register it first with lmgen.load_model(name, path).")));
	/* clear first: the partial unique index allows one default at a time */
	RegistryExec("UPDATE lmgen.model_registry SET is_default = false WHERE is_default AND name <> $1", 1, &name);
	RegistryExec("UPDATE lmgen.model_registry SET is_default = true WHERE name = $1", 1, &name);
	PropagateRegistry();
	SPI_finish();
	PG_RETURN_VOID();
}

/* The models `make model` installs, by registry name and file. */
static const struct
{
	const char *name;
	const char *file;
	bool		is_default;
}			installed_models[] = {
	{"smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", true},
	{"gemma3", "gemma-3-270m-q4_k_m.gguf", false},
	{"minilm", "all-MiniLM-L6-v2.F32.gguf", false},
};

/* lmgen._register_installed_models(): register the models make model installed, if present. */
Datum
lmgen_register_installed_models(PG_FUNCTION_ARGS)
{
	SPI_connect();
	for (size_t i = 0; i < lengthof(installed_models); i++)
	{
		char	   *full;
		struct stat st;

		if (lmgen_model_dir == NULL || lmgen_model_dir[0] == '\0')
			break;
		full = psprintf("%s/%s", lmgen_model_dir, installed_models[i].file);
		if (stat(full, &st) != 0 || !S_ISREG(st.st_mode) || ModelRegistered(installed_models[i].name))
			continue;
		RegisterModel(installed_models[i].name, installed_models[i].file, installed_models[i].is_default);
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/* Trigger lmgen._registry_changed(): make every backend's cached registry lookups stale. */
Datum
lmgen_registry_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("lmgen._registry_changed() may only be called as a trigger")));
	/* sent to this backend at the next command, to others at commit */
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
