// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl: device-mapper operations through libdevmapper.
 *
 * Devices are looked up by name, by /dev path or by MAJOR:MINOR, and then
 * addressed by name.  Operations that make or change device nodes (create,
 * resume, remove) carry a udev cookie: with udev, libdevmapper waits for
 * it; without udev (no /run/udev/control, or DM_DISABLE_UDEV set),
 * synchronisation is off and libdevmapper creates and removes the
 * /dev/mapper nodes itself.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <libdevmapper.h>

#include "cbwctl.h"

/* libdevmapper's log levels (not in its public header). */
#define CBW_DM_LOG_LEVEL_MASK	0x0f
#define CBW_DM_LOG_ERR		3

static char cbw_dm_error[256];

/* libdevmapper errors are shown (and kept for the caller's message). */
__printf(5, 6)
static void cbw_dm_log(int level, const char *file, int line,
		       int dm_errno_or_class, const char *f, ...)
{
	va_list ap;

	(void)file;
	(void)line;
	(void)dm_errno_or_class;
	if ((level & CBW_DM_LOG_LEVEL_MASK) > CBW_DM_LOG_ERR)
		return;
	va_start(ap, f);
	vsnprintf(cbw_dm_error, sizeof(cbw_dm_error), f, ap);
	va_end(ap);
	cbw_warn("%s", cbw_dm_error);
}

const char *cbw_dm_last_error(void)
{
	return cbw_dm_error;
}

void cbw_dm_init(void)
{
	dm_log_with_errno_init(cbw_dm_log);
	if (getenv("DM_DISABLE_UDEV") || access("/run/udev/control", F_OK))
		dm_udev_set_sync_support(0);
}

void cbw_dm_exit(void)
{
	dm_lib_release();
}

static struct dm_task *cbw_dm_task(int type, const char *name)
{
	struct dm_task *dmt = dm_task_create(type);

	if (!dmt)
		return NULL;
	if (name && !dm_task_set_name(dmt, name)) {
		dm_task_destroy(dmt);
		return NULL;
	}
	return dmt;
}

/* The errno of a failed task, never 0. */
static int cbw_dm_errno(struct dm_task *dmt)
{
	int err = dmt ? dm_task_get_errno(dmt) : 0;

	return err ? -err : -EIO;
}

/* Runs @dmt; returns 0 or a negative errno, destroys the task. */
static int cbw_dm_run(struct dm_task *dmt)
{
	int r = 0;

	if (!dmt)
		return -ENOMEM;
	if (!dm_task_run(dmt))
		r = cbw_dm_errno(dmt);
	dm_task_destroy(dmt);
	return r;
}

/*
 * The udev flags of a private device, those LVM gives its hidden layers:
 * udev still makes /dev/mapper/NAME, but no blkid probe, no /dev/disk
 * links, no LVM scan (69-dm-lvm.rules) and no other rules see it.  The
 * flags travel in the uevent's cookie, with or without udev sync.
 */
#define CBW_DM_PRIVATE_UDEV_FLAGS	(DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG | \
					 DM_UDEV_DISABLE_DISK_RULES_FLAG | \
					 DM_UDEV_DISABLE_OTHER_RULES_FLAG)

/*
 * Like cbw_dm_run, for tasks that create, change or remove nodes;
 * @udev_flags are DM_UDEV_* flags for the rules that see the uevent.
 */
static int cbw_dm_run_nodes(struct dm_task *dmt, uint16_t udev_flags)
{
	uint32_t cookie = 0;
	int r = 0;

	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_cookie(dmt, &cookie, udev_flags)) {
		dm_task_destroy(dmt);
		return -EIO;
	}
	if (!dm_task_run(dmt))
		r = cbw_dm_errno(dmt);
	dm_udev_wait(cookie);
	dm_task_destroy(dmt);
	return r;
}

