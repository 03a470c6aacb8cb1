/*
 * registry_cluster.c — one model registry for a Citus cluster, and the
 * fingerprint (size, sha256) of a model file that makes it safe.
 *
 * Each node keeps its own lmgen.model_registry (an extension table: Citus
 * does not distribute it), and a query pushed down to a worker resolves
 * model names there.  So on a Citus coordinator with workers, every change
 * made through lmgen.load_model, lmgen.unload_model and
 * lmgen.set_default_model ends by sending the coordinator's whole registry
 * (as jsonb) to every worker with Citus's run_command_on_workers, where
 * lmgen._apply_registry checks each model's file — present, the same size
 * and sha256 as recorded on the coordinator at registration — and then
 * replaces its registry with those rows.  A worker whose file is missing or
 * differs fails the call with an ERROR naming the node and the file, and
 * the coordinator's change rolls back.  Changes on the coordinator take
 * a self-conflicting lock on its registry first, so they reach the workers
 * in the order they commit.  The workers' changes commit on
 * their own (run_command_on_workers is not part of the coordinator's
 * transaction), so a worker may keep a newer registry after such an error;
 * lmgen.sync_models() sends the coordinator's registry again (also the way
 * to equip a node added later).  Without Citus nothing of this runs.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "lmgen.h"
#include "registry_cluster.h"

PG_FUNCTION_INFO_V1(lmgen_apply_registry);
PG_FUNCTION_INFO_V1(lmgen_sync_models);

/* Bytes read at a time while hashing a model file. */
#define HASH_CHUNK (1024 * 1024)

/* The size and lowercase hex sha256 of the file at full_path (hex palloc'd); ERROR naming path when unreadable. */
char *
ModelFileSha256(const char *full_path, const char *path, int64 *size)
{
	pg_cryptohash_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *hex = palloc(PG_SHA256_DIGEST_LENGTH * 2 + 1);
	char	   *buf = palloc(HASH_CHUNK);
	int			fd = open(full_path, O_RDONLY | PG_BINARY);
	int64		total = 0;
	ssize_t		got;

	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open model file \"%s\": %m", path)));
	ctx = pg_cryptohash_create(PG_SHA256);
	if (ctx == NULL || pg_cryptohash_init(ctx) < 0)
	{
		close(fd);
		elog(ERROR, "could not start a sha256 of model file \"%s\"", path);
	}
	while ((got = read(fd, buf, HASH_CHUNK)) > 0)
	{
		CHECK_FOR_INTERRUPTS();
		if (pg_cryptohash_update(ctx, (uint8 *) buf, got) < 0)
			break;
		total += got;
	}
	close(fd);
	if (got != 0 || pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
	{
		pg_cryptohash_free(ctx);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read model file \"%s\"", path)));
	}
	pg_cryptohash_free(ctx);
	hex_encode((const char *) digest, sizeof(digest), hex);
	hex[PG_SHA256_DIGEST_LENGTH * 2] = '\0';
	pfree(buf);
	*size = total;
	return hex;
}

/* True on a Citus coordinator that has worker nodes (inside an SPI connection). */
static bool
CitusCoordinatorWithWorkers(void)
{
	int			rc;

	if (!OidIsValid(get_extension_oid("citus", true)))
		return false;
	rc = SPI_execute("SELECT pg_catalog.citus_is_coordinator() AND EXISTS ("
					 " SELECT 1 FROM pg_catalog.pg_dist_node"
					 " WHERE noderole = 'primary' AND isactive AND groupid <> 0)",
					 true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the Citus node list: %s", SPI_result_code_string(rc));
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &(bool){false}));
}

/*
 * On a Citus coordinator with workers, take the registry's lock that
 * registry changes take in turn (inside an SPI connection): each sends the
 * registry after the one before it committed, so the workers end with the
 * registry the coordinator ends with.
 */
void
LockRegistryForCluster(void)
{
	if (!CitusCoordinatorWithWorkers())
		return;
	if (SPI_execute("LOCK TABLE lmgen.model_registry IN SHARE ROW EXCLUSIVE MODE", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not lock the lmgen model registry");
}

/*
 * On a Citus coordinator with workers, make every worker's registry equal to
 * this node's (inside an SPI connection); ERROR naming the first node that
 * refused.  Returns the number of workers updated (0 without Citus).
 */
int
PropagateRegistry(void)
{
	char	   *rows;
	char	   *command;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	int			rc;
	bool		isnull;

	if (!CitusCoordinatorWithWorkers())
		return 0;
	LockRegistryForCluster();
	/* not read-only: the rows this statement just wrote must be seen */
	rc = SPI_execute("SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.name), '[]')::text"
					 " FROM lmgen.model_registry r", false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the lmgen model registry: %s", SPI_result_code_string(rc));
	rows = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	command = psprintf("SELECT lmgen._apply_registry(%s::jsonb)", quote_literal_cstr(rows));
	values[0] = CStringGetTextDatum(command);
	rc = SPI_execute_with_args("SELECT nodename, nodeport, success, result"
							   " FROM pg_catalog.run_command_on_workers($1) ORDER BY nodename, nodeport",
							   1, types, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not send the lmgen model registry to the workers: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		if (!DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)) || isnull)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("lmgen model registry not applied on node %s:%s",
							SPI_getvalue(tup, desc, 1), SPI_getvalue(tup, desc, 2)),
					 errdetail("%s", SPI_getvalue(tup, desc, 4)),
					 errhint("Install the same model files under lmgen.model_dir on every node, "
							 "then retry or call lmgen.sync_models().")));
	}
	return (int) SPI_processed;
}

