#!/usr/bin/env bats
# Undo for rm (issue 16 item 5): a deleted secret is kept, sealed, with its
# versions, labels and scopes, for -o keep_deleted, in /.deleted (root's
# only, read-only); `mv /.deleted/ID SCOPE/ID` restores it as a new
# incarnation; `rm /.deleted/ID` purges it; what is older than the grace
# period is purged on a timer and at mount.
load helper

setup() { :; }
teardown() { unmount_store; }

sql() { sqlite3 "$STORE/store.db" "$@"; }

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

@test "rm -r of a scope, then mv back from /.deleted: values, versions, labels and scopes return, as a new inode" {
	mount_store
	printf 'one' >"$MNT/mcp_server/ONLY_MCP"
	printf 'two' >"$MNT/mcp_server/ONLY_MCP"
	setfattr -n user.tag.managed-by -v aigateway "$MNT/mcp_server/ONLY_MCP"
	printf 'both' >"$MNT/mcp_server/SHARED"
	ln "$MNT/mcp_server/SHARED" "$MNT/ai_gateway/SHARED"
	printf 'two scopes' >"$MNT/mcp_server/TWO_SCOPES"
	ln "$MNT/mcp_server/TWO_SCOPES" "$MNT/ai_agent/TWO_SCOPES"
	ino=$(stat -c %i "$MNT/mcp_server/ONLY_MCP")
	run rm -r "$MNT/mcp_server"
	# (rmdir of the scope itself is refused: the tree is fixed)
	[ -z "$(ls "$MNT/mcp_server")" ]
	# SHARED and TWO_SCOPES only lost a scope; ONLY_MCP was deleted
	[ "$(cat "$MNT/ai_gateway/SHARED")" = both ]
	[ "$(ls "$MNT/.deleted")" = ONLY_MCP ]
	[ "$(cat "$MNT/.deleted/ONLY_MCP")" = two ]
	[ "$(stat -c '%a %U %s' "$MNT/.deleted/ONLY_MCP")" = "400 root 3" ]
	run sh -c "printf x >'$MNT/.deleted/ONLY_MCP'"
	[ "$status" -ne 0 ]

	mv "$MNT/.deleted/ONLY_MCP" "$MNT/mcp_server/ONLY_MCP"
	[ "$(cat "$MNT/mcp_server/ONLY_MCP")" = two ]
	[ "$(cat "$MNT/.versions/ONLY_MCP/1")" = one ]
	[ "$(getfattr --only-values -n user.tag.managed-by "$MNT/mcp_server/ONLY_MCP")" = aigateway ]
	[ "$(getfattr --only-values -n secretsfs.version "$MNT/mcp_server/ONLY_MCP")" = 2 ]
	[ "$(stat -c %h "$MNT/mcp_server/ONLY_MCP")" = 1 ]
	[ "$(stat -c %i "$MNT/mcp_server/ONLY_MCP")" != "$ino" ]
	[ -z "$(ls "$MNT/.deleted")" ]
	log_has 'ONLY_MCP: restored from /.deleted with its 2 version'
	log_has 'op=restore id=ONLY_MCP .*result=ok'
	# a new incarnation that takes writes, and survives a remount
	printf 'three' >"$MNT/mcp_server/ONLY_MCP"
	remount
	[ "$(cat "$MNT/mcp_server/ONLY_MCP")" = three ]
	[ "$(getfattr --only-values -n user.tag.managed-by "$MNT/mcp_server/ONLY_MCP")" = aigateway ]
}

@test "a secret of several scopes deleted and restored into one comes back in all of them" {
	mount_store
	printf 'v' >"$MNT/ai_gateway/MULTI"
	ln "$MNT/ai_gateway/MULTI" "$MNT/redpanda_connect/MULTI"
	rm "$MNT/ai_gateway/MULTI" "$MNT/redpanda_connect/MULTI"
	[ -f "$MNT/.deleted/MULTI" ]
	# only under its own ID
	run mv "$MNT/.deleted/MULTI" "$MNT/ai_gateway/OTHER_NAME"
	[ "$status" -ne 0 ]
	log_has 'MULTI: a deleted secret is restored under its own ID'
	# only onto a free name: here one being created (open, no value yet)
	exec 7>"$MNT/ai_agent/MULTI"
	run mv "$MNT/.deleted/MULTI" "$MNT/ai_gateway/MULTI"
	exec 7>&-
	[ "$status" -ne 0 ]
	log_has 'MULTI: not restored: a secret MULTI exists'
	mv "$MNT/.deleted/MULTI" "$MNT/ai_gateway/MULTI"
	[ "$(cat "$MNT/ai_gateway/MULTI")" = v ]
	[ "$(cat "$MNT/redpanda_connect/MULTI")" = v ]
	[ "$(stat -c %h "$MNT/ai_gateway/MULTI")" = 2 ]
	[ ! -e "$MNT/ai_agent/MULTI" ]
	# one kept per ID: a create of the ID purges the kept one
	rm "$MNT/ai_gateway/MULTI" "$MNT/redpanda_connect/MULTI"
	[ -f "$MNT/.deleted/MULTI" ]
	printf 'new' >"$MNT/ai_agent/MULTI"
	[ ! -e "$MNT/.deleted/MULTI" ]
	log_has 'MULTI: the deleted secret kept for undo is purged: the ID is created again'
}