int cbw_devno_of_path(const char *path, uint32_t *major, uint32_t *minor)
{
	struct stat st;

	if (stat(path, &st))
		return -errno;
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;
	*major = major(st.st_rdev);
	*minor = minor(st.st_rdev);
	return 0;
}

static void cbw_dm_fill(struct cbw_dev *dev, struct dm_task *dmt,
			const struct dm_info *info)
{
	snprintf(dev->name, sizeof(dev->name), "%s", dm_task_get_name(dmt));
	dev->major = info->major;
	dev->minor = info->minor;
	dev->suspended = info->suspended;
	dev->inactive_table = info->inactive_table;
	dev->read_only = info->read_only;
	dev->open_count = info->open_count;
}

/* A DM_DEVICE_INFO task for @spec; *@by_path: @spec is a path. */
static int cbw_dm_info_task(const char *spec, struct dm_task **dmtp,
			    bool *by_path)
{
	uint32_t major = 0, minor = 0;
	bool by_devno = true;
	struct dm_task *dmt;
	char tail;
	int r;

	*by_path = strchr(spec, '/');
	if (*by_path) {
		r = cbw_devno_of_path(spec, &major, &minor);
		if (r)
			return r;
	} else if (sscanf(spec, "%u:%u%c", &major, &minor, &tail) != 2) {
		if (!*spec || strlen(spec) >= CBW_DM_NAME_LEN)
			return -ENOENT;
		by_devno = false;
	}

	dmt = cbw_dm_task(DM_DEVICE_INFO, by_devno ? NULL : spec);
	if (!dmt)
		return -ENOMEM;
	if (by_devno && !dm_task_set_major_minor(dmt, major, minor, 0)) {
		dm_task_destroy(dmt);
		return -EINVAL;
	}
	*dmtp = dmt;
	return 0;
}

/*
 * Looks up @spec: a device-mapper name, a path to a block device
 * (/dev/mapper/NAME, /dev/dm-N, a symlink) or MAJOR:MINOR.  Returns 0,
 * -ENOENT (no such device), -ENXIO (a block device that is not a
 * device-mapper device), or another negative errno; prints nothing.
 */
int cbw_dm_lookup(const char *spec, struct cbw_dev *dev)
{
	struct dm_task *dmt;
	struct dm_info info;
	bool by_path;
	int r;

	memset(dev, 0, sizeof(*dev));
	dev->spec = spec;
	r = cbw_dm_info_task(spec, &dmt, &by_path);
	if (r)
		return r;
	if (!dm_task_run(dmt) || !dm_task_get_info(dmt, &info))
		r = cbw_dm_errno(dmt);
	else if (!info.exists)
		r = by_path ? -ENXIO : -ENOENT;
	else
		cbw_dm_fill(dev, dmt, &info);
	dm_task_destroy(dmt);
	return r;
}

/*
 * Blocks the signals that would stop or end cbwctl while it holds devices
 * suspended; the caller puts *@old back with sigprocmask(SIG_SETMASK).
 */
void cbw_block_stop_signals(sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGTSTP);
	sigprocmask(SIG_BLOCK, &set, old);
}

/* cbw_dm_lookup with a message that says what to do when it fails. */
int cbw_dm_resolve(const char *spec, struct cbw_dev *dev)
{
	int r = cbw_dm_lookup(spec, dev);

	if (r)
		cbw_errno_error(r);
	switch (r) {
	case 0:
		return 0;
	case -ENOENT:
		return cbw_error("Device '%s' not found (list devices with: dmsetup ls)",
				 spec);
	case -ENOTBLK:
		return cbw_error("'%s' is not a block device", spec);
	case -ENXIO:
		return cbw_error("'%s' is not a device-mapper device (cbw devices are listed by: dmsetup ls --target cbw)",
				 spec);
	default:
		return cbw_error("Cannot look up device '%s': %s", spec,
				 strerror(-r));
	}
}

