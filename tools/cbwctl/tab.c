// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl: the cbwtab file, which lists the cbw devices to create at boot,
 * in the manner of crypttab(5).
 *
 * One device per line, fields separated by blanks:
 *
 *	NAME  ORIGIN  [OPTIONS]
 *
 * NAME is the device-mapper name, ORIGIN an absolute path or UUID=,
 * PARTUUID=, LABEL=, PARTLABEL= (as blkid shows them), OPTIONS a
 * comma-separated list of chunk=SIZE, metadata=DEVICE (as ORIGIN),
 * bitmap=NAME[:GRANULARITY][:persistent] (repeated), noauto and nofail.  Blank lines and lines whose first non-blank
 * character is '#' are ignored.  A bad line is kept with its error, so
 * that the commands report it and go on with the others.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbwctl.h"

#define CBW_TAB_BLANKS		" \t\r\n"
#define CBW_MIN_CHUNK		(DM_CBW_MIN_CHUNK_SECTORS * 512ULL)
#define CBW_MAX_CHUNK		(1ULL << 30)
/* CBW-access-NAME is the DM UUID of access devices: not for a cbw device. */
#define CBW_TAB_RESERVED	"access-"

/* Tags of ORIGIN and the /dev/disk directory of their udev links. */
static const struct {
	const char *tag;
	const char *dir;
} cbw_tab_tags[] = {
	{ "UUID", "/dev/disk/by-uuid/" },
	{ "PARTUUID", "/dev/disk/by-partuuid/" },
	{ "LABEL", "/dev/disk/by-label/" },
	{ "PARTLABEL", "/dev/disk/by-partlabel/" },
};

/* The file to read: --tab, else $CBWTAB, else /etc/cbwtab. */
const char *cbw_tab_path(const char *opt)
{
	const char *env = getenv("CBWTAB");

	if (opt)
		return opt;
	return env && *env ? env : CBW_TAB_PATH;
}

__printf(2, 3)
static int cbw_tab_bad(struct cbw_tab_entry *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->error, sizeof(e->error), fmt, ap);
	va_end(ap);
	return -1;
}

/* The /dev/disk directory of a TAG=value origin, or NULL. */
const char *cbw_tab_tag_dir(const char *origin, const char **value)
{
	unsigned int i;
	size_t len;

	for (i = 0; i < ARRAY_SIZE(cbw_tab_tags); i++) {
		len = strlen(cbw_tab_tags[i].tag);
		if (!strncmp(origin, cbw_tab_tags[i].tag, len) &&
		    origin[len] == '=') {
			*value = origin + len + 1;
			return cbw_tab_tags[i].dir;
		}
	}
	return NULL;
}

/* A device-mapper name that "CBW-" + name fits a DM UUID. */
static int cbw_tab_set_name(struct cbw_tab_entry *e, const char *name)
{
	unsigned int major, minor;
	char tail;

	snprintf(e->name, sizeof(e->name), "%.*s", (int)sizeof(e->name) - 1,
		 name);
	if (strlen(name) > CBW_TAB_NAME_MAX)
		return cbw_tab_bad(e, "name '%s' is too long (at most %d bytes)",
				   e->name, CBW_TAB_NAME_MAX);
	if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return cbw_tab_bad(e, "'%s' is not a valid device-mapper name (no '/', not . or ..)",
				   name);
	/* cbwctl takes MAJOR:MINOR for a device number, not a name. */
	if (sscanf(name, "%u:%u%c", &major, &minor, &tail) == 2)
		return cbw_tab_bad(e, "name '%s' must not be MAJOR:MINOR", name);
	if (!strncmp(name, CBW_TAB_RESERVED, strlen(CBW_TAB_RESERVED)))
		return cbw_tab_bad(e, "name '%s' must not begin with '%s': %s%s... are the DM UUIDs of access devices",
				   name, CBW_TAB_RESERVED, CBW_DM_UUID_PREFIX,
				   CBW_TAB_RESERVED);
	return 0;
}

/*
 * The @what (origin, metadata) @path into @dst: an absolute path without
 * "." or ".." components; "//" made "/".
 */
static int cbw_tab_set_path(struct cbw_tab_entry *e, const char *what,
			    const char *path, char *dst, size_t size)
{
	char *out = dst, *end = dst + size - 1;
	const char *p = path, *next;
	size_t len;

	while (*p) {
		while (*p == '/')
			p++;
		next = strchrnul(p, '/');
		len = next - p;
		if ((len == 1 && *p == '.') || (len == 2 && !strncmp(p, "..", 2)))
			return cbw_tab_bad(e, "%s '%s' must not have . or .. in it",
					   what, path);
		if (len && (size_t)(end - out) < len + 1)
			return cbw_tab_bad(e, "%s '%s' is too long", what, path);
		if (len) {
			*out++ = '/';
			memcpy(out, p, len);
			out += len;
		}
		p = next;
	}
	*out = '\0';
	if (out == dst)
		return cbw_tab_bad(e, "%s '%s' is not a device", what, path);
	return 0;
}

