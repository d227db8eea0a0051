#!/usr/bin/env bats
# Readers against writers on one secret: every read is one whole committed
# version (tests/stress/rotate_stress.py checks each value's length and
# sha256).  STRESS_READS overrides the number of reads (default 20000).
load helper

STRESS=$BATS_TEST_DIRNAME/../stress/rotate_stress.py

setup() {
	mount_store
	G=$MNT/ai_gateway
	M=$MNT/mcp_server
}
teardown() { unmount_store; }

# field NAME: NAME=VALUE from the script's last output line.
field() {
	printf '%s\n' "$output" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# after_stress ROTATIONS V0: the secret is whole, in both scopes, labelled,
# and has exactly one new version per rotation.
after_stress() {
	[ "$(sfs_version "$G/STRESSED")" = $(($2 + $1)) ]
	[ "$(sfs_version "$M/STRESSED")" = $(($2 + $1)) ]
	[ "$(stat -c %h "$G/STRESSED")" = 2 ]
	[ "$(getfattr --absolute-names --only-values -n user.tag.managed-by "$M/STRESSED")" = aigateway ]
	cmp "$G/STRESSED" "$M/STRESSED"
	[ "$(ls -A "$M")" = STRESSED ]
	! grep -E 'secretsfs: error' "$LOG"
	remount
	python3 - "$G/STRESSED" <<'PY'
import hashlib, sys
v = open(sys.argv[1], "rb").read()
n, d, p = v.split(b":", 2)
assert int(n) == len(v) and hashlib.sha256(p).hexdigest().encode() == d, v[:80]
PY
	[ "$(sfs_version "$G/STRESSED")" = $(($2 + $1)) ]
}

# stressed_secret: STRESSED with a first self-checking value, a label, and
# a second scope, so the runs can check both are kept.
stressed_secret() {
	python3 "$STRESS" "$G" STRESSED --init --reads 0 --readers 1 --writers 0
	setfattr -n user.tag.managed-by -v aigateway "$G/STRESSED"
	ln "$G/STRESSED" "$M/STRESSED"
}

@test "2 writers rotating by mv, 4 readers: every read is one whole version" {
	stressed_secret
	v0=$(sfs_version "$G/STRESSED")
	run python3 "$STRESS" "$G" STRESSED --mode mv --readers 4 --writers 2 \
		--reads "${STRESS_READS:-20000}"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(field bad)" = 0 ]
	[ "$(field writer_errors)" = 0 ]
	[ "$(field reads)" -ge "${STRESS_READS:-20000}" ]
	rot=$(field rotations)
	[ "$rot" -gt 0 ]
	# the scratch files were renamed away; none is left
	[ "$(ls -A "$G")" = STRESSED ]
	[ "$(grep -c 'STRESSED: version [0-9]* committed by rename' "$LOG")" = "$rot" ]
	after_stress "$rot" "$v0"
}

@test "2 writers writing in place (O_TRUNC, split writes), 4 readers: every read is one whole version" {
	stressed_secret
	v0=$(sfs_version "$G/STRESSED")
	run python3 "$STRESS" "$G" STRESSED --mode inplace --readers 4 --writers 2 \
		--reads 8000
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(field bad)" = 0 ]
	[ "$(field writer_errors)" = 0 ]
	rot=$(field rotations)
	[ "$rot" -gt 0 ]
	[ "$(ls -A "$G")" = STRESSED ]
	after_stress "$rot" "$v0"
}

# concurrent_writers N: 4 threads rotating by mv, each a secret of its own
# in a scope of its own (ROT_0 in ai_gateway ... ROT_3 in
# redpanda_cluster), and 4 writing a secret of their own in place in
# ai_gateway (PUT_0..PUT_3), N changes each; value K of a secret is
# "rot-I-K" or "put-I-K".  Fails on the first change refused.
concurrent_writers() {
	python3 - "$MNT" "$1" <<'PY'
import os, sys, threading
mnt, n = sys.argv[1], int(sys.argv[2])
scopes = ["ai_gateway", "mcp_server", "ai_agent", "redpanda_cluster"]
errors = []
def rotate(i):
    d = os.path.join(mnt, scopes[i])
    try:
        for k in range(1, n + 1):
            tmp = os.path.join(d, ".ROT_%d.new" % i)
            with open(tmp, "wb") as f:
                f.write(b"rot-%d-%d" % (i, k))
            os.rename(tmp, os.path.join(d, "ROT_%d" % i))
    except OSError as e:
        errors.append("rotate %d: %s" % (i, e))
def put(i):
    p = os.path.join(mnt, "ai_gateway", "PUT_%d" % i)
    try:
        for k in range(1, n + 1):
            with open(p, "wb") as f:
                f.write(b"put-%d-%d" % (i, k))
    except OSError as e:
        errors.append("put %d: %s" % (i, e))
ts = [threading.Thread(target=rotate, args=(i,)) for i in range(4)]
ts += [threading.Thread(target=put, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
if errors:
    sys.exit("\n".join(errors))
PY
}

# every_last N: each secret concurrent_writers made holds its Nth value as
# its Nth version, in its own scope only; no scratch file is left.
every_last() {
	local i scopes=(ai_gateway mcp_server ai_agent redpanda_cluster)
	for i in 0 1 2 3; do
		expect_value "$MNT/${scopes[i]}/ROT_$i" "rot-$i-$1"
		[ "$(sfs_version "$MNT/${scopes[i]}/ROT_$i")" = "$1" ]
		[ "$(stat -c %h "$MNT/${scopes[i]}/ROT_$i")" = 1 ]
		expect_value "$G/PUT_$i" "put-$i-$1"
		[ "$(sfs_version "$G/PUT_$i")" = "$1" ]
	done
	[ -z "$(ls -A "$MNT"/*/ | grep '^\.' || true)" ]
}

@test "8 writers at once, each on its own secret (4 by mv in 4 scopes, 4 in place): no change lost, each ends with its last value" {
	# The commits overlap (group commit batches them): every fsync is made
	# slower (tests/tools/slow_flush.c), except under ASan, whose runtime
	# must come first.
	stop_daemon
	local shim
	shim=$(dirname "$SFS")/../tests/slow_flush.so
	if ldd "$SFS" | grep -qE 'lib(a|ub)san'; then
		start_daemon
	else
		[ -f "$shim" ]
		LD_PRELOAD=$shim SLOW_FLUSH_US=3000 start_daemon
	fi
	concurrent_writers 40
	every_last 40
	[ "$(grep -c 'committed by rename' "$LOG")" = 160 ]
	! grep -E 'secretsfs: error' "$LOG"
	# what each writer was told is committed is in the store
	remount
	every_last 40
}