/* cbw_dm_resolve, where "VG/LV" also stands for /dev/VG/LV. */
int cbw_dm_resolve_lv(const char *spec, struct cbw_dev *dev)
{
	char path[PATH_MAX];

	if (*spec != '/' && strchr(spec, '/')) {
		snprintf(path, sizeof(path), "/dev/%s", spec);
		if (!access(path, F_OK) && !cbw_dm_lookup(path, dev)) {
			dev->spec = spec;
			return 0;
		}
	}
	return cbw_dm_resolve(spec, dev);
}

/*
 * The live table of @name: the first target in @t, the number of targets
 * in t->nr_targets (0: no live table).  Free with cbw_target_free().
 */
int cbw_dm_table(const char *name, struct cbw_target *t)
{
	struct dm_task *dmt = cbw_dm_task(DM_DEVICE_TABLE, name);
	uint64_t start, length;
	char *type, *params;
	void *next = NULL;
	int r;

	memset(t, 0, sizeof(*t));
	if (!dmt)
		return -ENOMEM;
	if (!dm_task_run(dmt)) {
		r = cbw_dm_errno(dmt);
		dm_task_destroy(dmt);
		return r;
	}
	do {
		next = dm_get_next_target(dmt, next, &start, &length, &type,
					  &params);
		if (!type)
			break;
		if (!t->nr_targets++) {
			t->start = start;
			t->length = length;
			snprintf(t->type, sizeof(t->type), "%s", type);
			t->params = strdup(params ? params : "");
		}
	} while (next);
	dm_task_destroy(dmt);
	if (t->nr_targets && !t->params)
		return -ENOMEM;
	return 0;
}

void cbw_target_free(struct cbw_target *t)
{
	free(t->params);
	t->params = NULL;
}

static int cbw_dm_add_target(struct dm_task *dmt, const struct cbw_target *t)
{
	return dm_task_add_target(dmt, t->start, t->length, t->type,
				  t->params);
}

/* Loads @t as the inactive table of @name. */
int cbw_dm_reload(const char *name, const struct cbw_target *t)
{
	struct dm_task *dmt = cbw_dm_task(DM_DEVICE_RELOAD, name);

	if (dmt && !cbw_dm_add_target(dmt, t)) {
		dm_task_destroy(dmt);
		return -ENOMEM;
	}
	return cbw_dm_run(dmt);
}

/* Suspends @name; with @freeze, a filesystem on it is frozen first. */
int cbw_dm_suspend(const char *name, bool freeze)
{
	struct dm_task *dmt = cbw_dm_task(DM_DEVICE_SUSPEND, name);

	if (dmt && !freeze && !dm_task_skip_lockfs(dmt)) {
		dm_task_destroy(dmt);
		return -ENOMEM;
	}
	return cbw_dm_run(dmt);
}

/* Resumes @name, making an inactive table live. */
int cbw_dm_resume(const char *name)
{
	return cbw_dm_run_nodes(cbw_dm_task(DM_DEVICE_RESUME, name), 0);
}

/* Drops the inactive table of @name. */
int cbw_dm_clear(const char *name)
{
	return cbw_dm_run(cbw_dm_task(DM_DEVICE_CLEAR, name));
}

static bool cbw_dm_add_lines(struct dm_task *dmt, const struct cbw_dm_lines *l)
{
	unsigned int i;

	for (i = 0; i < l->nr; i++)
		if (!cbw_dm_add_target(dmt, &l->lines[i]))
			return false;
	return true;
}

/*
 * Creates device @name with the table @l and its node.  @uuid may be NULL;
 * @flags are CBW_DM_* flags (CBW_DM_PRIVATE: udev's disk rules and LVM's
 * leave the device alone).
 */
