/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * cbwctl - control dm-cbw devices: dirty bitmaps and snapshots.
 *
 * Shared declarations of the tool's parts:
 *   main.c          command line: global options, subcommands, help
 *   cmd_bitmap.c    "cbwctl bitmap ..."
 *   cmd_snapshot.c  "cbwctl snapshot ..." and "cbwctl version"
 *   cmd_backup.c    "cbwctl backup ...": begin, run, finish, cancel, status
 *   backup_copy.c   the copy of "backup run"
 *   job.c           the state file of a backup job
 *   cmd_restore.c   "cbwctl restore"
 *   cmd_tab.c       "cbwctl tab ...": cbwtab devices and their systemd units
 *   cmd_attach.c    "cbwctl attach" and "cbwctl detach": live dm volumes
 *   cow.c           COW devices made for one snapshot: --cow-file, --cow-thin
 *   cmd_lvextend.c  "cbwctl lvextend": extend an attached LV, keep bitmaps
 *   multi.c         one snapshot point across several devices
 *   tab.c           the cbwtab file
 *   imgfile.c       the extents file format of backups, CRC-32
 *   ctl.c           ioctls of /dev/dm-cbw-control
 *   dm.c            device-mapper operations through libdevmapper
 *   extents.c       extent listings: bitmap dump, snapshot access-map
 *   output.c        messages, sizes, tables and JSON
 */
#ifndef CBWCTL_H
#define CBWCTL_H

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <linux/dm-cbw.h>

#define CBWCTL_VERSION		"1.2.0"

#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#define __printf(a, b)		__attribute__((format(printf, a, b)))

/* Exit statuses. */
#define CBW_EXIT_OK		0
#define CBW_EXIT_FAIL		1	/* the operation failed */
#define CBW_EXIT_USAGE		2	/* the command line is wrong */
/* Returned by option parsing when --help was shown: exit with 0. */
#define CBW_HELP_SHOWN		(-1)

#define CBW_CONTROL_PATH	"/dev/" DM_CBW_CONTROL_NAME

/* Coarser bitmaps are useless; QEMU's granularity is a uint32 too. */
#define CBW_MAX_GRANULARITY	(1ULL << 31)

/* Extents asked for per read ioctl unless --batch says otherwise. */
#define CBW_DEFAULT_BATCH	1024

/* Options that every subcommand accepts. */
struct cbw_global_opts {
	bool json;		/* machine-readable output */
	bool bytes;		/* sizes as plain byte counts */
};

extern struct cbw_global_opts cbw_opts;

/* A subcommand: "cbwctl GROUP NAME ARGS..." (GROUP may be NULL). */
struct cbw_cmd {
	const char *group;
	const char *name;
	/* Positional parameters, e.g. { "DEV", "NAME" }; "X..." repeats. */
	const char *params[4];
	unsigned int min_args;
	unsigned int max_args;
	const char *synopsis;	/* options part of the usage line */
	const char *summary;	/* one line */
	const char *help;	/* options and details */
	int (*run)(const struct cbw_cmd *cmd, int argc, char **argv);
	unsigned long req;	/* the ioctl, for commands that share run() */
};

/*
 * Parsing of a subcommand's options.  @handle is called for each option of
 * @own (with the option's val and argument) and returns 0 or
 * CBW_EXIT_USAGE.  On success, argv[*first_arg..argc) are the positional
 * arguments, already checked against min_args/max_args.
 */
typedef int (*cbw_opt_handler)(const struct cbw_cmd *cmd, int opt,
			       const char *arg, void *ctx);

int cbw_parse_cmd(const struct cbw_cmd *cmd, int argc, char **argv,
		  const struct option *own, cbw_opt_handler handle, void *ctx,
		  int *first_arg);

/* main.c */
#define CBW_TITLE_LEN	64
const char *cbw_cmd_title(const struct cbw_cmd *cmd, char buf[CBW_TITLE_LEN]);
void cbw_print_cmd_help(const struct cbw_cmd *cmd);
int cbw_usage_error(const struct cbw_cmd *cmd, const char *fmt, ...)
	__printf(2, 3);

