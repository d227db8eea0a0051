#!/usr/bin/env bats
# Backup and restore (issue 16 item 6): `secretsfs backup` of a live
# store while a writer commits, the copy restored and mounted elsewhere;
# `tar --xattrs` of a scope and its extraction into a scope, labels kept
# (tar makes each file with mknod(2), sets its xattrs, then writes it).
load helper

setup() { mount_store; }
teardown() {
	[ -n "${WRITER:-}" ] && kill "$WRITER" 2>/dev/null
	[ -n "${T2:-}" ] && { fusermount3 -u "$T2/mnt" 2>/dev/null; [ -n "${PID2:-}" ] && wait "$PID2"; rm -rf "$T2"; }
	unmount_store
}

# mount_copy DIR: mounts the store in DIR on $T2/mnt, in the foreground.
mount_copy() {
	mkdir -p "$T2/mnt"
	"$SFS" "$1" "$T2/mnt" -f 2>>"$T2/log" &
	PID2=$!
	for _ in $(seq 1 200); do
		grep -qF " $T2/mnt fuse.secretsfs " /proc/mounts && [ -d "$T2/mnt/ai_gateway" ] && return 0
		kill -0 "$PID2" 2>/dev/null || { cat "$T2/log" >&2; return 1; }
		sleep 0.05
	done
	return 1
}

@test "the daemon keeps SQLite's locks on store.db-shm after its opens (so a backup's connection never resets the WAL index under it)" {
	printf 'v' >"$MNT/ai_gateway/K"
	for _ in 1 2 3; do cat "$MNT/ai_gateway/K" >/dev/null; done
	local ino pid
	ino=$(stat -c %i "$STORE/store.db-shm")
	pid=$DAEMON_PID
	# POSIX locks of the daemon on the -shm file (SQLite's DMS lock is held
	# for the connection's life); closing any other descriptor of the file
	# would drop them all (fcntl(2)): a daemon bus error in the backup test
	awk -v p="$pid" -v i="$ino" '$2 == "POSIX" && $5 == p && $6 ~ (":" i "$") { n++ } END { exit !n }' /proc/locks
}

@test "backup of a live store while a writer commits: the copy restores elsewhere, whole and sealed" {
	T2=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-copy.XXXXXX")
	printf 'steady' >"$MNT/ai_gateway/STEADY"
	setfattr -n user.tag.managed-by -v aigateway "$MNT/ai_gateway/STEADY"
	ln "$MNT/ai_gateway/STEADY" "$MNT/mcp_server/STEADY"
	printf 'w0' >"$MNT/ai_gateway/ROLLING"
	# a writer: one new version of ROLLING after another, each a whole value
	(for i in $(seq 1 400); do printf "w$i" >"$MNT/ai_gateway/ROLLING" || exit 1; done) &
	WRITER=$!
	sleep 0.3
	run "$SFS" backup "$STORE" "$T2/backup.db"
	echo "$output"
	[ "$status" -eq 0 ]
	wait "$WRITER"
	WRITER=
	[ -f "$T2/backup.db" ]
	[ "$(stat -c %a "$T2/backup.db")" = 600 ]
	[ ! -e "$T2/backup.db-wal" ]
	# no plaintext in the copy
	! grep -qa steady "$T2/backup.db"
	# a second backup onto the same name is refused, the first kept
	run "$SFS" backup "$STORE" "$T2/backup.db"
	[ "$status" -ne 0 ]
	[[ "$output" == *"exists"* ]]

	# another machine: a new directory with a copy of the key
	mkdir -m 700 "$T2/new"
	run "$SFS" restore "$T2/backup.db" "$T2/new"
	[ "$status" -ne 0 ]
	[[ "$output" == *"key"* ]]
	install -m 0400 "$STORE/key" "$T2/new/key"
	run "$SFS" restore "$T2/backup.db" "$T2/new"
	echo "$output"
	[ "$status" -eq 0 ]
	mount_copy "$T2/new"
	[ "$(cat "$T2/mnt/ai_gateway/STEADY")" = steady ]
	[ "$(cat "$T2/mnt/mcp_server/STEADY")" = steady ]
	[ "$(getfattr --only-values -n user.tag.managed-by "$T2/mnt/ai_gateway/STEADY")" = aigateway ]
	# ROLLING is one whole value the writer committed, at the version
	# that value had
	v=$(cat "$T2/mnt/ai_gateway/ROLLING")
	[[ "$v" =~ ^w([0-9]+)$ ]]
	n=${BASH_REMATCH[1]}
	[ "$n" -le 400 ]
	[ "$(getfattr --only-values -n secretsfs.version "$T2/mnt/ai_gateway/ROLLING")" = $((n + 1)) ]
	# and the copy is a store of its own from now on
	printf 'after' >"$T2/mnt/ai_gateway/ROLLING"
	[ "$(cat "$MNT/ai_gateway/ROLLING")" = w400 ]
}