int cbw_dm_create_lines(const char *name, const char *uuid,
			const struct cbw_dm_lines *l, unsigned int flags)
{
	struct dm_task *dmt = cbw_dm_task(DM_DEVICE_CREATE, name);

	if (dmt && (!cbw_dm_add_lines(dmt, l) ||
		    (uuid && !dm_task_set_uuid(dmt, uuid)) ||
		    ((flags & CBW_DM_RO) && !dm_task_set_ro(dmt)))) {
		dm_task_destroy(dmt);
		return -ENOMEM;
	}
	return cbw_dm_run_nodes(dmt, (flags & CBW_DM_PRIVATE) ?
				CBW_DM_PRIVATE_UDEV_FLAGS : 0);
}

/* cbw_dm_create_lines with the one-line table @t. */
int cbw_dm_create(const char *name, const char *uuid,
		  const struct cbw_target *t, unsigned int flags)
{
	struct cbw_dm_lines l = { 1, (struct cbw_target *)t };

	return cbw_dm_create_lines(name, uuid, &l, flags);
}

/* Loads @l as the inactive table of @name. */
int cbw_dm_reload_lines(const char *name, const struct cbw_dm_lines *l)
{
	struct dm_task *dmt = cbw_dm_task(DM_DEVICE_RELOAD, name);

	if (dmt && !cbw_dm_add_lines(dmt, l)) {
		dm_task_destroy(dmt);
		return -ENOMEM;
	}
	return cbw_dm_run(dmt);
}

static int cbw_dm_lines_add(struct cbw_dm_lines *l, uint64_t start,
			    uint64_t length, const char *type,
			    const char *params)
{
	struct cbw_target *t, *lines;

	lines = realloc(l->lines, (l->nr + 1) * sizeof(*lines));
	if (!lines)
		return -ENOMEM;
	l->lines = lines;
	t = &lines[l->nr];
	memset(t, 0, sizeof(*t));
	t->start = start;
	t->length = length;
	snprintf(t->type, sizeof(t->type), "%s", type);
	t->params = strdup(params ? params : "");
	if (!t->params)
		return -ENOMEM;
	l->nr++;
	return 0;
}

/*
 * Every line of the live table of @name, or with @inactive of its inactive
 * table, in @l (l->nr 0: no such table).  Free with cbw_dm_lines_free().
 */
int cbw_dm_get_lines(const char *name, bool inactive, struct cbw_dm_lines *l)
{
	struct dm_task *dmt = cbw_dm_task(DM_DEVICE_TABLE, name);
	uint64_t start, length;
	char *type, *params;
	void *next = NULL;
	int r = 0;

	memset(l, 0, sizeof(*l));
	if (!dmt)
		return -ENOMEM;
	if ((inactive && !dm_task_query_inactive_table(dmt)) ||
	    !dm_task_run(dmt)) {
		r = cbw_dm_errno(dmt);
		dm_task_destroy(dmt);
		return r;
	}
	do {
		next = dm_get_next_target(dmt, next, &start, &length, &type,
					  &params);
		if (type)
			r = cbw_dm_lines_add(l, start, length, type, params);
	} while (next && !r);
	dm_task_destroy(dmt);
	if (r)
		cbw_dm_lines_free(l);
	return r;
}

void cbw_dm_lines_free(struct cbw_dm_lines *l)
{
	unsigned int i;

	for (i = 0; i < l->nr; i++)
		cbw_target_free(&l->lines[i]);
	free(l->lines);
	l->lines = NULL;
	l->nr = 0;
}

bool cbw_dm_lines_equal(const struct cbw_dm_lines *a,
			const struct cbw_dm_lines *b)
{
	unsigned int i;

	if (a->nr != b->nr)
		return false;
	for (i = 0; i < a->nr; i++)
		if (a->lines[i].start != b->lines[i].start ||
		    a->lines[i].length != b->lines[i].length ||
		    strcmp(a->lines[i].type, b->lines[i].type) ||
		    strcmp(a->lines[i].params, b->lines[i].params))
			return false;
	return true;
}

