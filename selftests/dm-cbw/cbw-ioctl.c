// SPDX-License-Identifier: GPL-2.0
/*
 * Robustness of the dm-cbw control device, /dev/dm-cbw-control.
 *
 * Checks against the running kernel that every ioctl validates its
 * argument as include/uapi/linux/dm-cbw.h documents (size, flags, reserved
 * fields, names, device numbers, user pointers), that refused calls change
 * nothing, that the bitmap commands answer the documented errors, that a
 * range of a bitmap is read in bounded pieces, and that the commands stay
 * consistent while they race with each other and with writes.  Built with
 * -m32, the same checks go through the kernel's compat_ioctl path.
 *
 * Usage: cbw-ioctl [-m MODE] [-d SECONDS] [-j THREADS] CBW [OTHER...]
 *        cbw-ioctl -m FREEZE_MODE CBW BITMAP
 *
 *   CBW      MAJOR:MINOR of a cbw device without a snapshot and without
 *            dirty bitmaps.  It is written to: its data is not preserved.
 *   OTHER    MAJOR:MINOR of devices that are not cbw devices (a dm-linear,
 *            a loop device, ...): every command must answer ENODEV.
 *   -m MODE  basic: argument and semantics checks (default); stress: the
 *            concurrency check; all: both; version: VERSION only; leave:
 *            leave a bitmap on CBW; fresh: CBW must have no bitmaps (a new
 *            device after one was removed with "leave")
 *   FREEZE_MODE  steps of the freeze_bitmap check, which cbw_ioctl.sh
 *            drives with table reloads: prep: create BITMAP with known
 *            bits; busy: BITMAP is held by a loaded, not resumed table
 *            naming it as freeze_bitmap; frozen: BITMAP is frozen (first
 *            time), check it and THAW with MERGE; refrozen: BITMAP is
 *            frozen again, check and THAW without flags; race, race-merge:
 *            THAW (without flags, with MERGE) while writer threads write
 *   -d SECONDS  length of the concurrency check (default 15)
 *   -j THREADS  control threads of the concurrency check (default 4)
 *
 * Output is TAP.  Exit status: 0 if every check passed, 1 if one failed,
 * 4 if the control device does not exist.
 */
#define _FILE_OFFSET_BITS 64

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/dm-cbw.h>

#ifndef __printf
#define __printf(a, b)	__attribute__((format(printf, a, b)))
#endif
#ifndef __noreturn
#define __noreturn	__attribute__((noreturn))
#endif
#ifndef __aligned
#define __aligned(x)	__attribute__((aligned(x)))
#endif
#ifndef fallthrough
#define fallthrough	__attribute__((__fallthrough__))
#endif

#define KSFT_PASS	0
#define KSFT_FAIL	1
#define KSFT_SKIP	4

#define CONTROL_PATH	"/dev/" DM_CBW_CONTROL_NAME
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define MAX_OTHERS	16
#define NR_EXT		16
#define NR_ENT		8
#define MIB		(1024 * 1024)

/* The layout is the same for 32-bit and 64-bit callers. */
_Static_assert(sizeof(struct dm_cbw_version) == 40, "dm_cbw_version");
_Static_assert(sizeof(struct dm_cbw_bitmap_cmd) == 104, "dm_cbw_bitmap_cmd");
_Static_assert(sizeof(struct dm_cbw_bitmap_merge) == 112, "dm_cbw_bitmap_merge");
_Static_assert(sizeof(struct dm_cbw_bitmap_info) == 120, "dm_cbw_bitmap_info");
_Static_assert(sizeof(struct dm_cbw_bitmap_list) == 48, "dm_cbw_bitmap_list");
_Static_assert(sizeof(struct dm_cbw_extent) == 16, "dm_cbw_extent");
_Static_assert(sizeof(struct dm_cbw_bitmap_read) == 136, "dm_cbw_bitmap_read");
_Static_assert(sizeof(struct dm_cbw_snapshot_info) == 120, "dm_cbw_snapshot_info");
_Static_assert(sizeof(struct dm_cbw_bitmap_mark) == 112, "dm_cbw_bitmap_mark");
_Static_assert(offsetof(struct dm_cbw_bitmap_info, successor_count) == 40,
	       "successor_count");
_Static_assert(offsetof(struct dm_cbw_bitmap_merge, sources) == 16, "sources");
_Static_assert(offsetof(struct dm_cbw_bitmap_read, next_offset) == 48, "next_offset");

/* The fields every argument starts with. */
struct hdr {
	__u32 size;
	__u32 flags;
	__u32 dev_major;
	__u32 dev_minor;
};

union arg {
	struct hdr h;
	struct dm_cbw_version v;
	struct dm_cbw_bitmap_cmd b;
	struct dm_cbw_bitmap_merge m;
	struct dm_cbw_bitmap_info i;
	struct dm_cbw_bitmap_list l;
	struct dm_cbw_bitmap_read r;
	struct dm_cbw_snapshot_info s;
	struct dm_cbw_bitmap_mark k;
};

enum {
	C_VERSION, C_ADD, C_REMOVE, C_CLEAR, C_ENABLE, C_DISABLE, C_MERGE,
	C_QUERY, C_LIST, C_READ, C_SNAP_INFO, C_SNAP_ACCESS, C_THAW, C_MARK,
	NR_CMDS
};

static const struct cmd {
	const char *name;
	unsigned long req;
	size_t size;
} cmds[NR_CMDS] = {
	[C_VERSION] = { "VERSION", DM_CBW_IOC_VERSION,
			sizeof(struct dm_cbw_version) },
	[C_ADD] = { "BITMAP_ADD", DM_CBW_IOC_BITMAP_ADD,
		    sizeof(struct dm_cbw_bitmap_cmd) },
	[C_REMOVE] = { "BITMAP_REMOVE", DM_CBW_IOC_BITMAP_REMOVE,
		       sizeof(struct dm_cbw_bitmap_cmd) },
	[C_CLEAR] = { "BITMAP_CLEAR", DM_CBW_IOC_BITMAP_CLEAR,
		      sizeof(struct dm_cbw_bitmap_cmd) },
	[C_ENABLE] = { "BITMAP_ENABLE", DM_CBW_IOC_BITMAP_ENABLE,
		       sizeof(struct dm_cbw_bitmap_cmd) },
	[C_DISABLE] = { "BITMAP_DISABLE", DM_CBW_IOC_BITMAP_DISABLE,
			sizeof(struct dm_cbw_bitmap_cmd) },
	[C_MERGE] = { "BITMAP_MERGE", DM_CBW_IOC_BITMAP_MERGE,
		      sizeof(struct dm_cbw_bitmap_merge) },
	[C_QUERY] = { "BITMAP_QUERY", DM_CBW_IOC_BITMAP_QUERY,
		      sizeof(struct dm_cbw_bitmap_info) },
	[C_LIST] = { "BITMAP_LIST", DM_CBW_IOC_BITMAP_LIST,
		     sizeof(struct dm_cbw_bitmap_list) },
	[C_READ] = { "BITMAP_READ", DM_CBW_IOC_BITMAP_READ,
		     sizeof(struct dm_cbw_bitmap_read) },
	[C_SNAP_INFO] = { "SNAPSHOT_INFO", DM_CBW_IOC_SNAPSHOT_INFO,
			  sizeof(struct dm_cbw_snapshot_info) },
	[C_SNAP_ACCESS] = { "SNAPSHOT_ACCESS", DM_CBW_IOC_SNAPSHOT_ACCESS,
			    sizeof(struct dm_cbw_bitmap_read) },
	[C_THAW] = { "BITMAP_THAW", DM_CBW_IOC_BITMAP_THAW,
		     sizeof(struct dm_cbw_bitmap_cmd) },
	[C_MARK] = { "BITMAP_MARK", DM_CBW_IOC_BITMAP_MARK,
		     sizeof(struct dm_cbw_bitmap_mark) },
};

static int ctl = -1;			/* the control device */
static unsigned int cbw_major, cbw_minor;
static unsigned int nr_others;
static unsigned int other_major[MAX_OTHERS], other_minor[MAX_OTHERS];
static int bdev = -1;			/* the cbw device, O_DIRECT */
static uint64_t dev_size;
static size_t page_size;
static char *edge;			/* read-write page before a PROT_NONE one */
static char *ro_page;			/* a read-only page */

/* Valid pointers that the kernel follows from the arguments. */
static char src_names[DM_CBW_MAX_MERGE_SOURCES + 1][DM_CBW_NAME_LEN];
static struct dm_cbw_extent ext_buf[NR_EXT];
static struct dm_cbw_bitmap_info ent_buf[NR_ENT];

/* ------------------------------------------------------------------ */
/* TAP output                                                          */
/* ------------------------------------------------------------------ */

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned int nr_tests, nr_failed;
static bool cur_failed;

static void __printf(1, 2) diag(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&out_lock);
	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

/* Ends the current check: ok unless something failed since the last one. */
static void __printf(1, 2) report(const char *fmt, ...)
{
	va_list ap;

	nr_tests++;
	if (cur_failed)
		nr_failed++;
	printf("%sok %u ", cur_failed ? "not " : "", nr_tests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	cur_failed = false;
}

static void __noreturn __printf(1, 2)
bail(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	nr_tests++;
	printf("not ok %u cbw-ioctl: aborted\n1..%u\n", nr_tests, nr_tests);
	exit(KSFT_FAIL);
}

static const char *ename(int e)
{
	static __thread char buf[32];
	const char *s;

	if (!e)
		return "success";
	s = strerrorname_np(e);
	if (s)
		return s;
	snprintf(buf, sizeof(buf), "errno %d", e);
	return buf;
}

/* A failed expectation of the current check. */
static void __printf(1, 2) fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	diag("%s", msg);
	cur_failed = true;
}

/* Expects @got (0 or an errno) to be @want; @what says which call. */
static bool __printf(3, 4)
expect(int got, int want, const char *what, ...)
{
	char msg[256];
	va_list ap;

	if (got == want)
		return true;
	va_start(ap, what);
	vsnprintf(msg, sizeof(msg), what, ap);
	va_end(ap);
	fail("%s: expected %s, got %s", msg, ename(want), ename(got));
	return false;
}

static bool __printf(2, 3)
check(bool cond, const char *what, ...)
{
	char msg[256];
	va_list ap;

	if (cond)
		return true;
	va_start(ap, what);
	vsnprintf(msg, sizeof(msg), what, ap);
	va_end(ap);
	fail("%s", msg);
	return false;
}

/* ------------------------------------------------------------------ */
/* Calls                                                               */
/* ------------------------------------------------------------------ */

static int do_ioctl(unsigned long req, const void *arg)
{
	return ioctl(ctl, req, arg) < 0 ? errno : 0;
}

static __u64 ptr(const void *p)
{
	return (__u64)(uintptr_t)p;
}

static void set_hdr(void *arg, size_t size)
{
	struct hdr *h = arg;

	h->size = size;
	h->flags = 0;
	h->dev_major = cbw_major;
	h->dev_minor = cbw_minor;
}

static void set_name(char *dst, const char *name)
{
	memset(dst, 0, DM_CBW_NAME_LEN);
	memcpy(dst, name, strnlen(name, DM_CBW_NAME_LEN));
}

static void bcmd_init(struct dm_cbw_bitmap_cmd *b, const char *name,
		      __u64 granularity, __u32 flags)
{
	memset(b, 0, sizeof(*b));
	set_hdr(b, sizeof(*b));
	b->flags = flags;
	b->granularity = granularity;
	set_name(b->name, name);
}

static int bm_add(const char *name, __u64 granularity, __u32 flags)
{
	struct dm_cbw_bitmap_cmd b;

	bcmd_init(&b, name, granularity, flags);
	return do_ioctl(DM_CBW_IOC_BITMAP_ADD, &b);
}

/* REMOVE, CLEAR, ENABLE or DISABLE. */
static int bm_do(unsigned long req, const char *name)
{
	struct dm_cbw_bitmap_cmd b;

	bcmd_init(&b, name, 0, 0);
	return do_ioctl(req, &b);
}

static int bm_remove(const char *name)
{
	return bm_do(DM_CBW_IOC_BITMAP_REMOVE, name);
}

static int bm_query(const char *name, struct dm_cbw_bitmap_info *info)
{
	memset(info, 0, sizeof(*info));
	set_hdr(info, sizeof(*info));
	set_name(info->name, name);
	return do_ioctl(DM_CBW_IOC_BITMAP_QUERY, info);
}

static int bm_thaw(const char *name, __u32 flags)
{
	struct dm_cbw_bitmap_cmd b;

	bcmd_init(&b, name, 0, flags);
	return do_ioctl(DM_CBW_IOC_BITMAP_THAW, &b);
}

static void mark_init(struct dm_cbw_bitmap_mark *k, const char *name,
		      __u64 offset, __u64 length)
{
	memset(k, 0, sizeof(*k));
	set_hdr(k, sizeof(*k));
	k->offset = offset;
	k->length = length;
	set_name(k->name, name);
}

static int bm_mark(const char *name, __u64 offset, __u64 length)
{
	struct dm_cbw_bitmap_mark k;

	mark_init(&k, name, offset, length);
	return do_ioctl(DM_CBW_IOC_BITMAP_MARK, &k);
}

/* Fills @names, @n of them, as the kernel wants them. */
static void merge_init(struct dm_cbw_bitmap_merge *m, const char *target,
		       const void *names, __u32 n)
{
	memset(m, 0, sizeof(*m));
	set_hdr(m, sizeof(*m));
	m->sources = ptr(names);
	m->nr_sources = n;
	set_name(m->target, target);
}

static int bm_merge1(const char *target, const char *source)
{
	struct dm_cbw_bitmap_merge m;
	char name[DM_CBW_NAME_LEN];

	set_name(name, source);
	merge_init(&m, target, name, 1);
	return do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m);
}

static void list_init(struct dm_cbw_bitmap_list *l, void *entries, __u32 cap)
{
	memset(l, 0, sizeof(*l));
	set_hdr(l, sizeof(*l));
	l->entries = ptr(entries);
	l->nr_entries = cap;
	l->entry_size = sizeof(struct dm_cbw_bitmap_info);
}

/* Number of bitmaps of the cbw device, or -errno. */
static long bm_count(void)
{
	struct dm_cbw_bitmap_list l;
	int r;

	list_init(&l, NULL, 0);
	r = do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l);
	return r ? -r : (long)l.nr_entries;
}

static void read_init(struct dm_cbw_bitmap_read *rd, const char *name,
		      __u64 offset, __u64 length, void *ext, __u32 cap)
{
	memset(rd, 0, sizeof(*rd));
	set_hdr(rd, sizeof(*rd));
	rd->offset = offset;
	rd->length = length;
	rd->extents = ptr(ext);
	rd->nr_extents = cap;
	if (name)
		set_name(rd->name, name);
}

/* Writes @len bytes at @off of the cbw device (marks recording bitmaps). */
static int dev_write(void *buf, uint64_t off, size_t len)
{
	ssize_t r = pwrite(bdev, buf, len, off);

	if (r < 0)
		return errno;
	return (size_t)r == len ? 0 : EIO;
}

static void *wbuf;

static void write_or_bail(uint64_t off, size_t len)
{
	int r = dev_write(wbuf, off, len);

	if (r)
		bail("writing %zu bytes at %" PRIu64 " to the cbw device: %s",
		     len, off, ename(r));
}

/* ------------------------------------------------------------------ */
/* Setup                                                               */
/* ------------------------------------------------------------------ */

static bool parse_devno(const char *s, unsigned int *maj, unsigned int *min)
{
	unsigned long a, b;
	char *end;

	errno = 0;
	a = strtoul(s, &end, 0);
	if (errno || *end != ':' || a > UINT_MAX)
		return false;
	b = strtoul(end + 1, &end, 0);
	if (errno || *end || b > UINT_MAX)
		return false;
	*maj = a;
	*min = b;
	return true;
}

/* Opens the block device @maj:@min: its /dev node, or a private one. */
static int open_blkdev(unsigned int maj, unsigned int min, int flags)
{
	char path[PATH_MAX], line[256], dir[] = "/tmp/cbw-ioctl.XXXXXX";
	dev_t devt = makedev(maj, min);
	struct stat st;
	int fd = -1, e;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/uevent", maj, min);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "DEVNAME=", 8))
			continue;
		line[strcspn(line, "\n")] = 0;
		snprintf(path, sizeof(path), "/dev/%s", line + 8);
		fd = open(path, flags);
		if (fd >= 0 && (fstat(fd, &st) || !S_ISBLK(st.st_mode) ||
				st.st_rdev != devt)) {
			close(fd);
			fd = -1;
		}
		break;
	}
	if (f)
		fclose(f);
	if (fd >= 0)
		return fd;

	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/dev", dir);
	if (!mknod(path, S_IFBLK | 0600, devt))
		fd = open(path, flags);
	e = errno;
	unlink(path);
	rmdir(dir);
	errno = e;
	return fd;
}