/* cmd_bitmap.c, cmd_snapshot.c, cmd_backup.c, cmd_restore.c */
extern const struct cbw_cmd cbw_bitmap_cmds[];
extern const struct cbw_cmd cbw_snapshot_cmds[];
extern const struct cbw_cmd cbw_other_cmds[];
extern const struct cbw_cmd cbw_backup_cmds[];
extern const struct cbw_cmd cbw_backup_cmd;
extern const struct cbw_cmd cbw_restore_cmd;
extern const struct cbw_cmd cbw_tab_cmds[];
/* cmd_metadata.c */
extern const struct cbw_cmd cbw_metadata_cmds[];

/* cmd_attach.c */
extern const struct cbw_cmd cbw_attach_cmds[];

/* output.c: the length of the valid UTF-8 sequence at @s, or 0 */
size_t cbw_utf8_len(const unsigned char *s);

/* output.c: messages */
int cbw_error(const char *fmt, ...) __printf(1, 2);
void cbw_warn(const char *fmt, ...) __printf(1, 2);
void cbw_record_error(const char *fmt, va_list ap);
int cbw_errno_error(int err);
void cbw_json_error(int status);

/* output.c: sizes */
#define CBW_SIZE_BUF		32
int cbw_parse_size(const char *s, uint64_t *bytes);
const char *cbw_format_size(uint64_t bytes, char buf[CBW_SIZE_BUF]);
bool cbw_is_power_of_2(uint64_t v);

/* output.c: aligned tables */
#define CBW_TABLE_MAX_COLS	16
struct cbw_table;
struct cbw_table *cbw_table_new(unsigned int nr_cols, const char *const *head);
void cbw_table_add(struct cbw_table *t, const char *const *cells);
void cbw_table_print(struct cbw_table *t);
void cbw_table_free(struct cbw_table *t);
void cbw_print_field(const char *label, const char *fmt, ...)
	__printf(2, 3);

/* output.c: JSON on standard output */
void cbw_json_object_begin(const char *key);
void cbw_json_object_end(void);
void cbw_json_array_begin(const char *key);
void cbw_json_array_end(void);
void cbw_json_string(const char *key, const char *value);
void cbw_json_u64(const char *key, uint64_t value);
void cbw_json_i64(const char *key, int64_t value);
void cbw_json_bool(const char *key, bool value);
void cbw_json_null(const char *key);
void cbw_json_set_compact(bool compact);
void cbw_json_result_printed(void);

/* output.c: progress on a terminal */
void cbw_progress(const char *what, uint64_t done, uint64_t total);
void cbw_progress_end(void);

/* dm.c */
#define CBW_DM_NAME_LEN		128

/* A device-mapper device, resolved from what the user typed. */
struct cbw_dev {
	const char *spec;		/* as given on the command line */
	char name[CBW_DM_NAME_LEN];
	uint32_t major;
	uint32_t minor;
	bool suspended;
	bool inactive_table;
	bool read_only;
	int32_t open_count;
};

/* The single target line of a table. */
struct cbw_target {
	uint64_t start;
	uint64_t length;		/* sectors */
	char type[64];
	char *params;
	unsigned int nr_targets;	/* of the whole table */
};

void cbw_dm_init(void);
void cbw_dm_exit(void);
int cbw_dm_resolve(const char *spec, struct cbw_dev *dev);
int cbw_dm_resolve_lv(const char *spec, struct cbw_dev *dev);
void cbw_block_stop_signals(sigset_t *old);
int cbw_dm_lookup(const char *spec, struct cbw_dev *dev);
int cbw_dm_table(const char *name, struct cbw_target *t);
void cbw_target_free(struct cbw_target *t);
int cbw_dm_reload(const char *name, const struct cbw_target *t);
int cbw_dm_suspend(const char *name, bool freeze);
int cbw_dm_resume(const char *name);
int cbw_dm_clear(const char *name);
/* Flags of cbw_dm_create(). */
#define CBW_DM_RO	0x1	/* a read-only device */
#define CBW_DM_PRIVATE	0x2	/* kept from udev's disk rules and LVM's */

/* Every device cbwctl creates has a DM UUID that starts with this. */
#define CBW_DM_UUID_PREFIX	"CBW-"
#define CBW_DM_UUID_LEN		129	/* DM_UUID_LEN: 128 and the NUL */

int cbw_dm_create(const char *name, const char *uuid,
		  const struct cbw_target *t, unsigned int flags);

