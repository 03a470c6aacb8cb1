/*
 * worker_device.c — the background worker's compute device: finding it,
 * opening it, putting models on it, and giving it up.
 *
 * The postmaster never loads the device backend (lmgen.device_library): a
 * CUDA context does not survive fork, and every backend is a fork of the
 * postmaster.  Only the worker does, in two stages.  First a probe in a
 * short-lived child of the worker: the child loads the backend, asks how
 * many devices there are, writes the answer into a pipe and _exit()s (no
 * Postgres exit hook runs in it).  A child that crashes, or does not answer
 * within WORKER_PROBE_TIMEOUT_S seconds (it is then killed), means "no
 * device", so a broken driver costs a LOG line, never the worker.  Then,
 * when a device was found and lmgen.device allows, the worker loads the
 * backend itself and opens device 0.
 *
 * lmgen.device = 'auto' uses the device when there is one and the CPU
 * otherwise, with one LOG line saying why; 'cpu' never probes; 'cuda'
 * without a usable device also runs on the CPU (the server and every call
 * keep working), but says so with a WARNING in the server log, and
 * lmgen.status() shows 'cpu' and the reason.
 *
 * Models: decoder models (llama, gemma3) are uploaded once, when the worker
 * first runs a call on them, with a KV pool of lmgen.gpu_memory_fraction of
 * the device memory then free; a model the device refuses (or a pool that
 * cannot be made) runs on the CPU, with a LOG line.  Encoders always run on
 * the CPU.  A forward pass that fails fails the requests of its step (the
 * scheduler does that); when the device then reports itself unhealthy
 * (a fault that poisons it), worker.c fails the calls still on it, drops
 * their schedulers, and this file closes the device: the worker goes on
 * on the CPU until it restarts.
 */
#include "postgres.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <unistd.h>

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "lmgen.h"
#include "shmem.h"
#include "worker_device.h"

/* Seconds the probe child may take before it counts as hung. */
#define WORKER_PROBE_TIMEOUT_S 10

/* The device in use (NULL ops: the CPU) and why there is none. */
static const lm_device_ops *dev_ops = NULL;
static lm_device *dev = NULL;
static char dev_name[128] = "cpu";
static char dev_reason[256] = "";

/* The backend's path: '$libdir/...' resolved like Postgres does, and .so added when missing. */
static char *
DeviceLibraryPath(void)
{
	const char *s = lmgen_device_library ? lmgen_device_library : "";
	char	   *path;

	if (strncmp(s, "$libdir", 7) == 0 && (s[7] == '/' || s[7] == '\0'))
		path = psprintf("%s%s", pkglib_path, s + 7);
	else
		path = pstrdup(s);
	if (strchr(last_dir_separator(path) ? last_dir_separator(path) : path, '.') == NULL)
		path = psprintf("%s%s", path, DLSUFFIX);
	return path;
}

/*
 * Child side of the probe: load the backend, count the devices, write
 * "N message" into fd and _exit.  No Postgres code runs here.
 */
static void
ProbeChild(const char *path, int fd)
{
	char		err[400] = "";
	char		out[512];
	const lm_device_ops *ops;
	int			n = -1;
	sigset_t	all;
	int			len;

	/* default signal handling: the worker's handlers are Postgres code */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
#ifdef __linux__
	/* a hung probe must not outlive a worker that exits meanwhile */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(1);
#endif
	ops = lm_device_load(path, err, sizeof(err));
	if (ops)
		n = ops->count(err, sizeof(err));
	len = snprintf(out, sizeof(out), "%d %s", n, err);
	if (len > 0 && write(fd, out, Min((size_t) len, sizeof(out) - 1)) < 0)
		_exit(1);
	_exit(0);
}

