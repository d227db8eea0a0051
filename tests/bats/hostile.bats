#!/usr/bin/env bats
# Hostile and broken input through the mount (issue 6): names at and past
# the limits, values at and past 65,536 bytes, writes at huge offsets, a
# full disk, a read-only store, a locked database, a missing or bad key,
# two daemons on one store, a store whose rows were altered.  Whatever
# happens, the daemon answers with an errno, keeps the old value, and
# exits 0 at unmount (teardown checks that, and its log for sanitizer
# reports).
load helper

setup() {
	DISK=
	BIND=
}

teardown() {
	local rc=0
	stop_daemon || rc=$?
	[ -z "${BIND:-}" ] || umount "$BIND" 2>/dev/null || umount -l "$BIND" 2>/dev/null
	[ -z "${DISK:-}" ] || umount "$DISK" 2>/dev/null || umount -l "$DISK" 2>/dev/null
	[ -z "${HOLDER_PID:-}" ] || { touch "$T/release"; wait "$HOLDER_PID" 2>/dev/null; }
	unmount_store || rc=$?
	[ $rc -eq 0 ]
}

# store_on_tmpfs SIZE: like new_store, with the store on a tmpfs of SIZE
# mounted for this test ($DISK).
store_on_tmpfs() {
	T=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-test.XXXXXX")
	MNT=$T/mnt
	LOG=$T/log
	DISK=$T/disk
	mkdir -p "$MNT" "$DISK"
	mount -t tmpfs -o size="$1",mode=0700 tmpfs "$DISK"
	STORE=$DISK/store
	"$SFS" init "$STORE" >/dev/null
}

# put FILE SRC: copies SRC into FILE with open(O_TRUNC)/write/close and
# prints "ok", or the errno name of the call that failed ("close EIO").
# (The shell's "> FILE" ignores close(), where a commit is reported.)
put() {
	python3 - "$1" "$2" <<'PY'
import errno, os, sys
data = open(sys.argv[2], "rb").read()
step = "open"
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    step = "write"
    off = 0
    while off < len(data):
        off += os.write(fd, data[off:])
    step = "close"
    os.close(fd)
    print("ok")
except OSError as e:
    print(step, errno.errorcode.get(e.errno, e.errno))
    sys.exit(1)
PY
}

# errname CMD...: runs a python statement list with os imported, printing
# "ok" or the errno name it raised.
errname() {
	python3 -c "
import errno, os, sys
try:
    $1
    print('ok')
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
" "${@:2}"
}

@test "names: a 255-byte ID is a secret; a 256-byte name is ENAMETOOLONG (statfs says 255), not a silent scratch file" {
	mount_store
	G=$MNT/ai_gateway
	id255=A$(head -c 254 /dev/zero | tr '\0' B)
	name256=A$(head -c 255 /dev/zero | tr '\0' B)
	scratch255=.$(head -c 254 /dev/zero | tr '\0' x)
	[ "$(stat -f -c %l "$G")" = 255 ]
	printf 'v255' >"$G/$id255"
	expect_value "$G/$id255" v255
	[ "$(getfattr --absolute-names --only-values -n secretsfs.id "$G/$id255")" = "$id255" ]
	printf 'scratch' >"$G/$scratch255"
	expect_value "$G/$scratch255" scratch
	run errname 'os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600))' "$G/$name256"
	echo "create of a 256-byte name: $output"
	[ "$output" = ENAMETOOLONG ]
	[ "$(ls "$G" | grep -c '^AB')" = 1 ]
	remount
	expect_value "$G/$id255" v255
	[ ! -e "$G/$scratch255" ]
}

