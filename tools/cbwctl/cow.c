// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl: COW devices that cbwctl makes for one snapshot and removes when
 * the snapshot ends ("--cow-file PATH" and "--cow-thin VG/POOL").
 *
 * --cow-file creates PATH as a sparse file of the device's size and binds
 * it to a loop device (direct I/O, autoclear); --cow-thin creates the thin
 * LV cbw-cow-NAME of the device's size in the pool.  What was made is
 * written to ${CBW_RUN_DIR:-/run/dm-cbw}/cow-MAJOR-MINOR, so that
 * "snapshot stop" or "backup finish", other processes, can remove it, and
 * "snapshot info" can show it.  A record left by a run that died is
 * cleaned up by the next start on the device.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/loop.h>

#include "cbwctl.h"

#define CBW_COW_LV_PREFIX	"cbw-cow-"
#define CBW_COW_LV_MAX		64	/* of the LV name, prefix included */
#define CBW_SLAVE_DEPTH		16	/* deepest device stack followed */

/* The record of a COW device that cbwctl made. */
struct cbw_cow_record {
	char kind[8];			/* "file" or "thin" */
	char path[PATH_MAX];		/* file: the sparse file */
	char loop[64];			/* file: its loop device */
	char lv[256];			/* thin: VG/LV */
	char pool[256];			/* thin: VG/POOL */
};

bool cbw_cow_wanted(const struct cbw_start_opts *o)
{
	return o->cow_file || o->cow_thin;
}

/* What the job file and "backup status" show as the COW device. */
const char *cbw_cow_spec(const struct cbw_start_opts *o, char *buf,
			 size_t len)
{
	if (o->cow_file)
		snprintf(buf, len, "file:%s", o->cow_file);
	else if (o->cow_thin)
		snprintf(buf, len, "thin:%s", o->cow_thin);
	else
		snprintf(buf, len, "%s", o->cow ? o->cow : "");
	return buf;
}

/* ------------------------------------------------------------------ */
/* The record                                                          */
/* ------------------------------------------------------------------ */

static void cbw_cow_record_path(const struct cbw_dev *dev, char *path)
{
	snprintf(path, PATH_MAX, "%s/cow-%u-%u", cbw_run_dir(), dev->major,
		 dev->minor);
}

static void cbw_cow_record_set(void *ctx, const char *key, const char *v)
{
	struct cbw_cow_record *rec = ctx;

	if (!strcmp(key, "kind"))
		snprintf(rec->kind, sizeof(rec->kind), "%s", v);
	else if (!strcmp(key, "path"))
		snprintf(rec->path, sizeof(rec->path), "%s", v);
	else if (!strcmp(key, "loop"))
		snprintf(rec->loop, sizeof(rec->loop), "%s", v);
	else if (!strcmp(key, "lv"))
		snprintf(rec->lv, sizeof(rec->lv), "%s", v);
	else if (!strcmp(key, "pool"))
		snprintf(rec->pool, sizeof(rec->pool), "%s", v);
}

/* 0, -ENOENT if there is no record, or another errno. */
static int cbw_cow_record_load(const struct cbw_dev *dev,
			       struct cbw_cow_record *rec)
{
	char path[PATH_MAX];

	memset(rec, 0, sizeof(*rec));
	cbw_cow_record_path(dev, path);
	return cbw_kv_load(path, cbw_cow_record_set, rec);
}

/* What the record file is written from. */
struct cbw_cow_record_file {
	const struct cbw_dev *dev;
	const struct cbw_cow_record *rec;
};

static int cbw_cow_record_write(FILE *f, const void *ctx)
{
	const struct cbw_cow_record_file *file = ctx;
	const struct cbw_cow_record *rec = file->rec;

	fprintf(f, "# The COW device cbwctl made for the snapshot of %s: see cbwctl(8)\n",
		file->dev->name);
	fprintf(f, "device=%s\nkind=%s\n", file->dev->name, rec->kind);
	if (rec->path[0])
		fprintf(f, "path=%s\n", rec->path);
	if (rec->loop[0])
		fprintf(f, "loop=%s\n", rec->loop);
	if (rec->lv[0])
		fprintf(f, "lv=%s\npool=%s\n", rec->lv, rec->pool);
	return fflush(f) || ferror(f) || fsync(fileno(f)) ? -EIO : 0;
}