@test "restore refuses a directory holding a store, a wrong key and a file that is no store; leaves nothing" {
	T2=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-copy.XXXXXX")
	printf 'v' >"$MNT/ai_gateway/A"
	"$SFS" backup "$STORE" "$T2/b.db" >/dev/null
	run "$SFS" restore "$T2/b.db" "$STORE"
	[ "$status" -ne 0 ]
	[[ "$output" == *"already holds a store"* ]]
	mkdir -m 700 "$T2/wrong"
	head -c 32 /dev/urandom >"$T2/wrong/key"
	chmod 0400 "$T2/wrong/key"
	run "$SFS" restore "$T2/b.db" "$T2/wrong"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"wrong key"* ]]
	[ ! -e "$T2/wrong/store.db" ]
	printf 'not a database at all, just text' >"$T2/junk"
	run "$SFS" restore "$T2/junk" "$T2/wrong"
	echo "$output"
	[ "$status" -ne 0 ]
	[ ! -e "$T2/wrong/store.db" ]
	run "$SFS" backup "$T2/wrong" "$T2/x.db"
	[ "$status" -ne 0 ]
	[[ "$output" == *"not a secretsfs store"* ]]
}

@test "tar --xattrs of a scope and tar --xattrs -x into a scope keep values and labels" {
	T2=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-copy.XXXXXX")
	printf 'sk-one' >"$MNT/ai_gateway/ONE"
	setfattr -n user.tag.managed-by -v aigateway "$MNT/ai_gateway/ONE"
	setfattr -n user.tag.env -v prod "$MNT/ai_gateway/ONE"
	printf 'sk-two' >"$MNT/ai_gateway/TWO"
	(cd "$MNT/ai_gateway" && tar --xattrs -cf "$T2/scope.tar" ONE TWO)
	# into a scope where they do not exist yet
	run tar --xattrs -xf "$T2/scope.tar" -C "$MNT/mcp_server" --warning=no-timestamp
	echo "$output"
	# ONE and TWO exist in ai_gateway: the extraction is refused, saying so
	[ "$status" -ne 0 ]
	rm "$MNT/ai_gateway/ONE" "$MNT/ai_gateway/TWO"
	run tar --xattrs -xf "$T2/scope.tar" -C "$MNT/redpanda_connect"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(cat "$MNT/redpanda_connect/ONE")" = sk-one ]
	[ "$(cat "$MNT/redpanda_connect/TWO")" = sk-two ]
	[ "$(getfattr --only-values -n user.tag.managed-by "$MNT/redpanda_connect/ONE")" = aigateway ]
	[ "$(getfattr --only-values -n user.tag.env "$MNT/redpanda_connect/ONE")" = prod ]
	# stored, not pending: still there after a remount
	remount
	[ "$(cat "$MNT/redpanda_connect/ONE")" = sk-one ]
	[ "$(getfattr --only-values -n user.tag.env "$MNT/redpanda_connect/ONE")" = prod ]
	! log_has 'mknod ONE refused'
}

@test "mknod of a regular file makes a file; of a FIFO or device it is refused (EPERM)" {
	run mknod "$MNT/ai_gateway/PIPE" p
	[ "$status" -ne 0 ]
	[[ "$output" == *"not permitted"* ]]
	log_has 'mknod PIPE refused'
	python3 -c 'import os,stat; os.mknod("'"$MNT"'/ai_gateway/MADE", 0o600 | stat.S_IFREG)'
	[ -f "$MNT/ai_gateway/MADE" ]
	printf 'v' >"$MNT/ai_gateway/MADE"
	[ "$(cat "$MNT/ai_gateway/MADE")" = v ]
}