@test "names: a newline or invalid UTF-8 in a dot-file makes a scratch file (listed, renamable, never stored) and cannot forge log lines" {
	mount_store
	G=$MNT/ai_gateway
	nl=$(printf '.X\nsecretsfs: error: FORGED by a file name')
	bad=$(printf '.bad\xff\xfe\x80name')
	# the same names without the dot are refused, and their log line is
	# no forged one either
	run sh -c "printf x > \"\$1\"" sh "$G/${nl#.}"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
	printf 'one' >"$G/$nl"
	printf 'two' >"$G/$bad"
	expect_value "$G/$nl" one
	expect_value "$G/$bad" two
	[ "$(ls -A "$G" | wc -l)" -ge 2 ]
	mv "$G/$bad" "$G/FROM_BAD_NAME"
	expect_value "$G/FROM_BAD_NAME" two
	rm "$G/$nl"
	printf 'three' >"$G/$nl"
	# and a scratch file with a newline renamed onto an ID (the audit
	# trail names the file a rotation came from)
	nl2=$(printf '.tmp\nsecretsfs: info: audit: FORGED op=read id=X result=ok')
	printf 'four' >"$G/$nl2"
	mv "$G/$nl2" "$G/FROM_NL_NAME"
	expect_value "$G/FROM_NL_NAME" four
	rm "$G/FROM_NL_NAME"
	remount
	[ "$(ls -A "$G")" = FROM_BAD_NAME ]
	expect_value "$G/FROM_BAD_NAME" two
	# the name is logged, but inside a line of the daemon's own: no line
	# of the log is one the file name wrote
	grep -q 'FORGED' "$LOG"
	if grep -qE '^secretsfs: (error|info: audit): FORGED' "$LOG"; then
		echo "a file name forged a log line:" >&2
		grep -n -B1 'FORGED' "$LOG" >&2
		return 1
	fi
}

@test "values: 65,536 bytes are stored whole; 65,537 bytes is EFBIG and the old value stays" {
	mount_store
	F=$MNT/ai_gateway/BIG
	head -c 65536 /dev/urandom >"$T/v64k"
	head -c 65537 /dev/urandom >"$T/v64k1"
	[ "$(put "$F" "$T/v64k")" = ok ]
	cmp "$T/v64k" "$F"
	[ "$(stat -c %s "$F")" = 65536 ]
	run put "$F" "$T/v64k1"
	echo "65,537 bytes: $output"
	[ "$output" = "write EFBIG" ]
	cmp "$T/v64k" "$F"
	remount
	cmp "$T/v64k" "$F"
	[ "$(sfs_version "$F")" = 1 ]
}

@test "values: writes at huge offsets are EFBIG and change nothing; a write ending at 65,536 is fine" {
	mount_store
	F=$MNT/ai_gateway/OFFSETS
	printf 'base' >"$F"
	for off in 65536 4294967296 1099511627776 9223372036854775806; do
		run errname 'fd = os.open(sys.argv[1], os.O_WRONLY)
    try:
        os.pwrite(fd, b"x", int(sys.argv[2]))
    finally:
        os.close(fd)' "$F" "$off"
		echo "pwrite at $off: $output"
		[ "$output" = EFBIG ]
		expect_value "$F" base
	done
	run errname 'fd = os.open(sys.argv[1], os.O_WRONLY)
    try:
        os.ftruncate(fd, 1 << 40)
    finally:
        os.close(fd)' "$F"
	[ "$output" = EFBIG ]
	expect_value "$F" base
	[ "$(sfs_version "$F")" = 1 ]
	python3 -c 'import os,sys; fd = os.open(sys.argv[1], os.O_WRONLY); os.pwrite(fd, b"z", 65535); os.close(fd)' "$F"
	[ "$(stat -c %s "$F")" = 65536 ]
	[ "$(tail -c 1 "$F")" = z ]
	[ "$(head -c 4 "$F")" = base ]
}

