// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl attach, detach: put a cbw layer under a live device-mapper device
 * (an LVM logical volume, a dm-crypt or multipath device, ...) and take it
 * away again, while its file system stays mounted.
 *
 * attach creates a hidden device with the device's own table and DM UUID
 * "CBW-hidden-" and the device's DM UUID (or name), then replaces the
 * device's table with a tracking-only cbw table over the hidden device;
 * detach puts the hidden device's table back and removes it.  Each run
 * looks at what is there and does only the steps that are missing, so
 * that a run that died half-way is completed by running attach (or undone
 * by running detach) again.  The device is suspended only between the
 * load of its new table and its resume.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbwctl.h"

#define CBW_HIDDEN_UUID_PREFIX	CBW_DM_UUID_PREFIX "hidden-"
#define CBW_HIDDEN_NAME_PREFIX	"cbw-hidden-"

/* What attach, detach and --check find. */
struct cbw_attach_state {
	struct cbw_dev dev;
	char uuid[CBW_DM_UUID_LEN];		/* of dev, "" for none */
	struct cbw_dm_lines live;		/* dev's live table */
	struct cbw_dm_lines inactive;		/* dev's inactive table */
	char hidden_uuid[CBW_DM_UUID_LEN];
	char hidden_name[CBW_DM_NAME_LEN];	/* for creating it */
	bool have_hidden;
	struct cbw_dev hidden;
	struct cbw_dm_lines hidden_table;
	bool attached;			/* live: cbw over the hidden device */
	bool is_hidden;			/* dev is itself a hidden device */
};

struct cbw_attach_opts {
	uint64_t chunk;
	bool check;
	unsigned int nr_bitmaps;
	struct cbw_tab_bitmap bitmaps[DM_CBW_MAX_BITMAPS];
};

/*
 * A test hook: CBWCTL_TEST_DIE_AFTER=STEP makes cbwctl die right after
 * STEP, as a crash would, so that tests can check that a second run
 * completes or undoes what the first one left.
 */
static void cbw_attach_step_done(const char *step)
{
	const char *die = getenv("CBWCTL_TEST_DIE_AFTER");

	if (die && !strcmp(die, step)) {
		fprintf(stderr, "cbwctl: dying after step '%s' (CBWCTL_TEST_DIE_AFTER)\n",
			step);
		_exit(CBW_EXIT_FAIL);
	}
}

static bool cbw_starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static void cbw_attach_state_free(struct cbw_attach_state *st)
{
	cbw_dm_lines_free(&st->live);
	cbw_dm_lines_free(&st->inactive);
	cbw_dm_lines_free(&st->hidden_table);
}

/* Is @l a one-line cbw table?  Then its origin's device number. */
static bool cbw_is_cbw_table(const struct cbw_dm_lines *l, uint32_t *major,
			     uint32_t *minor)
{
	return l->nr == 1 && !strcmp(l->lines[0].type, DM_CBW_TARGET_NAME) &&
	       sscanf(l->lines[0].params, "%u:%u", major, minor) == 2;
}

/* Does the cbw table @l have a COW device, i.e. a snapshot? */
static bool cbw_table_has_cow(const struct cbw_dm_lines *l)
{
	char cow[256];

	return sscanf(l->lines[0].params, "%*s %255s", cow) == 1 &&
	       strcmp(cow, DM_CBW_NO_COW);
}

/* Is the cbw table @l over the device @major:@minor? */
static bool cbw_table_over(const struct cbw_dm_lines *l,
			   const struct cbw_dev *below)
{
	uint32_t major, minor;

	return cbw_is_cbw_table(l, &major, &minor) && major == below->major &&
	       minor == below->minor;
}

/* The hidden device under a live cbw table, if its origin is one. */
static int cbw_find_hidden_below(struct cbw_attach_state *st)
{
	char uuid[CBW_DM_UUID_LEN], spec[32];
	uint32_t major, minor;

	if (!cbw_is_cbw_table(&st->live, &major, &minor))
		return 0;
	snprintf(spec, sizeof(spec), "%u:%u", major, minor);
	if (cbw_dm_lookup(spec, &st->hidden) ||
	    cbw_dm_uuid(st->hidden.name, uuid) ||
	    !cbw_starts_with(uuid, CBW_HIDDEN_UUID_PREFIX))
		return cbw_error("Device '%s' is a cbw device (attach puts a cbw layer under a device that has none)",
				 st->dev.spec);
	snprintf(st->hidden_uuid, sizeof(st->hidden_uuid), "%s", uuid);
	st->have_hidden = true;
	st->attached = true;
	return 0;
}

