/*
 * request.h — the DSM segment of one request and the result message, shared
 * by the backend side (request.c) and the worker (worker.c).
 *
 * Segment layout: a RequestHeader, the serialized call (call.c) of
 * payload_len bytes, then a shm_mq of LMGEN_RESULT_QUEUE_SIZE bytes in
 * which the worker sends exactly one result message to the backend.
 *
 * Result message: an int32 status; when 0 the rest is the call's result
 * bytes; when 1 an int32 SQLSTATE and the error's message, detail and hint
 * (length-prefixed, -1 for none), re-raised as they were by the backend.
 */
#ifndef LMGEN_REQUEST_H
#define LMGEN_REQUEST_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/elog.h"

#define LMGEN_RESULT_QUEUE_SIZE ((Size) 64 * 1024)

/* Start of a request's segment. */
typedef struct RequestHeader
{
	uint64		payload_len;	/* bytes of the serialized call after the header */
} RequestHeader;

/* Offset of the payload and of the result queue in the segment. */
#define REQUEST_PAYLOAD_OFFSET MAXALIGN(sizeof(RequestHeader))
#define REQUEST_QUEUE_OFFSET(payload_len) (REQUEST_PAYLOAD_OFFSET + MAXALIGN(payload_len))

/* Start a success message in buf (then append the result bytes). */
extern void ResultBeginOk(StringInfo buf);

/* A failure message carrying an error's SQLSTATE, message, detail and hint. */
extern void ResultError(StringInfo buf, const ErrorData *edata);

/* A failure message with an internal-error message. */
extern void ResultErrorText(StringInfo buf, int sqlstate, const char *msg);

#endif							/* LMGEN_REQUEST_H */