/* The @what (origin, metadata) device @spec into @dst. */
static int cbw_tab_set_device(struct cbw_tab_entry *e, const char *what,
			      const char *spec, char *dst, size_t size)
{
	const char *value;

	if (*spec == '/')
		return cbw_tab_set_path(e, what, spec, dst, size);
	if (!cbw_tab_tag_dir(spec, &value))
		return cbw_tab_bad(e, "%s '%s' must be an absolute path, UUID=, PARTUUID=, LABEL= or PARTLABEL=",
				   what, spec);
	if (!*value)
		return cbw_tab_bad(e, "%s '%s' has no value", what, spec);
	if (strlen(spec) >= size)
		return cbw_tab_bad(e, "%s '%s' is too long", what, spec);
	snprintf(dst, size, "%s", spec);
	return 0;
}

static int cbw_tab_set_origin(struct cbw_tab_entry *e, const char *origin)
{
	return cbw_tab_set_device(e, "origin", origin, e->origin,
				  sizeof(e->origin));
}

static int cbw_tab_set_metadata(struct cbw_tab_entry *e, const char *spec)
{
	if (e->metadata[0])
		return cbw_tab_bad(e, "option metadata is given twice");
	return cbw_tab_set_device(e, "metadata", spec, e->metadata,
				  sizeof(e->metadata));
}

static int cbw_tab_set_chunk(struct cbw_tab_entry *e, const char *value)
{
	if (e->chunk)
		return cbw_tab_bad(e, "option chunk is given twice");
	if (cbw_parse_size(value, &e->chunk) || !cbw_is_power_of_2(e->chunk) ||
	    e->chunk < CBW_MIN_CHUNK || e->chunk > CBW_MAX_CHUNK)
		return cbw_tab_bad(e, "chunk=%s: the chunk size must be a power of 2 from 4K to 1G",
				   value);
	return 0;
}

/* Printable ASCII without blanks, ',' or ':' (the separators here). */
static bool cbw_tab_bitmap_name_ok(const char *name)
{
	const unsigned char *p;

	if (!*name || strlen(name) >= DM_CBW_NAME_LEN)
		return false;
	for (p = (const unsigned char *)name; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == ':')
			return false;
	return true;
}

static int cbw_tab_set_granularity(struct cbw_tab_entry *e, const char *value,
				   uint64_t *granularity)
{
	if (cbw_parse_size(value, granularity) ||
	    !cbw_is_power_of_2(*granularity) ||
	    *granularity < DM_CBW_MIN_GRANULARITY ||
	    *granularity > CBW_MAX_GRANULARITY)
		return cbw_tab_bad(e, "bitmap granularity '%s' must be a power of 2 from 512 to 2G",
				   value);
	return 0;
}

/* "bitmap=NAME[:GRANULARITY][:persistent]" */
static int cbw_tab_add_bitmap(struct cbw_tab_entry *e, char *value)
{
	struct cbw_tab_bitmap *b = &e->bitmaps[e->nr_bitmaps];
	char *gran = strchr(value, ':');
	char *flag = NULL;
	unsigned int i;

	if (gran) {
		*gran++ = '\0';
		flag = strchr(gran, ':');
		if (flag)
			*flag++ = '\0';
		else if (!strcmp(gran, "persistent"))
			flag = gran, gran = NULL;
	}
	if (flag && strcmp(flag, "persistent"))
		return cbw_tab_bad(e, "bitmap '%s': '%s' is not 'persistent'",
				   value, flag);
	if (!cbw_tab_bitmap_name_ok(value))
		return cbw_tab_bad(e, "bitmap name '%s' must be 1 to %d printable ASCII characters, without ':'",
				   value, DM_CBW_NAME_LEN - 1);
	for (i = 0; i < e->nr_bitmaps; i++)
		if (!strcmp(e->bitmaps[i].name, value))
			return cbw_tab_bad(e, "bitmap '%s' is given twice", value);
	if (e->nr_bitmaps == DM_CBW_MAX_BITMAPS)
		return cbw_tab_bad(e, "more than %d bitmaps", DM_CBW_MAX_BITMAPS);
	b->granularity = DM_CBW_DEFAULT_GRANULARITY;
	if (gran && cbw_tab_set_granularity(e, gran, &b->granularity))
		return -1;
	snprintf(b->name, sizeof(b->name), "%s", value);
	b->persistent = flag;
	e->nr_bitmaps++;
	return 0;
}

