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