/* A page that is not mapped (checked, since a later mmap may take it). */
static void *unmapped_page(void)
{
	static char *page;
	unsigned char vec;

	if (page && mincore(page, page_size, &vec) && errno == ENOMEM)
		return page;
	page = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED || munmap(page, page_size))
		bail("mmap/munmap: %s", strerror(errno));
	return page;
}

/* A kernel address: never valid as a user pointer. */
#define KERNEL_PTR	0xffff888000000000ULL

/* ------------------------------------------------------------------ */
/* Basic: generic argument checks of every command                     */
/* ------------------------------------------------------------------ */

/*
 * The bitmaps the generic checks use:
 *   t-gen     enabled, 4 KiB, dirty: CLEAR/ENABLE/DISABLE/QUERY/READ/MARK
 *   t-gen-m   disabled, clean: the target of MERGE (source t-gen)
 *   t-gen-rm  exists: REMOVE removes it
 *   t-gen-add does not exist: ADD creates it; THAW of it gives ENOENT
 *
 * THAW needs a frozen bitmap, which only a cbw table with a COW device can
 * make: here a valid THAW names a missing bitmap (ENOENT), so that every
 * argument check (EINVAL, EFAULT) is told apart from the lookup; the
 * frozen modes repeat the checks on a frozen bitmap.
 */
static void prepare(void)
{
	struct dm_cbw_bitmap_info info;

	bm_add("t-gen", 4096, 0);
	bm_do(DM_CBW_IOC_BITMAP_ENABLE, "t-gen");
	if (!bm_query("t-gen", &info) && !info.count)
		write_or_bail(MIB, 8192);
	bm_add("t-gen-m", 4096, DM_CBW_BITMAP_ADD_DISABLED);
	bm_do(DM_CBW_IOC_BITMAP_DISABLE, "t-gen-m");
	bm_do(DM_CBW_IOC_BITMAP_CLEAR, "t-gen-m");
	bm_add("t-gen-rm", 4096, 0);
	bm_remove("t-gen-add");
}

static void unprepare(void)
{
	bm_remove("t-gen");
	bm_remove("t-gen-m");
	bm_remove("t-gen-rm");
	bm_remove("t-gen-add");
}

/* What a refused call must not change. */
struct state {
	int gen_r, m_r, rm_r, add_r;
	struct dm_cbw_bitmap_info gen, m;
	long count;
};

static void get_state(struct state *s)
{
	struct dm_cbw_bitmap_info tmp;

	memset(s, 0, sizeof(*s));
	s->gen_r = bm_query("t-gen", &s->gen);
	s->m_r = bm_query("t-gen-m", &s->m);
	s->rm_r = bm_query("t-gen-rm", &tmp);
	s->add_r = bm_query("t-gen-add", &tmp);
	s->count = bm_count();
}

static bool same_info(const struct dm_cbw_bitmap_info *a,
		      const struct dm_cbw_bitmap_info *b)
{
	return a->granularity == b->granularity && a->count == b->count &&
	       a->status == b->status;
}

static void show_state(const char *when, const struct state *s)
{
	diag("  %s: t-gen %s count %llu status %u, t-gen-m %s count %llu, t-gen-rm %s, t-gen-add %s, %ld bitmaps",
	     when, ename(s->gen_r), (unsigned long long)s->gen.count,
	     s->gen.status, ename(s->m_r), (unsigned long long)s->m.count,
	     ename(s->rm_r), ename(s->add_r), s->count);
}

static void expect_unchanged(const struct state *before, const char *what)
{
	struct state after;

	get_state(&after);
	if (before->gen_r == after.gen_r && before->m_r == after.m_r &&
	    before->rm_r == after.rm_r && before->add_r == after.add_r &&
	    before->count == after.count &&
	    same_info(&before->gen, &after.gen) &&
	    same_info(&before->m, &after.m))
		return;
	fail("%s: the bitmaps changed", what);
	show_state("before", before);
	show_state("after", &after);
}

/* A valid argument for command @c, and the result it must give. */
static int make_valid(int c, union arg *a)
{
	memset(a, 0, sizeof(*a));
	set_hdr(a, cmds[c].size);
	switch (c) {
	case C_VERSION:
		a->h.dev_major = 0;
		a->h.dev_minor = 0;
		break;
	case C_ADD:
		a->b.granularity = 4096;
		set_name(a->b.name, "t-gen-add");
		break;
	case C_REMOVE:
		set_name(a->b.name, "t-gen-rm");
		break;
	case C_CLEAR:
	case C_ENABLE:
	case C_DISABLE:
		set_name(a->b.name, "t-gen");
		break;
	case C_MERGE:
		set_name(src_names[0], "t-gen");
		a->m.sources = ptr(src_names);
		a->m.nr_sources = 1;
		set_name(a->m.target, "t-gen-m");
		break;
	case C_QUERY:
		set_name(a->i.name, "t-gen");
		break;
	case C_LIST:
		a->l.entries = ptr(ent_buf);
		a->l.nr_entries = NR_ENT;
		a->l.entry_size = sizeof(struct dm_cbw_bitmap_info);
		break;
	case C_READ:
	case C_SNAP_ACCESS:
		a->r.offset = 0;
		a->r.length = dev_size;
		a->r.extents = ptr(ext_buf);
		a->r.nr_extents = NR_EXT;
		if (c == C_READ)
			set_name(a->r.name, "t-gen");
		break;
	case C_SNAP_INFO:
		break;
	case C_THAW:
		set_name(a->b.name, "t-gen-add");
		break;
	case C_MARK:
		/* Dirty already: the count stays. */
		a->k.offset = MIB;
		a->k.length = 4096;
		set_name(a->k.name, "t-gen");
		break;
	}
	if (c == C_SNAP_ACCESS)
		return ENODATA;
	return c == C_THAW ? ENOENT : 0;
}

/* Calls @c with the argument at @p (prepared first); refusals change nothing. */
static int call_at(int c, const void *p, int want, const char *what)
{
	struct state before;
	int r;

	prepare();
	get_state(&before);
	r = do_ioctl(cmds[c].req, p);
	expect(r, want, "%s %s", cmds[c].name, what);
	if (r && r != ENODATA)
		expect_unchanged(&before, what);
	return r;
}

/* Calls @c's argument @a with request code @req, which must be refused. */
static void call_code(int c, unsigned long req, const union arg *a,
		      const char *what)
{
	struct state before;

	if (req == cmds[c].req)
		return;
	prepare();
	get_state(&before);
	expect(do_ioctl(req, a), ENOTTY, "%s as 0x%lx (%s)", cmds[c].name,
	       req, what);
	expect_unchanged(&before, what);
}

static void test_valid(int c)
{
	union arg a;
	int want = make_valid(c, &a);

	call_at(c, &a, want, "valid argument");
	report("%s: a valid argument gives %s", cmds[c].name, ename(want));
}

static void test_small_sizes(int c)
{
	static const char *const what[] = { "size 0", "size 8", "size sizeof-1",
					    "size sizeof-8" };
	size_t sizes[] = { 0, 8, cmds[c].size - 1, cmds[c].size - 8 };
	union arg a;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		make_valid(c, &a);
		a.h.size = sizes[i];
		call_at(c, &a, EINVAL, what[i]);
	}
	report("%s: size smaller than the structure => EINVAL, nothing changed",
	       cmds[c].name);
}

static void test_grown(int c)
{
	/* A grown structure, as a newer caller would pass it. */
	struct {
		union arg a;
		char tail[64];
	} __aligned(8) g;
	size_t size = cmds[c].size;
	unsigned long req = cmds[c].req;
	unsigned long grown_req = _IOC(_IOC_DIR(req), _IOC_TYPE(req),
				       _IOC_NR(req), size + 8);
	struct state before;
	int want, r;

	memset(&g, 0, sizeof(g));
	want = make_valid(c, &g.a);
	g.a.h.size = size + 8;
	call_at(c, &g, want, "size sizeof+8, zero tail");

	make_valid(c, &g.a);
	g.a.h.size = size + 64;
	call_at(c, &g, want, "size sizeof+64, zero tail");

	/*
	 * The request code keeps the size of the first version: one that
	 * encodes the grown size is another command.
	 */
	make_valid(c, &g.a);
	g.a.h.size = size + 8;
	prepare();
	get_state(&before);
	r = do_ioctl(grown_req, &g);
	expect(r, ENOTTY, "%s as 0x%lx (grown ioctl number), size sizeof+8",
	       cmds[c].name, grown_req);
	expect_unchanged(&before, "grown ioctl number");
	report("%s: larger structure with a zero tail is accepted (the request code of the first version only)",
	       cmds[c].name);

	make_valid(c, &g.a);
	g.a.h.size = size + 8;
	((char *)&g)[size] = 1;
	call_at(c, &g, EINVAL, "size sizeof+8, first tail byte 1");

	make_valid(c, &g.a);
	memset((char *)&g + size, 0, sizeof(g) - size);
	g.a.h.size = size + 64;
	((char *)&g)[size + 63] = (char)0x80;
	call_at(c, &g, EINVAL, "size sizeof+64, last tail byte 0x80");
	report("%s: larger structure with a nonzero tail byte => EINVAL, nothing changed",
	       cmds[c].name);
}

static void test_absurd_size(int c)
{
	union arg *big = calloc(1, MIB);

	if (!big)
		bail("out of memory");
	make_valid(c, big);
	big->h.size = MIB;
	call_at(c, big, EINVAL, "size 1 MiB, zero tail");
	big->h.size = UINT32_MAX;
	call_at(c, big, EINVAL, "size 0xffffffff");
	free(big);
	report("%s: absurd size (1 MiB, 4 GiB-1) => EINVAL, nothing changed",
	       cmds[c].name);
}

/*
 * The request code is matched whole: the right number with another
 * direction or size is not the command (ENOTTY), and changes nothing.
 */
static void test_wrong_code(int c)
{
	unsigned long req = cmds[c].req;
	unsigned int dir = _IOC_DIR(req), type = _IOC_TYPE(req);
	unsigned int nr = _IOC_NR(req), size = _IOC_SIZE(req);
	static const unsigned int dirs[] = { _IOC_NONE, _IOC_READ, _IOC_WRITE,
					     _IOC_READ | _IOC_WRITE };
	union arg a;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(dirs); i++) {
		if (dirs[i] == dir)
			continue;
		make_valid(c, &a);
		call_code(c, _IOC(dirs[i], type, nr, size), &a, "direction");
	}
	make_valid(c, &a);
	call_code(c, _IOC(dir, type, nr, size - 8), &a, "size sizeof-8");
	make_valid(c, &a);
	call_code(c, _IOC(dir, type, nr, 0), &a, "size 0");
	make_valid(c, &a);
	call_code(c, _IOC(dir, type, nr, sizeof(a)), &a, "size of another");
	report("%s: the right number with another direction or size => ENOTTY, nothing changed",
	       cmds[c].name);
}

static void test_bad_arg(int c)
{
	size_t size = cmds[c].size;
	union arg a;
	char *p;

	call_at(c, NULL, EFAULT, "NULL argument");
	call_at(c, (void *)1, EFAULT, "argument 1");
	call_at(c, unmapped_page(), EFAULT, "argument in an unmapped page");
	call_at(c, (void *)(uintptr_t)-page_size, EFAULT,
		"argument in the last page of the address space");

	/* The structure runs into a PROT_NONE page. */
	make_valid(c, &a);
	p = edge + page_size - size + 8;
	memcpy(p, &a, size - 8);
	call_at(c, p, EFAULT, "argument running into an inaccessible page");
	/* Only the size field is readable. */
	p = edge + page_size - 4;
	memcpy(p, &a, 4);
	call_at(c, p, EFAULT, "only the size field readable");
	/* A grown structure whose zero tail runs into the PROT_NONE page. */
	make_valid(c, &a);
	a.h.size = size + 64;
	p = edge + page_size - size - 8;
	memcpy(p, &a, size);
	memset(p + size, 0, 8);
	call_at(c, p, EFAULT, "grown structure, tail inaccessible");
	report("%s: bad argument pointer => EFAULT, nothing changed",
	       cmds[c].name);
}

static void test_ro_arg(int c)
{
	union arg a;
	int want = make_valid(c, &a);

	/* Results are copied back for _IOWR commands. */
	if (!want && (_IOC_DIR(cmds[c].req) & _IOC_READ))
		want = EFAULT;
	if (mprotect(ro_page, page_size, PROT_READ | PROT_WRITE))
		bail("mprotect: %s", strerror(errno));
	memcpy(ro_page, &a, sizeof(a));
	if (mprotect(ro_page, page_size, PROT_READ))
		bail("mprotect: %s", strerror(errno));
	call_at(c, ro_page, want, "argument in a read-only page");
	report("%s: argument in a read-only page gives %s", cmds[c].name,
	       ename(want));
}

/*
 * Fields that must be zero (or flags that are unknown): each nonzero value
 * is refused with EINVAL and changes nothing.
 */
struct field {
	const char *name;
	size_t off;
	size_t width;
	__u64 val;
};

#define F(type, member, v) \
	{ #member "=" #v, offsetof(type, member), \
	  sizeof(((type *)0)->member), v }
