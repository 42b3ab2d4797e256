// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl: the systemd units of a cbwtab, written by "tab generate", which
 * the cbwtab-generator runs at boot and at each "systemctl daemon-reload".
 *
 * As systemd-cryptsetup-generator does for crypttab, each line becomes a
 * unit cbw@NAME.service, bound to the origin's device unit, that runs
 * "cbwctl tab start NAME" before local-fs-pre.target, so that fstab can
 * name /dev/mapper/NAME.  It is pulled in by cbw.target (itself wanted by
 * sysinit.target) unless the line says noauto, and by the device unit
 * dev-mapper-NAME.device, so that a mount of /dev/mapper/NAME starts it.
 * A generator runs before anything else: this reads the file and writes
 * units, and touches no device.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbwctl.h"

/* systemd's limit on the length of a unit name. */
#define CBW_UNIT_NAME_MAX	255
#define CBW_UNIT_LEN		(CBW_UNIT_NAME_MAX + 1)

/* Where cbw.target is installed (the Makefile says). */
#ifndef CBW_SYSTEMD_UNIT_DIR
#define CBW_SYSTEMD_UNIT_DIR	"/usr/lib/systemd/system"
#endif

/* The names a line's unit file needs, all escaped as systemd does. */
struct cbw_unit_names {
	char service[CBW_UNIT_LEN];	/* cbw@NAME.service */
	char origin[CBW_UNIT_LEN];	/* the origin's .device */
	char metadata[CBW_UNIT_LEN];	/* the metadata device's, or "" */
	char dm_device[CBW_UNIT_LEN];	/* dev-mapper-NAME.device */
	char blockdev[CBW_UNIT_LEN];	/* blockdev@dev-mapper-NAME.target */
};

/* ------------------------------------------------------------------ */
/* Escaping                                                            */
/* ------------------------------------------------------------------ */

/* isalnum() in the C locale, whatever the locale. */
static bool cbw_ascii_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z');
}

/* Appends @s to @buf (of CBW_UNIT_LEN); false if it does not fit. */
static bool cbw_unit_append(char *buf, const char *s)
{
	size_t len = strlen(buf);

	if (len + strlen(s) > CBW_UNIT_NAME_MAX)
		return false;
	strcpy(buf + len, s);
	return true;
}

/*
 * systemd's unit_name_escape(): '/' becomes '-'; '-', '\' and every byte
 * outside [A-Za-z0-9:_.], and a leading '.', become "\xNN".
 */
static bool cbw_unit_escape(char *buf, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char hex[8];

	for (; *p; p++) {
		if (*p == '/') {
			hex[0] = '-';
			hex[1] = '\0';
		} else if ((*p == '.' && p == (const unsigned char *)s) ||
			   !(cbw_ascii_alnum(*p) || strchr(":_.", *p))) {
			snprintf(hex, sizeof(hex), "\\x%02x", *p);
		} else {
			hex[0] = *p;
			hex[1] = '\0';
		}
		if (!cbw_unit_append(buf, hex))
			return false;
	}
	return true;
}

/* systemd-escape --path: the leading '/' dropped, the rest escaped. */
static bool cbw_unit_path(char *buf, const char *path, const char *suffix)
{
	while (*path == '/')
		path++;
	return cbw_unit_escape(buf, path) && cbw_unit_append(buf, suffix);
}

/*
 * The name udev gives a /dev/disk/by-* link for a UUID or label (blkid's
 * blkid_encode_string()): bytes outside [A-Za-z0-9#+-.:=@_] and outside
 * valid UTF-8 sequences, and '\', become "\xNN".
 */
static bool cbw_udev_encode(char *buf, size_t size, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(buf), n;
	char piece[8];

	while (*p) {
		n = cbw_utf8_len(p);
		if (n > 1) {
			memcpy(piece, p, n);
			piece[n] = '\0';
		} else if (cbw_ascii_alnum(*p) || strchr("#+-.:=@_", *p)) {
			n = 1;
			piece[0] = *p;
			piece[1] = '\0';
		} else {
			n = 1;
			snprintf(piece, sizeof(piece), "\\x%02x", *p);
		}
		if (len + strlen(piece) >= size)
			return false;
		strcpy(buf + len, piece);
		len += strlen(piece);
		p += n;
	}
	return true;
}

/* The .device unit of the device @spec (a path or TAG=value) into @unit. */
static bool cbw_unit_device(char *unit, const char *spec)
{
	char path[PATH_MAX] = "";
	const char *dir, *value;

	dir = cbw_tab_tag_dir(spec, &value);
	if (dir) {
		snprintf(path, sizeof(path), "%s", dir);
		if (!cbw_udev_encode(path, sizeof(path), value))
			return false;
	} else {
		snprintf(path, sizeof(path), "%s", spec);
	}
	return cbw_unit_path(unit, path, ".device");
}

/* The names of @e's units; false if one is too long for systemd. */
static bool cbw_unit_names(const struct cbw_tab_entry *e,
			   struct cbw_unit_names *u)
{
	char path[PATH_MAX];

	memset(u, 0, sizeof(*u));
	if (!cbw_unit_device(u->origin, e->origin) ||
	    (e->metadata[0] && !cbw_unit_device(u->metadata, e->metadata)))
		return false;
	snprintf(path, sizeof(path), "/dev/mapper/%s", e->name);
	return cbw_unit_append(u->service, "cbw@") &&
	       cbw_unit_escape(u->service, e->name) &&
	       cbw_unit_append(u->service, ".service") &&
	       cbw_unit_path(u->dm_device, path, ".device") &&
	       cbw_unit_append(u->blockdev, "blockdev@") &&
	       cbw_unit_path(u->blockdev, path, ".target");
}

