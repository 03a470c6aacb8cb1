/*
 * batch.h — row batching: the LMBatch plan node (batch_plan.c inserts it
 * after planning, batch_exec.c runs it).
 */
#ifndef LMGEN_BATCH_H
#define LMGEN_BATCH_H

#include "postgres.h"

#include "nodes/extensible.h"

#include "lmgen.h"

#define LMGEN_BATCH_NODE_NAME "LMBatch"
/*
 * The node's settings, kept in CustomScan.custom_private as an integer List
 * (so that the plan can be copied and sent to parallel workers), in this
 * order.
 */
typedef enum BatchPrivate
{
	BATCH_PRIVATE_N_COLUMNS,	/* the child's columns, first in the scan tuple; the calls follow */
	BATCH_PRIVATE_BATCH_ROWS,	/* the most rows one batch takes (lmgen.batch_rows at plan time) */
	BATCH_PRIVATE_GROW,			/* 1: batches grow 1, 2, 4, ... (the output may be read only in part) */
	BATCH_PRIVATE_ROW_LIMIT,	/* rows a Limit above will take at most, or -1 */
	BATCH_PRIVATE_COUNT
} BatchPrivate;

/* The node's plan methods, registered by name for parallel workers (batch_exec.c). */
extern CustomScanMethods lmgen_batch_scan_methods;

#endif							/* LMGEN_BATCH_H */
