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
 *   stamp DEV GEN [START [COUNT]]
 *   verify DEV GEN [START [COUNT]]
 *   run --guest DEV [--access DEV] --seconds N --writers W --readers R
 *       --chunk-sectors C --shadow FILE --touched FILE [--seed S]
 *       [--pre-gen G] [--no-discard] [--no-zeroout] [--no-cold]
 *   check-post --guest DEV --shadow FILE
 *   check-cow --cow DEV --touched FILE [--chunk-sectors C]
 *   probe [--write] [--buffered] [--gen G] DEV SECTOR COUNT
 *
 * Exit status: 0 success, 1 failure, 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
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
		"Usage: %s stamp DEV GEN [START [COUNT]]\n"
		"       %s verify DEV GEN [START [COUNT]]\n"
		"       %s run --guest DEV [--access DEV] --seconds N --writers W\n"
		"              --readers R --chunk-sectors C --shadow FILE --touched FILE\n"
		"              [--seed S] [--pre-gen G] [--no-discard] [--no-zeroout]\n"
		"              [--no-cold]\n"
		"       %s check-post --guest DEV --shadow FILE\n"
		"       %s check-cow --cow DEV --touched FILE [--chunk-sectors C]\n"
		"       %s probe [--write] [--buffered] [--gen G] DEV SECTOR COUNT\n"
		"\n"
		"START, COUNT and SECTOR are in 512-byte sectors. Exit status:\n"
		"0 success, 1 failure, 2 bad command line.\n",
		prog, prog, prog, prog, prog, prog);
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

static int cmd_stamp(int argc, char **argv)
{
	uint64_t start, count, done = 0;
	struct dev d;
	uint32_t gen;
	void *buf;

	if (argc < 2 || argc > 4)
		print_usage();
	gen = arg_u64("generation", argv[1], MAX_GEN);
	if (dev_open(&d, argv[0], O_RDWR))
		return EXIT_FAIL;
	parse_range_args(argc - 2, argv + 2, &d, &start, &count);
	buf = xalloc(BULK_SECTORS << SECTOR_SHIFT);
	while (done < count) {
		uint64_t n = count - done, i;
		int err;

		if (n > BULK_SECTORS)
			n = BULK_SECTORS;
		for (i = 0; i < n; i++)
			stamp_sector((uint64_t *)buf + i * WORDS_PER_SECTOR,
				     start + done + i, gen);
		err = dev_io(d.fd, true, buf, start + done, n);
		if (err) {
			msg("%s: write error at sectors %" PRIu64 "+%" PRIu64 ": %s",
			    d.path, start + done, n, strerror(-err));
			return EXIT_FAIL;
		}
		done += n;
	}
	if (fsync(d.fd)) {
		msg("%s: fsync: %s", d.path, strerror(errno));
		return EXIT_FAIL;
	}
	printf("stamped %s sectors %" PRIu64 "+%" PRIu64 " with generation %"
	       PRIu32 "\n", d.path, start, count, gen);
	free(buf);
	dev_close(&d);
	return EXIT_OK;
}

static int cmd_verify(int argc, char **argv)
{
	struct report r = { 0 };
	uint64_t start, count;
	struct dev d;
	uint32_t gen;
	void *buf;
	int err;

	if (argc < 2 || argc > 4)
		print_usage();
	gen = arg_u64("generation", argv[1], MAX_GEN);
	if (dev_open(&d, argv[0], O_RDONLY))
		return EXIT_FAIL;
	parse_range_args(argc - 2, argv + 2, &d, &start, &count);
	buf = xalloc(BULK_SECTORS << SECTOR_SHIFT);
	r.path = d.path;
	err = verify_range(&d, start, count, const_gen, &gen, &r, buf);
	report_close_run(&r);
	free(buf);
	dev_close(&d);
	if (err)
		return EXIT_FAIL;
	if (r.bad) {
		msg("%s: %" PRIu64 " of %" PRIu64 " sectors in %" PRIu64
		    " ranges do not carry generation %" PRIu32, d.path, r.bad,
		    count, r.runs, gen);
		return EXIT_FAIL;
	}
	printf("verified %s sectors %" PRIu64 "+%" PRIu64 ": generation %"
	       PRIu32 "\n", d.path, start, count, gen);
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
		uint64_t s, i;
		int err;

		if (n > max)
			n = max;
		s = round_down(rnd_below(w, ctx->nr_sectors - n + 1), a);
		err = dev_io(d.fd, false, buf, s, n);
		if (err) {
			run_fail(ctx, "reader %u: read of access sectors %" PRIu64
				 "+%" PRIu64 " failed: %s", w->id, s, n,
				 strerror(-err));
			break;
		}
		for (i = 0; i < n; i++) {
			const uint64_t *p = (const uint64_t *)buf +
					    i * WORDS_PER_SECTOR;
			char f[128];

			if (sector_matches(p, s + i, ctx->pre_gen))
				continue;
			describe_found(f, sizeof(f), p);
			run_fail(ctx, "reader %u: access sector %" PRIu64
				 " (read %" PRIu64 "+%" PRIu64
				 "): expected pre-image stamp gen %" PRIu32
				 ", found %s", w->id, s + i, s, n, ctx->pre_gen,
				 f);
			break;
		}
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
	       " sectors), touched chunks %" PRIu64 " of %" PRIu64 "\n",
	       atomic_load(&ctx->writes), atomic_load(&ctx->sectors_written),
	       atomic_load(&ctx->discards), atomic_load(&ctx->zeroouts),
	       atomic_load(&ctx->checks), atomic_load(&ctx->reads),
	       atomic_load(&ctx->sectors_read), touched, ctx->nr_chunks);
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

static int cmd_probe(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "write", no_argument, NULL, 'w' },
		{ "buffered", no_argument, NULL, 'b' },
		{ "gen", required_argument, NULL, 'g' },
		{ NULL, 0, NULL, 0 }
	};
	bool write = false, buffered = false;
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
		default:
			print_usage();
		}
	}
	if (argc - optind != 3)
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
	printf("%s\n", err ? errname(-err) : "OK");
	free(buf);
	close(fd);
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
	msg("unknown command '%s'", cmd);
	print_usage();
	return EXIT_USAGE;
}
