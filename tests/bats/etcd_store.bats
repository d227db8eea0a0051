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

teardown() { etcd_hosts_teardown; }

# no_quorum: member 3, the one left, refuses a linearizable read (it may
# still think it has a leader for a moment after the others died)
no_quorum() {
	! etcdctl --endpoints "$(etcd_url 3)" --dial-timeout 1s --command-timeout 1s \
		get /fleet/head >/dev/null 2>&1
}

# hosts_split: mounts A talking to members 1 and 2 only, B to member 3
# only (so that killing member 3 cuts B off while A goes on)
hosts_split() {
	local u1 u2 u3
	u1=$(etcd_url 1) u2=$(etcd_url 2) u3=$(etcd_url 3)
	SRC="etcd://${u1#http://},${u2#http://}/fleet" host a
	SRC="etcd://${u3#http://}/fleet" host b
}

# host NAME: mounts the store on $T/NAME (etcd_helper.bash)
host() { etcd_host "$1"; }

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
	printf 'sk-fleet-second-91aa' >"$T/a/ai_agent/.FLEET_KEY.new"
	mv "$T/a/ai_agent/.FLEET_KEY.new" "$T/a/ai_agent/FLEET_KEY"
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

@test "etcd store: a reload loop on B sees each rotation made on A exactly once" {
	"$SFS" init "$SRC" -o "key=$KEY" >/dev/null
	host a
	host b
	# watching before the name exists: its creation on A is B's first
	# event (the echo comes a moment after B shows the name)
	start_watch "$T/b/ai_gateway"
	printf 'v0' >"$T/a/ai_gateway/ROTATED"
	eventually expect_value "$T/b/ai_gateway/ROTATED" 'v0'
	eventually test "$(grep -c ' ROTATED$' "$T/events")" -eq 1
	for i in 1 2 3 4 5 6 7 8; do
		printf 'v%s' "$i" >"$T/a/ai_gateway/.ROTATED.new"
		mv "$T/a/ai_gateway/.ROTATED.new" "$T/a/ai_gateway/ROTATED"
		# B's event for rotation i before rotation i + 1 (inotify merges
		# identical events that are not read yet)
		eventually test "$(grep -c ' ROTATED$' "$T/events")" -eq $((i + 1)) ||
			{ cat "$T/events" "$T/log.b" >&2; false; }
		expect_value "$T/b/ai_gateway/ROTATED" "v$i"
	done
	# a name new on A is told as a local create would be
	printf 'n' >"$T/a/ai_gateway/NEW_ONE"
	eventually grep -q ' NEW_ONE$' "$T/events"
	# B's own reads make no event; B's own write makes its one local event
	cat "$T/b/ai_gateway/ROTATED" >/dev/null
	printf 'v9' >"$T/b/ai_gateway/ROTATED"
	sleep 0.5 # time for an echo of B's own change, which must not come
	stop_watch
	eq "$(grep -c ' ROTATED$' "$T/events")" 10
	eq "$(grep -c ' NEW_ONE$' "$T/events")" 1
	grep -v ' ROTATED$\| NEW_ONE$' "$T/events" && return 1
	# the echo's opens are neither reads nor writes: no audit line for them
	sync "$T/b" # the audit lines still batched
	eq "$(grep -c 'op=write id=ROTATED' "$T/log.b")" 1
	run grep -c 'op=open-write' "$T/log.b"
	eq "$output" 0
	unhost a
	unhost b
}