static int cbw_tab_set_option(struct cbw_tab_entry *e, char *opt)
{
	char *value = strchr(opt, '=');

	if (value)
		*value++ = '\0';
	if (!strcmp(opt, "noauto") && !value)
		e->noauto = true;
	else if (!strcmp(opt, "nofail") && !value)
		e->nofail = true;
	else if (!strcmp(opt, "chunk") && value)
		return cbw_tab_set_chunk(e, value);
	else if (!strcmp(opt, "bitmap") && value)
		return cbw_tab_add_bitmap(e, value);
	else if (!strcmp(opt, "metadata") && value)
		return cbw_tab_set_metadata(e, value);
	else if (!*opt)
		return cbw_tab_bad(e, "empty option");
	else
		return cbw_tab_bad(e, "unknown option '%s%s%s'", opt,
				   value ? "=" : "", value ? value : "");
	return 0;
}

static int cbw_tab_set_options(struct cbw_tab_entry *e, char *opts)
{
	char *opt;

	while ((opt = strsep(&opts, ",")))
		if (cbw_tab_set_option(e, opt))
			return -1;
	return 0;
}

/* The fields of one line (modified in place) into @e. */
static void cbw_tab_parse_line(struct cbw_tab_entry *e, char *line)
{
	char *save = NULL, *name, *origin, *opts;
	unsigned int i;

	name = strtok_r(line, CBW_TAB_BLANKS, &save);
	origin = strtok_r(NULL, CBW_TAB_BLANKS, &save);
	opts = strtok_r(NULL, CBW_TAB_BLANKS, &save);
	if (cbw_tab_set_name(e, name))
		return;
	if (!origin) {
		cbw_tab_bad(e, "no origin (NAME ORIGIN [OPTIONS])");
		return;
	}
	if (strtok_r(NULL, CBW_TAB_BLANKS, &save)) {
		cbw_tab_bad(e, "too many fields (NAME ORIGIN [OPTIONS])");
		return;
	}
	if (cbw_tab_set_origin(e, origin) || (opts && cbw_tab_set_options(e, opts)))
		return;
	for (i = 0; i < e->nr_bitmaps; i++)
		if (e->bitmaps[i].persistent && !e->metadata[0]) {
			cbw_tab_bad(e, "bitmap '%s' is persistent: it needs metadata=DEVICE",
				    e->bitmaps[i].name);
			return;
		}
	if (!e->chunk)
		e->chunk = CBW_DEFAULT_CHUNK;
}

static bool cbw_tab_is_blank(const char *line)
{
	line += strspn(line, CBW_TAB_BLANKS);
	return !*line || *line == '#';
}

static struct cbw_tab_entry *cbw_tab_new_entry(struct cbw_tab *tab)
{
	struct cbw_tab_entry *e;

	if (tab->nr == tab->cap) {
		tab->cap = tab->cap ? 2 * tab->cap : 16;
		e = realloc(tab->entries, tab->cap * sizeof(*e));
		if (!e)
			return NULL;
		tab->entries = e;
	}
	e = &tab->entries[tab->nr++];
	memset(e, 0, sizeof(*e));
	return e;
}

/* A second line for a name already given is an error of that line. */
static void cbw_tab_check_duplicate(struct cbw_tab *tab, struct cbw_tab_entry *e)
{
	struct cbw_tab_entry *o;

	for (o = tab->entries; o < e; o++)
		if (!strcmp(o->name, e->name)) {
			cbw_tab_bad(e, "'%s' is already on line %u", e->name,
				    o->line);
			return;
		}
}

static int cbw_tab_read_lines(struct cbw_tab *tab, FILE *f)
{
	struct cbw_tab_entry *e;
	unsigned int nr = 0;
	size_t cap = 0;
	char *line = NULL;
	int r = 0;

	while (getline(&line, &cap, f) >= 0) {
		nr++;
		if (cbw_tab_is_blank(line))
			continue;
		e = cbw_tab_new_entry(tab);
		if (!e) {
			r = -ENOMEM;
			break;
		}
		e->line = nr;
		cbw_tab_parse_line(e, line);
		if (!e->error[0])
			cbw_tab_check_duplicate(tab, e);
	}
	if (!r && ferror(f))
		r = -errno;
	free(line);
	return r;
}

/*
 * Reads the cbwtab at @path into @tab; returns 0 or a negative errno
 * (-ENOENT: no such file), printing nothing.  Free with cbw_tab_free().
 */
int cbw_tab_read(const char *path, struct cbw_tab *tab)
{
	FILE *f;
	int r;

	memset(tab, 0, sizeof(*tab));
	tab->path = path;
	f = fopen(path, "re");
	if (!f)
		return -errno;
	r = cbw_tab_read_lines(tab, f);
	fclose(f);
	return r;
}

void cbw_tab_free(struct cbw_tab *tab)
{
	free(tab->entries);
	tab->entries = NULL;
	tab->nr = 0;
}