#define FR(type, i, v) \
	{ "reserved[" #i "]=" #v, offsetof(type, reserved) + (i) * 8, 8, v }

static const struct field version_fields[] = {
	F(struct dm_cbw_version, flags, 1),
	F(struct dm_cbw_version, flags, 0x80000000),
	F(struct dm_cbw_version, dev_major, 1),
	F(struct dm_cbw_version, dev_minor, 1),
	F(struct dm_cbw_version, reserved, 1),
	{ NULL, 0, 0, 0 }
};

static const struct field add_fields[] = {
	F(struct dm_cbw_bitmap_cmd, flags, 2),
	F(struct dm_cbw_bitmap_cmd, flags, 0x80000000),
	F(struct dm_cbw_bitmap_cmd, flags, 0xffffffff),
	FR(struct dm_cbw_bitmap_cmd, 0, 1),
	FR(struct dm_cbw_bitmap_cmd, 1, 0x8000000000000000ULL),
	{ NULL, 0, 0, 0 }
};

/* REMOVE, CLEAR, ENABLE and DISABLE take no flags and no granularity. */
static const struct field bcmd_fields[] = {
	F(struct dm_cbw_bitmap_cmd, flags, 1),
	F(struct dm_cbw_bitmap_cmd, flags, 0x80000000),
	F(struct dm_cbw_bitmap_cmd, granularity, 4096),
	F(struct dm_cbw_bitmap_cmd, granularity, 1),
	FR(struct dm_cbw_bitmap_cmd, 0, 1),
	FR(struct dm_cbw_bitmap_cmd, 1, 1),
	{ NULL, 0, 0, 0 }
};

static const struct field merge_fields[] = {
	F(struct dm_cbw_bitmap_merge, flags, 1),
	F(struct dm_cbw_bitmap_merge, flags, 0x80000000),
	F(struct dm_cbw_bitmap_merge, reserved0, 1),
	FR(struct dm_cbw_bitmap_merge, 0, 1),
	FR(struct dm_cbw_bitmap_merge, 1, 1),
	{ NULL, 0, 0, 0 }
};

static const struct field query_fields[] = {
	F(struct dm_cbw_bitmap_info, flags, 1),
	F(struct dm_cbw_bitmap_info, flags, 0x80000000),
	F(struct dm_cbw_bitmap_info, reserved0, 1),
	F(struct dm_cbw_bitmap_info, successor_count, 1),
	F(struct dm_cbw_bitmap_info, generation, 1),
	{ NULL, 0, 0, 0 }
};

static const struct field list_fields[] = {
	F(struct dm_cbw_bitmap_list, flags, 1),
	F(struct dm_cbw_bitmap_list, flags, 0x80000000),
	FR(struct dm_cbw_bitmap_list, 0, 1),
	FR(struct dm_cbw_bitmap_list, 1, 1),
	{ NULL, 0, 0, 0 }
};

static const struct field read_fields[] = {
	F(struct dm_cbw_bitmap_read, flags, 1),
	F(struct dm_cbw_bitmap_read, flags, 0x80000000),
	F(struct dm_cbw_bitmap_read, reserved0, 1),
	F(struct dm_cbw_bitmap_read, next_offset, 512),
	F(struct dm_cbw_bitmap_read, next_offset, 0x8000000000000000ULL),
	FR(struct dm_cbw_bitmap_read, 0, 1),
	FR(struct dm_cbw_bitmap_read, 1, 1),
	{ NULL, 0, 0, 0 }
};

static const struct field snap_info_fields[] = {
	F(struct dm_cbw_snapshot_info, flags, 1),
	F(struct dm_cbw_snapshot_info, flags, 0x80000000),
	FR(struct dm_cbw_snapshot_info, 0, 1),
	FR(struct dm_cbw_snapshot_info, 1, 1),
	FR(struct dm_cbw_snapshot_info, 2, 1),
	FR(struct dm_cbw_snapshot_info, 3, 1),
	{ NULL, 0, 0, 0 }
};

/* THAW knows DM_CBW_BITMAP_THAW_MERGE only, and takes no granularity. */
static const struct field thaw_fields[] = {
	F(struct dm_cbw_bitmap_cmd, flags, 2),
	F(struct dm_cbw_bitmap_cmd, flags, 3),
	F(struct dm_cbw_bitmap_cmd, flags, 0x80000000),
	F(struct dm_cbw_bitmap_cmd, flags, 0xffffffff),
	F(struct dm_cbw_bitmap_cmd, granularity, 4096),
	F(struct dm_cbw_bitmap_cmd, granularity, 1),
	FR(struct dm_cbw_bitmap_cmd, 0, 1),
	FR(struct dm_cbw_bitmap_cmd, 1, 0x8000000000000000ULL),
	{ NULL, 0, 0, 0 }
};

/* MARK: besides flags and reserved fields, ranges it must refuse. */
static const struct field mark_fields[] = {
	F(struct dm_cbw_bitmap_mark, flags, 1),
	F(struct dm_cbw_bitmap_mark, flags, 0x80000000),
	FR(struct dm_cbw_bitmap_mark, 0, 1),
	FR(struct dm_cbw_bitmap_mark, 1, 0x8000000000000000ULL),
	F(struct dm_cbw_bitmap_mark, length, 0),
	F(struct dm_cbw_bitmap_mark, length, 1),
	F(struct dm_cbw_bitmap_mark, length, 4000),
	F(struct dm_cbw_bitmap_mark, offset, 100),
	F(struct dm_cbw_bitmap_mark, offset, 0xfffffffffffffe00ULL),
	F(struct dm_cbw_bitmap_mark, offset, 0x8000000000000000ULL),
	F(struct dm_cbw_bitmap_mark, length, 0xfffffffffffff000ULL),
	{ NULL, 0, 0, 0 }
};

static const struct field *const cmd_fields[NR_CMDS] = {
	[C_VERSION] = version_fields,
	[C_ADD] = add_fields,
	[C_REMOVE] = bcmd_fields,
	[C_CLEAR] = bcmd_fields,
	[C_ENABLE] = bcmd_fields,
	[C_DISABLE] = bcmd_fields,
	[C_MERGE] = merge_fields,
	[C_QUERY] = query_fields,
	[C_LIST] = list_fields,
	[C_READ] = read_fields,
	[C_SNAP_INFO] = snap_info_fields,
	[C_SNAP_ACCESS] = read_fields,
	[C_THAW] = thaw_fields,
	[C_MARK] = mark_fields,
};

/* Sets the field @f of the argument @a to its value. */
static void set_field(union arg *a, const struct field *f)
{
	if (f->width == 4) {
		__u32 v = f->val;

		memcpy((char *)a + f->off, &v, 4);
	} else {
		memcpy((char *)a + f->off, &f->val, 8);
	}
}

static void test_fields(int c)
{
	const struct field *f;
	union arg a;

	for (f = cmd_fields[c]; f->name; f++) {
		make_valid(c, &a);
		set_field(&a, f);
		call_at(c, &a, EINVAL, f->name);
	}
	if (c == C_ENABLE) {
		/* A refused ENABLE leaves a disabled bitmap disabled. */
		struct dm_cbw_bitmap_info info;

		make_valid(c, &a);
		a.b.flags = 1;
		prepare();
		bm_do(DM_CBW_IOC_BITMAP_DISABLE, "t-gen");
		expect(do_ioctl(cmds[c].req, &a), EINVAL, "ENABLE flags=1");
		if (!bm_query("t-gen", &info))
			check(!(info.status & DM_CBW_BITMAP_RECORDING),
			      "a refused ENABLE enabled the bitmap");
	}
	report("%s: unknown flags and nonzero reserved fields => EINVAL, nothing changed",
	       cmds[c].name);
}

static void test_generic(void)
{
	int c;

	for (c = 0; c < NR_CMDS; c++) {
		test_valid(c);
		test_small_sizes(c);
		test_grown(c);
		test_absurd_size(c);
		test_wrong_code(c);
		test_bad_arg(c);
		test_ro_arg(c);
		test_fields(c);
	}
	unprepare();
}

/* ------------------------------------------------------------------ */
/* Basic: specific checks                                              */
/* ------------------------------------------------------------------ */

static void test_version(void)
{
	struct dm_cbw_version v;
	__u64 want = DM_CBW_FEATURE_BITMAPS | DM_CBW_FEATURE_SNAPSHOT_BITMAP |
		     DM_CBW_FEATURE_FREEZE;
	int r;

	memset(&v, 0, sizeof(v));
	v.size = sizeof(v);
	r = do_ioctl(DM_CBW_IOC_VERSION, &v);
	if (expect(r, 0, "VERSION")) {
		diag("interface version %u.%u.%u, features 0x%llx", v.major,
		     v.minor, v.patch, (unsigned long long)v.features);
		check(v.major == 1, "major version %u, expected 1", v.major);
		check(v.minor >= 1, "minor version %u, expected 1 or later (freeze)",
		      v.minor);
		check((v.features & want) == want,
		      "features 0x%llx lack 0x%llx",
		      (unsigned long long)v.features,
		      (unsigned long long)want);
		check(v.size == sizeof(v) && !v.flags && !v.dev_major &&
		      !v.dev_minor && !v.reserved,
		      "VERSION changed its input fields");
	}
	report("VERSION works: 1.1 or later, bitmap and freeze features");
}

static void test_unknown_cmds(void)
{
	static const struct {
		const char *name;
		unsigned long req;
	} bad[] = {
		{ "nr 0", _IOWR(DM_CBW_IOCTL, 0, struct dm_cbw_version) },
		{ "nr 0x3f", _IOWR(DM_CBW_IOCTL, 0x3f, struct dm_cbw_version) },
		{ "nr 0x4e (after the last)",
		  _IOWR(DM_CBW_IOCTL, DM_CBW_BITMAP_MARK_CMD + 1,
			struct dm_cbw_version) },
		{ "nr 0xff", _IOWR(DM_CBW_IOCTL, 0xff, struct dm_cbw_version) },
		{ "_IO nr 0x4e", _IO(DM_CBW_IOCTL, DM_CBW_BITMAP_MARK_CMD + 1) },
		{ "type 0xfd (dm) nr VERSION",
		  _IOWR(0xfd, DM_CBW_VERSION_CMD, struct dm_cbw_version) },
		{ "type 0xca nr VERSION",
		  _IOWR(0xca, DM_CBW_VERSION_CMD, struct dm_cbw_version) },
		{ "type 0xcc nr VERSION",
		  _IOWR(0xcc, DM_CBW_VERSION_CMD, struct dm_cbw_version) },
		{ "type 'V' nr BITMAP_ADD",
		  _IOW('V', DM_CBW_BITMAP_ADD_CMD, struct dm_cbw_bitmap_cmd) },
		{ "TCGETS", 0x5401 },
	};
	struct dm_cbw_version v;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		/* A VERSION argument: it would work if misrouted. */
		memset(&v, 0, sizeof(v));
		v.size = sizeof(v);
		expect(do_ioctl(bad[i].req, &v), ENOTTY, "%s (0x%lx)",
		       bad[i].name, bad[i].req);
	}
	report("unknown command numbers and wrong ioctl types => ENOTTY");
}

static const char *const bad_names[] = {
	"", " ", "a b", "a\tb", "tab\t", "nl\n", "\001ctl", "del\x7f",
	" lead", "trail ", "a\vb", "a\fb", "a\rb",
};

static void bad_name_desc(char *buf, size_t len, const char *name)
{
	size_t i, o = 0;

	o += snprintf(buf + o, len - o, "name \"");
	for (i = 0; name[i] && o < len - 8; i++) {
		if (name[i] > 0x20 && name[i] < 0x7f)
			buf[o++] = name[i];
		else
			o += snprintf(buf + o, len - o, "\\x%02x",
				      (unsigned char)name[i]);
	}
	snprintf(buf + o, len - o, "\"");
}

static void test_names(void)
{
	char long_name[DM_CBW_NAME_LEN], desc[96];
	struct dm_cbw_bitmap_info info;
	struct dm_cbw_bitmap_cmd b;
	struct dm_cbw_bitmap_read rd;
	struct dm_cbw_bitmap_merge m;
	struct dm_cbw_bitmap_list l;
	long before = bm_count();
	unsigned int i, found;
	int c, r;

	expect(bm_add("t-name", 4096, 0), 0, "ADD t-name");
	for (i = 0; i < ARRAY_SIZE(bad_names); i++) {
		bad_name_desc(desc, sizeof(desc), bad_names[i]);
		for (c = C_ADD; c <= C_DISABLE; c++) {
			bcmd_init(&b, bad_names[i], 0, 0);
			expect(do_ioctl(cmds[c].req, &b), EINVAL, "%s %s",
			       cmds[c].name, desc);
		}
		expect(bm_query(bad_names[i], &info), EINVAL, "QUERY %s", desc);
		read_init(&rd, bad_names[i], 0, dev_size, ext_buf, NR_EXT);
		expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EINVAL, "READ %s",
		       desc);
		expect(bm_merge1(bad_names[i], "t-name"), EINVAL,
		       "MERGE target %s", desc);
		expect(bm_merge1("t-name", bad_names[i]), EINVAL,
		       "MERGE source %s", desc);
		expect(bm_thaw(bad_names[i], 0), EINVAL, "THAW %s", desc);
		expect(bm_mark(bad_names[i], 0, 4096), EINVAL, "MARK %s", desc);
	}
	check(bm_count() == before + 1, "invalid names created bitmaps");
	report("names empty or with white space or control characters => EINVAL");

	/* All DM_CBW_NAME_LEN bytes used: no terminating NUL. */
	memset(long_name, 'x', sizeof(long_name));
	for (c = C_ADD; c <= C_DISABLE; c++) {
		bcmd_init(&b, "", 0, 0);
		memcpy(b.name, long_name, sizeof(b.name));
		expect(do_ioctl(cmds[c].req, &b), EINVAL,
		       "%s unterminated name", cmds[c].name);
	}
	memset(&info, 0, sizeof(info));
	set_hdr(&info, sizeof(info));
	memcpy(info.name, long_name, sizeof(info.name));
	expect(do_ioctl(DM_CBW_IOC_BITMAP_QUERY, &info), EINVAL,
	       "QUERY unterminated name");
	read_init(&rd, NULL, 0, dev_size, ext_buf, NR_EXT);
	memcpy(rd.name, long_name, sizeof(rd.name));
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EINVAL,
	       "READ unterminated name");
	merge_init(&m, "t-name", long_name, 1);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), EINVAL,
	       "MERGE unterminated source name");
	set_name(src_names[0], "t-name");
	merge_init(&m, "", src_names, 1);
	memcpy(m.target, long_name, sizeof(m.target));
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), EINVAL,
	       "MERGE unterminated target name");
	bcmd_init(&b, "", 0, DM_CBW_BITMAP_THAW_MERGE);
	memcpy(b.name, long_name, sizeof(b.name));
	expect(do_ioctl(DM_CBW_IOC_BITMAP_THAW, &b), EINVAL,
	       "THAW unterminated name");
	{
		struct dm_cbw_bitmap_mark k;

		mark_init(&k, "", 0, 4096);
		memcpy(k.name, long_name, sizeof(k.name));
		expect(do_ioctl(DM_CBW_IOC_BITMAP_MARK, &k), EINVAL,
		       "MARK unterminated name");
	}
	check(bm_count() == before + 1, "unterminated names created bitmaps");
	report("unterminated names (%d bytes without NUL) => EINVAL",
	       DM_CBW_NAME_LEN);

	/* The longest name. */
	memset(long_name, 'y', sizeof(long_name));
	long_name[DM_CBW_NAME_LEN - 1] = 0;
	long_name[0] = '!';
	long_name[DM_CBW_NAME_LEN - 2] = '~';
	expect(bm_add(long_name, 0, 0), 0, "ADD 63-character name");
	r = bm_query(long_name, &info);
	expect(r, 0, "QUERY 63-character name");
	if (!r)
		check(!memcmp(info.name, long_name, DM_CBW_NAME_LEN),
		      "QUERY changed the name");
	list_init(&l, ent_buf, NR_ENT);
	r = do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l);
	expect(r, 0, "LIST");
	for (i = found = 0; !r && i < l.nr_entries && i < NR_ENT; i++)
		found += !memcmp(ent_buf[i].name, long_name, DM_CBW_NAME_LEN);
	check(found == 1, "LIST shows the 63-character name %u times", found);
	read_init(&rd, long_name, 0, dev_size, ext_buf, NR_EXT);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), 0,
	       "READ 63-character name");
	expect(bm_merge1(long_name, "t-name"), 0, "MERGE into 63-character name");
	expect(bm_merge1("t-name", long_name), 0, "MERGE from 63-character name");
	expect(bm_mark(long_name, 0, 4096), 0, "MARK 63-character name");
	expect(bm_thaw(long_name, 0), EINVAL,
	       "THAW 63-character name (not frozen)");
	expect(bm_remove(long_name), 0, "REMOVE 63-character name");
	expect(bm_query(long_name, &info), ENOENT,
	       "QUERY removed 63-character name");
	expect(bm_remove("t-name"), 0, "REMOVE t-name");
	report("a %d-character name works", DM_CBW_NAME_LEN - 1);
}

/* Every command that names a device must answer ENODEV for @maj:@min. */
static void expect_enodev(unsigned int maj, unsigned int min, const char *desc)
{
	struct dm_cbw_extent ext[4];
	long before = bm_count();
	union arg a;
	int c, r;

	for (c = C_ADD; c < NR_CMDS; c++) {
		make_valid(c, &a);
		switch (c) {
		case C_ADD:
		case C_REMOVE:
		case C_CLEAR:
		case C_ENABLE:
		case C_DISABLE:
			set_name(a.b.name, "t-nodev");
			break;
		case C_MERGE:
			set_name(a.m.target, "t-nodev");
			set_name(src_names[0], "t-nodev");
			break;
		case C_QUERY:
			set_name(a.i.name, "t-nodev");
			break;
		case C_READ:
			set_name(a.r.name, "t-nodev");
			fallthrough;
		case C_SNAP_ACCESS:
			a.r.extents = ptr(ext);
			a.r.nr_extents = ARRAY_SIZE(ext);
			break;
		case C_THAW:
			set_name(a.b.name, "t-nodev");
			break;
		case C_MARK:
			set_name(a.k.name, "t-nodev");
			break;
		}
		a.h.dev_major = maj;
		a.h.dev_minor = min;
		r = do_ioctl(cmds[c].req, &a);
		expect(r, ENODEV, "%s on %s (%u:%u)", cmds[c].name, desc, maj,
		       min);
	}
	check(bm_count() == before, "ADD on %s created a bitmap on the cbw device",
	      desc);
	report("every command on %s (%u:%u) => ENODEV", desc, maj, min);
}

static void test_enodev(void)
{
	unsigned int i;
	char desc[64];

	expect_enodev(0, 0, "device 0:0");
	expect_enodev(cbw_major, 0xffffffff, "minor 0xffffffff");
	expect_enodev(cbw_major, (1U << 20) - 1, "an unused dm minor");
	expect_enodev(0xffffffff, cbw_minor, "major 0xffffffff");
	/* Numbers that would name the cbw device if packed into a dev_t. */
	expect_enodev(0, cbw_major << 20 | cbw_minor,
		      "a minor overflowing into the major");
	expect_enodev(cbw_major + (1U << 12), cbw_minor,
		      "a major wider than 12 bits");
	for (i = 0; i < nr_others; i++) {
		snprintf(desc, sizeof(desc), "non-cbw device #%u", i + 1);
		expect_enodev(other_major[i], other_minor[i], desc);
	}
}