@test "etcd store: two hosts updating one secret in place: no lost update; the loser's close reports it" {
	"$SFS" init "$SRC" -o "key=$KEY" >/dev/null
	host a
	host b
	printf '%08d' 0 >"$T/a/ai_agent/COUNTER"
	eventually expect_value "$T/b/ai_agent/COUNTER" '00000000'
	# read, add one, write back in place through one descriptor (no
	# truncate: the write is based on the version read)
	cat >"$T/inc.py" <<'PY'
import os, sys
ok = lost = 0
for _ in range(int(sys.argv[2])):
    try:
        fd = os.open(sys.argv[1], os.O_RDWR)
        n = int(os.read(fd, 64))
        os.pwrite(fd, b"%08d" % (n + 1), 0)
        os.close(fd)
        ok += 1
    except OSError as e:
        if e.errno != 5:
            raise
        lost += 1
print(ok, lost)
PY
	python3 "$T/inc.py" "$T/a/ai_agent/COUNTER" 40 >"$T/out.a" &
	pa=$!
	python3 "$T/inc.py" "$T/b/ai_agent/COUNTER" 40 >"$T/out.b" &
	pb=$!
	wait $pa
	wait $pb
	read -r oka losta <"$T/out.a"
	read -r okb lostb <"$T/out.b"
	echo "A: $oka stored, $losta refused; B: $okb stored, $lostb refused" >&3
	# every acknowledged increment is in the count: none was lost
	want=$(printf '%08d' $((oka + okb)))
	eventually expect_value "$T/a/ai_agent/COUNTER" "$want"
	eventually expect_value "$T/b/ai_agent/COUNTER" "$want"
	eq "$(sfs_version "$T/a/ai_agent/COUNTER")" $((1 + oka + okb))
	# refusals were said, with what to do
	if [ $((losta + lostb)) -gt 0 ]; then
		grep -q 'COUNTER: write not stored: the secret changed since this file was opened' "$T"/log.*
	fi
	unhost a
	unhost b
}

@test "etcd store: quorum lost: B serves values stale (logged, audited), refuses writes with EIO and keeps the value; then converges" {
	"$SFS" init "$SRC" -o "key=$KEY" >/dev/null
	host a
	host b
	printf 'sk-before-outage' >"$T/a/ai_gateway/OUTAGE_KEY"
	eventually expect_value "$T/b/ai_gateway/OUTAGE_KEY" 'sk-before-outage'
	# one member down: nothing fails
	etcd_kill 1
	printf 'sk-one-member-down' >"$T/a/ai_gateway/OUTAGE_KEY"
	eventually expect_value "$T/b/ai_gateway/OUTAGE_KEY" 'sk-one-member-down'
	# two down: no quorum.  Once B's watch has ended (etcd ends it a few
	# seconds later: until then B's replica is as current as B can know),
	# B's reads are stale
	etcd_kill 2
	eventually no_quorum
	eventually sh -c "cat '$T/b/ai_gateway/OUTAGE_KEY' >/dev/null && grep -q 'OUTAGE_KEY: etcd cannot be reached: version 2 served from the local copy' '$T/log.b'"
	expect_value "$T/b/ai_gateway/OUTAGE_KEY" 'sk-one-member-down'
	sync "$T/b" # the audit lines still batched
	grep -q 'op=read id=OUTAGE_KEY .*result=ok .* stale=yes' "$T/log.b"
	# metadata is served from the inode table
	ls -l "$T/b/ai_gateway/OUTAGE_KEY"
	getfattr -n secretsfs.version "$T/b/ai_gateway/OUTAGE_KEY"
	# a write fails with EIO, whole: the old value stays
	# refused at open, so that even a shell's redirection shows it
	run sh -c "printf 'sk-during-outage' >'$T/b/ai_gateway/OUTAGE_KEY'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Input/output error"* ]]
	grep -q 'etcd cannot be reached: changes are refused until it is back' "$T/log.b"
	# a new name too, and a rotation by mv
	run sh -c "printf 'x' >'$T/b/ai_gateway/NEW_DURING_OUTAGE'"
	[ "$status" -ne 0 ]
	[ ! -e "$T/b/ai_gateway/NEW_DURING_OUTAGE" ]
	printf 'sk-during-outage' >"$T/b/ai_gateway/.OUTAGE_KEY.new"
	run mv "$T/b/ai_gateway/.OUTAGE_KEY.new" "$T/b/ai_gateway/OUTAGE_KEY"
	[ "$status" -ne 0 ]
	rm -f "$T/b/ai_gateway/.OUTAGE_KEY.new"
	expect_value "$T/b/ai_gateway/OUTAGE_KEY" 'sk-one-member-down'
	etcd_restart 1
	etcd_restart 2
	# writes work again, both ways
	eventually sh -c "printf 'sk-after-outage' >'$T/a/ai_gateway/OUTAGE_KEY'"
	eventually expect_value "$T/b/ai_gateway/OUTAGE_KEY" 'sk-after-outage'
	printf 'sk-from-b' >"$T/b/ai_gateway/OUTAGE_KEY"
	eventually expect_value "$T/a/ai_gateway/OUTAGE_KEY" 'sk-from-b'
	unhost a
	unhost b
}

