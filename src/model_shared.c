/*
 * model_shared.c — model weights in shared memory.
 *
 * With shared_preload_libraries = 'lmgen' (and lmgen.shared_weights on, the
 * default) a model file is read and validated once into a DSM segment that
 * the background worker and every backend map: one copy in RAM however many
 * connections use it, and a file replaced, truncated or rewritten on disk
 * cannot affect a copy that is loaded (the bytes are ours, not the page
 * cache's).  A small registry in lmgen's shared memory (SharedWeights, made
 * by the shmem hooks of shmem.c) maps a file's identity — canonical path,
 * device, inode, size and modification time, as model_cache.c keys models —
 * to the handle of its segment.
 *
 * Locking protocol.  SharedWeights.lock protects every field of every
 * entry.  It is held only to look at or change entries, never while
 * creating, reading, validating, attaching or unpinning a segment, and
 * never while waiting.  The condition variable `changed` is broadcast
 * whenever an entry leaves state LOADING.
 *
 * Who loads.  Any process that needs a model (the worker, or a backend in
 * local mode) looks its identity up under the lock:
 *   - READY: it takes the handle, releases the lock and attaches (a
 *     process maps a segment once, however many of its models — two
 *     registry names for one file — are open over it: LocalMapping); the
 *     entry's `processes` counts it until it detaches (a dsm detach
 *     callback, which also runs when the process exits);
 *   - LOADING: another process is loading it; it sleeps on `changed` and
 *     looks again (so two loaders racing for the same file are resolved
 *     by the lock: the first to find no entry claims one as LOADING, the
 *     second waits for it and then attaches);
 *   - FILE: a segment could not be made for this file; it maps the file;
 *   - no entry: it claims one (an EMPTY entry, else the oldest FILE or
 *     READY entry, which is evicted: see below) as LOADING with its pid,
 *     and becomes the loader.
 * The loader creates the segment (the size of the file), reads the file
 * into it in chunks (honouring cancellation between chunks), checks that
 * the file did not change while it was read, pins the segment, validates
 * the bytes by building its own engine objects over them and only then
 * publishes the entry as READY.  Until then no one else can see the
 * segment.  If anything fails (an unreadable file, a file that changed
 * while read, an invalid model, a cancel, an ERROR or FATAL exit of the
 * loader), an error-cleanup callback unpins and detaches the segment —
 * which frees it — and empties the entry, then broadcasts: a waiter
 * becomes the next loader and gets the same ERROR if the file is bad.
 * If the segment itself cannot be created (/dev/shm too small, too many
 * segments), the entry becomes FILE with the reason, the failure is logged
 * once, and every process maps the file as it would without preload.
 *
 * A file that changed identity.  Backends stat the file once per
 * statement (model_cache.c) and the worker at every call: a file with a
 * new identity is not found in the registry and is loaded into a new
 * segment.  When that load is published, every READY or FILE entry of the
 * same path with another identity is emptied and its segment unpinned:
 * the memory is freed as soon as the last process that still uses the old
 * copy detaches (each backend does when it next looks at the file; calls
 * in flight finish on the old copy, with its answers).
 *
 * When segments are freed.  A READY segment stays pinned while its entry
 * lives: until a newer copy of the same path is published, until the
 * entry is evicted to make room (the registry holds
 * LMGEN_SHARED_WEIGHTS_MODELS files; the oldest entry goes, mapped or
 * not: its processes keep their mapping, and a new user loads it again)
 * or until the server stops.
 *
 * Crashes and restarts.  The registry and the pins belong to the
 * postmaster's shared memory, not to any process: the worker's exit or
 * restart (terminate, FATAL) leaves the segments and the entries as they
 * were, and the restarted worker attaches to them.  A loader that exits
 * mid-load cleans its entry up in its exit callback.  A crash of any
 * process (kill -9) makes the postmaster reinitialise shared memory: every
 * segment is destroyed with the old registry, and models are loaded again
 * on first use.
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "lmgen.h"
#include "model_shared.h"

/* Bytes read from the file between two checks for cancellation. */
#define READ_CHUNK ((size_t) 8 << 20)

