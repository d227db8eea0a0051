#!/usr/bin/env bats
# Access control and audit (issue 4) against real mounts, real users and
# real cgroups: owners and modes per scope, the kernel's mode checks under
# allow_other / default_permissions, the unit= and cgroup= open policy, the
# audit trail field by field, and no plaintext left behind (locked memory,
# no core file, no page cache, private key files).
#
# Users sfs-aigw and sfs-mcp are created if missing (and left).  Cgroups are
# made under /sys/fs/cgroup/unified/secretsfs-test-PID-N and removed in
# teardown.
load helper

CG_UNIFIED=/sys/fs/cgroup/unified
AIGW=sfs-aigw
MCP=sfs-mcp

setup() {
	local u
	for u in "$AIGW" "$MCP"; do
		id -u "$u" >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "$u" 2>/dev/null ||
			id -u "$u" >/dev/null 2>&1 || { echo "cannot create user $u" >&2; return 1; }
	done
	CGNAME=secretsfs-test-$$-$BATS_TEST_NUMBER
	CGROOT=$CG_UNIFIED/$CGNAME
	CAT=$(readlink -f "$(command -v cat)")
}

teardown() {
	if [ -n "${READER_FD_OPEN:-}" ]; then exec 4<&-; fi
	local rc=0
	unmount_store || rc=1
	cg_cleanup || rc=1
	return $rc
}

# ------------------------------------------------------------------ helpers

# as USER CMD...: runs CMD as USER (uid, gid, no supplementary groups).
as() {
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$u" --clear-groups "$@"
}

# in_cg PATH CMD...: runs CMD inside the cgroup $CGROOT/PATH (made if
# missing); the process's pid goes to $T/pid.
in_cg() {
	local dir=$CGROOT/$1
	shift
	mkdir -p "$dir" || return 1
	sh -c 'd=$1 p=$2; shift 2; echo $$ > "$d/cgroup.procs" && echo $$ > "$p" && exec "$@"' \
		sh "$dir" "$T/pid" "$@"
}

# with_pid CMD...: runs CMD, its pid to $T/pid (CMD is exec'ed: same pid).
with_pid() {
	sh -c 'p=$1; shift; echo $$ > "$p" && exec "$@"' sh "$T/pid" "$@"
}

# cg_cleanup: removes the test's cgroups (their processes have exited).
cg_cleanup() {
	[ -n "${CGROOT:-}" ] && [ -d "$CGROOT" ] || return 0
	for _ in $(seq 1 100); do
		find "$CGROOT" -depth -type d -exec rmdir {} \; 2>/dev/null
		[ -d "$CGROOT" ] || return 0
		sleep 0.05
	done
	echo "could not remove cgroup $CGROOT: $(cat "$CGROOT"/cgroup.procs 2>&1)" >&2
	return 1
}

# gives FILE VALUE [CMD-PREFIX...]: reading FILE (with the prefix, e.g.
# "as sfs-aigw") prints exactly VALUE.
gives() {
	local f=$1 want=$2
	shift 2
	run "$@" "$CAT" "$f"
	[ "$status" -eq 0 ] || { echo "reading $f ($*) failed: $output" >&2; return 1; }
	eq "$output" "$want" "content of $f"
}

# refused FILE [CMD-PREFIX...]: reading FILE fails with EACCES.
refused() {
	local f=$1
	shift
	fails "Permission denied" "$@" "$CAT" "$f"
	[[ "$output" != *"sk-"* ]] || { echo "a value leaked: $output" >&2; return 1; }
}

# not_readable FILE [CMD-PREFIX...]: reading FILE fails (any error) and
# prints no value.
not_readable() {
	local f=$1
	shift
	run "$@" "$CAT" "$f"
	if [ "$status" -eq 0 ] || [[ "$output" == *"sk-"* ]]; then
		echo "$* cat $f: status $status, output: $output" >&2
		return 1
	fi
}

# mount_fails PATTERN [ARGS...]: mounting $STORE on $MNT (in the
# background, so that a wrong success cannot hang the test) fails with
# PATTERN in its message and leaves no mount.
mount_fails() {
	local pat=$1
	shift
	fails "$pat" "$SFS" "$STORE" "$MNT" "$@" || return 1
	! grep -q " $MNT " /proc/mounts || { echo "mounted anyway" >&2; return 1; }
}

put() { printf '%s' "$2" >"$1"; }

mode_of() { stat -c '%a %U %G' "$1"; }

# --- audit lines

# (docs/audit.md: what is searched for first, the caller's own strings last)
AUDIT_RE='^audit: time=([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})\.[0-9]{3}Z op=[a-z-]+ id=[^ ]+ unit=[^ ]+ result=(ok|E[A-Z0-9]+) uid=[0-9]+ pid=[0-9]+ version=([0-9]+|-)( [a-z]+=[^ ]+)? exe=[^ ]+( comm=[^ ]+)?$'

# audit_lines [FILE]: the audit lines of the daemon log (or of FILE), from
# "audit:" on; sync(1) of the mount first writes the lines still batched.
audit_lines() {
	sync "$MNT" 2>/dev/null || true
	grep -o 'audit: .*' "${1:-$LOG}" 2>/dev/null || true
}

# audit_of OP ID [FILE]: the last audit line for OP on ID.
audit_of() {
	local line
	line=$(audit_lines "${3:-}" | grep -E "^audit: time=[^ ]+ op=$1 id=$2 " | tail -n 1)
	[ -n "$line" ] || { echo "no audit line op=$1 id=$2; audit lines:" >&2; audit_lines "${3:-}" >&2; return 1; }
	printf '%s\n' "$line"
}

# afield LINE KEY: the value of KEY= in LINE.
afield() {
	local -a fields
	local f
	read -ra fields <<<"$1"
	for f in "${fields[@]}"; do
		[[ "$f" == "$2="* ]] && { printf '%s\n' "${f#*=}"; return 0; }
	done
	return 1
}