/* Replaces the record atomically: 0 or an exit status, the error printed. */
static int cbw_cow_record_save(const struct cbw_dev *dev,
			       const struct cbw_cow_record *rec)
{
	struct cbw_cow_record_file file = { .dev = dev, .rec = rec };
	char path[PATH_MAX];

	cbw_cow_record_path(dev, path);
	return cbw_run_file_save(path, "the COW record", cbw_cow_record_write,
				 &file);
}

static void cbw_cow_record_remove(const struct cbw_dev *dev)
{
	char path[PATH_MAX];

	cbw_cow_record_path(dev, path);
	if (unlink(path) && errno != ENOENT)
		cbw_warn("Cannot remove %s: %s", path, strerror(errno));
}

/* ------------------------------------------------------------------ */
/* lvm                                                                 */
/* ------------------------------------------------------------------ */

/* Copies what lvm said on @fd to our standard error. */
static void cbw_show_lvm_errors(int fd)
{
	char buf[4096];
	ssize_t n;

	if (lseek(fd, 0, SEEK_SET))
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (fwrite(buf, 1, n, stderr) != (size_t)n)
			break;
}

/*
 * Runs "lvm ARGS...": its standard output goes to @out (up to @len - 1
 * bytes, NUL-terminated) or, if @out is NULL, away; its standard error is
 * shown only if it fails.  Returns the exit status, or -1 if lvm could not
 * be run.
 */
int cbw_lvm_run(char *out, size_t len, const char *const *args)
{
	int pfd[2], efd, status = -1;
	char discard[256];
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	efd = memfd_create("lvm-stderr", MFD_CLOEXEC);
	if (efd < 0)
		return -1;
	if (pipe2(pfd, O_CLOEXEC)) {
		close(efd);
		return -1;
	}
	pid = fork();
	if (!pid) {
		dup2(pfd[1], STDOUT_FILENO);
		dup2(efd, STDERR_FILENO);
		/* lvm warns of every descriptor it inherits; they are ours. */
		setenv("LVM_SUPPRESS_FD_WARNINGS", "1", 1);
		execvp("lvm", (char *const *)args);
		fprintf(stderr, "cbwctl: cannot run lvm: %s\n", strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	while (pid > 0 &&
	       (n = read(pfd[0], out ? out + got : discard,
			 out ? len - 1 - got : sizeof(discard))) > 0)
		if (out)
			got += n;
	close(pfd[0]);
	if (out)
		out[got] = 0;
	if (pid > 0 && waitpid(pid, &status, 0) == pid)
		status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	else
		status = -1;
	if (status)
		cbw_show_lvm_errors(efd);
	close(efd);
	return status;
}

/* Trims white space at both ends of @s, in place. */
static char *cbw_trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t' || *s == '\n')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
			   end[-1] == '\n'))
		*--end = 0;
	return s;
}

/* VG/POOL (or /dev/VG/POOL): 0, or -EINVAL if it is not of that form. */
static int cbw_split_vg_lv(const char *spec, char *vg, char *lv, size_t len)
{
	const char *slash;

	if (!strncmp(spec, "/dev/", 5))
		spec += 5;
	slash = strchr(spec, '/');
	if (!slash || slash == spec || !slash[1] || strchr(slash + 1, '/') ||
	    (size_t)(slash - spec) >= len || strlen(slash + 1) >= len)
		return -EINVAL;
	snprintf(vg, len, "%.*s", (int)(slash - spec), spec);
	snprintf(lv, len, "%s", slash + 1);
	return 0;
}

/* The device-mapper name LVM gives VG/LV: each '-' doubled, joined by '-'. */
static void cbw_lvm_dm_name(const char *vg, const char *lv, char *name)
{
	const char *parts[2] = { vg, lv };
	size_t n = 0;
	unsigned int i;
	const char *p;

	for (i = 0; i < 2; i++) {
		for (p = parts[i]; *p && n < CBW_DM_NAME_LEN - 3; p++) {
			name[n++] = *p;
			if (*p == '-')
				name[n++] = '-';
		}
		if (!i)
			name[n++] = '-';
	}
	name[n] = 0;
}

