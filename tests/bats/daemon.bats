#!/usr/bin/env bats
# The daemon's own hardening (security issue 11, items 10 and 13): a store
# path cannot smuggle mount options in, and the daemon does not serve with
# memory it cannot lock unless told to.
load helper

setup() {
	OTHER=sfs-mcp
	id -u "$OTHER" >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "$OTHER" 2>/dev/null ||
		id -u "$OTHER" >/dev/null 2>&1 || { echo "cannot create user $OTHER" >&2; return 1; }
}

teardown() {
	unmount_store
}

# super_options: the mount's superblock options as /proc/self/mountinfo has them.
super_options() {
	awk -v m="$MNT" '$5 == m { print $NF }' /proc/self/mountinfo
}

@test "a comma in the store's path is part of fsname=, not a mount option: no allow_other, other users stay out" {
	T=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-test.XXXXXX")
	chmod 0755 "$T"
	STORE=$T/st,allow_other
	MNT=$T/mnt
	LOG=$T/log
	mkdir -p "$MNT"
	"$SFS" init "$STORE" >/dev/null
	start_daemon
	printf 'sk-secret' >"$MNT/ai_gateway/KEY"
	[[ "$(super_options)" != *allow_other* ]]
	[[ "$(super_options)" == *user_id=0* ]]
	[ "$(awk -v m="$MNT" '$5 == m { print $(NF - 1) }' /proc/self/mountinfo)" = "$STORE" ]
	run setpriv --reuid="$OTHER" --regid="$OTHER" --clear-groups cat "$MNT/ai_gateway/KEY"
	[ "$status" -ne 0 ]
	[[ "$output" != *sk-secret* ]]
	[[ "$output" == *"Permission denied"* ]]
}

@test "without locked memory (no CAP_IPC_LOCK, small RLIMIT_MEMLOCK) the mount is refused with a clear error; -o allow_unlocked serves, with a warning" {
	new_store
	run timeout 20 prlimit --memlock=65536 setpriv --bounding-set=-ipc_lock \
		"$SFS" "$STORE" "$MNT" -f
	[ "$status" -eq 1 ]
	[[ "$output" == *"cannot lock memory"*"-o allow_unlocked"* ]]
	! grep -q " $MNT fuse.secretsfs " /proc/mounts

	prlimit --memlock=65536 setpriv --bounding-set=-ipc_lock \
		"$SFS" "$STORE" "$MNT" -f -o allow_unlocked 2>>"$LOG" &
	DAEMON_PID=$!
	for _ in $(seq 1 200); do
		[ -d "$MNT/ai_gateway" ] && break
		sleep 0.05
	done
	printf 'v1' >"$MNT/ai_gateway/KEY"
	expect_value "$MNT/ai_gateway/KEY" v1
	log_has "warning: mlockall: .*-o allow_unlocked: serving with swappable memory"
}