/* The names of the hidden device of @st->dev. */
static int cbw_hidden_names(struct cbw_attach_state *st)
{
	const char *id = *st->uuid ? st->uuid : st->dev.name;
	int n;

	n = snprintf(st->hidden_uuid, sizeof(st->hidden_uuid), "%s%s",
		     CBW_HIDDEN_UUID_PREFIX, id);
	if (n < 0 || (size_t)n >= sizeof(st->hidden_uuid))
		return cbw_error("The DM UUID of '%s' is too long for the DM UUID of its hidden device (%s%s)",
				 st->dev.spec, CBW_HIDDEN_UUID_PREFIX, id);
	n = snprintf(st->hidden_name, sizeof(st->hidden_name), "%s%s",
		     CBW_HIDDEN_NAME_PREFIX, st->dev.name);
	if (n < 0 || (size_t)n >= sizeof(st->hidden_name))
		return cbw_error("The name of '%s' is too long for the name of its hidden device",
				 st->dev.spec);
	return 0;
}

/* The device's own kind: refuse what attach must not touch. */
static int cbw_check_attachable(const struct cbw_attach_state *st)
{
	if (st->live.nr == 1 &&
	    !strcmp(st->live.lines[0].type, DM_CBW_ACCESS_TARGET_NAME))
		return cbw_error("Device '%s' is a cbw-access device (a snapshot image)",
				 st->dev.spec);
	if (!st->live.nr)
		return cbw_error("Device '%s' has no active table (see: dmsetup info %s)",
				 st->dev.spec, st->dev.name);
	return 0;
}

/* Reads everything about @spec that attach, detach and --check use. */
static int cbw_attach_inspect(const char *spec, struct cbw_attach_state *st)
{
	int r;

	memset(st, 0, sizeof(*st));
	if (cbw_dm_resolve_lv(spec, &st->dev))
		return CBW_EXIT_FAIL;
	r = cbw_dm_uuid(st->dev.name, st->uuid);
	if (!r)
		r = cbw_dm_get_lines(st->dev.name, false, &st->live);
	if (!r && st->dev.inactive_table)
		r = cbw_dm_get_lines(st->dev.name, true, &st->inactive);
	if (r)
		return cbw_error("Cannot read the tables of '%s': %s", spec,
				 strerror(-r));
	st->is_hidden = cbw_starts_with(st->uuid, CBW_HIDDEN_UUID_PREFIX);
	if (st->is_hidden)
		return 0;
	if (cbw_check_attachable(st) || cbw_find_hidden_below(st))
		return CBW_EXIT_FAIL;
	if (!st->attached) {
		if (cbw_hidden_names(st))
			return CBW_EXIT_FAIL;
		r = cbw_dm_lookup_uuid(st->hidden_uuid, &st->hidden);
		if (r && r != -ENOENT && r != -ENXIO)
			return cbw_error("Cannot look up the hidden device %s: %s",
					 st->hidden_uuid, strerror(-r));
		st->have_hidden = !r;
	}
	if (st->have_hidden) {
		r = cbw_dm_get_lines(st->hidden.name, false, &st->hidden_table);
		if (r)
			return cbw_error("Cannot read the table of the hidden device '%s': %s",
					 st->hidden.name, strerror(-r));
	}
	return 0;
}

/* An inactive table that an attach or detach of ours left behind. */
static bool cbw_inactive_is_ours(const struct cbw_attach_state *st)
{
	if (!st->have_hidden)
		return false;
	return cbw_table_over(&st->inactive, &st->hidden) ||
	       cbw_dm_lines_equal(&st->inactive, &st->hidden_table);
}

