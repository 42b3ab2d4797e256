// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl: one snapshot point across several cbw devices, for "snapshot
 * start DEV1 DEV2 ...", "backup begin DEV1 DEV2 ..." and "backup DEV1
 * DEV2 ..." (QEMU's transaction of several backup jobs).
 *
 * Every device is checked, then every new table is loaded (nothing is
 * allocated while a device is suspended), then all devices are suspended,
 * each freezing a filesystem on it, then all are resumed: the guest I/O
 * of all of them is held from the first suspend to the last resume, so
 * the snapshots share one point in time.  A device stacked on another one
 * of the command (through its origin or COW, directly or through other dm
 * devices) is suspended first, since its suspend flushes into the lower
 * one, and resumed last.  When a step fails, every device gets its
 * previous table back.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "cbwctl.h"

/* dm devices under one device: deeper stacks are not followed. */
#define CBW_MULTI_MAX_DEPTH	16
#define CBW_MULTI_MAX_DEPS	64

const struct cbw_multi_rule cbw_multi_start_rules[] = {
	{ CBW_OPT_COW, "--cow", false },
	{ CBW_OPT_ACCESS, "--access", false },
	{ CBW_OPT_BITMAP, "--bitmap", true },
	{ 0, NULL, false },
};

const struct cbw_multi_rule cbw_multi_backup_rules[] = {
	{ CBW_OPT_COW, "--cow", false },
	{ CBW_OPT_ACCESS, "--access", false },
	{ CBW_OPT_BITMAP, "--bitmap", true },
	{ CBW_OPT_TARGET, "--target", false },
	{ CBW_OPT_BASE, "--base", false },
	{ 0, NULL, false },
};

/* ------------------------------------------------------------------ */
/* Options given once per device                                      */
/* ------------------------------------------------------------------ */

static const struct cbw_multi_rule *
cbw_multi_rule(const struct cbw_multi_opts *m, int opt)
{
	const struct cbw_multi_rule *rule;

	for (rule = m->rules; rule->opt; rule++)
		if (rule->opt == opt)
			return rule;
	return NULL;
}

/* A cbw_opt_handler: records the per-device options, passes the others. */
int cbw_multi_option(const struct cbw_cmd *cmd, int opt, const char *arg,
		     void *ctx)
{
	struct cbw_multi_opts *m = ctx;

	if (!cbw_multi_rule(m, opt))
		return m->handle(cmd, opt, arg, m->ctx);
	if (m->nr == CBW_MULTI_MAX_OPTS)
		return cbw_usage_error(cmd, "too many options");
	m->opt[m->nr] = opt;
	m->arg[m->nr++] = arg;
	return 0;
}

/*
 * A COW that cbwctl makes is for one device: its name and its cleanup
 * belong to that device's snapshot.
 */
int cbw_multi_check_cow(const struct cbw_cmd *cmd,
			const struct cbw_start_opts *o)
{
	char title[CBW_TITLE_LEN];

	if (!cbw_cow_wanted(o))
		return 0;
	return cbw_usage_error(cmd, "%s: %s makes the COW device of one device only: with several devices, give --cow COWDEV once per device",
			       cbw_cmd_title(cmd, title),
			       o->cow_file ? "--cow-file" : "--cow-thin");
}

/* The value of @rule for device @k of @nr_devs, or NULL for none. */
static int cbw_multi_value(const struct cbw_cmd *cmd,
			   const struct cbw_multi_opts *m,
			   const struct cbw_multi_rule *rule,
			   unsigned int nr_devs, unsigned int k,
			   const char **value)
{
	char title[CBW_TITLE_LEN];
	unsigned int i, n = 0;

	*value = NULL;
	for (i = 0; i < m->nr; i++) {
		if (m->opt[i] != rule->opt)
			continue;
		if (n == k || (n == 0 && rule->shared))
			*value = m->arg[i];
		n++;
	}
	if (!n || n == nr_devs || (n == 1 && rule->shared))
		return 0;
	return cbw_usage_error(cmd, "%s: %s is given %u time%s for %u devices: give it once per device, in the order of the devices%s",
			       cbw_cmd_title(cmd, title), rule->name, n,
			       n == 1 ? "" : "s", nr_devs,
			       rule->shared ? ", or once for all" : "");
}

/*
 * Passes the per-device options of device @k of @nr_devs to the handler,
 * with @ctx.  With one device, every one in the order given (the last one
 * wins, as for any option).
 */