SharedWeights *shared_weights = NULL;

/*
 * This process's mappings of weight segments, one per segment however many
 * of its models (two registry names for one file) are open over it.
 */
typedef struct LocalMapping
{
	dsm_segment *seg;			/* mapped for the life of the process until released */
	int			refs;			/* models opened over it */
	struct LocalMapping *next;
} LocalMapping;

static LocalMapping *local_mappings = NULL;

/* What an error-cleanup callback must undo of a load in progress. */
typedef struct LoadState
{
	int			entry;			/* index of the claimed (LOADING) entry */
	dsm_segment *seg;			/* the new segment, when created */
	bool		pinned;			/* seg is pinned */
	int			fd;				/* the file, while open; -1 otherwise */
} LoadState;

/* Bytes of the registry in shared memory. */
Size
SharedWeightsShmemSize(void)
{
	return sizeof(SharedWeights);
}

/* Ask for the registry's lock (shmem_request_hook). */
void
SharedWeightsRequestLock(void)
{
	RequestNamedLWLockTranche("lmgen_weights", 1);
}

/* Create or attach the registry (shmem_startup_hook, AddinShmemInitLock held). */
void
SharedWeightsShmemInit(void)
{
	bool		found;

	shared_weights = ShmemInitStruct("lmgen_weights", SharedWeightsShmemSize(), &found);
	if (!found)
	{
		memset(shared_weights, 0, SharedWeightsShmemSize());
		shared_weights->lock = &(GetNamedLWLockTranche("lmgen_weights"))->lock;
		ConditionVariableInit(&shared_weights->changed);
	}
}

/* True when models should be opened from shared memory. */
bool
SharedWeightsEnabled(void)
{
	return shared_weights != NULL && lmgen_shared_weights;
}