static int cbw_check_inactive(const struct cbw_attach_state *st)
{
	if (!st->inactive.nr || cbw_inactive_is_ours(st))
		return 0;
	return cbw_error("Device '%s' has an inactive table that cbwctl did not load (see: dmsetup table --inactive %s; drop it with: dmsetup clear %s)",
			 st->dev.spec, st->dev.name, st->dev.name);
}

/* A device that we did not suspend is left to whoever did. */
static int cbw_check_not_suspended(const struct cbw_attach_state *st)
{
	if (!st->dev.suspended || cbw_inactive_is_ours(st))
		return 0;
	return cbw_error("Device '%s' is suspended: resume it first (dmsetup resume %s)",
			 st->dev.spec, st->dev.name);
}

/* Suspends and resumes the device, signals blocked; 0 or a negative errno. */
static int cbw_suspend_resume(const struct cbw_attach_state *st)
{
	const char *name = st->dev.name;
	sigset_t old;
	int r;

	cbw_block_stop_signals(&old);
	r = cbw_dm_suspend(name, true);
	if (r) {
		cbw_dm_clear(name);
		sigprocmask(SIG_SETMASK, &old, NULL);
		return cbw_error("Cannot suspend '%s': %s", st->dev.spec,
				 strerror(-r));
	}
	cbw_attach_step_done("suspend");
	r = cbw_dm_resume(name);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}

/*
 * Loads @l into the device and makes it live under one suspend, which
 * flushes what is in flight to the old table and freezes a file system
 * on the device.  If cbwctl dies in between (SIGKILL, a crash: other
 * signals wait), the device stays suspended until a rerun of attach or
 * detach (or dmsetup resume) resumes it.
 */
static int cbw_swap_table(const struct cbw_attach_state *st,
			  const struct cbw_dm_lines *l)
{
	const char *name = st->dev.name;
	int r;

	r = cbw_dm_reload_lines(name, l);
	if (r)
		return cbw_error("Cannot load the new table of '%s': %s (the kernel log says why: dmesg | tail)",
				 st->dev.spec, strerror(-r));
	cbw_attach_step_done("load");
	r = cbw_suspend_resume(st);
	if (r > 0)
		return r;
	if (r)
		return cbw_error("Cannot resume '%s' with its new table: %s (it may still be suspended: run the command again, or dmsetup resume %s)",
				 st->dev.spec, strerror(-r), name);
	cbw_attach_step_done("resume");
	return 0;
}

/*
 * A hidden device under a device that is not cbw over it: another tool
 * replaced the cbw table, and the bitmaps went with it.  New bitmaps of
 * the same names would be empty: say so, so that no incremental backup
 * trusts them.
 */
static void cbw_warn_lost(const struct cbw_attach_state *st)
{
	cbw_warn("'%s' was no longer a cbw device over its hidden device '%s': any dirty bitmaps it had are lost; take the next backup in full",
		 st->dev.spec, st->hidden.name);
}

/* Resumes a device that a run of ours left suspended, dropping our table. */
static int cbw_settle(const struct cbw_attach_state *st)
{
	int r = 0;

	if (st->inactive.nr && cbw_inactive_is_ours(st))
		r = cbw_dm_clear(st->dev.name);
	if (!r && st->dev.suspended && cbw_inactive_is_ours(st))
		r = cbw_dm_resume(st->dev.name);
	if (r)
		return cbw_error("Cannot resume '%s': %s (try: dmsetup resume %s)",
				 st->dev.spec, strerror(-r), st->dev.name);
	return 0;
}

/* ------------------------------------------------------------------ */
/* attach                                                              */
/* ------------------------------------------------------------------ */

/* The hidden device, with the device's table: made, or checked. */
static int cbw_make_hidden(struct cbw_attach_state *st)
{
	int r;

	if (st->have_hidden) {
		if (cbw_dm_lines_equal(&st->hidden_table, &st->live))
			return 0;
		return cbw_error("The hidden device '%s' of '%s' has another table than '%s' (remove it with: cbwctl detach %s)",
				 st->hidden.name, st->dev.spec, st->dev.spec,
				 st->dev.spec);
	}
	r = cbw_dm_create_lines(st->hidden_name, st->hidden_uuid, &st->live,
				CBW_DM_PRIVATE);
	if (r)
		return cbw_error("Cannot create the hidden device '%s': %s",
				 st->hidden_name, strerror(-r));
	cbw_attach_step_done("create");
	r = cbw_dm_lookup(st->hidden_name, &st->hidden);
	if (r)
		return cbw_error("Cannot look up the hidden device '%s': %s",
				 st->hidden_name, strerror(-r));
	st->have_hidden = true;
	return 0;
}