static void test_bitmap_cmds(void)
{
	static const __u64 bad_gran[] = { 1, 256, 511, 513, 1000, 4097,
					  65535, 3ULL << 20,
					  0x8000000000000001ULL };
	struct dm_cbw_bitmap_info info;
	long before;
	unsigned int i;
	int c, r;

	expect(bm_add("t-dup", 4096, 0), 0, "ADD t-dup");
	expect(bm_add("t-dup", 8192, DM_CBW_BITMAP_ADD_DISABLED), EEXIST,
	       "ADD t-dup again");
	r = bm_query("t-dup", &info);
	if (expect(r, 0, "QUERY t-dup"))
		check(info.granularity == 4096 &&
		      (info.status & DM_CBW_BITMAP_RECORDING),
		      "the refused ADD changed t-dup (granularity %llu status %u)",
		      (unsigned long long)info.granularity, info.status);
	expect(bm_remove("t-dup"), 0, "REMOVE t-dup");
	report("duplicate ADD => EEXIST, the bitmap unchanged");

	for (c = C_REMOVE; c <= C_DISABLE; c++)
		expect(bm_do(cmds[c].req, "t-missing"), ENOENT, "%s t-missing",
		       cmds[c].name);
	expect(bm_query("t-missing", &info), ENOENT, "QUERY t-missing");
	expect(bm_thaw("t-missing", 0), ENOENT, "THAW t-missing");
	expect(bm_thaw("t-missing", DM_CBW_BITMAP_THAW_MERGE), ENOENT,
	       "THAW MERGE t-missing");
	expect(bm_mark("t-missing", 0, 4096), ENOENT, "MARK t-missing");
	expect(bm_remove("t-dup"), ENOENT, "REMOVE t-dup a second time");
	report("REMOVE/CLEAR/ENABLE/DISABLE/QUERY/THAW/MARK of a missing bitmap => ENOENT");

	before = bm_count();
	for (i = 0; i < ARRAY_SIZE(bad_gran); i++)
		expect(bm_add("t-gran", bad_gran[i], 0), EINVAL,
		       "ADD granularity %llu", (unsigned long long)bad_gran[i]);
	expect(bm_query("t-gran", &info), ENOENT, "QUERY after refused ADDs");
	check(bm_count() == before, "refused ADDs created bitmaps");
	report("granularity not a power of 2 or below 512 => EINVAL, nothing added");

	r = bm_add("t-gran", 0, 0);
	expect(r, 0, "ADD granularity 0");
	if (!bm_query("t-gran", &info))
		check(info.granularity == DM_CBW_DEFAULT_GRANULARITY,
		      "granularity 0 gave %llu",
		      (unsigned long long)info.granularity);
	bm_remove("t-gran");
	expect(bm_add("t-gran", DM_CBW_MIN_GRANULARITY, 0), 0,
	       "ADD granularity 512");
	if (!bm_query("t-gran", &info))
		check(info.granularity == DM_CBW_MIN_GRANULARITY && !info.count,
		      "granularity 512 gave %llu, count %llu",
		      (unsigned long long)info.granularity,
		      (unsigned long long)info.count);
	bm_remove("t-gran");
	report("granularity 0 means %d, 512 works", DM_CBW_DEFAULT_GRANULARITY);

	/* Granularity above the 2 GiB limit is refused. */
	expect(bm_add("t-huge", DM_CBW_MAX_GRANULARITY << 1, 0), EINVAL,
	       "ADD granularity 4 GiB");
	report("granularity above 2 GiB is refused");

	/* A single bit covers more than the device. */
	expect(bm_add("t-huge", DM_CBW_MAX_GRANULARITY, 0), 0,
	       "ADD granularity 2 GiB");
	write_or_bail(0, 4096);
	if (!bm_query("t-huge", &info))
		check(info.count == dev_size,
		      "a granule larger than the device counts %llu bytes, not %llu",
		      (unsigned long long)info.count,
		      (unsigned long long)dev_size);
	bm_remove("t-huge");
	report("a granule larger than the device counts only the device's bytes");
}

static void expect_info(const char *name, __u64 count, __u32 status,
			const char *what)
{
	struct dm_cbw_bitmap_info info;
	int r = bm_query(name, &info);

	if (!expect(r, 0, "QUERY %s (%s)", name, what))
		return;
	check(info.count == count && info.status == status,
	      "%s: %s has count %llu status %u, expected count %llu status %u",
	      what, name, (unsigned long long)info.count, info.status,
	      (unsigned long long)count, status);
}

/* A device has at most DM_CBW_MAX_BITMAPS bitmaps. */
static void test_max_bitmaps(void)
{
	char name[DM_CBW_NAME_LEN];
	long have = bm_count();
	long i, added = 0;

	for (i = have; i < DM_CBW_MAX_BITMAPS; i++) {
		snprintf(name, sizeof(name), "t-max-%ld", i);
		if (expect(bm_add(name, 1 << 20, 0), 0, "ADD %s", name))
			added++;
	}
	check(bm_count() == DM_CBW_MAX_BITMAPS, "%ld bitmaps, expected %d",
	      bm_count(), DM_CBW_MAX_BITMAPS);
	expect(bm_add("t-max-over", 1 << 20, 0), ENOSPC, "ADD beyond %d",
	       DM_CBW_MAX_BITMAPS);
	expect(bm_add("t-max-over", 1 << 20, DM_CBW_BITMAP_ADD_DISABLED),
	       ENOSPC, "ADD disabled beyond %d", DM_CBW_MAX_BITMAPS);
	snprintf(name, sizeof(name), "t-max-%ld", have);
	expect(bm_add(name, 1 << 20, 0), EEXIST, "ADD of an existing name at the maximum");
	check(bm_count() == DM_CBW_MAX_BITMAPS, "%ld bitmaps after refused ADDs",
	      bm_count());
	report("ADD: at most %d bitmaps, then ENOSPC (EEXIST for a taken name)",
	       DM_CBW_MAX_BITMAPS);

	expect(bm_remove(name), 0, "REMOVE %s", name);
	expect(bm_add("t-max-over", 1 << 20, 0), 0, "ADD after a REMOVE");
	expect(bm_remove("t-max-over"), 0, "REMOVE t-max-over");
	for (i = have + 1; i < DM_CBW_MAX_BITMAPS; i++) {
		snprintf(name, sizeof(name), "t-max-%ld", i);
		expect(bm_remove(name), 0, "REMOVE %s", name);
	}
	check(bm_count() == have, "%ld bitmaps left, expected %ld", bm_count(),
	      have);
	report("ADD: a removed bitmap makes room for another (%ld added)",
	       added);
}

/* A device without a metadata device has no persistent bitmaps. */
static void test_no_persistent(void)
{
	struct dm_cbw_bitmap_info info;

	expect(bm_add("t-persistent", 4096, DM_CBW_BITMAP_PERSISTENT),
	       EOPNOTSUPP, "ADD with flag DM_CBW_BITMAP_PERSISTENT");
	expect(bm_add("t-persistent", 4096,
		      DM_CBW_BITMAP_PERSISTENT | DM_CBW_BITMAP_ADD_DISABLED),
	       EOPNOTSUPP, "ADD with flags PERSISTENT | ADD_DISABLED");
	expect(bm_query("t-persistent", &info), ENOENT,
	       "QUERY after the refused ADDs");
	expect(bm_add("t-persistent", 4096, 0), 0, "ADD t-persistent");
	if (expect(bm_query("t-persistent", &info), 0, "QUERY t-persistent"))
		check(!(info.status & DM_CBW_BITMAP_PERSISTENT) &&
		      !info.generation,
		      "status 0x%x generation %llu: persistent", info.status,
		      (unsigned long long)info.generation);
	expect(bm_remove("t-persistent"), 0, "REMOVE t-persistent");
	report("ADD: DM_CBW_BITMAP_PERSISTENT without a metadata device => EOPNOTSUPP; no bitmap reports it");
}

static void test_recording(void)
{
	const __u32 rec = DM_CBW_BITMAP_RECORDING;

	expect(bm_add("t-rec", 4096, DM_CBW_BITMAP_ADD_DISABLED), 0,
	       "ADD t-rec disabled");
	write_or_bail(0, 8192);
	expect_info("t-rec", 0, 0, "created disabled, written");
	expect(bm_do(DM_CBW_IOC_BITMAP_ENABLE, "t-rec"), 0, "ENABLE");
	expect(bm_do(DM_CBW_IOC_BITMAP_ENABLE, "t-rec"), 0, "ENABLE again");
	write_or_bail(64 * 1024, 12288);
	expect_info("t-rec", 12288, rec, "enabled, written");
	expect(bm_do(DM_CBW_IOC_BITMAP_DISABLE, "t-rec"), 0, "DISABLE");
	write_or_bail(128 * 1024, 4096);
	expect_info("t-rec", 12288, 0, "disabled, written");
	expect(bm_do(DM_CBW_IOC_BITMAP_CLEAR, "t-rec"), 0, "CLEAR");
	expect_info("t-rec", 0, 0, "cleared");
	expect(bm_do(DM_CBW_IOC_BITMAP_DISABLE, "t-rec"), 0, "DISABLE again");
	expect(bm_remove("t-rec"), 0, "REMOVE");
	report("ENABLE, DISABLE and CLEAR do what they say");
}

static void test_merge(void)
{
	static char names[DM_CBW_MAX_MERGE_SOURCES + 1][DM_CBW_NAME_LEN];
	struct dm_cbw_bitmap_merge m;
	struct state before;
	char *p;
	unsigned int i;

	expect(bm_add("t-src", 4096, 0), 0, "ADD t-src");
	expect(bm_add("t-dst", 65536, DM_CBW_BITMAP_ADD_DISABLED), 0,
	       "ADD t-dst");
	write_or_bail(0, 4096);
	write_or_bail(3 * MIB, 4096);
	expect(bm_do(DM_CBW_IOC_BITMAP_DISABLE, "t-src"), 0, "DISABLE t-src");

	for (i = 0; i < ARRAY_SIZE(names); i++)
		set_name(names[i], "t-src");
	merge_init(&m, "t-dst", names, 0);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), EINVAL, "nr_sources 0");
	merge_init(&m, "t-dst", names, DM_CBW_MAX_MERGE_SOURCES + 1);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), EINVAL,
	       "nr_sources %d", DM_CBW_MAX_MERGE_SOURCES + 1);
	merge_init(&m, "t-dst", names, 0xffffffff);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), EINVAL,
	       "nr_sources 0xffffffff");
	expect_info("t-dst", 0, 0, "after refused MERGEs");
	report("MERGE: nr_sources 0 or above %d => EINVAL",
	       DM_CBW_MAX_MERGE_SOURCES);

	prepare();
	get_state(&before);
	merge_init(&m, "t-dst", NULL, 1);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), EFAULT, "sources NULL");
	merge_init(&m, "t-dst", (void *)1, 1);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), EFAULT, "sources 1");
	merge_init(&m, "t-dst", unmapped_page(), 1);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), EFAULT,
	       "sources in an unmapped page");
	merge_init(&m, "t-dst", NULL, 1);
	m.sources = KERNEL_PTR;
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), EFAULT,
	       "sources a kernel address");
	if (sizeof(void *) == 4) {
		merge_init(&m, "t-dst", names, 1);
		m.sources |= 1ULL << 32;
		expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), EFAULT,
		       "sources with bit 32 set");
	}
	/* The second name lies in the PROT_NONE page. */
	p = edge + page_size - DM_CBW_NAME_LEN;
	set_name(p, "t-src");
	merge_init(&m, "t-dst", p, 2);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), EFAULT,
	       "second source name inaccessible");
	expect_info("t-dst", 0, 0, "after refused MERGEs");
	expect_unchanged(&before, "MERGE with bad sources");
	unprepare();
	report("MERGE: bad sources pointer => EFAULT, nothing changed");

	set_name(names[1], "t-missing");
	merge_init(&m, "t-dst", names, 3);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), ENOENT,
	       "a missing source among three");
	set_name(names[1], "t-src");
	expect_info("t-dst", 0, 0, "after a MERGE with a missing source");
	merge_init(&m, "t-missing", names, 1);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), ENOENT, "missing target");
	set_name(names[2], "bad name");
	merge_init(&m, "t-dst", names, 3);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), EINVAL,
	       "an invalid source name among three");
	set_name(names[2], "t-src");
	expect_info("t-dst", 0, 0, "after refused MERGEs");
	report("MERGE: a missing source or target => ENOENT, target unchanged");

	merge_init(&m, "t-dst", names, DM_CBW_MAX_MERGE_SOURCES);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), 0, "%d sources",
	       DM_CBW_MAX_MERGE_SOURCES);
	/* Two 4 KiB source granules mark two 64 KiB target granules. */
	expect_info("t-dst", 2 * 65536, 0, "merged from 4 KiB granules");
	expect_info("t-src", 8192, 0, "source of a MERGE");
	expect(bm_merge1("t-dst", "t-dst"), 0, "MERGE into itself");
	expect_info("t-dst", 2 * 65536, 0, "merged into itself");
	/* Back the other way: a 64 KiB source bit marks 16 target bits. */
	expect(bm_do(DM_CBW_IOC_BITMAP_CLEAR, "t-src"), 0, "CLEAR t-src");
	expect(bm_merge1("t-src", "t-dst"), 0, "MERGE 64 KiB into 4 KiB");
	expect_info("t-src", 2 * 65536, 0, "merged from 64 KiB granules");
	report("MERGE: %d sources and differing granularities work",
	       DM_CBW_MAX_MERGE_SOURCES);

	expect(bm_remove("t-src"), 0, "REMOVE t-src");
	expect(bm_remove("t-dst"), 0, "REMOVE t-dst");
}

static bool has_name(const struct dm_cbw_bitmap_info *e, unsigned int n,
		     const char *name)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (!strncmp(e[i].name, name, DM_CBW_NAME_LEN))
			return true;
	return false;
}