@test "rm inside /.deleted purges at once: nothing of it stays in store.db" {
	mount_store
	printf 'purge-me' >"$MNT/ai_gateway/GONE_NOW"
	rm "$MNT/ai_gateway/GONE_NOW"
	[ -f "$MNT/.deleted/GONE_NOW" ]
	stop_daemon
	[ "$(sql "SELECT count(*) FROM secrets WHERE id = 'GONE_NOW'")" = 1 ]
	start_daemon
	rm "$MNT/.deleted/GONE_NOW"
	[ ! -e "$MNT/.deleted/GONE_NOW" ]
	run mv "$MNT/.deleted/GONE_NOW" "$MNT/ai_gateway/GONE_NOW"
	[ "$status" -ne 0 ]
	log_has 'GONE_NOW: deleted secret purged'
	stop_daemon
	[ "$(sql "SELECT count(*) FROM secrets WHERE id = 'GONE_NOW'")" = 0 ]
	[ "$(sql "SELECT count(*) FROM versions WHERE id = 'GONE_NOW'")" = 0 ]
}

@test "purged after -o keep_deleted: at mount, and on the timer while mounted" {
	new_store
	start_daemon -o keep_deleted=2s
	printf 'a' >"$MNT/ai_gateway/AT_MOUNT"
	rm "$MNT/ai_gateway/AT_MOUNT"
	[ -f "$MNT/.deleted/AT_MOUNT" ]
	stop_daemon
	sleep 2.2
	start_daemon -o keep_deleted=2s
	# purged before the mount served anything
	[ ! -e "$MNT/.deleted/AT_MOUNT" ]
	log_has '1 deleted secret\(s\) kept longer than -o keep_deleted purged'
	[ "$(sql "SELECT count(*) FROM secrets WHERE id = 'AT_MOUNT'")" = 0 ]
	printf 't' >"$MNT/ai_gateway/ON_TIMER"
	rm "$MNT/ai_gateway/ON_TIMER"
	[ -f "$MNT/.deleted/ON_TIMER" ]
	# the timer looks every second; the grace is 2 s
	for _ in $(seq 1 100); do
		[ -e "$MNT/.deleted/ON_TIMER" ] || break
		sleep 0.1
	done
	[ ! -e "$MNT/.deleted/ON_TIMER" ]
}

@test "-o keep_deleted=0: rm purges at once and there is no /.deleted; a bad duration is refused" {
	new_store
	start_daemon -o keep_deleted=0
	printf 'x' >"$MNT/ai_gateway/NOT_KEPT"
	rm "$MNT/ai_gateway/NOT_KEPT"
	! ls -a "$MNT" | grep -q '^\.deleted$'
	[ ! -e "$MNT/.deleted" ]
	stop_daemon
	[ "$(sql "SELECT count(*) FROM secrets WHERE id = 'NOT_KEPT'")" = 0 ]
	run "$SFS" "$STORE" "$MNT" -f -o keep_deleted=7weeks
	[ "$status" -ne 0 ]
	[[ "$output" == *"keep_deleted must be a duration"* ]]
}

@test "a user other than root neither sees nor enters /.deleted" {
	mount_store -o allow_other,dir_mode=0755,file_mode=0644
	chmod 0755 "$T"
	printf 'secret' >"$MNT/ai_gateway/HIDDEN"
	rm "$MNT/ai_gateway/HIDDEN"
	ls -a "$MNT" | grep -q '^\.deleted$'
	run as_nobody ls -a "$MNT"
	[ "$status" -eq 0 ]
	[[ "$output" != *".deleted"* ]]
	run as_nobody cat "$MNT/.deleted/HIDDEN"
	[ "$status" -ne 0 ]
	run as_nobody ls "$MNT/.deleted"
	[ "$status" -ne 0 ]
	[ -f "$MNT/.deleted/HIDDEN" ]
}

@test "a kept secret changed with sqlite3 (made live again, or kept longer) fails authentication" {
	mount_store
	printf 'r' >"$MNT/mcp_server/RESURRECT"
	printf 'l' >"$MNT/mcp_server/LONGER"
	printf 'ok' >"$MNT/mcp_server/UNTOUCHED"
	rm "$MNT/mcp_server/RESURRECT" "$MNT/mcp_server/LONGER" "$MNT/mcp_server/UNTOUCHED"
	stop_daemon
	sql "UPDATE secrets SET scopes = scopes >> 16 WHERE id = 'RESURRECT'"
	sql "UPDATE secrets SET mtime_ns = mtime_ns + 86400000000000 WHERE id = 'LONGER'"
	start_daemon
	[ ! -e "$MNT/mcp_server/RESURRECT" ]
	log_has 'RESURRECT: metadata failed authentication'
	[ "$(ls "$MNT/.deleted")" = UNTOUCHED ]
	log_has 'LONGER: metadata failed authentication'
	run mv "$MNT/.deleted/LONGER" "$MNT/mcp_server/LONGER"
	[ "$status" -ne 0 ]
	mv "$MNT/.deleted/UNTOUCHED" "$MNT/mcp_server/UNTOUCHED"
	[ "$(cat "$MNT/mcp_server/UNTOUCHED")" = ok ]
}

@test "-o fast: a deleted secret reads in /.deleted (no opens) and mv restores it" {
	new_store
	start_daemon -o fast
	printf 'fast-value' >"$MNT/ai_gateway/.F.new"
	mv "$MNT/ai_gateway/.F.new" "$MNT/ai_gateway/F"
	rm "$MNT/ai_gateway/F"
	[ "$(cat "$MNT/.deleted/F")" = fast-value ]
	mv "$MNT/.deleted/F" "$MNT/ai_gateway/F"
	[ "$(cat "$MNT/ai_gateway/F")" = fast-value ]
	[ ! -e "$MNT/.deleted/F" ]
}