/*
 * ERROR unless the model file of a registry row (name, path, size, sha256
 * as the coordinator recorded them) is here and the same; rehashes only
 * when this node's own registry does not already record that fingerprint
 * for the path (inside an SPI connection).
 */
static void
CheckModelFileHere(const char *name, const char *path, int64 size, const char *sha256)
{
	char	   *full = ResolveModelPath(path, true);
	struct stat st;
	Oid			types[3] = {TEXTOID, INT8OID, TEXTOID};
	Datum		values[3] = {CStringGetTextDatum(path), Int64GetDatum(size), CStringGetTextDatum(sha256)};
	int64		here_size;
	char	   *here_sha;
	int			rc;

	if (stat(full, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("model file \"%s\" of model \"%s\" is missing on this node: %m", path, name)));
	if ((int64) st.st_size != size)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model file \"%s\" of model \"%s\" differs on this node: %lld bytes, the coordinator's %lld",
						path, name, (long long) st.st_size, (long long) size)));
	rc = SPI_execute_with_args("SELECT 1 FROM lmgen.model_registry"
							   " WHERE path = $1 AND file_size = $2 AND sha256 = $3",
							   3, types, values, NULL, true, 1);
	if (rc == SPI_OK_SELECT && SPI_processed > 0)
		return;
	here_sha = ModelFileSha256(full, path, &here_size);
	if (here_size != size || strcmp(here_sha, sha256) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model file \"%s\" of model \"%s\" differs on this node: sha256 %s, the coordinator's %s",
						path, name, here_sha, sha256)));
}

/* lmgen._apply_registry(rows jsonb) RETURNS integer: replace this node's registry with the coordinator's rows. */
Datum
lmgen_apply_registry(PG_FUNCTION_ARGS)
{
	Jsonb	   *rows = PG_GETARG_JSONB_P(0);
	Oid			types[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(rows)};
	int			rc;
	uint64		n;

	CheckRegistryAdmin();
	SPI_connect();
	rc = SPI_execute_with_args("SELECT name, path, file_size, sha256"
							   " FROM jsonb_populate_recordset(NULL::lmgen.model_registry, $1)",
							   1, types, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the registry rows: %s", SPI_result_code_string(rc));
	n = SPI_processed;
	{
		SPITupleTable *tab = SPI_tuptable;

		for (uint64 i = 0; i < n; i++)
		{
			bool		size_null;
			char	   *name = SPI_getvalue(tab->vals[i], tab->tupdesc, 1);
			char	   *path = SPI_getvalue(tab->vals[i], tab->tupdesc, 2);
			int64		size = DatumGetInt64(SPI_getbinval(tab->vals[i], tab->tupdesc, 3, &size_null));
			char	   *sha = SPI_getvalue(tab->vals[i], tab->tupdesc, 4);

			if (name == NULL || path == NULL || size_null || sha == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("registry row %llu has no name, path, size or sha256", (unsigned long long) i + 1),
						 errhint("Register the model again on the coordinator with lmgen.load_model.")));
			CheckModelFileHere(name, path, size, sha);
		}
	}
	rc = SPI_execute("DELETE FROM lmgen.model_registry", false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "could not clear the lmgen model registry: %s", SPI_result_code_string(rc));
	rc = SPI_execute_with_args("INSERT INTO lmgen.model_registry"
							   " SELECT * FROM jsonb_populate_recordset(NULL::lmgen.model_registry, $1)",
							   1, types, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not write the lmgen model registry: %s", SPI_result_code_string(rc));
	SPI_finish();
	PG_RETURN_INT32((int32) n);
}

/* lmgen.sync_models() RETURNS integer: send this coordinator's registry to every Citus worker. */
Datum
lmgen_sync_models(PG_FUNCTION_ARGS)
{
	int			n;

	CheckRegistryAdmin();
	SPI_connect();
	n = PropagateRegistry();
	SPI_finish();
	PG_RETURN_INT32(n);
}
