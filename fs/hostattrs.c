/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "hostattrs.h"
#include "ownedfile.h"

int hostattrs_load(struct fs *fs, char *why, size_t why_size)
{
	const char *path = fs->opt.attrs_file;
	if (why && why_size)
		why[0] = '\0';
	if (!path)
		return 0; /* not kept: none to load */
	/* Whoever can write this file widens modes at the next mount: it
	 * must be ours, a regular file (no FIFO to hang on: O_NONBLOCK), and
	 * writable by nobody else (ownedfile.h). */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return 0;
		if (why && why_size)
			owned_open_reason(e, "host-attrs file", path, why, why_size);
		return -e;
	}
	int r = owned_fd_check(fd, 022, "host-attrs file", path, why, why_size);
	if (r < 0) {
		close(fd);
		return r;
	}
	FILE *f = fdopen(fd, "re");
	if (!f) {
		int e = errno;
		close(fd);
		return -e;
	}
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	while (getline(&line, &cap, f) > 0) {
		struct hostattr a;
		lineno++;
		int r = hostattr_parse_line(line, &a);
		if (r < 0) {
			log_warn("%s:%u: not a host attribute line; ignored", fs->opt.attrs_file,
			         lineno);
			continue;
		}
		if (r == 0)
			continue;
		struct node *n = a.is_scope
		                   ? fs_node(fs, INO_SCOPE_FIRST +
		                                     (fuse_ino_t)scope_from_dir_name(a.name))
		                   : fs_secret_by_id(fs, a.name);
		if (n) {
			if (a.mode_set) {
				n->mode = a.mode;
				n->mode_set = true;
			}
			if (a.owner_set) {
				n->uid = a.uid;
				n->gid = a.gid;
				n->owner_set = true;
			}
		}
		free(a.name);
	}
	free(line);
	fclose(f);
	return 0;
}

static void put_entry(FILE *f, const char *kind, const char *name, const struct node *n)
{
	if (!n->mode_set && !n->owner_set)
		return;
	char mode[8] = "-";
	if (n->mode_set)
		snprintf(mode, sizeof(mode), "%04o", (unsigned)n->mode);
	if (n->owner_set)
		fprintf(f, "%s %s %s %u %u\n", kind, name, mode, (unsigned)n->uid,
		        (unsigned)n->gid);
	else
		fprintf(f, "%s %s %s - -\n", kind, name, mode);
}

int hostattrs_save(struct fs *fs)
{
	static pthread_mutex_t save_lock = PTHREAD_MUTEX_INITIALIZER;
	char *text = NULL;
	size_t len = 0;
	int r = 0;

	if (!fs->opt.attrs_file)
		return 0; /* not kept across remounts (no -o attrs=) */
	/* save_lock orders the writers: the last snapshot is written last. */
	pthread_mutex_lock(&save_lock);
	FILE *mem = open_memstream(&text, &len);
	if (!mem) {
		r = -errno;
		goto out;
	}
	fprintf(mem, "# secretsfs: this host's chmod and chown (kind name mode uid gid)\n");
	pthread_rwlock_rdlock(&fs->lock);
	for (int sc = 0; sc < SCOPE_COUNT; sc++)
		put_entry(mem, "scope", scope_dir_name(sc), fs_node(fs, INO_SCOPE_FIRST + sc));
	for (fuse_ino_t i = INO_FIRST_FREE; i < fs->next_ino; i++) {
		struct node *n = fs_node(fs, i);
		if (n && n->kind == NODE_SECRET && fs_secret_visible_scopes(n))
			put_entry(mem, "secret", n->u.secret.meta.id, n);
	}
	pthread_rwlock_unlock(&fs->lock);
	if (fclose(mem) != 0) {
		r = -ENOMEM;
		goto out;
	}

	r = owned_file_replace(fs->opt.attrs_file, text, len);
out:
	if (r < 0)
		log_error("could not keep this host's modes and owners in %s (%s); they last until "
		          "unmount",
		          fs->opt.attrs_file, strerrordesc_np(-r));
	pthread_mutex_unlock(&save_lock);
	free(text);
	return r;
}

void hostattrs_save_if_dirty(struct fs *fs)
{
	if (__atomic_exchange_n(&fs->attrs_dirty, false, __ATOMIC_RELAXED))
		hostattrs_save(fs);
}