/* True when two identities are the same file in the same state. */
static bool
SameFile(const ModelFileId *a, const ModelFileId *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
		a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* The entry of the file at path with identity id, or NULL (lock held). */
static SharedWeightsEntry *
FindEntry(const char *path, const ModelFileId *id)
{
	for (int i = 0; i < LMGEN_SHARED_WEIGHTS_MODELS; i++)
	{
		SharedWeightsEntry *e = &shared_weights->entries[i];

		if (e->state != SHARED_WEIGHTS_EMPTY && SameFile(&e->id, id) && strcmp(e->path, path) == 0)
			return e;
	}
	return NULL;
}

/*
 * An entry to load into (lock held exclusively): an empty one, else the
 * oldest one not being loaded, emptied (*unpin gets its segment's handle
 * when it had one, to unpin after the lock is released).  NULL when every
 * entry is being loaded.
 */
static SharedWeightsEntry *
ClaimEntry(dsm_handle *unpin)
{
	SharedWeightsEntry *oldest = NULL;

	*unpin = DSM_HANDLE_INVALID;
	for (int i = 0; i < LMGEN_SHARED_WEIGHTS_MODELS; i++)
	{
		SharedWeightsEntry *e = &shared_weights->entries[i];

		if (e->state == SHARED_WEIGHTS_EMPTY)
			return e;
		if (e->state != SHARED_WEIGHTS_LOADING && (oldest == NULL || e->loaded_at < oldest->loaded_at))
			oldest = e;
	}
	if (oldest && oldest->state == SHARED_WEIGHTS_READY)
		*unpin = oldest->handle;
	if (oldest)
		oldest->state = SHARED_WEIGHTS_EMPTY;
	return oldest;
}

/* dsm detach callback: one process fewer maps the segment whose handle is arg. */
static void
NoteDetach(dsm_segment *seg, Datum arg)
{
	dsm_handle	h = DatumGetUInt32(arg);

	LWLockAcquire(shared_weights->lock, LW_EXCLUSIVE);
	for (int i = 0; i < LMGEN_SHARED_WEIGHTS_MODELS; i++)
	{
		SharedWeightsEntry *e = &shared_weights->entries[i];

		if (e->state == SHARED_WEIGHTS_READY && e->handle == h && e->processes > 0)
			e->processes--;
	}
	LWLockRelease(shared_weights->lock);
}

/* Count this process among the segment's users and uncount it when it detaches. */
static void
NoteAttach(SharedWeightsEntry *e, dsm_segment *seg)
{
	on_dsm_detach(seg, NoteDetach, UInt32GetDatum(dsm_segment_handle(seg)));
	LWLockAcquire(shared_weights->lock, LW_EXCLUSIVE);
	if (e->state == SHARED_WEIGHTS_READY && e->handle == dsm_segment_handle(seg))
		e->processes++;
	LWLockRelease(shared_weights->lock);
}

/* Count one more model opened over a segment this process maps. */
static void
HoldMapping(dsm_segment *seg)
{
	LocalMapping *lm;

	for (lm = local_mappings; lm; lm = lm->next)
		if (lm->seg == seg)
		{
			lm->refs++;
			return;
		}
	lm = MemoryContextAlloc(TopMemoryContext, sizeof(LocalMapping));
	lm->seg = seg;
	lm->refs = 1;
	lm->next = local_mappings;
	local_mappings = lm;
}

/* A model opened over seg is closed: unmap the segment when it was the last one. */
void
SharedWeightsRelease(dsm_segment *seg)
{
	for (LocalMapping **link = &local_mappings; *link; link = &(*link)->next)
	{
		LocalMapping *lm = *link;

		if (lm->seg != seg)
			continue;
		if (--lm->refs == 0)
		{
			*link = lm->next;
			pfree(lm);
			dsm_detach(seg);
		}
		return;
	}
	elog(WARNING, "lmgen released a weights segment it does not hold");
}

/*
 * Create a segment of size bytes, mapped for the life of the process; NULL
 * with the reason in why when the system cannot give one (an ERROR of
 * dsm_create is caught: the caller maps the file instead).
 */
static dsm_segment *
CreateSegment(Size size, char *why, size_t whylen)
{
	ResourceOwner saved = CurrentResourceOwner;
	ResourceOwner owner = ResourceOwnerCreate(NULL, "lmgen shared weights");
	MemoryContext cxt = CurrentMemoryContext;
	dsm_segment *volatile seg = NULL;

	/* a segment that fails half-made is left to this owner, released below */
	CurrentResourceOwner = owner;
	PG_TRY();
	{
		seg = dsm_create(size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
		if (seg == NULL)
			strlcpy(why, "too many dynamic shared memory segments", whylen);
		else
			dsm_pin_mapping(seg);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		CurrentResourceOwner = saved;
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		ResourceOwnerRelease(owner, RESOURCE_RELEASE_BEFORE_LOCKS, false, false);
		ResourceOwnerDelete(owner);
		/* interrupted (cancel, shutdown): not the memory's fault, so no fallback */
		CHECK_FOR_INTERRUPTS();
		strlcpy(why, edata->message, whylen);
		FreeErrorData(edata);
		return NULL;
	}
	PG_END_TRY();
	CurrentResourceOwner = saved;
	ResourceOwnerDelete(owner);
	return seg;
}

/* ERROR: the file at path changed while it was read. */
static void
FileChanged(const char *name, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("model file of model \"%s\" changed on disk while it was read into shared memory", name),
			 errdetail("%s.", what),
			 errhint("Replace model files with a new file and a rename, not in place; the next call reads the file again.")));
}