static void test_list(void)
{
	static const char *const names[] = { "t-l0", "t-l1", "t-l2" };
	static const __u64 gran[] = { 512, 4096, 1 << 20 };
	struct dm_cbw_bitmap_info ent[5], *e;
	struct dm_cbw_bitmap_list l;
	struct state before;
	size_t off;
	unsigned int i, j;
	int r;

	for (i = 0; i < ARRAY_SIZE(names); i++)
		expect(bm_add(names[i], gran[i], i ? 0 : DM_CBW_BITMAP_ADD_DISABLED),
		       0, "ADD %s", names[i]);

	list_init(&l, ent, ARRAY_SIZE(ent));
	l.entry_size = 0;
	expect(do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l), EINVAL, "entry_size 0");
	l.entry_size = sizeof(ent[0]) - 8;
	expect(do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l), EINVAL,
	       "entry_size sizeof-8");
	l.entry_size = sizeof(ent[0]) + 8;
	expect(do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l), EINVAL,
	       "entry_size sizeof+8");
	l.entry_size = sizeof(struct dm_cbw_bitmap_cmd);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l), EINVAL,
	       "entry_size of another structure");
	report("LIST: wrong entry_size => EINVAL");

	list_init(&l, NULL, 0);
	r = do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l);
	if (expect(r, 0, "capacity 0, entries NULL"))
		check(l.nr_entries == ARRAY_SIZE(names),
		      "capacity 0 returned %u, expected %zu", l.nr_entries,
		      ARRAY_SIZE(names));
	list_init(&l, unmapped_page(), 0);
	r = do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l);
	if (expect(r, 0, "capacity 0, entries unmapped"))
		check(l.nr_entries == ARRAY_SIZE(names),
		      "capacity 0 returned %u", l.nr_entries);
	report("LIST: capacity 0 returns the number of bitmaps");

	memset(ent, 0xa5, sizeof(ent));
	list_init(&l, ent, 2);
	r = do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l);
	if (expect(r, 0, "capacity 2")) {
		check(l.nr_entries == ARRAY_SIZE(names),
		      "capacity 2 returned %u, expected the total %zu",
		      l.nr_entries, ARRAY_SIZE(names));
		for (i = 0; i < 2; i++)
			check(has_name(&ent[i], 1, names[0]) ||
			      has_name(&ent[i], 1, names[1]) ||
			      has_name(&ent[i], 1, names[2]),
			      "entry %u has no bitmap name", i);
		check(strncmp(ent[0].name, ent[1].name, DM_CBW_NAME_LEN),
		      "the same bitmap listed twice");
		for (off = 0; off < sizeof(ent[2]); off++)
			if (((unsigned char *)&ent[2])[off] != 0xa5)
				break;
		check(off == sizeof(ent[2]),
		      "LIST wrote beyond the capacity (entry 2 byte %zu)", off);
	}
	report("LIST: a capacity below the count fills that many, returns the total");

	memset(ent, 0, sizeof(ent));
	list_init(&l, ent, ARRAY_SIZE(ent));
	r = do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l);
	if (expect(r, 0, "capacity 5")) {
		check(l.nr_entries == ARRAY_SIZE(names), "returned %u",
		      l.nr_entries);
		for (i = 0; i < ARRAY_SIZE(names); i++) {
			for (j = 0, e = NULL; j < l.nr_entries && j < 5; j++)
				if (!strncmp(ent[j].name, names[i],
					     DM_CBW_NAME_LEN))
					e = &ent[j];
			if (!check(e, "%s not listed", names[i]))
				continue;
			check(e->size == sizeof(*e) &&
			      e->dev_major == cbw_major &&
			      e->dev_minor == cbw_minor &&
			      e->granularity == gran[i] && !e->count &&
			      e->status == (i ? DM_CBW_BITMAP_RECORDING : 0u) &&
			      !e->flags && !e->reserved0 && !e->successor_count &&
			      !e->generation,
			      "entry of %s: size %u dev %u:%u granularity %llu count %llu status %u",
			      names[i], e->size, e->dev_major, e->dev_minor,
			      (unsigned long long)e->granularity,
			      (unsigned long long)e->count, e->status);
		}
	}
	report("LIST: entries describe every bitmap");

	prepare();
	get_state(&before);
	list_init(&l, NULL, 1);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l), EFAULT, "entries NULL");
	list_init(&l, (void *)1, 1);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l), EFAULT, "entries 1");
	list_init(&l, unmapped_page(), 4);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l), EFAULT,
	       "entries unmapped");
	list_init(&l, NULL, 4);
	l.entries = KERNEL_PTR;
	expect(do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l), EFAULT,
	       "entries a kernel address");
	if (sizeof(void *) == 4) {
		list_init(&l, ent, 4);
		l.entries |= 1ULL << 32;
		expect(do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l), EFAULT,
		       "entries with bit 32 set");
	}
	list_init(&l, ro_page, 4);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l), EFAULT,
	       "entries read-only");
	/* Room for one entry before the PROT_NONE page. */
	list_init(&l, edge + page_size - sizeof(ent[0]), 4);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l), EFAULT,
	       "entries running into an inaccessible page");
	expect_unchanged(&before, "LIST with bad entries");
	unprepare();
	report("LIST: bad entries pointer with capacity and bitmaps => EFAULT");

	for (i = 0; i < ARRAY_SIZE(names); i++)
		expect(bm_remove(names[i]), 0, "REMOVE %s", names[i]);
}

/* READ of @name; returns 0 or an errno, and *@nr and *@next. */
static int bm_read(const char *name, __u64 off, __u64 len,
		   struct dm_cbw_extent *ext, __u32 cap, __u32 *nr,
		   __u64 *next)
{
	struct dm_cbw_bitmap_read rd;
	int r;

	read_init(&rd, name, off, len, ext, cap);
	r = do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd);
	*nr = rd.nr_extents;
	*next = rd.next_offset;
	return r;
}

/*
 * Reads [@off, @off + @len) of @name with @cap extents a call, from
 * next_offset each time; checks the extents against @want (offset/length
 * pairs, in order).
 */
static void expect_walk(const char *name, __u64 off, __u64 len, __u32 cap,
			const struct dm_cbw_extent *want, unsigned int nr_want)
{
	struct dm_cbw_extent ext[NR_EXT];
	__u64 end = off + len > dev_size ? dev_size : off + len;
	__u64 pos = off, next;
	unsigned int got = 0, calls = 0, i;
	__u32 nr;
	int r;

	for (;;) {
		calls++;
		if (!check(calls <= 2 * nr_want + 4,
			   "%s: no end after %u calls (at %llu)", name, calls,
			   (unsigned long long)pos))
			return;
		r = bm_read(name, pos, off + len - pos, ext, cap, &nr, &next);
		if (!expect(r, 0, "READ %s from %llu", name,
			    (unsigned long long)pos))
			return;
		if (!check(nr <= cap, "%u extents returned, capacity %u", nr,
			   cap))
			return;
		for (i = 0; i < nr; i++, got++) {
			if (!check(got < nr_want &&
				   ext[i].offset == want[got].offset &&
				   ext[i].length == want[got].length,
				   "%s: extent %u is %llu+%llu, expected %llu+%llu",
				   name, got,
				   (unsigned long long)ext[i].offset,
				   (unsigned long long)ext[i].length,
				   got < nr_want ?
				   (unsigned long long)want[got].offset : 0,
				   got < nr_want ?
				   (unsigned long long)want[got].length : 0))
				return;
		}
		if (!check(next > pos || (next == end && !nr),
			   "%s: next_offset %llu does not advance from %llu",
			   name, (unsigned long long)next,
			   (unsigned long long)pos))
			return;
		if (!check(next <= end, "next_offset %llu beyond the end %llu",
			   (unsigned long long)next, (unsigned long long)end))
			return;
		if (next == end)
			break;
		if (!check(nr == cap,
			   "%s: %u extents (capacity %u) but next_offset %llu is not the end %llu",
			   name, nr, cap, (unsigned long long)next,
			   (unsigned long long)end))
			return;
		pos = next;
	}
	check(got == nr_want, "%s: %u extents, expected %u", name, got,
	      nr_want);
}

#define WALK_EXTENTS	40

static void test_read(void)
{
	struct dm_cbw_extent want[WALK_EXTENTS], ext[NR_EXT];
	struct dm_cbw_bitmap_read rd;
	struct state before;
	__u64 next;
	__u32 nr;
	unsigned int i;
	char *p;
	int r;

	expect(bm_add("t-walk", 4096, 0), 0, "ADD t-walk");
	expect(bm_add("t-coarse", 65536, 0), 0, "ADD t-coarse");
	/* Separate dirty extents: 4 KiB every 16 KiB, then 8 KiB ones. */
	for (i = 0; i < WALK_EXTENTS; i++) {
		want[i].offset = 2 * MIB + i * 16384;
		want[i].length = i < WALK_EXTENTS / 2 ? 4096 : 8192;
		write_or_bail(want[i].offset, want[i].length);
	}
	expect(bm_do(DM_CBW_IOC_BITMAP_DISABLE, "t-walk"), 0, "DISABLE");
	expect(bm_do(DM_CBW_IOC_BITMAP_DISABLE, "t-coarse"), 0, "DISABLE");

	read_init(&rd, "t-walk", 100, 4096, ext, NR_EXT);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EINVAL, "offset 100");
	read_init(&rd, "t-walk", 0, 4000, ext, NR_EXT);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EINVAL, "length 4000");
	read_init(&rd, "t-walk", 511, 1, ext, NR_EXT);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EINVAL,
	       "offset 511 length 1");
	read_init(&rd, NULL, 256, 512, ext, NR_EXT);
	expect(do_ioctl(DM_CBW_IOC_SNAPSHOT_ACCESS, &rd), EINVAL,
	       "SNAPSHOT_ACCESS offset 256");
	report("READ: offset or length not a multiple of 512 => EINVAL");

	read_init(&rd, "t-walk", 0, dev_size, ext, 0);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EINVAL, "nr_extents 0");
	read_init(&rd, "t-walk", 0, dev_size, ext, DM_CBW_MAX_EXTENTS + 1);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EINVAL,
	       "nr_extents %d", DM_CBW_MAX_EXTENTS + 1);
	read_init(&rd, "t-walk", 0, dev_size, ext, 0xffffffff);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EINVAL,
	       "nr_extents 0xffffffff");
	read_init(&rd, "t-walk", 0, dev_size, ext, NR_EXT);
	rd.next_offset = 4096;
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EINVAL,
	       "next_offset 4096 on input");
	report("READ: nr_extents 0 or above %d, or next_offset set => EINVAL",
	       DM_CBW_MAX_EXTENTS);

	{
		struct dm_cbw_extent *big = calloc(DM_CBW_MAX_EXTENTS,
						   sizeof(*big));

		if (!big)
			bail("out of memory");
		read_init(&rd, "t-walk", 0, dev_size, big, DM_CBW_MAX_EXTENTS);
		r = do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd);
		if (expect(r, 0, "nr_extents %d", DM_CBW_MAX_EXTENTS))
			check(rd.nr_extents == WALK_EXTENTS &&
			      rd.next_offset == dev_size &&
			      !memcmp(big, want, sizeof(want)),
			      "%u extents, next_offset %llu", rd.nr_extents,
			      (unsigned long long)rd.next_offset);
		free(big);
	}
	report("READ: nr_extents %d reads all extents at once",
	       DM_CBW_MAX_EXTENTS);

	expect_walk("t-walk", 0, dev_size, 1, want, WALK_EXTENTS);
	report("READ: one extent a call walks all %d extents in order to offset+length",
	       WALK_EXTENTS);
	expect_walk("t-walk", 0, dev_size, 7, want, WALK_EXTENTS);
	report("READ: seven extents a call walks all %d extents in order",
	       WALK_EXTENTS);
	/* A range that starts and ends inside extents: clamped to it. */
	{
		struct dm_cbw_extent sub[4] = {
			{ want[3].offset + 1024, 3072 },
			{ want[4].offset, 4096 },
			{ want[5].offset, 4096 },
			{ want[6].offset, 2048 },
		};

		expect_walk("t-walk", sub[0].offset,
			    want[6].offset + 2048 - sub[0].offset, 1, sub, 4);
	}
	report("READ: extents are clamped to the range");

	/* One 64 KiB granule covers 4 of the 16 KiB-spaced writes. */
	{
		struct dm_cbw_extent coarse[] = {
			{ 2 * MIB, 10 * 65536 },
			{ 2 * MIB + 512, 1024 },
		};

		expect_walk("t-coarse", 0, dev_size, 1, coarse, 1);
		expect_walk("t-coarse", coarse[1].offset, 1024, 1, &coarse[1],
			    1);
	}
	report("READ: extents are aligned to the granularity, clamped to the range");

	r = bm_read("t-walk", 0, 1ULL << 62, ext, NR_EXT, &nr, &next);
	if (expect(r, 0, "length 2^62"))
		check(nr == NR_EXT && next == want[NR_EXT].offset,
		      "length 2^62: %u extents, next_offset %llu", nr,
		      (unsigned long long)next);
	r = bm_read("t-walk", want[WALK_EXTENTS - 1].offset, 1ULL << 62, ext,
		    NR_EXT, &nr, &next);
	if (expect(r, 0, "last extent, length 2^62"))
		check(nr == 1 && next == dev_size,
		      "the last extent: %u extents, next_offset %llu (device %llu)",
		      nr, (unsigned long long)next,
		      (unsigned long long)dev_size);
	r = bm_read("t-walk", dev_size + MIB, MIB, ext, NR_EXT, &nr, &next);
	if (expect(r, 0, "beyond the device"))
		check(nr == 0 && next == dev_size,
		      "beyond the device: %u extents, next_offset %llu", nr,
		      (unsigned long long)next);
	r = bm_read("t-walk", 0, 0, ext, NR_EXT, &nr, &next);
	if (expect(r, 0, "length 0"))
		check(nr == 0 && next == 0, "length 0: %u extents, next %llu",
		      nr, (unsigned long long)next);
	r = bm_read("t-walk", 0, 2 * MIB, ext, NR_EXT, &nr, &next);
	if (expect(r, 0, "a clean range"))
		check(nr == 0 && next == 2 * MIB,
		      "a clean range: %u extents, next_offset %llu", nr,
		      (unsigned long long)next);
	report("READ: a range past the device is clamped to it");

	expect(bm_read("t-missing", 0, dev_size, ext, NR_EXT, &nr, &next),
	       ENOENT, "READ t-missing");
	report("READ of a missing bitmap => ENOENT");

	prepare();
	get_state(&before);
	read_init(&rd, "t-walk", 0, dev_size, NULL, NR_EXT);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EFAULT, "extents NULL");
	read_init(&rd, "t-walk", 0, dev_size, (void *)1, NR_EXT);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EFAULT, "extents 1");
	read_init(&rd, "t-walk", 0, dev_size, unmapped_page(), NR_EXT);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EFAULT,
	       "extents unmapped");
	read_init(&rd, "t-walk", 0, dev_size, NULL, NR_EXT);
	rd.extents = KERNEL_PTR;
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EFAULT,
	       "extents a kernel address");
	if (sizeof(void *) == 4) {
		read_init(&rd, "t-walk", 0, dev_size, ext, NR_EXT);
		rd.extents |= 1ULL << 32;
		expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EFAULT,
		       "extents with bit 32 set");
	}
	read_init(&rd, "t-walk", 0, dev_size, ro_page, NR_EXT);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EFAULT,
	       "extents read-only");
	p = edge + page_size - sizeof(ext[0]);
	read_init(&rd, "t-walk", 0, dev_size, p, NR_EXT);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_READ, &rd), EFAULT,
	       "extents running into an inaccessible page");
	expect_unchanged(&before, "READ with bad extents");
	unprepare();
	report("READ: bad extents pointer => EFAULT");

	expect(bm_remove("t-walk"), 0, "REMOVE t-walk");
	expect(bm_remove("t-coarse"), 0, "REMOVE t-coarse");
}

static void test_snapshot(void)
{
	struct dm_cbw_snapshot_info si;
	struct dm_cbw_bitmap_read rd;
	int r;

	memset(&si, 0, sizeof(si));
	set_hdr(&si, sizeof(si));
	r = do_ioctl(DM_CBW_IOC_SNAPSHOT_INFO, &si);
	if (expect(r, 0, "SNAPSHOT_INFO"))
		check(si.state == DM_CBW_SNAPSHOT_NONE && !si.error,
		      "state %u error %d, expected none", si.state, si.error);
	report("SNAPSHOT_INFO without a snapshot: state NONE");

	read_init(&rd, NULL, 0, dev_size, ext_buf, NR_EXT);
	expect(do_ioctl(DM_CBW_IOC_SNAPSHOT_ACCESS, &rd), ENODATA,
	       "SNAPSHOT_ACCESS");
	expect(bm_add("t-snap", 0, 0), 0, "ADD t-snap");
	read_init(&rd, "t-snap", 0, dev_size, ext_buf, NR_EXT);
	expect(do_ioctl(DM_CBW_IOC_SNAPSHOT_ACCESS, &rd), EINVAL,
	       "SNAPSHOT_ACCESS naming a bitmap");
	read_init(&rd, NULL, 0, dev_size, ext_buf, NR_EXT);
	rd.name[DM_CBW_NAME_LEN - 1] = 'x';
	expect(do_ioctl(DM_CBW_IOC_SNAPSHOT_ACCESS, &rd), EINVAL,
	       "SNAPSHOT_ACCESS with a nonzero last name byte");
	expect(bm_remove("t-snap"), 0, "REMOVE t-snap");
	report("SNAPSHOT_ACCESS without a snapshot => ENODATA, with a name => EINVAL");
}

