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