# expect_audit LINE KEY=VALUE...: LINE has the documented shape and each
# field has exactly the value given ("KEY~REGEX" matches instead).
expect_audit() {
	local line=$1 kv k v got
	shift
	[[ "$line" =~ $AUDIT_RE ]] || { echo "audit line has the wrong shape: $line" >&2; return 1; }
	# the time is UTC now (give or take the test's own duration)
	local t
	t=$(date -u -d "${BASH_REMATCH[1]}Z" +%s) || { echo "bad time in: $line" >&2; return 1; }
	if [ "$t" -lt $((TEST_START - 2)) ] || [ "$t" -gt $(($(date -u +%s) + 2)) ]; then
		echo "audit time ${BASH_REMATCH[1]} is not now: $line" >&2
		return 1
	fi
	for kv in "$@"; do
		if [[ "$kv" == *"~"* && "${kv%%~*}" != *"="* ]]; then
			k=${kv%%~*} v=${kv#*~}
			got=$(afield "$line" "$k") || { echo "audit line lacks $k: $line" >&2; return 1; }
			[[ "$got" =~ ^($v)$ ]] || { echo "audit $k: expected /$v/, got [$got] in: $line" >&2; return 1; }
		else
			k=${kv%%=*} v=${kv#*=}
			got=$(afield "$line" "$k") || { echo "audit line lacks $k: $line" >&2; return 1; }
			[ "$got" = "$v" ] || { echo "audit $k: expected [$v], got [$got] in: $line" >&2; return 1; }
		fi
	done
}

TEST_START=$(date -u +%s)

# locked_kb PID: the sum of the Locked: sizes of PID's mappings.
locked_kb() {
	awk '/^Locked:/ { s += $2 } END { print s + 0 }' "/proc/$1/smaps"
}

# mount_with_values OPTIONS: a store holding ai_gateway/OPENAI_API_KEY,
# ai_gateway/ANTHROPIC_API_KEY and mcp_server/MCP_TOKEN (written by root
# with no policy), then mounted again with OPTIONS; $T is opened to every
# user (mktemp makes it 0700) so that other users can reach the mount.
mount_with_values() {
	mount_store
	chmod 0755 "$T"
	put "$MNT/ai_gateway/OPENAI_API_KEY" sk-openai-1
	put "$MNT/ai_gateway/ANTHROPIC_API_KEY" sk-anthropic-1
	put "$MNT/mcp_server/MCP_TOKEN" sk-mcp-1
	remount "$@"
}

# ------------------------------------------------------ owners and modes

@test "done when: allow_other + owner per scope: aigw reads ai_gateway and is refused mcp_server, mcp the other way; root's reads are audited" {
	mount_with_values -o allow_other,owner=ai_gateway:$AIGW,owner=mcp_server:$MCP
	eq "$(mode_of "$MNT/ai_gateway")" "700 $AIGW $AIGW"
	eq "$(mode_of "$MNT/ai_gateway/OPENAI_API_KEY")" "600 $AIGW $AIGW"
	eq "$(mode_of "$MNT/mcp_server")" "700 $MCP $MCP"
	eq "$(mode_of "$MNT/mcp_server/MCP_TOKEN")" "600 $MCP $MCP"
	eq "$(mode_of "$MNT/ai_agent")" "700 root root"

	gives "$MNT/ai_gateway/OPENAI_API_KEY" sk-openai-1 as $AIGW
	gives "$MNT/ai_gateway/ANTHROPIC_API_KEY" sk-anthropic-1 as $AIGW
	refused "$MNT/mcp_server/MCP_TOKEN" as $AIGW
	fails "Permission denied" as $AIGW ls "$MNT/mcp_server"

	gives "$MNT/mcp_server/MCP_TOKEN" sk-mcp-1 as $MCP
	refused "$MNT/ai_gateway/OPENAI_API_KEY" as $MCP
	refused "$MNT/ai_gateway/ANTHROPIC_API_KEY" as $MCP
	fails "Permission denied" as $MCP ls "$MNT/ai_gateway"

	# the users' own reads are audited under their uid
	expect_audit "$(audit_of read OPENAI_API_KEY)" uid="$(id -u $AIGW)" exe="$CAT" result=ok version=1
	expect_audit "$(audit_of read MCP_TOKEN)" uid="$(id -u $MCP)" exe="$CAT" result=ok version=1

	# root reads everything, and each read is an audit line with its pid
	run with_pid "$CAT" "$MNT/mcp_server/MCP_TOKEN"
	[ "$status" -eq 0 ]
	eq "$output" sk-mcp-1
	expect_audit "$(audit_of read MCP_TOKEN)" op=read id=MCP_TOKEN version=1 uid=0 \
		pid="$(cat "$T/pid")" exe="$CAT" unit=- result=ok
	run with_pid "$CAT" "$MNT/ai_gateway/OPENAI_API_KEY"
	[ "$status" -eq 0 ]
	eq "$output" sk-openai-1
	expect_audit "$(audit_of read OPENAI_API_KEY)" uid=0 pid="$(cat "$T/pid")" result=ok
	! grep -q 'sk-' "$LOG" || { echo "a value reached the log:" >&2; cat "$LOG" >&2; false; }
}

@test "modes: defaults 0700/0600 root, 0400 with ro; uid=, gid=, dir_mode=, file_mode=; owner=SCOPE:USER:GROUP" {
	mount_store
	put "$MNT/ai_gateway/OPENAI_API_KEY" sk-openai-1
	eq "$(mode_of "$MNT/ai_gateway")" "700 root root"
	eq "$(mode_of "$MNT/ai_gateway/OPENAI_API_KEY")" "600 root root"

	remount -o ro
	eq "$(mode_of "$MNT/ai_gateway")" "700 root root"
	eq "$(mode_of "$MNT/ai_gateway/OPENAI_API_KEY")" "400 root root"

	local mu mg
	mu=$(id -u $MCP) mg=$(id -g $MCP)
	remount -o uid=$mu,gid=$mg,dir_mode=0750,file_mode=0640,owner=ai_gateway:$AIGW:$MCP
	eq "$(mode_of "$MNT/mcp_server")" "750 $MCP $MCP"
	eq "$(mode_of "$MNT/ai_gateway")" "750 $AIGW $MCP"
	eq "$(mode_of "$MNT/ai_gateway/OPENAI_API_KEY")" "640 $AIGW $MCP"

	# a bad owner is refused at mount with the reason
	stop_daemon
	mount_fails "unknown user" -o owner=ai_gateway:no-such-user-xyz
	mount_fails "scope" -o owner=nosuchscope:$AIGW
	mount_fails "scope" -o unit=nosuchscope:x.service
	mount_fails "cgroup=SCOPE:/PATH" -o cgroup=ai_gateway:relative/path
}

@test "modes: without allow_other a non-root user cannot enter the mount, even at 0755/0644; with it they can" {
	mount_with_values -o dir_mode=0755,file_mode=0644
	fails "Permission denied" as $AIGW ls "$MNT"
	fails "Permission denied" as $AIGW stat "$MNT/ai_gateway"
	refused "$MNT/ai_gateway/OPENAI_API_KEY" as $AIGW
	# the control: the same modes with allow_other let the user read
	remount -o allow_other,dir_mode=0755,file_mode=0644
	gives "$MNT/ai_gateway/OPENAI_API_KEY" sk-openai-1 as $AIGW
}

@test "modes: default_permissions alone makes the kernel check modes; those refusals never reach the daemon (no audit line)" {
	mount_with_values -o default_permissions
	chmod 0000 "$MNT/ai_gateway/OPENAI_API_KEY"
	# root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH is held to the mode
	refused "$MNT/ai_gateway/OPENAI_API_KEY" \
		setpriv --bounding-set -dac_override,-dac_read_search --inh-caps -all
	run audit_lines
	[[ "$output" != *"op=read id=OPENAI_API_KEY"* && "$output" != *"result=EACCES"* ]] ||
		{ echo "kernel refusal audited?: $output" >&2; false; }
	# the control: without default_permissions the daemon does not check modes
	remount
	chmod 0000 "$MNT/ai_gateway/OPENAI_API_KEY"
	gives "$MNT/ai_gateway/OPENAI_API_KEY" sk-openai-1 \
		setpriv --bounding-set -dac_override,-dac_read_search --inh-caps -all
}

@test "modes: chmod and chown apply to this host's view and are kept across a remount (DIR/host-attrs)" {
	mount_with_values -o allow_other,owner=ai_gateway:$AIGW
	local f=$MNT/ai_gateway/OPENAI_API_KEY
	chmod 0640 "$f"
	chown "$MCP:$MCP" "$f"
	chmod 0750 "$MNT/mcp_server"
	chmod 0711 "$MNT/ai_gateway"
	eq "$(mode_of "$f")" "640 $MCP $MCP"
	eq "$(mode_of "$MNT/mcp_server")" "750 root root"
	eq "$(mode_of "$MNT/ai_gateway")" "711 $AIGW $AIGW"
	# the kernel now holds aigw to the new owner, and mcp may read
	refused "$f" as $AIGW
	gives "$f" sk-openai-1 as $MCP
	# the value and the other file are untouched
	eq "$(mode_of "$MNT/ai_gateway/ANTHROPIC_API_KEY")" "600 $AIGW $AIGW"

	# kept in a private file beside the store, which holds no value
	eq "$(stat -c %a "$STORE/host-attrs")" 600
	grep -qx "secret OPENAI_API_KEY 0640 $(id -u $MCP) $(id -g $MCP)" "$STORE/host-attrs"
	grep -qx "scope mcp_server 0750 - -" "$STORE/host-attrs"
	! grep -q 'sk-' "$STORE/host-attrs" || false

	remount -o allow_other,owner=ai_gateway:$AIGW
	eq "$(mode_of "$f")" "640 $MCP $MCP"
	eq "$(mode_of "$MNT/mcp_server")" "750 root root"
	eq "$(mode_of "$MNT/ai_gateway")" "711 $AIGW $AIGW"
	eq "$(mode_of "$MNT/ai_gateway/ANTHROPIC_API_KEY")" "600 $AIGW $AIGW"
	gives "$f" sk-openai-1 as $MCP
	refused "$f" as $AIGW

	# a line the daemon cannot read is skipped with a log line, the rest applies
	stop_daemon
	printf 'secret OPENAI_API_KEY 9999 x y\nscope nosuch 0700 - -\n' >> "$STORE/host-attrs"
	start_daemon -o allow_other,owner=ai_gateway:$AIGW
	eq "$(mode_of "$f")" "640 $MCP $MCP"
	log_has "host-attrs:[0-9]+: not a host attribute line; ignored"

	# -o attrs=FILE puts it elsewhere
	remount -o allow_other,attrs=$T/attrs-elsewhere
	chmod 0604 "$MNT/ai_gateway/ANTHROPIC_API_KEY"
	grep -qx "secret ANTHROPIC_API_KEY 0604 - -" "$T/attrs-elsewhere"
}

@test "modes: install -m 0400 and cp -p store the value and set the mode" {
	mount_store
	printf 'sk-inst-1' >"$T/src1"
	printf 'sk-inst-2' >"$T/src2"
	chmod 0440 "$T/src2"
	run install -m 0400 "$T/src1" "$MNT/ai_gateway/INSTALLED_KEY"
	[ "$status" -eq 0 ] || { echo "install: $output" >&2; false; }
	expect_value "$MNT/ai_gateway/INSTALLED_KEY" sk-inst-1
	eq "$(stat -c %a "$MNT/ai_gateway/INSTALLED_KEY")" 400
	run install -m 0400 "$T/src2" "$MNT/ai_gateway/INSTALLED_KEY"
	[ "$status" -eq 0 ] || { echo "install again: $output" >&2; false; }
	expect_value "$MNT/ai_gateway/INSTALLED_KEY" sk-inst-2
	eq "$(stat -c %a "$MNT/ai_gateway/INSTALLED_KEY")" 400

	run cp -p "$T/src2" "$MNT/ai_gateway/COPIED_KEY"
	[ "$status" -eq 0 ] || { echo "cp -p: $output" >&2; false; }
	expect_value "$MNT/ai_gateway/COPIED_KEY" sk-inst-2
	eq "$(stat -c %a "$MNT/ai_gateway/COPIED_KEY")" 440
	run cp -p "$T/src1" "$MNT/ai_gateway/COPIED_KEY"
	[ "$status" -eq 0 ] || { echo "cp -p over it: $output" >&2; false; }
	expect_value "$MNT/ai_gateway/COPIED_KEY" sk-inst-1

	# the values are stored and the modes kept: both survive a remount
	remount
	expect_value "$MNT/ai_gateway/INSTALLED_KEY" sk-inst-2
	expect_value "$MNT/ai_gateway/COPIED_KEY" sk-inst-1
	eq "$(stat -c %a "$MNT/ai_gateway/INSTALLED_KEY")" 400
	eq "$(stat -c %a "$MNT/ai_gateway/COPIED_KEY")" "$(stat -c %a "$T/src1")"
}

# ------------------------------------------------------ unit and cgroup

@test "unit=: a process in a cgroup named like the unit reads; another unit and root outside any unit get EACCES, a log line and an audit line" {
	mount_with_values -o unit=ai_gateway:ai-gateway.service,unit=ai_gateway:worker-*.scope
	local f=$MNT/ai_gateway/OPENAI_API_KEY
	gives "$f" sk-openai-1 in_cg ai-gateway.service
	expect_audit "$(audit_of read OPENAI_API_KEY)" op=read id=OPENAI_API_KEY version=1 uid=0 \
		pid="$(cat "$T/pid")" exe="$CAT" unit=ai-gateway.service result=ok
	gives "$f" sk-openai-1 in_cg app.slice/worker-12.scope
	expect_audit "$(audit_of read OPENAI_API_KEY)" unit=worker-12.scope result=ok

	refused "$f" in_cg other.service
	local pid
	pid=$(cat "$T/pid")
	expect_audit "$(audit_of read OPENAI_API_KEY)" op=read id=OPENAI_API_KEY version=1 uid=0 \
		pid="$pid" exe="$CAT" unit=other.service result=EACCES
	log_has "OPENAI_API_KEY: read refused to uid 0 pid $pid \\($CAT, unit other.service\\)"
	refused "$f" in_cg worker-12.service

	# root is not exempt
	refused "$f"
	expect_audit "$(audit_of read OPENAI_API_KEY)" uid=0 unit=- result=EACCES

	# a scope without rules is open to all
	gives "$MNT/mcp_server/MCP_TOKEN" sk-mcp-1
	gives "$MNT/mcp_server/MCP_TOKEN" sk-mcp-1 in_cg other.service
	# metadata stays visible
	eq "$(stat -c %s "$f")" 11
}

@test "unit=: the caller's cgroup is known by its id: /proc/PID/cgroup read once per cgroup; a process moved to another cgroup is judged by that one" {
	mount_with_values
	stop_daemon
	local real=$SFS
	printf '#!/bin/sh\nASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" exec strace -f -e trace=openat,pidfd_open -o %s %s "$@"\n' \
		"$T/strace" "$real" >"$T/traced"
	chmod +x "$T/traced"
	SFS=$T/traced start_daemon -o unit=ai_gateway:allowed.service
	SFS=$real
	mkdir -p "$CGROOT/allowed.service" "$CGROOT/other.service"
	run python3 - "$CGROOT" "$MNT/ai_gateway/OPENAI_API_KEY" "$T/pid" <<'PY'
import os, sys
cg, f, pidfile = sys.argv[1:]
open(pidfile, "w").write(str(os.getpid()))
def move(to):
    with open(f"{cg}/{to}/cgroup.procs", "w") as p:
        p.write(str(os.getpid()))
def read():
    try:
        with open(f) as h:
            return h.read()
    except PermissionError:
        return "EACCES"
move("allowed.service")
out = [read(), read()]
move("other.service")
out.append(read())
print(" ".join(out))
PY
	echo "$output"
	eq "$output" "sk-openai-1 sk-openai-1 EACCES" "reads in allowed.service, then in other.service"
	local pid
	pid=$(cat "$T/pid")
	log_has "OPENAI_API_KEY: read refused to uid 0 pid $pid \\(.*, unit other.service\\)"
	# PIDFD_GET_INFO (kernel 6.13) tells a cgroup's id; without it the
	# daemon reads /proc every time, as before
	python3 -c 'import os, fcntl; fcntl.ioctl(os.pidfd_open(os.getpid()), 0xC040FF0B, bytearray(b"\x04" + bytes(63)))' 2>/dev/null ||
		skip "the kernel has no PIDFD_GET_INFO: the cgroup is read from /proc each time"
	# 3 opens in 2 cgroups: /proc read twice
	eq "$(grep -c "open.*\"/proc/$pid/cgroup\"" "$T/strace")" 2 "/proc/$pid/cgroup reads"
	# one thread's pidfd is kept for its next requests
	eq "$(grep -c "pidfd_open($pid," "$T/strace")" 1 "pidfd_open of $pid"
}

@test "unit=: a pid reused by another process in another cgroup is judged by that one (the kept pidfd is not trusted for it)" {
	mount_with_values -o unit=ai_gateway:allowed.service
	mkdir -p "$CGROOT/allowed.service" "$CGROOT/other.service"
	# The first reader reads in allowed.service and exits; then the same
	# pid is made for a second process (ns_last_pid), which reads from
	# other.service.  The daemon keeps a pidfd of the first: it must see
	# that its task is gone rather than take the pid for it.
	run python3 - "$CGROOT" "$MNT/ai_gateway/OPENAI_API_KEY" <<'PY'
import os, sys
cg, f = sys.argv[1:]
def reader(to):
    with open(f"{cg}/{to}/cgroup.procs", "w") as p:
        p.write(str(os.getpid()))
    try:
        with open(f) as h:
            h.read()
        os._exit(0)
    except PermissionError:
        os._exit(13)
def spawn(to, want=None):
    if want:
        with open("/proc/sys/kernel/ns_last_pid", "w") as n:
            n.write(str(want - 1))
    pid = os.fork()
    if pid == 0:
        if want and os.getpid() != want:
            os._exit(99)
        reader(to)
    _, st = os.waitpid(pid, 0)
    return pid, os.waitstatus_to_exitcode(st)
# another process may take the pid first (and keep it): then again from a
# new first reader
for _ in range(100):
    first, a = spawn("allowed.service")
    second, b = spawn("other.service", first)
    if b != 99:
        break
print(first == second, a, b)
PY
	echo "$output"
	eq "$output" "True 0 13" "same pid; the first read, the second refused"
	log_has "OPENAI_API_KEY: read refused to uid 0 pid [0-9]+ \\(.*, unit other.service\\)"
}

@test "unit=: writes and creates in a restricted scope are refused to others (EACCES, audited), allowed to the unit" {
	mount_with_values -o unit=ai_gateway:ai-gateway.service
	local d=$MNT/ai_gateway
	fails "Permission denied" in_cg other.service sh -c "printf sk-evil > $d/OPENAI_API_KEY"
	expect_audit "$(audit_of open-write OPENAI_API_KEY)" unit=other.service result=EACCES
	fails "Permission denied" in_cg other.service sh -c "printf sk-evil > $d/NEW_KEY"
	expect_audit "$(audit_of create NEW_KEY)" op=create id=NEW_KEY version=- uid=0 \
		unit=other.service result=EACCES
	log_has "ai_gateway/NEW_KEY: create refused to uid 0 pid [0-9]+ \\(/usr/bin/dash, unit other.service\\)"
	fails "Permission denied" in_cg other.service sh -c "printf sk-evil > $d/.scratch.tmp"
	fails "Permission denied" touch "$d/ROOT_KEY"
	run ls -A "$d"
	eq "$(echo $output)" "ANTHROPIC_API_KEY OPENAI_API_KEY"

	run in_cg ai-gateway.service sh -c "printf sk-openai-2 > $d/OPENAI_API_KEY && printf sk-new-1 > $d/NEW_KEY"
	[ "$status" -eq 0 ] || { echo "admitted writer: $output" >&2; false; }
	expect_audit "$(audit_of write OPENAI_API_KEY)" version=2 unit=ai-gateway.service result=ok
	expect_audit "$(audit_of create NEW_KEY)" version=1 unit=ai-gateway.service result=ok
	gives "$d/OPENAI_API_KEY" sk-openai-2 in_cg ai-gateway.service
	gives "$d/NEW_KEY" sk-new-1 in_cg ai-gateway.service
}

@test "unit=: root_bypass lets root in, not other users" {
	mount_with_values -o allow_other,owner=ai_gateway:$AIGW,unit=ai_gateway:ai-gateway.service,root_bypass
	local f=$MNT/ai_gateway/OPENAI_API_KEY
	gives "$f" sk-openai-1
	expect_audit "$(audit_of read OPENAI_API_KEY)" uid=0 unit=- result=ok
	refused "$f" as $AIGW
	expect_audit "$(audit_of read OPENAI_API_KEY)" uid="$(id -u $AIGW)" unit=- result=EACCES
	gives "$f" sk-openai-1 in_cg ai-gateway.service setpriv --reuid=$AIGW --regid=$AIGW --clear-groups
	expect_audit "$(audit_of read OPENAI_API_KEY)" uid="$(id -u $AIGW)" unit=ai-gateway.service result=ok
}

@test "cgroup=: the cgroup itself and below it are admitted; a sibling, a longer name and the root cgroup are not" {
	mount_with_values -o cgroup=mcp_server:/$CGNAME/mcp
	local f=$MNT/mcp_server/MCP_TOKEN
	gives "$f" sk-mcp-1 in_cg mcp
	expect_audit "$(audit_of read MCP_TOKEN)" pid="$(cat "$T/pid")" unit=- result=ok
	gives "$f" sk-mcp-1 in_cg mcp/worker/deeper.scope
	expect_audit "$(audit_of read MCP_TOKEN)" unit=deeper.scope result=ok
	refused "$f" in_cg mcp2
	refused "$f" in_cg other
	refused "$f"
	expect_audit "$(audit_of read MCP_TOKEN)" unit=- result=EACCES
	# non-root users are held to it too (with allow_other the kernel lets them in)
	remount -o allow_other,owner=mcp_server:$MCP,cgroup=mcp_server:/$CGNAME/mcp/
	refused "$f" as $MCP
	gives "$f" sk-mcp-1 in_cg mcp setpriv --reuid=$MCP --regid=$MCP --clear-groups
}

@test "unit=/cgroup=: a secret in several scopes opens for a process any of its scopes admits" {
	# the link is made before the policy: changing a secret needs every
	# scope it touches to admit the caller, and no process is in both
	mount_with_values
	ln "$MNT/ai_gateway/OPENAI_API_KEY" "$MNT/mcp_server/OPENAI_API_KEY"
	remount -o unit=ai_gateway:ai-gateway.service,cgroup=mcp_server:/$CGNAME/mcp
	fails "Permission denied" unlink "$MNT/mcp_server/OPENAI_API_KEY"
	log_has "unlink of OPENAI_API_KEY refused to uid 0 .* does not admit it to all of them"
	gives "$MNT/ai_gateway/OPENAI_API_KEY" sk-openai-1 in_cg ai-gateway.service
	gives "$MNT/mcp_server/OPENAI_API_KEY" sk-openai-1 in_cg mcp
	gives "$MNT/ai_gateway/OPENAI_API_KEY" sk-openai-1 in_cg mcp
	refused "$MNT/ai_gateway/OPENAI_API_KEY" in_cg other.service
	refused "$MNT/mcp_server/OPENAI_API_KEY" in_cg other.service
	# a secret in one scope only: the other scope's processes are refused
	refused "$MNT/ai_gateway/ANTHROPIC_API_KEY" in_cg mcp
	refused "$MNT/mcp_server/MCP_TOKEN" in_cg ai-gateway.service
}

@test "unit=: a caller the policy refuses cannot take a secret out of its scope with ln or mv and then read it" {
	# aigw may write to ai_gateway and ai_agent (their owner), but only
	# ai-gateway.service may open ai_gateway's secrets.
	mount_with_values -o allow_other,owner=ai_gateway:$AIGW,owner=ai_agent:$AIGW,unit=ai_gateway:ai-gateway.service
	local f=$MNT/ai_gateway/OPENAI_API_KEY
	refused "$f" as $AIGW
	run as $AIGW ln "$f" "$MNT/ai_agent/OPENAI_API_KEY"
	echo "ln by a refused caller: status $status: $output" >&2
	not_readable "$MNT/ai_agent/OPENAI_API_KEY" as $AIGW
	run as $AIGW mv "$MNT/ai_gateway/ANTHROPIC_API_KEY" "$MNT/ai_agent/ANTHROPIC_API_KEY"
	echo "mv by a refused caller: status $status: $output" >&2
	not_readable "$MNT/ai_agent/ANTHROPIC_API_KEY" as $AIGW
}

@test "unit=: a caller the policy refuses cannot rotate a restricted secret with mv (as a write is refused)" {
	mount_with_values -o allow_other,owner=ai_gateway:$AIGW,owner=ai_agent:$AIGW,unit=ai_gateway:ai-gateway.service
	local f=$MNT/ai_gateway/OPENAI_API_KEY
	fails "Permission denied" as $AIGW sh -c "printf sk-evil > $f"
	as $AIGW sh -c "printf sk-evil > $MNT/ai_agent/.new"
	run as $AIGW mv "$MNT/ai_agent/.new" "$f"
	echo "mv by a refused caller: status $status: $output" >&2
	local mv_status=$status
	[[ "$output" == *"Permission denied"* ]]
	gives "$f" sk-openai-1 in_cg ai-gateway.service
	[ "$mv_status" -ne 0 ]
	expect_audit "$(audit_of rename OPENAI_API_KEY)" result=EACCES
}

@test "cgroup=: a scratch file is as secret as its scope: refused callers cannot read, append, truncate, label, unlink or rename it; all audited" {
	mount_with_values -o cgroup=ai_gateway:/$CGNAME/gw
	local d=$MNT/ai_gateway next=$MNT/ai_gateway/.OPENAI_API_KEY.new
	# the admitted service writes the next value
	in_cg gw sh -c "printf sk-next-value > $next"
	# root outside the cgroup: refused everywhere, nothing changes
	refused "$next"
	fails "Permission denied" sh -c "printf sk-evil >> $next"
	fails "Permission denied" truncate -s 2 "$next"
	fails "Permission denied" setfattr -n user.tag.x -v y "$next"
	fails "Permission denied" rm "$next"
	fails "Permission denied" mv "$next" "$d/.elsewhere"
	fails "Permission denied" mv "$next" "$d/OPENAI_API_KEY"
	expect_audit "$(audit_of read ai_gateway/.OPENAI_API_KEY.new)" result=EACCES
	expect_audit "$(audit_of unlink ai_gateway/.OPENAI_API_KEY.new)" result=EACCES
	log_has 'ai_gateway/.OPENAI_API_KEY.new: read refused'
	# the admitted service publishes exactly what it wrote
	in_cg gw mv "$next" "$d/OPENAI_API_KEY"
	gives "$d/OPENAI_API_KEY" sk-next-value in_cg gw
	# and its reads of scratch files are audited like secrets'
	in_cg gw sh -c "printf sk-other > $d/.tmp.new"
	gives "$d/.tmp.new" sk-other in_cg gw
	expect_audit "$(audit_of read ai_gateway/.tmp.new)" result=ok
}

@test "cgroup=: a refused caller cannot join a name an admitted writer is creating, and so never reads its value" {
	mount_store -o cgroup=mcp_server:/$CGNAME/mcp
	local go=$T/go ready=$T/ready
	# an admitted writer creates mcp_server/LEAK and holds it open
	in_cg mcp python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.02)
os.write(fd, b"sk-topsecret")
os.close(fd)' "$MNT/mcp_server/LEAK" "$ready" "$go" &
	local writer=$!
	for _ in $(seq 1 200); do [ -e "$ready" ] && break; sleep 0.02; done
	# root outside the cgroup: the same name in a scope without rules
	run python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o600))' \
		"$MNT/ai_gateway/LEAK"
	local joined=$output
	touch "$go"
	wait "$writer"
	echo "join: $joined"
	# refused (the name is being created in mcp_server)
	[[ "$joined" == *"File exists"* || "$joined" == *"Permission denied"* ]]
	eq "$(getfattr --only-values -n secretsfs.scopes "$MNT/mcp_server/LEAK")" mcp_server
	not_readable "$MNT/ai_gateway/LEAK"
	gives "$MNT/mcp_server/LEAK" sk-topsecret in_cg mcp
}