@test "etcd store: -o stale=0 serves nothing while etcd is away; a bad duration is refused" {
	"$SFS" init "$SRC" -o "key=$KEY" >/dev/null
	run "$SFS" "$SRC" "$T/b" -o "key=$KEY,attrs=$T/attrs.b,stale=soon"
	[ "$status" -ne 0 ]
	[[ "$output" == *"stale must be a duration"* ]]
	host a
	"$SFS" "$SRC" "$T/b" -f -o "key=$KEY,attrs=$T/attrs.b,stale=0" 2>>"$T/log.b" &
	PIDS+=($!)
	PID_b=$!
	eventually test -d "$T/b/ai_agent"
	printf 'sk-no-stale' >"$T/a/ai_agent/K"
	eventually expect_value "$T/b/ai_agent/K" 'sk-no-stale'
	etcd_kill 1
	etcd_kill 2
	eventually no_quorum
	# once B's watch has ended, B refuses to read
	eventually sh -c "! cat '$T/b/ai_agent/K'"
	grep -q 'K: etcd cannot be reached and the local copy is' "$T/log.b"
	etcd_restart 1
	etcd_restart 2
	eventually expect_value "$T/b/ai_agent/K" 'sk-no-stale'
	unhost a
	unhost b
}

@test "etcd store: B cut off while A changes and compacts: B converges when it is back" {
	"$SFS" init "$SRC" -o "key=$KEY" >/dev/null
	hosts_split
	printf 'one' >"$T/a/ai_agent/STAYS"
	printf 'two' >"$T/a/ai_agent/GOES"
	eventually expect_value "$T/b/ai_agent/GOES" 'two'
	etcd_kill 3
	eventually grep -q 'the watch on /fleet/ ended' "$T/log.b"
	printf 'one-rotated' >"$T/a/ai_agent/STAYS"
	rm "$T/a/ai_agent/GOES"
	printf 'three' >"$T/a/mcp_server/NEW_WHILE_AWAY"
	rev=$(etcd_ctl endpoint status --endpoints "$(etcd_url 1)" -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
	etcd_ctl compact "$rev" --endpoints "$(etcd_url 1)" >/dev/null
	etcd_restart 3
	eventually expect_value "$T/b/ai_agent/STAYS" 'one-rotated'
	eventually test ! -e "$T/b/ai_agent/GOES"
	expect_value "$T/b/mcp_server/NEW_WHILE_AWAY" 'three'
	grep -q 'listed again at revision' "$T/log.b"
	unhost a
	unhost b
}

@test "etcd store: B cut off while A rotates one secret many times: B catches up without a false alarm" {
	"$SFS" init "$SRC" -o "key=$KEY" >/dev/null
	hosts_split
	printf 'r0' >"$T/a/ai_agent/ROTATES"
	eventually expect_value "$T/b/ai_agent/ROTATES" 'r0'
	etcd_kill 3
	eventually grep -q 'the watch on /fleet/ ended' "$T/log.b"
	# many revisions of the same keys: B's watch gets them in one message
	for i in 1 2 3 4 5 6; do
		printf 'r%s' "$i" >"$T/a/ai_agent/.ROTATES.new"
		mv "$T/a/ai_agent/.ROTATES.new" "$T/a/ai_agent/ROTATES"
	done
	rm "$T/a/ai_agent/ROTATES"
	printf 'again' >"$T/a/ai_agent/ROTATES"
	etcd_restart 3
	eventually expect_value "$T/b/ai_agent/ROTATES" 'again'
	run grep -c 'do not match its authenticated digest' "$T/log.b"
	[ "$output" = 0 ]
	# and it goes on following
	printf 'after' >"$T/a/ai_agent/ROTATES"
	eventually expect_value "$T/b/ai_agent/ROTATES" 'after'
	unhost a
	unhost b
}

@test "etcd store: a host that starts while etcd is down mounts from its sealed cache, stale, and converges" {
	"$SFS" init "$SRC" -o "key=$KEY" >/dev/null
	host a
	host b
	printf 'sk-cached-value-77' >"$T/a/ai_gateway/CACHED"
	setfattr -n user.tag.managed-by -v aigateway "$T/a/ai_gateway/CACHED"
	eventually expect_value "$T/b/ai_gateway/CACHED" 'sk-cached-value-77'
	unhost b
	# the cache: B's, 0600, sealed (no plaintext in it)
	[ -f "$T/attrs.b.etcd-cache" ]
	[ "$(stat -c %a "$T/attrs.b.etcd-cache")" = 600 ]
	run grep -c 'sk-cached-value' "$T/attrs.b.etcd-cache"
	[ "$output" = 0 ]
	grep -q 'CACHED' "$T/attrs.b.etcd-cache"
	# every member down: B starts from its cache
	etcd_kill 1
	etcd_kill 2
	etcd_kill 3
	host b
	grep -q 'etcd cannot be reached .*: starting from the sealed cache' "$T/log.b"
	expect_value "$T/b/ai_gateway/CACHED" 'sk-cached-value-77'
	getfattr -d "$T/b/ai_gateway/CACHED" | grep -q 'user.tag.managed-by="aigateway"'
	grep -q 'CACHED: etcd cannot be reached: version 1 served from the local copy' "$T/log.b"
	run sh -c "printf 'x' >'$T/b/ai_gateway/CACHED'"
	[ "$status" -ne 0 ]
	expect_value "$T/b/ai_gateway/CACHED" 'sk-cached-value-77'
	# a host with no cache does not start, and says why
	mkdir -p "$T/c"
	run "$SFS" "$SRC" "$T/c" -f -o "key=$KEY,attrs=$T/attrs.c"
	[ "$status" -ne 0 ]
	[[ "$output" == *"no sealed cache at $T/attrs.c.etcd-cache"* ]]
	# a cache another user may read is refused
	cp "$T/attrs.b.etcd-cache" "$T/attrs.c.etcd-cache"
	chmod 0644 "$T/attrs.c.etcd-cache"
	run "$SFS" "$SRC" "$T/c" -f -o "key=$KEY,attrs=$T/attrs.c"
	[ "$status" -ne 0 ]
	[[ "$output" == *"the sealed cache is refused"* ]]
	# etcd back (all at once: one alone has no quorum to be healthy with):
	# B converges and writes again
	etcd_restart 1 &
	r1=$!
	etcd_restart 2 &
	r2=$!
	etcd_restart 3
	wait $r1
	wait $r2
	eventually sh -c "printf 'sk-after' >'$T/a/ai_gateway/CACHED'"
	eventually expect_value "$T/b/ai_gateway/CACHED" 'sk-after'
	printf 'sk-from-b' >"$T/b/ai_gateway/CACHED"
	eventually expect_value "$T/a/ai_gateway/CACHED" 'sk-from-b'
	unhost a
	unhost b
}

@test "etcd store: rename --exchange swaps two values in one transaction, seen on B" {
	"$SFS" init "$SRC" -o "key=$KEY" >/dev/null
	host a
	host b
	printf 'value-of-x' >"$T/a/ai_agent/X_KEY"
	printf 'value-of-y' >"$T/a/ai_agent/Y_KEY"
	eventually expect_value "$T/b/ai_agent/Y_KEY" 'value-of-y'
	run rename2 "$T/a/ai_agent/X_KEY" "$T/a/ai_agent/Y_KEY" 2
	[ "$output" = ok ]
	expect_value "$T/a/ai_agent/X_KEY" 'value-of-y'
	expect_value "$T/a/ai_agent/Y_KEY" 'value-of-x'
	eventually expect_value "$T/b/ai_agent/X_KEY" 'value-of-y'
	expect_value "$T/b/ai_agent/Y_KEY" 'value-of-x'
	[ "$(sfs_version "$T/b/ai_agent/X_KEY")" = 2 ]
	[ "$(sfs_version "$T/b/ai_agent/Y_KEY")" = 2 ]
	unhost a
	unhost b
}

@test "etcd store: a key written into etcd without the fleet key is not shown by a running mount" {
	"$SFS" init "$SRC" -o "key=$KEY" >/dev/null
	host a
	host b
	printf 'sk-only-agent' >"$T/a/ai_agent/ISOLATED"
	eventually expect_value "$T/b/ai_agent/ISOLATED" 'sk-only-agent'
	# delete its metadata key in etcd (each remaining key is authentic:
	# only the digest in the head tells)
	etcd_ctl del /fleet/s/ISOLATED >/dev/null
	eventually grep -q 'do not match its authenticated digest: changed outside secretsfs' "$T/log.b"
	[ -e "$T/b/ai_agent/ISOLATED" ]
	run grep -q 'ISOLATED: deleted by another client' "$T/log.b"
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

# The README's "A fleet" walkthrough, run as written (from the checkout,
# with build/fs/secretsfs), one line at a time with a pause between them as
# a person would type; its output must show what its comments promise.
@test "etcd store: the README's fleet walkthrough runs as written" {
	[ -x "$BATS_TEST_DIRNAME/../../build/fs/secretsfs" ] || skip "no build/fs/secretsfs (the walkthrough uses it)"
	# the README's commands run build/fs/secretsfs whatever $SFS is: under
	# the ASan stage this would be the normal run's test again
	skip_if_sanitized "the walkthrough runs build/fs/secretsfs, not this build"
	awk '/^## A fleet/ { on = 1; next } on && /^## / { exit }
	     on && /^```/ { inblock = !inblock; next } on && inblock' \
		"$BATS_TEST_DIRNAME/../../README.md" >"$T/walk.sh"
	[ "$(wc -l <"$T/walk.sh")" -ge 10 ]
	cleanup_walk() {
		for m in /tmp/hostA /tmp/hostB; do
			if grep -qF " $m fuse.secretsfs " /proc/mounts; then fusermount3 -u "$m"; fi
		done
		"$BATS_TEST_DIRNAME/../tools/etcd-cluster" stop-all /tmp/fleet-etcd >/dev/null 2>&1 || true
		rm -rf /tmp/fleet-etcd /tmp/fleet.key /tmp/attrs.A /tmp/attrs.B /tmp/attrs.A.etcd-cache /tmp/attrs.B.etcd-cache
	}
	cleanup_walk
	{
		while IFS= read -r line; do
			printf '%s\n' "$line"
			echo 'sleep 0.5'
		done <"$T/walk.sh"
		echo 'sleep 1; kill $(jobs -p) 2>/dev/null; wait'
	} >"$T/walk-paced.sh"
	cd "$BATS_TEST_DIRNAME/../.."
	run bash "$T/walk-paced.sh"
	out=$output
	cleanup_walk
	echo "$out" >&3
	[[ "$out" == *"created an empty store"* ]]
	[[ "$out" == *"sk-first"* ]]
	[[ "$out" == *"OPENAI_API_KEY changed"* ]]
	[[ "$out" == *"sk-second"* ]]
	[[ "$out" == *"Input/output error"* ]]
	[[ "$out" == *"sk-third" ]]
}