/* The tracking-only cbw table over the hidden device. */
static void cbw_attach_table(const struct cbw_attach_state *st,
			     const struct cbw_attach_opts *o,
			     struct cbw_target *t, char *params, size_t len)
{
	memset(t, 0, sizeof(*t));
	t->length = cbw_dm_lines_length(&st->live);
	t->nr_targets = 1;
	snprintf(t->type, sizeof(t->type), "%s", DM_CBW_TARGET_NAME);
	snprintf(params, len, "%u:%u %s %llu", st->hidden.major,
		 st->hidden.minor, DM_CBW_NO_COW,
		 (unsigned long long)(o->chunk / 512));
	t->params = params;
}

static int cbw_attach_add_bitmaps(const struct cbw_attach_state *st,
				  const struct cbw_attach_opts *o)
{
	const struct cbw_tab_bitmap *b;
	struct dm_cbw_bitmap_info info;
	unsigned int i;
	int r;

	for (i = 0; i < o->nr_bitmaps; i++) {
		b = &o->bitmaps[i];
		r = cbw_ctl_bitmap(DM_CBW_IOC_BITMAP_ADD, &st->dev, b->name,
				   b->granularity, 0);
		/* A rerun finds the bitmaps of the first run. */
		if (r == -EEXIST && !cbw_ctl_query(&st->dev, b->name, &info) &&
		    info.granularity == b->granularity)
			continue;
		if (r)
			return cbw_bitmap_error(r, &st->dev, b->name);
	}
	return 0;
}

static int cbw_attach_do(struct cbw_attach_state *st,
			 const struct cbw_attach_opts *o)
{
	bool already = st->attached && !st->dev.suspended && !st->inactive.nr;
	struct cbw_dm_lines l;
	struct cbw_target t;
	char params[128];

	if (st->is_hidden)
		return cbw_error("Device '%s' is the hidden device of an attached device: use the device above it",
				 st->dev.spec);
	if (cbw_check_inactive(st) || cbw_check_not_suspended(st))
		return CBW_EXIT_FAIL;
	if (st->attached) {
		if (cbw_settle(st))
			return CBW_EXIT_FAIL;
	} else {
		if (st->have_hidden && !cbw_inactive_is_ours(st))
			cbw_warn_lost(st);
		if (cbw_make_hidden(st))
			return CBW_EXIT_FAIL;
		cbw_attach_table(st, o, &t, params, sizeof(params));
		l.nr = 1;
		l.lines = &t;
		if (cbw_swap_table(st, &l))
			return CBW_EXIT_FAIL;
	}
	if (cbw_attach_add_bitmaps(st, o))
		return CBW_EXIT_FAIL;
	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_string("device", st->dev.name);
		cbw_json_string("state", "attached");
		cbw_json_string("hidden", st->hidden.name);
		cbw_json_bool("already", already);
		cbw_json_object_end();
	} else {
		printf("%s: %sattached (hidden device %s)\n", st->dev.name,
		       already ? "already " : "", st->hidden.name);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* attach --check                                                      */
/* ------------------------------------------------------------------ */

static const char *cbw_attach_state_name(const struct cbw_attach_state *st)
{
	if (st->attached && !st->dev.suspended && !st->inactive.nr)
		return "attached";
	if (!st->attached && !st->have_hidden)
		return "detached";
	return "broken";
}

static void cbw_check_bitmaps_json(const struct cbw_attach_state *st)
{
	struct dm_cbw_bitmap_info *infos = NULL;
	unsigned int i, nr = 0;

	cbw_json_array_begin("bitmaps");
	if (st->attached && !cbw_ctl_list(&st->dev, &infos, &nr))
		for (i = 0; i < nr; i++)
			cbw_json_string(NULL, infos[i].name);
	cbw_json_array_end();
	free(infos);
}

static void cbw_check_text(const struct cbw_attach_state *st,
			   const char *state)
{
	struct dm_cbw_bitmap_info *infos = NULL;
	unsigned int i, nr = 0;

	cbw_print_field("Device", "%s", st->dev.name);
	cbw_print_field("State", "%s", state);
	cbw_print_field("Hidden device", "%s",
			st->have_hidden ? st->hidden.name : "-");
	if (!st->attached) {
		if (st->have_hidden)
			cbw_print_field("Bitmaps", "lost");
		return;
	}
	if (cbw_ctl_list(&st->dev, &infos, &nr))
		nr = 0;
	printf("Bitmaps:%*s%s", 20 - 7, "", nr ? "" : "-");
	for (i = 0; i < nr; i++)
		printf("%s%s", i ? " " : "", infos[i].name);
	putchar('\n');
	free(infos);
}

/*
 * A hidden device that no device uses is left from a device that LVM
 * deactivated or removed (vgchange -an), or that was renamed.
 */
static int cbw_check_hidden(const struct cbw_attach_state *st)
{
	bool orphan = !st->dev.open_count;

	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_string("device", st->dev.name);
		cbw_json_string("state", orphan ? "orphaned" : "hidden");
		cbw_json_object_end();
	} else {
		cbw_print_field("Device", "%s", st->dev.name);
		cbw_print_field("State", "%s", orphan ? "orphaned" : "hidden");
	}
	if (!orphan)
		return 0;
	return cbw_error("'%s' is a hidden device that no device uses any more: remove it with: cbwctl detach %s",
			 st->dev.name, st->dev.name);
}

