#!/usr/bin/env bats
# The etcd store (backend/etcd.c) through two mounts: a store made with
# `secretsfs init etcd://…/PREFIX -o key=FILE` on a 3-member test cluster,
# mounted by two daemons on two mountpoints (hosts A and B).  There is no
# watch yet: names, scopes, labels and deletions made on A reach B once B
# lists the store again, i.e. after a remount (a lookup on B's running
# mount answers from B's inode table: a new name is ENOENT there); the
# value of a secret B already knows is read from etcd at each open, so a
# rotation on A is what B's next cat returns.  etcd never holds a
# plaintext byte.
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
	# no watch yet: B lists the store again when it is mounted again
	unhost b
	host b
	expect_value "$T/b/ai_agent/FLEET_KEY" 'sk-fleet-first-4d2c'

	# rotate on A with mv of a scratch file onto the secret
	printf 'sk-fleet-second-91aa' >"$T/a/ai_agent/FLEET_KEY.new"
	mv "$T/a/ai_agent/FLEET_KEY.new" "$T/a/ai_agent/FLEET_KEY"
	expect_value "$T/a/ai_agent/FLEET_KEY" 'sk-fleet-second-91aa'
	[ "$(sfs_version "$T/a/ai_agent/FLEET_KEY")" = 2 ]
	unhost b
	host b
	expect_value "$T/b/ai_agent/FLEET_KEY" 'sk-fleet-second-91aa'
	[ "$(sfs_version "$T/b/ai_agent/FLEET_KEY")" = 2 ]

	# without a remount: B's next open of a secret it knows reads the
	# current value; a name new on A is not on B until B lists again
	printf 'sk-fleet-rotated-live' >"$T/a/ai_agent/FLEET_KEY.new"
	mv "$T/a/ai_agent/FLEET_KEY.new" "$T/a/ai_agent/FLEET_KEY"
	expect_value "$T/b/ai_agent/FLEET_KEY" 'sk-fleet-rotated-live'
	printf 'other' >"$T/a/ai_agent/OTHER_KEY"
	[ ! -e "$T/b/ai_agent/OTHER_KEY" ]

	# a write on B reaches A (after A lists again)
	printf 'sk-fleet-third-from-b' >"$T/b/ai_agent/FLEET_KEY"
	unhost a
	host a
	expect_value "$T/a/ai_agent/FLEET_KEY" 'sk-fleet-third-from-b'

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
