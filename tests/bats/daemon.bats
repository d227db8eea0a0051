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
	skip_if_sanitized "its mlockall does nothing and always succeeds"
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

# run_as_store: a store the server user $OTHER may write, with its key
# root's (read before the drop), and a directory other users may enter.
run_as_store() {
	new_store
	chmod 0755 "$T"
	chown -R "$OTHER:" "$STORE"
	chown root: "$STORE/key"
}

# server_pid: the serving child of the keeper $DAEMON_PID.
server_pid() {
	pgrep -P "$DAEMON_PID" -x secretsfs || pgrep -P "$DAEMON_PID"
}

@test "run_as=USER: the server runs as USER with only CAP_IPC_LOCK and no_new_privs; the keeper keeps only CAP_SYS_ADMIN; reads, writes and a clean stop work" {
	run_as_store
	start_daemon -o run_as=$OTHER
	printf 'v1' >"$MNT/ai_gateway/KEY"
	expect_value "$MNT/ai_gateway/KEY" v1
	local s
	s=$(server_pid)
	[ -n "$s" ]
	[ "$(awk '/^Uid:/ { print $2 $3 $4 $5 }' "/proc/$s/status")" = "$(id -u $OTHER)$(id -u $OTHER)$(id -u $OTHER)$(id -u $OTHER)" ]
	[ "$(awk '/^Groups:/ { print $2 }' "/proc/$s/status")" = "" ]
	[ "$(awk '/^CapEff:/ { print $2 }' "/proc/$s/status")" = 0000000000004000 ]
	[ "$(awk '/^CapPrm:/ { print $2 }' "/proc/$s/status")" = 0000000000004000 ]
	[ "$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$s/status")" = 1 ]
	[ "$(awk '/^CapEff:/ { print $2 }' "/proc/$DAEMON_PID/status")" = 0000000000200000 ]
	# what the server writes is USER's
	[ "$(stat -c %U "$STORE/store.db")" = "$OTHER" ]
	# its own mount namespace: / read-only and nosuid, the store writable,
	# /root and /home empty, and no copy of the mount it serves
	[ "$(readlink "/proc/$s/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ]
	[ "$(readlink "/proc/$DAEMON_PID/ns/mnt")" = "$(readlink /proc/self/ns/mnt)" ]
	awk '$5 == "/" { print $6 }' "/proc/$s/mountinfo" | grep -q '^ro,nosuid'
	awk -v d="$STORE" '$5 == d { print $6 }' "/proc/$s/mountinfo" | grep -q '^rw'
	awk '$5 == "/root" { print $6 }' "/proc/$s/mountinfo" | grep -q '^ro'
	! awk '{ print $5 }' "/proc/$s/mountinfo" | grep -qx "$MNT"
	log_has "serving as $OTHER \(uid [0-9]+\)"
	# SIGTERM to the keeper (systemctl stop): unmounted, both exit 0
	kill -TERM "$DAEMON_PID"
	wait "$DAEMON_PID"
	DAEMON_PID=
	! grep -q " $MNT " /proc/mounts
	! kill -0 "$s" 2>/dev/null
	# and the value is there at the next mount
	start_daemon -o run_as=$OTHER
	expect_value "$MNT/ai_gateway/KEY" v1
}


@test "run_as=USER: SIGTERM to the keeper reaches the server (which the keeper, without CAP_KILL, cannot signal): a writer left open is committed and both exit 0" {
	run_as_store
	start_daemon -o run_as=$OTHER
	# an open writer keeps the lazily unmounted mount alive: only the
	# server's own stop (told by the keeper) ends it and commits
	exec 5>"$MNT/ai_gateway/KEY"
	printf 'pending' >&5
	kill -TERM "$DAEMON_PID"
	run timeout 20 sh -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.05; done' sh "$DAEMON_PID"
	exec 5>&-
	[ "$status" -eq 0 ]
	wait "$DAEMON_PID"
	DAEMON_PID=
	start_daemon -o run_as=$OTHER
	expect_value "$MNT/ai_gateway/KEY" pending
}

@test "init DIR -o key=FILE,run_as=USER: the store USER's, the key root's in a directory init made (0700); a run_as mount serves it; refused without key=, for root, for no such user" {
	T=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-test.XXXXXX")
	chmod 0755 "$T"
	STORE=$T/store MNT=$T/mnt LOG=$T/log
	mkdir "$MNT"
	run "$SFS" init "$STORE" -o "key=$T/etc/key,run_as=$OTHER"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"created an empty store in $STORE, owned by $OTHER"* ]]
	[ "$(stat -c '%U %a' "$STORE")" = "$OTHER 700" ]
	[ "$(find "$STORE" -mindepth 1 ! -user "$OTHER" | wc -l)" = 0 ]
	[ "$(stat -c '%U %a' "$T/etc" "$T/etc/key")" = "$(printf 'root 700\nroot 400')" ]
	[ ! -e "$STORE/key" ]
	start_daemon -o "run_as=$OTHER,key=$T/etc/key"
	printf 'v1' >"$MNT/ai_gateway/KEY"
	expect_value "$MNT/ai_gateway/KEY" v1
	[ "$(stat -c %U "$STORE/store.db")" = "$OTHER" ]
	fails "the key must stay root's, outside the store $OTHER writes: give -o key=FILE" \
		"$SFS" init "$T/s2" -o "run_as=$OTHER"
	fails "init -o run_as=root: that is root" "$SFS" init "$T/s3" -o "key=$T/k3,run_as=root"
	fails "init -o run_as=no-such-user-here: no such user" \
		"$SFS" init "$T/s4" -o "key=$T/k4,run_as=no-such-user-here"
	fails "init: -o attrs=x is not an option of init here" "$SFS" init "$T/s5" -o "key=$T/k5,attrs=x"
	# nothing was made by the refused ones
	[ ! -e "$T/s2" ] && [ ! -e "$T/s3" ] && [ ! -e "$T/k3" ] && [ ! -e "$T/s4" ] && [ ! -e "$T/s5" ]
}

