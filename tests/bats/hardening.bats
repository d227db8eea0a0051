#!/usr/bin/env bats
# Files the daemon opens, and audit lines that must survive hostile
# callers (security items 9, 11, 12): a key file, audit file or host-attrs
# file that another user owns or planted is refused, never adopted; init
# writes its key through a directory it holds and uses the bytes it made;
# a FIFO as the audit file cannot hang the mount; an audit line keeps op,
# id, unit and result whatever the length of the caller's exe path; a
# caller whose /proc/PID/exe the daemon may not read is named by its comm,
# marked unverified.
#
# Users: sfs-aigw (as in access.bats; created if missing and left) and
# nobody (uid 65534, the "other user" who owns planted files).
load helper

AIGW=sfs-aigw
OTHER=nobody

setup() {
	id -u "$AIGW" >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "$AIGW" 2>/dev/null ||
		id -u "$AIGW" >/dev/null 2>&1 || { echo "cannot create user $AIGW" >&2; return 1; }
	OTHER_UID=$(id -u "$OTHER")
	CAT=$(readlink -f "$(command -v cat)")
	FIFO_FD=
}

teardown() {
	if [ -n "${FIFO_FD:-}" ]; then exec 5<&-; fi
	unmount_store
}

# as USER CMD...: runs CMD as USER (uid, gid, no supplementary groups).
as() {
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$u" --clear-groups "$@"
}

# mount_fails PATTERN [ARGS...]: mounting $STORE on $MNT fails within 10 s
# (timeout: a hang is a failure too) with PATTERN in its one-line message,
# and leaves no mount.
mount_fails() {
	local pat=$1
	shift
	fails "$pat" timeout 10 "$SFS" "$STORE" "$MNT" -f "$@" || return 1
	[ "$status" -ne 124 ] || { echo "the mount hung: $output" >&2; return 1; }
	[ "$(printf '%s\n' "$output" | grep -c .)" -eq 1 ] ||
		{ echo "not a one-line error: $output" >&2; return 1; }
	! grep -q " $MNT " /proc/mounts || { echo "mounted anyway" >&2; return 1; }
}

# spaces N: N spaces.
spaces() { printf "%$1s" ""; }

# audit_line OP ID FILE: the last audit line for OP on ID in FILE.
audit_line() {
	sync "$MNT" # the lines still batched
	grep -o 'audit: .*' "$3" | grep -E " op=$1 id=$2 " | tail -n 1
}

# long_cat N...: a copy of cat under $T in directories of N spaces each;
# prints its path.
long_cat() {
	local d=$T/x n
	for n in "$@"; do d=$d/$(spaces "$n"); done
	mkdir -p "$d"
	cp "$CAT" "$d/cat"
	printf '%s\n' "$d/cat"
}

# ------------------------------------------------------------ the key file

@test "key: a key file owned by another user is refused at mount, with the owner and the fix" {
	new_store
	chown "$OTHER" "$STORE/key"
	mount_fails "key file $STORE/key is owned by uid $OTHER_UID, not by this daemon (uid 0): chown 0 $STORE/key"
	# the mode rule still holds once the owner is right
	chown 0 "$STORE/key"
	chmod 0440 "$STORE/key"
	mount_fails "is open to group or others"
	chmod 0400 "$STORE/key"
	start_daemon
}

@test "init: a DIR that is a symlink, or that another user can write to, is refused; nothing is created in it" {
	T=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-test.XXXXXX")
	MNT=$T/mnt LOG=$T/log
	mkdir -p "$T/elsewhere" "$T/open"
	ln -s "$T/elsewhere" "$T/link"
	fails "is a symlink" "$SFS" init "$T/link"
	[ -z "$(ls -A "$T/elsewhere")" ] || { ls -la "$T/elsewhere" >&2; false; }
	# a directory another user owns, or may write to, can have its key
	# swapped under init
	chown "$OTHER" "$T/open"
	fails "is owned by uid $OTHER_UID" "$SFS" init "$T/open"
	chown 0 "$T/open"
	chmod 0777 "$T/open"
	fails "writable by group or others" "$SFS" init "$T/open"
	[ -z "$(ls -A "$T/open")" ] || { ls -la "$T/open" >&2; false; }
	chmod 0700 "$T/open"
	run "$SFS" init "$T/open"
	[ "$status" -eq 0 ] || { echo "$output" >&2; false; }
}

