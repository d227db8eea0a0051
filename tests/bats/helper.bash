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
	T=$(mktemp -d /tmp/secretsfs-test.XXXXXX)
	STORE=$T/store
	MNT=$T/mnt
	LOG=$T/log
	mkdir -p "$MNT"
	"$SFS" init "$STORE" >/dev/null
}

# start_daemon [options...]: mounts $STORE on $MNT, in the foreground, and
# waits until the mount answers.
start_daemon() {
	"$SFS" "$STORE" "$MNT" -f "$@" 2>>"$LOG" &
	DAEMON_PID=$!
	for _ in $(seq 1 200); do
		if grep -q " $MNT fuse.secretsfs " /proc/mounts && [ -d "$MNT/ai_gateway" ]; then
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
	if grep -q " $MNT fuse.secretsfs " /proc/mounts; then
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
log_has() {
	grep -qE "$1" "$LOG" || { echo "log lacks /$1/:" >&2; cat "$LOG" >&2; return 1; }
}

# errno_of CMD...: runs CMD and prints the strerror text it reported.
