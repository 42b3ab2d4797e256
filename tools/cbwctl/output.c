// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl output: error messages, human-readable sizes, aligned tables,
 * JSON and progress.
 *
 * Errors go to standard error prefixed with "cbwctl: ".  Results go to
 * standard output, either as aligned text or, with --json, as one JSON
 * value.  Sizes are printed in the largest binary unit that represents
 * them exactly (384K, 64M), or in bytes with --bytes; JSON always carries
 * bytes.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbwctl.h"

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

static void cbw_vmessage(const char *fmt, va_list ap)
{
	fflush(stdout);
	cbw_progress_end();
	fputs("cbwctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/*
 * The first error of the command and its errno, for the JSON error object:
 * the first one names the cause, later ones its consequences.
 */
static struct {
	char message[1024];
	int err;
} cbw_failure;

void cbw_record_error(const char *fmt, va_list ap)
{
	if (!cbw_failure.message[0])
		vsnprintf(cbw_failure.message, sizeof(cbw_failure.message),
			  fmt, ap);
}

/* Notes @err (negative) as the errno of the failure; returns @err. */
int cbw_errno_error(int err)
{
	if (!cbw_failure.err)
		cbw_failure.err = -err;
	return err;
}

/* Prints an operation error and returns the matching exit status. */
int cbw_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cbw_record_error(fmt, ap);
	va_end(ap);
	va_start(ap, fmt);
	cbw_vmessage(fmt, ap);
	va_end(ap);
	return CBW_EXIT_FAIL;
}

void cbw_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cbw_vmessage(fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Sizes                                                               */
/* ------------------------------------------------------------------ */

static const char cbw_units[] = "KMGTPE";

bool cbw_is_power_of_2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Shift of a unit letter (K: 10 ... E: 60), or -1. */
static int cbw_unit_shift(char c)
{
	const char *u = strchr(cbw_units, toupper((unsigned char)c));

	if (!c || !u)
		return -1;
	return 10 * (int)(u - cbw_units + 1);
}

/* An optional "B" or "iB" after the unit letter. */
static bool cbw_unit_tail_ok(const char *s)
{
	if (!strcasecmp(s, "") || !strcasecmp(s, "B"))
		return true;
	return !strcasecmp(s, "iB");
}

/*
 * Parses "512", "64K", "1M", "2GiB", ...: a whole number of bytes with an
 * optional binary unit.  Returns 0, -EINVAL or -ERANGE.
 */
int cbw_parse_size(const char *s, uint64_t *bytes)
{
	unsigned long long v;
	char *end;
	int shift = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	if (*end) {
		shift = cbw_unit_shift(*end);
		if (shift < 0 || !cbw_unit_tail_ok(end + 1))
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*bytes = (uint64_t)v << shift;
	return 0;
}

/* "384K" for 393216; plain bytes if no unit divides, or with --bytes. */
const char *cbw_format_size(uint64_t bytes, char buf[CBW_SIZE_BUF])
{
	int i;

	if (!cbw_opts.bytes && bytes) {
		for (i = (int)sizeof(cbw_units) - 2; i >= 0; i--) {
			unsigned int shift = 10 * (i + 1);

			if (bytes >> shift && !(bytes & ((1ULL << shift) - 1))) {
				snprintf(buf, CBW_SIZE_BUF, "%llu%c",
					 (unsigned long long)(bytes >> shift),
					 cbw_units[i]);
				return buf;
			}
		}
	}
	snprintf(buf, CBW_SIZE_BUF, "%llu", (unsigned long long)bytes);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Tables                                                              */
/* ------------------------------------------------------------------ */

struct cbw_table {
	unsigned int nr_cols;
	unsigned int nr_rows;
	unsigned int cap_rows;
	char **cells;			/* nr_rows * nr_cols, row 0: header */
};

static void *cbw_xrealloc(void *p, size_t size)
{
	p = realloc(p, size);
	if (!p) {
		perror("cbwctl");
		exit(CBW_EXIT_FAIL);
	}
	return p;
}

static char *cbw_xstrdup(const char *s)
{
	char *d = strdup(s);

	if (!d) {
		perror("cbwctl");
		exit(CBW_EXIT_FAIL);
	}
	return d;
}

struct cbw_table *cbw_table_new(unsigned int nr_cols, const char *const *head)
{
	struct cbw_table *t = cbw_xrealloc(NULL, sizeof(*t));

	t->nr_cols = nr_cols;
	t->nr_rows = 0;
	t->cap_rows = 0;
	t->cells = NULL;
	cbw_table_add(t, head);
	return t;
}

void cbw_table_add(struct cbw_table *t, const char *const *cells)
{
	unsigned int c;

	if (t->nr_rows == t->cap_rows) {
		t->cap_rows = t->cap_rows ? 2 * t->cap_rows : 8;
		t->cells = cbw_xrealloc(t->cells, sizeof(*t->cells) *
					t->cap_rows * t->nr_cols);
	}
	for (c = 0; c < t->nr_cols; c++)
		t->cells[t->nr_rows * t->nr_cols + c] = cbw_xstrdup(cells[c]);
	t->nr_rows++;
}

void cbw_table_print(struct cbw_table *t)
{
	size_t width[CBW_TABLE_MAX_COLS] = { 0 };
	unsigned int r, c;

	for (r = 0; r < t->nr_rows; r++)
		for (c = 0; c < t->nr_cols && c < CBW_TABLE_MAX_COLS; c++) {
			size_t len = strlen(t->cells[r * t->nr_cols + c]);

			if (len > width[c])
				width[c] = len;
		}
	for (r = 0; r < t->nr_rows; r++) {
		for (c = 0; c < t->nr_cols; c++) {
			const char *cell = t->cells[r * t->nr_cols + c];

			if (c + 1 == t->nr_cols)
				printf("%s\n", cell);
			else
				printf("%-*s  ", (int)width[c], cell);
		}
	}
}

void cbw_table_free(struct cbw_table *t)
{
	unsigned int i;

	for (i = 0; i < t->nr_rows * t->nr_cols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

/* "label:             value" with the values aligned. */
void cbw_print_field(const char *label, const char *fmt, ...)
{
	va_list ap;

	printf("%s:%*s", label, (int)(20 - strlen(label)), "");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

#define CBW_JSON_MAX_DEPTH	8

static struct {
	unsigned int depth;
	bool compact;			/* one line per top-level value */
	bool result_printed;		/* a failure's result says why */
	bool has_items[CBW_JSON_MAX_DEPTH];
} cbw_json;

/* Compact values fit on one line: JSON Lines, for event streams. */
void cbw_json_set_compact(bool compact)
{
	cbw_json.compact = compact;
}

static void cbw_json_indent(unsigned int depth)
{
	if (cbw_json.compact)
		return;
	while (depth--)
		fputs("  ", stdout);
}

/* Length of the valid UTF-8 sequence at @s, or 0. */
size_t cbw_utf8_len(const unsigned char *s)
{
	size_t len, i;

	if (*s < 0x80)
		return 1;
	if (*s >= 0xc2 && *s <= 0xdf)
		len = 2;
	else if (*s >= 0xe0 && *s <= 0xef)
		len = 3;
	else if (*s >= 0xf0 && *s <= 0xf4)
		len = 4;
	else
		return 0;
	for (i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/*
 * A JSON string.  Bytes that are not valid UTF-8 (a device-mapper name may
 * hold any byte) are written as the Latin-1 character of the same value.
 */
static void cbw_json_quote(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len;

	putchar('"');
	while (*s) {
		if (*s == '"' || *s == '\\') {
			printf("\\%c", *s++);
		} else if (*s < 0x20 || *s == 0x7f) {
			printf("\\u%04x", *s++);
		} else {
			len = cbw_utf8_len(s);
			if (!len) {
				printf("\\u%04x", *s++);
				continue;
			}
			fwrite(s, 1, len, stdout);
			s += len;
		}
	}
	putchar('"');
}

/* Starts a value: separator, indentation and key. */
static void cbw_json_value(const char *key)
{
	if (cbw_json.depth) {
		if (cbw_json.has_items[cbw_json.depth])
			putchar(',');
		if (!cbw_json.compact)
			putchar('\n');
		cbw_json.has_items[cbw_json.depth] = true;
		cbw_json_indent(cbw_json.depth);
	}
	if (key) {
		cbw_json_quote(key);
		fputs(cbw_json.compact ? ":" : ": ", stdout);
	}
}

static void cbw_json_open(const char *key, char bracket)
{
	cbw_json_value(key);
	putchar(bracket);
	if (cbw_json.depth + 1 < CBW_JSON_MAX_DEPTH)
		cbw_json.depth++;
	cbw_json.has_items[cbw_json.depth] = false;
}

static void cbw_json_close(char bracket)
{
	bool had_items = cbw_json.has_items[cbw_json.depth];

	cbw_json.depth--;
	if (had_items && !cbw_json.compact) {
		putchar('\n');
		cbw_json_indent(cbw_json.depth);
	}
	putchar(bracket);
	if (!cbw_json.depth) {
		putchar('\n');
		if (cbw_json.compact)
			fflush(stdout);
	}
}

void cbw_json_object_begin(const char *key)
{
	cbw_json_open(key, '{');
}

void cbw_json_object_end(void)
{
	cbw_json_close('}');
}

void cbw_json_array_begin(const char *key)
{
	cbw_json_open(key, '[');
}

void cbw_json_array_end(void)
{
	cbw_json_close(']');
}

void cbw_json_string(const char *key, const char *value)
{
	cbw_json_value(key);
	cbw_json_quote(value);
}

void cbw_json_u64(const char *key, uint64_t value)
{
	cbw_json_value(key);
	printf("%llu", (unsigned long long)value);
}

void cbw_json_i64(const char *key, int64_t value)
{
	cbw_json_value(key);
	printf("%lld", (long long)value);
}

void cbw_json_bool(const char *key, bool value)
{
	cbw_json_value(key);
	fputs(value ? "true" : "false", stdout);
}

/*
 * With --json, a failed command ends its standard output with one line
 * {"error": MESSAGE, "errno": N}: its first error message (as on standard
 * error, without "cbwctl: ") and the errno behind it, or 0.
 */
/*
 * The command printed a result that says why it failed (a report with its
 * problems): no error object after it, so that the output stays one value.
 */
void cbw_json_result_printed(void)
{
	cbw_json.result_printed = true;
}

void cbw_json_error(int status)
{
	if (cbw_json.depth || cbw_json.result_printed)
		return;		/* inside a value, or the value says why */
	cbw_json_set_compact(true);
	cbw_json_object_begin(NULL);
	cbw_json_string("error", cbw_failure.message[0] ?
			cbw_failure.message : (status == CBW_EXIT_USAGE ?
			"Invalid command line" : "Command failed"));
	cbw_json_i64("errno", cbw_failure.err);
	cbw_json_object_end();
}

void cbw_json_null(const char *key)
{
	cbw_json_value(key);
	fputs("null", stdout);
}

/* ------------------------------------------------------------------ */
/* Progress                                                            */
/* ------------------------------------------------------------------ */

static bool cbw_progress_shown;

/* "cbwctl: WHAT: NN%" on standard error, if that is a terminal. */
void cbw_progress(const char *what, uint64_t done, uint64_t total)
{
	if (!total || !isatty(STDERR_FILENO))
		return;
	if (done > total)
		done = total;
	fprintf(stderr, "\rcbwctl: %s: %3u%%", what,
		(unsigned int)((long double)done * 100 / total));
	cbw_progress_shown = true;
}

void cbw_progress_end(void)
{
	if (!cbw_progress_shown)
		return;
	fputs("\r\033[K", stderr);
	cbw_progress_shown = false;
}