@test "init: a key swapped in at DIR/key while init writes it is never used; a planted one is refused" {
	T=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-test.XXXXXX")
	MNT=$T/mnt LOG=$T/log
	mkdir -p "$MNT"
	shim=$(dirname "$SFS")/../tests/swap_key.so
	if ldd "$SFS" | grep -q libasan; then
		skip "the sanitizer build cannot take a preloaded library before its runtime"
	fi
	[ -f "$shim" ] || { echo "no $shim (build the tests)" >&2; return 1; }
	# the key "they" know, swapped in at init's first fsync of DIR (the
	# moment between writing the key and using it)
	head -c 32 /dev/zero >"$T/known"
	chmod 0400 "$T/known"
	cp "$T/known" "$T/known.copy"
	STORE=$T/store
	run env LD_PRELOAD="$shim" SWAP_KEY_FROM="$T/known.copy" SWAP_KEY_TO="$STORE/key" \
		"$SFS" init "$STORE"
	echo "init: $status $output"
	[ ! -e "$T/known.copy" ] || { echo "the swap did not happen" >&2; return 1; }
	# whatever init said, the store must not open with the key they know
	run timeout 20 "$SFS" "$STORE" "$MNT" -o key="$T/known"
	echo "mount with the known key: $status $output"
	[ "$status" -ne 0 ]
	! grep -q " $MNT " /proc/mounts
	# and a key planted before init (a file or a symlink) is refused
	mkdir -m 0700 "$T/s1" "$T/s2"
	ln -s "$T/known" "$T/s1/key"
	fails "$T/s1/key is a key with no store beside it (a key from elsewhere is never adopted)" "$SFS" init "$T/s1"
	[ ! -e "$T/s1/store.db" ]
	[ -L "$T/s1/key" ]
	cp "$T/known" "$T/s2/key"
	chown "$OTHER" "$T/s2/key"
	fails "$T/s2/key is a key with no store beside it (a key from elsewhere is never adopted)" "$SFS" init "$T/s2"
	[ ! -e "$T/s2/store.db" ]
	[ "$(stat -c %u "$T/s2/key")" = "$OTHER_UID" ]
}

# ---------------------------------------------------------- the audit file

@test "audit: a FIFO as the audit file refuses the mount at once, with or without a reader" {
	new_store
	mkfifo -m 0600 "$T/audit.fifo"
	mount_fails "audit file $T/audit.fifo is not a regular file" -o audit="$T/audit.fifo"
	exec 5<>"$T/audit.fifo"
	FIFO_FD=1
	mount_fails "audit file $T/audit.fifo is not a regular file" -o audit="$T/audit.fifo"
}

@test "audit: an audit file owned by another user, or writable by group or others, is refused" {
	new_store
	touch "$T/audit.log"
	chmod 0600 "$T/audit.log"
	chown "$OTHER" "$T/audit.log"
	mount_fails "audit file $T/audit.log is owned by uid $OTHER_UID, not by this daemon (uid 0)" \
		-o audit="$T/audit.log"
	chown 0 "$T/audit.log"
	chmod 0620 "$T/audit.log"
	mount_fails "audit file $T/audit.log is writable by group or others" -o audit="$T/audit.log"
	[ ! -s "$T/audit.log" ]
	# a new file is made 0600, and a private file of ours is taken
	start_daemon -o audit="$T/new.log"
	[ "$(stat -c '%a %u' "$T/new.log")" = "600 0" ]
	stop_daemon
	chmod 0600 "$T/audit.log"
	start_daemon -o audit="$T/audit.log"
}

# ---------------------------------------------------------- host-attrs