@test "full disk under the store: the commit fails (EIO), the old value stays; once space is back, writes work and survive a remount" {
	store_on_tmpfs 2m
	start_daemon
	F=$MNT/ai_gateway/FULL
	printf 'old-value' >"$F"
	dd if=/dev/zero of="$DISK/filler" bs=4k 2>/dev/null || true
	[ "$(df --output=avail -k "$DISK" | tail -1 | tr -d ' ')" -lt 8 ]
	failed=0
	for i in 1 2 3 4 5 6 7 8; do
		head -c 60000 /dev/urandom >"$T/val"
		run put "$F" "$T/val"
		echo "write $i on a full disk: $output"
		if [ "$output" = ok ]; then
			cmp "$T/val" "$F"
			cp "$T/val" "$T/last"
		else
			[ "$output" = "close EIO" ]
			failed=$((failed + 1))
			if [ -f "$T/last" ]; then cmp "$T/last" "$F"; else expect_value "$F" old-value; fi
		fi
	done
	[ $failed -gt 0 ]
	log_has 'FULL: the store refused the new value \(No space left on device\)'
	rm "$DISK/filler"
	head -c 60000 /dev/urandom >"$T/val"
	[ "$(put "$F" "$T/val")" = ok ]
	remount
	cmp "$T/val" "$F"
}

@test "read-only store filesystem: a read-write mount is refused with the reason; -o ro serves the values and refuses changes (EROFS)" {
	store_on_tmpfs 8m
	start_daemon
	printf 'kept' >"$MNT/ai_gateway/RO_KEY"
	stop_daemon
	# (a filesystem cannot be made read-only while the daemon has its
	# database open for writing: remount,ro is EBUSY; so it is read-only
	# from the start here, as under ProtectSystem=strict without
	# ReadWritePaths=)
	mount -o remount,ro "$DISK"
	run "$SFS" "$STORE" "$MNT" -f
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	! grep -q " $MNT " /proc/mounts
	start_daemon -o ro
	expect_value "$MNT/ai_gateway/RO_KEY" kept
	run errname 'fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC); os.close(fd)' "$MNT/ai_gateway/RO_KEY"
	[ "$output" = EROFS ]
}

@test "database locked by another process: writes fail (EIO) after the busy timeout, reads go on, the old value stays; then writes work again" {
	mount_store
	F=$MNT/ai_gateway/LOCKED
	printf 'one' >"$F"
	python3 - "$STORE/store.db" "$T/release" >"$T/holder" 2>&1 <<'PY' &
import os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
c.execute("UPDATE meta SET key = key")
print("locked", flush=True)
t = time.time()
while not os.path.exists(sys.argv[2]) and time.time() - t < 120:
    time.sleep(0.05)
c.execute("ROLLBACK")
PY
	HOLDER_PID=$!
	for _ in $(seq 1 200); do grep -q locked "$T/holder" && break; sleep 0.05; done
	grep -q locked "$T/holder"
	printf 'two' >"$T/two"
	run put "$F" "$T/two"
	echo "write under the lock: $output"
	[ "$output" = "close EIO" ]
	expect_value "$F" one
	run setfattr -n user.tag.k -v v "$F"
	[ "$status" -ne 0 ]
	log_has 'LOCKED: the store refused the new value \(Device or resource busy\)'
	touch "$T/release"
	wait "$HOLDER_PID"
	HOLDER_PID=
	[ "$(put "$F" "$T/two")" = ok ]
	remount
	expect_value "$F" two
}

