# Boots a real systemd for a test, the safe way (see the project notes on
# systemd in CI): systemd-nspawn on a volatile root, i.e. a tmpfs / with
# the host's /usr read-only and private /etc, /var, /tmp, /run, /dev.
# Nothing of the host is written but the folders a test binds in.
# Used by systemd.bats and package.bats.
#
#   W=$(nspawn_workdir)            W/units W/bin W/out, W/check.sh
#   ... write W/check.sh (bash -eux; runs as check.service, PID 1 exits
#       with its status), units into W/units ...
#   nspawn_boot "$W" [nspawn options]   # returns check.sh's status
#   nspawn_show "$W"                     # check.log and the journal, on failure
#
# check.sh may use not CMD (CMD must fail), wait_restarted UNIT N,
# reader_start FILE VALUE / reader_stop (a reader looping on cat FILE,
# counting reads whole and failed into /srv/t-out/reads, errors into
# /srv/t-out/errors) and run_as_store (the store secretsfs.service
# serves by default; W/secretsfs.sysusers must be the package's file).
# Inside: W at /srv/t (read-only), W/out at /srv/t-out, W/units over
# /etc/systemd/system, W/bin (if not empty) over /usr/local/bin.

# nspawn_missing: says why no container can be booted here (or nothing).
nspawn_missing() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "booting a container needs root"
	elif ! command -v systemd-nspawn >/dev/null; then
		echo "systemd-nspawn is not installed (Debian package systemd-container)"
	elif [ ! -x /lib/systemd/systemd ]; then
		echo "no systemd to boot (/lib/systemd/systemd)"
	elif [ ! -c /dev/fuse ]; then
		echo "no /dev/fuse"
	elif ! command -v unshare >/dev/null; then
		echo "unshare is not installed (util-linux)"
	fi
}

nspawn_workdir() {
	local w
	w=$(mktemp -d /tmp/secretsfs-sd.XXXXXX) || return 1
	mkdir -p "$w/units" "$w/bin" "$w/out"
	chmod 0755 "$w" "$w/units" "$w/bin"
	chmod 0777 "$w/out"
	echo "$w"
}

# The unit that runs W/check.sh and makes PID 1 exit with its status.  Its
# log goes to W/out/check.log, the whole journal to W/out/journal.log.
_nspawn_check_unit() {
	cat >"$1/units/check.service" <<'EOF'
[Unit]
Description=secretsfs test script
SuccessAction=exit
FailureAction=exit

[Service]
Type=oneshot
ExecStart=/bin/bash -eux -c '. /srv/t/lib.sh; . /srv/t/check.sh'
ExecStopPost=/bin/sh -c 'journalctl --no-pager -o short-monotonic >/srv/t-out/journal.log 2>&1'
StandardOutput=file:/srv/t-out/check.log
StandardError=inherit
TimeoutStartSec=90
EOF
}

# Helpers for check.sh.  "! cmd" never stops a bash -e script: use "not cmd".
_nspawn_lib() {
	cat >"$1/lib.sh" <<'EOF'
not() {
	if "$@"; then
		echo "expected to fail: $*" >&2
		return 1
	fi
}
# wait_restarted UNIT N: UNIT is active again after its Nth restart (10 s).
wait_restarted() {
	local i
	for i in $(seq 1 100); do
		[ "$(systemctl show -P NRestarts "$1")" = "$2" ] &&
			[ "$(systemctl show -P ActiveState "$1")" = active ] && return 0
		sleep 0.1
	done
	echo "$1: not active after restart $2" >&2
	return 1
}
reader_start() {
	rm -f /tmp/reader.stop
	(
		ok=0 bad=0
		while [ ! -e /tmp/reader.stop ]; do
			if cat "$1" >/tmp/reader.got 2>>/srv/t-out/errors && cmp -s /tmp/reader.got "$2"; then
				ok=$((ok + 1))
			else
				bad=$((bad + 1))
			fi
		done
		echo "$ok $bad" >/srv/t-out/reads
	) &
	reader_pid=$!
}
reader_stop() {
	touch /tmp/reader.stop
	wait "$reader_pid"
}
# as the README says: the user secretsfs from the package's sysusers.d
# file, its store, the key root's in /etc/secretsfs
run_as_store() {
	systemd-sysusers /srv/t/secretsfs.sysusers
	secretsfs init /var/lib/secretsfs -o key=/etc/secretsfs/key,run_as=secretsfs
}
EOF
}