/* A table of any number of lines. */
struct cbw_dm_lines {
	unsigned int nr;
	struct cbw_target *lines;
};

int cbw_dm_create_lines(const char *name, const char *uuid,
			const struct cbw_dm_lines *l, unsigned int flags);
int cbw_dm_reload_lines(const char *name, const struct cbw_dm_lines *l);
int cbw_dm_get_lines(const char *name, bool inactive, struct cbw_dm_lines *l);
void cbw_dm_lines_free(struct cbw_dm_lines *l);
bool cbw_dm_lines_equal(const struct cbw_dm_lines *a,
			const struct cbw_dm_lines *b);
uint64_t cbw_dm_lines_length(const struct cbw_dm_lines *l);
int cbw_dm_uuid(const char *name, char uuid[CBW_DM_UUID_LEN]);
int cbw_dm_lookup_uuid(const char *uuid, struct cbw_dev *dev);
int cbw_dm_remove(const char *name);
int cbw_dm_for_each(int (*fn)(const char *name, void *ctx), void *ctx);
int cbw_dm_deps(uint32_t major, uint32_t minor, bool inactive, uint64_t *devs,
		unsigned int max, unsigned int *nr);
const char *cbw_dm_last_error(void);
int cbw_devno_of_path(const char *path, uint32_t *major, uint32_t *minor);

/* ctl.c: all return 0 or a negative errno */
int cbw_ctl_open(void);
int cbw_ctl_version(struct dm_cbw_version *v);
int cbw_ctl_bitmap(unsigned long req, const struct cbw_dev *dev,
		   const char *name, uint64_t granularity, uint32_t flags);
int cbw_ctl_merge(const struct cbw_dev *dev, const char *target,
		  char *const *sources, unsigned int nr_sources);
int cbw_ctl_query(const struct cbw_dev *dev, const char *name,
		  struct dm_cbw_bitmap_info *info);
int cbw_ctl_list(const struct cbw_dev *dev, struct dm_cbw_bitmap_info **infos,
		 unsigned int *nr);
int cbw_ctl_read(unsigned long req, const struct cbw_dev *dev,
		 const char *name, struct dm_cbw_bitmap_read *rd,
		 struct dm_cbw_extent *ext, unsigned int max);
int cbw_ctl_snapshot_info(const struct cbw_dev *dev,
			  struct dm_cbw_snapshot_info *info);

int cbw_ctl_thaw(const struct cbw_dev *dev, const char *name, uint32_t flags);
int cbw_ctl_mark(const struct cbw_dev *dev, const char *name, uint64_t offset,
		 uint64_t length);

/* cmd_bitmap.c: shared with the snapshot commands */
int cbw_check_bitmap_name(const char *name);
int cbw_bitmap_error(int err, const struct cbw_dev *dev, const char *name);
int cbw_device_error(int err, const struct cbw_dev *dev);
int cbw_open_device(const char *spec, struct cbw_dev *dev);
int cbw_parse_dev_cmd(const struct cbw_cmd *cmd, int argc, char **argv,
		      struct cbw_dev *dev, int *first_arg);
int cbw_cbw_table(const struct cbw_dev *dev, struct cbw_target *t);

/* cmd_snapshot.c: shared with the backup commands */
#define CBW_DEFAULT_CHUNK	(DM_CBW_DEFAULT_CHUNK_SECTORS * 512ULL)

/* The optional arguments of a cbw table that has a COW device. */
struct cbw_snapshot_args {
	const char *bitmap;		/* snapshot_bitmap, or NULL */
	const char *freeze_bitmap;	/* freeze_bitmap, or NULL */
	const char *on_cbw_error;	/* policy, or NULL for the default */
	unsigned int timeout_ms;	/* cbw_timeout_ms, 0 for none */
};

struct cbw_start_opts {
	const char *cow;
	const char *cow_file;		/* --cow-file PATH, or NULL */
	const char *cow_thin;		/* --cow-thin VG/POOL, or NULL */
	uint64_t chunk;
	struct cbw_snapshot_args snap;
	const char *access;
	bool access_rw;
};

int cbw_start_option(const struct cbw_cmd *cmd, int opt, const char *arg,
		     void *ctx);
int cbw_check_start_opts(const struct cbw_cmd *cmd,
			 const struct cbw_start_opts *o);