@test "key file missing, open to others, short, wrong, a directory or a FIFO at mount: refused with the reason, nothing mounted" {
	new_store
	mv "$STORE/key" "$T/key"
	run "$SFS" "$STORE" "$MNT" -f
	[ "$status" -ne 0 ]
	[[ "$output" == *"key file $STORE/key not found"* ]]
	install -m 0644 "$T/key" "$T/key.open"
	run "$SFS" "$STORE" "$MNT" -f -o key="$T/key.open"
	[ "$status" -ne 0 ]
	[[ "$output" == *"open to group or others"* ]]
	head -c 31 "$T/key" >"$T/key.short"
	chmod 0400 "$T/key.short"
	run "$SFS" "$STORE" "$MNT" -f -o key="$T/key.short"
	[ "$status" -ne 0 ]
	[[ "$output" == *"is not a 32-byte key"* ]]
	head -c 32 /dev/urandom >"$T/key.wrong"
	chmod 0400 "$T/key.wrong"
	run "$SFS" "$STORE" "$MNT" -f -o key="$T/key.wrong"
	[ "$status" -ne 0 ]
	[[ "$output" == *"wrong key"* ]]
	mkdir "$T/key.dir"
	run "$SFS" "$STORE" "$MNT" -f -o key="$T/key.dir"
	[ "$status" -ne 0 ]
	mkfifo -m 0600 "$T/key.fifo"
	run timeout 20 "$SFS" "$STORE" "$MNT" -f -o key="$T/key.fifo"
	echo "a FIFO as key: status $status: $output"
	[ "$status" -ne 124 ]   # refused, not blocked forever in open()
	[ "$status" -ne 0 ]
	! grep -q " $MNT " /proc/mounts
	mv "$T/key" "$STORE/key"
	start_daemon
}

@test "two daemons on one store: the second is refused clearly (also through another path to the store); the first keeps serving" {
	mount_store
	printf 'first' >"$MNT/ai_gateway/SHARED"
	mkdir "$T/mnt2" "$T/other-path"
	run "$SFS" "$STORE" "$T/mnt2" -f
	[ "$status" -ne 0 ]
	[[ "$output" == *"in use by another secretsfs"* ]]
	BIND=$T/other-path
	mount --bind "$STORE" "$BIND"
	run "$SFS" "$BIND" "$T/mnt2" -f
	[ "$status" -ne 0 ]
	[[ "$output" == *"in use by another secretsfs"* ]]
	run "$SFS" "$STORE" "$MNT" -f
	[ "$status" -ne 0 ]
	[[ "$output" == *"busy"* ]]
	! grep -q " $T/mnt2 " /proc/mounts
	expect_value "$MNT/ai_gateway/SHARED" first
	printf 'second' >"$MNT/ai_gateway/SHARED"
	expect_value "$MNT/ai_gateway/SHARED" second
	run "$SFS" init "$STORE"
	[ "$status" -ne 0 ]
	[[ "$output" == *"already holds a store"* ]]
}

