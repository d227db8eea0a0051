# etcd for bats tests: a 3-member cluster on 127.0.0.1 of the test's own
# (tests/tools/etcd-cluster), stopped in teardown whatever the test did.
#
#   load etcd_helper
#   setup()    { etcd_start; }      # skips the test if etcd is missing
#   teardown() { etcd_teardown; }
# Variables: $ETCD_DIR (the cluster's dir), $ETCD_ENDPOINTS (client URLs,
# comma-separated, member 1 first).
#   etcd_kill I / etcd_stop I   SIGKILL / SIGTERM member I, wait until gone
#   etcd_restart I              start it again, wait until healthy
#   etcd_wait [I...]            wait until these (default: running) are healthy
#   etcd_url I                  member I's client URL
#   etcd_ctl ARGS...            etcdctl against every member (TLS files and
#                               root's login added when those are on)
#   etcd_auth PREFIX            etcd auth on: users root and fleet (readwrite
#                               on PREFIX); passwords in $ETCD_DIR/*.password
# Mounts of an etcd store ("hosts"), for tests with $T (their dir), $SRC
# and $KEY set and PIDS=() in setup:
#   etcd_host NAME [OPTIONS]    mounts SRC on $T/NAME in the foreground (log
#                               $T/log.NAME, pid in PID_NAME), waits until
#                               it answers
#   etcd_hosts_teardown         unmounts them, fails if a sanitizer spoke in
#                               a log, removes $T, stops the cluster
# With ETCD_CLUSTER_TLS=1 the members speak TLS to clients and require a
# client certificate (files in $ETCD_DIR/tls; see tests/tools/etcd-cluster);
# ETCD_CLUSTER_TOKEN_TTL=N shortens etcd's auth token TTL.
# A test that does not reach its teardown (bats killed) still leaves
# nothing running: the harness's watchdog stops the members when the bats
# process that started them exits.

ETCD_CLUSTER=${ETCD_CLUSTER:-$BATS_TEST_DIRNAME/../tools/etcd-cluster}

etcd_start() {
	if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
		skip "etcd is not installed (scripts/install-deps installs etcd-server and etcd-client)"
	fi
	ETCD_DIR=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-etcd.XXXXXX")
	ETCD_ENDPOINTS=$(ETCD_CLUSTER_OWNER=$$ "$ETCD_CLUSTER" start "$ETCD_DIR" "${1:-3}") || {
		echo "the etcd cluster did not start (logs in $ETCD_DIR)" >&2
		return 1
	}
	export ETCD_DIR ETCD_ENDPOINTS
}

etcd_kill() { "$ETCD_CLUSTER" kill "$ETCD_DIR" "$1"; }
etcd_stop() { "$ETCD_CLUSTER" stop "$ETCD_DIR" "$1"; }
etcd_restart() { "$ETCD_CLUSTER" restart "$ETCD_DIR" "$1"; }
etcd_wait() { "$ETCD_CLUSTER" wait "$ETCD_DIR" "$@"; }
etcd_url() { "$ETCD_CLUSTER" url "$ETCD_DIR" "$1"; }

etcd_ctl() { "$ETCD_CLUSTER" ctl "$ETCD_DIR" "$@"; }
etcd_auth() { "$ETCD_CLUSTER" auth "$ETCD_DIR" "$1"; }

# etcd_teardown: every member killed, the dir removed (its logs printed
# first if the test failed, for bats to show).
etcd_teardown() {
	[ -n "${ETCD_DIR:-}" ] || return 0
	"$ETCD_CLUSTER" stop-all "$ETCD_DIR"
	if [ -n "${BATS_ERROR_STATUS:-}" ] && [ "$BATS_ERROR_STATUS" != 0 ] ||
	   [ "${BATS_TEST_COMPLETED:-}" != 1 ]; then
		for f in "$ETCD_DIR"/m*/log; do
			[ -f "$f" ] && tail -n 5 "$f" | sed "s|^|${f#"$ETCD_DIR"/}: |" >&2
		done
	fi
	rm -rf "$ETCD_DIR"
	ETCD_DIR=
}

# eventually CMD...: CMD succeeds within 20 s (tried every 20 ms; its
# output of the last try shown if it never does).  For what another host's
# change makes true once its watch has delivered it: a bound on a wait,
# not a timing assertion (the benchmark measures the time).
eventually() {
	local i
	for i in $(seq 1 1000); do
		"$@" 2>/dev/null && return 0
		sleep 0.02
	done
	"$@"
}

etcd_host() {
	local m=$T/$1
	"$SFS" "$SRC" "$m" -f -o "key=$KEY,attrs=$T/attrs.$1${2:+,$2}" 2>>"$T/log.$1" &
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

etcd_hosts_teardown() {
	local m p rc=0
	# a test that failed while inotifywait (start_watch) ran: it must not
	# keep bats' output open
	[ -n "${WATCH_PID:-}" ] && kill "$WATCH_PID" 2>/dev/null
	for m in "$T"/*/; do
		m=${m%/}
		grep -qF " $m fuse.secretsfs " /proc/mounts && fusermount3 -u "$m" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if grep -qE 'AddressSanitizer|runtime error|LeakSanitizer' "$T"/log.* 2>/dev/null; then
		cat "$T"/log.* >&2
		rc=1
	fi
	rm -rf "$T"
	etcd_teardown
	return $rc
}
