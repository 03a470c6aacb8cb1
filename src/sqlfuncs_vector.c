/*
 * sqlfuncs_vector.c — lmgen.cosine_similarity(real[], real[]): semantic
 * search over embed() results in plain SQL, without pgvector.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"

PG_FUNCTION_INFO_V1(lmgen_cosine_similarity);

/* The floats of a one-dimensional real[] without NULLs; ERROR otherwise. */
static const float4 *
VectorValues(ArrayType *a, const char *which, int *n)
{
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s vector must have one dimension, not %d", which, ARR_NDIM(a))));
	if (ARR_HASNULL(a) && array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s vector must not contain nulls", which)));
	*n = ARR_NDIM(a) == 0 ? 0 : ARR_DIMS(a)[0];
	if (*n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s vector must have at least one element", which)));
	return (const float4 *) ARR_DATA_PTR(a);
}

/* lmgen.cosine_similarity(a real[], b real[]) RETURNS double precision */
Datum
lmgen_cosine_similarity(PG_FUNCTION_ARGS)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *b = PG_GETARG_ARRAYTYPE_P(1);
	const float4 *x,
			   *y;
	int			na,
				nb;
	double		ab = 0.0,
				aa = 0.0,
				bb = 0.0;

	x = VectorValues(a, "first", &na);
	y = VectorValues(b, "second", &nb);
	if (na != nb)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different vector dimensions %d and %d", na, nb),
				 errhint("Compare embeddings made by the same model.")));
	for (int i = 0; i < na; i++)
	{
		ab += (double) x[i] * y[i];
		aa += (double) x[i] * x[i];
		bb += (double) y[i] * y[i];
	}
	/* a zero vector has no direction: NaN, as pgvector gives */
	if (aa == 0.0 || bb == 0.0)
		PG_RETURN_FLOAT8(NAN);
	PG_RETURN_FLOAT8(ab / sqrt(aa * bb));
}
