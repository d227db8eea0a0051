#!/usr/bin/env bats
# Restart under a live mount without systemd (issue 14): -o takeover hands
# the FUSE connection from the running daemon to a new one (handover.c).
# Under systemd, with the fd store: restart_systemd.bats.
load helper

setup() {
	mount_store
	# a value no line-based tool keeps whole: 3000 random bytes
	head -c 3000 /dev/urandom >"$T/value"
	cp "$T/value" "$MNT/ai_gateway/KEY"
}

teardown() {
	[ -z "${STOPPED:-}" ] || kill -CONT "$STOPPED" 2>/dev/null || true
	[ -z "${READER:-}" ] || { touch "$T/stop"; wait "$READER" || true; }
	unmount_store
}

# takeover [options]: a new daemon takes the mount over; the new one must
# say it took over, and the old one ($DAEMON_PID) then exit 0.
takeover() {
	local old=$DAEMON_PID n i
	n=$(grep -c 'took over the mount' "$LOG" || true)
	# (not the files a test holds open on the mount: they would keep it busy)
	"$SFS" "$STORE" "$MNT" -f -o takeover "$@" 2>>"$LOG" 7<&- 8>&- &
	DAEMON_PID=$!
	for i in $(seq 1 200); do
		if [ "$(grep -c 'took over the mount' "$LOG")" -gt "$n" ]; then
			wait "$old"
			return
		fi
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "no takeover; log:" >&2
	cat "$LOG" >&2
	return 1
}

# reader: cats KEY until $T/stop exists; counts whole and failed reads
# in $T/ok and $T/bad (a failed read's error in $T/errors).
start_reader() {
	(
		ok=0 bad=0
		while [ ! -e "$T/stop" ]; do
			if cat "$MNT/ai_gateway/KEY" >"$T/got" 2>>"$T/errors" && cmp -s "$T/got" "$T/value"; then
				ok=$((ok + 1))
			else
				bad=$((bad + 1))
			fi
		done
		echo $ok >"$T/ok"
		echo $bad >"$T/bad"
	) &
	READER=$!
}

stop_reader() {
	touch "$T/stop"
	wait "$READER"
	READER=
	echo "reads: $(cat "$T/ok") whole, $(cat "$T/bad") failed" >&3
	cat "$T/errors" >&2
}

@test "-o takeover three times under a reader looping on cat: no failed read, every value whole, the same inode numbers, the mount never goes" {
	printf 'other' >"$MNT/ai_gateway/OTHER"
	local ino other
	ino=$(stat -c %i "$MNT/ai_gateway/KEY")
	other=$(stat -c %i "$MNT/ai_gateway/OTHER")
	start_reader
	for _ in 1 2 3; do
		takeover
		mounted
	done
	! grep -q 'will not find this daemon' "$LOG" || false
	stop_reader
	[ "$(cat "$T/bad")" = 0 ]
	[ "$(cat "$T/ok")" -gt 0 ]
	[ "$(stat -c %i "$MNT/ai_gateway/KEY")" = "$ino" ]
	[ "$(stat -c %i "$MNT/ai_gateway/OTHER")" = "$other" ]
	[ "$(grep -c ' fuse.secretsfs ' <(grep -F " $MNT " /proc/mounts))" = 1 ]
	grep -q 'took over the mount on .*: 2 of 2 secrets kept their inode numbers' "$LOG"
	[ "$(grep -c 'handed the mount on .* over to the next daemon' "$LOG")" = 3 ]
	# and the last one stops as any daemon does
	stop_daemon
	! mounted || false
}

@test "a file opened before -o takeover reads its value to the end; a writer's open fails with ESTALE" {
	exec 7<"$MNT/ai_gateway/KEY"
	head -c 1000 <&7 >"$T/got" # GNU head leaves the offset at 1000
	exec 8>>"$MNT/ai_gateway/KEY"
	takeover
	cat <&7 >>"$T/got"
	exec 7<&-
	cmp "$T/got" "$T/value"
	run bash -c 'printf x >&8' 8>&8
	exec 8>&-
	[ "$status" -ne 0 ]
	[[ "$output" == *"Stale file handle"* ]]
	grep -q 'a file opened before the daemon restarted cannot be used any more' "$LOG"
	# the value is the one from before, the writer's byte never arrived
	cmp "$MNT/ai_gateway/KEY" "$T/value"
}