/* Read the whole file at path (identity id) into buf; ERROR when it cannot be read or changes meanwhile. */
static void
ReadFile(LoadState *ls, const char *name, const char *path, const ModelFileId *id, char *buf)
{
	struct stat st;
	ModelFileId now;
	size_t		done = 0;

	ls->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (ls->fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open model file of model \"%s\": %m", name)));
	if (fstat(ls->fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat model file of model \"%s\": %m", name)));
	now.dev = st.st_dev;
	now.ino = st.st_ino;
	now.size = st.st_size;
	now.mtime = st.st_mtim;
	if (!SameFile(&now, id))
		FileChanged(name, "The file was replaced after it was looked up");
	while (done < (size_t) id->size)
	{
		ssize_t		n;

		CHECK_FOR_INTERRUPTS();
		pgstat_report_wait_start(PG_WAIT_EXTENSION);
		n = pread(ls->fd, buf + done, Min(READ_CHUNK, (size_t) id->size - done), (off_t) done);
		pgstat_report_wait_end();
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read model file of model \"%s\": %m", name)));
		if (n == 0)
			FileChanged(name, psprintf("The file ended at byte %zu; it had %lld bytes", done, (long long) id->size));
		done += (size_t) n;
	}
	if (fstat(ls->fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat model file of model \"%s\": %m", name)));
	now.size = st.st_size;
	now.mtime = st.st_mtim;
	if (!SameFile(&now, id))
		FileChanged(name, "Its size or modification time changed while it was read");
	close(ls->fd);
	ls->fd = -1;
}

/* Error cleanup of a load: free the segment, close the file, empty the entry and wake the waiters. */
static void
AbandonLoad(int code, Datum arg)
{
	LoadState  *ls = (LoadState *) DatumGetPointer(arg);
	SharedWeightsEntry *e = &shared_weights->entries[ls->entry];

	if (ls->fd >= 0)
		close(ls->fd);
	ls->fd = -1;
	if (ls->seg)
	{
		if (ls->pinned)
			dsm_unpin_segment(dsm_segment_handle(ls->seg));
		dsm_detach(ls->seg);
		ls->seg = NULL;
	}
	LWLockAcquire(shared_weights->lock, LW_EXCLUSIVE);
	if (e->state == SHARED_WEIGHTS_LOADING && e->loader_pid == MyProcPid)
		e->state = SHARED_WEIGHTS_EMPTY;
	LWLockRelease(shared_weights->lock);
	ConditionVariableBroadcast(&shared_weights->changed);
}

/*
 * Finish the claimed entry (LOADING by us) as state READY with the
 * segment, or FILE with the reason why, and retire every other entry of
 * the same path (older copies): their segments are unpinned.
 */
static void
PublishEntry(int entry, dsm_segment *seg, const char *why)
{
	SharedWeightsEntry *e = &shared_weights->entries[entry];
	dsm_handle	stale[LMGEN_SHARED_WEIGHTS_MODELS];
	int			n_stale = 0;

	LWLockAcquire(shared_weights->lock, LW_EXCLUSIVE);
	for (int i = 0; i < LMGEN_SHARED_WEIGHTS_MODELS; i++)
	{
		SharedWeightsEntry *old = &shared_weights->entries[i];

		if (old == e || strcmp(old->path, e->path) != 0 ||
			(old->state != SHARED_WEIGHTS_READY && old->state != SHARED_WEIGHTS_FILE))
			continue;
		if (old->state == SHARED_WEIGHTS_READY)
			stale[n_stale++] = old->handle;
		old->state = SHARED_WEIGHTS_EMPTY;
	}
	e->state = seg ? SHARED_WEIGHTS_READY : SHARED_WEIGHTS_FILE;
	e->handle = seg ? dsm_segment_handle(seg) : DSM_HANDLE_INVALID;
	e->processes = 0;
	e->loader_pid = 0;
	e->loaded_at = GetCurrentTimestamp();
	strlcpy(e->detail, why ? why : "", sizeof(e->detail));
	LWLockRelease(shared_weights->lock);
	ConditionVariableBroadcast(&shared_weights->changed);
	for (int i = 0; i < n_stale; i++)
		dsm_unpin_segment(stale[i]);
}

/*
 * Load the file into a new segment for the entry we claimed and open it;
 * the segment, or NULL when none could be made (entry FILE).  ERROR (entry
 * emptied) when the file cannot be read or opened.
 */