/*
 * The LV name for the COW of @dev: cbw-cow-NAME, with the characters LVM
 * does not take in a name replaced by '_'.
 */
static void cbw_cow_lv_name(const struct cbw_dev *dev, char *lv)
{
	size_t n = strlen(CBW_COW_LV_PREFIX), i;
	const char *p;

	memcpy(lv, CBW_COW_LV_PREFIX, n);
	for (p = dev->name; *p && n < CBW_COW_LV_MAX; p++) {
		i = n++;
		lv[i] = strchr("+_.-", *p) || (*p >= 'a' && *p <= 'z') ||
			(*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ?
			*p : '_';
	}
	lv[n] = 0;
}

/* A pool that queues writes when full makes copies, and so writes, wait. */
static void cbw_check_pool_when_full(const char *pool)
{
	const char *const args[] = { "lvm", "lvs", "--noheadings", "-o",
			       "lv_when_full", pool, NULL };
	char out[64];

	if (cbw_lvm_run(out, sizeof(out), args))
		return;
	if (strcmp(cbw_trim(out), "error"))
		cbw_warn("Thin pool %s queues writes when it is full: copies, and the guest writes that need them, then wait for no_space_timeout (make it fail at once with: lvchange --errorwhenfull y %s)",
			 pool, pool);
}

static int cbw_lvremove(const char *lv)
{
	const char *const args[] = { "lvm", "lvremove", "-q", "-f", lv, NULL };

	return cbw_lvm_run(NULL, 0, args);
}

/* ------------------------------------------------------------------ */
/* --cow-thin                                                          */
/* ------------------------------------------------------------------ */

static int cbw_cow_thin_create(const struct cbw_cow_record *rec,
			       const char *vg, const char *lv, uint64_t size)
{
	char sz[32], pool[256];
	const char *const args[] = { "lvm", "lvcreate", "-q", "-y", "--type", "thin",
			       "-V", sz, "-n", lv, "--thinpool", pool, vg,
			       NULL };

	snprintf(sz, sizeof(sz), "%llub", (unsigned long long)size);
	snprintf(pool, sizeof(pool), "%s", strchr(rec->pool, '/') + 1);
	if (cbw_lvm_run(NULL, 0, args))
		return cbw_error("Cannot create the thin LV %s in pool %s (lvcreate failed: see its message above)",
				 rec->lv, rec->pool);
	return 0;
}

/* The thin LV is made, the record written: its device in @cow. */
static int cbw_cow_thin(const struct cbw_dev *dev, uint64_t size,
			const char *spec, struct cbw_cow_made *m)
{
	char vg[128], pool[128], lv[CBW_COW_LV_MAX + 1], dm[CBW_DM_NAME_LEN];
	struct cbw_cow_record rec = { .kind = "thin" };
	struct cbw_dev d;
	int r;

	if (cbw_split_vg_lv(spec, vg, pool, sizeof(vg)))
		return cbw_error("--cow-thin takes VG/POOL, the volume group and thin pool: '%s'",
				 spec);
	cbw_cow_lv_name(dev, lv);
	snprintf(rec.pool, sizeof(rec.pool), "%s/%s", vg, pool);
	snprintf(rec.lv, sizeof(rec.lv), "%s/%s", vg, lv);
	/* Recorded first: a run that dies in lvcreate leaves no LV unknown. */
	r = cbw_cow_record_save(dev, &rec);
	if (!r)
		r = cbw_cow_thin_create(&rec, vg, lv, size);
	if (r) {
		cbw_cow_record_remove(dev);
		return r;
	}
	cbw_lvm_dm_name(vg, lv, dm);
	if (cbw_dm_lookup(dm, &d)) {
		cbw_lvremove(rec.lv);
		cbw_cow_record_remove(dev);
		return cbw_error("The thin LV %s was created but is not active as /dev/mapper/%s",
				 rec.lv, dm);
	}
	snprintf(m->cow, sizeof(m->cow), "%u:%u", d.major, d.minor);
	cbw_check_pool_when_full(rec.pool);
	return 0;
}

/* ------------------------------------------------------------------ */
/* --cow-file                                                          */
/* ------------------------------------------------------------------ */

/* Reads "MAJOR:MINOR" from the sysfs file @path. */
static int cbw_read_devno(const char *path, dev_t *devno)
{
	unsigned int ma, mi;
	FILE *f = fopen(path, "r");
	int n;

	if (!f)
		return -errno;
	n = fscanf(f, "%u:%u", &ma, &mi);
	fclose(f);
	if (n != 2)
		return -EINVAL;
	*devno = makedev(ma, mi);
	return 0;
}

/*
 * Whether block device @d is @target or is built on it: a partition of
 * it, or a device whose slaves (device-mapper, md, loop) lead to it.
 */
static bool cbw_blk_uses(dev_t d, dev_t target, unsigned int depth)
{
	char dir[96], path[PATH_MAX];
	struct dirent *de;
	bool found = false;
	dev_t s;
	DIR *dh;

	if (d == target)
		return true;
	if (!depth)
		return false;
	snprintf(dir, sizeof(dir), "/sys/dev/block/%u:%u", major(d), minor(d));
	snprintf(path, sizeof(path), "%s/partition", dir);
	if (!access(path, F_OK)) {
		snprintf(path, sizeof(path), "%s/../dev", dir);
		if (!cbw_read_devno(path, &s) && cbw_blk_uses(s, target, depth - 1))
			return true;
	}
	snprintf(path, sizeof(path), "%s/slaves", dir);
	dh = opendir(path);
	if (!dh)
		return false;
	while (!found && (de = readdir(dh))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/slaves/%s/dev", dir, de->d_name);
		found = !cbw_read_devno(path, &s) &&
			cbw_blk_uses(s, target, depth - 1);
	}
	closedir(dh);
	return found;
}

/*
 * The directory of @path must be on a file system of its own: not on the
 * cbw device or its origin, nor on a device built on them.
 */
static int cbw_cow_file_place(const struct cbw_dev *dev, const char *origin,
			      const char *path)
{
	char dir[PATH_MAX], *slash;
	unsigned int ma, mi;
	struct stat st;
	dev_t o = 0;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	if (stat(dir, &st))
		return cbw_error("Cannot use COW file '%s': %s: %s", path, dir,
				 strerror(errno));
	if (sscanf(origin, "%u:%u", &ma, &mi) == 2)
		o = makedev(ma, mi);
	if (cbw_blk_uses(st.st_dev, makedev(dev->major, dev->minor),
			 CBW_SLAVE_DEPTH) ||
	    (o && cbw_blk_uses(st.st_dev, o, CBW_SLAVE_DEPTH)))
		return cbw_error("COW file '%s' would be on '%s' itself (its file system is on device %u:%u): put it on another file system",
				 path, dev->spec, major(st.st_dev),
				 minor(st.st_dev));
	return 0;
}

/* LOOP_CONFIGURE, or the three ioctls it replaced (before Linux 5.8). */
static int cbw_loop_configure(int fd, const struct loop_config *cfg)
{
	struct loop_info64 info = cfg->info;

	if (!ioctl(fd, LOOP_CONFIGURE, cfg))
		return 0;
	if (errno != EINVAL && errno != ENOTTY)
		return -errno;
	if (ioctl(fd, LOOP_SET_FD, cfg->fd))
		return -errno;
	info.lo_flags &= ~LO_FLAGS_DIRECT_IO;
	if (ioctl(fd, LOOP_SET_STATUS64, &info)) {
		ioctl(fd, LOOP_CLR_FD, 0);
		return -errno;
	}
	/* Buffered I/O where the file system cannot do direct I/O. */
	ioctl(fd, LOOP_SET_DIRECT_IO, 1UL);
	return 0;
}

/* Binds @file_fd to a free loop device, kept open in m->loop_fd. */
static int cbw_loop_attach(int file_fd, const char *path,
			   struct cbw_cow_record *rec, struct cbw_cow_made *m)
{
	struct loop_config cfg;
	int ctl, nr, fd, tries, r = -EBUSY;

	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = file_fd;
	cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
	snprintf((char *)cfg.info.lo_file_name, LO_NAME_SIZE, "%.*s",
		 LO_NAME_SIZE - 1, path);
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return cbw_error("Cannot open /dev/loop-control: %s (is the loop module loaded?)",
				 strerror(errno));
	/* Another program may take the free device first: try the next. */
	for (tries = 0; r == -EBUSY && tries < 16; tries++) {
		nr = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (nr < 0) {
			r = -errno;
			break;
		}
		snprintf(rec->loop, sizeof(rec->loop), "/dev/loop%d", nr);
		fd = open(rec->loop, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			break;
		}
		r = cbw_loop_configure(fd, &cfg);
		if (r)
			close(fd);
		else
			m->loop_fd = fd;
	}
	close(ctl);
	if (r)
		return cbw_error("Cannot bind COW file '%s' to a loop device: %s",
				 path, strerror(-r));
	return 0;
}

/* The sparse file is made, bound to a loop device and recorded. */
static int cbw_cow_file(const struct cbw_dev *dev, uint64_t size,
			const char *origin, const char *path,
			struct cbw_cow_made *m)
{
	struct cbw_cow_record rec = { .kind = "file" };
	struct stat st;
	int fd, r;

	r = cbw_cow_file_place(dev, origin, path);
	if (r)
		return r;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST)
		return cbw_error("COW file '%s' exists: cbwctl creates the file and removes it when the snapshot ends (give a path that does not exist)",
				 path);
	if (fd < 0)
		return cbw_error("Cannot create COW file '%s': %s", path,
				 strerror(errno));
	/* Absolute, so that a stop run from elsewhere finds it. */
	if (!realpath(path, rec.path))
		snprintf(rec.path, sizeof(rec.path), "%s", path);
	r = cbw_cow_record_save(dev, &rec);
	if (r) {
		unlink(path);
		close(fd);
		return r;
	}
	if (ftruncate(fd, size))
		r = cbw_error("Cannot size COW file '%s': %s", path,
			      strerror(errno));
	if (!r)
		r = cbw_loop_attach(fd, rec.path, &rec, m);
	if (!r)
		r = cbw_cow_record_save(dev, &rec);
	close(fd);
	if (!r && !fstat(m->loop_fd, &st))
		snprintf(m->cow, sizeof(m->cow), "%u:%u", major(st.st_rdev),
			 minor(st.st_rdev));
	if (r)
		cbw_cow_made_end(dev, m, r);
	return r;
}