@test "host-attrs: a file or symlink planted at the temporary name is not adopted" {
	mount_store
	printf 'v' >"$MNT/ai_gateway/HA_KEY"
	# a file of another user's where the daemon writes its temporary
	touch "$STORE/host-attrs.tmp"
	chown "$OTHER" "$STORE/host-attrs.tmp"
	chmod 0640 "$MNT/ai_gateway/HA_KEY"
	[ "$(stat -c '%u %a' "$STORE/host-attrs")" = "0 600" ]
	grep -qx 'secret HA_KEY 0640 - -' "$STORE/host-attrs"
	# a symlink there, to a file the daemon must not write
	echo precious >"$T/victim"
	ln -s "$T/victim" "$STORE/host-attrs.tmp"
	chmod 0604 "$MNT/ai_gateway/HA_KEY"
	[ "$(stat -c '%u %a' "$STORE/host-attrs")" = "0 600" ]
	[ ! -L "$STORE/host-attrs" ]
	grep -qx 'secret HA_KEY 0604 - -' "$STORE/host-attrs"
	[ "$(cat "$T/victim")" = precious ]
	remount
	[ "$(stat -c %a "$MNT/ai_gateway/HA_KEY")" = 604 ]
}

@test "host-attrs: a host-attrs file owned by another user, writable by others, or not a file is refused at mount" {
	mount_store
	printf 'v' >"$MNT/ai_gateway/HA_KEY"
	chmod 0644 "$MNT/ai_gateway/HA_KEY"
	stop_daemon
	chown "$OTHER" "$STORE/host-attrs"
	mount_fails "host-attrs file $STORE/host-attrs is owned by uid $OTHER_UID, not by this daemon (uid 0)"
	chown 0 "$STORE/host-attrs"
	chmod 0666 "$STORE/host-attrs"
	mount_fails "host-attrs file $STORE/host-attrs is writable by group or others"
	chmod 0600 "$STORE/host-attrs"
	mv "$STORE/host-attrs" "$T/ha"
	ln -s "$T/ha" "$STORE/host-attrs"
	mount_fails "host-attrs file $STORE/host-attrs is a symlink"
	rm "$STORE/host-attrs"
	mv "$T/ha" "$STORE/host-attrs"
	start_daemon
	[ "$(stat -c %a "$MNT/ai_gateway/HA_KEY")" = 644 ]
}

# ---------------------------------------------------------- audit lines

@test "audit file: a 660-space exe path keeps op, id, unit and result; the exe is cut and marked" {
	new_store
	start_daemon -o audit="$T/audit.log"
	printf 'v' >"$MNT/ai_gateway/LONG_KEY"
	lc=$(long_cat 220 220 220)
	"$lc" "$MNT/ai_gateway/LONG_KEY" >/dev/null
	line=$(audit_line read LONG_KEY "$T/audit.log")
	echo "line: $line"
	[[ "$line" == *" unit="* ]]
	[[ "$line" == *" result=ok"* ]]
	[[ "$line" == *" uid=0 "* ]]
	[[ "$line" =~ \ exe=[^\ ]*%20%20…(\ |$) ]]
	[ "${#line}" -lt 1024 ]
}

@test "log: a 450-space exe path keeps unit and result in the audit line and the policy warning, escaped" {
	mount_store
	printf 'v' >"$MNT/ai_gateway/LONG_KEY"
	remount -o unit=ai_gateway:nothing-matches.service
	lc=$(long_cat 225 225)
	run "$lc" "$MNT/ai_gateway/LONG_KEY"
	[ "$status" -ne 0 ]
	log_has 'audit: .* op=read id=LONG_KEY .*'
	line=$(audit_line read LONG_KEY "$LOG")
	echo "audit: $line"
	[[ "$line" == *" unit="* ]]
	[[ "$line" == *" result=EACCES"* ]]
	warn=$(grep 'read refused to uid' "$LOG" | tail -n 1)
	echo "warning: $warn"
	[[ "$warn" == *"does not admit it" ]]
	[[ "$warn" == *"%20%20"* ]]
	[[ "$warn" != *"  "* ]]
}