/* Devices the backend at path sees, probed in a child; -1 with the reason in why. */
static int
ProbeDevices(const char *path, char *why, size_t whylen)
{
	int			fds[2];
	pid_t		pid;
	char		buf[512];
	size_t		got = 0;
	int			status = 0,
				n = -1;
	bool		timed_out = false;
	TimestampTz deadline = GetCurrentTimestamp() + (TimestampTz) WORKER_PROBE_TIMEOUT_S * 1000000;

	if (pipe(fds) != 0)
	{
		snprintf(why, whylen, "could not create a pipe for the device probe: %m");
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
	{
		snprintf(why, whylen, "could not fork the device probe: %m");
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0)
	{
		close(fds[0]);
		ProbeChild(path, fds[1]);
	}
	close(fds[1]);

	/* read until end of file, the deadline, or a shutdown request */
	for (;;)
	{
		struct pollfd pfd = {fds[0], POLLIN, 0};
		ssize_t		r;
		int			rc = poll(&pfd, 1, 100);

		CHECK_FOR_INTERRUPTS();
		if (rc == 0 || (rc < 0 && errno == EINTR))
		{
			if (GetCurrentTimestamp() >= deadline)
			{
				timed_out = true;
				break;
			}
			continue;
		}
		r = read(fds[0], buf + got, sizeof(buf) - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += r;
		if (got >= sizeof(buf) - 1)
			break;
	}
	buf[got] = '\0';
	close(fds[0]);
	if (timed_out)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (timed_out)
		snprintf(why, whylen, "the device probe did not answer within %d seconds", WORKER_PROBE_TIMEOUT_S);
	else if (WIFSIGNALED(status))
		snprintf(why, whylen, "the device probe crashed (signal %d)", WTERMSIG(status));
	else if (got == 0 || sscanf(buf, "%d", &n) != 1)
		snprintf(why, whylen, "the device probe gave no answer");
	else if (n < 0)
		snprintf(why, whylen, "%s", strchr(buf, ' ') ? strchr(buf, ' ') + 1 : "the device runtime failed");
	else if (n == 0)
		snprintf(why, whylen, "no device found by \"%s\"", path);
	return timed_out || WIFSIGNALED(status) ? -1 : n;
}

/* Choose the device at worker start: probe in a child, then open device 0 (see the file header). */
void
WorkerDeviceStart(void)
{
	char	   *path;
	char		why[400] = "";
	int			n;
	const lm_device_ops *ops;
	lm_device_info info;

	strlcpy(dev_name, "cpu", sizeof(dev_name));
	dev_reason[0] = '\0';
	if (lmgen_device == LMGEN_DEVICE_CPU)
	{
		strlcpy(dev_reason, "lmgen.device is 'cpu'", sizeof(dev_reason));
		WorkerDevicePublish();
		return;
	}
	path = DeviceLibraryPath();
	n = ProbeDevices(path, why, sizeof(why));
	if (n > 0)
	{
		ops = lm_device_load(path, why, sizeof(why));
		if (ops && (dev = ops->open(0, why, sizeof(why))) != NULL)
		{
			dev_ops = ops;
			if (ops->info(dev, &info, why, sizeof(why)))
				strlcpy(dev_name, info.name, sizeof(dev_name));
			else
				strlcpy(dev_name, ops->name, sizeof(dev_name));
			ereport(LOG,
					(errmsg("lmgen worker: running decoder models on device \"%s\" (%s)", dev_name, path)));
			WorkerDevicePublish();
			return;
		}
	}
	snprintf(dev_reason, sizeof(dev_reason), "%s", why[0] ? why : "no device");
	ereport(lmgen_device == LMGEN_DEVICE_CUDA ? WARNING : LOG,
			(errmsg("lmgen worker: running on the CPU: %s", dev_reason),
			 lmgen_device == LMGEN_DEVICE_CUDA ?
			 errhint("lmgen.device is 'cuda' but no device can be used; check lmgen.device_library and the driver.") : 0));
	WorkerDevicePublish();
}

/* The device's functions when one is in use, else NULL. */
const lm_device_ops *
WorkerDeviceOps(void)
{
	return dev ? dev_ops : NULL;
}

/*
 * Upload model m for a scheduler of n_batch tokens over n_seq sequences of
 * n_ctx positions; NULL (after a LOG line) when the device refuses it, so
 * the model runs on the CPU.
 */
lm_device_model *
WorkerDeviceUpload(const char *name, const lm_model *m, int n_batch, int n_seq, int n_ctx)
{
	char		err[400] = "";
	lm_device_model *dm;

	if (!dev || m->cfg.encoder)
		return NULL;
	dm = dev_ops->upload(dev, m, lmgen_gpu_memory_fraction, 0, n_batch, n_seq, n_ctx, err, sizeof(err));
	if (!dm)
		ereport(LOG,
				(errmsg("lmgen worker: model \"%s\" runs on the CPU: the device refused it: %s", name, err)));
	WorkerDevicePublish();
	return dm;
}

/* Free a model's weights and pool on the device (NULL is allowed). */
void
WorkerDeviceUnload(lm_device_model *dm)
{
	if (dm && dev)
		dev_ops->unload(dm);
	WorkerDevicePublish();
}

/* True while the device works (false when none is open). */
bool
WorkerDeviceHealthy(void)
{
	return dev && dev_ops->healthy(dev);
}

/* Close the device after a fault (its models must be unloaded first); the worker runs on the CPU from now on. */
void
WorkerDeviceClose(const char *why)
{
	if (!dev)
		return;
	ereport(LOG,
			(errmsg("lmgen worker: device \"%s\" failed and is closed; running on the CPU from now on: %s",
					dev_name, why)));
	dev_ops->close(dev);
	dev = NULL;
	dev_ops = NULL;
	strlcpy(dev_name, "cpu", sizeof(dev_name));
	snprintf(dev_reason, sizeof(dev_reason), "the device failed: %s", why);
	WorkerDevicePublish();
}

/* Copy the device's name, memory and the reason for the CPU into shared memory for lmgen.status() (called when they change: start, upload, unload, close). */
void
WorkerDevicePublish(void)
{
	lm_device_info info;
	char		err[256];
	bool		have = dev && dev_ops->info(dev, &info, err, sizeof(err));

	LWLockAcquire(lmgen_shared->lock, LW_EXCLUSIVE);
	strlcpy(lmgen_shared->device_name, dev_name, sizeof(lmgen_shared->device_name));
	strlcpy(lmgen_shared->device_reason, dev ? "" : dev_reason, sizeof(lmgen_shared->device_reason));
	lmgen_shared->device_mem_used = have ? (int64) info.mem_used_by_us : 0;
	lmgen_shared->device_mem_total = have ? (int64) info.mem_total : 0;
	LWLockRelease(lmgen_shared->lock);
}
