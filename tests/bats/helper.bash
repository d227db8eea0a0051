# Shared by every bats file: a private store and mountpoint per test, a
# daemon in the foreground with its log kept, and an unmount that always
# happens (teardown), checking the daemon exited 0.
#
#   setup()    { mount_store; }          # init a store, mount it on $MNT
#   teardown() { unmount_store; }
# Variables: $T (the test's dir), $STORE, $MNT, $LOG, $SFS (the binary),
# $DAEMON_PID.

SFS=${SECRETSFS:-$BATS_TEST_DIRNAME/../../build/fs/secretsfs}

new_store() {
	T=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-test.XXXXXX")
	STORE=$T/store
	MNT=$T/mnt
	LOG=$T/log
	mkdir -p "$MNT"
	"$SFS" init "$STORE" >/dev/null
}

# mounted: $MNT is a secretsfs mount (/proc/mounts writes a space as \040).
mounted() {
	grep -qF " ${MNT// /\\040} fuse.secretsfs " /proc/mounts
}

# start_daemon [options...]: mounts $STORE on $MNT, in the foreground, and
# waits until the mount answers ($START_WAIT_TRIES times 50 ms, default 200).
start_daemon() {
	"$SFS" "$STORE" "$MNT" -f "$@" 2>>"$LOG" &
	DAEMON_PID=$!
	for _ in $(seq 1 "${START_WAIT_TRIES:-200}"); do
		if mounted && [ -d "$MNT/ai_gateway" ]; then
			return 0
		fi
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			echo "daemon exited before mounting; log:" >&2
			cat "$LOG" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "mount did not come up; log:" >&2
	cat "$LOG" >&2
	return 1
}

mount_store() {
	new_store
	start_daemon "$@"
}

# stop_daemon: unmounts and checks the daemon exited with status 0.
stop_daemon() {
	local rc=0
	if mounted; then
		fusermount3 -u "$MNT" 2>/dev/null || { sleep 0.5; fusermount3 -uz "$MNT" 2>/dev/null; }
	fi
	if [ -n "${DAEMON_PID:-}" ]; then
		wait "$DAEMON_PID" || rc=$?
		DAEMON_PID=
	fi
	return $rc
}

remount() {
	stop_daemon
	start_daemon "$@"
}

unmount_store() {
	local rc=0
	stop_daemon || rc=$?
	if [ -n "${T:-}" ]; then
		if grep -qE 'AddressSanitizer|runtime error|LeakSanitizer' "$LOG" 2>/dev/null; then
			cat "$LOG" >&2
			rc=1
		fi
		grep -q " $T/" /proc/mounts && fusermount3 -uz "$MNT" 2>/dev/null
		rm -rf "$T"
	fi
	[ $rc -eq 0 ] || { echo "daemon exit status: $rc" >&2; return 1; }
}

# log_has PATTERN: the daemon logged a line matching PATTERN (grep -E).
# Some lines are written when the kernel releases a file, which it does
# after close(2) has returned: up to 5 s are given for the line to come.
log_has() {
	local i
	for i in $(seq 1 100); do
		grep -qE "$1" "$LOG" && return 0
		sleep 0.05
	done
	echo "log lacks /$1/:" >&2
	cat "$LOG" >&2
	return 1
}

# skip_if_sanitized [WHY]: skips the test when the daemon is built with a
# sanitizer.  ASan keeps its own shadow copies and quarantine, makes mlock
# and mlockall do nothing and handles SIGSEGV itself: memory layout,
# locking and core dumps are not ours there.
skip_if_sanitized() {
	if ldd "$SFS" 2>/dev/null | grep -qE 'lib(a|ub)san'; then
		skip "the daemon is built with a sanitizer (${1:-it owns memory and SIGSEGV})"
	fi
}

# errno_of CMD...: runs CMD and prints the strerror text it reported.

# --- helpers for rename.bats, tools.bats, events.bats, stress.bats ---

# sfs_version FILE: the secret's current version (the secretsfs.version fact).
sfs_version() {
	getfattr --absolute-names --only-values -n secretsfs.version "$1"
}

# rename2 FROM TO FLAGS: renameat2(2) with FLAGS (1 NOREPLACE, 2 EXCHANGE,
# 4 WHITEOUT); prints "ok" or the errno's name and strerror text
# ("EINVAL Invalid argument"), and fails on an error.
rename2() {
	python3 - "$@" <<'PY'
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
r = libc.renameat2(-100, os.fsencode(sys.argv[1]), -100, os.fsencode(sys.argv[2]), int(sys.argv[3]))
if r == 0:
    print("ok")
    sys.exit(0)
e = ctypes.get_errno()
print(errno.errorcode.get(e, str(e)), os.strerror(e))
sys.exit(1)
PY
}

# expect_value FILE VALUE: FILE's content is VALUE, byte for byte (read to
# EOF, so it does not depend on st_size as cmp does).
expect_value() {
	local want got
	want=$(printf '%s' "$2" | od -An -v -tx1 | tr -d ' \n')
	got=$(od -An -v -tx1 "$1" | tr -d ' \n') || { echo "$1: cannot read" >&2; return 1; }
	if [ "$want" != "$got" ]; then
		echo "$1: expected $(printf '%s' "$2" | od -An -c | tr -s ' ' | head -c 300)" >&2
		echo "$1: actual   $(od -An -c "$1" 2>&1 | tr -s ' ' | head -c 300)" >&2
		return 1
	fi
}

# start_watch DIR: inotifywait -m -e close_write,moved_to on DIR, events
# ("%e %f") into $T/events; returns once the watch is established.
start_watch() {
	WATCH_DIR=$1
	inotifywait -m -e close_write,moved_to --format '%e %f' "$WATCH_DIR" \
		>"$T/events" 2>"$T/events.err" </dev/null &
	WATCH_PID=$!
	for _ in $(seq 1 200); do
		grep -q 'Watches established' "$T/events.err" && return 0
		kill -0 "$WATCH_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "inotifywait did not start:" >&2
	cat "$T/events.err" >&2
	return 1
}

# stop_watch: makes a last event (a write to the scratch file .sentinel),
# waits until inotifywait has printed it, stops inotifywait and removes the
# sentinel line (and file), so $T/events holds every earlier event.
stop_watch() {
	[ -n "${WATCH_PID:-}" ] || return 0
	local ok=1
	printf s >"$WATCH_DIR/.sentinel" || ok=0
	for _ in $(seq 1 200); do
		[ $ok -eq 1 ] || break
		grep -q ' \.sentinel$' "$T/events" && break
		sleep 0.05
	done
	kill "$WATCH_PID" 2>/dev/null
	wait "$WATCH_PID" 2>/dev/null || true
	WATCH_PID=
	rm -f "$WATCH_DIR/.sentinel"
	grep -q ' \.sentinel$' "$T/events" || { echo "no sentinel event seen" >&2; return 1; }
	sed -i '/ \.sentinel$/d' "$T/events"
}

# fails PATTERN CMD...: CMD exits non-zero and its output contains PATTERN.
fails() {
	local pat=$1
	shift
	run "$@"
	if [ "$status" -eq 0 ]; then
		echo "expected failure ($pat), but it succeeded: $*; output: $output" >&2
		return 1
	fi
	if [[ "$output" != *"$pat"* ]]; then
		echo "expected '$pat' from: $*; got status $status: $output" >&2
		return 1
	fi
}

# eq ACTUAL EXPECTED [WHAT]
eq() {
	[ "$1" = "$2" ] || { echo "${3:+$3: }expected [$2], got [$1]" >&2; return 1; }
}