int cbw_snapshot_begin(const struct cbw_dev *dev,
		       const struct cbw_start_opts *o);
int cbw_snapshot_end(const struct cbw_dev *dev, struct dm_cbw_snapshot_info *s);

/* cow.c: the COW device made for a snapshot by --cow-file or --cow-thin */
struct cbw_cow_made {
	char cow[32];			/* MAJOR:MINOR, for the table */
	int loop_fd;			/* held until the table holds it */
};

bool cbw_cow_wanted(const struct cbw_start_opts *o);
const char *cbw_cow_spec(const struct cbw_start_opts *o, char *buf,
			 size_t len);
int cbw_cow_make(const struct cbw_dev *dev, uint64_t size, const char *origin,
		 const struct cbw_start_opts *o, struct cbw_cow_made *m);
void cbw_cow_made_end(const struct cbw_dev *dev, struct cbw_cow_made *m,
		      int err);
int cbw_cow_release(const struct cbw_dev *dev);
void cbw_cow_show(const struct cbw_dev *dev);
void cbw_cow_explain_broken(const struct cbw_dev *dev);
int cbw_lvm_run(char *out, size_t len, const char *const *args);

/* cmd_lvextend.c */
extern const struct cbw_cmd cbw_lvextend_cmd;
/* cmd_snapshot.c: the steps of a start, for multi.c */
#define CBW_DEVNO_LEN		32	/* "MAJOR:MINOR" */

/* The devices a snapshot start names, as MAJOR:MINOR. */
struct cbw_snapshot_plan {
	char origin[CBW_DM_NAME_LEN];
	char cow[CBW_DEVNO_LEN];
};

int cbw_resolve_cow(const char *spec, char devno[CBW_DEVNO_LEN]);
int cbw_snapshot_prepare(const struct cbw_dev *dev,
			 const struct cbw_start_opts *o, bool load,
			 struct cbw_snapshot_plan *plan);
int cbw_snapshot_add_access(const struct cbw_dev *dev,
			    const struct cbw_start_opts *o);
void cbw_snapshot_undo(const struct cbw_dev *dev);
int cbw_show_snapshot(const struct cbw_dev *dev, const char *headline);
int cbw_snapshot_stop_dev(const char *spec, bool keep_access);

/* multi.c: one snapshot point across several devices */
#define CBW_MULTI_MAX		16	/* devices in one command */
#define CBW_MULTI_MAX_OPTS	128	/* per-device options in one command */

/* An option given once per device, in the order of the devices. */
struct cbw_multi_rule {
	int opt;
	const char *name;	/* "--cow" */
	bool shared;		/* given once, it applies to every device */
};

/*
 * The options of a command that takes several devices: those of @rules
 * are recorded, the others go to @handle at once.
 */
struct cbw_multi_opts {
	const struct cbw_multi_rule *rules;	/* ended by opt 0 */
	cbw_opt_handler handle;
	void *ctx;
	unsigned int nr;
	int opt[CBW_MULTI_MAX_OPTS];
	const char *arg[CBW_MULTI_MAX_OPTS];
};

extern const struct cbw_multi_rule cbw_multi_start_rules[];
extern const struct cbw_multi_rule cbw_multi_backup_rules[];
int cbw_multi_check_cow(const struct cbw_cmd *cmd,
			const struct cbw_start_opts *o);
int cbw_multi_option(const struct cbw_cmd *cmd, int opt, const char *arg,
		     void *ctx);
int cbw_multi_apply(const struct cbw_cmd *cmd, const struct cbw_multi_opts *m,
		    unsigned int nr_devs, unsigned int k, void *ctx);

/* A device of a snapshot started on several devices at once. */
struct cbw_multi_dev {
	struct cbw_dev dev;
	const struct cbw_start_opts *o;
	struct cbw_snapshot_plan plan;
	bool loaded;		/* its new table is loaded */
	bool suspended;
	bool resumed;		/* with the new table: its snapshot runs */
	bool access;		/* its access device was made */
};

struct cbw_multi {
	unsigned int nr;
	struct cbw_multi_dev devs[CBW_MULTI_MAX];
	unsigned int order[CBW_MULTI_MAX];	/* of suspends: upper first */
};