/* ------------------------------------------------------------------ */
/* Make and release                                                    */
/* ------------------------------------------------------------------ */

/*
 * Makes the COW device that @o asks for, of @size bytes, for @dev (whose
 * origin is @origin, MAJOR:MINOR); m->cow is then its MAJOR:MINOR.  A
 * record left by an earlier snapshot of @dev (which has none now) is
 * cleaned up first.  0 or an exit status, the error printed.
 */
int cbw_cow_make(const struct cbw_dev *dev, uint64_t size, const char *origin,
		 const struct cbw_start_opts *o, struct cbw_cow_made *m)
{
	int r;

	memset(m, 0, sizeof(*m));
	m->loop_fd = -1;
	r = cbw_cow_release(dev);
	if (r)
		return r;
	if (o->cow_file)
		return cbw_cow_file(dev, size, origin, o->cow_file, m);
	return cbw_cow_thin(dev, size, o->cow_thin, m);
}

/*
 * The snapshot started (@err 0): the table holds the loop device now, so
 * ours can go.  Or it did not: everything made is removed.
 */
void cbw_cow_made_end(const struct cbw_dev *dev, struct cbw_cow_made *m,
		      int err)
{
	if (m->loop_fd >= 0)
		close(m->loop_fd);
	m->loop_fd = -1;
	if (err && cbw_cow_release(dev))
		cbw_warn("The COW device made for '%s' is left behind", dev->spec);
}

