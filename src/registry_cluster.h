/*
 * registry_cluster.h — model file fingerprints and the registry of a Citus
 * cluster (registry_cluster.c), and the registry's permission check
 * (sqlfuncs_registry.c).
 */
#ifndef REGISTRY_CLUSTER_H
#define REGISTRY_CLUSTER_H

/* The size and hex sha256 of a model file (full_path; path names it in errors). */
extern char *ModelFileSha256(const char *full_path, const char *path, int64 *size);

/* On a Citus coordinator, serialize registry changes (inside SPI). */
extern void LockRegistryForCluster(void);

/* Send this coordinator's registry to every Citus worker; 0 without Citus (inside SPI). */
extern int	PropagateRegistry(void);

/* ERROR unless the caller is a superuser or a member of lmgen_admin. */
extern void CheckRegistryAdmin(void);

#endif							/* REGISTRY_CLUSTER_H */