int cbw_multi_apply(const struct cbw_cmd *cmd, const struct cbw_multi_opts *m,
		    unsigned int nr_devs, unsigned int k, void *ctx)
{
	const struct cbw_multi_rule *rule;
	const char *value;
	unsigned int i;
	int r;

	if (nr_devs == 1) {
		for (i = 0; i < m->nr; i++) {
			r = m->handle(cmd, m->opt[i], m->arg[i], ctx);
			if (r)
				return r;
		}
		return 0;
	}
	for (rule = m->rules; rule->opt; rule++) {
		r = cbw_multi_value(cmd, m, rule, nr_devs, k, &value);
		if (!r && value)
			r = m->handle(cmd, rule->opt, value, ctx);
		if (r)
			return r;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Checks across the devices                                           */
/* ------------------------------------------------------------------ */

static bool cbw_is_devno(const struct cbw_dev *dev, const char *devno)
{
	char buf[CBW_DEVNO_LEN];

	snprintf(buf, sizeof(buf), "%u:%u", dev->major, dev->minor);
	return !strcmp(buf, devno);
}

/* What no single device's checks can see: devices used twice. */
static int cbw_multi_check_pair(const struct cbw_multi_dev *a,
				const struct cbw_multi_dev *b)
{
	const char *xa = a->o->access, *xb = b->o->access;

	if (a->dev.major == b->dev.major && a->dev.minor == b->dev.minor)
		return cbw_error("Device '%s' is given twice (as '%s' and '%s')",
				 a->dev.name, a->dev.spec, b->dev.spec);
	if (!strcmp(a->plan.cow, b->plan.cow))
		return cbw_error("'%s' and '%s' cannot share the COW device %s: give each device its own --cow",
				 a->dev.spec, b->dev.spec, a->plan.cow);
	if (cbw_is_devno(&b->dev, a->plan.cow) ||
	    !strcmp(a->plan.cow, b->plan.origin))
		return cbw_error("The COW device of '%s' (%s) cannot be '%s' or its origin: the snapshot of '%s' would change it",
				 a->dev.spec, a->plan.cow, b->dev.spec,
				 b->dev.spec);
	if (xa && xb && !strcmp(xa, xb))
		return cbw_error("'%s' and '%s' cannot have the same access device '%s'",
				 a->dev.spec, b->dev.spec, xa);
	return 0;
}

/* Every device's own checks, then those across devices. */
static int cbw_multi_preflight(struct cbw_multi *m)
{
	unsigned int i, j;
	int r;

	for (i = 0; i < m->nr; i++) {
		r = cbw_snapshot_prepare(&m->devs[i].dev, m->devs[i].o, false,
					 &m->devs[i].plan);
		if (r) {
			cbw_warn("No snapshot was started: '%s' failed its checks, no device was changed",
				 m->devs[i].dev.spec);
			return r;
		}
	}
	for (i = 0; i < m->nr; i++)
		for (j = 0; j < m->nr; j++) {
			r = i == j ? 0 : cbw_multi_check_pair(&m->devs[i],
							      &m->devs[j]);
			if (r)
				return r;
		}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Stacking: the order of the suspends                                 */
/* ------------------------------------------------------------------ */

/*
 * Whether dm device @major:@minor uses @dev, directly or through other dm
 * devices; with @inactive, its inactive table counts too.
 */
static bool cbw_multi_uses(uint32_t major, uint32_t minor,
			   const struct cbw_dev *dev, bool inactive,
			   unsigned int depth)
{
	uint64_t deps[CBW_MULTI_MAX_DEPS];
	char spec[CBW_DEVNO_LEN];
	unsigned int nr, i, pass;
	struct cbw_dev below;

	if (depth > CBW_MULTI_MAX_DEPTH)
		return false;
	for (pass = 0; pass <= inactive; pass++) {
		if (cbw_dm_deps(major, minor, pass, deps, ARRAY_SIZE(deps), &nr))
			continue;
		for (i = 0; i < nr; i++) {
			if (major(deps[i]) == dev->major &&
			    minor(deps[i]) == dev->minor)
				return true;
			snprintf(spec, sizeof(spec), "%u:%u", major(deps[i]),
				 minor(deps[i]));
			if (!cbw_dm_lookup(spec, &below) &&
			    cbw_multi_uses(below.major, below.minor, dev, false,
					   depth + 1))
				return true;
		}
	}
	return false;
}

/*
 * The suspend order: a device that uses another one of the command comes
 * before it, as its suspend flushes I/O into it; otherwise the order given.
 */
static void cbw_multi_order(struct cbw_multi *m)
{
	bool above[CBW_MULTI_MAX][CBW_MULTI_MAX], placed[CBW_MULTI_MAX] = {};
	unsigned int i, j, k;

	for (i = 0; i < m->nr; i++)
		for (j = 0; j < m->nr; j++)
			above[i][j] = i != j &&
				cbw_multi_uses(m->devs[i].dev.major,
					       m->devs[i].dev.minor,
					       &m->devs[j].dev, true, 0);
	for (k = 0; k < m->nr; k++) {
		for (i = 0; i < m->nr; i++) {
			if (placed[i])
				continue;
			for (j = 0; j < m->nr; j++)
				if (!placed[j] && above[j][i])
					break;
			if (j == m->nr)
				break;
		}
		/* A cycle cannot be: dm refuses a table that uses itself. */
		for (; i == m->nr || placed[i]; i = (i + 1) % m->nr)
			;
		placed[i] = true;
		m->order[k] = i;
	}
}

/* ------------------------------------------------------------------ */
/* The transaction                                                     */
/* ------------------------------------------------------------------ */

static int cbw_multi_load(struct cbw_multi *m)
{
	struct cbw_multi_dev *d;
	unsigned int i;
	int r;

	for (i = 0; i < m->nr; i++) {
		d = &m->devs[i];
		r = cbw_snapshot_prepare(&d->dev, d->o, true, &d->plan);
		if (r)
			return r;
		d->loaded = true;
	}
	return 0;
}

/* Suspends in m->order, each freezing a filesystem on it. */
static int cbw_multi_suspend(struct cbw_multi *m)
{
	struct cbw_multi_dev *d;
	unsigned int i;
	int r;

	for (i = 0; i < m->nr; i++) {
		d = &m->devs[m->order[i]];
		r = cbw_dm_suspend(d->dev.name, true);
		if (r)
			return cbw_error("Cannot suspend '%s': %s", d->dev.spec,
					 strerror(-r));
		d->suspended = true;
	}
	return 0;
}

/* Resumes in the reverse of m->order: lower devices first. */
static int cbw_multi_resume(struct cbw_multi *m)
{
	struct cbw_multi_dev *d;
	unsigned int i;
	int r;

	for (i = m->nr; i--;) {
		d = &m->devs[m->order[i]];
		r = cbw_dm_resume(d->dev.name);
		if (r)
			return cbw_error("Cannot resume '%s': %s", d->dev.spec,
					 strerror(-r));
		d->suspended = false;
		d->resumed = true;
	}
	return 0;
}

static int cbw_multi_add_access(struct cbw_multi *m)
{
	struct cbw_multi_dev *d;
	unsigned int i;
	int r;

	for (i = 0; i < m->nr; i++) {
		d = &m->devs[i];
		r = cbw_snapshot_add_access(&d->dev, d->o);
		if (r)
			return r;
		d->access = !!d->o->access;
	}
	return 0;
}

/*
 * Every device its previous table again: inactive tables dropped, the
 * suspended devices resumed (lower first), the snapshots that started
 * ended, the access devices made removed.  False if something is left.
 */
static bool cbw_multi_rollback(struct cbw_multi *m)
{
	struct cbw_multi_dev *d;
	struct cbw_dev now;
	bool clean = true;
	unsigned int i;

	for (i = 0; i < m->nr; i++) {
		d = &m->devs[i];
		if (d->access && cbw_dm_remove(d->o->access)) {
			cbw_warn("Cannot remove access device '%s'",
				 d->o->access);
			clean = false;
		}
		d->access = false;
		if (d->loaded && !d->resumed)
			cbw_dm_clear(d->dev.name);
	}
	for (i = m->nr; i--;) {
		d = &m->devs[m->order[i]];
		if (!d->suspended)
			continue;
		/* A new table that went live but cannot resume: the old one. */
		if (cbw_dm_resume(d->dev.name))
			cbw_snapshot_undo(&d->dev);
		if (cbw_dm_lookup(d->dev.name, &now) || now.suspended) {
			cbw_warn("'%s' is still suspended: resume it with: dmsetup resume %s",
				 d->dev.spec, d->dev.name);
			clean = false;
			continue;
		}
		d->suspended = false;
	}
	for (i = 0; i < m->nr; i++) {
		d = &m->devs[i];
		if (d->loaded && !d->suspended)
			cbw_snapshot_undo(&d->dev);
		d->loaded = false;
		d->resumed = false;
	}
	return clean;
}

static void cbw_multi_names(const struct cbw_multi *m, bool ordered,
			    char *buf, size_t size)
{
	unsigned int i, k;
	size_t len = 0;

	buf[0] = '\0';
	for (i = 0; i < m->nr && len < size; i++) {
		k = ordered ? m->order[i] : i;
		len += snprintf(buf + len, size - len, "%s'%s'", i ? ", " : "",
				m->devs[k].dev.name);
	}
}

/* After a failed step: roll back, and say what every device has now. */
static int cbw_multi_failed(struct cbw_multi *m, int r)
{
	char names[CBW_MULTI_MAX * (CBW_DM_NAME_LEN + 4)];
	bool clean = cbw_multi_rollback(m);

	cbw_multi_names(m, false, names, sizeof(names));
	if (clean)
		cbw_warn("No snapshot was started: %s have their previous tables again",
			 names);
	else
		cbw_warn("No snapshot was started, but not all of %s have their previous tables again: see the messages above",
			 names);
	return r;
}

/*
 * Starts a snapshot of every device of @m at one point in time, with their
 * access devices: all of them, or none (0 or an exit status).
 */
int cbw_multi_begin(struct cbw_multi *m)
{
	unsigned int i;
	sigset_t old;
	int r;

	for (i = 0; i < m->nr; i++)
		m->order[i] = i;
	r = cbw_multi_preflight(m);
	if (r)
		return r;
	r = cbw_multi_load(m);
	if (r)
		return cbw_multi_failed(m, r);
	cbw_multi_order(m);
	cbw_block_stop_signals(&old);
	r = cbw_multi_suspend(m);
	if (!r)
		r = cbw_multi_resume(m);
	if (r)
		cbw_multi_failed(m, r);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (!r)
		r = cbw_multi_add_access(m);
	if (r && m->devs[0].loaded)
		return cbw_multi_failed(m, r);
	return r;
}

/* Ends what cbw_multi_begin started, when a later step failed. */
void cbw_multi_undo(struct cbw_multi *m)
{
	if (!cbw_multi_rollback(m))
		cbw_warn("Not every snapshot could be stopped again: see the messages above");
}

/* ------------------------------------------------------------------ */
/* snapshot start DEV..., snapshot stop DEV...                         */
/* ------------------------------------------------------------------ */

static void cbw_multi_report(const struct cbw_multi *m)
{
	char names[CBW_MULTI_MAX * (CBW_DM_NAME_LEN + 4)];
	char headline[CBW_DM_NAME_LEN + 32];
	unsigned int i;

	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_array_begin("suspend_order");
		for (i = 0; i < m->nr; i++)
			cbw_json_string(NULL, m->devs[m->order[i]].dev.name);
		cbw_json_array_end();
		cbw_json_array_begin("snapshots");
	} else {
		cbw_multi_names(m, true, names, sizeof(names));
		printf("Snapshots started at one point in time: suspended %s, resumed in the reverse order.\n",
		       names);
	}
	for (i = 0; i < m->nr; i++) {
		snprintf(headline, sizeof(headline), "Snapshot of '%s' started.",
			 m->devs[i].dev.name);
		cbw_show_snapshot(&m->devs[i].dev, headline);
	}
	if (cbw_opts.json) {
		cbw_json_array_end();
		cbw_json_object_end();
	}
}

/* "snapshot start DEV1 DEV2 ...": the options of @mo, once per device. */
int cbw_multi_snapshot_start(const struct cbw_cmd *cmd,
			     struct cbw_multi_opts *mo, int nr, char **specs)
{
	static struct cbw_start_opts opts[CBW_MULTI_MAX];
	static struct cbw_multi m;
	int i, r;

	if (nr > CBW_MULTI_MAX)
		return cbw_usage_error(cmd, "at most %d devices at once",
				       CBW_MULTI_MAX);
	m.nr = nr;
	for (i = 0; i < nr; i++) {
		opts[i] = *(const struct cbw_start_opts *)mo->ctx;
		r = cbw_multi_apply(cmd, mo, nr, i, &opts[i]);
		if (!r)
			r = cbw_multi_check_cow(cmd, &opts[i]);
		if (!r)
			r = cbw_check_start_opts(cmd, &opts[i]);
		if (r)
			return r;
	}
	for (i = 0; i < nr; i++) {
		m.devs[i].o = &opts[i];
		r = cbw_open_device(specs[i], &m.devs[i].dev);
		if (r)
			return r;
	}
	r = cbw_multi_begin(&m);
	if (r)
		return r;
	cbw_multi_report(&m);
	return CBW_EXIT_OK;
}

/* "snapshot stop DEV1 DEV2 ...": each one, even after a failure. */
int cbw_multi_snapshot_stop(int nr, char **specs, bool keep_access)
{
	int i, r, status = CBW_EXIT_OK;

	if (cbw_opts.json)
		cbw_json_array_begin(NULL);
	for (i = 0; i < nr; i++) {
		r = cbw_snapshot_stop_dev(specs[i], keep_access);
		if (r && status == CBW_EXIT_OK)
			status = r;
	}
	if (cbw_opts.json)
		cbw_json_array_end();
	return status;
}