static void test_mark(void)
{
	static const struct {
		__u64 off, len;
	} bad[] = {
		{ 100, 4096 }, { 0, 4000 }, { 511, 1 }, { 0, 0 }, { 4096, 0 },
		{ 0, 512 + 256 }, { 1ULL << 40, 0 },
		/* Beyond the device; dev_size is added to the offset. */
		{ 0, 512 }, { 512, 512 }, { 1ULL << 30, 4096 },
		/* Running past the end; offset dev_size - 4096. */
		{ 0, 8192 },
		/* Overflowing. */
		{ 0xfffffffffffffe00ULL, 512 }, { 0xfffffffffffffe00ULL, 1024 },
		{ 512, 0xfffffffffffffe00ULL }, { 1ULL << 63, 1ULL << 63 },
		{ 0, 0xfffffffffffffe00ULL },
	};
	struct dm_cbw_extent want[3] = {
		{ 0, 4096 }, { 2 * 4096, 2 * 4096 }, { dev_size - 4096, 4096 },
	};
	__u64 off;
	unsigned int i;

	expect(bm_add("t-mark", 4096, DM_CBW_BITMAP_ADD_DISABLED), 0,
	       "ADD t-mark disabled");
	expect(bm_add("t-mark64", 65536, DM_CBW_BITMAP_ADD_DISABLED), 0,
	       "ADD t-mark64 disabled");
	expect(bm_add("t-other", 4096, 0), 0, "ADD t-other");
	expect(bm_mark("t-mark", 512, 512), 0, "MARK one sector");
	expect_info("t-mark", 4096, 0, "one sector marked");
	expect(bm_mark("t-mark", 3 * 4096 - 512, 1024), 0,
	       "MARK across a granule boundary");
	expect_info("t-mark", 3 * 4096, 0, "a range across a boundary marked");
	expect(bm_mark("t-mark", 0, 4096), 0, "MARK a dirty granule");
	expect_info("t-mark", 3 * 4096, 0, "a dirty granule marked again");
	expect(bm_mark("t-mark", dev_size - 512, 512), 0,
	       "MARK the last sector");
	expect_info("t-mark", 4 * 4096, 0, "the last sector marked");
	expect_walk("t-mark", 0, dev_size, NR_EXT, want, ARRAY_SIZE(want));
	expect(bm_mark("t-mark64", 65536 - 512, 1024), 0,
	       "MARK 1 KiB across a 64 KiB boundary");
	expect_info("t-mark64", 2 * 65536, 0, "1 KiB across 64 KiB granules");
	expect_info("t-other", 0, DM_CBW_BITMAP_RECORDING,
		    "another bitmap, after MARKs");
	report("MARK marks every granule the range touches, in a disabled bitmap too, and no other bitmap");

	expect(bm_mark("t-mark", 0, dev_size), 0, "MARK the whole device");
	expect_info("t-mark", dev_size, 0, "the whole device marked");
	expect(bm_do(DM_CBW_IOC_BITMAP_ENABLE, "t-mark"), 0, "ENABLE t-mark");
	expect(bm_do(DM_CBW_IOC_BITMAP_CLEAR, "t-mark"), 0, "CLEAR t-mark");
	expect(bm_mark("t-mark", 4 * MIB, 4096), 0, "MARK a recording bitmap");
	expect_info("t-mark", 4096, DM_CBW_BITMAP_RECORDING,
		    "a recording bitmap marked");
	expect(bm_add("t-markhuge", DM_CBW_MAX_GRANULARITY,
		      DM_CBW_BITMAP_ADD_DISABLED), 0, "ADD granularity 2 GiB");
	expect(bm_mark("t-markhuge", dev_size - 512, 512), 0,
	       "MARK 2 GiB granule");
	expect_info("t-markhuge", dev_size, 0,
		    "a granule larger than the device marked");
	expect(bm_remove("t-markhuge"), 0, "REMOVE t-markhuge");
	report("MARK of the whole device, of a recording bitmap and of a granule larger than the device");

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		off = bad[i].off;
		if (i >= 7 && i <= 9)
			off += dev_size;
		else if (i == 10)
			off += dev_size - 4096;
		expect(bm_mark("t-mark", off, bad[i].len), EINVAL,
		       "MARK offset %llu length %llu",
		       (unsigned long long)off,
		       (unsigned long long)bad[i].len);
	}
	expect_info("t-mark", 4096, DM_CBW_BITMAP_RECORDING,
		    "after refused MARKs");
	expect_info("t-mark64", 2 * 65536, 0, "after refused MARKs of t-mark");
	report("MARK: unaligned, empty, beyond the device or overflowing ranges => EINVAL, nothing marked");

	expect(bm_remove("t-mark"), 0, "REMOVE t-mark");
	expect(bm_remove("t-mark64"), 0, "REMOVE t-mark64");
	expect(bm_remove("t-other"), 0, "REMOVE t-other");
}

static void test_thaw_not_frozen(void)
{
	struct dm_cbw_bitmap_info info;
	int r;

	expect(bm_add("t-thaw", 4096, 0), 0, "ADD t-thaw");
	expect(bm_add("t-thaw-d", 4096, DM_CBW_BITMAP_ADD_DISABLED), 0,
	       "ADD t-thaw-d");
	write_or_bail(5 * MIB, 4096);
	expect(bm_mark("t-thaw-d", 6 * MIB, 8192), 0, "MARK t-thaw-d");
	expect(bm_thaw("t-thaw", 0), EINVAL, "THAW an enabled bitmap");
	expect(bm_thaw("t-thaw", DM_CBW_BITMAP_THAW_MERGE), EINVAL,
	       "THAW MERGE an enabled bitmap");
	expect(bm_thaw("t-thaw-d", 0), EINVAL, "THAW a disabled bitmap");
	expect(bm_thaw("t-thaw-d", DM_CBW_BITMAP_THAW_MERGE), EINVAL,
	       "THAW MERGE a disabled bitmap");
	expect_info("t-thaw", 4096, DM_CBW_BITMAP_RECORDING,
		    "after refused THAWs");
	expect_info("t-thaw-d", 8192, 0, "after refused THAWs");
	r = bm_query("t-thaw", &info);
	if (expect(r, 0, "QUERY t-thaw"))
		check(!info.successor_count, "successor_count %llu without a freeze",
		      (unsigned long long)info.successor_count);
	write_or_bail(5 * MIB + 4096, 4096);
	expect_info("t-thaw", 8192, DM_CBW_BITMAP_RECORDING,
		    "written after refused THAWs");
	expect(bm_remove("t-thaw"), 0, "REMOVE t-thaw");
	expect(bm_remove("t-thaw-d"), 0, "REMOVE t-thaw-d");
	report("THAW of a bitmap that is not frozen => EINVAL, nothing changed");
}

/* A process without CAP_SYS_ADMIN holding an open control device. */
static void test_unprivileged(void)
{
	struct dm_cbw_bitmap_info info;
	pid_t pid;
	int status;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		bail("fork: %s", strerror(errno));
	if (!pid) {
		int r;

		if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(2);
		r = bm_add("t-eperm", 0, 0);
		if (r != EPERM) {
			diag("unprivileged ADD: expected EPERM, got %s",
			     ename(r));
			_exit(1);
		}
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		bail("waitpid: %s", strerror(errno));
	check(WIFEXITED(status) && WEXITSTATUS(status) != 2,
	      "cannot drop privileges");
	check(WIFEXITED(status) && !WEXITSTATUS(status),
	      "the unprivileged process was not refused");
	expect(bm_query("t-eperm", &info), ENOENT,
	       "QUERY t-eperm added without privileges");
	report("a process without CAP_SYS_ADMIN is refused (EPERM)");
}

/* Removes what a previous run may have left on the cbw device. */
static void remove_all(bool quiet)
{
	struct dm_cbw_bitmap_info ent[64];
	struct dm_cbw_bitmap_list l;
	unsigned int i;
	int r;

	list_init(&l, ent, ARRAY_SIZE(ent));
	r = do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l);
	if (r)
		bail("LIST on the cbw device %u:%u: %s", cbw_major, cbw_minor,
		     ename(r));
	for (i = 0; i < l.nr_entries && i < ARRAY_SIZE(ent); i++) {
		ent[i].name[DM_CBW_NAME_LEN - 1] = 0;
		if (!quiet)
			diag("removing leftover bitmap %s", ent[i].name);
		r = bm_remove(ent[i].name);
		if (r && !quiet)
			diag("REMOVE %s: %s", ent[i].name, ename(r));
	}
}

static void run_basic(void)
{
	test_version();
	remove_all(false);
	test_unknown_cmds();
	test_generic();
	test_names();
	test_enodev();
	test_bitmap_cmds();
	test_max_bitmaps();
	test_no_persistent();
	test_recording();
	test_merge();
	test_list();
	test_read();
	test_mark();
	test_thaw_not_frozen();
	test_snapshot();
	test_unprivileged();
	remove_all(false);
	check(bm_count() == 0, "bitmaps left: %ld", bm_count());
	report("no bitmaps left after the basic checks");
}

/* ------------------------------------------------------------------ */
/* Concurrency                                                         */
/* ------------------------------------------------------------------ */

static const struct {
	const char *name;
	__u64 gran;
} snames[] = {
	{ "c-0", 512 }, { "c-1", 4096 }, { "c-2", 65536 }, { "c-3", 1 << 20 },
};

#define NR_SNAMES	ARRAY_SIZE(snames)
#define KNOWN_STATUS	(DM_CBW_BITMAP_RECORDING | DM_CBW_BITMAP_BUSY | \
			 DM_CBW_BITMAP_PERSISTENT)

enum {
	S_ADD, S_REMOVE, S_CLEAR, S_ENABLE, S_DISABLE, S_QUERY, S_LIST,
	S_MERGE, S_READ, S_INFO, S_MARK, S_THAW, S_WRITE, NR_SOPS
};

static const char *const sop_name[NR_SOPS] = {
	"BITMAP_ADD", "BITMAP_REMOVE", "BITMAP_CLEAR", "BITMAP_ENABLE",
	"BITMAP_DISABLE", "BITMAP_QUERY", "BITMAP_LIST", "BITMAP_MERGE",
	"BITMAP_READ", "SNAPSHOT_INFO", "BITMAP_MARK", "BITMAP_THAW", "write",
};

static const char *const sop_allowed[NR_SOPS] = {
	"0/EEXIST", "0/ENOENT/EBUSY", "0/ENOENT/EBUSY", "0/ENOENT/EBUSY",
	"0/ENOENT/EBUSY", "0/ENOENT", "0", "0/ENOENT/EBUSY", "0/ENOENT", "0",
	"0/ENOENT", "EINVAL/ENOENT (nothing is frozen)", "complete writes",
};

static atomic_bool s_stop;
static atomic_ulong s_calls[NR_SOPS], s_bad[NR_SOPS], s_ok[NR_SOPS];
static atomic_uint s_msgs;

static void __printf(2, 3)
sbad(int op, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	atomic_fetch_add(&s_bad[op], 1);
	if (atomic_fetch_add(&s_msgs, 1) >= 20)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	diag("%s: %s", sop_name[op], msg);
}

static int find_sname(const char *name)
{
	unsigned int i;

	for (i = 0; i < NR_SNAMES; i++)
		if (!strncmp(name, snames[i].name, DM_CBW_NAME_LEN))
			return i;
	return -1;
}

static void check_info(int op, const struct dm_cbw_bitmap_info *info, int i)
{
	if (info->granularity != snames[i].gran || info->count > dev_size ||
	    info->count % 512 || info->status & ~KNOWN_STATUS ||
	    info->successor_count ||
	    strncmp(info->name, snames[i].name, DM_CBW_NAME_LEN))
		sbad(op, "%s: granularity %llu count %llu status %u name %.64s",
		     snames[i].name, (unsigned long long)info->granularity,
		     (unsigned long long)info->count, info->status,
		     info->name);
}

static void check_extents(int i, __u64 off, __u64 len, __u32 cap,
			  const struct dm_cbw_extent *ext, __u32 nr,
			  __u64 next)
{
	__u64 end = off + len > dev_size ? dev_size : off + len;
	__u64 g = snames[i].gran, prev = off, s, e;
	__u32 k;

	if (nr > cap) {
		sbad(S_READ, "%u extents, capacity %u", nr, cap);
		return;
	}
	for (k = 0; k < nr; k++) {
		s = ext[k].offset;
		e = s + ext[k].length;
		if (!ext[k].length || s < prev || (k && s == prev) ||
		    e > end || (s % g && s != off) || (e % g && e != end)) {
			sbad(S_READ, "%s [%llu, +%llu): extent %u is %llu+%llu",
			     snames[i].name, (unsigned long long)off,
			     (unsigned long long)len, k,
			     (unsigned long long)s,
			     (unsigned long long)ext[k].length);
			return;
		}
		prev = e;
	}
	if (next > end || next < prev || (nr < cap && next != end) ||
	    (next != end && next == prev))
		sbad(S_READ, "%s [%llu, +%llu): %u extents, capacity %u, next_offset %llu",
		     snames[i].name, (unsigned long long)off,
		     (unsigned long long)len, nr, cap,
		     (unsigned long long)next);
}

#define OK_ENOENT	(1U << 0)
#define OK_EBUSY	(1U << 1)
#define OK_EEXIST	(1U << 2)
#define OK_EINVAL	(1U << 3)
#define OK_SUCCESS	(1U << 4)

/* Counts a result: 0 or an errno, each if @ok allows it. */
static void count_result(int op, int r, unsigned int ok)
{
	atomic_fetch_add(&s_calls[op], 1);
	if (!r) {
		atomic_fetch_add(&s_ok[op], 1);
		if (!(ok & OK_SUCCESS))
			sbad(op, "success");
	} else if (!((r == ENOENT && (ok & OK_ENOENT)) ||
		     (r == EBUSY && (ok & OK_EBUSY)) ||
		     (r == EEXIST && (ok & OK_EEXIST)) ||
		     (r == EINVAL && (ok & OK_EINVAL)))) {
		sbad(op, "%s", ename(r));
	}
}

static void *stress_ctl(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg * 2654435761u ^
			    (unsigned int)time(NULL);
	static const unsigned long simple[] = {
		DM_CBW_IOC_BITMAP_REMOVE, DM_CBW_IOC_BITMAP_CLEAR,
		DM_CBW_IOC_BITMAP_ENABLE, DM_CBW_IOC_BITMAP_DISABLE,
	};
	char names[3][DM_CBW_NAME_LEN];
	struct dm_cbw_bitmap_info info, ent[NR_ENT];
	struct dm_cbw_extent ext[NR_EXT];
	struct dm_cbw_bitmap_merge m;
	struct dm_cbw_bitmap_list l;
	struct dm_cbw_snapshot_info si;
	__u64 off, len, next;
	__u32 cap, nr, k;
	int op, i, j, r;

	while (!atomic_load(&s_stop)) {
		op = rand_r(&seed) % S_WRITE;
		i = rand_r(&seed) % NR_SNAMES;
		switch (op) {
		case S_ADD:
			r = bm_add(snames[i].name, snames[i].gran,
				   rand_r(&seed) % 2 ?
				   DM_CBW_BITMAP_ADD_DISABLED : 0);
			count_result(op, r, OK_EEXIST | OK_SUCCESS);
			break;
		case S_REMOVE:
		case S_CLEAR:
		case S_ENABLE:
		case S_DISABLE:
			r = bm_do(simple[op - S_REMOVE], snames[i].name);
			count_result(op, r, OK_ENOENT | OK_EBUSY | OK_SUCCESS);
			break;
		case S_QUERY:
			r = bm_query(snames[i].name, &info);
			count_result(op, r, OK_ENOENT | OK_SUCCESS);
			if (!r)
				check_info(op, &info, i);
			break;
		case S_LIST:
			list_init(&l, ent, NR_ENT);
			r = do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l);
			count_result(op, r, OK_SUCCESS);
			if (r)
				break;
			if (l.nr_entries > NR_SNAMES)
				sbad(op, "%u bitmaps", l.nr_entries);
			for (k = 0; k < l.nr_entries && k < NR_ENT; k++) {
				j = find_sname(ent[k].name);
				if (j < 0 || ent[k].size != sizeof(ent[k]) ||
				    ent[k].dev_major != cbw_major ||
				    ent[k].dev_minor != cbw_minor)
					sbad(op, "entry %u: %.64s size %u dev %u:%u",
					     k, ent[k].name, ent[k].size,
					     ent[k].dev_major,
					     ent[k].dev_minor);
				else
					check_info(op, &ent[k], j);
			}
			break;
		case S_MERGE:
			nr = 1 + rand_r(&seed) % 3;
			for (k = 0; k < nr; k++)
				set_name(names[k],
					 snames[rand_r(&seed) % NR_SNAMES].name);
			merge_init(&m, snames[i].name, names, nr);
			r = do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m);
			count_result(op, r, OK_ENOENT | OK_EBUSY | OK_SUCCESS);
			break;
		case S_READ:
			off = (__u64)(rand_r(&seed) % (dev_size / 512)) * 512;
			if (rand_r(&seed) % 4)
				len = (__u64)(rand_r(&seed) %
					      (dev_size / 512 + 1)) * 512;
			else
				len = 1ULL << 50;
			cap = 1 + rand_r(&seed) % NR_EXT;
			r = bm_read(snames[i].name, off, len, ext, cap, &nr,
				    &next);
			count_result(op, r, OK_ENOENT | OK_SUCCESS);
			if (!r)
				check_extents(i, off, len, cap, ext, nr, next);
			break;
		case S_INFO:
			memset(&si, 0, sizeof(si));
			set_hdr(&si, sizeof(si));
			r = do_ioctl(DM_CBW_IOC_SNAPSHOT_INFO, &si);
			count_result(op, r, OK_SUCCESS);
			if (!r && si.state != DM_CBW_SNAPSHOT_NONE)
				sbad(op, "state %u", si.state);
			break;
		case S_MARK:
			off = (__u64)(rand_r(&seed) % (dev_size / 512)) * 512;
			len = (__u64)(1 + rand_r(&seed) %
				      ((dev_size - off) / 512)) * 512;
			if (rand_r(&seed) % 2 && len > 128 * 1024)
				len = 128 * 1024;
			r = bm_mark(snames[i].name, off, len);
			count_result(op, r, OK_ENOENT | OK_SUCCESS);
			break;
		case S_THAW:
			r = bm_thaw(snames[i].name, rand_r(&seed) % 2 ?
				    DM_CBW_BITMAP_THAW_MERGE : 0);
			count_result(op, r, OK_ENOENT | OK_EINVAL);
			break;
		}
	}
	return NULL;
}