int cbw_multi_begin(struct cbw_multi *m);
void cbw_multi_undo(struct cbw_multi *m);
int cbw_multi_snapshot_start(const struct cbw_cmd *cmd,
			     struct cbw_multi_opts *mo, int nr, char **specs);
int cbw_multi_snapshot_stop(int nr, char **specs, bool keep_access);

/* extents.c: "bitmap dump" and "snapshot access-map" */
struct cbw_range {
	uint64_t offset;
	uint64_t length;
	bool have_length;
	unsigned int batch;	/* extents per ioctl */
	uint64_t end;		/* computed by cbw_range_check */
};

struct cbw_walk_result {
	uint64_t bytes;
	uint64_t extents;
};

extern const struct option cbw_range_longopts[];
void cbw_range_init(struct cbw_range *r);
int cbw_range_option(const struct cbw_cmd *cmd, int opt, const char *arg,
		     struct cbw_range *r);
int cbw_range_check(struct cbw_range *r, uint64_t dev_bytes);
void cbw_range_json(const struct cbw_range *r);
int cbw_walk_extents(unsigned long req, const struct cbw_dev *dev,
		     const char *name, const struct cbw_range *r,
		     struct cbw_walk_result *res);

/* job.c: the state of a backup job between its steps */
struct cbw_job {
	char device[CBW_DM_NAME_LEN];
	char sync[16];			/* full, bitmap or none */
	char bitmap[DM_CBW_NAME_LEN];	/* empty: none */
	char bitmap_mode[16];		/* on-success, always, never */
	char access[CBW_DM_NAME_LEN];
	char cow[256];
	uint64_t chunk;
	uint64_t size;			/* of the device */
	uint64_t granularity;		/* of the bitmap, 0 for none */
	uint64_t generation;		/* of the bitmap at begin, 0: none */
	char state[16];			/* begun, copied, failed */
	uint64_t fail_offset;
	uint64_t error;			/* errno of the failure */
	uint64_t done_bytes;
	uint64_t total_bytes;
	uint64_t chunks;		/* snapshot chunks copied */
	uint64_t started;		/* Unix time of begin */
	uint64_t run_ms;		/* time the copy took */
	char target[1024];
	char format[8];
};

const char *cbw_run_dir(void);
void cbw_job_path(const struct cbw_dev *dev, char *path);
int cbw_job_load(const struct cbw_dev *dev, struct cbw_job *job);
typedef void (*cbw_kv_setter)(void *ctx, const char *key, const char *value);
int cbw_kv_load(const char *path, cbw_kv_setter set, void *ctx);
typedef int (*cbw_file_writer)(FILE *f, const void *ctx);
int cbw_run_file_save(const char *path, const char *what,
		      cbw_file_writer write, const void *ctx);
int cbw_job_save(const struct cbw_dev *dev, const struct cbw_job *job);
int cbw_job_remove(const struct cbw_dev *dev);

/* backup_copy.c: "backup run" */
struct cbw_run_opts {
	const char *target;
	const char *format;		/* raw or cbw, NULL: by sync mode */
	uint64_t max_chunk;
	bool discard;
};

int cbw_backup_copy(const struct cbw_dev *dev, struct cbw_job *job,
		    const struct cbw_run_opts *o);

/* imgfile.c: the extents file of backups (see imgfile.c) */
#define CBW_IMG_MAGIC		"DMCBWEXT"
#define CBW_IMG_REC_MAGIC	"EXT1"
#define CBW_IMG_END_MAGIC	"END1"
#define CBW_IMG_VERSION		1
#define CBW_IMG_HEADER_SIZE	512
#define CBW_IMG_BLOCK_SIZE	32
#define CBW_IMG_SYNC_FULL	0
#define CBW_IMG_SYNC_BITMAP	1
#define CBW_IMG_PARTIAL		(1U << 0)	/* trailer flag */

struct cbw_img_header {
	uint64_t dev_size;
	uint64_t granularity;
	uint64_t created;
	uint32_t sync;
	uint32_t flags;
	char bitmap[DM_CBW_NAME_LEN];
	uint64_t generation;		/* of the bitmap, 0: none */
};

struct cbw_img_record {
	uint32_t crc;
	uint64_t offset;
	uint64_t length;
};