/* The sectors that the table @l maps. */
uint64_t cbw_dm_lines_length(const struct cbw_dm_lines *l)
{
	return l->nr ? l->lines[l->nr - 1].start + l->lines[l->nr - 1].length
		     : 0;
}

/* The DM UUID of @name ("" if it has none): 0 or a negative errno. */
int cbw_dm_uuid(const char *name, char uuid[CBW_DM_UUID_LEN])
{
	struct dm_task *dmt = cbw_dm_task(DM_DEVICE_INFO, name);
	const char *u;
	int r = 0;

	if (!dmt)
		return -ENOMEM;
	if (!dm_task_run(dmt)) {
		r = cbw_dm_errno(dmt);
	} else {
		u = dm_task_get_uuid(dmt);
		snprintf(uuid, CBW_DM_UUID_LEN, "%s", u ? u : "");
	}
	dm_task_destroy(dmt);
	return r;
}

/* Looks up the device with DM UUID @uuid, like cbw_dm_lookup. */
int cbw_dm_lookup_uuid(const char *uuid, struct cbw_dev *dev)
{
	struct dm_task *dmt = cbw_dm_task(DM_DEVICE_INFO, NULL);
	struct dm_info info;
	int r = 0;

	memset(dev, 0, sizeof(*dev));
	dev->spec = uuid;
	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_uuid(dmt, uuid) || !dm_task_run(dmt) ||
	    !dm_task_get_info(dmt, &info))
		r = cbw_dm_errno(dmt);
	else if (!info.exists)
		r = -ENOENT;
	else
		cbw_dm_fill(dev, dmt, &info);
	dm_task_destroy(dmt);
	return r;
}

/* Removes device @name and its node, retrying for a while if busy. */
int cbw_dm_remove(const char *name)
{
	struct dm_task *dmt = cbw_dm_task(DM_DEVICE_REMOVE, name);

	if (dmt && !dm_task_retry_remove(dmt)) {
		dm_task_destroy(dmt);
		return -ENOMEM;
	}
	return cbw_dm_run_nodes(dmt, 0);
}

/* Calls @fn for the name of every device-mapper device until it fails. */
int cbw_dm_for_each(int (*fn)(const char *name, void *ctx), void *ctx)
{
	struct dm_task *dmt = cbw_dm_task(DM_DEVICE_LIST, NULL);
	struct dm_names *names;
	unsigned int next = 0;
	int r = 0;

	if (!dmt)
		return -ENOMEM;
	if (!dm_task_run(dmt)) {
		r = cbw_dm_errno(dmt);
		goto out;
	}
	names = dm_task_get_names(dmt);
	if (!names || !names->dev)
		goto out;
	do {
		names = (struct dm_names *)((char *)names + next);
		r = fn(names->name, ctx);
		next = names->next;
	} while (!r && next);
out:
	dm_task_destroy(dmt);
	return r;
}

/*
 * The devices that the live table of dm device @major:@minor uses (with
 * @inactive, its inactive table): at most @max in @devs, as dev_t, their
 * number in *@nr.  0 or a negative errno.
 */
int cbw_dm_deps(uint32_t major, uint32_t minor, bool inactive, uint64_t *devs,
		unsigned int max, unsigned int *nr)
{
	struct dm_task *dmt = cbw_dm_task(DM_DEVICE_DEPS, NULL);
	struct dm_deps *deps;
	unsigned int i;
	int r = 0;

	*nr = 0;
	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_major_minor(dmt, major, minor, 0) ||
	    (inactive && !dm_task_query_inactive_table(dmt)) ||
	    !dm_task_run(dmt)) {
		r = cbw_dm_errno(dmt);
		goto out;
	}
	deps = dm_task_get_deps(dmt);
	for (i = 0; deps && i < deps->count && i < max; i++)
		devs[(*nr)++] = deps->device[i];
out:
	dm_task_destroy(dmt);
	return r;
}
