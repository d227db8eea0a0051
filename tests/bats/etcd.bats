#!/usr/bin/env bats
# The etcd test cluster itself (tests/tools/etcd-cluster through
# etcd_helper.bash): it serves, survives a member's death, comes back, and
# never outlives its test or its owner.
load etcd_helper

setup() { etcd_start; }
teardown() { etcd_teardown; }

# alive PID: PID runs (a zombie does not: the reaper may be slow here)
alive() {
	local state
	state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
	[ -n "$state" ] && [ "$state" != Z ]
}

# member_pids: the pids of the running members
member_pids() {
	local f
	for f in "$ETCD_DIR"/m*/pid; do
		alive "$(cat "$f")" && cat "$f"
	done
	true
}

@test "etcd-cluster: three members serve; one killed, the others go on; it comes back" {
	[ "$(tr ',' '\n' <<<"$ETCD_ENDPOINTS" | wc -l)" -eq 3 ]
	etcd_ctl put k v1
	[ "$(etcd_ctl get --print-value-only k)" = v1 ]
	etcd_kill 1
	run etcdctl --endpoints "$(etcd_url 1)" --dial-timeout 1s --command-timeout 2s get k
	[ "$status" -ne 0 ]
	etcdctl --endpoints "$(etcd_url 2),$(etcd_url 3)" --command-timeout 10s put k v2
	etcd_restart 1
	[ "$(etcdctl --endpoints "$(etcd_url 1)" get --print-value-only k)" = v2 ]
}

@test "etcd-cluster: stop-all leaves no member running" {
	pids=$(member_pids)
	[ "$(wc -w <<<"$pids")" -eq 3 ]
	"$ETCD_CLUSTER" stop-all "$ETCD_DIR"
	[ -z "$(member_pids)" ]
	run "$ETCD_CLUSTER" stop-all "$ETCD_DIR" # twice is fine
	[ "$status" -eq 0 ]
}

@test "etcd-cluster: the watchdog stops a cluster whose owner died" {
	sleep 60 3>&- &
	owner=$!
	d=$ETCD_DIR/second
	ETCD_CLUSTER_OWNER=$owner "$ETCD_CLUSTER" start "$d" 1 >/dev/null
	pid=$(cat "$d/m1/pid")
	alive "$pid"
	kill "$owner"
	wait "$owner" || true
	for _ in $(seq 1 100); do
		alive "$pid" || break
		sleep 0.1
	done
	! alive "$pid"
	# and its data dir went with it
	for _ in $(seq 1 50); do [ -d "$d/m1/data" ] || break; sleep 0.1; done
	[ ! -d "$d/m1/data" ]
}