@test "a store whose rows were altered: refused by its digest; accepted with -o reseal_digest, lists, reads and labels answer errors, never crash; a tampered value is EIO" {
	mount_store
	printf 'good' >"$MNT/ai_gateway/GOOD"
	printf 'tampered' >"$MNT/mcp_server/TAMPERED"
	printf 'moved' >"$MNT/ai_agent/MOVED"
	printf 'labelled' >"$MNT/ai_gateway/LABELLED"
	stop_daemon
	long=$(head -c 300 /dev/zero | tr '\0' A)
	sqlite3 "$STORE/store.db" "
		INSERT INTO secrets VALUES ('', 1, 1, 4, 0, 0, 9001, 9001, 9001, x'', x'');
		INSERT INTO secrets VALUES ('bad id', 1, 1, 4, 0, 0, 9002, 9002, 9002, x'', x'');
		INSERT INTO secrets VALUES ('../x', 1, 1, 4, 0, 0, 9003, 9003, 9003, x'', x'');
		INSERT INTO secrets VALUES ('A%2FB', 1, 1, 4, 0, 0, 9004, 9004, 9004, x'', x'');
		INSERT INTO secrets VALUES ('$long', 1, 1, 4, 0, 0, 9005, 9005, 9005, x'', x'');
		INSERT INTO secrets VALUES ('NO_SCOPE', 0, 1, 4, 0, 0, 9006, 9006, 9006, x'', x'');
		INSERT INTO secrets VALUES ('ALL_BITS', -1, 1, 4, 0, 0, 9007, 9007, 9007, x'', x'');
		INSERT INTO secrets VALUES ('NO_VERSION', 1, 0, 4, 0, 0, 9008, 9008, 9008, x'', x'');
		INSERT INTO secrets VALUES ('NO_INCARNATION', 1, 1, 4, 0, 0, 0, 0, 0, x'', x'');
		INSERT INTO secrets VALUES ('HUGE_SIZE', 1, 1, 999999999999, 0, 0, 9009, 9009, 9009, x'', x'');
		INSERT INTO labels VALUES ('LABELLED', 'bad key', 'bad
value');
		UPDATE versions SET ct = zeroblob(50) WHERE id = 'TAMPERED';
		UPDATE versions SET id = 'GOOD', version = 7 WHERE id = 'MOVED';"
	# rows added and moved: the store digest refuses the mount ...
	run timeout 10 "$SFS" "$STORE" "$MNT" -f
	[ "$status" -ne 0 ] && [ "$status" -ne 124 ]
	[[ "$output" == *"does not match its authenticated digest"* ]]
	# ... until they are accepted on purpose; each row is still checked
	start_daemon -o reseal_digest
	ls -laR "$MNT" >/dev/null 2>&1 || true
	for f in "$MNT"/*/*; do
		cat "$f" >/dev/null 2>&1 || true
		getfattr -d "$f" >/dev/null 2>&1 || true
		stat "$f" >/dev/null 2>&1 || true
	done
	expect_value "$MNT/ai_gateway/GOOD" good
	run cat "$MNT/mcp_server/TAMPERED"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Input/output error"* ]]
	log_has 'TAMPERED version 1 failed authentication'
	log_has 'the row of NO_INCARNATION has no incarnation \(damaged\): left out'
	[ ! -e "$MNT/ai_gateway/NO_INCARNATION" ]
	# rows not written by secretsfs (no MAC), a label added: left out
	log_has 'NO_SCOPE: has an invalid scope set or size'
	log_has 'HUGE_SIZE: .*: left out'
	log_has 'NO_VERSION: metadata failed authentication'
	log_has 'LABELLED: has invalid labels'
	[ ! -e "$MNT/ai_gateway/NO_VERSION" ]
	[ ! -e "$MNT/ai_gateway/LABELLED" ]
	kill -0 "$DAEMON_PID"
	# the store still takes changes
	printf 'good2' >"$MNT/ai_gateway/GOOD"
	expect_value "$MNT/ai_gateway/GOOD" good2
}

@test "labels: oversized, malformed and too many labels are refused; the labels already there stay" {
	mount_store
	F=$MNT/ai_gateway/LABELLED
	printf 'v' >"$F"
	setfattr -n user.tag.managed-by -v aigateway "$F"
	run setfattr -n user.tag.k -v "$(head -c 257 /dev/zero | tr '\0' a)" "$F"
	[ "$status" -ne 0 ]
	run setfattr -n user.tag.k -v "$(printf 'a\nb')" "$F"
	[ "$status" -ne 0 ]
	run setfattr -n "user.tag.$(head -c 129 /dev/zero | tr '\0' k)" -v v "$F"
	[ "$status" -ne 0 ]
	run setfattr -n user.tag.owner -v me "$F"
	[ "$status" -ne 0 ]
	run errname 'os.setxattr(sys.argv[1], "user.tag.big", b"a" * 65536)' "$F"
	[ "$output" != ok ]
	for i in $(seq 1 70); do
		setfattr -n "user.tag.k$i" -v v "$F" 2>/dev/null || break
	done
	[ "$(getfattr -d "$F" 2>/dev/null | grep -c '^user.tag.')" -le 64 ]
	[ "$(getfattr --absolute-names --only-values -n user.tag.managed-by "$F")" = aigateway ]
	remount
	[ "$(getfattr --absolute-names --only-values -n user.tag.managed-by "$F")" = aigateway ]
	expect_value "$F" v
}