static int cbw_release_file(const struct cbw_cow_record *rec)
{
	int fd;

	/* Autoclear unbinds the loop device once the table closed it. */
	if (rec->loop[0]) {
		fd = open(rec->loop, O_RDWR | O_CLOEXEC);
		if (fd >= 0) {
			struct loop_info64 info;

			if (!ioctl(fd, LOOP_GET_STATUS64, &info) &&
			    !strncmp((char *)info.lo_file_name, rec->path,
				     LO_NAME_SIZE - 1))
				ioctl(fd, LOOP_CLR_FD, 0);
			close(fd);
		}
	}
	if (rec->path[0] && unlink(rec->path) && errno != ENOENT)
		return cbw_error("Cannot remove COW file '%s': %s", rec->path,
				 strerror(errno));
	return 0;
}

static int cbw_release_thin(const struct cbw_cow_record *rec)
{
	const char *const args[] = { "lvm", "lvs", "-q", rec->lv, NULL };

	if (!cbw_lvremove(rec->lv))
		return 0;
	/* Gone already (a run that died before lvcreate ended)? */
	if (cbw_lvm_run(NULL, 0, args))
		return 0;
	return cbw_error("Cannot remove the thin LV %s (remove it with: lvremove %s)",
			 rec->lv, rec->lv);
}

