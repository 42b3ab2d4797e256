// SPDX-License-Identifier: GPL-2.0
/*
 * cbw-stress - point-in-time integrity workload for the dm-cbw selftests.
 *
 * Every 512-byte sector written by this tool carries a stamp derived from
 * its own sector number and a generation number, so any sector read back
 * can be checked without keeping a copy of the data:
 *
 *   word 0      magic
 *   word 1      sector number
 *   word 2      generation
 *   word 3..63  pseudo-random pattern seeded by (sector, generation)
 *
 * Subcommands (all I/O is O_DIRECT with aligned buffers):
 *
 *   stamp DEV GEN [START [COUNT [STRIDE]]]
 *   verify DEV GEN [START [COUNT [STRIDE]]]
 *   run --guest DEV [--access DEV] --seconds N --writers W --readers R
 *       --chunk-sectors C --shadow FILE --touched FILE [--seed S]
 *       [--pre-gen G] [--no-discard] [--no-zeroout] [--no-cold]
 *       [--readable-every K]
 *   check-post --guest DEV --shadow FILE
 *   check-cow --cow DEV --touched FILE [--chunk-sectors C]
 *   probe [--write | --check] [--buffered] [--gen G] DEV SECTOR COUNT
 *   model --cbw NAME --origin NAME --origin-dev DEV --cow NAME --cow NAME
 *       --cow-dev DEV --access-prefix PREFIX --chunk-sectors C --seconds N
 *       --work DIR [--writers W] [--readers R] [--seed S] [--bitmap NAME]
 *       [--log FILE] [--pre-gen G] [--slack-ms MS] [--no-origin-faults]
 *
 * "model" runs guest writers and snapshot readers while it takes, ends and
 * replaces snapshots, suspends the cbw device, discards through the
 * cbw-access devices it creates and swaps the tables of the COW and origin
 * devices below (linear, dm-flakey failing writes, dm-delay), and checks
 * every read against a model of what each sector must hold (see the model
 * section below). The devices are dm devices named by the caller.
 *
 * Exit status: 0 success, 1 failure, 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/dm-cbw.h>
#include <linux/fs.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SECTOR_SHIFT		9
#define SECTOR_SIZE		512U
#define WORDS_PER_SECTOR	(SECTOR_SIZE / sizeof(uint64_t))
#define STAMP_MAGIC		0x43425753544d5031ULL	/* "CBWSTMP1" */
#define BUF_ALIGN		4096
#define BULK_SECTORS		2048U			/* 1 MiB per bulk I/O */
#define MAX_IO_SECTORS		8192U			/* 4 MiB */
#define MAX_GEN			(UINT32_MAX - 1)
#define GEN_ZERO		UINT32_MAX		/* shadow: sector reads as zeros */
#define MAX_REPORTED_RUNS	16
#define MAX_REPORTED_FAILS	20

#define EXIT_OK			0
#define EXIT_FAIL		1
#define EXIT_USAGE		2

#define __printf(a, b)		__attribute__((format(printf, a, b)))

static const char *prog = "cbw-stress";

static void msg(const char *fmt, ...) __printf(1, 2);
static void msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void print_usage(void)
{
	fprintf(stderr,
		"Usage: %s stamp DEV GEN [START [COUNT [STRIDE]]]\n"
		"       %s verify DEV GEN [START [COUNT [STRIDE]]]\n"
		"       %s run --guest DEV [--access DEV] --seconds N --writers W\n"
		"              --readers R --chunk-sectors C --shadow FILE --touched FILE\n"
		"              [--seed S] [--pre-gen G] [--no-discard] [--no-zeroout]\n"
		"              [--no-cold] [--readable-every K]\n"
		"       %s check-post --guest DEV --shadow FILE\n"
		"       %s check-cow --cow DEV --touched FILE [--chunk-sectors C]\n"
		"       %s probe [--write | --check] [--buffered] [--gen G] DEV SECTOR\n"
		"              COUNT\n"
		"       %s model --cbw NAME --origin NAME --origin-dev DEV --cow NAME\n"
		"              --cow NAME --cow-dev DEV --access-prefix PREFIX\n"
		"              --chunk-sectors C --seconds N --work DIR [--writers W]\n"
		"              [--readers R] [--seed S] [--bitmap NAME] [--log FILE]\n"
		"              [--pre-gen G] [--slack-ms MS] [--no-origin-faults]\n"
		"\n"
		"START, COUNT and SECTOR are in 512-byte sectors. Exit status:\n"
		"0 success, 1 failure, 2 bad command line.\n",
		prog, prog, prog, prog, prog, prog, prog);
	exit(EXIT_USAGE);
}

static bool parse_u64(const char *s, uint64_t *val)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end)
		return false;
	*val = v;
	return true;
}

static uint64_t arg_u64(const char *what, const char *s, uint64_t max)
{
	uint64_t v;

	if (!parse_u64(s, &v) || v > max) {
		msg("invalid %s: '%s'", what, s ? s : "");
		print_usage();
	}
	return v;
}

static const char *errname(int err)
{
	const char *name = strerrorname_np(err);

	return name ? name : "EUNKNOWN";
}

/* ------------------------------------------------------------------ */
/* Stamps                                                              */
/* ------------------------------------------------------------------ */

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static void stamp_sector(uint64_t *w, uint64_t sector, uint64_t gen)
{
	uint64_t seed = mix64(sector * 0x9e3779b97f4a7c15ULL ^ mix64(gen + 1));
	unsigned int i;

	w[0] = STAMP_MAGIC;
	w[1] = sector;
	w[2] = gen;
	w[3] = seed;
	for (i = 4; i < WORDS_PER_SECTOR; i++)
		w[i] = mix64(seed + i);
}

static bool sector_matches(const uint64_t *w, uint64_t sector, uint32_t gen)
{
	uint64_t expect[WORDS_PER_SECTOR];
	unsigned int i;

	if (gen == GEN_ZERO) {
		for (i = 0; i < WORDS_PER_SECTOR; i++)
			if (w[i])
				return false;
		return true;
	}
	if (w[0] != STAMP_MAGIC || w[1] != sector || w[2] != gen)
		return false;
	stamp_sector(expect, sector, gen);
	return !memcmp(w, expect, SECTOR_SIZE);
}

static void describe_expect(char *buf, size_t len, uint32_t gen)
{
	if (gen == GEN_ZERO)
		snprintf(buf, len, "zeros");
	else
		snprintf(buf, len, "stamp gen %" PRIu32, gen);
}

static void describe_found(char *buf, size_t len, const uint64_t *w)
{
	uint64_t expect[WORDS_PER_SECTOR];
	unsigned int i;

	for (i = 0; i < WORDS_PER_SECTOR; i++)
		if (w[i])
			break;
	if (i == WORDS_PER_SECTOR) {
		snprintf(buf, len, "zeros");
		return;
	}
	if (w[0] == STAMP_MAGIC) {
		stamp_sector(expect, w[1], w[2]);
		snprintf(buf, len, "%sstamp of sector %" PRIu64 " gen %" PRIu64,
			 memcmp(w, expect, SECTOR_SIZE) ? "damaged " : "",
			 w[1], w[2]);
		return;
	}
	snprintf(buf, len, "unrecognised data (first word 0x%016" PRIx64 ")",
		 w[0]);
}

/* ------------------------------------------------------------------ */
/* Devices                                                             */
/* ------------------------------------------------------------------ */

struct dev {
	const char *path;
	int fd;
	bool is_blk;
	uint64_t nr_sectors;
	unsigned int align;	/* I/O granularity in sectors */
};