@test "cgroup=: a refused create of a name just unlinked leaves no empty name behind in any scope" {
	mount_store -o cgroup=ai_gateway:/$CGNAME/gw
	in_cg gw sh -c "printf sk-v > $MNT/ai_gateway/TOMBX && ln $MNT/ai_gateway/TOMBX $MNT/mcp_server/TOMBX"
	in_cg gw rm "$MNT/ai_gateway/TOMBX" "$MNT/mcp_server/TOMBX"
	run touch "$MNT/ai_gateway/TOMBX"   # refused; touch may still say 0 (utimensat)
	echo "touch: status $status: $output"
	run ls -a "$MNT/ai_gateway" "$MNT/mcp_server"
	[[ "$output" != *TOMBX* ]]
}

@test "scratch files: at most the scope's file mode, whatever the umask (0644 would let others read the next value)" {
	mount_store -o allow_other
	(umask 022 && printf sk-next > "$MNT/ai_gateway/.KEY.new")
	eq "$(stat -c %a "$MNT/ai_gateway/.KEY.new")" 600
	fails "Permission denied" as $MCP "$CAT" "$MNT/ai_gateway/.KEY.new"
}

@test ".versions: root's only, whatever uid= and owner= say: the mount's user and the scope's owner cannot read old values" {
	mount_with_values -o allow_other,uid=$(id -u $AIGW),owner=mcp_server:$MCP
	put "$MNT/mcp_server/MCP_TOKEN" sk-mcp-2
	eq "$(mode_of "$MNT/.versions")" "500 root root"
	eq "$(mode_of "$MNT/.versions/MCP_TOKEN")" "500 root root"
	eq "$(mode_of "$MNT/.versions/MCP_TOKEN/1")" "400 root root"
	refused "$MNT/mcp_server/MCP_TOKEN" as $AIGW
	refused "$MNT/.versions/MCP_TOKEN/1" as $AIGW
	refused "$MNT/.versions/MCP_TOKEN/1" as $MCP
	fails "Permission denied" as $AIGW ls "$MNT/.versions"
	gives "$MNT/mcp_server/MCP_TOKEN" sk-mcp-2 as $MCP
	gives "$MNT/.versions/MCP_TOKEN/1" sk-mcp-1
	fails "Operation not permitted" chmod 0555 "$MNT/.versions/MCP_TOKEN"
}

