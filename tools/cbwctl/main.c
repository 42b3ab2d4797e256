// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl - control dm-cbw devices: dirty bitmaps for incremental backup
 * and copy-before-write snapshots read through a snapshot-access device.
 *
 * The command line is "cbwctl [GLOBAL OPTIONS] GROUP SUBCOMMAND ARGS...",
 * where the global options (--json, --bytes, --help) may also follow the
 * group or the subcommand.  This file finds the subcommand, parses its
 * options and prints help and usage errors.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbwctl.h"

struct cbw_global_opts cbw_opts;

enum {
	CBW_OPT_JSON = 0x80,
	CBW_OPT_BYTES,
};

static const struct option cbw_global_longopts[] = {
	{ "json", no_argument, NULL, CBW_OPT_JSON },
	{ "bytes", no_argument, NULL, CBW_OPT_BYTES },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

#define CBW_MAX_LONGOPTS	24

static const char cbw_global_help[] =
	"Global options (before or after the command):\n"
	"  --json              print the result as JSON (sizes in bytes)\n"
	"  --bytes             print sizes as byte counts instead of 64K, 1M, ...\n"
	"  -h, --help          show help\n";

static const char cbw_common_help[] =
	"DEV is a device-mapper name, a device path (/dev/mapper/NAME,\n"
	"/dev/dm-N) or MAJOR:MINOR.  SIZE is a number of bytes, optionally\n"
	"with a binary unit: 512, 64K, 1M, 2G, 1T (K=1024).\n"
	"Exit status: 0 success, 1 the operation failed, 2 usage error.\n";

/* ------------------------------------------------------------------ */
/* Help                                                                */
/* ------------------------------------------------------------------ */

static void cbw_print_usage_line(FILE *f, const struct cbw_cmd *cmd)
{
	unsigned int i;

	fputs("cbwctl", f);
	if (cmd->group)
		fprintf(f, " %s", cmd->group);
	fprintf(f, " %s", cmd->name);
	for (i = 0; i < ARRAY_SIZE(cmd->params) && cmd->params[i]; i++)
		fprintf(f, " %s", cmd->params[i]);
	if (cmd->synopsis && *cmd->synopsis)
		fprintf(f, " %s", cmd->synopsis);
	fputc('\n', f);
}

void cbw_print_cmd_help(const struct cbw_cmd *cmd)
{
	fputs("Usage: ", stdout);
	cbw_print_usage_line(stdout, cmd);
	printf("\n%s\n", cmd->summary);
	if (cmd->help && *cmd->help)
		printf("\n%s", cmd->help);
	printf("\n%s\n%s", cbw_global_help, cbw_common_help);
}

static void cbw_print_cmd_entry(const struct cbw_cmd *cmd)
{
	fputs("  ", stdout);
	cbw_print_usage_line(stdout, cmd);
	printf("      %s\n", cmd->summary);
}

static void cbw_print_cmd_list(const struct cbw_cmd *cmds)
{
	const struct cbw_cmd *cmd;

	for (cmd = cmds; cmd->name; cmd++)
		cbw_print_cmd_entry(cmd);
}

static void cbw_print_group_help(const char *group, const struct cbw_cmd *cmds)
{
	printf("Usage: cbwctl %s SUBCOMMAND ARGS... [OPTIONS]\n\n", group);
	printf("Subcommands:\n");
	cbw_print_cmd_list(cmds);
	printf("\nRun 'cbwctl %s SUBCOMMAND --help' for the options of one.\n\n%s\n%s",
	       group, cbw_global_help, cbw_common_help);
}

static void cbw_print_help(void)
{
	printf("Usage: cbwctl [--json] [--bytes] COMMAND [ARGS...]\n\n"
	       "Control dm-cbw devices: dirty bitmaps that record what the guest\n"
	       "wrote (for incremental backup), copy-before-write snapshots read\n"
	       "through a cbw-access device (image fleecing), and backups.\n\n"
	       "Dirty bitmap commands:\n");
	cbw_print_cmd_list(cbw_bitmap_cmds);
	printf("\nSnapshot commands:\n");
	cbw_print_cmd_list(cbw_snapshot_cmds);
	printf("\nBackup commands:\n");
	cbw_print_cmd_entry(&cbw_backup_cmd);
	cbw_print_cmd_list(cbw_backup_cmds);
	cbw_print_cmd_entry(&cbw_restore_cmd);
	printf("\nBoot-time devices (cbwtab) commands:\n");
	cbw_print_cmd_list(cbw_tab_cmds);
	printf("\nMetadata device commands:\n");
	cbw_print_cmd_list(cbw_metadata_cmds);
	printf("\nLive device-mapper devices:\n");
	cbw_print_cmd_list(cbw_attach_cmds);
	cbw_print_cmd_entry(&cbw_lvextend_cmd);
	printf("\nOther commands:\n");
	cbw_print_cmd_list(cbw_other_cmds);
	printf("  cbwctl help [COMMAND [SUBCOMMAND]]\n"
	       "      Show help for a command.\n\n");
	printf("%s\n%sSee cbwctl(8) for details.\n", cbw_global_help,
	       cbw_common_help);
}

/* "bitmap add", "version": the words that name @cmd. */
const char *cbw_cmd_title(const struct cbw_cmd *cmd, char buf[CBW_TITLE_LEN])
{
	snprintf(buf, CBW_TITLE_LEN, "%s%s%s", cmd->group ? cmd->group : "",
		 cmd->group ? " " : "", cmd->name);
	return buf;
}

/* Prints "cbwctl: MESSAGE", the usage line and where help is. */
int cbw_usage_error(const struct cbw_cmd *cmd, const char *fmt, ...)
{
	char title[CBW_TITLE_LEN];
	va_list ap;

	fputs("cbwctl: ", stderr);
	va_start(ap, fmt);
	cbw_record_error(fmt, ap);
	va_end(ap);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (cmd) {
		fputs("Usage: ", stderr);
		cbw_print_usage_line(stderr, cmd);
		fprintf(stderr, "Try 'cbwctl %s --help' for more information.\n",
			cbw_cmd_title(cmd, title));
	} else {
		fputs("Try 'cbwctl --help' for more information.\n", stderr);
	}
	return CBW_EXIT_USAGE;
}

/* ------------------------------------------------------------------ */
/* Option parsing                                                      */
/* ------------------------------------------------------------------ */

/* @own followed by the global options, in @all. */
static void cbw_merge_longopts(const struct option *own, struct option *all)
{
	unsigned int n = 0, i;

	for (i = 0; own && own[i].name && n < CBW_MAX_LONGOPTS - 4; i++)
		all[n++] = own[i];
	for (i = 0; cbw_global_longopts[i].name; i++)
		all[n++] = cbw_global_longopts[i];
	memset(&all[n], 0, sizeof(all[n]));
}

/* A global option: 1 if @opt is one, 0 if not. */
static int cbw_global_option(int opt)
{
	switch (opt) {
	case CBW_OPT_JSON:
		cbw_opts.json = true;
		return 1;
	case CBW_OPT_BYTES:
		cbw_opts.bytes = true;
		return 1;
	}
	return 0;
}

/* An unknown option, or one without its value ("CMD: " first, if any). */
static int cbw_bad_option(const struct cbw_cmd *cmd, int opt, char **argv)
{
	const char *arg = argv[optind - 1];
	char title[CBW_TITLE_LEN] = "";

	if (cmd) {
		size_t len = strlen(cbw_cmd_title(cmd, title));

		snprintf(title + len, sizeof(title) - len, ": ");
	}
	if (opt == ':')
		return cbw_usage_error(cmd, "%soption '%s' needs a value",
				       title, arg);
	if (optopt)
		return cbw_usage_error(cmd, "%sunknown option '-%c'", title,
				       optopt);
	return cbw_usage_error(cmd, "%sunknown option '%s'", title, arg);
}

static int cbw_check_arg_count(const struct cbw_cmd *cmd, unsigned int n,
			       char **args)
{
	char title[CBW_TITLE_LEN];
	unsigned int last = 0;

	while (last + 1 < ARRAY_SIZE(cmd->params) && cmd->params[last + 1])
		last++;
	if (n < cmd->min_args)
		return cbw_usage_error(cmd, "%s: missing argument %s",
				       cbw_cmd_title(cmd, title),
				       cmd->params[n <= last ? n : last]);
	if (n > cmd->max_args)
		return cbw_usage_error(cmd, "%s: unexpected argument '%s'",
				       cbw_cmd_title(cmd, title),
				       args[cmd->max_args]);
	return 0;
}

/*
 * Parses the options of @cmd (argv[0] is the subcommand's name); options
 * may come before, between or after the positional arguments.
 */
int cbw_parse_cmd(const struct cbw_cmd *cmd, int argc, char **argv,
		  const struct option *own, cbw_opt_handler handle, void *ctx,
		  int *first_arg)
{
	struct option all[CBW_MAX_LONGOPTS];
	int opt, r;

	cbw_merge_longopts(own, all);
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", all, NULL)) != -1) {
		if (opt == 'h') {
			cbw_print_cmd_help(cmd);
			return CBW_HELP_SHOWN;
		}
		if (cbw_global_option(opt))
			continue;
		if (opt == '?' || opt == ':' || !handle)
			return cbw_bad_option(cmd, opt, argv);
		r = handle(cmd, opt, optarg, ctx);
		if (r)
			return r;
	}
	r = cbw_check_arg_count(cmd, argc - optind, argv + optind);
	if (r)
		return r;
	*first_arg = optind;
	return 0;
}