/*
 * Why a device is broken and what to run.  A hidden device with another
 * table than the device maps what the device mapped before LVM changed it
 * (lvextend, pvmove): attach refuses to put the device back over it.
 */
static int cbw_broken_error(const struct cbw_attach_state *st)
{
	if (st->attached)
		return cbw_error("'%s' is attached, but suspended or with an inactive table left by an attach or detach that did not finish: run cbwctl attach or detach again",
				 st->dev.name);
	if (!cbw_dm_lines_equal(&st->hidden_table, &st->live))
		return cbw_error("The table of '%s' no longer maps through its cbw layer, and its hidden device '%s' has another table: LVM changed or moved it (lvextend and pvmove do).  Its dirty bitmaps are lost.  Remove the hidden device with: cbwctl detach %s, then attach again, and take the next backup in full",
				 st->dev.name, st->hidden.name, st->dev.name);
	return cbw_error("The table of '%s' no longer maps through its cbw layer: another tool reloaded it (lvchange --refresh does), or an attach or detach did not finish.  Its dirty bitmaps are lost.  Remove the hidden device '%s' with: cbwctl detach %s (or attach again, and take the next backup in full)",
			 st->dev.name, st->hidden.name, st->dev.name);
}

/*
 * Exit status 0: attached or detached; 1: broken or an orphaned hidden
 * device (said why on stderr).
 */
static int cbw_attach_check(const struct cbw_attach_state *st)
{
	const char *state;

	if (st->is_hidden)
		return cbw_check_hidden(st);
	state = cbw_attach_state_name(st);

	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_string("device", st->dev.name);
		cbw_json_string("state", state);
		if (st->have_hidden)
			cbw_json_string("hidden", st->hidden.name);
		else
			cbw_json_null("hidden");
		cbw_json_bool("bitmaps_lost", st->have_hidden && !st->attached);
		cbw_check_bitmaps_json(st);
		cbw_json_object_end();
	} else {
		cbw_check_text(st, state);
	}
	if (strcmp(state, "broken"))
		return 0;
	return cbw_broken_error(st);
}

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

/* "NAME[:GRANULARITY]" */
static int cbw_attach_bitmap_opt(const struct cbw_cmd *cmd,
				 struct cbw_attach_opts *o, const char *arg)
{
	struct cbw_tab_bitmap *b = &o->bitmaps[o->nr_bitmaps];
	char *gran;
	unsigned int i;

