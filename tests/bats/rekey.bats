#!/usr/bin/env bats
# secretsfs rekey (issue 16 item 7): the store sealed again under a new
# key, staged (DIR/key.new first; the old key opens the store until all is
# sealed again, in one transaction) and crash-safe (SIGKILL, run again).
load helper

setup() { mount_store; }
teardown() {
	[ -n "${REKEY_PID:-}" ] && kill -9 "$REKEY_PID" 2>/dev/null
	unmount_store
}

@test "rekey: values, versions, labels and kept deleted secrets under the new key; the old key refused" {
	printf 'one' >"$MNT/ai_gateway/ROTATED"
	printf 'two' >"$MNT/ai_gateway/ROTATED"
	setfattr -n user.tag.managed-by -v aigateway "$MNT/ai_gateway/ROTATED"
	ln "$MNT/ai_gateway/ROTATED" "$MNT/mcp_server/ROTATED"
	printf 'kept' >"$MNT/ai_agent/KEPT"
	rm "$MNT/ai_agent/KEPT"
	# a mounted store is not rekeyed
	run "$SFS" rekey "$STORE"
	[ "$status" -ne 0 ]
	[[ "$output" == *"in use (mounted?)"* ]]
	[ ! -e "$STORE/key.new" ]
	stop_daemon
	cp "$STORE/key" "$T/old.key"
	run "$SFS" rekey "$STORE"
	echo "$output"
	[ "$status" -eq 0 ]
	[ ! -e "$STORE/key.new" ]
	[ "$(stat -c %a "$STORE/key")" = 400 ]
	! cmp -s "$STORE/key" "$T/old.key"
	start_daemon
	[ "$(cat "$MNT/mcp_server/ROTATED")" = two ]
	[ "$(cat "$MNT/.versions/ROTATED/1")" = one ]
	[ "$(getfattr --only-values -n user.tag.managed-by "$MNT/ai_gateway/ROTATED")" = aigateway ]
	[ "$(cat "$MNT/.deleted/KEPT")" = kept ]
	stop_daemon
	chmod 0400 "$T/old.key"
	run timeout 10 "$SFS" "$STORE" "$MNT" -f -o key="$T/old.key"
	[ "$status" -ne 0 ]
	[[ "$output" == *"wrong key"* ]]
	# killed after its commit, before the new key took DIR/key's name:
	# the mount says what to do, and a run again only finishes the rename
	install -m 0400 "$STORE/key" "$STORE/key.new"
	cp "$T/old.key" "$STORE/key.tmp" && mv "$STORE/key.tmp" "$STORE/key"
	run timeout 10 "$SFS" "$STORE" "$MNT" -f
	[ "$status" -ne 0 ]
	[[ "$output" == *"a rekey was interrupted; run secretsfs rekey"* ]]
	run "$SFS" rekey "$STORE"
	echo "$output"
	[ "$status" -eq 0 ]
	[ ! -e "$STORE/key.new" ]
	start_daemon
	[ "$(cat "$MNT/ai_gateway/ROTATED")" = two ]
}

@test "rekey killed (SIGKILL) while it seals, then run again: every value there, the old key refused" {
	for i in $(seq 1 3000); do printf "value-$i" >"$MNT/ai_gateway/K_$i"; done
	stop_daemon
	cp "$STORE/key" "$T/old.key"
	chmod 0400 "$T/old.key"
	"$SFS" rekey "$STORE" 2>"$T/rekey.err" >/dev/null &
	REKEY_PID=$!
	for _ in $(seq 1 200); do
		grep -q ' of 3000 secrets sealed again' "$T/rekey.err" && break
		sleep 0.02
	done
	kill -9 "$REKEY_PID" 2>/dev/null || true
	wait "$REKEY_PID" || true
	REKEY_PID=
	if [ -e "$STORE/key.new" ]; then
		echo "killed mid-way: $(tail -1 "$T/rekey.err")"
		# staged: until it is done, the old key (or, after the commit, the
		# new one) opens the store; a mount says what to do
		if start_daemon -o ro 2>/dev/null; then
			[ "$(cat "$MNT/ai_gateway/K_3000")" = value-3000 ]
			stop_daemon
		else
			DAEMON_PID=
			log_has 'a rekey was interrupted; run secretsfs rekey'
		fi
		run "$SFS" rekey "$STORE"
		echo "$output"
		[ "$status" -eq 0 ]
		[[ "$output" == *"an earlier rekey was interrupted"* ]]
	fi
	[ ! -e "$STORE/key.new" ]
	start_daemon
	[ "$(ls "$MNT/ai_gateway" | wc -l)" = 3000 ]
	for i in 1 17 999 1500 2999 3000; do
		[ "$(cat "$MNT/ai_gateway/K_$i")" = "value-$i" ]
	done
	! grep -q 'failed authentication' "$LOG"
	stop_daemon
	run timeout 10 "$SFS" "$STORE" "$MNT" -f -o key="$T/old.key"
	[ "$status" -ne 0 ]
	[[ "$output" == *"wrong key"* ]]
}