/* A command without options of its own whose first argument is the device. */
int cbw_parse_dev_cmd(const struct cbw_cmd *cmd, int argc, char **argv,
		      struct cbw_dev *dev, int *first_arg)
{
	int r = cbw_parse_cmd(cmd, argc, argv, NULL, NULL, NULL, first_arg);

	return r ? r : cbw_open_device(argv[*first_arg], dev);
}

/*
 * Global options in front of a command or group word: parsing stops at the
 * first word that is not an option.  Returns 0, CBW_HELP_SHOWN (after
 * calling @help) or CBW_EXIT_USAGE.
 */
static int cbw_parse_leading(int argc, char **argv, void (*help)(void *),
			     void *help_ctx, bool *version)
{
	static const struct option version_opt[] = {
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct option all[CBW_MAX_LONGOPTS];
	int opt;

	cbw_merge_longopts(version ? version_opt : NULL, all);
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, version ? "+:hV" : "+:h", all,
				  NULL)) != -1) {
		if (opt == 'h') {
			help(help_ctx);
			return CBW_HELP_SHOWN;
		}
		if (opt == 'V' && version) {
			*version = true;
			continue;
		}
		if (!cbw_global_option(opt))
			return cbw_bad_option(NULL, opt, argv);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */
/* ------------------------------------------------------------------ */

struct cbw_group {
	const char *name;
	const struct cbw_cmd *cmds;
};

static const struct cbw_group cbw_groups[] = {
	{ "bitmap", cbw_bitmap_cmds },
	{ "snapshot", cbw_snapshot_cmds },
	{ "backup", cbw_backup_cmds },
	{ "tab", cbw_tab_cmds },
	{ "metadata", cbw_metadata_cmds },
	{ NULL, NULL },
};

static const struct cbw_group *cbw_find_group(const char *name)
{
	const struct cbw_group *g;

	for (g = cbw_groups; g->name; g++)
		if (!strcmp(g->name, name))
			return g;
	return NULL;
}

static const struct cbw_cmd *cbw_find_cmd(const struct cbw_cmd *cmds,
					  const char *name)
{
	for (; cmds->name; cmds++)
		if (!strcmp(cmds->name, name))
			return cmds;
	return NULL;
}

static void cbw_group_help(void *ctx)
{
	const struct cbw_group *g = ctx;

	cbw_print_group_help(g->name, g->cmds);
}

static void cbw_top_help(void *ctx)
{
	(void)ctx;
	cbw_print_help();
}

static int cbw_run_cmd(const struct cbw_cmd *cmd, int argc, char **argv)
{
	int r = cmd->run(cmd, argc, argv);

	return r == CBW_HELP_SHOWN ? CBW_EXIT_OK : r;
}

/* "cbwctl GROUP [OPTIONS] SUBCOMMAND ...": argv[0] is GROUP. */
static int cbw_run_group(const struct cbw_group *g, int argc, char **argv)
{
	const struct cbw_cmd *cmd;
	int r;

	r = cbw_parse_leading(argc, argv, cbw_group_help, (void *)g, NULL);
	if (r)
		return r == CBW_HELP_SHOWN ? CBW_EXIT_OK : r;
	if (optind >= argc) {
		fprintf(stderr, "cbwctl: %s: missing subcommand\n", g->name);
		fprintf(stderr, "Try 'cbwctl %s --help' for the list.\n", g->name);
		return CBW_EXIT_USAGE;
	}
	cmd = cbw_find_cmd(g->cmds, argv[optind]);
	if (!cmd) {
		fprintf(stderr, "cbwctl: %s: unknown subcommand '%s'\n",
			g->name, argv[optind]);
		fprintf(stderr, "Try 'cbwctl %s --help' for the list.\n", g->name);
		return CBW_EXIT_USAGE;
	}
	return cbw_run_cmd(cmd, argc - optind, argv + optind);
}

/* Commands without a group: version, backup (one command), restore. */
static const struct cbw_cmd *cbw_find_top_cmd(const char *name)
{
	if (!strcmp(name, cbw_other_cmds[0].name))
		return &cbw_other_cmds[0];
	if (!strcmp(name, cbw_backup_cmd.name))
		return &cbw_backup_cmd;
	if (!strcmp(name, cbw_restore_cmd.name))
		return &cbw_restore_cmd;
	if (!strcmp(name, cbw_lvextend_cmd.name))
		return &cbw_lvextend_cmd;
	return cbw_find_cmd(cbw_attach_cmds, name);
}

/*
 * "cbwctl backup STEP DEV ..." runs a step, "cbwctl backup DEV ..." the
 * whole job: the word after "backup" and its global options decides.
 */
static int cbw_run_backup(const struct cbw_group *g, int argc, char **argv)
{
	int i = 1;

	while (i < argc && (!strcmp(argv[i], "--json") ||
			    !strcmp(argv[i], "--bytes")))
		i++;
	if (i < argc && cbw_find_cmd(g->cmds, argv[i]))
		return cbw_run_group(g, argc, argv);
	return cbw_run_cmd(&cbw_backup_cmd, argc, argv);
}

/* "cbwctl help [GROUP [SUBCOMMAND]]" */
static int cbw_run_help(int argc, char **argv)
{
	const struct cbw_group *g;
	const struct cbw_cmd *cmd = NULL;

	if (argc < 2 || !strcmp(argv[1], "help")) {
		cbw_print_help();
		return CBW_EXIT_OK;
	}
	cmd = cbw_find_top_cmd(argv[1]);
	if (cmd && (argc < 3 || cmd != &cbw_backup_cmd)) {
		cbw_print_cmd_help(cmd);
		return CBW_EXIT_OK;
	}
	g = cbw_find_group(argv[1]);
	if (!g)
		return cbw_usage_error(NULL, "help: unknown command '%s'", argv[1]);
	if (argc < 3) {
		cbw_print_group_help(g->name, g->cmds);
		return CBW_EXIT_OK;
	}
	cmd = cbw_find_cmd(g->cmds, argv[2]);
	if (!cmd)
		return cbw_usage_error(NULL, "help: unknown subcommand '%s %s'",
				       g->name, argv[2]);
	cbw_print_cmd_help(cmd);
	return CBW_EXIT_OK;
}

static int cbw_main(int argc, char **argv)
{
	const struct cbw_group *g;
	bool version = false;
	int r;

	r = cbw_parse_leading(argc, argv, cbw_top_help, NULL, &version);
	if (r)
		return r == CBW_HELP_SHOWN ? CBW_EXIT_OK : r;
	if (version) {
		printf("cbwctl %s\n", CBWCTL_VERSION);
		return CBW_EXIT_OK;
	}
	if (optind >= argc)
		return cbw_usage_error(NULL, "missing command");

	argc -= optind;
	argv += optind;
	g = cbw_find_group(argv[0]);
	if (g && !strcmp(g->name, "backup"))
		return cbw_run_backup(g, argc, argv);
	if (g)
		return cbw_run_group(g, argc, argv);
	if (cbw_find_top_cmd(argv[0]))
		return cbw_run_cmd(cbw_find_top_cmd(argv[0]), argc, argv);
	if (!strcmp(argv[0], "help"))
		return cbw_run_help(argc, argv);
	return cbw_usage_error(NULL, "unknown command '%s'", argv[0]);
}

/* --json anywhere on the command line, even where a usage error stopped. */
static bool cbw_json_wanted(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--json"))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	int r;

	cbw_dm_init();
	r = cbw_main(argc, argv);
	cbw_dm_exit();
	if (r != CBW_EXIT_OK && cbw_json_wanted(argc, argv))
		cbw_json_error(r);
	if (fflush(stdout) || ferror(stdout)) {
		perror("cbwctl: standard output");
		r = CBW_EXIT_FAIL;
	}
	return r;
}