@test "exe: a caller whose /proc/PID/exe the daemon may not read is audited by its comm, marked unverified" {
	new_store
	chmod 0755 "$T" # for sfs-aigw to reach the mount
	real=$SFS
	cat >"$T/noptrace" <<EOF
#!/bin/sh
exec setpriv --bounding-set=-sys_ptrace "$real" "\$@"
EOF
	chmod 0755 "$T/noptrace"
	SFS=$T/noptrace start_daemon -o allow_other,owner=ai_gateway:"$AIGW"
	printf 'v' >"$MNT/ai_gateway/COMM_KEY"
	run as "$AIGW" "$CAT" "$MNT/ai_gateway/COMM_KEY"
	[ "$status" -eq 0 ] || { echo "read as $AIGW: $output" >&2; return 1; }
	[ "$output" = v ]
	log_has 'audit: .* op=read id=COMM_KEY '
	line=$(audit_line read COMM_KEY "$LOG")
	echo "line: $line"
	[[ "$line" =~ \ uid=$(id -u "$AIGW")\  ]]
	[[ "$line" == *" exe=? comm=cat" ]]
}

@test "exe: the comm of a caller the daemon may not ptrace is read again at each open (a name changed between two opens shows), through one kept /proc/PID/comm" {
	new_store
	chmod 0755 "$T"
	real=$SFS
	cat >"$T/noptrace" <<EOF
#!/bin/sh
ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}detect_leaks=0" exec strace -f -e trace=openat -o "$T/strace" setpriv --bounding-set=-sys_ptrace "$real" "\$@"
EOF
	chmod 0755 "$T/noptrace"
	SFS=$T/noptrace start_daemon -o allow_other,owner=ai_gateway:"$AIGW"
	SFS=$real
	printf 'v' >"$MNT/ai_gateway/COMM_KEY"
	run as "$AIGW" /usr/bin/python3 -c '
import os, sys
print(os.getpid())
for name in ("first-name", "second-name"):
    with open("/proc/self/comm", "w") as c:
        c.write(name)
    with open(sys.argv[1]) as f:
        f.read()' "$MNT/ai_gateway/COMM_KEY"
	[ "$status" -eq 0 ] || { echo "reads as $AIGW: $output" >&2; return 1; }
	local pid=$output
	log_has " op=read id=COMM_KEY .* pid=$pid .* exe=\\? comm=first-name$"
	log_has " op=read id=COMM_KEY .* pid=$pid .* exe=\\? comm=second-name$"
	# kept per thread only where the kernel has PIDFD_GET_INFO (6.13);
	# without it /proc/PID/comm is opened at each open, as before
	python3 -c 'import os, fcntl; fcntl.ioctl(os.pidfd_open(os.getpid()), 0xC040FF0B, bytearray(b"\x04" + bytes(63)))' 2>/dev/null ||
		skip "the kernel has no PIDFD_GET_INFO: /proc/PID/comm is opened at each open"
	eq "$(grep -c "open.*\"/proc/$pid/comm\"" "$T/strace")" 1 "opens of /proc/$pid/comm"
}

@test "exe: after an execve by a non-leader thread (its tid becomes the leader's), the next open is audited by the new program's comm" {
	new_store
	chmod 0755 "$T"
	real=$SFS
	printf '#!/bin/sh\nexec setpriv --bounding-set=-sys_ptrace "%s" "$@"\n' "$real" >"$T/noptrace"
	chmod 0755 "$T/noptrace"
	SFS=$T/noptrace start_daemon -o allow_other,owner=ai_gateway:"$AIGW"
	SFS=$real
	printf 'v' >"$MNT/ai_gateway/EXEC_KEY"
	run as "$AIGW" /usr/bin/python3 -c '
import os, sys, threading
print(os.getpid(), flush=True)
with open("/proc/self/comm", "w") as c:
    c.write("before-exec")
with open(sys.argv[1]) as f:
    f.read()
def go():
    os.execv(sys.argv[2], [sys.argv[2], sys.argv[1]])
t = threading.Thread(target=go)
t.start()
t.join()' "$MNT/ai_gateway/EXEC_KEY" "$CAT"
	[ "$status" -eq 0 ] || { echo "as $AIGW: $output" >&2; return 1; }
	local pid=${lines[0]}
	eq "${lines[1]}" v "what the exec'd cat read"
	log_has " op=read id=EXEC_KEY .* pid=$pid .* exe=\\? comm=before-exec$"
	log_has " op=read id=EXEC_KEY .* pid=$pid .* exe=\\? comm=cat$"
}
