#!/usr/bin/env bats
# The etcd store (backend/etcd.c) through two mounts: a store made with
# `secretsfs init etcd://…/PREFIX -o key=FILE` on a 3-member test cluster,
# mounted by two daemons on two mountpoints (hosts A and B).  Each mount
# watches the prefix: what A changes (values, names, scopes, labels,
# deletions) B shows without a remount, and B's values come from its local
# replica of the (sealed) keys.  etcd never holds a plaintext byte.
load helper
load etcd_helper

setup() {
	etcd_start
	T=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-etcdstore.XXXXXX")
	KEY=$T/fleet.key
	SRC="etcd://${ETCD_ENDPOINTS//http:\/\//}/fleet"
	mkdir -p "$T/a" "$T/b"
	PIDS=()
}

teardown() {
	local m
	for m in "$T/a" "$T/b"; do
		grep -qF " $m fuse.secretsfs " /proc/mounts && fusermount3 -u "$m" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	local rc=0
	if grep -qE 'AddressSanitizer|runtime error|LeakSanitizer' "$T"/log.* 2>/dev/null; then
		cat "$T"/log.* >&2
		rc=1
	fi
	rm -rf "$T"
	etcd_teardown
	return $rc
}

# host NAME: mounts the store on $T/NAME (log $T/log.NAME), waits until it answers
host() {
	local m=$T/$1
	"$SFS" "$SRC" "$m" -f -o "key=$KEY,attrs=$T/attrs.$1" 2>>"$T/log.$1" &
	PIDS+=($!)
	eval "PID_$1=$!"
	for _ in $(seq 1 400); do
		grep -qF " $m fuse.secretsfs " /proc/mounts && [ -d "$m/ai_agent" ] && return 0
		kill -0 "$!" 2>/dev/null || { cat "$T/log.$1" >&2; return 1; }
		sleep 0.05
	done
	cat "$T/log.$1" >&2
	return 1
}

# unhost NAME: unmounts it; the daemon exits 0
unhost() {
	local pid
	eval "pid=\$PID_$1"
	fusermount3 -u "$T/$1"
	wait "$pid"
}

@test "etcd store: init, two mounts, a value written on A is read on B; mv rotates; no plaintext in etcd" {
	run "$SFS" init "$SRC" -o "key=$KEY"
	[ "$status" -eq 0 ]
	[[ "$output" == *"created an empty store"* ]]
	[ -f "$KEY" ]
	[ "$(stat -c %a "$KEY")" = 400 ]
	# a second init on the same prefix is refused
	run "$SFS" init "$SRC" -o "key=$KEY"
	[ "$status" -ne 0 ]
	[[ "$output" == *"already holds a store"* ]]

	host a
	host b
	printf 'sk-fleet-first-4d2c' >"$T/a/ai_agent/FLEET_KEY"
	expect_value "$T/a/ai_agent/FLEET_KEY" 'sk-fleet-first-4d2c'
	# B learns of it from its watch, without a remount
	eventually expect_value "$T/b/ai_agent/FLEET_KEY" 'sk-fleet-first-4d2c'

	# rotate on A with mv of a scratch file onto the secret
	printf 'sk-fleet-second-91aa' >"$T/a/ai_agent/FLEET_KEY.new"
	mv "$T/a/ai_agent/FLEET_KEY.new" "$T/a/ai_agent/FLEET_KEY"
	expect_value "$T/a/ai_agent/FLEET_KEY" 'sk-fleet-second-91aa'
	[ "$(sfs_version "$T/a/ai_agent/FLEET_KEY")" = 2 ]
	eventually expect_value "$T/b/ai_agent/FLEET_KEY" 'sk-fleet-second-91aa'
	[ "$(sfs_version "$T/b/ai_agent/FLEET_KEY")" = 2 ]

	# a write on B reaches A, and B reads what it wrote at once
	printf 'sk-fleet-third-from-b' >"$T/b/ai_agent/FLEET_KEY"
	expect_value "$T/b/ai_agent/FLEET_KEY" 'sk-fleet-third-from-b'
	eventually expect_value "$T/a/ai_agent/FLEET_KEY" 'sk-fleet-third-from-b'
	# a remount lists what the watch showed
	unhost b
	host b
	expect_value "$T/b/ai_agent/FLEET_KEY" 'sk-fleet-third-from-b'
	[ "$(sfs_version "$T/b/ai_agent/FLEET_KEY")" = 3 ]

	# etcd holds no plaintext: keys, values and etcdctl's view
	out=$(etcd_ctl get --prefix /fleet/)
	[[ "$out" == *"/fleet/s/FLEET_KEY"* ]]
	[[ "$out" == *"/fleet/head"* ]]
	[[ "$out" != *"sk-fleet"* ]]
	run grep -rqa 'sk-fleet' "$ETCD_DIR"/m*/data
	[ "$status" -ne 0 ]

	unhost a
	unhost b
}

