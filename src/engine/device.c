/*
 * device.c — loading a compute-device backend (device.h) from its own
 * shared object, so that lmgen.so itself never needs the CUDA runtime.
 */
#include <dlfcn.h>
#include <stdio.h>

#include "device.h"

/* dlopen path and take its device table; NULL with a message. */
const lm_device_ops *
lm_device_load(const char *path, char *err, size_t errlen)
{
	void	   *h;
	const lm_device_ops *ops;

	if (!path || !*path)
	{
		snprintf(err, errlen, "no device backend path given");
		return NULL;
	}
	/* RTLD_LOCAL: the CUDA runtime's symbols stay out of the process's namespace */
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h)
	{
		const char *why = dlerror();

		snprintf(err, errlen, "cannot load device backend \"%s\": %s", path, why ? why : "unknown error");
		return NULL;
	}
	ops = (const lm_device_ops *) dlsym(h, LM_DEVICE_OPS_SYMBOL);
	if (!ops)
	{
		snprintf(err, errlen, "device backend \"%s\" has no symbol %s", path, LM_DEVICE_OPS_SYMBOL);
		dlclose(h);
		return NULL;
	}
	if (ops->abi != LM_DEVICE_ABI)
	{
		snprintf(err, errlen, "device backend \"%s\" was built for interface version %d, this lmgen needs %d",
				 path, ops->abi, LM_DEVICE_ABI);
		dlclose(h);
		return NULL;
	}
	return ops;
}