/*
 * A word of a command line in a unit file: quoted if it has blanks,
 * quotes or backslashes, with '%' and '$' doubled so that systemd takes
 * them as they are.
 */
static void cbw_unit_word(FILE *f, const char *s)
{
	bool quote = strpbrk(s, " \t\"'\\");

	if (quote)
		fputc('"', f);
	for (; *s; s++) {
		if (*s == '%' || *s == '$')
			fputc(*s, f);
		else if (quote && (*s == '"' || *s == '\\'))
			fputc('\\', f);
		fputc(*s, f);
	}
	if (quote)
		fputc('"', f);
}

/* A path setting: only '%' is special there. */
static void cbw_unit_path_value(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '%')
			fputc('%', f);
		fputc(*s, f);
	}
}

/* ------------------------------------------------------------------ */
/* Unit files                                                          */
/* ------------------------------------------------------------------ */

static void cbw_unit_exec(FILE *f, const char *key, const char *exe,
			  const char *verb, const char *tab_path)
{
	fprintf(f, "%s=", key);
	cbw_unit_word(f, exe);
	fprintf(f, " tab %s --tab ", verb);
	cbw_unit_word(f, tab_path);
	fputs(" %I\n", f);
}

static void cbw_unit_print(FILE *f, const struct cbw_tab *tab,
			   const struct cbw_tab_entry *e,
			   const struct cbw_unit_names *u, const char *exe)
{
	fprintf(f, "# Written by cbwtab-generator from line %u of %s\n\n",
		e->line, tab->path);
	fputs("[Unit]\nDescription=dm-cbw device %I\n"
	      "Documentation=man:cbwtab(5) man:cbwctl(8)\nSourcePath=", f);
	cbw_unit_path_value(f, tab->path);
	fputs("\nDefaultDependencies=no\nIgnoreOnIsolate=true\n", f);
	fprintf(f, "BindsTo=%s\nAfter=%s systemd-modules-load.service\n",
		u->origin, u->origin);
	if (u->metadata[0])
		fprintf(f, "BindsTo=%s\nAfter=%s\n", u->metadata, u->metadata);
	fprintf(f, "Wants=local-fs-pre.target %s\n", u->blockdev);
	fprintf(f, "Before=local-fs-pre.target cbw.target %s\n", u->blockdev);
	fputs("Conflicts=umount.target\nBefore=umount.target\n\n", f);
	fputs("[Service]\nType=oneshot\nRemainAfterExit=yes\n", f);
	cbw_unit_exec(f, "ExecStart", exe, "start", tab->path);
	cbw_unit_exec(f, "ExecStop", exe, "stop", tab->path);
}

/* @dir/@sub/@unit -> @target: a dependency of @sub (a .wants/.requires). */
static int cbw_unit_link(const char *dir, const char *sub, const char *unit,
			 const char *target)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if (mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, unit);
	if (symlink(target, path) && errno != EEXIST)
		return -errno;
	return 0;
}

static int cbw_unit_write_file(const char *dir, const struct cbw_tab *tab,
			       const struct cbw_tab_entry *e,
			       const struct cbw_unit_names *u, const char *exe)
{
	char path[PATH_MAX];
	FILE *f;
	int r = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, u->service);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	cbw_unit_print(f, tab, e, u, exe);
	if (ferror(f))
		r = -EIO;
	if (fclose(f) && !r)
		r = -errno;
	return r;
}

/*
 * Writes the unit of @e and its dependency links into @dir; 0 or an exit
 * status, the error printed.
 */
int cbw_tab_write_unit(const char *dir, const struct cbw_tab *tab,
		       const struct cbw_tab_entry *e, const char *exe)
{
	char sub[CBW_UNIT_LEN + 16], target[CBW_UNIT_LEN + 4];
	struct cbw_unit_names u;
	int r;

	if (!cbw_unit_names(e, &u))
		return cbw_error("%s:%u: %s: a unit name would be longer than %d characters",
				 tab->path, e->line, e->name, CBW_UNIT_NAME_MAX);
	snprintf(target, sizeof(target), "../%s", u.service);
	snprintf(sub, sizeof(sub), "%s.requires", u.dm_device);
	r = cbw_unit_write_file(dir, tab, e, &u, exe);
	if (!r)
		r = cbw_unit_link(dir, sub, u.service, target);
	if (!r && !e->noauto)
		r = cbw_unit_link(dir, e->nofail ? "cbw.target.wants" :
				  "cbw.target.requires", u.service, target);
	if (r)
		return cbw_error("%s:%u: %s: cannot write its unit into %s: %s",
				 tab->path, e->line, e->name, dir,
				 strerror(-r));
	return 0;
}

/* sysinit.target wants cbw.target, which pulls in the devices. */
int cbw_tab_write_target_link(const char *dir)
{
	int r = cbw_unit_link(dir, "sysinit.target.wants", "cbw.target",
			      CBW_SYSTEMD_UNIT_DIR "/cbw.target");

	if (r)
		return cbw_error("Cannot link cbw.target into %s: %s", dir,
				 strerror(-r));
	return 0;
}