static int dev_open(struct dev *d, const char *path, int flags)
{
	unsigned int lbs = SECTOR_SIZE;
	struct stat st;
	int fd;

	memset(d, 0, sizeof(*d));
	d->path = path;
	d->fd = -1;
	fd = open(path, flags | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;

		msg("cannot open %s: %s%s", path, strerror(err),
		    err == EINVAL ? " (O_DIRECT not supported here?)" : "");
		return -err;
	}
	if (fstat(fd, &st)) {
		msg("cannot stat %s: %s", path, strerror(errno));
		close(fd);
		return -EIO;
	}
	if (S_ISBLK(st.st_mode)) {
		uint64_t bytes;
		int ssz;

		if (ioctl(fd, BLKGETSIZE64, &bytes) || ioctl(fd, BLKSSZGET, &ssz)) {
			msg("cannot get the size of %s: %s", path, strerror(errno));
			close(fd);
			return -EIO;
		}
		d->is_blk = true;
		d->nr_sectors = bytes >> SECTOR_SHIFT;
		if (ssz > 0)
			lbs = ssz;
	} else if (S_ISREG(st.st_mode)) {
		d->nr_sectors = st.st_size >> SECTOR_SHIFT;
	} else {
		msg("%s is neither a block device nor a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if (lbs < SECTOR_SIZE || lbs % SECTOR_SIZE) {
		msg("%s: unsupported logical block size %u", path, lbs);
		close(fd);
		return -EINVAL;
	}
	d->align = lbs / SECTOR_SIZE;
	d->fd = fd;
	return 0;
}

static void dev_close(struct dev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/* Full-length O_DIRECT I/O; returns 0 or a negative errno. */
static int dev_io(int fd, bool write, void *buf, uint64_t sector,
		  uint64_t count)
{
	size_t len = count << SECTOR_SHIFT;
	off_t off = (off_t)(sector << SECTOR_SHIFT);
	char *p = buf;

	while (len) {
		ssize_t r;

		r = write ? pwrite(fd, p, len, off) : pread(fd, p, len, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)	/* past the end of the device */
			return write ? -ENOSPC : -ENXIO;
		p += r;
		len -= r;
		off += r;
	}
	return 0;
}

/* Discard (@zeroout false) or zero out a range; both read back as zeros. */
static int dev_punch(struct dev *d, bool zeroout, uint64_t sector,
		     uint64_t count)
{
	uint64_t range[2] = { sector << SECTOR_SHIFT, count << SECTOR_SHIFT };
	int mode;

	if (d->is_blk) {
		if (ioctl(d->fd, zeroout ? BLKZEROOUT : BLKDISCARD, range))
			return -errno;
		return 0;
	}
	mode = zeroout ? FALLOC_FL_ZERO_RANGE :
			 FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	if (fallocate(d->fd, mode, (off_t)range[0], (off_t)range[1]))
		return -errno;
	return 0;
}

static void *xalloc(size_t len)
{
	void *p;

	if (posix_memalign(&p, BUF_ALIGN, len)) {
		msg("out of memory (%zu bytes)", len);
		exit(EXIT_FAIL);
	}
	memset(p, 0, len);
	return p;
}

static bool range_ok(const struct dev *d, uint64_t start, uint64_t count)
{
	if (start > d->nr_sectors || count > d->nr_sectors - start) {
		msg("%s: range %" PRIu64 "+%" PRIu64 " is beyond the end (%" PRIu64
		    " sectors)", d->path, start, count, d->nr_sectors);
		return false;
	}
	if (start % d->align || count % d->align) {
		msg("%s: range %" PRIu64 "+%" PRIu64
		    " is not aligned to the logical block size (%u sectors)",
		    d->path, start, count, d->align);
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Mismatch reports: contiguous runs of bad sectors, a few printed     */
/* ------------------------------------------------------------------ */

struct report {
	const char *path;
	uint64_t bad;		/* mismatching sectors */
	uint64_t runs;
	bool in_run;
	uint64_t run_start;
	uint64_t run_len;
	int run_kind;
	char run_expect[64];
	char run_found[128];
};

/* Rough class of a sector's content, used to split runs of bad sectors. */
static int found_kind(const uint64_t *w, uint64_t sector)
{
	unsigned int i;

	for (i = 0; i < WORDS_PER_SECTOR; i++)
		if (w[i])
			break;
	if (i == WORDS_PER_SECTOR)
		return 0;
	if (w[0] != STAMP_MAGIC)
		return 1;
	return w[1] == sector ? 2 : 3;
}

static void report_close_run(struct report *r)
{
	if (!r->in_run)
		return;
	if (r->runs <= MAX_REPORTED_RUNS)
		msg("%s: sectors %" PRIu64 "-%" PRIu64 " (%" PRIu64
		    "): expected %s, found %s (first sector of the run)",
		    r->path, r->run_start, r->run_start + r->run_len - 1,
		    r->run_len, r->run_expect, r->run_found);
	else if (r->runs == MAX_REPORTED_RUNS + 1)
		msg("%s: more mismatching ranges not shown", r->path);
	r->in_run = false;
}

static void report_bad(struct report *r, uint64_t sector, uint32_t gen,
		       const uint64_t *found)
{
	int kind = found_kind(found, sector);

	r->bad++;
	if (r->in_run && sector == r->run_start + r->run_len &&
	    kind == r->run_kind) {
		r->run_len++;
		return;
	}
	report_close_run(r);
	r->runs++;
	r->in_run = true;
	r->run_start = sector;
	r->run_len = 1;
	r->run_kind = kind;
	describe_expect(r->run_expect, sizeof(r->run_expect), gen);
	describe_found(r->run_found, sizeof(r->run_found), found);
}

static void report_good(struct report *r)
{
	report_close_run(r);
}

typedef uint32_t (*gen_fn)(const void *arg, uint64_t sector);

static uint32_t const_gen(const void *arg, uint64_t sector)
{
	(void)sector;
	return *(const uint32_t *)arg;
}

/*
 * Read [start, start + count) and compare every sector with the content
 * expected for gen_of(sector). Returns 0 or a negative errno on read error.
 */
static int verify_range(struct dev *d, uint64_t start, uint64_t count,
			gen_fn gen_of, const void *arg, struct report *r,
			void *buf)
{
	while (count) {
		uint64_t n = count < BULK_SECTORS ? count : BULK_SECTORS;
		uint64_t i;
		int err;

		err = dev_io(d->fd, false, buf, start, n);
		if (err) {
			msg("%s: read error at sectors %" PRIu64 "+%" PRIu64 ": %s",
			    d->path, start, n, strerror(-err));
			return err;
		}
		for (i = 0; i < n; i++) {
			const uint64_t *w = (const uint64_t *)buf +
					    i * WORDS_PER_SECTOR;
			uint32_t gen = gen_of(arg, start + i);

			if (sector_matches(w, start + i, gen))
				report_good(r);
			else
				report_bad(r, start + i, gen, w);
		}
		start += n;
		count -= n;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* stamp / verify                                                      */
/* ------------------------------------------------------------------ */

static void parse_range_args(int argc, char **argv, struct dev *d,
			     uint64_t *start, uint64_t *count)
{
	*start = 0;
	if (argc > 0)
		*start = arg_u64("start sector", argv[0], UINT64_MAX);
	if (*start > d->nr_sectors) {
		msg("%s: start sector %" PRIu64 " is beyond the end", d->path,
		    *start);
		exit(EXIT_USAGE);
	}
	*count = d->nr_sectors - *start;
	if (argc > 1)
		*count = arg_u64("sector count", argv[1], UINT64_MAX);
	if (!range_ok(d, *start, *count))
		exit(EXIT_USAGE);
}

/* Stamp sectors @start..@start+@count-1 of @d with generation @gen. */
static int stamp_range(struct dev *d, void *buf, uint64_t start,
		       uint64_t count, uint32_t gen)
{
	uint64_t done = 0;

	while (done < count) {
		uint64_t n = count - done, i;
		int err;

		if (n > BULK_SECTORS)
			n = BULK_SECTORS;
		for (i = 0; i < n; i++)
			stamp_sector((uint64_t *)buf + i * WORDS_PER_SECTOR,
				     start + done + i, gen);
		err = dev_io(d->fd, true, buf, start + done, n);
		if (err) {
			msg("%s: write error at sectors %" PRIu64 "+%" PRIu64 ": %s",
			    d->path, start + done, n, strerror(-err));
			return -1;
		}
		done += n;
	}
	return 0;
}

/*
 * The range arguments of stamp and verify: [START [COUNT [STRIDE]]].  With
 * STRIDE, the range is COUNT sectors at START, START + STRIDE, ... up to
 * the end of the device; without, *@stride is 0.
 */
static void parse_stride_args(int argc, char **argv, struct dev *d,
			      uint64_t *start, uint64_t *count,
			      uint64_t *stride)
{
	parse_range_args(argc > 2 ? 2 : argc, argv, d, start, count);
	*stride = 0;
	if (argc < 3)
		return;
	*stride = arg_u64("stride", argv[2], UINT64_MAX);
	if (*stride < *count || !*count) {
		msg("the stride must be at least the count, which is not 0");
		exit(EXIT_USAGE);
	}
}

static int cmd_stamp(int argc, char **argv)
{
	uint64_t start, count, stride, pos, runs = 0;
	struct dev d;
	uint32_t gen;
	void *buf;

	if (argc < 2 || argc > 5)
		print_usage();
	gen = arg_u64("generation", argv[1], MAX_GEN);
	if (dev_open(&d, argv[0], O_RDWR))
		return EXIT_FAIL;
	parse_stride_args(argc - 2, argv + 2, &d, &start, &count, &stride);
	buf = xalloc(BULK_SECTORS << SECTOR_SHIFT);
	for (pos = start; pos + count <= d.nr_sectors; pos += stride) {
		if (stamp_range(&d, buf, pos, count, gen))
			return EXIT_FAIL;
		runs++;
		if (!stride)
			break;
	}
	if (fsync(d.fd)) {
		msg("%s: fsync: %s", d.path, strerror(errno));
		return EXIT_FAIL;
	}
	printf("stamped %s sectors %" PRIu64 "+%" PRIu64 " (%" PRIu64
	       " runs) with generation %" PRIu32 "\n", d.path, start, count,
	       runs, gen);
	free(buf);
	dev_close(&d);
	return EXIT_OK;
}

static int cmd_verify(int argc, char **argv)
{
	uint64_t start, count, stride, pos, total = 0;
	struct report r = { 0 };
	struct dev d;
	uint32_t gen;
	void *buf;
	int err = 0;

	if (argc < 2 || argc > 5)
		print_usage();
	gen = arg_u64("generation", argv[1], MAX_GEN);
	if (dev_open(&d, argv[0], O_RDONLY))
		return EXIT_FAIL;
	parse_stride_args(argc - 2, argv + 2, &d, &start, &count, &stride);
	buf = xalloc(BULK_SECTORS << SECTOR_SHIFT);
	r.path = d.path;
	for (pos = start; !err && pos + count <= d.nr_sectors; pos += stride) {
		err = verify_range(&d, pos, count, const_gen, &gen, &r, buf);
		total += count;
		if (!stride)
			break;
	}
	report_close_run(&r);
	free(buf);
	dev_close(&d);
	if (err)
		return EXIT_FAIL;
	if (r.bad) {
		msg("%s: %" PRIu64 " of %" PRIu64 " sectors in %" PRIu64
		    " ranges do not carry generation %" PRIu32, d.path, r.bad,
		    total, r.runs, gen);
		return EXIT_FAIL;
	}
	printf("verified %s sectors %" PRIu64 "+%" PRIu64 " (%" PRIu64
	       " sectors in all): generation %" PRIu32 "\n", d.path, start,
	       count, total, gen);
	return EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* Shadow and touched-chunk files                                      */
/* ------------------------------------------------------------------ */

#define SHADOW_HEADER	"# cbw-stress shadow v1"
#define TOUCHED_HEADER	"# cbw-stress touched v1"

static int write_shadow(const char *path, const uint32_t *shadow,
			uint64_t nr_sectors, uint32_t pre_gen)
{
	uint64_t s = 0;
	FILE *f;

	f = fopen(path, "w");
	if (!f) {
		msg("cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	fprintf(f, "%s\nsectors %" PRIu64 "\npre_gen %" PRIu32 "\n",
		SHADOW_HEADER, nr_sectors, pre_gen);
	while (s < nr_sectors) {
		uint64_t e = s + 1;

		while (e < nr_sectors && shadow[e] == shadow[s])
			e++;
		if (shadow[s] == GEN_ZERO)
			fprintf(f, "%" PRIu64 " %" PRIu64 " zero\n", s, e - s);
		else
			fprintf(f, "%" PRIu64 " %" PRIu64 " %" PRIu32 "\n",
				s, e - s, shadow[s]);
		s = e;
	}
	if (fclose(f)) {
		msg("cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static bool read_header(FILE *f, const char *path, const char *header)
{
	char line[128];

	if (!fgets(line, sizeof(line), f) ||
	    strncmp(line, header, strlen(header))) {
		msg("%s: not a file written by cbw-stress run (bad header)",
		    path);
		return false;
	}
	return true;
}

static bool read_keyval(FILE *f, const char *path, const char *key,
			uint64_t *val)
{
	char line[128], name[32], num[32];

	if (!fgets(line, sizeof(line), f) ||
	    sscanf(line, "%31s %31s", name, num) != 2 || strcmp(name, key) ||
	    !parse_u64(num, val)) {
		msg("%s: expected a '%s' line", path, key);
		return false;
	}
	return true;
}

/* Returns a shadow array of *nr_sectors entries, or NULL. */
static uint32_t *read_shadow(const char *path, uint64_t *nr_sectors)
{
	uint64_t n, pre, covered = 0;
	uint32_t *shadow;
	char line[128];
	FILE *f;

	f = fopen(path, "r");
	if (!f) {
		msg("cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (!read_header(f, path, SHADOW_HEADER) ||
	    !read_keyval(f, path, "sectors", &n) ||
	    !read_keyval(f, path, "pre_gen", &pre)) {
		fclose(f);
		return NULL;
	}
	shadow = calloc(n ? n : 1, sizeof(*shadow));
	if (!shadow) {
		msg("out of memory");
		exit(EXIT_FAIL);
	}
	while (fgets(line, sizeof(line), f)) {
		char a[32], b[32], c[32];
		uint64_t s, cnt, gen, i;

		if (sscanf(line, "%31s %31s %31s", a, b, c) != 3 ||
		    !parse_u64(a, &s) || !parse_u64(b, &cnt) ||
		    s != covered || cnt > n - s) {
			msg("%s: malformed line: %s", path, line);
			goto bad;
		}
		if (!strcmp(c, "zero")) {
			gen = GEN_ZERO;
		} else if (!parse_u64(c, &gen) || gen > MAX_GEN) {
			msg("%s: bad generation: %s", path, line);
			goto bad;
		}
		for (i = 0; i < cnt; i++)
			shadow[s + i] = gen;
		covered += cnt;
	}
	if (covered != n) {
		msg("%s: describes %" PRIu64 " of %" PRIu64 " sectors", path,
		    covered, n);
		goto bad;
	}
	fclose(f);
	*nr_sectors = n;
	return shadow;
bad:
	fclose(f);
	free(shadow);
	return NULL;
}

static int write_touched(const char *path, const uint8_t *touched,
			 uint64_t nr_chunks, uint64_t chunk, uint64_t nr_sectors,
			 uint32_t pre_gen, uint64_t *count)
{
	uint64_t c, n = 0;
	FILE *f;

	for (c = 0; c < nr_chunks; c++)
		n += touched[c] ? 1 : 0;
	f = fopen(path, "w");
	if (!f) {
		msg("cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	fprintf(f, "%s\nsectors %" PRIu64 "\nchunk_sectors %" PRIu64
		"\npre_gen %" PRIu32 "\nchunks %" PRIu64 "\n", TOUCHED_HEADER,
		nr_sectors, chunk, pre_gen, n);
	for (c = 0; c < nr_chunks; c++)
		if (touched[c])
			fprintf(f, "%" PRIu64 "\n", c);
	if (fclose(f)) {
		msg("cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	*count = n;
	return 0;
}

/* ------------------------------------------------------------------ */
/* run: concurrent guest writers and access-device readers             */
/* ------------------------------------------------------------------ */

struct run_ctx {
	const char *guest_path;
	const char *access_path;
	uint64_t nr_sectors;
	uint64_t chunk;
	uint64_t nr_chunks;
	unsigned int align;
	uint64_t max_io;
	uint64_t nr_writers;
	uint64_t nr_regions;		/* a multiple of nr_writers */
	uint64_t region_off;		/* boundaries are this far into a chunk */
	int cold_shift;			/* -1: no cold chunks */
	uint32_t pre_gen;
	uint64_t readable_every;	/* 0: every chunk is in the snapshot */
	bool discard;
	bool zeroout;
	uint64_t seed;
	struct timespec deadline;

	uint32_t *shadow;		/* per sector, owned by one writer */
	uint8_t *touched;		/* per chunk, set with atomic stores */

	atomic_uint next_gen;
	atomic_bool stop;
	atomic_uint writers_left;
	atomic_uint failures;
	pthread_mutex_t print_lock;
	pthread_barrier_t barrier;	/* the writers, for the burst */

	atomic_uint_fast64_t writes, discards, zeroouts, checks;
	atomic_uint_fast64_t sectors_written, reads, sectors_read;
	atomic_uint_fast64_t refused_reads;
};

struct worker {
	struct run_ctx *ctx;
	pthread_t thread;
	unsigned int id;
	uint64_t rng;
};

static void run_fail(struct run_ctx *ctx, const char *fmt, ...) __printf(2, 3);
static void run_fail(struct run_ctx *ctx, const char *fmt, ...)
{
	unsigned int n;
	va_list ap;

	atomic_store(&ctx->stop, true);
	n = atomic_fetch_add(&ctx->failures, 1);
	if (n >= MAX_REPORTED_FAILS)
		return;
	pthread_mutex_lock(&ctx->print_lock);
	va_start(ap, fmt);
	fprintf(stderr, "%s: FAIL: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	pthread_mutex_unlock(&ctx->print_lock);
}

static uint64_t rnd(struct worker *w)
{
	uint64_t x = w->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform in [0, n), n > 0 */
static uint64_t rnd_below(struct worker *w, uint64_t n)
{
	return rnd(w) % n;
}

static bool time_up(const struct run_ctx *ctx)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > ctx->deadline.tv_sec ||
	       (now.tv_sec == ctx->deadline.tv_sec &&
		now.tv_nsec >= ctx->deadline.tv_nsec);
}

static uint64_t round_down(uint64_t v, uint64_t a)
{
	return v - v % a;
}

/*
 * Cold chunks are never written by the writers, so that a copy of a chunk
 * nobody touched shows up as chunks_copied > touched chunks. One zone of
 * 512 KiB (at least one chunk) in eight is cold.
 */
static bool chunk_is_cold(const struct run_ctx *ctx, uint64_t c)
{
	return ctx->cold_shift >= 0 && ((c >> ctx->cold_shift) & 7) == 5;
}

/*
 * The device is cut into nr_regions contiguous regions whose boundaries sit
 * in the middle of a chunk; writer w owns regions w, w + W, w + 2W, ... so
 * neighbouring regions, owned by different writers, share the chunk that
 * holds their boundary.
 */
static uint64_t region_start(const struct run_ctx *ctx, uint64_t r)
{
	if (!r)
		return 0;
	if (r >= ctx->nr_regions)
		return ctx->nr_sectors;
	return round_down(r * ctx->nr_sectors / ctx->nr_regions, ctx->chunk) +
	       ctx->region_off;
}

/*
 * Pick a random range inside one of the writer's regions: mostly uniform, often
 * short (below one chunk), sometimes hugging the region edges so that
 * neighbouring writers hit their shared chunks at the same time. The
 * range is clipped at the first cold chunk. Returns false if no usable
 * range was found.
 */
static bool pick_write_range(struct worker *w, uint64_t *start, uint64_t *len)
{
	struct run_ctx *ctx = w->ctx;
	uint64_t r = w->id + ctx->nr_writers *
		     rnd_below(w, ctx->nr_regions / ctx->nr_writers);
	uint64_t rs = region_start(ctx, r), re = region_start(ctx, r + 1);
	uint64_t a = ctx->align, span = re - rs;
	uint64_t max = span < ctx->max_io ? span : ctx->max_io;
	uint64_t n, s, slack, edge, c;

	max = round_down(max, a);
	if (rnd_below(w, 3) == 0 && ctx->chunk < max)
		n = 1 + rnd_below(w, ctx->chunk);
	else
		n = 1 + rnd_below(w, max);
	n = (n + a - 1) / a * a;
	if (n > max)
		n = max;

	slack = span - n;
	edge = ctx->chunk < slack ? ctx->chunk : slack;
	switch (rnd_below(w, 8)) {
	case 0:
		s = rs + rnd_below(w, edge + 1);
		break;
	case 1:
		s = rs + slack - rnd_below(w, edge + 1);
		break;
	default:
		s = rs + rnd_below(w, slack + 1);
		break;
	}
	s = round_down(s, a);

	/* skip forward out of a cold zone, then clip at the next one */
	for (c = s / ctx->chunk; chunk_is_cold(ctx, c); c++)
		s = (c + 1) * ctx->chunk;
	if (s >= re)
		return false;
	if (n > re - s)
		n = re - s;
	for (c = s / ctx->chunk; c <= (s + n - 1) / ctx->chunk; c++) {
		if (chunk_is_cold(ctx, c)) {
			n = c * ctx->chunk - s;
			break;
		}
	}
	if (!n)
		return false;
	*start = s;
	*len = n;
	return true;
}

static void mark_touched(struct run_ctx *ctx, uint64_t start, uint64_t len)
{
	uint64_t c;

	for (c = start / ctx->chunk; c <= (start + len - 1) / ctx->chunk; c++) {
		if (chunk_is_cold(ctx, c))
			run_fail(ctx, "internal error: cold chunk %" PRIu64
				 " written", c);
		__atomic_store_n(&ctx->touched[c], 1, __ATOMIC_RELAXED);
	}
}

/* Write a new generation to [s, s + n); returns false on failure. */
static bool writer_write(struct worker *w, struct dev *d, void *buf,
			 uint64_t s, uint64_t n)
{
	struct run_ctx *ctx = w->ctx;
	uint32_t gen;
	uint64_t i;
	int err;

	gen = atomic_fetch_add(&ctx->next_gen, 1);
	if (gen > MAX_GEN) {
		run_fail(ctx, "generation counter overflow");
		return false;
	}
	for (i = 0; i < n; i++)
		stamp_sector((uint64_t *)buf + i * WORDS_PER_SECTOR, s + i, gen);
	err = dev_io(d->fd, true, buf, s, n);
	if (err) {
		run_fail(ctx, "writer %u: write of guest sectors %" PRIu64 "+%"
			 PRIu64 " failed: %s", w->id, s, n, strerror(-err));
		return false;
	}
	for (i = 0; i < n; i++)
		ctx->shadow[s + i] = gen;
	mark_touched(ctx, s, n);
	atomic_fetch_add(&ctx->writes, 1);
	atomic_fetch_add(&ctx->sectors_written, n);
	return true;
}

/* Discard or zero out [s, s + n); returns false on failure. */
static bool writer_punch(struct worker *w, struct dev *d, bool zeroout,
			 uint64_t s, uint64_t n)
{
	struct run_ctx *ctx = w->ctx;
	uint64_t i;
	int err;

	err = dev_punch(d, zeroout, s, n);
	if (err) {
		run_fail(ctx, "writer %u: %s of guest sectors %" PRIu64 "+%"
			 PRIu64 " failed: %s", w->id,
			 zeroout ? "zeroout" : "discard", s, n, strerror(-err));
		return false;
	}
	for (i = 0; i < n; i++)
		ctx->shadow[s + i] = GEN_ZERO;
	mark_touched(ctx, s, n);
	atomic_fetch_add(zeroout ? &ctx->zeroouts : &ctx->discards, 1);
	return true;
}

/* Read back [s, s + n) of the writer's own sectors and check them. */
static bool writer_check(struct worker *w, struct dev *d, void *buf,
			 uint64_t s, uint64_t n)
{
	struct run_ctx *ctx = w->ctx;
	uint64_t i;
	int err;

	err = dev_io(d->fd, false, buf, s, n);
	if (err) {
		run_fail(ctx, "writer %u: read of guest sectors %" PRIu64 "+%"
			 PRIu64 " failed: %s", w->id, s, n, strerror(-err));
		return false;
	}
	atomic_fetch_add(&ctx->checks, 1);
	for (i = 0; i < n; i++) {
		const uint64_t *p = (const uint64_t *)buf + i * WORDS_PER_SECTOR;
		char e[64], f[128];

		if (sector_matches(p, s + i, ctx->shadow[s + i]))
			continue;
		describe_expect(e, sizeof(e), ctx->shadow[s + i]);
		describe_found(f, sizeof(f), p);
		run_fail(ctx, "writer %u: guest sector %" PRIu64
			 ": expected %s, found %s", w->id, s + i, e, f);
		return false;
	}
	return true;
}

/*
 * Before the random phase, the neighbours of every region boundary write
 * their parts of the chunk that holds it at the same moment (a barrier
 * starts each step), so that first writes to a chunk race with each other.
 * In step (k, phase), writer w writes the part at the start of its region
 * k * W + w, or the part at the end of it, so that writers w - 1 and w hit
 * the chunk of boundary k * W + w together. Every writer goes through every
 * barrier, even after a failure.
 */
static void writer_burst(struct worker *w, struct dev *d, void *buf, bool ok)
{
	struct run_ctx *ctx = w->ctx;
	uint64_t per_writer = ctx->nr_regions / ctx->nr_writers;
	uint64_t k, b, bs, cs, ce;
	unsigned int phase;
	bool head;

	for (k = 0; k < per_writer; k++) {
		for (phase = 0; phase < 2; phase++) {
			pthread_barrier_wait(&ctx->barrier);
			if (!ok || atomic_load(&ctx->stop))
				continue;
			head = (w->id + phase) % 2 == 0;
			b = k * ctx->nr_writers + w->id + (head ? 0 : 1);
			if (!b || b >= ctx->nr_regions)
				continue;
			bs = region_start(ctx, b);
			cs = round_down(bs, ctx->chunk);
			ce = cs + ctx->chunk < ctx->nr_sectors ?
			     cs + ctx->chunk : ctx->nr_sectors;
			if (bs == cs || chunk_is_cold(ctx, cs / ctx->chunk))
				continue;
			if (head)
				ok = writer_write(w, d, buf, bs, ce - bs);
			else
				ok = writer_write(w, d, buf, cs, bs - cs);
		}
	}
}

static void *writer_fn(void *arg)
{
	struct worker *w = arg;
	struct run_ctx *ctx = w->ctx;
	struct dev d = { .fd = -1 };
	bool ok = true;
	void *buf;

	buf = xalloc(ctx->max_io << SECTOR_SHIFT);
	if (dev_open(&d, ctx->guest_path, O_RDWR)) {
		run_fail(ctx, "writer %u: cannot open %s", w->id,
			 ctx->guest_path);
		ok = false;
	}
	writer_burst(w, &d, buf, ok);

	while (ok && !atomic_load(&ctx->stop) && !time_up(ctx)) {
		unsigned int op = rnd_below(w, 100);
		uint64_t s, n;

		if (!pick_write_range(w, &s, &n))
			continue;
		if (op < 12 && ctx->discard)
			ok = writer_punch(w, &d, false, s, n);
		else if (op < 24 && ctx->zeroout)
			ok = writer_punch(w, &d, true, s, n);
		else if (op < 34)
			ok = writer_check(w, &d, buf, s, n);
		else
			ok = writer_write(w, &d, buf, s, n);
	}
	dev_close(&d);
	free(buf);
	atomic_fetch_sub(&ctx->writers_left, 1);
	return NULL;
}

/* Does the access read of @s+@n match the pre-image?  Reports if not. */
static bool reader_check(struct worker *w, const void *buf, uint64_t s,
			 uint64_t n)
{
	struct run_ctx *ctx = w->ctx;
	uint64_t i;

	for (i = 0; i < n; i++) {
		const uint64_t *p = (const uint64_t *)buf + i * WORDS_PER_SECTOR;
		char f[128];

		if (sector_matches(p, s + i, ctx->pre_gen))
			continue;
		describe_found(f, sizeof(f), p);
		run_fail(ctx, "reader %u: access sector %" PRIu64
			 " (read %" PRIu64 "+%" PRIu64
			 "): expected pre-image stamp gen %" PRIu32
			 ", found %s", w->id, s + i, s, n, ctx->pre_gen, f);
		return false;
	}
	return true;
}

/*
 * With --readable-every K, only chunks that are multiples of K are in the
 * snapshot: a read inside one of them must return the pre-image, a read
 * of any other chunk must fail with ENODATA.  The read starting at @s is
 * cut to its first chunk.
 */
static bool reader_read_restricted(struct worker *w, struct dev *d,
				   void *buf, uint64_t s, uint64_t n)
{
	struct run_ctx *ctx = w->ctx;
	uint64_t chunk = s / ctx->chunk;
	uint64_t left = (chunk + 1) * ctx->chunk - s;
	bool readable = !(chunk % ctx->readable_every);
	int err;

	if (n > left)
		n = left;
	err = dev_io(d->fd, false, buf, s, n);
	if (!readable) {
		if (err == -ENODATA) {
			atomic_fetch_add(&ctx->refused_reads, 1);
			return true;
		}
		run_fail(ctx, "reader %u: read of access sectors %" PRIu64
			 "+%" PRIu64 " (chunk %" PRIu64
			 ", not in the snapshot): expected ENODATA, got %s",
			 w->id, s, n, chunk, err ? strerror(-err) : "data");
		return false;
	}
	if (err) {
		run_fail(ctx, "reader %u: read of access sectors %" PRIu64
			 "+%" PRIu64 " failed: %s", w->id, s, n, strerror(-err));
		return false;
	}
	if (!reader_check(w, buf, s, n))
		return false;
	atomic_fetch_add(&ctx->reads, 1);
	atomic_fetch_add(&ctx->sectors_read, n);
	return true;
}

static void *reader_fn(void *arg)
{
	struct worker *w = arg;
	struct run_ctx *ctx = w->ctx;
	uint64_t a = ctx->align, max;
	struct dev d;
	void *buf;

	max = ctx->chunk * 2 > 256 ? ctx->chunk * 2 : 256;
	if (max > MAX_IO_SECTORS)
		max = MAX_IO_SECTORS;
	if (max > ctx->nr_sectors)
		max = ctx->nr_sectors;
	max = round_down(max, a);
	buf = xalloc(max << SECTOR_SHIFT);
	if (dev_open(&d, ctx->access_path, O_RDONLY)) {
		run_fail(ctx, "reader %u: cannot open %s", w->id,
			 ctx->access_path);
		goto out;
	}

	/* keep reading until every writer has finished */
	while (!atomic_load(&ctx->stop) && atomic_load(&ctx->writers_left)) {
		uint64_t n = (1 + rnd_below(w, max) + a - 1) / a * a;
		uint64_t s;
		int err;

		if (n > max)
			n = max;
		s = round_down(rnd_below(w, ctx->nr_sectors - n + 1), a);
		if (ctx->readable_every) {
			if (!reader_read_restricted(w, &d, buf, s, n))
				break;
			continue;
		}
		err = dev_io(d.fd, false, buf, s, n);
		if (err) {
			run_fail(ctx, "reader %u: read of access sectors %" PRIu64
				 "+%" PRIu64 " failed: %s", w->id, s, n,
				 strerror(-err));
			break;
		}
		if (!reader_check(w, buf, s, n))
			break;
		atomic_fetch_add(&ctx->reads, 1);
		atomic_fetch_add(&ctx->sectors_read, n);
	}
	dev_close(&d);
out:
	free(buf);
	return NULL;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "guest", required_argument, NULL, 'g' },
		{ "access", required_argument, NULL, 'a' },
		{ "seconds", required_argument, NULL, 't' },
		{ "writers", required_argument, NULL, 'w' },
		{ "readers", required_argument, NULL, 'r' },
		{ "chunk-sectors", required_argument, NULL, 'c' },
		{ "shadow", required_argument, NULL, 's' },
		{ "touched", required_argument, NULL, 'T' },
		{ "seed", required_argument, NULL, 'S' },
		{ "pre-gen", required_argument, NULL, 'p' },
		{ "no-discard", no_argument, NULL, 'D' },
		{ "no-zeroout", no_argument, NULL, 'Z' },
		{ "no-cold", no_argument, NULL, 'N' },
		{ "readable-every", required_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 }
	};
	const char *shadow_path = NULL, *touched_path = NULL;
	uint64_t seconds = 0, nr_writers = 0, nr_readers = 0, touched = 0;
	struct run_ctx *ctx;
	struct worker *workers;
	bool have_seed = false, no_cold = false;
	uint64_t per_writer, i, cold = 0;
	struct dev d;
	int c;

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return EXIT_FAIL;
	ctx->discard = true;
	ctx->zeroout = true;
	pthread_mutex_init(&ctx->print_lock, NULL);

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'g':
			ctx->guest_path = optarg;
			break;
		case 'a':
			ctx->access_path = optarg;
			break;
		case 't':
			seconds = arg_u64("seconds", optarg, 86400);
			break;
		case 'w':
			nr_writers = arg_u64("writers", optarg, 64);
			break;
		case 'r':
			nr_readers = arg_u64("readers", optarg, 64);
			break;
		case 'c':
			ctx->chunk = arg_u64("chunk sectors", optarg, 1U << 24);
			break;
		case 's':
			shadow_path = optarg;
			break;
		case 'T':
			touched_path = optarg;
			break;
		case 'S':
			ctx->seed = arg_u64("seed", optarg, UINT64_MAX);
			have_seed = true;
			break;
		case 'p':
			ctx->pre_gen = arg_u64("pre-image generation", optarg,
					       MAX_GEN - 1);
			break;
		case 'D':
			ctx->discard = false;
			break;
		case 'Z':
			ctx->zeroout = false;
			break;
		case 'N':
			no_cold = true;
			break;
		case 'R':
			ctx->readable_every = arg_u64("readable-every", optarg,
						      UINT32_MAX);
			if (!ctx->readable_every)
				print_usage();
			break;
		default:
			print_usage();
		}
	}
	if (optind != argc || !ctx->guest_path || !seconds || !nr_writers ||
	    !ctx->chunk || !shadow_path || !touched_path) {
		msg("run: --guest, --seconds, --writers, --chunk-sectors, --shadow and --touched %s",
		    "are needed");
		print_usage();
	}
	if (nr_readers && !ctx->access_path) {
		msg("run: --readers needs --access");
		print_usage();
	}
	if (ctx->chunk & (ctx->chunk - 1)) {
		msg("run: chunk size must be a power of two");
		print_usage();
	}
	if (!have_seed)
		ctx->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

	if (dev_open(&d, ctx->guest_path, O_RDONLY))
		return EXIT_FAIL;
	ctx->nr_sectors = d.nr_sectors;
	ctx->align = d.align;
	dev_close(&d);
	if (ctx->access_path) {
		struct dev ad;

		if (dev_open(&ad, ctx->access_path, O_RDONLY))
			return EXIT_FAIL;
		if (ad.nr_sectors != ctx->nr_sectors) {
			msg("run: %s has %" PRIu64 " sectors but %s has %" PRIu64,
			    ctx->access_path, ad.nr_sectors, ctx->guest_path,
			    ctx->nr_sectors);
			return EXIT_FAIL;
		}
		if (ad.align > ctx->align)
			ctx->align = ad.align;
		dev_close(&ad);
	}
	if (ctx->chunk % ctx->align) {
		msg("run: chunk size is smaller than the logical block size");
		return EXIT_USAGE;
	}
	if (ctx->nr_sectors / nr_writers < 2 * ctx->chunk + 2 * ctx->align) {
		msg("run: device too small for %" PRIu64 " writers with %" PRIu64
		    "-sector chunks", nr_writers, ctx->chunk);
		return EXIT_USAGE;
	}
	ctx->nr_chunks = (ctx->nr_sectors + ctx->chunk - 1) / ctx->chunk;
	ctx->max_io = ctx->chunk * 7 / 2;
	if (ctx->max_io < 256)
		ctx->max_io = 256;
	if (ctx->max_io > MAX_IO_SECTORS)
		ctx->max_io = MAX_IO_SECTORS;
	ctx->max_io = round_down(ctx->max_io, ctx->align);
	ctx->cold_shift = -1;
	if (!no_cold) {
		ctx->cold_shift = 0;
		while ((ctx->chunk << (ctx->cold_shift + 1)) <= 1024)
			ctx->cold_shift++;
		for (i = 0; i < ctx->nr_chunks; i++)
			cold += chunk_is_cold(ctx, i);
	}

	ctx->shadow = malloc(ctx->nr_sectors * sizeof(*ctx->shadow));
	ctx->touched = calloc(ctx->nr_chunks, 1);
	workers = calloc(nr_writers + nr_readers, sizeof(*workers));
	if (!ctx->shadow || !ctx->touched || !workers) {
		msg("out of memory");
		return EXIT_FAIL;
	}
	for (i = 0; i < ctx->nr_sectors; i++)
		ctx->shadow[i] = ctx->pre_gen;
	atomic_store(&ctx->next_gen, ctx->pre_gen + 1);
	atomic_store(&ctx->writers_left, nr_writers);

	/*
	 * About 8 chunks per region, at least one and at most 64 regions
	 * per writer, regions of at least 4 chunks.
	 */
	ctx->nr_writers = nr_writers;
	ctx->region_off = round_down(ctx->chunk / 2 + ctx->align, ctx->align) %
			  ctx->chunk;
	per_writer = ctx->nr_chunks / 8 / nr_writers;
	if (per_writer > 64)
		per_writer = 64;
	while (per_writer > 1 &&
	       ctx->nr_sectors / (per_writer * nr_writers) < 4 * ctx->chunk)
		per_writer--;
	if (!per_writer)
		per_writer = 1;
	ctx->nr_regions = per_writer * nr_writers;
	for (i = 0; i < nr_writers + nr_readers; i++) {
		struct worker *w = &workers[i];

		w->ctx = ctx;
		w->id = i;
		w->rng = mix64(ctx->seed + 0x1000 * (i + 1)) | 1;
	}
	printf("run: guest %s (%" PRIu64 " sectors), access %s, %" PRIu64
	       " writers, %" PRIu64 " readers, chunk %" PRIu64
	       " sectors, %" PRIu64 " s, seed %" PRIu64 ", pre-image gen %"
	       PRIu32 ", %" PRIu64 " cold chunks\n", ctx->guest_path,
	       ctx->nr_sectors, ctx->access_path ? ctx->access_path : "-",
	       nr_writers, nr_readers, ctx->chunk, seconds, ctx->seed,
	       ctx->pre_gen, cold);
	printf("run: %" PRIu64 " writer regions (%" PRIu64
	       " per writer, round robin), boundaries %" PRIu64
	       " sectors into a chunk: sectors 0-%" PRIu64 ", %" PRIu64 "-%"
	       PRIu64 ", ...\n", ctx->nr_regions, per_writer, ctx->region_off,
	       region_start(ctx, 1) - 1, region_start(ctx, 1),
	       region_start(ctx, 2) - 1);
	fflush(stdout);

	clock_gettime(CLOCK_MONOTONIC, &ctx->deadline);
	ctx->deadline.tv_sec += seconds;
	pthread_barrier_init(&ctx->barrier, NULL, nr_writers);
	for (i = 0; i < nr_writers + nr_readers; i++) {
		int err = pthread_create(&workers[i].thread, NULL,
					 i < nr_writers ? writer_fn : reader_fn,
					 &workers[i]);
		if (err) {
			/* the writers' barrier needs all of them: give up */
			msg("pthread_create: %s", strerror(err));
			exit(EXIT_FAIL);
		}
	}
	for (i = 0; i < nr_writers + nr_readers; i++)
		pthread_join(workers[i].thread, NULL);

	if (write_shadow(shadow_path, ctx->shadow, ctx->nr_sectors,
			 ctx->pre_gen) ||
	    write_touched(touched_path, ctx->touched, ctx->nr_chunks,
			  ctx->chunk, ctx->nr_sectors, ctx->pre_gen, &touched))
		atomic_fetch_add(&ctx->failures, 1);

	printf("run: writes %" PRIuFAST64 " (%" PRIuFAST64 " sectors), discards %"
	       PRIuFAST64 ", zeroouts %" PRIuFAST64 ", read-backs %" PRIuFAST64
	       ", access reads %" PRIuFAST64 " (%" PRIuFAST64
	       " sectors), refused access reads %" PRIuFAST64
	       ", touched chunks %" PRIu64 " of %" PRIu64 "\n",
	       atomic_load(&ctx->writes), atomic_load(&ctx->sectors_written),
	       atomic_load(&ctx->discards), atomic_load(&ctx->zeroouts),
	       atomic_load(&ctx->checks), atomic_load(&ctx->reads),
	       atomic_load(&ctx->sectors_read),
	       atomic_load(&ctx->refused_reads), touched, ctx->nr_chunks);
	if (atomic_load(&ctx->failures)) {
		msg("run: FAILED (%u failures, seed %" PRIu64 ")",
		    atomic_load(&ctx->failures), ctx->seed);
		return EXIT_FAIL;
	}
	if (!atomic_load(&ctx->writes)) {
		msg("run: FAILED: no write completed");
		return EXIT_FAIL;
	}
	printf("run: ok\n");
	return EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* check-post / check-cow                                              */
/* ------------------------------------------------------------------ */

static uint32_t shadow_gen(const void *arg, uint64_t sector)
{
	return ((const uint32_t *)arg)[sector];
}

static int cmd_check_post(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "guest", required_argument, NULL, 'g' },
		{ "shadow", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 }
	};
	const char *guest = NULL, *shadow_path = NULL;
	struct report r = { 0 };
	uint64_t nr_sectors;
	uint32_t *shadow;
	struct dev d;
	void *buf;
	int c, err;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'g':
			guest = optarg;
			break;
		case 's':
			shadow_path = optarg;
			break;
		default:
			print_usage();
		}
	}
	if (optind != argc || !guest || !shadow_path)
		print_usage();
	shadow = read_shadow(shadow_path, &nr_sectors);
	if (!shadow)
		return EXIT_FAIL;
	if (dev_open(&d, guest, O_RDONLY))
		return EXIT_FAIL;
	if (d.nr_sectors != nr_sectors) {
		msg("%s has %" PRIu64 " sectors, the shadow describes %" PRIu64,
		    guest, d.nr_sectors, nr_sectors);
		return EXIT_FAIL;
	}
	buf = xalloc(BULK_SECTORS << SECTOR_SHIFT);
	r.path = guest;
	err = verify_range(&d, 0, nr_sectors, shadow_gen, shadow, &r, buf);
	report_close_run(&r);
	free(buf);
	free(shadow);
	dev_close(&d);
	if (err)
		return EXIT_FAIL;
	if (r.bad) {
		msg("%s: %" PRIu64 " sectors in %" PRIu64
		    " ranges differ from the post-write image", guest, r.bad,
		    r.runs);
		return EXIT_FAIL;
	}
	printf("check-post: %s holds the post-write image (%" PRIu64
	       " sectors)\n", guest, nr_sectors);
	return EXIT_OK;
}

/* Verify chunks first..last (inclusive) against generation @gen. */
static int verify_chunks(struct dev *d, uint64_t first, uint64_t last,
			 uint64_t chunk, uint64_t nr_sectors, uint32_t gen,
			 struct report *r, void *buf)
{
	uint64_t s = first * chunk, e = (last + 1) * chunk;

	if (e > nr_sectors)
		e = nr_sectors;
	return verify_range(d, s, e - s, const_gen, &gen, r, buf);
}

static int cmd_check_cow(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cow", required_argument, NULL, 'c' },
		{ "touched", required_argument, NULL, 'T' },
		{ "chunk-sectors", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	uint64_t chunk = 0, fchunk, nr_sectors, pre, count, n = 0;
	uint64_t run_first = 0, last = 0;
	const char *cow = NULL, *touched_path = NULL;
	struct report r = { 0 };
	char line[64];
	struct dev d;
	uint32_t gen;
	void *buf;
	FILE *f;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cow = optarg;
			break;
		case 'T':
			touched_path = optarg;
			break;
		case 'C':
			chunk = arg_u64("chunk sectors", optarg, 1U << 24);
			break;
		default:
			print_usage();
		}
	}
	if (optind != argc || !cow || !touched_path)
		print_usage();
	f = fopen(touched_path, "r");
	if (!f) {
		msg("cannot open %s: %s", touched_path, strerror(errno));
		return EXIT_FAIL;
	}
	if (!read_header(f, touched_path, TOUCHED_HEADER) ||
	    !read_keyval(f, touched_path, "sectors", &nr_sectors) ||
	    !read_keyval(f, touched_path, "chunk_sectors", &fchunk) ||
	    !read_keyval(f, touched_path, "pre_gen", &pre) ||
	    !read_keyval(f, touched_path, "chunks", &count))
		return EXIT_FAIL;
	if (chunk && chunk != fchunk) {
		msg("%s was written with %" PRIu64 "-sector chunks, not %" PRIu64,
		    touched_path, fchunk, chunk);
		return EXIT_FAIL;
	}
	chunk = fchunk;
	gen = pre;
	if (!chunk || pre > MAX_GEN)
		return EXIT_FAIL;
	if (dev_open(&d, cow, O_RDONLY))
		return EXIT_FAIL;
	if (d.nr_sectors < nr_sectors) {
		msg("COW device %s (%" PRIu64 " sectors) is smaller than the guest (%"
		    PRIu64 " sectors)", cow, d.nr_sectors, nr_sectors);
		return EXIT_FAIL;
	}
	buf = xalloc(BULK_SECTORS << SECTOR_SHIFT);
	r.path = cow;
	/* the list is sorted: verify runs of consecutive chunks at once */
	while (fgets(line, sizeof(line), f)) {
		uint64_t idx;

		line[strcspn(line, "\n")] = 0;
		if (!parse_u64(line, &idx) || idx * chunk >= nr_sectors ||
		    (n && idx <= last)) {
			msg("%s: bad chunk number '%s'", touched_path, line);
			return EXIT_FAIL;
		}
		if (n && idx != last + 1) {
			if (verify_chunks(&d, run_first, last, chunk, nr_sectors,
					  gen, &r, buf))
				return EXIT_FAIL;
			run_first = idx;
		} else if (!n) {
			run_first = idx;
		}
		last = idx;
		n++;
	}
	if (n && verify_chunks(&d, run_first, last, chunk, nr_sectors, gen, &r,
			       buf))
		return EXIT_FAIL;
	fclose(f);
	report_close_run(&r);
	free(buf);
	dev_close(&d);
	if (n != count) {
		msg("%s lists %" PRIu64 " chunks but says %" PRIu64, touched_path,
		    n, count);
		return EXIT_FAIL;
	}
	printf("touched_chunks %" PRIu64 "\n", n);
	if (r.bad) {
		msg("%s: %" PRIu64 " sectors in %" PRIu64
		    " ranges of touched chunks do not hold the pre-image (gen %"
		    PRIu32 ")", cow, r.bad, r.runs, gen);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* probe: one read or write, print OK or the errno name                 */
/* ------------------------------------------------------------------ */

/* probe --check: OK, or the first sector read that is not of @gen. */
static void probe_check(const void *buf, uint64_t sector, uint64_t count,
			uint32_t gen)
{
	uint64_t i;

	for (i = 0; i < count; i++) {
		const uint64_t *w = (const uint64_t *)buf + i * WORDS_PER_SECTOR;
		char f[128];

		if (sector_matches(w, sector + i, gen))
			continue;
		describe_found(f, sizeof(f), w);
		printf("WRONG sector %" PRIu64 ": %s\n", sector + i, f);
		return;
	}
	printf("OK\n");
}

static int cmd_probe(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "write", no_argument, NULL, 'w' },
		{ "buffered", no_argument, NULL, 'b' },
		{ "gen", required_argument, NULL, 'g' },
		{ "check", no_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 }
	};
	bool write = false, buffered = false, check = false;
	uint64_t sector, count, i;
	uint32_t gen = 0;
	void *buf;
	int c, fd, flags, err = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'w':
			write = true;
			break;
		case 'b':
			buffered = true;
			break;
		case 'g':
			gen = arg_u64("generation", optarg, MAX_GEN);
			break;
		case 'c':
			check = true;
			break;
		default:
			print_usage();
		}
	}
	if (argc - optind != 3 || (write && check))
		print_usage();
	sector = arg_u64("sector", argv[optind + 1], UINT64_MAX >> SECTOR_SHIFT);
	count = arg_u64("count", argv[optind + 2], MAX_IO_SECTORS);
	if (!count)
		print_usage();
	flags = (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC;
	if (!buffered)
		flags |= O_DIRECT;
	fd = open(argv[optind], flags);
	if (fd < 0) {
		printf("%s\n", errname(errno));
		return EXIT_OK;
	}
	buf = xalloc(count << SECTOR_SHIFT);
	if (write)
		for (i = 0; i < count; i++)
			stamp_sector((uint64_t *)buf + i * WORDS_PER_SECTOR,
				     sector + i, gen);
	if (buffered && !write)
		posix_fadvise(fd, (off_t)(sector << SECTOR_SHIFT),
			      (off_t)(count << SECTOR_SHIFT),
			      POSIX_FADV_DONTNEED);
	err = dev_io(fd, write, buf, sector, count);
	if (!err && write && fsync(fd))
		err = -errno;
	if (!err && check)
		probe_check(buf, sector, count, gen);
	else
		printf("%s\n", err ? errname(-err) : "OK");
	free(buf);
	close(fd);
	return EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* model: random interleavings of guest I/O, snapshot reads, snapshot */
/* discards, reloads, suspends and faults, checked against a model of */
/* what every sector of every snapshot must read                      */
/* ------------------------------------------------------------------ */

/*
 * The model keeps, for every sector of the guest device, the generations
 * it may hold: the last one written successfully and those of the failed
 * writes since (a failed write may have reached the media or not). Each
 * sector is written by one writer thread only, so its writes never overlap
 * in time.
 *
 * A snapshot's expected image is taken from the model while the snapshot
 * point is made: at the start of the suspend of the cbw device, plus the
 * writes in flight then, plus every write issued before the resume has
 * returned (a write can be held in the suspended device and land after the
 * snapshot point or not). The first read of a sector through the snapshot
 * pins it to what it read: the image is fixed, so every later read of that
 * sector must return the same.
 */

#define MDL_MAX_CAND		4
#define MDL_WILD		0xff	/* too many candidates: any stamp of the sector */
#define MDL_MAX_EPOCHS		3	/* cbw-access devices alive at once */
#define MDL_LOG_TAIL		40
#define MDL_HOT			8
#define MDL_STALL_MS		10000
#define MDL_FOUND_BAD		(GEN_ZERO - 1)	/* neither zeros nor a stamp */

struct mdl_cand {
	uint32_t g[MDL_MAX_CAND];
	uint8_t n;			/* 0..MDL_MAX_CAND or MDL_WILD */
};

enum { MDL_CHUNK_IN, MDL_CHUNK_DROPPING, MDL_CHUNK_DROPPED };

/* One snapshot, as read through its own cbw-access device. */
struct mdl_epoch {
	unsigned int id;
	unsigned int slot;
	char name[128];
	char path[160];
	char desc[160];
	struct mdl_cand *image;
	uint8_t *chunks;		/* MDL_CHUNK_* */
	bool ending;			/* a reload that ends it has begun */
	bool ended;			/* ... and its resume returned */
	bool broken;			/* seen broken */
	bool retired;			/* no new readers: to be removed */
	unsigned int users;
};

struct mdl_inflight {
	uint64_t s, n;
	uint32_t gen;
	bool busy;
};

struct mdl {
	/* options */
	const char *cbw_name, *origin_name, *origin_dev, *cow_dev, *acc_prefix;
	const char *cow_names[2];
	const char *bitmap, *work, *log_path;
	uint64_t seconds, seed, chunk, nr_writers, nr_readers;
	uint64_t nr_owners;		/* of stripes: the writers, then the orchestrator */
	uint64_t slack_ms;
	bool no_origin_faults;

	/* geometry */
	uint64_t nr_sectors, nr_chunks, max_io, stripe, nr_stripes;
	unsigned int align;
	char cbw_path[160], origin_path[160], cow_paths[2][160];
	unsigned int cbw_major, cbw_minor;
	struct timespec t0, deadline;

	/* the model, and everything below, under @lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct mdl_cand *state;
	uint8_t *written;		/* per sector: a write to it succeeded */
	struct mdl_cand *window;	/* image of the snapshot being taken */
	struct mdl_inflight *inflight;	/* per owner */
	struct mdl_epoch *epochs[MDL_MAX_EPOCHS];
	struct mdl_epoch *cur;		/* the live table's snapshot, if any */
	unsigned int next_epoch;
	bool pause;
	unsigned int parked, writers_done;
	unsigned int disturb;		/* odd while cbw or origin is suspended */
	unsigned int reload_suspends;	/* suspends of a reload that returned */
	unsigned int timeout_ms;	/* cbw_timeout_ms of the live table */
	unsigned int cur_cow;		/* 0, 1, or 2 for none */
	bool cow_slow[2];		/* the COW's table delays or fails writes */

	atomic_bool stop;
	atomic_uint failures;
	atomic_uint next_gen;
	atomic_uint_fast64_t writes_ok, writes_failed, writes_timed_out;
	atomic_uint_fast64_t reads_ok, reads_failed, readbacks;
	atomic_uint_fast64_t max_latency_ms;
	atomic_uint stalls;		/* times the whole machine stood still */

	/* operation log */
	pthread_mutex_t log_lock;
	FILE *log;
	char tail[MDL_LOG_TAIL][320];
	unsigned int nr_logged;
	uint64_t rng;
	unsigned int nr_tables;
	unsigned int op_counts[16];
};

struct mdl_worker {
	struct mdl *m;
	pthread_t thread;
	unsigned int id;
	uint64_t rng;
};

static uint64_t round_up_to(uint64_t v, uint64_t a)
{
	return round_down(v + a - 1, a);
}

static uint64_t mdl_rnd(uint64_t *rng)
{
	uint64_t x = *rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static uint64_t mdl_below(uint64_t *rng, uint64_t n)
{
	return n ? mdl_rnd(rng) % n : 0;
}

static uint64_t mdl_ms(const struct mdl *m)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - m->t0.tv_sec) * 1000 +
	       (now.tv_nsec - m->t0.tv_nsec) / 1000000;
}

static bool mdl_time_up(const struct mdl *m)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > m->deadline.tv_sec ||
	       (now.tv_sec == m->deadline.tv_sec &&
		now.tv_nsec >= m->deadline.tv_nsec);
}

static void mdl_sleep_ms(uint64_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void mdl_log(struct mdl *m, const char *fmt, ...) __printf(2, 3);
static void mdl_log(struct mdl *m, const char *fmt, ...)
{
	char line[320], *p;
	uint64_t t = mdl_ms(m);
	va_list ap;
	int len;

	len = snprintf(line, sizeof(line), "%5" PRIu64 ".%03" PRIu64 " ",
		       t / 1000, t % 1000);
	va_start(ap, fmt);
	vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	va_end(ap);
	/* tables: one line each */
	for (p = line; *p; p++)
		if (*p == '\n')
			*p = p[1] ? ';' : 0;
	pthread_mutex_lock(&m->log_lock);
	memcpy(m->tail[m->nr_logged % MDL_LOG_TAIL], line, sizeof(line));
	m->nr_logged++;
	if (m->log) {
		fprintf(m->log, "%s\n", line);
		fflush(m->log);
	}
	pthread_mutex_unlock(&m->log_lock);
}

static void mdl_fail(struct mdl *m, const char *fmt, ...) __printf(2, 3);
static void mdl_fail(struct mdl *m, const char *fmt, ...)
{
	char line[400];
	unsigned int n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	atomic_store(&m->stop, true);
	n = atomic_fetch_add(&m->failures, 1);
	mdl_log(m, "FAIL: %.180s", line);
	if (n < MAX_REPORTED_FAILS)
		msg("FAIL: %s", line);
}

/* ---- candidates ---- */

static void cand_set(struct mdl_cand *c, uint32_t gen)
{
	c->g[0] = gen;
	c->n = 1;
}

static void cand_add(struct mdl_cand *c, uint32_t gen)
{
	unsigned int i;

	if (c->n == MDL_WILD)
		return;
	for (i = 0; i < c->n; i++)
		if (c->g[i] == gen)
			return;
	if (c->n == MDL_MAX_CAND)
		c->n = MDL_WILD;
	else
		c->g[c->n++] = gen;
}

static bool cand_has(const struct mdl_cand *c, uint32_t gen)
{
	unsigned int i;

	if (c->n == MDL_WILD)
		return gen != MDL_FOUND_BAD;
	for (i = 0; i < c->n; i++)
		if (c->g[i] == gen)
			return true;
	return false;
}

static void cand_describe(char *buf, size_t len, const struct mdl_cand *c)
{
	size_t off = 0;
	unsigned int i;

	if (c->n == MDL_WILD) {
		snprintf(buf, len, "any stamp of the sector");
		return;
	}
	buf[0] = 0;
	for (i = 0; i < c->n && off < len; i++) {
		if (c->g[i] == GEN_ZERO)
			off += snprintf(buf + off, len - off, "%szeros",
					i ? " or " : "");
		else
			off += snprintf(buf + off, len - off, "%sgen %" PRIu32,
					i ? " or " : "", c->g[i]);
	}
}

/* The generation a sector read back carries, GEN_ZERO or MDL_FOUND_BAD. */
static uint32_t found_gen(const uint64_t *w, uint64_t sector)
{
	unsigned int i;

	for (i = 0; i < WORDS_PER_SECTOR; i++)
		if (w[i])
			break;
	if (i == WORDS_PER_SECTOR)
		return GEN_ZERO;
	if (w[0] != STAMP_MAGIC || w[1] != sector || w[2] >= MDL_FOUND_BAD ||
	    !sector_matches(w, sector, w[2]))
		return MDL_FOUND_BAD;
	return w[2];
}

/*
 * Check @n sectors read at @s against @c (the model or an image); on a
 * match, narrow each sector's candidates to what was read (the content is
 * now known). Called under m->lock. Returns the first bad sector or -1.
 */
static int64_t mdl_match(struct mdl_cand *c, const void *buf, uint64_t s,
			 uint64_t n, char *why, size_t len)
{
	uint64_t i;

	for (i = 0; i < n; i++) {
		const uint64_t *w = (const uint64_t *)buf + i * WORDS_PER_SECTOR;
		uint32_t g = found_gen(w, s + i);
		char e[96], f[128];

		if (cand_has(&c[s + i], g))
			continue;
		cand_describe(e, sizeof(e), &c[s + i]);
		describe_found(f, sizeof(f), w);
		snprintf(why, len, "expected %s, found %s", e, f);
		return (int64_t)(s + i);
	}
	for (i = 0; i < n; i++)
		cand_set(&c[s + i],
			 found_gen((const uint64_t *)buf + i * WORDS_PER_SECTOR,
				   s + i));
	return -1;
}

/* ---- dmsetup ---- */

extern char **environ;

static int mdl_run(struct mdl *m, char *const argv[])
{
	pid_t pid;
	int status, err;

	err = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
	if (err) {
		mdl_fail(m, "cannot run %s: %s", argv[0], strerror(err));
		return -1;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -1;
}

/* dmsetup with space-separated arguments; a failure fails the run. */
static int mdl_dm(struct mdl *m, const char *fmt, ...) __printf(2, 3);
static int mdl_dm(struct mdl *m, const char *fmt, ...)
{
	char cmd[512], copy[512], *argv[24], *p, *save = NULL;
	unsigned int argc = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	memcpy(copy, cmd, sizeof(cmd));
	argv[argc++] = "dmsetup";
	for (p = strtok_r(cmd, " ", &save); p && argc < 23;
	     p = strtok_r(NULL, " ", &save))
		argv[argc++] = p;
	argv[argc] = NULL;
	if (mdl_run(m, argv)) {
		mdl_fail(m, "dmsetup %s failed", copy);
		return -1;
	}
	return 0;
}

/* Load the table @table (lines separated by '\n') into device @name. */
static int mdl_load(struct mdl *m, const char *name, const char *table)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/table.%u", m->work, m->nr_tables++);
	f = fopen(path, "w");
	if (!f || fputs(table, f) < 0 || fclose(f)) {
		mdl_fail(m, "cannot write %s", path);
		return -1;
	}
	mdl_log(m, "  load %s: %s", name, table);
	if (mdl_dm(m, "load %s %s", name, path))
		return -1;
	unlink(path);
	return 0;
}

/* Suspend, load, resume @name (a device below the cbw device). */
static int mdl_swap_table(struct mdl *m, const char *name, const char *table,
			  bool disturbs)
{
	int r;

	if (mdl_load(m, name, table))
		return -1;
	if (disturbs) {
		pthread_mutex_lock(&m->lock);
		m->disturb++;
		pthread_mutex_unlock(&m->lock);
	}
	r = mdl_dm(m, "suspend %s", name);
	r = r ?: mdl_dm(m, "resume %s", name);
	if (disturbs) {
		pthread_mutex_lock(&m->lock);
		m->disturb++;
		pthread_mutex_unlock(&m->lock);
	}
	return r;
}

static bool mdl_snapshot_info(struct mdl *m, struct dm_cbw_snapshot_info *si)
{
	int fd = open("/dev/dm-cbw-control", O_RDWR | O_CLOEXEC);
	bool ok;

	memset(si, 0, sizeof(*si));
	si->size = sizeof(*si);
	si->dev_major = m->cbw_major;
	si->dev_minor = m->cbw_minor;
	ok = fd >= 0 && !ioctl(fd, DM_CBW_IOC_SNAPSHOT_INFO, si);
	if (!ok)
		mdl_fail(m, "DM_CBW_IOC_SNAPSHOT_INFO: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	return ok;
}

/* ---- writers ---- */

static uint64_t mdl_stripe_start(const struct mdl *m, uint64_t k)
{
	uint64_t s;

	if (!k)
		return 0;
	if (k >= m->nr_stripes)
		return m->nr_sectors;
	/* boundaries inside chunks: neighbours share a chunk */
	s = k * m->stripe + round_down(m->chunk / 2, m->align);
	return s < m->nr_sectors ? s : m->nr_sectors;
}

static bool mdl_pick_write(struct mdl_worker *w, uint64_t hot[][2],
			   uint64_t *s, uint64_t *n)
{
	struct mdl *m = w->m;
	uint64_t per = (m->nr_stripes + m->nr_owners - 1 - w->id) /
		       m->nr_owners;
	uint64_t k, ss, se, a = m->align, max, len;

	if (mdl_below(&w->rng, 100) < 40) {
		uint64_t *h = hot[mdl_below(&w->rng, MDL_HOT)];

		if (h[1]) {
			*s = h[0];
			*n = h[1];
			return true;
		}
	}
	if (!per)
		return false;
	k = w->id + m->nr_owners * mdl_below(&w->rng, per);
	ss = round_up_to(mdl_stripe_start(m, k), a);
	se = round_down(mdl_stripe_start(m, k + 1), a);
	if (se <= ss)
		return false;
	max = se - ss < m->max_io ? se - ss : m->max_io;
	if (mdl_below(&w->rng, 2) && m->chunk < max)
		len = 1 + mdl_below(&w->rng, m->chunk);
	else
		len = 1 + mdl_below(&w->rng, max);
	len = round_up_to(len, a);
	if (len > max)
		len = max;
	*s = ss + round_down(mdl_below(&w->rng, se - ss - len + 1), a);
	*n = len;
	k = mdl_below(&w->rng, MDL_HOT);
	hot[k][0] = *s;
	hot[k][1] = *n;
	return true;
}

/*
 * A thread that wakes up every 10 ms: when it wakes up a second late, the
 * machine (a loaded VM) stood still, and the writes in flight then are not
 * held to the time bound.
 */
static void *mdl_heartbeat_fn(void *arg)
{
	struct mdl *m = arg;
	uint64_t last = mdl_ms(m), now;

	while (!atomic_load(&m->stop) && !mdl_time_up(m)) {
		mdl_sleep_ms(10);
		now = mdl_ms(m);
		if (now - last > 1000) {
			atomic_fetch_add(&m->stalls, 1);
			mdl_log(m, "the machine stood still for %" PRIu64 " ms",
				now - last);
		}
		last = now;
	}
	return NULL;
}

static void mdl_park(struct mdl *m)
{
	pthread_mutex_lock(&m->lock);
	if (m->pause) {
		m->parked++;
		pthread_cond_broadcast(&m->cond);
		while (m->pause && !atomic_load(&m->stop))
			pthread_cond_wait(&m->cond, &m->lock);
		m->parked--;
	}
	pthread_mutex_unlock(&m->lock);
}

enum { MDL_WRITE, MDL_DISCARD, MDL_ZEROOUT };

static const char *const mdl_write_names[] = { "write", "discard", "zeroout" };

static void mdl_writer_io(struct mdl_worker *w, struct dev *d, void *buf,
			  int kind, uint64_t s, uint64_t n)
{
	struct mdl *m = w->m;
	struct mdl_inflight *fl = &m->inflight[w->id];
	unsigned int d0, d1, timeout, stalls;
	uint64_t i, t0, t, bound;
	uint32_t gen = GEN_ZERO;
	int err;

	if (kind == MDL_WRITE) {
		gen = atomic_fetch_add(&m->next_gen, 1);
		if (gen >= MDL_FOUND_BAD) {
			mdl_fail(m, "generation counter overflow");
			return;
		}
		for (i = 0; i < n; i++)
			stamp_sector((uint64_t *)buf + i * WORDS_PER_SECTOR,
				     s + i, gen);
	}
	pthread_mutex_lock(&m->lock);
	*fl = (struct mdl_inflight){ s, n, gen, true };
	if (m->window)
		for (i = 0; i < n; i++)
			cand_add(&m->window[s + i], gen);
	d0 = m->disturb;
	timeout = m->timeout_ms;
	pthread_mutex_unlock(&m->lock);
	stalls = atomic_load(&m->stalls);

	t0 = mdl_ms(m);
	if (kind == MDL_WRITE)
		err = dev_io(d->fd, true, buf, s, n);
	else
		err = dev_punch(d, kind == MDL_ZEROOUT, s, n);
	t = mdl_ms(m) - t0;

	pthread_mutex_lock(&m->lock);
	fl->busy = false;
	for (i = 0; i < n; i++) {
		if (err) {
			cand_add(&m->state[s + i], gen);
		} else {
			cand_set(&m->state[s + i], gen);
			m->written[s + i] = 1;
		}
	}
	d1 = m->disturb;
	pthread_mutex_unlock(&m->lock);

	if (err) {
		atomic_fetch_add(&m->writes_failed, 1);
		if (err == -ETIMEDOUT)
			atomic_fetch_add(&m->writes_timed_out, 1);
		if (err != -EIO && err != -ETIMEDOUT)
			mdl_fail(m, "writer %u: %s of guest sectors %" PRIu64 "+%"
				 PRIu64 " failed with %s, not EIO or ETIMEDOUT",
				 w->id, mdl_write_names[kind], s, n,
				 errname(-err));
	} else {
		atomic_fetch_add(&m->writes_ok, 1);
	}
	if (d0 != d1 || (d0 & 1) || !timeout || !m->slack_ms ||
	    stalls != atomic_load(&m->stalls))
		return;
	if (t > atomic_load(&m->max_latency_ms))
		atomic_store(&m->max_latency_ms, t);
	/*
	 * cbw_timeout_ms bounds a guest write: allow one timeout per MiB
	 * copied one after the other, one more, and a generous slack.
	 */
	bound = timeout * (2 + n / BULK_SECTORS) + m->slack_ms;
	if (t > bound)
		mdl_fail(m, "writer %u: %s of guest sectors %" PRIu64 "+%" PRIu64
			 " took %" PRIu64 " ms (%s) with cbw_timeout_ms %u, more than %"
			 PRIu64 " ms, while nothing was suspended", w->id,
			 mdl_write_names[kind], s, n, t,
			 err ? errname(-err) : "OK", timeout, bound);
}

static void mdl_writer_check(struct mdl_worker *w, struct dev *d, void *buf,
			     uint64_t s, uint64_t n)
{
	struct mdl *m = w->m;
	char why[256];
	int64_t bad;
	int err;

	err = dev_io(d->fd, false, buf, s, n);
	if (err) {
		/* guest reads go straight to the origin; it fails no reads */
		mdl_fail(m, "writer %u: read of guest sectors %" PRIu64 "+%" PRIu64
			 " failed: %s", w->id, s, n, strerror(-err));
		return;
	}
	atomic_fetch_add(&m->readbacks, 1);
	pthread_mutex_lock(&m->lock);
	bad = mdl_match(m->state, buf, s, n, why, sizeof(why));
	pthread_mutex_unlock(&m->lock);
	if (bad >= 0)
		mdl_fail(m, "writer %u: guest sector %" PRId64 " (read %" PRIu64
			 "+%" PRIu64 "): %s", w->id, bad, s, n, why);
}

static void *mdl_writer_fn(void *arg)
{
	struct mdl_worker *w = arg;
	struct mdl *m = w->m;
	uint64_t hot[MDL_HOT][2] = { { 0 } };
	struct dev d;
	void *buf;

	buf = xalloc(m->max_io << SECTOR_SHIFT);
	if (dev_open(&d, m->cbw_path, O_RDWR)) {
		mdl_fail(m, "writer %u: cannot open %s", w->id, m->cbw_path);
		goto out;
	}
	while (!atomic_load(&m->stop) && !mdl_time_up(m)) {
		unsigned int op = mdl_below(&w->rng, 100);
		uint64_t s, n;

		mdl_park(m);
		if (!mdl_pick_write(w, hot, &s, &n))
			continue;
		if (op < 20)
			mdl_writer_check(w, &d, buf, s, n);
		else if (op < 25)
			mdl_writer_io(w, &d, buf, MDL_DISCARD, s, n);
		else if (op < 30)
			mdl_writer_io(w, &d, buf, MDL_ZEROOUT, s, n);
		else
			mdl_writer_io(w, &d, buf, MDL_WRITE, s, n);
	}
	dev_close(&d);
out:
	free(buf);
	pthread_mutex_lock(&m->lock);
	m->writers_done++;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* ---- readers ---- */

static uint8_t mdl_range_chunks(const struct mdl *m, const struct mdl_epoch *ep,
				uint64_t s, uint64_t n)
{
	uint64_t c;
	uint8_t worst = MDL_CHUNK_IN;

	for (c = s / m->chunk; c <= (s + n - 1) / m->chunk; c++)
		if (ep->chunks[c] > worst)
			worst = ep->chunks[c];
	return worst;
}

/* One random read of @ep; false once @ep can no longer be read. */
static bool mdl_read_one(struct mdl_worker *w, struct mdl_epoch *ep,
			 struct dev *d, void *buf, uint64_t max)
{
	struct mdl *m = w->m;
	struct dm_cbw_snapshot_info si;
	uint64_t a = m->align, s, n;
	const char *must_fail = NULL;
	bool explained, dead;
	char why[256];
	int64_t bad;
	int err;

	n = round_up_to(1 + mdl_below(&w->rng, max), a);
	if (n > max)
		n = max;
	s = round_down(mdl_below(&w->rng, m->nr_sectors - n + 1), a);

	pthread_mutex_lock(&m->lock);
	if (ep->ended)
		must_fail = "its snapshot had ended";
	else if (ep->broken)
		must_fail = "its snapshot was broken";
	else if (mdl_range_chunks(m, ep, s, n) == MDL_CHUNK_DROPPED)
		must_fail = "it covers discarded chunks";
	pthread_mutex_unlock(&m->lock);

	err = dev_io(d->fd, false, buf, s, n);
	if (!err) {
		atomic_fetch_add(&m->reads_ok, 1);
		if (must_fail) {
			mdl_fail(m, "reader %u: read of %s sectors %" PRIu64 "+%"
				 PRIu64 " returned data although %s", w->id,
				 ep->name, s, n, must_fail);
			return false;
		}
		pthread_mutex_lock(&m->lock);
		bad = mdl_match(ep->image, buf, s, n, why, sizeof(why));
		pthread_mutex_unlock(&m->lock);
		if (bad >= 0)
			mdl_fail(m, "reader %u: snapshot %u (%s) sector %" PRId64
				 " (read %" PRIu64 "+%" PRIu64 "): %s", w->id,
				 ep->id, ep->name, bad, s, n, why);
		return true;
	}
	atomic_fetch_add(&m->reads_failed, 1);
	if (err != -ENODATA && err != -EIO) {
		mdl_fail(m, "reader %u: read of %s sectors %" PRIu64 "+%" PRIu64
			 " failed with %s, not ENODATA or EIO", w->id, ep->name,
			 s, n, errname(-err));
		return false;
	}
	pthread_mutex_lock(&m->lock);
	dead = ep->ending || ep->broken;
	explained = dead || mdl_range_chunks(m, ep, s, n) != MDL_CHUNK_IN;
	pthread_mutex_unlock(&m->lock);
	if (explained)
		return !dead;
	/* broken since the last look? (then it is still this snapshot) */
	if (!mdl_snapshot_info(m, &si))
		return false;
	pthread_mutex_lock(&m->lock);
	if (si.state == DM_CBW_SNAPSHOT_BROKEN && !ep->ending && !ep->broken) {
		ep->broken = true;
		mdl_log(m, "snapshot %u seen broken by a reader (error %d)",
			ep->id, si.error);
	}
	explained = ep->ending || ep->broken;
	pthread_mutex_unlock(&m->lock);
	if (!explained)
		mdl_fail(m, "reader %u: read of %s sectors %" PRIu64 "+%" PRIu64
			 " failed with %s, but the snapshot is active and the chunks"
			 " were not discarded", w->id, ep->name, s, n,
			 errname(-err));
	return false;
}

static struct mdl_epoch *mdl_reader_enter(struct mdl_worker *w)
{
	struct mdl *m = w->m;
	struct mdl_epoch *ep = m->cur, *c[MDL_MAX_EPOCHS];
	unsigned int i, nr = 0;

	pthread_mutex_lock(&m->lock);
	for (i = 0; i < MDL_MAX_EPOCHS; i++)
		if (m->epochs[i] && !m->epochs[i]->retired)
			c[nr++] = m->epochs[i];
	ep = m->cur && !m->cur->retired ? m->cur : NULL;
	if (nr && (!ep || mdl_below(&w->rng, 10) == 0))
		ep = c[mdl_below(&w->rng, nr)];
	if (ep)
		ep->users++;
	pthread_mutex_unlock(&m->lock);
	return ep;
}

static void mdl_reader_leave(struct mdl *m, struct mdl_epoch *ep)
{
	pthread_mutex_lock(&m->lock);
	ep->users--;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static void *mdl_reader_fn(void *arg)
{
	struct mdl_worker *w = arg;
	struct mdl *m = w->m;
	uint64_t max = m->chunk * 2 > 256 ? m->chunk * 2 : 256;
	void *buf;

	if (max > MAX_IO_SECTORS)
		max = MAX_IO_SECTORS;
	max = round_down(max, m->align);
	buf = xalloc(max << SECTOR_SHIFT);
	while (!atomic_load(&m->stop) && !mdl_time_up(m)) {
		struct mdl_epoch *ep = mdl_reader_enter(w);
		struct dev d;
		unsigned int i;

		if (!ep) {
			mdl_sleep_ms(20);
			continue;
		}
		if (dev_open(&d, ep->path, O_RDONLY)) {
			mdl_fail(m, "reader %u: cannot open %s", w->id, ep->path);
			mdl_reader_leave(m, ep);
			break;
		}
		for (i = 0; i < 16 && !atomic_load(&m->stop); i++)
			if (!mdl_read_one(w, ep, &d, buf, max))
				break;
		dev_close(&d);
		mdl_reader_leave(m, ep);
		if (i < 16)
			mdl_sleep_ms(10);
	}
	free(buf);
	return NULL;
}

/* ---- the orchestrator ---- */

enum {
	MDL_OP_SNAPSHOT, MDL_OP_END, MDL_OP_SUSPEND, MDL_OP_DISCARD,
	MDL_OP_COW_FAULT, MDL_OP_ORIGIN_FAULT, MDL_OP_RETIRE, MDL_OP_LATE_COPY,
	MDL_OP_TORN_WRITE, MDL_NR_OPS
};

static const char *const mdl_op_names[MDL_NR_OPS] = {
	"new-snapshot", "end-snapshot", "suspend", "access-discard",
	"cow-fault", "origin-fault", "remove-access", "late-copy", "torn-write",
};

static void mdl_poll(struct mdl *m)
{
	struct dm_cbw_snapshot_info si;

	if (!mdl_snapshot_info(m, &si))
		return;
	if (si.chunks_copied + si.chunks_to_copy + si.copies_in_flight >
	    si.chunks_total || si.chunks_accessible > si.chunks_total)
		mdl_fail(m, "inconsistent snapshot counters: total %llu copied %llu to_copy %llu"
			 " in_flight %llu accessible %llu",
			 (unsigned long long)si.chunks_total,
			 (unsigned long long)si.chunks_copied,
			 (unsigned long long)si.chunks_to_copy,
			 (unsigned long long)si.copies_in_flight,
			 (unsigned long long)si.chunks_accessible);
	pthread_mutex_lock(&m->lock);
	if (m->cur && !m->cur->ending) {
		if (si.state == DM_CBW_SNAPSHOT_BROKEN && !m->cur->broken) {
			m->cur->broken = true;
			mdl_log(m, "snapshot %u broken (error %d, %llu copies failed,"
				" %llu timed out)",
				m->cur->id, si.error,
				(unsigned long long)si.copies_failed,
				(unsigned long long)si.copies_timed_out);
		}
		if (si.state == DM_CBW_SNAPSHOT_NONE)
			mdl_fail(m, "snapshot %u vanished: the cbw device reports none",
				 m->cur->id);
	}
	pthread_mutex_unlock(&m->lock);
}

static void mdl_pause_writers(struct mdl *m)
{
	pthread_mutex_lock(&m->lock);
	m->pause = true;
	while (m->parked + m->writers_done < m->nr_writers &&
	       !atomic_load(&m->stop))
		pthread_cond_wait(&m->cond, &m->lock);
	pthread_mutex_unlock(&m->lock);
}

static void mdl_resume_writers(struct mdl *m)
{
	pthread_mutex_lock(&m->lock);
	m->pause = false;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/*
 * The snapshot point lies between the start of the suspend and the return
 * of the resume: start the image with the model and the writes in flight,
 * and let every write issued until mdl_window_end() add itself.
 */
static void mdl_window_begin(struct mdl *m)
{
	struct mdl_cand *img = malloc(m->nr_sectors * sizeof(*img));
	uint64_t w, i;

	if (!img) {
		msg("out of memory");
		exit(EXIT_FAIL);
	}
	pthread_mutex_lock(&m->lock);
	memcpy(img, m->state, m->nr_sectors * sizeof(*img));
	for (w = 0; w < m->nr_owners; w++) {
		const struct mdl_inflight *fl = &m->inflight[w];

		for (i = 0; fl->busy && i < fl->n; i++)
			cand_add(&img[fl->s + i], fl->gen);
	}
	m->window = img;
	m->disturb++;
	pthread_mutex_unlock(&m->lock);
}

static struct mdl_cand *mdl_window_end(struct mdl *m, unsigned int timeout,
				       bool snapshot)
{
	struct mdl_cand *img;

	pthread_mutex_lock(&m->lock);
	img = m->window;
	m->window = NULL;
	m->disturb++;
	m->timeout_ms = timeout;
	if (m->cur)
		m->cur->ended = true;
	m->cur = NULL;
	pthread_mutex_unlock(&m->lock);
	if (!snapshot) {
		free(img);
		img = NULL;
	}
	return img;
}

static void mdl_epoch_free(struct mdl_epoch *ep)
{
	free(ep->image);
	free(ep->chunks);
	free(ep);
}

/* Let the readers of @ep go, then remove its cbw-access device. */
static void mdl_retire(struct mdl *m, struct mdl_epoch *ep)
{
	unsigned int i;

	pthread_mutex_lock(&m->lock);
	ep->retired = true;
	while (ep->users)
		pthread_cond_wait(&m->cond, &m->lock);
	for (i = 0; i < MDL_MAX_EPOCHS; i++)
		if (m->epochs[i] == ep)
			m->epochs[i] = NULL;
	if (m->cur == ep)
		m->cur = NULL;
	pthread_mutex_unlock(&m->lock);
	mdl_log(m, "remove %s (snapshot %u)", ep->name, ep->id);
	mdl_dm(m, "remove --retry %s", ep->name);
	mdl_epoch_free(ep);
}

/* The oldest cbw-access device, not that of the live snapshot. */
static struct mdl_epoch *mdl_oldest_stale(struct mdl *m)
{
	struct mdl_epoch *old = NULL;
	unsigned int i;

	pthread_mutex_lock(&m->lock);
	for (i = 0; i < MDL_MAX_EPOCHS; i++)
		if (m->epochs[i] && m->epochs[i] != m->cur &&
		    (!old || m->epochs[i]->id < old->id))
			old = m->epochs[i];
	pthread_mutex_unlock(&m->lock);
	return old;
}

/* A cbw-access device for the snapshot that just started. */
static void mdl_publish(struct mdl *m, struct mdl_cand *img, const char *desc)
{
	struct mdl_epoch *ep, *old;
	char table[256], path[256];
	unsigned int slot, i;
	bool used[MDL_MAX_EPOCHS] = { false };
	FILE *f;

	ep = calloc(1, sizeof(*ep));
	if (ep)
		ep->chunks = calloc(m->nr_chunks, 1);
	if (!ep || !ep->chunks) {
		msg("out of memory");
		exit(EXIT_FAIL);
	}
	ep->image = img;
	for (;;) {
		pthread_mutex_lock(&m->lock);
		for (i = 0; i < MDL_MAX_EPOCHS; i++)
			if (m->epochs[i])
				used[m->epochs[i]->slot] = true;
		for (slot = 0; slot < MDL_MAX_EPOCHS && used[slot]; slot++)
			;
		pthread_mutex_unlock(&m->lock);
		if (slot < MDL_MAX_EPOCHS)
			break;
		old = mdl_oldest_stale(m);
		if (!old) {
			mdl_fail(m, "internal error: no free cbw-access slot");
			mdl_epoch_free(ep);
			return;
		}
		mdl_retire(m, old);
		memset(used, 0, sizeof(used));
	}
	ep->slot = slot;
	ep->id = ++m->next_epoch;
	snprintf(ep->name, sizeof(ep->name), "%s%u", m->acc_prefix, slot);
	snprintf(ep->path, sizeof(ep->path), "/dev/mapper/%s", ep->name);
	snprintf(ep->desc, sizeof(ep->desc), "%s", desc);
	snprintf(table, sizeof(table), "0 %" PRIu64 " cbw-access %s\n",
		 m->nr_sectors, m->cbw_path);
	snprintf(path, sizeof(path), "%s/access.table", m->work);
	f = fopen(path, "w");
	if (!f || fputs(table, f) < 0 || fclose(f)) {
		mdl_fail(m, "cannot write %s", path);
		mdl_epoch_free(ep);
		return;
	}
	if (mdl_dm(m, "create %s %s", ep->name, path)) {
		mdl_epoch_free(ep);
		return;
	}
	mdl_log(m, "snapshot %u readable through %s", ep->id, ep->name);
	pthread_mutex_lock(&m->lock);
	for (i = 0; i < MDL_MAX_EPOCHS && m->epochs[i]; i++)
		;
	m->epochs[i] = ep;
	m->cur = ep;
	pthread_mutex_unlock(&m->lock);
}

static const char *mdl_cow_path(struct mdl *m, unsigned int cow)
{
	return cow < 2 ? m->cow_paths[cow] : "-";
}

/*
 * Reload the cbw device: a new snapshot on COW @cow, or none (cow 2), with
 * the writers paused or not, the table loaded before the suspend or not.
 */
static void mdl_reload_as(struct mdl *m, unsigned int cow, bool break_snapshot,
			  unsigned int timeout, bool paused, bool load_first)
{
	bool snapshot = cow < 2;
	char table[512], desc[160];
	struct mdl_cand *img;

	if (snapshot) {
		snprintf(desc, sizeof(desc), "%s, %s, timeout %u ms",
			 m->cow_names[cow], break_snapshot ? "break_snapshot" :
			 "break_guest_write", timeout);
		if (timeout)
			snprintf(table, sizeof(table),
				 "0 %" PRIu64 " cbw %s %s %" PRIu64
				 " 4 on_cbw_error %s cbw_timeout_ms %u\n",
				 m->nr_sectors, m->origin_path,
				 mdl_cow_path(m, cow), m->chunk,
				 break_snapshot ? "break_snapshot" :
				 "break_guest_write", timeout);
		else
			snprintf(table, sizeof(table),
				 "0 %" PRIu64 " cbw %s %s %" PRIu64
				 " 2 on_cbw_error %s\n", m->nr_sectors,
				 m->origin_path, mdl_cow_path(m, cow), m->chunk,
				 break_snapshot ? "break_snapshot" :
				 "break_guest_write");
	} else {
		snprintf(table, sizeof(table), "0 %" PRIu64 " cbw %s - %" PRIu64
			 "\n", m->nr_sectors, m->origin_path, m->chunk);
	}
	mdl_log(m, "%s snapshot %u%s%s%s", snapshot ? "new" : "end",
		m->next_epoch + (snapshot ? 1 : 0), snapshot ? ": " : "",
		snapshot ? desc : "",
		paused ? ", writers paused" : ", writers running");
	pthread_mutex_lock(&m->lock);
	if (m->cur)
		m->cur->ending = true;
	pthread_mutex_unlock(&m->lock);
	if (load_first && mdl_load(m, m->cbw_name, table))
		return;
	if (paused)
		mdl_pause_writers(m);
	mdl_window_begin(m);
	mdl_dm(m, "suspend %s", m->cbw_name);
	pthread_mutex_lock(&m->lock);
	m->reload_suspends++;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	if (!load_first)
		mdl_load(m, m->cbw_name, table);
	mdl_dm(m, "resume %s", m->cbw_name);
	img = mdl_window_end(m, timeout, snapshot);
	if (paused)
		mdl_resume_writers(m);
	m->cur_cow = cow;
	if (snapshot && !atomic_load(&m->stop))
		mdl_publish(m, img, desc);
	else
		free(img);
}

static void mdl_reload(struct mdl *m, unsigned int cow)
{
	static const unsigned int timeouts[] = { 0, 0, 0, 50, 100, 200, 300 };
	bool paused = cow < 2 && mdl_below(&m->rng, 2);
	bool load_first = mdl_below(&m->rng, 3) == 0;
	bool break_snapshot = mdl_below(&m->rng, 2);
	unsigned int timeout = timeouts[mdl_below(&m->rng, 7)];

	mdl_reload_as(m, cow, break_snapshot, cow < 2 ? timeout : 0, paused,
		      load_first);
}

static void mdl_op_suspend(struct mdl *m)
{
	bool paused = mdl_below(&m->rng, 2);
	uint64_t ms = mdl_below(&m->rng, 300);

	mdl_log(m, "suspend %s for %" PRIu64 " ms, writers %s", m->cbw_name,
		ms, paused ? "paused" : "running");
	if (paused)
		mdl_pause_writers(m);
	pthread_mutex_lock(&m->lock);
	m->disturb++;
	pthread_mutex_unlock(&m->lock);
	if (!mdl_dm(m, "suspend %s", m->cbw_name)) {
		mdl_sleep_ms(ms);
		mdl_dm(m, "resume %s", m->cbw_name);
	}
	pthread_mutex_lock(&m->lock);
	m->disturb++;
	pthread_mutex_unlock(&m->lock);
	if (paused)
		mdl_resume_writers(m);
}

static void mdl_op_discard(struct mdl *m)
{
	struct mdl_epoch *ep;
	uint64_t c0, nc, s, e, c, start, end;
	struct dev d;
	int err;

	pthread_mutex_lock(&m->lock);
	ep = m->cur;
	pthread_mutex_unlock(&m->lock);
	if (!ep)
		return;
	c0 = mdl_below(&m->rng, m->nr_chunks);
	nc = 1 + mdl_below(&m->rng, m->nr_chunks - c0 < 32 ?
			   m->nr_chunks - c0 : 32);
	s = c0 * m->chunk;
	e = (c0 + nc) * m->chunk;
	if (e > m->nr_sectors)
		e = m->nr_sectors;
	/* sometimes not aligned: only the whole chunks inside are dropped */
	if (mdl_below(&m->rng, 4) == 0 && e - s > 2 * m->align) {
		s += round_down(mdl_below(&m->rng, m->chunk), m->align);
		if (s >= e)
			s = e - m->align;
	}
	start = (s + m->chunk - 1) / m->chunk;
	end = e / m->chunk;	/* chunks [start, end) are dropped */
	mdl_log(m, "discard %s sectors %" PRIu64 "+%" PRIu64 " (chunks %" PRIu64
		"-%" PRIu64 ")", ep->name, s, e - s, start, end);
	pthread_mutex_lock(&m->lock);
	for (c = start; c < end; c++)
		if (ep->chunks[c] == MDL_CHUNK_IN)
			ep->chunks[c] = MDL_CHUNK_DROPPING;
	pthread_mutex_unlock(&m->lock);
	if (dev_open(&d, ep->path, O_RDWR)) {
		mdl_fail(m, "cannot open %s for writing", ep->path);
		return;
	}
	err = dev_punch(&d, false, s, e - s);
	dev_close(&d);
	if (err) {
		/* dropped or not: reads may fail, but must not return other data */
		mdl_log(m, "  discard failed: %s", errname(-err));
		return;
	}
	pthread_mutex_lock(&m->lock);
	for (c = start; c < end; c++)
		ep->chunks[c] = MDL_CHUNK_DROPPED;
	pthread_mutex_unlock(&m->lock);
}

/* Swap the table of COW @cow; @mode: 0-34 linear, 35-54 flakey, ... */
static void mdl_set_cow(struct mdl *m, unsigned int cow, unsigned int mode)
{
	const char *dev = m->cow_dev;
	char table[512];
	unsigned int ms;

	if (mode < 35) {
		snprintf(table, sizeof(table), "0 %" PRIu64 " linear %s 0\n",
			 m->nr_sectors, dev);
	} else if (mode < 55) {
		snprintf(table, sizeof(table),
			 "0 %" PRIu64 " flakey %s 0 0 1 1 error_writes\n",
			 m->nr_sectors, dev);
	} else if (mode < 80) {
		ms = 100 + mdl_below(&m->rng, 400);
		snprintf(table, sizeof(table), "0 %" PRIu64
			 " delay %s 0 0 %s 0 %u\n", m->nr_sectors, dev, dev, ms);
	} else {
		snprintf(table, sizeof(table), "0 %" PRIu64
			 " delay %s 0 0 %s 0 %u\n", m->nr_sectors, dev, dev,
			 MDL_STALL_MS);
	}
	m->cow_slow[cow] = mode >= 35;
	mdl_swap_table(m, m->cow_names[cow], table, false);
}

static void mdl_op_cow_fault(struct mdl *m)
{
	unsigned int cow = m->cur_cow < 2 && mdl_below(&m->rng, 4) ?
			   m->cur_cow : mdl_below(&m->rng, 2);

	mdl_set_cow(m, cow, mdl_below(&m->rng, 100));
}

/* A stripe of the orchestrator's, at random. */
static uint64_t mdl_own_stripe(struct mdl *m)
{
	return m->nr_writers + m->nr_owners *
	       mdl_below(&m->rng, (m->nr_stripes - m->nr_writers) / m->nr_owners);
}

/*
 * The orchestrator owns some stripes too, for writes in a set order. Its
 * writes go through mdl_writer_io() as the writer after the last one.
 */
struct mdl_late {
	struct mdl_worker w;
	struct dev d;
	void *buf;
	uint64_t s, n;
	unsigned int suspends;
	pthread_t thread;
};

/* Write once the reload has suspended the cbw device: it goes in at resume. */
static void *mdl_late_write_fn(void *arg)
{
	struct mdl_late *l = arg;
	struct mdl *m = l->w.m;

	pthread_mutex_lock(&m->lock);
	while (m->reload_suspends == l->suspends && !atomic_load(&m->stop))
		pthread_cond_wait(&m->cond, &m->lock);
	pthread_mutex_unlock(&m->lock);
	mdl_sleep_ms(50);
	mdl_writer_io(&l->w, &l->d, l->buf, MDL_WRITE, l->s, l->n);
	return NULL;
}

/* Read chunk @c of the live snapshot: it must read its image. */
static void mdl_check_chunk(struct mdl *m, uint64_t c, const char *when)
{
	void *buf = xalloc(m->chunk << SECTOR_SHIFT);
	struct mdl_epoch *ep = m->cur;
	char why[256];
	struct dev d;
	int64_t bad;
	int err;

	if (!ep || dev_open(&d, ep->path, O_RDONLY)) {
		mdl_fail(m, "late copy: no cbw-access device to read");
		free(buf);
		return;
	}
	err = dev_io(d.fd, false, buf, c * m->chunk, m->chunk);
	dev_close(&d);
	if (err) {
		mdl_fail(m, "late copy: read of chunk %" PRIu64 " of snapshot %u %s: %s",
			 c, ep->id, when, errname(-err));
	} else {
		pthread_mutex_lock(&m->lock);
		bad = mdl_match(ep->image, buf, c * m->chunk, m->chunk, why,
				sizeof(why));
		pthread_mutex_unlock(&m->lock);
		if (bad >= 0)
			mdl_fail(m, "late copy: snapshot %u (%s) sector %" PRId64
				 " %s: %s", ep->id, ep->name, bad, when, why);
	}
	free(buf);
}

/*
 * A copy that timed out and a new snapshot on the same storage (issue of
 * the late copy): with writes to the COW stalled and break_snapshot, write
 * a chunk (its copy times out, the write goes on), write it again, start a
 * new snapshot on the other COW device, which shares the storage, and
 * write the chunk while that happens; then let the stalled COW write
 * land. The new snapshot must read the chunk as it was at its snapshot
 * point, not the old snapshot's copy.
 */
static void mdl_op_late_copy(struct mdl *m)
{
	unsigned int x = mdl_below(&m->rng, 2), y = !x;
	struct mdl_late l = { .w = { .m = m, .id = m->nr_writers } };
	uint64_t k, c;

	l.w.rng = mix64(m->seed ^ m->nr_logged) | 1;
	k = mdl_own_stripe(m);
	c = k * 4 + 1;		/* a whole chunk inside stripe k */
	l.s = c * m->chunk + round_down(mdl_below(&m->rng, m->chunk), m->align);
	l.n = m->align;
	l.buf = xalloc(m->chunk << SECTOR_SHIFT);
	if (dev_open(&l.d, m->cbw_path, O_RDWR)) {
		mdl_fail(m, "cannot open %s", m->cbw_path);
		free(l.buf);
		return;
	}
	mdl_log(m, "late copy of chunk %" PRIu64 " (sectors %" PRIu64 "+%" PRIu64
		"): COW %s stalled, new snapshot on %s", c, l.s, l.n,
		m->cow_names[x], m->cow_names[y]);
	mdl_set_cow(m, x, 0);
	mdl_set_cow(m, y, 0);
	mdl_reload_as(m, x, true, 100, false, false);
	/* no other copy may time out first and break the snapshot */
	mdl_pause_writers(m);
	mdl_set_cow(m, x, 99);
	mdl_writer_io(&l.w, &l.d, l.buf, MDL_WRITE, l.s, l.n);
	mdl_writer_io(&l.w, &l.d, l.buf, MDL_WRITE, l.s, l.n);
	mdl_resume_writers(m);
	l.suspends = m->reload_suspends;
	if (pthread_create(&l.thread, NULL, mdl_late_write_fn, &l)) {
		mdl_fail(m, "pthread_create failed");
	} else {
		mdl_reload_as(m, y, false, 0, false, false);
		pthread_join(l.thread, NULL);
		if (!atomic_load(&m->stop))
			mdl_check_chunk(m, c, "after the new snapshot started");
	}
	mdl_set_cow(m, x, 0);
	if (!atomic_load(&m->stop))
		mdl_check_chunk(m, c, "after the stalled COW write landed");
	dev_close(&l.d);
	free(l.buf);
}

static void mdl_op_origin_fault(struct mdl *m)
{
	char table[1024];
	uint64_t pts[6], s = 0;
	unsigned int nz, i, j;
	size_t off = 0;

	if (mdl_below(&m->rng, 2)) {
		snprintf(table, sizeof(table), "0 %" PRIu64 " linear %s 0\n",
			 m->nr_sectors, m->origin_dev);
		mdl_swap_table(m, m->origin_name, table, true);
		return;
	}
	/* 1-3 zones that fail writes, with edges anywhere */
	nz = 1 + mdl_below(&m->rng, 3);
	for (i = 0; i < 2 * nz; i++)
		pts[i] = 1 + mdl_below(&m->rng, m->nr_sectors - 1);
	for (i = 1; i < 2 * nz; i++)
		for (j = i; j > 0 && pts[j - 1] > pts[j]; j--) {
			uint64_t t = pts[j];

			pts[j] = pts[j - 1];
			pts[j - 1] = t;
		}
	for (i = 0; i < 2 * nz; i += 2) {
		/* zones of at most 4 chunks or 1 MiB */
		uint64_t max = m->chunk * 4 > BULK_SECTORS ? m->chunk * 4 :
			       BULK_SECTORS;

		if (pts[i + 1] - pts[i] > max)
			pts[i + 1] = pts[i] + max;
		if (pts[i] <= s || pts[i + 1] <= pts[i])
			continue;
		off += snprintf(table + off, sizeof(table) - off,
				"%" PRIu64 " %" PRIu64 " linear %s %" PRIu64 "\n",
				s, pts[i] - s, m->origin_dev, s);
		off += snprintf(table + off, sizeof(table) - off,
				"%" PRIu64 " %" PRIu64
				" flakey %s %" PRIu64 " 0 1 1 error_writes\n",
				pts[i], pts[i + 1] - pts[i], m->origin_dev,
				pts[i]);
		s = pts[i + 1];
	}
	snprintf(table + off, sizeof(table) - off,
		 "%" PRIu64 " %" PRIu64 " linear %s %" PRIu64 "\n", s,
		 m->nr_sectors - s, m->origin_dev, s);
	mdl_swap_table(m, m->origin_name, table, true);
}

/*
 * A write that fails after part of it reached the origin: the origin fails
 * writes from a point inside a chunk of the orchestrator's on, and a write
 * across that point fails. Nobody writes there again, so the bitmap check
 * at the end finds the part that landed.
 */
static void mdl_op_torn_write(struct mdl *m)
{
	struct mdl_late l = { .w = { .m = m, .id = m->nr_writers } };
	uint64_t c = mdl_own_stripe(m) * 4 + 2, edge, before;
	char table[1024];

	l.w.rng = mix64(m->seed ^ m->nr_logged) | 1;
	edge = c * m->chunk + round_down(m->chunk / 2, m->align);
	before = round_up_to(1 + mdl_below(&m->rng, 128), m->align);
	if (before > edge - c * m->chunk)
		before = edge - c * m->chunk;
	l.s = edge - before;
	l.n = before + round_up_to(1 + mdl_below(&m->rng, 128), m->align);
	l.buf = xalloc(l.n << SECTOR_SHIFT);
	if (dev_open(&l.d, m->cbw_path, O_RDWR)) {
		mdl_fail(m, "cannot open %s", m->cbw_path);
		free(l.buf);
		return;
	}
	mdl_log(m, "torn write of sectors %" PRIu64 "+%" PRIu64
		": the origin fails writes from sector %" PRIu64, l.s, l.n, edge);
	snprintf(table, sizeof(table),
		 "0 %" PRIu64 " linear %s 0\n%" PRIu64 " %" PRIu64
		 " flakey %s %" PRIu64 " 0 1 1 error_writes\n%" PRIu64 " %" PRIu64
		 " linear %s %" PRIu64 "\n", edge, m->origin_dev, edge,
		 m->chunk, m->origin_dev, edge, edge + m->chunk,
		 m->nr_sectors - edge - m->chunk, m->origin_dev,
		 edge + m->chunk);
	/* a copy that fails first would keep the write from the origin */
	if (m->cur_cow < 2)
		mdl_set_cow(m, m->cur_cow, 0);
	mdl_swap_table(m, m->origin_name, table, true);
	mdl_writer_io(&l.w, &l.d, l.buf, MDL_WRITE, l.s, l.n);
	snprintf(table, sizeof(table), "0 %" PRIu64 " linear %s 0\n",
		 m->nr_sectors, m->origin_dev);
	mdl_swap_table(m, m->origin_name, table, true);
	dev_close(&l.d);
	free(l.buf);
}

static void mdl_orchestrate(struct mdl *m)
{
	static const unsigned int weight[MDL_NR_OPS] = {
		14, 4, 10, 20, 18, 8, 4, 3, 3
	};
	unsigned int op, total = 0, r, i;

	for (i = 0; i < MDL_NR_OPS; i++)
		total += weight[i];
	while (!atomic_load(&m->stop) && !mdl_time_up(m)) {
		r = mdl_below(&m->rng, total);
		for (op = 0; r >= weight[op]; op++)
			r -= weight[op];
		if (!m->cur && mdl_below(&m->rng, 2))
			op = MDL_OP_SNAPSHOT;
		if ((op == MDL_OP_ORIGIN_FAULT || op == MDL_OP_TORN_WRITE) &&
		    m->no_origin_faults)
			continue;
		/* one late copy early in every run */
		if (!m->op_counts[MDL_OP_LATE_COPY] &&
		    mdl_ms(m) > m->seconds * 1000 / 4)
			op = MDL_OP_LATE_COPY;
		/* and one torn write */
		if (!m->op_counts[MDL_OP_TORN_WRITE] && !m->no_origin_faults &&
		    mdl_ms(m) > m->seconds * 1000 / 2)
			op = MDL_OP_TORN_WRITE;
		m->op_counts[op]++;
		switch (op) {
		case MDL_OP_SNAPSHOT:
			/*
			 * Mostly the other COW device when this one holds
			 * copies back: a late copy of the old snapshot would
			 * land in the new one's data.
			 */
			if (m->cur_cow < 2 && m->cow_slow[m->cur_cow] &&
			    mdl_below(&m->rng, 4))
				mdl_reload(m, !m->cur_cow);
			else
				mdl_reload(m, mdl_below(&m->rng, 2));
			break;
		case MDL_OP_END:
			if (m->cur)
				mdl_reload(m, 2);
			break;
		case MDL_OP_SUSPEND:
			mdl_op_suspend(m);
			break;
		case MDL_OP_DISCARD:
			mdl_op_discard(m);
			break;
		case MDL_OP_COW_FAULT:
			mdl_op_cow_fault(m);
			break;
		case MDL_OP_ORIGIN_FAULT:
			mdl_op_origin_fault(m);
			break;
		case MDL_OP_LATE_COPY:
			mdl_op_late_copy(m);
			break;
		case MDL_OP_TORN_WRITE:
			mdl_op_torn_write(m);
			break;
		case MDL_OP_RETIRE: {
			struct mdl_epoch *old = mdl_oldest_stale(m);

			if (old)
				mdl_retire(m, old);
			break;
		}
		}
		mdl_poll(m);
		for (i = mdl_below(&m->rng, 6); i && !mdl_time_up(m); i--) {
			mdl_sleep_ms(50);
			mdl_poll(m);
		}
	}
}

/* ---- the checks at the end ---- */

/* The guest device holds what the model says; records what it holds. */
static void mdl_final_guest(struct mdl *m, uint32_t *final)
{
	void *buf = xalloc(BULK_SECTORS << SECTOR_SHIFT);
	uint64_t s, n, i;
	char why[256];
	struct dev d;
	int64_t bad;
	int err;

	if (dev_open(&d, m->cbw_path, O_RDONLY)) {
		mdl_fail(m, "cannot open %s", m->cbw_path);
		free(buf);
		return;
	}
	for (s = 0; s < m->nr_sectors; s += n) {
		n = m->nr_sectors - s < BULK_SECTORS ? m->nr_sectors - s :
		    BULK_SECTORS;
		err = dev_io(d.fd, false, buf, s, n);
		if (err) {
			mdl_fail(m, "final read of guest sectors %" PRIu64 "+%"
				 PRIu64 ": %s", s, n, strerror(-err));
			break;
		}
		for (i = 0; i < n; i++)
			final[s + i] = found_gen((uint64_t *)buf +
						 i * WORDS_PER_SECTOR, s + i);
		bad = mdl_match(m->state, buf, s, n, why, sizeof(why));
		if (bad >= 0) {
			mdl_fail(m, "final guest sector %" PRId64 ": %s", bad, why);
			break;
		}
	}
	dev_close(&d);
	free(buf);
}

/* Every chunk of the live snapshot reads its image, or fails if dropped. */
static void mdl_final_access(struct mdl *m)
{
	void *buf = xalloc(BULK_SECTORS << SECTOR_SHIFT);
	struct mdl_epoch *ep = m->cur;
	uint64_t c, s, n, checked = 0, dropped = 0;
	char why[256];
	struct dev d;
	int64_t bad;
	int err;

	mdl_poll(m);
	if (!ep || ep->broken || atomic_load(&m->stop)) {
		free(buf);
		return;
	}
	if (dev_open(&d, ep->path, O_RDONLY)) {
		mdl_fail(m, "cannot open %s", ep->path);
		free(buf);
		return;
	}
	for (c = 0; c < m->nr_chunks && !atomic_load(&m->stop); c++) {
		s = c * m->chunk;
		n = m->nr_sectors - s < m->chunk ? m->nr_sectors - s : m->chunk;
		if (ep->chunks[c] == MDL_CHUNK_DROPPING)
			continue;
		if (ep->chunks[c] == MDL_CHUNK_DROPPED) {
			dropped++;
			if (!dev_io(d.fd, false, buf, s, m->align))
				mdl_fail(m, "final read of %s chunk %" PRIu64
					 " returned data although it was discarded",
					 ep->name, c);
			continue;
		}
		for (; n; s += BULK_SECTORS, n -= n < BULK_SECTORS ? n : BULK_SECTORS) {
			uint64_t len = n < BULK_SECTORS ? n : BULK_SECTORS;

			err = dev_io(d.fd, false, buf, s, len);
			if (err) {
				mdl_fail(m, "final read of %s sectors %" PRIu64 "+%"
					 PRIu64 ": %s (snapshot active, not discarded)",
					 ep->name, s, len, errname(-err));
				goto out;
			}
			pthread_mutex_lock(&m->lock);
			bad = mdl_match(ep->image, buf, s, len, why, sizeof(why));
			pthread_mutex_unlock(&m->lock);
			if (bad >= 0) {
				mdl_fail(m, "final read of snapshot %u (%s) sector %"
					 PRId64 ": %s", ep->id, ep->name, bad, why);
				goto out;
			}
		}
		checked++;
	}
	printf("model: snapshot %u: %" PRIu64 " chunks read their image, %" PRIu64
	       " discarded chunks fail\n", ep->id, checked, dropped);
out:
	dev_close(&d);
	free(buf);
}

/*
 * A bitmap added before the run has every sector dirty that a write
 * changed: those written successfully, and those that hold something else
 * than the pre-image at the end (a failed write reached the media).
 */
static void mdl_final_bitmap(struct mdl *m, const uint32_t *final,
			     uint32_t pre_gen)
{
	struct dm_cbw_extent *ext = calloc(DM_CBW_MAX_EXTENTS, sizeof(*ext));
	uint8_t *dirty = calloc(m->nr_sectors, 1);
	struct dm_cbw_bitmap_read rd;
	uint64_t off = 0, i, s, missed = 0, missed_failed = 0, need = 0;
	unsigned int shown = 0;
	int fd;

	fd = open("/dev/dm-cbw-control", O_RDWR | O_CLOEXEC);
	if (!ext || !dirty || fd < 0) {
		mdl_fail(m, "bitmap check: %s", strerror(errno));
		goto out;
	}
	while (off < m->nr_sectors << SECTOR_SHIFT) {
		memset(&rd, 0, sizeof(rd));
		rd.size = sizeof(rd);
		rd.dev_major = m->cbw_major;
		rd.dev_minor = m->cbw_minor;
		rd.offset = off;
		rd.length = (m->nr_sectors << SECTOR_SHIFT) - off;
		rd.extents = (uintptr_t)ext;
		rd.nr_extents = DM_CBW_MAX_EXTENTS;
		snprintf(rd.name, sizeof(rd.name), "%s", m->bitmap);
		if (ioctl(fd, DM_CBW_IOC_BITMAP_READ, &rd)) {
			mdl_fail(m, "DM_CBW_IOC_BITMAP_READ %s: %s", m->bitmap,
				 strerror(errno));
			goto out;
		}
		for (i = 0; i < rd.nr_extents; i++)
			for (s = ext[i].offset >> SECTOR_SHIFT;
			     s < (ext[i].offset + ext[i].length) >> SECTOR_SHIFT &&
			     s < m->nr_sectors; s++)
				dirty[s] = 1;
		if (rd.next_offset <= off)
			break;
		off = rd.next_offset;
	}
	for (s = 0; s < m->nr_sectors; s++) {
		bool changed = final[s] != pre_gen;

		if (!m->written[s] && !changed)
			continue;
		need++;
		if (dirty[s])
			continue;
		missed++;
		if (!m->written[s])
			missed_failed++;
		if (shown++ < 8)
			msg("bitmap %s: sector %" PRIu64 " is clean, but %s", m->bitmap,
			    s, m->written[s] ? "a write to it succeeded" :
			    "it holds data of a failed write");
	}
	printf("model: bitmap %s: %" PRIu64 " sectors must be dirty, %" PRIu64
	       " are not (%" PRIu64 " of them changed only by failed writes)\n",
	       m->bitmap, need, missed, missed_failed);
	if (missed)
		mdl_fail(m, "bitmap %s misses %" PRIu64 " written sectors (%" PRIu64
			 " changed only by failed writes)", m->bitmap, missed,
			 missed_failed);
out:
	if (fd >= 0)
		close(fd);
	free(ext);
	free(dirty);
}

static void mdl_print_tail(struct mdl *m)
{
	unsigned int i, first;

	first = m->nr_logged > MDL_LOG_TAIL ? m->nr_logged - MDL_LOG_TAIL : 0;
	msg("last %u of %u operations (seed %" PRIu64 "):",
	    m->nr_logged - first, m->nr_logged, m->seed);
	for (i = first; i < m->nr_logged; i++)
		fprintf(stderr, "  %s\n", m->tail[i % MDL_LOG_TAIL]);
}

static int cmd_model(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cbw", required_argument, NULL, 'b' },
		{ "origin", required_argument, NULL, 'o' },
		{ "origin-dev", required_argument, NULL, 'O' },
		{ "cow", required_argument, NULL, 'c' },
		{ "cow-dev", required_argument, NULL, 'C' },
		{ "access-prefix", required_argument, NULL, 'a' },
		{ "chunk-sectors", required_argument, NULL, 'k' },
		{ "seconds", required_argument, NULL, 't' },
		{ "writers", required_argument, NULL, 'w' },
		{ "readers", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 'S' },
		{ "bitmap", required_argument, NULL, 'B' },
		{ "work", required_argument, NULL, 'W' },
		{ "log", required_argument, NULL, 'l' },
		{ "pre-gen", required_argument, NULL, 'p' },
		{ "slack-ms", required_argument, NULL, 's' },
		{ "no-origin-faults", no_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 }
	};
	struct mdl_worker *workers;
	unsigned int nr_cows = 0, i;
	pthread_t heartbeat;
	uint32_t pre_gen = 0, *final;
	bool have_seed = false;
	struct stat st;
	struct mdl *m;
	struct dev d;
	uint64_t s;
	int c, err;

	m = calloc(1, sizeof(*m));
	if (!m)
		return EXIT_FAIL;
	m->nr_writers = 4;
	m->nr_readers = 2;
	m->slack_ms = 4000;
	m->cur_cow = 2;
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->log_lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			m->cbw_name = optarg;
			break;
		case 'o':
			m->origin_name = optarg;
			break;
		case 'O':
			m->origin_dev = optarg;
			break;
		case 'c':
			if (nr_cows == 2)
				print_usage();
			m->cow_names[nr_cows++] = optarg;
			break;
		case 'C':
			m->cow_dev = optarg;
			break;
		case 'a':
			m->acc_prefix = optarg;
			break;
		case 'k':
			m->chunk = arg_u64("chunk sectors", optarg, 1U << 22);
			break;
		case 't':
			m->seconds = arg_u64("seconds", optarg, 86400);
			break;
		case 'w':
			m->nr_writers = arg_u64("writers", optarg, 64);
			break;
		case 'r':
			m->nr_readers = arg_u64("readers", optarg, 64);
			break;
		case 'S':
			m->seed = arg_u64("seed", optarg, UINT64_MAX);
			have_seed = true;
			break;
		case 'B':
			m->bitmap = optarg;
			break;
		case 'W':
			m->work = optarg;
			break;
		case 'l':
			m->log_path = optarg;
			break;
		case 'p':
			pre_gen = arg_u64("pre-image generation", optarg, MAX_GEN - 1);
			break;
		case 's':
			m->slack_ms = arg_u64("slack", optarg, 3600000);
			break;
		case 'N':
			m->no_origin_faults = true;
			break;
		default:
			print_usage();
		}
	}
	if (optind != argc || !m->cbw_name || !m->origin_name ||
	    !m->origin_dev || nr_cows != 2 || !m->cow_dev || !m->acc_prefix ||
	    !m->chunk || !m->seconds || !m->nr_writers || !m->work) {
		msg("model: --cbw, --origin, --origin-dev, two --cow, --cow-dev, --access-prefix,"
		    " --chunk-sectors, --seconds and --work are needed");
		print_usage();
	}
	if (m->chunk & (m->chunk - 1)) {
		msg("model: chunk size must be a power of two");
		print_usage();
	}
	if (!have_seed)
		m->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	m->rng = mix64(m->seed) | 1;
	snprintf(m->cbw_path, sizeof(m->cbw_path), "/dev/mapper/%s", m->cbw_name);
	snprintf(m->origin_path, sizeof(m->origin_path), "/dev/mapper/%s",
		 m->origin_name);
	for (i = 0; i < 2; i++)
		snprintf(m->cow_paths[i], sizeof(m->cow_paths[i]),
			 "/dev/mapper/%s", m->cow_names[i]);
	if (dev_open(&d, m->cbw_path, O_RDONLY))
		return EXIT_FAIL;
	m->nr_sectors = d.nr_sectors;
	m->align = d.align;
	if (fstat(d.fd, &st)) {
		msg("cannot stat %s", m->cbw_path);
		return EXIT_FAIL;
	}
	m->cbw_major = major(st.st_rdev);
	m->cbw_minor = minor(st.st_rdev);
	dev_close(&d);
	if (m->chunk % m->align || m->nr_sectors < 8 * m->chunk) {
		msg("model: the device needs at least 8 chunks of whole blocks");
		return EXIT_USAGE;
	}
	m->nr_chunks = (m->nr_sectors + m->chunk - 1) / m->chunk;
	m->max_io = m->chunk * 7 / 2;
	if (m->max_io < 256)
		m->max_io = 256;
	if (m->max_io > MAX_IO_SECTORS)
		m->max_io = MAX_IO_SECTORS;
	m->max_io = round_down(m->max_io, m->align);
	/* stripes of 4 chunks, at least two for each writer and for us */
	m->stripe = 4 * m->chunk;
	m->nr_stripes = m->nr_sectors / m->stripe;
	m->nr_owners = m->nr_writers + 1;
	if (m->nr_stripes < 2 * m->nr_owners) {
		msg("model: the device is too small for %" PRIu64
		    " writers: it needs %" PRIu64 " sectors", m->nr_writers,
		    2 * m->nr_owners * m->stripe);
		return EXIT_USAGE;
	}

	m->state = malloc(m->nr_sectors * sizeof(*m->state));
	m->written = calloc(m->nr_sectors, 1);
	m->inflight = calloc(m->nr_owners, sizeof(*m->inflight));
	final = calloc(m->nr_sectors, sizeof(*final));
	workers = calloc(m->nr_writers + m->nr_readers, sizeof(*workers));
	if (!m->state || !m->written || !m->inflight || !final || !workers) {
		msg("out of memory");
		return EXIT_FAIL;
	}
	for (s = 0; s < m->nr_sectors; s++)
		cand_set(&m->state[s], pre_gen);
	atomic_store(&m->next_gen, pre_gen + 1);
	if (m->log_path) {
		m->log = fopen(m->log_path, "w");
		if (!m->log) {
			msg("cannot create %s: %s", m->log_path, strerror(errno));
			return EXIT_FAIL;
		}
	}
	printf("model: %s (%" PRIu64 " sectors, chunk %" PRIu64
	       " sectors), COW %s and %s over %s, origin %s over %s, %" PRIu64
	       " writers, %" PRIu64 " readers, %" PRIu64 " s, seed %" PRIu64 "\n",
	       m->cbw_name, m->nr_sectors, m->chunk, m->cow_names[0],
	       m->cow_names[1], m->cow_dev, m->origin_name, m->origin_dev,
	       m->nr_writers, m->nr_readers, m->seconds, m->seed);
	fflush(stdout);

	clock_gettime(CLOCK_MONOTONIC, &m->t0);
	m->deadline = m->t0;
	m->deadline.tv_sec += m->seconds;
	mdl_log(m, "seed %" PRIu64, m->seed);
	for (i = 0; i < m->nr_writers + m->nr_readers; i++) {
		struct mdl_worker *w = &workers[i];

		w->m = m;
		w->id = i < m->nr_writers ? i : i - m->nr_writers;
		w->rng = mix64(m->seed + 0x1000 * (i + 1)) | 1;
		err = pthread_create(&w->thread, NULL, i < m->nr_writers ?
				     mdl_writer_fn : mdl_reader_fn, w);
		if (err) {
			msg("pthread_create: %s", strerror(err));
			exit(EXIT_FAIL);
		}
	}

	err = pthread_create(&heartbeat, NULL, mdl_heartbeat_fn, m);
	if (err) {
		msg("pthread_create: %s", strerror(err));
		exit(EXIT_FAIL);
	}
	mdl_orchestrate(m);
	pthread_join(heartbeat, NULL);

	mdl_resume_writers(m);
	for (i = 0; i < m->nr_writers + m->nr_readers; i++)
		pthread_join(workers[i].thread, NULL);
	mdl_log(m, "the writers and readers stopped");

	/* healthy devices below for the final reads */
	for (i = 0; i < 2; i++) {
		char table[256];

		snprintf(table, sizeof(table), "0 %" PRIu64 " linear %s 0\n",
			 m->nr_sectors, m->cow_dev);
		mdl_swap_table(m, m->cow_names[i], table, false);
	}
	if (!m->no_origin_faults) {
		char table[256];

		snprintf(table, sizeof(table), "0 %" PRIu64 " linear %s 0\n",
			 m->nr_sectors, m->origin_dev);
		mdl_swap_table(m, m->origin_name, table, true);
	}
	if (!atomic_load(&m->failures)) {
		mdl_final_guest(m, final);
		mdl_final_access(m);
	}
	if (!atomic_load(&m->failures) && m->bitmap)
		mdl_final_bitmap(m, final, pre_gen);

	/* end the snapshot, remove the cbw-access devices */
	if (m->cur_cow < 2) {
		atomic_store(&m->stop, false);
		mdl_reload(m, 2);
	}
	for (i = 0; i < MDL_MAX_EPOCHS; i++)
		if (m->epochs[i])
			mdl_retire(m, m->epochs[i]);

	printf("model: operations:");
	for (i = 0; i < MDL_NR_OPS; i++)
		printf(" %s %u", mdl_op_names[i], m->op_counts[i]);
	printf("\nmodel: snapshots %u, guest writes %" PRIuFAST64 " ok, %" PRIuFAST64
	       " failed (%" PRIuFAST64 " ETIMEDOUT), read-backs %" PRIuFAST64
	       ", snapshot reads %" PRIuFAST64 " ok, %" PRIuFAST64
	       " failed, longest write under a timeout %" PRIuFAST64 " ms\n",
	       m->next_epoch, atomic_load(&m->writes_ok),
	       atomic_load(&m->writes_failed), atomic_load(&m->writes_timed_out),
	       atomic_load(&m->readbacks), atomic_load(&m->reads_ok),
	       atomic_load(&m->reads_failed), atomic_load(&m->max_latency_ms));
	printf("model: the machine stood still %u times\n", atomic_load(&m->stalls));
	if (atomic_load(&m->failures)) {
		mdl_print_tail(m);
		msg("model: FAILED (%u failures, seed %" PRIu64 ")",
		    atomic_load(&m->failures), m->seed);
		return EXIT_FAIL;
	}
	if (!atomic_load(&m->writes_ok) || !atomic_load(&m->reads_ok)) {
		msg("model: FAILED: no write or no snapshot read succeeded (seed %"
		    PRIu64 ")", m->seed);
		return EXIT_FAIL;
	}
	printf("model: ok\n");
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2)
		print_usage();
	cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help"))
		print_usage();
	/* let getopt see "cbw-stress run ..." as "run ..." */
	argc--;
	argv++;
	if (!strcmp(cmd, "stamp"))
		return cmd_stamp(argc - 1, argv + 1);
	if (!strcmp(cmd, "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (!strcmp(cmd, "run"))
		return cmd_run(argc, argv);
	if (!strcmp(cmd, "check-post"))
		return cmd_check_post(argc, argv);
	if (!strcmp(cmd, "check-cow"))
		return cmd_check_cow(argc, argv);
	if (!strcmp(cmd, "probe"))
		return cmd_probe(argc, argv);
	if (!strcmp(cmd, "model"))
		return cmd_model(argc, argv);
	msg("unknown command '%s'", cmd);
	print_usage();
	return EXIT_USAGE;
}