# nspawn_boot W [nspawn options...]: boots, runs check.service, returns its
# exit status (124 if the container did not finish within 120 s).  The
# container runs in cgroups of its own, removed afterwards.
# NSPAWN_ROOT=overlay: the root is the host's / under an overlay whose
# upper layer is a tmpfs of the test's own mount namespace (so dpkg -i can
# run inside: /usr and the dpkg database are writable, and nothing of the
# host's is touched); by default (--volatile=yes) the host's /usr is
# read-only and /etc and /var start empty.
nspawn_boot() {
	local w=$1 rc c
	shift
	local cgroups=()
	_nspawn_check_unit "$w"
	_nspawn_lib "$w"
	local binds=(--bind=/dev/fuse --bind-ro="$w":/srv/t --bind="$w/out":/srv/t-out
		--bind-ro="$w/units":/etc/systemd/system)
	if [ -n "$(ls -A "$w/bin")" ]; then
		binds+=(--bind-ro="$w/bin":/usr/local/bin)
	fi
	# Hybrid cgroups (this machine kind): nspawn needs a subtree of its own
	# in the unified and the name=systemd hierarchies, under the same name
	# (nspawn mirrors its unified cgroup's path into name=systemd).
	local root=(-D / --volatile=yes)
	NSPAWN_PRE=
	if [ "${NSPAWN_ROOT:-}" = overlay ]; then
		# nspawn refuses -D / with --volatile=overlay: the overlay is ours
		mkdir -p "$w/ov"
		NSPAWN_PRE="mount -t tmpfs tmpfs '$w/ov' && mkdir '$w/ov/u' '$w/ov/w' '$w/ov/r' &&
			mount -t overlay overlay -o lowerdir=/,upperdir='$w/ov/u',workdir='$w/ov/w' '$w/ov/r' &&"
		root=(-D "$w/ov/r")
	fi
	export NSPAWN_PRE
	local name=secretsfs-test-$$-$RANDOM
	for c in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
		[ -f "$c/cgroup.procs" ] || continue
		mkdir "$c/$name" && cgroups+=("$c/$name")
	done
	# shellcheck disable=SC2016
	bash -c 'for c in "$@"; do [ "$c" = -- ] && break; echo $$ >"$c/cgroup.procs"; shift; done; shift
		exec unshare -m --propagation private sh -c "$NSPAWN_PRE mount -t tmpfs tmpfs /run && exec \"\$@\"" sh "$@"' \
		sh "${cgroups[@]}" -- \
		timeout 120 systemd-nspawn -q --register=no --keep-unit "${root[@]}" \
		--capability=CAP_IPC_LOCK \
		"${binds[@]}" "$@" \
		--boot -- systemd.unit=check.service systemd.firstboot=no \
		>"$w/out/console.log" 2>&1 </dev/null
	rc=$?
	for c in "${cgroups[@]}"; do
		# anything left (there should be nothing) is ours: end it
		xargs -r kill -9 <"$c/cgroup.procs" 2>/dev/null
		find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
		[ ! -d "$c" ] || { echo "could not remove cgroup $c" >&2; rc=1; }
	done
	return $rc
}

# nspawn_show W: what happened inside (for a failed test's output).
nspawn_show() {
	echo "--- check.log" >&2
	cat "$1/out/check.log" >&2 2>/dev/null
	echo "--- journal (from check.service's start)" >&2
	sed -n '/Starting check.service/,$p' "$1/out/journal.log" | tail -n 80 >&2 2>/dev/null
	if [ ! -s "$1/out/journal.log" ]; then
		echo "--- console" >&2
		tail -n 40 "$1/out/console.log" >&2 2>/dev/null
	fi
}

# nspawn_run W [nspawn options...]: boots and fails (showing why) unless
# check.sh succeeded.
nspawn_run() {
	local rc=0
	nspawn_boot "$@" || rc=$?
	if [ $rc -ne 0 ]; then
		echo "check.sh in the container exited with $rc" >&2
		nspawn_show "$1"
		return 1
	fi
}

# nspawn_reads_ok W: reader_start's counts: some reads, none failed, no
# error printed.
nspawn_reads_ok() {
	local ok bad
	read -r ok bad <"$1/out/reads"
	echo "reads: $ok whole, $bad failed" >&3
	[ "$bad" = 0 ] && [ "$ok" -gt 0 ] && [ ! -s "$1/out/errors" ] || {
		echo "reads: $ok whole, $bad failed; errors:" >&2
		cat "$1/out/errors" >&2
		return 1
	}
}