struct cbw_img_trailer {
	uint32_t flags;
	uint64_t records;
	uint64_t data_bytes;
	uint64_t fail_offset;
};

uint32_t cbw_crc32(uint32_t crc, const void *buf, size_t len);
void cbw_img_encode_header(const struct cbw_img_header *h,
			   uint8_t buf[CBW_IMG_HEADER_SIZE]);
int cbw_img_decode_header(const uint8_t buf[CBW_IMG_HEADER_SIZE],
			  struct cbw_img_header *h);
void cbw_img_encode_record(const struct cbw_img_record *rec,
			   uint8_t buf[CBW_IMG_BLOCK_SIZE]);
void cbw_img_encode_trailer(const struct cbw_img_trailer *tr,
			    uint8_t buf[CBW_IMG_BLOCK_SIZE]);
int cbw_img_decode_block(const uint8_t buf[CBW_IMG_BLOCK_SIZE],
			 struct cbw_img_record *rec,
			 struct cbw_img_trailer *tr);

/* tab.c: the cbwtab file */
#define CBW_TAB_PATH		"/etc/cbwtab"
/* A device made from a cbwtab line has the DM UUID CBW_DM_UUID_PREFIX NAME. */
/* So that the DM UUID fits its 129 bytes. */
#define CBW_TAB_NAME_MAX	(128 - (int)sizeof(CBW_DM_UUID_PREFIX) + 1)

struct cbw_tab_bitmap {
	char name[DM_CBW_NAME_LEN];
	uint64_t granularity;
	bool persistent;		/* on the metadata device */
};

/* One line of a cbwtab: a device, or the error that makes it unusable. */
struct cbw_tab_entry {
	unsigned int line;
	char name[CBW_DM_NAME_LEN];
	char origin[1024];		/* an absolute path or TAG=value */
	char metadata[1024];		/* the same, or empty: none */
	uint64_t chunk;			/* bytes */
	bool noauto;
	bool nofail;
	unsigned int nr_bitmaps;
	struct cbw_tab_bitmap bitmaps[DM_CBW_MAX_BITMAPS];
	char error[256];		/* empty: the line is good */
};

struct cbw_tab {
	const char *path;
	unsigned int nr;
	unsigned int cap;
	struct cbw_tab_entry *entries;
};

const char *cbw_tab_path(const char *opt);
int cbw_tab_read(const char *path, struct cbw_tab *tab);
void cbw_tab_free(struct cbw_tab *tab);
const char *cbw_tab_tag_dir(const char *origin, const char **value);

/* tab_units.c: the systemd units of a cbwtab */
int cbw_tab_write_unit(const char *dir, const struct cbw_tab *tab,
		       const struct cbw_tab_entry *e, const char *exe);
int cbw_tab_write_target_link(const char *dir);

/* io helpers (imgfile.c): whole transfers, 0 or a negative errno */
int cbw_pread_full(int fd, void *buf, size_t len, uint64_t off);
int cbw_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
int cbw_fd_size(int fd, uint64_t *size);

enum {
	CBW_OPT_OFFSET = 0x100,
	CBW_OPT_LENGTH,
	CBW_OPT_BATCH,
	CBW_OPT_GRANULARITY,
	CBW_OPT_DISABLED,
	CBW_OPT_PERSISTENT,
	CBW_OPT_BASE,
	CBW_OPT_FORCE_BASE,
	CBW_OPT_COW,
	CBW_OPT_CHUNK,
	CBW_OPT_BITMAP,
	CBW_OPT_ACCESS,
	CBW_OPT_ACCESS_RW,
	CBW_OPT_KEEP_ACCESS,
	CBW_OPT_ON_CBW_ERROR,
	CBW_OPT_CBW_TIMEOUT,
	CBW_OPT_SYNC,
	CBW_OPT_BITMAP_MODE,
	CBW_OPT_TARGET,
	CBW_OPT_FORMAT,
	CBW_OPT_MAX_CHUNK,
	CBW_OPT_DISCARD_SOURCE,
	CBW_OPT_TO,
	CBW_OPT_ALLOW_PARTIAL,
	CBW_OPT_MERGE,
	CBW_OPT_TAB,
	CBW_OPT_CHECK,
	CBW_OPT_COW_FILE,
	CBW_OPT_COW_THIN,
};

#endif /* CBWCTL_H */
