/* SPDX-License-Identifier: MIT */
/* secretsfs list: the inventory of a mounted tree (cmd_list.c). */
#ifndef SECRETSFS_CMD_LIST_H
#define SECRETSFS_CMD_LIST_H

/* argv: what follows "list".  Returns the exit status (1 after saying
 * why). */
int cmd_list(int argc, char **argv);

#endif