static void *stress_write(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg * 40503u ^
			    (unsigned int)time(NULL);
	size_t max = 64 * 1024, len;
	__u64 off;
	void *buf;
	int r;

	if (posix_memalign(&buf, 4096, max)) {
		sbad(S_WRITE, "out of memory");
		return NULL;
	}
	memset(buf, 0x5a, max);
	while (!atomic_load(&s_stop)) {
		len = 4096 * (1 + rand_r(&seed) % (max / 4096));
		off = (__u64)(rand_r(&seed) % ((dev_size - len) / 4096 + 1)) *
		      4096;
		r = dev_write(buf, off, len);
		count_result(S_WRITE, r, OK_SUCCESS);
	}
	free(buf);
	return NULL;
}

static void run_stress(unsigned int seconds, unsigned int threads)
{
	struct dm_cbw_bitmap_info info;
	struct dm_cbw_extent ext[2];
	pthread_t tid[64];
	unsigned int nr_threads = 0, i;
	__u64 next;
	__u32 nr;
	int r;
	struct timespec ts = { .tv_sec = 1 };
	time_t deadline;
	long left;

	remove_all(false);
	diag("concurrency: %u control threads, 2 writers, %u s", threads,
	     seconds);
	for (i = 0; i < threads + 2 && nr_threads < ARRAY_SIZE(tid); i++) {
		if (pthread_create(&tid[nr_threads], NULL,
				   i < threads ? stress_ctl : stress_write,
				   (void *)(uintptr_t)(i + 1)))
			bail("pthread_create: %s", strerror(errno));
		nr_threads++;
	}
	deadline = time(NULL) + seconds;
	while (time(NULL) < deadline)
		nanosleep(&ts, NULL);
	atomic_store(&s_stop, true);
	for (i = 0; i < nr_threads; i++)
		pthread_join(tid[i], NULL);

	for (i = 0; i < NR_SOPS; i++) {
		unsigned long calls = atomic_load(&s_calls[i]);

		check(!atomic_load(&s_bad[i]),
		      "%lu of %lu calls returned something unexpected",
		      atomic_load(&s_bad[i]), calls);
		check(calls > 0, "never called");
		report("concurrent %s: %lu calls (%lu succeeded), only %s",
		       sop_name[i], calls, atomic_load(&s_ok[i]),
		       sop_allowed[i]);
	}

	remove_all(true);
	left = bm_count();
	check(left == 0, "%ld bitmaps left after removing them", left);
	for (i = 0; i < NR_SNAMES; i++)
		expect(bm_remove(snames[i].name), ENOENT, "REMOVE %s again",
		       snames[i].name);
	report("removing every bitmap after the concurrency check works");

	/* The device still tracks writes (others may still be writing). */
	expect(bm_add("c-after", 4096, 0), 0, "ADD c-after");
	write_or_bail(0, 4096);
	r = bm_query("c-after", &info);
	if (expect(r, 0, "QUERY c-after"))
		check(info.count >= 4096 &&
		      info.status == DM_CBW_BITMAP_RECORDING,
		      "c-after: count %llu status %u after a 4 KiB write",
		      (unsigned long long)info.count, info.status);
	r = bm_read("c-after", 0, 4096, ext, 2, &nr, &next);
	if (expect(r, 0, "READ c-after"))
		check(nr == 1 && ext[0].offset == 0 && ext[0].length == 4096 &&
		      next == 4096,
		      "c-after: %u extents (%llu+%llu), next_offset %llu", nr,
		      (unsigned long long)ext[0].offset,
		      (unsigned long long)ext[0].length,
		      (unsigned long long)next);
	expect(bm_remove("c-after"), 0, "REMOVE c-after");
	report("bitmaps work after the concurrency check");
}

/* ------------------------------------------------------------------ */
/* Freeze: a bitmap named by freeze_bitmap in a table of cbw_ioctl.sh   */
/* ------------------------------------------------------------------ */

/*
 * The frozen bitmap has 4 KiB granules; sets of granules of the cbw
 * device (one byte each) say which bits a bitmap must have.
 */
#define FZ_GRAN		4096
#define FZ_OTHER	"fz-other"
#define FZ_FROZEN	(DM_CBW_BITMAP_FROZEN | DM_CBW_BITMAP_BUSY | \
			 DM_CBW_BITMAP_RECORDING)

static const char *fz_name;

static unsigned char *gset_new(void)
{
	unsigned char *g = calloc(dev_size / FZ_GRAN, 1);

	if (!g)
		bail("out of memory");
	return g;
}

static void gset_mark(unsigned char *g, __u64 off, __u64 len)
{
	__u64 i;

	for (i = off / FZ_GRAN; i < (off + len + FZ_GRAN - 1) / FZ_GRAN; i++)
		__atomic_store_n(&g[i], 1, __ATOMIC_RELAXED);
}

static __u64 gset_bytes(const unsigned char *g)
{
	__u64 i, n = 0;

	for (i = 0; i < dev_size / FZ_GRAN; i++)
		n += g[i];
	return n * FZ_GRAN;
}

/* Reads the bits of @name into @g; 0 or an errno. */
static int gset_read(const char *name, unsigned char *g)
{
	struct dm_cbw_extent ext[NR_EXT];
	__u64 pos = 0, next;
	__u32 nr, k;
	int r;

	memset(g, 0, dev_size / FZ_GRAN);
	while (pos < dev_size) {
		r = bm_read(name, pos, dev_size - pos, ext, NR_EXT, &nr, &next);
		if (r)
			return r;
		for (k = 0; k < nr && k < NR_EXT; k++)
			gset_mark(g, ext[k].offset, ext[k].length);
		if (next <= pos)
			return EIO;
		pos = next;
	}
	return 0;
}

/*
 * READ of @name must give every bit of @want and no other bit, except
 * bits of @also (if not NULL).
 */
static void gset_expect(const char *name, const unsigned char *want,
			const unsigned char *also, const char *what)
{
	unsigned char *got = gset_new();
	__u64 i, missing = 0, extra = 0, first_missing = 0, first_extra = 0;
	int r = gset_read(name, got);

	if (expect(r, 0, "READ %s (%s)", name, what)) {
		for (i = 0; i < dev_size / FZ_GRAN; i++) {
			if (want[i] && !got[i] && !missing++)
				first_missing = i * FZ_GRAN;
			if (got[i] && !want[i] && !(also && also[i]) &&
			    !extra++)
				first_extra = i * FZ_GRAN;
		}
		check(!missing && !extra,
		      "%s: %s lacks %llu granules (first at %llu) and has %llu unexpected ones (first at %llu)",
		      what, name, (unsigned long long)missing,
		      (unsigned long long)first_missing,
		      (unsigned long long)extra,
		      (unsigned long long)first_extra);
	}
	free(got);
}

/* QUERY of @name must show @status, @count and @succ. */
static void expect_fz_info(const char *name, __u32 status, __u64 count,
			   __u64 succ, const char *what)
{
	struct dm_cbw_bitmap_info info;
	int r = bm_query(name, &info);

	if (!expect(r, 0, "QUERY %s (%s)", name, what))
		return;
	check(info.status == status && info.count == count &&
	      info.successor_count == succ && info.granularity == FZ_GRAN,
	      "%s: %s has status 0x%x count %llu successor_count %llu granularity %llu, expected status 0x%x count %llu successor_count %llu",
	      what, name, info.status, (unsigned long long)info.count,
	      (unsigned long long)info.successor_count,
	      (unsigned long long)info.granularity, status,
	      (unsigned long long)count, (unsigned long long)succ);
}

/* LIST must describe @name as QUERY does. */
static void expect_fz_listed(const char *name)
{
	struct dm_cbw_bitmap_info q, ent[NR_ENT];
	struct dm_cbw_bitmap_list l;
	unsigned int k, found = 0;
	int r;

	list_init(&l, ent, NR_ENT);
	r = do_ioctl(DM_CBW_IOC_BITMAP_LIST, &l);
	if (!expect(r, 0, "LIST") || !expect(bm_query(name, &q), 0, "QUERY"))
		return;
	for (k = 0; k < l.nr_entries && k < NR_ENT; k++) {
		if (strncmp(ent[k].name, name, DM_CBW_NAME_LEN))
			continue;
		found++;
		check(ent[k].status == q.status && ent[k].count == q.count &&
		      ent[k].successor_count == q.successor_count &&
		      ent[k].generation == q.generation && !ent[k].reserved0,
		      "LIST entry of %s: status 0x%x count %llu successor_count %llu, QUERY: 0x%x %llu %llu",
		      name, ent[k].status, (unsigned long long)ent[k].count,
		      (unsigned long long)ent[k].successor_count, q.status,
		      (unsigned long long)q.count,
		      (unsigned long long)q.successor_count);
	}
	check(found == 1, "LIST shows %s %u times", name, found);
}

/* The bitmap is held by a loaded table that is not resumed yet. */
static void run_busy(void)
{
	struct dm_cbw_bitmap_info before;
	int c, r;

	r = bm_query(fz_name, &before);
	if (!expect(r, 0, "QUERY %s", fz_name)) {
		report("a bitmap held by a loaded table: busy, not frozen");
		return;
	}
	check(before.status ==
	      (DM_CBW_BITMAP_BUSY | DM_CBW_BITMAP_RECORDING) &&
	      !before.successor_count,
	      "%s: status 0x%x successor_count %llu, expected BUSY|RECORDING and 0",
	      fz_name, before.status,
	      (unsigned long long)before.successor_count);
	report("a bitmap held by a loaded table: busy, not frozen");

	expect(bm_mark(fz_name, 0, 4096), EBUSY, "MARK a busy bitmap");
	expect(bm_mark(fz_name, 8 * MIB, 512), EBUSY, "MARK a busy bitmap");
	expect(bm_thaw(fz_name, 0), EINVAL, "THAW a busy bitmap");
	expect(bm_thaw(fz_name, DM_CBW_BITMAP_THAW_MERGE), EINVAL,
	       "THAW MERGE a busy bitmap");
	for (c = C_REMOVE; c <= C_DISABLE; c++)
		expect(bm_do(cmds[c].req, fz_name), EBUSY, "%s a busy bitmap",
		       cmds[c].name);
	expect_fz_info(fz_name, before.status, before.count, 0,
		       "after refused calls");
	report("a busy bitmap that is not frozen: MARK => EBUSY, THAW => EINVAL, nothing changed");
}

/* Creates the bitmap to freeze, with the bits of fz_prep_bits(). */
static void fz_prep_bits(unsigned char *g)
{
	gset_mark(g, 0, 4096);
	gset_mark(g, MIB, 8192);
}

static void run_prep(void)
{
	unsigned char *g = gset_new();

	remove_all(true);
	expect(bm_add(fz_name, FZ_GRAN, 0), 0, "ADD %s", fz_name);
	write_or_bail(0, 4096);
	write_or_bail(MIB, 8192);
	fz_prep_bits(g);
	expect_fz_info(fz_name, DM_CBW_BITMAP_RECORDING, gset_bytes(g), 0,
		       "prepared");
	gset_expect(fz_name, g, NULL, "prepared");
	free(g);
	report("%s is prepared for the freeze", fz_name);
}

/* Every argument check of THAW, on the frozen bitmap: nothing changes. */
static void test_thaw_refused(const struct dm_cbw_bitmap_info *before)
{
	static const size_t sizes[] = { 0, 8, sizeof(struct dm_cbw_bitmap_cmd) - 1,
					sizeof(struct dm_cbw_bitmap_cmd) - 8 };
	const size_t size = sizeof(struct dm_cbw_bitmap_cmd);
	const struct field *f;
	struct {
		union arg a;
		char tail[64];
	} __aligned(8) g;
	unsigned int i;
	char *p;

	for (f = thaw_fields; f->name; f++) {
		bcmd_init(&g.a.b, fz_name, 0, DM_CBW_BITMAP_THAW_MERGE);
		set_field(&g.a, f);
		expect(do_ioctl(DM_CBW_IOC_BITMAP_THAW, &g.a), EINVAL,
		       "THAW of the frozen bitmap, %s", f->name);
	}
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		bcmd_init(&g.a.b, fz_name, 0, 0);
		g.a.h.size = sizes[i];
		expect(do_ioctl(DM_CBW_IOC_BITMAP_THAW, &g.a), EINVAL,
		       "THAW of the frozen bitmap, size %zu", sizes[i]);
	}
	memset(&g, 0, sizeof(g));
	bcmd_init(&g.a.b, fz_name, 0, 0);
	g.a.h.size = size + 8;
	((char *)&g)[size + 7] = 1;
	expect(do_ioctl(DM_CBW_IOC_BITMAP_THAW, &g), EINVAL,
	       "THAW of the frozen bitmap, size sizeof+8, nonzero tail");
	bcmd_init(&g.a.b, fz_name, 0, 0);
	g.a.h.size = 1 << 20;
	expect(do_ioctl(DM_CBW_IOC_BITMAP_THAW, &g), EINVAL,
	       "THAW of the frozen bitmap, size 1 MiB");
	expect(do_ioctl(DM_CBW_IOC_BITMAP_THAW, NULL), EFAULT, "THAW NULL");
	expect(do_ioctl(DM_CBW_IOC_BITMAP_THAW, unmapped_page()), EFAULT,
	       "THAW argument unmapped");
	bcmd_init(&g.a.b, fz_name, 0, 0);
	p = edge + page_size - size + 8;
	memcpy(p, &g.a, size - 8);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_THAW, p), EFAULT,
	       "THAW argument running into an inaccessible page");
	bcmd_init(&g.a.b, fz_name, 0, 0);
	g.a.h.dev_major = 0;
	g.a.h.dev_minor = 0;
	expect(do_ioctl(DM_CBW_IOC_BITMAP_THAW, &g.a), ENODEV,
	       "THAW on device 0:0");
	bcmd_init(&g.a.b, fz_name, 0, 0);
	g.a.h.dev_minor = 0xffffffff;
	expect(do_ioctl(DM_CBW_IOC_BITMAP_THAW, &g.a), ENODEV,
	       "THAW on minor 0xffffffff");
	bcmd_init(&g.a.b, "bad name", 0, 0);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_THAW, &g.a), EINVAL,
	       "THAW of \"bad name\"");
	expect_fz_info(fz_name, before->status, before->count,
		       before->successor_count, "after refused THAWs");
}

/*
 * Checks of a frozen bitmap whose frozen bits are @frozen; the program's
 * own writes and marks go to @succ.  The caller thaws.
 */