@test "a secret in two scopes of different owners: each owner reads it through its own scope (a POSIX ACL getfacl shows), not through the other's" {
	mount_with_values -o allow_other,owner=ai_gateway:$AIGW,owner=mcp_server:$MCP
	ln "$MNT/ai_gateway/OPENAI_API_KEY" "$MNT/mcp_server/OPENAI_API_KEY"
	# straight after the ln, with nothing looked at in between
	gives "$MNT/mcp_server/OPENAI_API_KEY" sk-openai-1 as $MCP
	gives "$MNT/ai_gateway/OPENAI_API_KEY" sk-openai-1 as $AIGW
	refused "$MNT/mcp_server/OPENAI_API_KEY" as $AIGW
	getfacl -cp "$MNT/mcp_server/OPENAI_API_KEY" >"$T/acl"
	grep -qx "user::rw-" "$T/acl"
	grep -qx "user:$MCP:rw-" "$T/acl"
	grep -qx "group::---" "$T/acl"
	grep -qx "other::---" "$T/acl"
	! grep -q "$AIGW" "$T/acl"
	# chmod to the mode stat shows (cp -p, sed -i) changes nothing; a chmod
	# of the group bits, which are the ACL's mask, is refused
	chmod "$(stat -c %a "$MNT/ai_gateway/OPENAI_API_KEY")" "$MNT/ai_gateway/OPENAI_API_KEY"
	getfacl -cp "$MNT/ai_gateway/OPENAI_API_KEY" | grep -qx "group::---"
	fails "Operation not permitted" chmod 0600 "$MNT/ai_gateway/OPENAI_API_KEY"
	eq "$(mode_of "$MNT/ai_gateway/OPENAI_API_KEY")" "660 $AIGW $AIGW"
	# the mcp_server owner may also write its scope's file
	printf 'sk-openai-2' | as $MCP tee "$MNT/mcp_server/OPENAI_API_KEY" >/dev/null
	gives "$MNT/ai_gateway/OPENAI_API_KEY" sk-openai-2 as $AIGW
	# a secret of one scope has no ACL; after unlinking the second name the ACL goes
	run getfattr -n system.posix_acl_access "$MNT/mcp_server/MCP_TOKEN"
	[[ "$output" == *"No such attribute"* ]]
	rm "$MNT/mcp_server/OPENAI_API_KEY"
	run getfattr -n system.posix_acl_access "$MNT/ai_gateway/OPENAI_API_KEY"
	[[ "$output" == *"No such attribute"* ]]
	eq "$(mode_of "$MNT/ai_gateway/OPENAI_API_KEY")" "600 $AIGW $AIGW"
	# ACLs are the daemon's: setfacl is refused
	fails "Operation not supported" setfacl -m u:$MCP:r "$MNT/ai_gateway/OPENAI_API_KEY"
}