/*
 * Removes the COW device cbwctl made for @dev, once no table of @dev uses
 * it: 0 (also if there is none) or an exit status, the error printed.
 */
int cbw_cow_release(const struct cbw_dev *dev)
{
	struct cbw_cow_record rec;
	int r;

	r = cbw_cow_record_load(dev, &rec);
	if (r == -ENOENT)
		return 0;
	if (r)
		return cbw_error("Cannot read the COW record of '%s': %s",
				 dev->spec, strerror(-r));
	if (!strcmp(rec.kind, "file"))
		r = cbw_release_file(&rec);
	else if (!strcmp(rec.kind, "thin"))
		r = cbw_release_thin(&rec);
	if (!r)
		cbw_cow_record_remove(dev);
	return r;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

/*
 * "snapshot info": the COW device cbwctl made, if any (nothing otherwise,
 * so that the output of other snapshots stays as it was).
 */
void cbw_cow_show(const struct cbw_dev *dev)
{
	struct cbw_cow_record rec;

	if (cbw_cow_record_load(dev, &rec))
		return;
	if (cbw_opts.json) {
		cbw_json_object_begin("cow_made");
		cbw_json_string("kind", rec.kind);
		if (!strcmp(rec.kind, "file")) {
			cbw_json_string("path", rec.path);
			cbw_json_string("loop", rec.loop);
		} else {
			cbw_json_string("lv", rec.lv);
			cbw_json_string("pool", rec.pool);
		}
		cbw_json_object_end();
		return;
	}
	if (!strcmp(rec.kind, "file"))
		cbw_print_field("COW made by cbwctl", "file %s on %s", rec.path,
				rec.loop);
	else
		cbw_print_field("COW made by cbwctl", "thin LV %s in pool %s",
				rec.lv, rec.pool);
}

/* Why the copy of a backup failed, if its snapshot broke. */
void cbw_cow_explain_broken(const struct cbw_dev *dev)
{
	struct dm_cbw_snapshot_info s;
	struct cbw_cow_record rec;

	if (cbw_ctl_snapshot_info(dev, &s) || s.state != DM_CBW_SNAPSHOT_BROKEN)
		return;
	if (cbw_cow_record_load(dev, &rec))
		cbw_warn("The snapshot of '%s' broke: a copy to its COW device failed with %s; guest writes went on",
			 dev->spec, strerror(-s.error));
	else if (!strcmp(rec.kind, "file"))
		cbw_warn("The snapshot of '%s' broke: a copy to COW file %s failed with %s (is its file system full?); guest writes went on",
			 dev->spec, rec.path, strerror(-s.error));
	else
		cbw_warn("The snapshot of '%s' broke: a copy to thin LV %s failed with %s (is pool %s full?); guest writes went on",
			 dev->spec, rec.lv, strerror(-s.error), rec.pool);
}