static void check_frozen(const unsigned char *frozen, unsigned char *succ)
{
	struct dm_cbw_bitmap_info before;
	unsigned char *g = gset_new();
	__u64 count = gset_bytes(frozen);
	char names[2][DM_CBW_NAME_LEN];
	struct dm_cbw_bitmap_merge m;
	int c;

	expect_fz_info(fz_name, FZ_FROZEN, count, 0, "frozen");
	expect_fz_listed(fz_name);
	gset_expect(fz_name, frozen, NULL, "frozen");
	report("frozen: QUERY and LIST show FROZEN|BUSY|RECORDING, the frozen count, successor_count 0; READ the frozen bits");

	write_or_bail(2 * MIB, 4096);
	gset_mark(succ, 2 * MIB, 4096);
	write_or_bail(3 * MIB + 4096, 8192);
	gset_mark(succ, 3 * MIB + 4096, 8192);
	/* Over a frozen bit. */
	write_or_bail(MIB, 4096);
	gset_mark(succ, MIB, 4096);
	expect_fz_info(fz_name, FZ_FROZEN, count, gset_bytes(succ),
		       "frozen, written");
	gset_expect(fz_name, frozen, NULL, "frozen, written");
	report("frozen: writes grow successor_count only; READ still gives the frozen bits");

	expect(bm_mark(fz_name, 4 * MIB + 512, 1024), 0, "MARK frozen");
	gset_mark(succ, 4 * MIB + 512, 1024);
	expect(bm_mark(fz_name, 5 * MIB - 512, 1024), 0,
	       "MARK frozen, across a granule boundary");
	gset_mark(succ, 5 * MIB - 512, 1024);
	expect(bm_mark(fz_name, dev_size - 512, 512), 0,
	       "MARK frozen, last sector");
	gset_mark(succ, dev_size - 512, 512);
	expect(bm_mark(fz_name, 100, 512), EINVAL, "MARK frozen, offset 100");
	expect(bm_mark(fz_name, 0, 0), EINVAL, "MARK frozen, length 0");
	expect(bm_mark(fz_name, dev_size, 512), EINVAL,
	       "MARK frozen, beyond the device");
	expect(bm_mark(fz_name, 0xfffffffffffffe00ULL, 1024), EINVAL,
	       "MARK frozen, overflowing");
	expect_fz_info(fz_name, FZ_FROZEN, count, gset_bytes(succ),
		       "frozen, marked");
	gset_expect(fz_name, frozen, NULL, "frozen, marked");
	report("frozen: MARK goes to the successor (every granule touched); bad ranges => EINVAL");

	expect(bm_add(FZ_OTHER, FZ_GRAN, DM_CBW_BITMAP_ADD_DISABLED), 0,
	       "ADD " FZ_OTHER);
	expect(bm_mark(FZ_OTHER, 6 * MIB, 4096), 0, "MARK " FZ_OTHER);
	if (bm_query(fz_name, &before))
		memset(&before, 0, sizeof(before));
	for (c = C_REMOVE; c <= C_DISABLE; c++)
		expect(bm_do(cmds[c].req, fz_name), EBUSY, "%s frozen",
		       cmds[c].name);
	expect(bm_merge1(fz_name, FZ_OTHER), EBUSY, "MERGE into frozen");
	set_name(names[0], FZ_OTHER);
	set_name(names[1], fz_name);
	merge_init(&m, fz_name, names, 2);
	expect(do_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m), EBUSY,
	       "MERGE frozen and another into frozen");
	expect(bm_add(fz_name, FZ_GRAN, 0), EEXIST, "ADD frozen again");
	test_thaw_refused(&before);
	expect_fz_info(fz_name, FZ_FROZEN, count, gset_bytes(succ),
		       "after refused calls");
	gset_expect(fz_name, frozen, NULL, "after refused calls");
	report("frozen: REMOVE/CLEAR/ENABLE/DISABLE/MERGE into => EBUSY, ADD => EEXIST, bad THAW arguments refused; nothing changed");

	/* A frozen source gives its frozen bits. */
	expect(bm_merge1(FZ_OTHER, fz_name), 0, "MERGE from frozen");
	memcpy(g, frozen, dev_size / FZ_GRAN);
	gset_mark(g, 6 * MIB, 4096);
	gset_expect(FZ_OTHER, g, NULL, "merged from the frozen bitmap");
	expect(bm_remove(FZ_OTHER), 0, "REMOVE " FZ_OTHER);
	report("frozen: MERGE from the frozen bitmap gives its frozen bits");
	free(g);
}

/* After a THAW: no freeze left, recording again, exactly @want. */
static void check_thawed(const unsigned char *want, const char *what)
{
	expect_fz_info(fz_name, DM_CBW_BITMAP_RECORDING, gset_bytes(want), 0,
		       what);
	expect_fz_listed(fz_name);
	gset_expect(fz_name, want, NULL, what);
	expect(bm_thaw(fz_name, 0), EINVAL, "THAW again");
	expect(bm_thaw(fz_name, DM_CBW_BITMAP_THAW_MERGE), EINVAL,
	       "THAW MERGE again");
	expect_fz_info(fz_name, DM_CBW_BITMAP_RECORDING, gset_bytes(want), 0,
		       "after a second THAW");
}

/* After the THAW, writes and marks go to the bitmap itself. */
static void check_after_thaw(unsigned char *want)
{
	expect(bm_mark(fz_name, 7 * MIB, 512), 0, "MARK after the THAW");
	gset_mark(want, 7 * MIB, 512);
	write_or_bail(8 * MIB, 4096);
	gset_mark(want, 8 * MIB, 4096);
	expect_fz_info(fz_name, DM_CBW_BITMAP_RECORDING, gset_bytes(want), 0,
		       "thawed, marked and written");
	gset_expect(fz_name, want, NULL, "thawed, marked and written");
}

/* First freeze: THAW with MERGE keeps the frozen bits, adds the successor's. */
static void run_frozen(void)
{
	unsigned char *frozen = gset_new(), *succ = gset_new();
	__u64 i;

	fz_prep_bits(frozen);
	check_frozen(frozen, succ);
	expect(bm_thaw(fz_name, DM_CBW_BITMAP_THAW_MERGE), 0, "THAW MERGE");
	for (i = 0; i < dev_size / FZ_GRAN; i++)
		succ[i] |= frozen[i];
	check_thawed(succ, "thawed with MERGE");
	check_after_thaw(succ);
	report("THAW with MERGE: the frozen bits and the successor's, recording again; a second THAW => EINVAL");
	free(frozen);
	free(succ);
}

/* A further freeze: THAW without flags leaves the successor's bits. */
static void run_refrozen(void)
{
	unsigned char *frozen = gset_new(), *succ = gset_new();
	int r;

	r = gset_read(fz_name, frozen);
	expect(r, 0, "READ the frozen bits of %s", fz_name);
	check(gset_bytes(frozen), "%s has no frozen bits", fz_name);
	check_frozen(frozen, succ);
	expect(bm_thaw(fz_name, 0), 0, "THAW");
	check_thawed(succ, "thawed without flags");
	check_after_thaw(succ);
	report("THAW without flags: only the successor's bits, recording again; a second THAW => EINVAL");
	free(frozen);
	free(succ);
}

static atomic_bool r_stop;
static atomic_ulong r_writes, r_errors;
static unsigned char *r_written;

/* Writes 4 KiB-aligned ranges; their granules must end up in the bitmap. */
static void *race_write(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg * 69069u ^
			    (unsigned int)time(NULL);
	size_t max = 64 * 1024, len;
	__u64 off;
	void *buf;

	if (posix_memalign(&buf, 4096, max)) {
		atomic_fetch_add(&r_errors, 1);
		return NULL;
	}
	memset(buf, 0x3c, max);
	while (!atomic_load(&r_stop)) {
		len = 4096 * (1 + rand_r(&seed) % (max / 4096));
		off = (__u64)(rand_r(&seed) % ((dev_size - len) / 4096 + 1)) *
		      4096;
		if (dev_write(buf, off, len)) {
			atomic_fetch_add(&r_errors, 1);
			continue;
		}
		gset_mark(r_written, off, len);
		atomic_fetch_add(&r_writes, 1);
	}
	free(buf);
	return NULL;
}

/*
 * THAW (with MERGE if @merge) while writer threads write: every granule
 * written while frozen or after the THAW is set afterwards.
 */
static void run_race(bool merge)
{
	struct timespec ts = { .tv_nsec = 100 * 1000 * 1000 };
	unsigned char *frozen = gset_new(), *all = gset_new();
	struct dm_cbw_bitmap_info info;
	unsigned long frozen_writes;
	__u64 count, last = 0, i;
	pthread_t tid[4];
	unsigned int k;
	int r;

	r_written = gset_new();
	expect(gset_read(fz_name, frozen), 0, "READ the frozen bits");
	count = gset_bytes(frozen);
	expect_fz_info(fz_name, FZ_FROZEN, count, 0, "frozen, before the writers");
	for (k = 0; k < ARRAY_SIZE(tid); k++)
		if (pthread_create(&tid[k], NULL, race_write,
				   (void *)(uintptr_t)(k + 1)))
			bail("pthread_create: %s", strerror(errno));
	for (k = 0; k < 8; k++) {
		nanosleep(&ts, NULL);
		r = bm_query(fz_name, &info);
		if (!expect(r, 0, "QUERY while writing"))
			break;
		check(info.status == FZ_FROZEN && info.count == count &&
		      info.successor_count >= last &&
		      info.successor_count <= dev_size,
		      "while writing: status 0x%x count %llu successor_count %llu (before %llu), frozen count %llu",
		      info.status, (unsigned long long)info.count,
		      (unsigned long long)info.successor_count,
		      (unsigned long long)last, (unsigned long long)count);
		last = info.successor_count;
	}
	check(last > 0, "successor_count stayed 0 while writing");
	gset_expect(fz_name, frozen, NULL, "frozen, while writing");
	frozen_writes = atomic_load(&r_writes);
	r = bm_thaw(fz_name, merge ? DM_CBW_BITMAP_THAW_MERGE : 0);
	expect(r, 0, "THAW%s while writing", merge ? " MERGE" : "");
	for (k = 0; k < 5; k++)
		nanosleep(&ts, NULL);
	atomic_store(&r_stop, true);
	for (k = 0; k < ARRAY_SIZE(tid); k++)
		pthread_join(tid[k], NULL);

	check(!atomic_load(&r_errors), "%lu writes failed",
	      atomic_load(&r_errors));
	check(frozen_writes && atomic_load(&r_writes) > frozen_writes,
	      "%lu writes while frozen, %lu in all", frozen_writes,
	      atomic_load(&r_writes));
	memcpy(all, r_written, dev_size / FZ_GRAN);
	for (i = 0; merge && i < dev_size / FZ_GRAN; i++)
		all[i] |= frozen[i];
	expect_fz_info(fz_name, DM_CBW_BITMAP_RECORDING, gset_bytes(all), 0,
		       "thawed while writing");
	gset_expect(fz_name, r_written, merge ? frozen : NULL,
		    "thawed while writing");
	diag("%lu writes while frozen, %lu after the THAW", frozen_writes,
	     atomic_load(&r_writes) - frozen_writes);
	report("THAW%s racing with writers: every granule written while frozen or after is set%s",
	       merge ? " with MERGE" : "",
	       merge ? ", besides the frozen bits" : ", and no other");
	free(frozen);
	free(all);
	free(r_written);
}

/* ------------------------------------------------------------------ */
/* Bitmaps end with their device                                       */
/* ------------------------------------------------------------------ */

#define LEFT_BEHIND	"left-behind"

/* A bitmap left on the cbw device, which is removed next. */
static void run_leave(void)
{
	struct dm_cbw_bitmap_info info;

	remove_all(true);
	expect(bm_add(LEFT_BEHIND, 4096, 0), 0, "ADD " LEFT_BEHIND);
	write_or_bail(0, 4096);
	if (!expect(bm_query(LEFT_BEHIND, &info), 0, "QUERY " LEFT_BEHIND))
		return;
	check(info.count == 4096, "count %llu", (unsigned long long)info.count);
	report("a bitmap is left on the cbw device");
}

/* A new cbw device, where one with a bitmap was removed before. */
static void run_fresh(void)
{
	struct dm_cbw_bitmap_info info;
	long n = bm_count();

	check(n == 0, "the new cbw device has %ld bitmaps", n);
	expect(bm_query(LEFT_BEHIND, &info), ENOENT, "QUERY " LEFT_BEHIND);
	report("a new cbw device has none of the bitmaps of a removed one");
}

/* ------------------------------------------------------------------ */

static const char *const modes[] = {
	"basic", "stress", "all", "version", "leave", "fresh",
	/* Freeze modes, from FIRST_FZ_MODE on. */
	"prep", "busy", "frozen", "refrozen", "race", "race-merge",
};

#define FIRST_FZ_MODE	6

static void __noreturn usage(void)
{
	fprintf(stderr,
		"usage: cbw-ioctl [-m basic|stress|all|version|leave|fresh] [-d SECONDS]\n"
		"                 [-j THREADS] CBW_MAJOR:MINOR [OTHER_MAJOR:MINOR...]\n"
		"       cbw-ioctl -m prep|busy|frozen|refrozen|race|race-merge\n"
		"                 CBW_MAJOR:MINOR BITMAP\n");
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned int seconds = 15, threads = 4, i;
	const char *mode = "basic";
	off_t end;
	int opt;

	while ((opt = getopt(argc, argv, "m:d:j:h")) != -1) {
		switch (opt) {
		case 'm':
			mode = optarg;
			break;
		case 'd':
			seconds = strtoul(optarg, NULL, 0);
			break;
		case 'j':
			threads = strtoul(optarg, NULL, 0);
			if (!threads || threads > 32)
				usage();
			break;
		default:
			usage();
		}
	}
	for (i = 0; i < ARRAY_SIZE(modes); i++)
		if (!strcmp(mode, modes[i]))
			break;
	if (i == ARRAY_SIZE(modes))
		usage();
	if (i >= FIRST_FZ_MODE) {
		/* The freeze modes take a bitmap name instead. */
		if (argc - optind != 2)
			usage();
		fz_name = argv[--argc];
	}
	if (optind >= argc || argc - optind - 1 > MAX_OTHERS ||
	    !parse_devno(argv[optind], &cbw_major, &cbw_minor))
		usage();
	for (i = optind + 1; i < (unsigned int)argc; i++, nr_others++)
		if (!parse_devno(argv[i], &other_major[nr_others],
				 &other_minor[nr_others]))
			usage();

	printf("TAP version 13\n");
	diag("cbw-ioctl: %zu-bit caller, cbw device %u:%u",
	     sizeof(void *) * 8, cbw_major, cbw_minor);
	ctl = open(CONTROL_PATH, O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		if (errno == ENOENT) {
			printf("1..0 # SKIP %s does not exist\n", CONTROL_PATH);
			return KSFT_SKIP;
		}
		bail("open %s: %s", CONTROL_PATH, strerror(errno));
	}
	if (!strcmp(mode, "version")) {
		test_version();
		goto out;
	}

	page_size = sysconf(_SC_PAGESIZE);
	edge = mmap(NULL, 3 * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (edge == MAP_FAILED ||
	    mprotect(edge + page_size, page_size, PROT_NONE))
		bail("mmap: %s", strerror(errno));
	ro_page = edge + 2 * page_size;
	if (mprotect(ro_page, page_size, PROT_READ))
		bail("mprotect: %s", strerror(errno));
	if (posix_memalign(&wbuf, 4096, 64 * 1024))
		bail("out of memory");
	memset(wbuf, 0xc3, 64 * 1024);

	bdev = open_blkdev(cbw_major, cbw_minor, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (bdev < 0)
		bail("cannot open the cbw device %u:%u: %s", cbw_major,
		     cbw_minor, strerror(errno));
	end = lseek(bdev, 0, SEEK_END);
	if (end < 16 * MIB)
		bail("the cbw device must have at least 16 MiB");
	dev_size = end;
	if (bm_count() == -ENODEV)
		bail("%u:%u is not a cbw device (ENODEV)", cbw_major,
		     cbw_minor);

	if (!strcmp(mode, "basic") || !strcmp(mode, "all"))
		run_basic();
	if (!strcmp(mode, "stress") || !strcmp(mode, "all"))
		run_stress(seconds, threads);
	if (!strcmp(mode, "leave"))
		run_leave();
	if (!strcmp(mode, "fresh"))
		run_fresh();
	if (!strcmp(mode, "prep"))
		run_prep();
	if (!strcmp(mode, "busy"))
		run_busy();
	if (!strcmp(mode, "frozen"))
		run_frozen();
	if (!strcmp(mode, "refrozen"))
		run_refrozen();
	if (!strcmp(mode, "race") || !strcmp(mode, "race-merge"))
		run_race(!strcmp(mode, "race-merge"));
out:
	printf("1..%u\n", nr_tests);
	diag("cbw-ioctl: pass:%u fail:%u", nr_tests - nr_failed, nr_failed);
	return nr_failed ? KSFT_FAIL : KSFT_PASS;
}