# ------------------------------------------------------------------ audit

@test "audit: one line per read, create, write, rotate, label-set/-remove, link, move, unscope, rename, delete; field by field; never a value" {
	mount_store
	chmod 0755 "$T"
	local d=$MNT/ai_gateway f=$MNT/ai_gateway/AUD_KEY
	printf 'sk-aud-value-1' | with_pid tee "$f" >/dev/null
	expect_audit "$(audit_of create AUD_KEY)" op=create id=AUD_KEY version=1 uid=0 \
		pid="$(cat "$T/pid")" exe=/usr/bin/tee unit=- result=ok

	gives "$f" "sk-aud-value-1" in_cg aud.service
	expect_audit "$(audit_of read AUD_KEY)" op=read id=AUD_KEY version=1 uid=0 \
		pid="$(cat "$T/pid")" exe="$CAT" unit=aud.service result=ok
	eq "$(audit_lines | grep -c ' op=read id=AUD_KEY ')" 1 "read lines after one cat"
	# metadata does not open: no line
	stat "$f" >/dev/null
	ls -l "$d" >/dev/null
	getfattr -d "$f" >/dev/null
	eq "$(audit_lines | grep -c ' op=read id=AUD_KEY ')" 1 "read lines after stat, ls, getfattr"

	printf 'sk-aud-value-2' | with_pid tee "$f" >/dev/null
	expect_audit "$(audit_of write AUD_KEY)" op=write id=AUD_KEY version=2 uid=0 \
		pid="$(cat "$T/pid")" exe=/usr/bin/tee unit=- result=ok

	printf 'sk-aud-value-3' >"$d/.AUD_KEY.new"
	with_pid mv "$d/.AUD_KEY.new" "$f"
	expect_audit "$(audit_of rotate AUD_KEY)" op=rotate id=AUD_KEY version=3 uid=0 \
		pid="$(cat "$T/pid")" exe=/usr/bin/mv unit=- from=.AUD_KEY.new result=ok

	with_pid setfattr -n user.tag.managed-by -v aigateway "$f"
	expect_audit "$(audit_of label-set AUD_KEY)" op=label-set id=AUD_KEY version=3 \
		pid="$(cat "$T/pid")" exe=/usr/bin/setfattr label=managed-by result=ok
	with_pid setfattr -x user.tag.managed-by "$f"
	expect_audit "$(audit_of label-remove AUD_KEY)" op=label-remove version=3 \
		pid="$(cat "$T/pid")" label=managed-by result=ok
	run setfattr -n user.tag.owner -v me "$f"
	[ "$status" -ne 0 ]
	expect_audit "$(audit_of label-set AUD_KEY)" label=owner result=EINVAL

	with_pid ln "$f" "$MNT/mcp_server/AUD_KEY"
	expect_audit "$(audit_of link AUD_KEY)" op=link id=AUD_KEY version=3 \
		pid="$(cat "$T/pid")" exe=/usr/bin/ln scope=mcp_server result=ok
	with_pid mv "$MNT/mcp_server/AUD_KEY" "$MNT/ai_agent/AUD_KEY"
	expect_audit "$(audit_of move AUD_KEY)" op=move id=AUD_KEY version=3 \
		pid="$(cat "$T/pid")" exe=/usr/bin/mv to=ai_agent result=ok
	with_pid rm "$MNT/ai_agent/AUD_KEY"
	expect_audit "$(audit_of unscope AUD_KEY)" op=unscope id=AUD_KEY version=3 \
		pid="$(cat "$T/pid")" exe=/usr/bin/rm scope=ai_agent result=ok

	# a scratch file renamed onto a free ID creates the secret
	printf 'sk-aud-value-4' >"$d/.fresh"
	with_pid mv "$d/.fresh" "$d/FRESH_KEY"
	expect_audit "$(audit_of create FRESH_KEY)" op=create version=1 from=.fresh result=ok

	# every audit line has the shape; no value anywhere in the log
	local line
	while read -r line; do
		expect_audit "$line"
	done < <(audit_lines)
	! grep -q 'sk-aud-value' "$LOG" || { echo "a value reached the log:" >&2; cat "$LOG" >&2; false; }

	# last, as it fails today: secret → free ID (the value moves, the old ID goes)
	run with_pid mv "$f" "$d/AUD_KEY2"
	local mv_status=$status mv_out=$output
	expect_value "$d/AUD_KEY2" "sk-aud-value-3"
	expect_audit "$(audit_of rename AUD_KEY)" op=rename id=AUD_KEY 'version~[0-9]+' \
		pid="$(cat "$T/pid")" exe=/usr/bin/mv to=AUD_KEY2 result=ok
	eq "$mv_status $mv_out" "0 " "mv AUD_KEY AUD_KEY2"
	with_pid rm "$d/AUD_KEY2"
	expect_audit "$(audit_of delete AUD_KEY2)" op=delete id=AUD_KEY2 'version~[0-9]+' \
		pid="$(cat "$T/pid")" exe=/usr/bin/rm scope=ai_gateway result=ok
}