@test "etcd store: names, scopes, labels and deletions made on A appear on B without a remount" {
	"$SFS" init "$SRC" -o "key=$KEY" >/dev/null
	host a
	host b
	# B has looked the names up before: its kernel holds negative entries
	[ ! -e "$T/b/ai_gateway/NEW_KEY" ]
	[ ! -e "$T/b/mcp_server/NEW_KEY" ]
	printf 'sk-new-1' >"$T/a/ai_gateway/NEW_KEY"
	eventually test -e "$T/b/ai_gateway/NEW_KEY"
	expect_value "$T/b/ai_gateway/NEW_KEY" 'sk-new-1'
	[ "$(ls "$T/b/ai_gateway")" = NEW_KEY ]

	# a label
	setfattr -n user.tag.managed-by -v aigateway "$T/a/ai_gateway/NEW_KEY"
	eventually sh -c "getfattr -d '$T/b/ai_gateway/NEW_KEY' 2>/dev/null | grep -q 'user.tag.managed-by=\"aigateway\"'"
	# a second scope
	ln "$T/a/ai_gateway/NEW_KEY" "$T/a/mcp_server/NEW_KEY"
	eventually test -e "$T/b/mcp_server/NEW_KEY"
	expect_value "$T/b/mcp_server/NEW_KEY" 'sk-new-1'
	[ "$(stat -c %h "$T/b/ai_gateway/NEW_KEY")" = 2 ]
	# the first scope taken away
	rm "$T/a/ai_gateway/NEW_KEY"
	eventually test ! -e "$T/b/ai_gateway/NEW_KEY"
	[ -e "$T/b/mcp_server/NEW_KEY" ]
	# rename to another ID
	mv "$T/a/mcp_server/NEW_KEY" "$T/a/mcp_server/RENAMED_KEY"
	eventually test -e "$T/b/mcp_server/RENAMED_KEY"
	[ ! -e "$T/b/mcp_server/NEW_KEY" ]
	expect_value "$T/b/mcp_server/RENAMED_KEY" 'sk-new-1'
	# deleted
	rm "$T/a/mcp_server/RENAMED_KEY"
	eventually test ! -e "$T/b/mcp_server/RENAMED_KEY"
	[ -z "$(ls "$T/b/mcp_server")" ]
	# deleted and created again on A: a new inode on B, the new value
	printf 'sk-again' >"$T/a/ai_agent/AGAIN"
	eventually test -e "$T/b/ai_agent/AGAIN"
	ino=$(stat -c %i "$T/b/ai_agent/AGAIN")
	rm "$T/a/ai_agent/AGAIN"
	printf 'sk-again-2' >"$T/a/ai_agent/AGAIN"
	eventually sh -c "[ \"\$(stat -c %i '$T/b/ai_agent/AGAIN' 2>/dev/null)\" != $ino ] && [ -e '$T/b/ai_agent/AGAIN' ]"
	expect_value "$T/b/ai_agent/AGAIN" 'sk-again-2'
	grep -q "AGAIN: created by another client" "$T/log.b"
	unhost a
	unhost b
}

@test "etcd store: a wrong key or no key is refused with one clear line, nothing mounted" {
	"$SFS" init "$SRC" -o "key=$KEY" >/dev/null
	head -c 32 /dev/urandom >"$T/other.key"
	chmod 0400 "$T/other.key"
	run "$SFS" "$SRC" "$T/a" -o "key=$T/other.key,attrs=$T/attrs.a"
	[ "$status" -ne 0 ]
	[[ "$output" == *"wrong key"* ]]
	run "$SFS" "$SRC" "$T/a" -o "attrs=$T/attrs.a"
	[ "$status" -ne 0 ]
	[[ "$output" == *"needs its key"* ]]
	! grep -qF " $T/a fuse.secretsfs " /proc/mounts
	# a prefix with no store
	run "$SFS" "${SRC%/fleet}/nothing" "$T/a" -o "key=$KEY,attrs=$T/attrs.a"
	[ "$status" -ne 0 ]
	[[ "$output" == *"not a secretsfs store"* ]]
}