@test "run_as=USER: a server killed with SIGKILL leaves no dead mount: the keeper unmounts and exits 1" {
	run_as_store
	start_daemon -o run_as=$OTHER
	printf 'v1' >"$MNT/ai_gateway/KEY"
	kill -KILL "$(server_pid)"
	local rc=0
	wait "$DAEMON_PID" || rc=$?
	DAEMON_PID=
	[ "$rc" -eq 1 ]
	! grep -q " $MNT " /proc/mounts
	log_has "killed by signal 9"
	log_has "unmounted $MNT"
	# the mountpoint is a plain directory again, not ENOTCONN
	ls "$MNT" >/dev/null
}

@test "run_as=USER: refused for root, for a user that does not exist, and a store USER cannot open gives an error, no mount" {
	new_store
	run "$SFS" "$STORE" "$MNT" -f -o run_as=root
	[ "$status" -eq 1 ]
	[[ "$output" == *"run_as=root: that is root"* ]]
	run "$SFS" "$STORE" "$MNT" -f -o run_as=no-such-user-here
	[ "$status" -eq 1 ]
	[[ "$output" == *"run_as=no-such-user-here: no such user"* ]]
	# the store is root's: refused before mounting, saying whose it is and
	# what to do
	run timeout 20 "$SFS" "$STORE" "$MNT" -f -o run_as=$OTHER
	[ "$status" -eq 1 ]
	[[ "$output" == *"-o run_as=$OTHER: the server cannot open the store in $STORE: it is uid 0's, not $OTHER's; make it $OTHER's (chown -R $OTHER: $STORE, with the key outside it"* ]]
	! grep -q " $MNT " /proc/mounts
	# a store the server cannot open for another reason (a file of it
	# root's): the server says so, and the keeper unmounts
	chown -R "$OTHER:" "$STORE"
	chown root: "$STORE/key" "$STORE/store.db"
	run timeout 20 "$SFS" "$STORE" "$MNT" -f -o run_as=$OTHER
	[ "$status" -eq 1 ]
	[[ "$output" == *"cannot open the store"* ]]
	! grep -q " $MNT " /proc/mounts
}

@test "run_as=USER: the keeper holds neither /dev/fuse nor the key; a mountpoint with a space is still cleaned up after SIGKILL" {
	run_as_store
	MNT="$T/mount point"
	mkdir -p "$MNT"
	start_daemon -o run_as=$OTHER
	printf 'v1' >"$MNT/ai_gateway/KEY"
	local k
	k=$DAEMON_PID
	! ls -l "/proc/$k/fd" | grep -q /dev/fuse
	ls -l "/proc/$(server_pid)/fd" | grep -q /dev/fuse
	# the key's 32 bytes are nowhere in the keeper's memory
	python3 - "$k" "$STORE/key" <<'PY'
import re, sys
pid, key = sys.argv[1], open(sys.argv[2], "rb").read()
found = False
# Mappings over 256 MiB are skipped: ASan's shadow is terabytes of
# zeros; the key's pages (sodium_malloc) and the heap are far smaller.
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
    for line in maps:
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if "r" not in line.split()[1] or hi - lo > 256 << 20:
            continue
        try:
            mem.seek(lo)
            if key in mem.read(hi - lo):
                found = True
        except (OSError, ValueError, OverflowError, MemoryError):
            pass
sys.exit(1 if found else 0)
PY
	kill -KILL "$(server_pid)"
	local rc=0
	wait "$DAEMON_PID" || rc=$?
	DAEMON_PID=
	[ "$rc" -eq 1 ]
	! mounted
	ls "$MNT" >/dev/null
}

@test "run_as=USER in the background: the command returns once mounted (the keeper leaves the terminal), and stops cleanly" {
	run_as_store
	run timeout 20 sh -c "'$SFS' '$STORE' '$MNT' -o run_as=$OTHER | cat"
	[ "$status" -eq 0 ]
	printf 'v1' >"$MNT/ai_gateway/KEY"
	expect_value "$MNT/ai_gateway/KEY" v1
	local k
	k=$(pgrep -f "^$SFS $STORE $MNT -o run_as=$OTHER" | while read -r p; do
		if [ "$(awk '/^Uid:/ { print $2 }' "/proc/$p/status")" = 0 ]; then echo "$p"; fi; done)
	[ -n "$k" ]
	[ "$(readlink "/proc/$k/cwd")" = / ]
	kill -TERM "$k"
	for _ in $(seq 1 100); do kill -0 "$k" 2>/dev/null || break; sleep 0.05; done
	! kill -0 "$k" 2>/dev/null
	! grep -q " $MNT " /proc/mounts
}

@test "run_as=USER: a store or host-attrs below /root, /home or /run/user (which the server cannot see) is refused before mounting" {
	new_store
	run "$SFS" "$STORE" "$MNT" -f -o run_as=$OTHER,attrs=/root/host-attrs
	[ "$status" -eq 1 ]
	[[ "$output" == *"/root/host-attrs is below /root, which the server's namespace hides"* ]]
	! grep -q " $MNT " /proc/mounts
}