@test "audit: values with spaces, = or % are %-escaped (exe path, scratch name)" {
	mount_store
	put "$MNT/ai_gateway/ESC_KEY" sk-esc-1
	cp "$CAT" "$T/my cat=50%"
	run "$T/my cat=50%" "$MNT/ai_gateway/ESC_KEY"
	eq "$output" sk-esc-1
	expect_audit "$(audit_of read ESC_KEY)" "exe=$T/my%20cat%3D50%25" result=ok
	printf 'sk-esc-2' >"$MNT/ai_gateway/.new value=1%"
	mv "$MNT/ai_gateway/.new value=1%" "$MNT/ai_gateway/ESC_KEY"
	expect_audit "$(audit_of rotate ESC_KEY)" version=2 "from=.new%20value%3D1%25" result=ok
}

@test "audit=/abs/file: lines appended to a 0600 file (not the log); audit=off: none; audit=syslog: not in the log; bad values refused" {
	new_store
	local a=$T/audit.log
	umask 0
	start_daemon -o audit="$a"
	umask 022
	eq "$(stat -c %a "$a")" 600 "audit file mode"
	put "$MNT/ai_gateway/FILE_KEY" sk-file-1
	gives "$MNT/ai_gateway/FILE_KEY" sk-file-1
	expect_audit "$(audit_of create FILE_KEY "$a")" version=1 result=ok
	expect_audit "$(audit_of read FILE_KEY "$a")" version=1 exe="$CAT" result=ok
	sync "$MNT"
	eq "$(grep -c . "$a")" 2 "lines in the audit file"
	run audit_lines
	eq "$output" "" "audit lines in the daemon log"
	remount -o audit="$a"
	gives "$MNT/ai_gateway/FILE_KEY" sk-file-1
	sync "$MNT"
	eq "$(grep -c . "$a")" 3 "lines after a remount (appended)"
	run grep -c 'sk-file' "$a"
	eq "$output" 0 "values in the audit file"

	remount -o audit=off
	gives "$MNT/ai_gateway/FILE_KEY" sk-file-1
	put "$MNT/ai_gateway/FILE_KEY" sk-file-2
	remount -o audit=syslog
	gives "$MNT/ai_gateway/FILE_KEY" sk-file-2
	run audit_lines
	eq "$output" "" "audit lines in the log with audit=off and audit=syslog"
	eq "$(grep -c . "$a")" 3 "audit file untouched by audit=off"

	stop_daemon
	mount_fails "expected log, syslog, journal, off or an absolute path" -o audit=relative.log
	mount_fails "audit file /nonexistent-dir-xyz/audit.log" -o audit=/nonexistent-dir-xyz/audit.log
}

