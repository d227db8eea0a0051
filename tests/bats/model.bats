#!/usr/bin/env bats
# Model-based concurrency test: threads race creates, writes, appends,
# truncates, rotations, mv/ln/rm, deletes, labels, plain and held reads and
# held writes on a few shared secrets; every value read and the final state
# are checked against a reference model (tests/stress/model_test.py says
# what it checks).  MODEL_SEED repeats a run (the seed is printed on
# failure); MODEL_OPS overrides the number of operations (default 10000),
# MODEL_THREADS the threads (default 4).
load helper

MODEL=$BATS_TEST_DIRNAME/../stress/model_test.py

setup() { mount_store; }
teardown() { unmount_store; }

@test "model: concurrent ops on 5 shared secrets in 3 scopes agree with the model" {
	seed=${MODEL_SEED:-$((RANDOM * 32768 + RANDOM))}
	ops=${MODEL_OPS:-10000}
	echo "seed $seed: repeat with MODEL_SEED=$seed"
	run python3 "$MODEL" "$MNT" --seed "$seed" --ops "$ops" \
		--threads "${MODEL_THREADS:-4}" --timeout $((ops / 50 + 60))
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *" violations=0 "* ]]
}

@test "model: its checks catch a falsified history (self-test)" {
	# This checks the checker (model_test.py), which a sanitizer build of
	# the daemon does not change; its runs are the op mix of the test above,
	# which the ASan stage runs (10,000 ops).
	skip_if_sanitized "a self-test of the model checker; the test above runs the model under it"
	seed=${MODEL_SEED:-$((RANDOM * 32768 + RANDOM))}
	echo "seed $seed"
	# each kind of sabotage must make its own check fire
	for k in partial:1 failed:2 stale:3 fd:4 final:5; do
		run python3 "$MODEL" "$MNT" --seed "$seed" --ops 1500 --timeout 120 \
			--sabotage "${k%:*}"
		summary=$(printf '%s\n' "$output" | grep -E '^model: seed=.* violations=')
		printf '%s\n' "$output" | grep -E '^model: sabotage'
		echo "$summary"
		[ "$status" -le 1 ]
		[[ "$summary" =~ \ c${k#*:}=[1-9] ]]
	done
}