@test "-o takeover with no daemon serving the mountpoint says so and mounts nothing" {
	stop_daemon
	run "$SFS" "$STORE" "$MNT" -f -o takeover
	[ "$status" -ne 0 ]
	[[ "$output" == *"-o takeover: no secretsfs serving $MNT answers"* ]]
	! mounted || false
}

@test "-o takeover from another user is refused: the running daemon keeps serving" {
	local other=sfs-takeover
	id -u "$other" >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "$other"
	chmod 0755 "$T"
	run setpriv --reuid="$other" --regid="$other" --clear-groups "$SFS" "$STORE" "$MNT" -f -o takeover
	[ "$status" -ne 0 ]
	[[ "$output" == *"did not hand over its connection"* ]]
	grep -q "takeover refused to pid .* (uid $(id -u "$other"))" "$LOG"
	kill -0 "$DAEMON_PID"
	cmp "$MNT/ai_gateway/KEY" "$T/value"
}

@test "a daemon SIGSTOPped on its mount: a new daemon on the same mountpoint aborts the old connection and serves, nothing hangs" {
	local old=$DAEMON_PID conn
	conn=$(awk -v m="$MNT" '$5 == m && / - fuse.secretsfs / { split($3, d, ":"); print d[2] }' /proc/self/mountinfo)
	[ -n "$conn" ]
	kill -STOP "$old"
	STOPPED=$old
	# (the old one's mount answers nothing now: every look at it would hang)
	timeout 60 "$SFS" "$STORE" "$MNT" -f 2>>"$LOG" &
	DAEMON_PID=$!
	for _ in $(seq 1 400); do
		grep -q "the secretsfs mount on $MNT did not answer" "$LOG" && break
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.05
	done
	grep -q "the secretsfs mount on $MNT did not answer for 3 s (its daemon stopped or stuck): aborted its FUSE connection $conn" "$LOG"
	timeout 30 bash -c 'until [ -d "$1/ai_gateway" ]; do sleep 0.05; done' _ "$MNT"
	timeout 10 cmp "$MNT/ai_gateway/KEY" "$T/value"
	# one mount there, the new one's; the old connection is gone or aborted
	[ "$(grep -c ' fuse.secretsfs ' <(grep -F " $MNT " /proc/mounts))" = 1 ]
	[ ! -e "/sys/fs/fuse/connections/$conn/waiting" ] || [ "$(cat "/sys/fs/fuse/connections/$conn/waiting")" = 0 ]
	# the old daemon (it held the store's lock) was let go on: it found
	# its connection ended and exited, without touching the new mount
	grep -q "continued pid $old (stopped), which holds the store in $STORE, so that it ends" "$LOG"
	timeout 30 tail --pid="$old" -f /dev/null
	timeout 10 cmp "$MNT/ai_gateway/KEY" "$T/value"
	[ "$(grep -c ' fuse.secretsfs ' <(grep -F " $MNT " /proc/mounts))" = 1 ]
	kill -0 "$DAEMON_PID"
}

@test "-o fast through -o takeover twice under a reader looping on cat: no failed read, every value whole" {
	stop_daemon
	start_daemon -o fast
	cmp "$MNT/ai_gateway/KEY" "$T/value"
	local ino
	ino=$(stat -c %i "$MNT/ai_gateway/KEY") # its current version's inode
	start_reader
	for _ in 1 2; do
		takeover -o fast
		# the page cache dropped: the next read is the new daemon's, of
		# an inode number the old one gave out
		dd if="$MNT/ai_gateway/KEY" iflag=nocache count=0 status=none
		cmp "$MNT/ai_gateway/KEY" "$T/value"
	done
	stop_reader
	[ "$(stat -c %i "$MNT/ai_gateway/KEY")" = "$ino" ]
	[ "$(grep -c 'took over the mount on .*: 1 of 1 secrets kept their inode numbers, 1 of 1 version inodes' "$LOG")" = 2 ]
	[ "$(cat "$T/bad")" = 0 ]
	[ "$(cat "$T/ok")" -gt 0 ]
	cmp "$MNT/ai_gateway/KEY" "$T/value"
}