@test "audit file: lines are written in batches, not one write(2) per open; SIGTERM writes the last batch, none lost" {
	new_store
	local a=$T/audit.log real=$SFS
	# (LeakSanitizer cannot run under ptrace: an ASan build leaves it out here)
	# Every write(2) of the daemon is held 200 ms (strace's delay injection),
	# so lines pile up behind each batch's write however fast or slow the
	# machine runs the cats: one write per open could only come back if
	# batching were gone, not from a slow run.
	printf '#!/bin/sh\nASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" exec strace -f --seccomp-bpf -e trace=write -e inject=write:delay_enter=200000 -o %s %s "$@"\n' \
		"$T/strace" "$real" >"$T/traced"
	chmod +x "$T/traced"
	SFS=$T/traced start_daemon -o audit="$a"
	SFS=$real
	printf 'v' >"$MNT/ai_gateway/BATCH_KEY"
	for _ in $(seq 1 100); do cat "$MNT/ai_gateway/BATCH_KEY" >/dev/null; done
	# the daemon (strace's child) is stopped by SIGTERM, not by an unmount
	local pid
	pid=$(pgrep -P "$DAEMON_PID" -x secretsfs)
	kill -TERM "$pid"
	wait "$DAEMON_PID"
	DAEMON_PID=
	fusermount3 -uz "$MNT" 2>/dev/null || true
	eq "$(grep -c ' op=read id=BATCH_KEY ' "$a")" 100 "read lines after SIGTERM"
	local writes
	writes=$(grep -c 'write([0-9]*, "audit: time=' "$T/strace")
	echo "writes of audit lines: $writes for 101 lines" >&2
	# a batch's write takes 200 ms and a cat is answered meanwhile, so
	# batches hold more than one line unless each cat took over 200 ms
	[ "$writes" -ge 1 ] && [ "$writes" -le 50 ]
}