	if (o->nr_bitmaps == DM_CBW_MAX_BITMAPS)
		return cbw_usage_error(cmd, "more than %d bitmaps",
				       DM_CBW_MAX_BITMAPS);
	snprintf(b->name, sizeof(b->name), "%s", arg);
	b->granularity = DM_CBW_DEFAULT_GRANULARITY;
	gran = strchr(b->name, ':');
	if (gran) {
		*gran++ = '\0';
		if (cbw_parse_size(gran, &b->granularity) ||
		    !cbw_is_power_of_2(b->granularity) ||
		    b->granularity < DM_CBW_MIN_GRANULARITY ||
		    b->granularity > CBW_MAX_GRANULARITY)
			return cbw_usage_error(cmd, "bitmap granularity '%s' must be a power of 2 from 512 to 2G",
					       gran);
	}
	if (strlen(arg) >= DM_CBW_NAME_LEN + (gran ? strlen(gran) + 1 : 0) ||
	    cbw_check_bitmap_name(b->name))
		return cbw_usage_error(cmd, "bad bitmap name in '%s'", arg);
	for (i = 0; i < o->nr_bitmaps; i++)
		if (!strcmp(o->bitmaps[i].name, b->name))
			return cbw_usage_error(cmd, "bitmap '%s' is given twice",
					       b->name);
	o->nr_bitmaps++;
	return 0;
}

static int cbw_attach_option(const struct cbw_cmd *cmd, int opt,
			     const char *arg, void *ctx)
{
	struct cbw_attach_opts *o = ctx;

	switch (opt) {
	case CBW_OPT_BITMAP:
		return cbw_attach_bitmap_opt(cmd, o, arg);
	case CBW_OPT_CHUNK:
		if (cbw_parse_size(arg, &o->chunk) ||
		    !cbw_is_power_of_2(o->chunk) || o->chunk < 4096 ||
		    o->chunk > (1ULL << 30))
			return cbw_usage_error(cmd, "chunk size '%s' must be a power of 2 from 4K to 1G",
					       arg);
		return 0;
	case CBW_OPT_CHECK:
		o->check = true;
		return 0;
	}
	return CBW_EXIT_USAGE;
}

static int cbw_attach(const struct cbw_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bitmap", required_argument, NULL, CBW_OPT_BITMAP },
		{ "chunk", required_argument, NULL, CBW_OPT_CHUNK },
		{ "check", no_argument, NULL, CBW_OPT_CHECK },
		{ NULL, 0, NULL, 0 },
	};
	struct cbw_attach_opts o = { .chunk = CBW_DEFAULT_CHUNK };
	struct cbw_attach_state st;
	int first, r;

	r = cbw_parse_cmd(cmd, argc, argv, opts, cbw_attach_option, &o,
			  &first);
	if (r)
		return r;
	if (o.check && o.nr_bitmaps)
		return cbw_usage_error(cmd, "--check takes no --bitmap");
	if (cbw_ctl_open() < 0)
		return CBW_EXIT_FAIL;
	r = cbw_attach_inspect(argv[first], &st);
	if (!r)
		r = o.check ? cbw_attach_check(&st) : cbw_attach_do(&st, &o);
	cbw_attach_state_free(&st);
	return r;
}

/* ------------------------------------------------------------------ */
/* detach                                                              */
/* ------------------------------------------------------------------ */

/* No snapshot and no backup job may lose their device. */
static int cbw_check_detachable(const struct cbw_attach_state *st)
{
	struct cbw_job job;

	if (!cbw_job_load(&st->dev, &job))
		return cbw_error("A backup job is running on '%s': finish or cancel it first (cbwctl backup cancel %s)",
				 st->dev.spec, st->dev.spec);
	if (cbw_table_has_cow(&st->live))
		return cbw_error("A snapshot is active on '%s': stop it first (cbwctl snapshot stop %s)",
				 st->dev.spec, st->dev.spec);
	return 0;
}

static int cbw_remove_hidden(const struct cbw_attach_state *st)
{
	int r = cbw_dm_remove(st->hidden.name);

	if (r)
		return cbw_error("Cannot remove the hidden device '%s': %s",
				 st->hidden.name, strerror(-r));
	cbw_attach_step_done("remove");
	return 0;
}