static dsm_segment *
LoadEntry(int entry, const char *name, const char *path, const ModelFileId *id,
		  SharedWeightsOpenFn open_fn, void *arg)
{
	LoadState	ls = {entry, NULL, false, -1};
	char		why[LMGEN_SHARED_WEIGHTS_DETAIL];
	dsm_segment *seg;

	PG_ENSURE_ERROR_CLEANUP(AbandonLoad, PointerGetDatum(&ls));
	{
		ls.seg = CreateSegment((Size) id->size, why, sizeof(why));
		if (ls.seg != NULL)
		{
			ReadFile(&ls, name, path, id, dsm_segment_address(ls.seg));
			dsm_pin_segment(ls.seg);
			ls.pinned = true;
			open_fn(dsm_segment_address(ls.seg), (uint64) id->size, arg);
		}
	}
	PG_END_ENSURE_ERROR_CLEANUP(AbandonLoad, PointerGetDatum(&ls));
	seg = ls.seg;
	if (seg == NULL)
		ereport(LOG,
				(errmsg("lmgen could not place model \"%s\" in shared memory, so processes map its file instead: %s",
						name, why),
				 errdetail("File \"%s\", %lld bytes.", path, (long long) id->size)));
	PublishEntry(entry, seg, seg ? NULL : why);
	if (seg)
	{
		NoteAttach(&shared_weights->entries[entry], seg);
		HoldMapping(seg);
	}
	return seg;
}

/*
 * Map a READY segment (or reuse this process's mapping of it) and open it;
 * NULL when it went away meanwhile (look again).
 */
static dsm_segment *
AttachEntry(int entry, dsm_handle h, uint64 size, SharedWeightsOpenFn open_fn, void *arg)
{
	dsm_segment *seg = dsm_find_mapping(h);

	if (seg == NULL)
	{
		seg = dsm_attach(h);
		if (seg == NULL)
			return NULL;
		dsm_pin_mapping(seg);
		NoteAttach(&shared_weights->entries[entry], seg);
	}
	HoldMapping(seg);
	PG_TRY();
	{
		open_fn(dsm_segment_address(seg), size, arg);
	}
	PG_CATCH();
	{
		SharedWeightsRelease(seg);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return seg;
}

/* Open a model file from shared memory (see model_shared.h); NULL: map the file. */
dsm_segment *
SharedWeightsOpen(const char *name, const char *path, const ModelFileId *id,
				  SharedWeightsOpenFn open_fn, void *arg)
{
	dsm_segment *seg;

	Assert(SharedWeightsEnabled());
	if (strlen(path) >= MAXPGPATH || id->size <= 0)
		return NULL;
	for (;;)
	{
		SharedWeightsEntry *e;
		dsm_handle	h;
		dsm_handle	evicted;
		int			entry;

		LWLockAcquire(shared_weights->lock, LW_EXCLUSIVE);
		e = FindEntry(path, id);
		if (e && e->state == SHARED_WEIGHTS_LOADING)
		{
			/* another process loads it: wait for it, then look again */
			LWLockRelease(shared_weights->lock);
			ConditionVariableSleep(&shared_weights->changed, PG_WAIT_EXTENSION);
			continue;
		}
		ConditionVariableCancelSleep();
		if (e && e->state == SHARED_WEIGHTS_FILE)
		{
			LWLockRelease(shared_weights->lock);
			return NULL;
		}
		if (e && e->state == SHARED_WEIGHTS_READY)
		{
			h = e->handle;
			entry = e - shared_weights->entries;
			LWLockRelease(shared_weights->lock);
			seg = AttachEntry(entry, h, (uint64) id->size, open_fn, arg);
			if (seg)
				return seg;
			continue;			/* unpinned and freed since: look again */
		}
		e = ClaimEntry(&evicted);
		if (e == NULL)
		{
			/* every entry is being loaded: map the file this time */
			LWLockRelease(shared_weights->lock);
			return NULL;
		}
		e->state = SHARED_WEIGHTS_LOADING;
		e->id = *id;
		strlcpy(e->path, path, sizeof(e->path));
		strlcpy(e->model, name, sizeof(e->model));
		e->loader_pid = MyProcPid;
		e->processes = 0;
		e->detail[0] = '\0';
		entry = e - shared_weights->entries;
		LWLockRelease(shared_weights->lock);
		if (evicted != DSM_HANDLE_INVALID)
			dsm_unpin_segment(evicted);
		return LoadEntry(entry, name, path, id, open_fn, arg);
	}
}
