/*
 * worker_device.h — the background worker's compute device (worker_device.c):
 * probe, open, upload models, fall back to the CPU.
 */
#ifndef LMGEN_WORKER_DEVICE_H
#define LMGEN_WORKER_DEVICE_H

#include "device.h"

/* Probe (in a child) and open the device lmgen.device asks for; else the CPU, with a LOG or WARNING line. */
extern void WorkerDeviceStart(void);

/* The device's functions when one is in use, else NULL. */
extern const lm_device_ops *WorkerDeviceOps(void);

/* Upload a decoder model for a scheduler of these sizes; NULL (logged) when it stays on the CPU. */
extern lm_device_model *WorkerDeviceUpload(const char *name, const lm_model *m, int n_batch, int n_seq, int n_ctx);

/* Free a model's weights and pool on the device (NULL is allowed). */
extern void WorkerDeviceUnload(lm_device_model *dm);

/* True while the device in use works (false when there is none). */
extern bool WorkerDeviceHealthy(void);

/* Close the device after a fault (its models unloaded first): the CPU from now on. */
extern void WorkerDeviceClose(const char *why);

/* Publish the device's name, memory use and why the CPU runs, for lmgen.status(). */
extern void WorkerDevicePublish(void);

#endif							/* LMGEN_WORKER_DEVICE_H */