@test "audit=syslog: lines go to syslog (authpriv.notice) and not to the log" {
	# A private mount namespace with its own /dev/log (this machine has no
	# syslog daemon): the mount, the reader and the listener all live there.
	new_store
	cat >"$T/ns.sh" <<'EOS'
set -eu
T=$1 SFS=$2 STORE=$3 MNT=$4 LOG=$5
LP= P=
trap 'rc=$?; set +e; [ -z "$LP" ] || kill $LP 2>/dev/null
      grep -q " $MNT " /proc/mounts && fusermount3 -uz "$MNT"; [ -z "$P" ] || wait $P; exit $rc' EXIT
mkdir "$T/realdev"
mount --bind /dev "$T/realdev"
mount -t tmpfs -o mode=0755 tmpfs /dev
for n in fuse null zero urandom random; do touch /dev/$n; mount --bind "$T/realdev/$n" /dev/$n; done
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
open(sys.argv[1] + "/syslog.ready", "w").close()
with open(sys.argv[1] + "/syslog", "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536) + b"\n")
' "$T" &
LP=$!
for _ in $(seq 1 200); do [ -e "$T/syslog.ready" ] && break; sleep 0.05; done
"$SFS" "$STORE" "$MNT" -f -o audit=syslog 2>>"$LOG" &
P=$!
for _ in $(seq 1 200); do grep -q " $MNT fuse.secretsfs " /proc/mounts && break; sleep 0.05; done
printf sk-syslog-1 >"$MNT/ai_gateway/SYSLOG_KEY"
cat "$MNT/ai_gateway/SYSLOG_KEY" >"$T/read"
fusermount3 -u "$MNT"
wait $P
P=
EOS
	run unshare -m --propagation private bash "$T/ns.sh" "$T" "$SFS" "$STORE" "$MNT" "$LOG"
	[ "$status" -eq 0 ] || { echo "namespace script: $output" >&2; cat "$LOG" >&2; false; }
	eq "$(cat "$T/read")" sk-syslog-1
	local line
	line=$(grep -o '<[0-9]*>.*audit: .* op=read id=SYSLOG_KEY .*' "$T/syslog") ||
		{ echo "no read line in syslog:" >&2; cat "$T/syslog" >&2; false; }
	[[ "$line" == "<85>"* ]] || { echo "not authpriv.notice (<85>): $line" >&2; false; }
	expect_audit "audit: ${line#*audit: }" op=read id=SYSLOG_KEY version=1 uid=0 exe="$CAT" result=ok
	grep -q ' op=create id=SYSLOG_KEY unit=[^ ]* result=ok .* version=1 ' "$T/syslog"
	run audit_lines
	eq "$output" "" "audit lines in the daemon log"
	run grep -c sk-syslog "$T/syslog" "$LOG"
	eq "$(echo $output)" "$T/syslog:0 $LOG:0" "values in syslog and the log"
}

# -------------------------------------------------- no plaintext left behind

# value_in_memory PID VALUE: prints "hits locked" — how many times VALUE is
# in the process's memory, and how many of those are in locked pages.
value_in_memory() {
	python3 - "$1" "$2" <<'PY'
import re, sys
pid, needle = sys.argv[1], sys.argv[2].encode()
maps, locked = [], {}
cur = None
for line in open(f"/proc/{pid}/smaps"):
    m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
    if m:
        cur = (int(m.group(1), 16), int(m.group(2), 16), m.group(3))
        maps.append(cur)
    elif line.startswith("Locked:") and cur:
        locked[cur] = int(line.split()[1])
hits = in_locked = 0
with open(f"/proc/{pid}/mem", "rb", 0) as mem:
    for start, end, perms in maps:
        if not perms.startswith("r"):
            continue
        try:
            mem.seek(start)
            data = mem.read(end - start)
        except OSError:
            continue
        n = data.count(needle)
        hits += n
        if n and locked.get((start, end, perms), 0) > 0:
            in_locked += n
print(hits, in_locked)
PY
}


@test "memory: a reader's value is only in locked memory, and wiped after; the daemon has RLIMIT_CORE 0" {
	skip_if_sanitized
	mount_store
	put "$MNT/ai_gateway/LOCKED_KEY" sk-locked-value-7f3a9c
	grep -E '^Max core file size +0 +0 ' "/proc/$DAEMON_PID/limits" ||
		{ grep -i core "/proc/$DAEMON_PID/limits" >&2; false; }
	# written and closed: no plaintext left in the daemon (buffers wiped)
	eq "$(value_in_memory "$DAEMON_PID" sk-locked-value-7f3a9c)" "0 0" "hits after the write"
	exec 4<"$MNT/ai_gateway/LOCKED_KEY"
	READER_FD_OPEN=1
	# open: the snapshot holds it, in locked pages only
	local during
	during=$(value_in_memory "$DAEMON_PID" sk-locked-value-7f3a9c)
	exec 4<&-
	READER_FD_OPEN=
	echo "value in daemon memory while open (hits, in locked pages): $during" >&2
	local hits=${during% *} in_locked=${during#* }
	[ "$hits" -ge 1 ]
	eq "$in_locked" "$hits" "hits in locked pages"
	# released: wiped
	eq "$(value_in_memory "$DAEMON_PID" sk-locked-value-7f3a9c)" "0 0" "hits after release"
}

@test "memory: a forced core dump (SIGSEGV) writes no core file" {
	skip_if_sanitized
	new_store
	# the control: here a crashing process does leave a core in its cwd
	cd "$T"
	ulimit -c unlimited
	sh -c 'kill -SEGV $$' || true
	[ -e "$T/core" ] || { echo "no core from the control process: cannot test" >&2; ls -la "$T" >&2; false; }
	rm -f "$T/core"

	start_daemon
	put "$MNT/ai_gateway/CORE_KEY" sk-core-1
	exec 4<"$MNT/ai_gateway/CORE_KEY"
	READER_FD_OPEN=1
	grep -E '^Max core file size +0 +0 ' "/proc/$DAEMON_PID/limits"
	kill -SEGV "$DAEMON_PID"
	local rc=0
	wait "$DAEMON_PID" || rc=$?
	DAEMON_PID=
	exec 4<&-
	READER_FD_OPEN=
	fusermount3 -uz "$MNT"
	eq "$rc" 139 "daemon exit status (killed by SIGSEGV)"
	run find "$T" -xdev -name 'core*'
	eq "$output" "" "core files"
	cd /
}

@test "memory: reads bypass the page cache: a new cat after a rotation by mv gives the new value; an older reader keeps its value" {
	mount_store
	local f=$MNT/ai_gateway/DIO_KEY
	put "$f" sk-dio-1
	gives "$f" sk-dio-1
	exec 4<"$f"
	READER_FD_OPEN=1
	printf 'sk-dio-2' >"$MNT/ai_gateway/.DIO_KEY.new"
	mv "$MNT/ai_gateway/.DIO_KEY.new" "$f"
	gives "$f" sk-dio-2
	eq "$(cat <&4)" sk-dio-1 "older reader"
	exec 4<&-
	READER_FD_OPEN=
	# nothing of the file is resident in the page cache
	run fincore --bytes --noheadings --output RES "$f"
	echo "fincore: status $status: $output" >&2
	if [ "$status" -eq 0 ]; then
		eq "$(echo $output)" 0 "bytes in the page cache"
	fi
}

@test "key: a key file open to group or others is refused at mount with a clear error" {
	new_store
	chmod 0644 "$STORE/key"
	mount_fails "key file $STORE/key is open to group or others; make it private: chmod 0400 $STORE/key"
	chmod 0640 "$STORE/key"
	mount_fails "is open to group or others"
	cp "$STORE/key" "$T/elsewhere.key"
	chmod 0644 "$T/elsewhere.key"
	mount_fails "key file $T/elsewhere.key is open to group or others" -o key="$T/elsewhere.key"
	# private again: it mounts
	chmod 0400 "$STORE/key"
	start_daemon
}

@test "key: taken from \$CREDENTIALS_DIRECTORY/secretsfs.key when set and no -o key=" {
	mount_store
	put "$MNT/ai_gateway/CRED_KEY" sk-cred-1
	stop_daemon
	mkdir -m 0700 "$T/creds"
	mv "$STORE/key" "$T/creds/secretsfs.key"
	chmod 0400 "$T/creds/secretsfs.key"
	# without the variable, no key
	mount_fails "key file $STORE/key not found"
	CREDENTIALS_DIRECTORY=$T/creds start_daemon
	gives "$MNT/ai_gateway/CRED_KEY" sk-cred-1
	stop_daemon
	# -o key= wins over the variable
	head -c 32 /dev/urandom >"$T/wrong.key"
	chmod 0400 "$T/wrong.key"
	CREDENTIALS_DIRECTORY=$T/creds mount_fails "does not open the store" -o key="$T/wrong.key"
}

@test "a scope taken away stays away when the secret is then deleted and created again (install(1) within the tombstone window)" {
	mount_with_values -o allow_other,owner=ai_gateway:$AIGW,owner=mcp_server:$MCP
	ln "$MNT/ai_gateway/OPENAI_API_KEY" "$MNT/mcp_server/OPENAI_API_KEY"
	rm "$MNT/mcp_server/OPENAI_API_KEY"   # revoked from mcp_server
	rm "$MNT/ai_gateway/OPENAI_API_KEY"
	put "$MNT/ai_gateway/OPENAI_API_KEY" sk-openai-2
	[ ! -e "$MNT/mcp_server/OPENAI_API_KEY" ]
	eq "$(getfattr --only-values -n secretsfs.scopes "$MNT/ai_gateway/OPENAI_API_KEY")" ai_gateway
}