/* The hidden device of a device that is gone. */
static int cbw_remove_orphan(const struct cbw_attach_state *st)
{
	if (st->dev.open_count)
		return cbw_error("'%s' is the hidden device of an attached device: detach that device",
				 st->dev.spec);
	if (cbw_dm_remove(st->dev.name))
		return cbw_error("Cannot remove the hidden device '%s'",
				 st->dev.name);
	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_string("device", st->dev.name);
		cbw_json_string("state", "removed");
		cbw_json_object_end();
	} else {
		printf("%s: removed (a hidden device that no device used)\n",
		       st->dev.name);
	}
	return 0;
}

static void cbw_detach_done(const struct cbw_attach_state *st)
{
	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_string("device", st->dev.name);
		cbw_json_string("state", "detached");
		cbw_json_object_end();
	} else {
		printf("%s: detached\n", st->dev.name);
	}
}

/* A device that is not attached is detached already: a rerun succeeds. */
static int cbw_detach_do(const struct cbw_attach_state *st)
{
	if (st->is_hidden)
		return cbw_remove_orphan(st);
	if (!st->have_hidden) {
		cbw_detach_done(st);
		return 0;
	}
	if (cbw_check_inactive(st) || cbw_check_not_suspended(st))
		return CBW_EXIT_FAIL;
	if (st->attached) {
		if (cbw_check_detachable(st) ||
		    cbw_swap_table(st, &st->hidden_table))
			return CBW_EXIT_FAIL;
	} else {
		if (!cbw_inactive_is_ours(st))
			cbw_warn_lost(st);
		if (cbw_settle(st))
			return CBW_EXIT_FAIL;
	}
	if (cbw_remove_hidden(st))
		return CBW_EXIT_FAIL;
	cbw_detach_done(st);
	return 0;
}

static int cbw_detach(const struct cbw_cmd *cmd, int argc, char **argv)
{
	struct cbw_attach_state st;
	int first, r;

	r = cbw_parse_cmd(cmd, argc, argv, NULL, NULL, NULL, &first);
	if (r)
		return r;
	r = cbw_attach_inspect(argv[first], &st);
	if (!r)
		r = cbw_detach_do(&st);
	cbw_attach_state_free(&st);
	return r;
}

const struct cbw_cmd cbw_attach_cmds[] = {
	{
		.name = "attach",
		.params = { "DEV" },
		.min_args = 1,
		.max_args = 1,
		.synopsis = "[--bitmap NAME[:GRAN]]... [--chunk SIZE] | --check",
		.summary = "Put a cbw layer under a live device-mapper device.",
		.help =
		"DEV is any device-mapper device: an LVM logical volume (VG/LV or\n"
		"/dev/VG/LV), /dev/mapper/NAME or NAME.  Under one suspend, its table\n"
		"moves to a hidden device (cbw-hidden-NAME, DM UUID CBW-hidden-...)\n"
		"and DEV gets a cbw table over it: a mounted file system stays.\n"
		"  --bitmap NAME[:GRAN]  add this dirty bitmap (granularity GRAN,\n"
		"                     default 64K); it records writes from the attach\n"
		"                     on; may be repeated\n"
		"  --chunk SIZE       chunk size of the cbw table (default 64K)\n"
		"  --check            only say whether DEV is attached, detached or\n"
		"                     broken (exit status 1)\n"
		"Running attach again completes an attach that did not finish.\n",
		.run = cbw_attach,
	},
	{
		.name = "detach",
		.params = { "DEV" },
		.min_args = 1,
		.max_args = 1,
		.summary = "Take the cbw layer of 'attach' away again.",
		.help =
		"Puts the hidden device's table back into DEV under one suspend and\n"
		"removes the hidden device; DEV's dirty bitmaps go with the cbw\n"
		"table.  Refused while a snapshot or a backup job is active.\n"
		"Also removes the hidden device of a broken attach, and given a\n"
		"hidden device that no device uses (its LV was deactivated),\n"
		"removes it.  A device that is not attached is left as it is.\n",
		.run = cbw_detach,
	},
	{ .name = NULL },
};
