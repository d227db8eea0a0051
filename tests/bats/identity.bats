#!/usr/bin/env bats
# The core under concurrency (docs/design.md "Identity and changes"): a
# name never reaches another secret or a later incarnation of the same ID;
# a commit close() reported as failed never happens later; a refused write
# leaves nothing to commit; scratch files are as secret as their scope.
# One test per finding of the core issue, each failing on the core before
# incarnations and change records.

load helper

setup() { :; }
teardown() {
	# descriptors a failed test left open would keep the mount busy
	exec 7>&- 8>&-
	unmount_store
}

# py SCRIPT ARGS...: runs python3 with the mount as sys.argv[1].
py() {
	local script=$1
	shift
	python3 -c "$LOCKER_DEF
$script" "$MNT" "$@"
}

# LOCKER (in py scripts): a python program that holds the write lock of
# the database argv[1] for argv[2] seconds, as sqlite3 in another process
# could, and says "locked" when it has it.
LOCKER_DEF='LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE"); print("locked", flush=True)
time.sleep(float(sys.argv[2])); db.execute("ROLLBACK")
"""'

# the store locked from outside makes a commit fail (EBUSY after SQLite's
# 5 s busy timeout, EIO to the writer)

@test "1. after mv A B and a new A, the name B still reaches B: never the new A" {
	mount_store
	printf 'a-one' >"$MNT/ai_gateway/A"
	printf 'b-one' >"$MNT/ai_gateway/B"
	cat "$MNT/ai_gateway/A" "$MNT/ai_gateway/B" >/dev/null  # both names cached
	mv "$MNT/ai_gateway/A" "$MNT/ai_gateway/B"
	printf 'a-two' >"$MNT/ai_gateway/A"
	# within the kernel's entry timeout of the old name
	expect_value "$MNT/ai_gateway/B" a-one
	printf 'b-two' >"$MNT/ai_gateway/B"
	expect_value "$MNT/ai_gateway/A" a-two
	expect_value "$MNT/ai_gateway/B" b-two
	getfattr -n user.tag.x "$MNT/ai_gateway/B" 2>/dev/null || true
	setfattr -n user.tag.who -v b "$MNT/ai_gateway/B"
	run getfattr --only-values -n user.tag.who "$MNT/ai_gateway/A"
	[ "$status" -ne 0 ]
}

@test "2. a close() that failed (store locked) is never committed later at release" {
	mount_store
	printf 'kept' >"$MNT/ai_gateway/K"
	# (the locker starts first: a child forked while the file is open
	# would flush it at its exec)
	run py '
import os, sys, subprocess, time
locker = subprocess.Popen([sys.executable, "-c", LOCKER, sys.argv[2], "6.5"],
                          stdout=subprocess.PIPE)
locker.stdout.readline()
p = os.path.join(sys.argv[1], "ai_gateway", "K")
fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"never-stored")
dup = os.dup(fd)
try:
    os.close(dup)
    print("first close: ok")
except OSError as e:
    print("first close:", e.strerror)
locker.wait()
try:
    os.close(fd)
    print("last close: ok")
except OSError as e:
    print("last close:", e.strerror)
' "$STORE/store.db"
	echo "$output"
	[[ "$output" == *"first close: Input/output error"* ]]
	[[ "$output" == *"last close: Input/output error"* ]]
	sleep 0.3
	expect_value "$MNT/ai_gateway/K" kept
	eq "$(sfs_version "$MNT/ai_gateway/K")" 1
	remount
	expect_value "$MNT/ai_gateway/K" kept
}

@test "4. an edit opened before a delete and re-create fails (EIO, log line) and changes nothing" {
	mount_store
	printf 'first-life' >"$MNT/ai_gateway/R"
	run py '
import os, sys
p = os.path.join(sys.argv[1], "ai_gateway", "R")
fd = os.open(p, os.O_RDWR)
os.unlink(p)
with open(p, "wb") as f:
    f.write(b"second")
os.pwrite(fd, b"EDITED", 0)
try:
    os.close(fd)
    print("close: ok")
except OSError as e:
    print("close:", e.strerror)
'
	[[ "$output" == *"close: Input/output error"* ]]
	expect_value "$MNT/ai_gateway/R" second
	eq "$(sfs_version "$MNT/ai_gateway/R")" 1
	log_has 'R: write not stored: the secret was deleted'
	# the same with O_TRUNC: a whole new value, still not into the new life
	run py '
import os, sys
p = os.path.join(sys.argv[1], "ai_gateway", "R")
fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
os.unlink(p)
with open(p, "wb") as f:
    f.write(b"third")
os.write(fd, b"LATE")
try:
    os.close(fd)
    print("close: ok")
except OSError as e:
    print("close:", e.strerror)
'
	[[ "$output" == *"close: Input/output error"* ]]
	expect_value "$MNT/ai_gateway/R" third
}

@test "5. -o fast: a deleted and re-created secret never serves the old value, and an old fd never the new one" {
	mount_store -o fast
	printf 'the-deleted-value-is-long' >"$MNT/ai_gateway/.F.new"
	mv "$MNT/ai_gateway/.F.new" "$MNT/ai_gateway/F"
	run py '
import os, sys, subprocess
d = os.path.join(sys.argv[1], "ai_gateway")
p = os.path.join(d, "F")
fd = os.open(p, os.O_RDONLY)
print("old fd:", os.pread(fd, 100, 0))
os.unlink(p)
with open(os.path.join(d, ".F.new"), "wb") as f:
    f.write(b"new")
os.rename(os.path.join(d, ".F.new"), p)
with open(p, "rb") as f:
    print("new name:", f.read())
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
try:
    print("old fd again:", os.pread(fd, 100, 0))
except OSError as e:
    print("old fd again:", e.strerror)
'
	echo "$output"
	[[ "$output" == *"new name: b'new'"* ]]
	[[ "$output" != *"old fd again: b'new"* ]]
	expect_value "$MNT/ai_gateway/F" new
}

@test "6. rm of a new secret while its first commit is in flight: once rm succeeded, it does not exist" {
	mount_store
	run py '
import os, sys, threading, time
d = os.path.join(sys.argv[1], "ai_gateway")
bad = 0
for i in range(300):
    p = os.path.join(d, "NB_%d" % i)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"value")
    res = {}
    def rm():
        time.sleep(0.0005 * (i % 7))
        try:
            os.unlink(p); res["rm"] = True
        except OSError:
            res["rm"] = False
    t = threading.Thread(target=rm); t.start()
    try:
        os.close(fd)
    except OSError:
        pass
    t.join()
    if res["rm"] and os.path.exists(p):
        bad += 1
        print("round %d: rm returned 0, and the secret exists" % i)
print("bad:", bad)
'
	echo "$output" | tail -3
	[[ "$output" == *"bad: 0"* ]]
	remount
	run ls "$MNT/ai_gateway"
	for name in $output; do
		# whatever exists was not removed by a successful rm
		[ -s "$MNT/ai_gateway/$name" ]
	done
}

@test "7. SIGTERM with a writer open: its value is committed, the daemon exits 0 (no use after free)" {
	mount_store
	printf 'old' >"$MNT/ai_gateway/T"
	exec 7>"$MNT/ai_gateway/T"
	printf 'written-at-stop' >&7
	kill -TERM "$DAEMON_PID"
	wait "$DAEMON_PID"
	DAEMON_PID=
	exec 7>&-
	fusermount3 -uz "$MNT" 2>/dev/null || true
	! grep -E 'AddressSanitizer|runtime error' "$LOG"
	start_daemon
	expect_value "$MNT/ai_gateway/T" written-at-stop
}

@test "8. writes through an fd of a scratch file renamed onto an ID fail (EIO), never vanish" {
	mount_store
	printf 'v1' >"$MNT/ai_gateway/S"
	run py '
import os, sys
d = os.path.join(sys.argv[1], "ai_gateway")
fd = os.open(os.path.join(d, ".S.new"), os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, b"v2")
os.rename(os.path.join(d, ".S.new"), os.path.join(d, "S"))
try:
    os.write(fd, b"-more")
    print("write: ok")
except OSError as e:
    print("write:", e.strerror)
os.close(fd)
'
	[[ "$output" == *"write: Input/output error"* ]]
	expect_value "$MNT/ai_gateway/S" v2
	log_has 'write refused: the file was renamed onto S and stored'
}

@test "9. mv of a secret onto a free ID with a commit racing it: an acknowledged commit is never lost" {
	mount_store
	run py '
import os, sys, threading, subprocess, time
d = os.path.join(sys.argv[1], "ai_gateway")
lost = 0
for i in range(6):
    a, b = os.path.join(d, "SRC_%d" % i), os.path.join(d, "DST_%d" % i)
    with open(a, "wb") as f:
        f.write(b"before")
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, sys.argv[2], "0.8"],
                              stdout=subprocess.PIPE)
    locker.stdout.readline()
    fd = os.open(a, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b"commit-%d" % i)
    res = {}
    def mv():
        try:
            os.rename(a, b); res["mv"] = "ok"
        except OSError as e:
            res["mv"] = e.strerror
    t = threading.Thread(target=mv); t.start()
    time.sleep(0.2)
    try:
        os.close(fd); closed = True
    except OSError:
        closed = False
    t.join(); locker.wait()
    vals = []
    for p in (a, b):
        try:
            vals.append(open(p, "rb").read())
        except OSError:
            pass
    if closed and b"commit-%d" % i not in vals:
        lost += 1
        print("round %d: close returned 0, mv %s, but the values are %r" % (i, res["mv"], vals))
print("lost:", lost)
' "$STORE/store.db"
	echo "$output"
	[[ "$output" == *"lost: 0"* ]]
}

@test "10. a purged value's ciphertext is in no file of the store directory, the WAL included" {
	mount_store
	printf 'doomed-value' >"$MNT/ai_gateway/D"
	ct=$(sqlite3 "$STORE/store.db" "SELECT hex(substr(ct, 1, 32)) FROM versions WHERE id = 'D'")
	[ ${#ct} -eq 64 ]
	has_ct() {
		python3 - "$STORE" "$ct" <<'PY'
import os, sys
needle = bytes.fromhex(sys.argv[2])
found = [f for f in os.listdir(sys.argv[1])
         if os.path.isfile(os.path.join(sys.argv[1], f)) and
         needle in open(os.path.join(sys.argv[1], f), "rb").read()]
print(" ".join(found))
sys.exit(0 if found else 1)
PY
	}
	has_ct
	rm "$MNT/ai_gateway/D"
	# kept for undo (-o keep_deleted, sealed) until purged
	has_ct
	rm "$MNT/.deleted/D"
	run has_ct
	echo "still in: $output"
	[ "$status" -eq 1 ]
	# with -o keep_deleted=0 the rm itself purges
	remount -o keep_deleted=0
	printf 'doomed-value' >"$MNT/ai_gateway/D"
	ct=$(sqlite3 "$STORE/store.db" "SELECT hex(substr(ct, 1, 32)) FROM versions WHERE id = 'D'")
	has_ct
	rm "$MNT/ai_gateway/D"
	run has_ct
	echo "still in: $output"
	[ "$status" -eq 1 ]
}

@test "12. a write refused for its size (EFBIG) leaves nothing to commit: the old value stays" {
	mount_store
	printf 'the-key' >"$MNT/ai_gateway/BIG"
	run sh -c "head -c 100000 /dev/zero | tr '\\0' A > '$MNT/ai_gateway/BIG'"
	[ "$status" -ne 0 ]
	expect_value "$MNT/ai_gateway/BIG" the-key
	run dd if=/dev/zero of="$MNT/ai_gateway/BIG" bs=4k count=20
	[ "$status" -ne 0 ]
	expect_value "$MNT/ai_gateway/BIG" the-key
	eq "$(sfs_version "$MNT/ai_gateway/BIG")" 1
	# a scratch file that hit the limit cannot be renamed onto a secret
	run sh -c "head -c 100000 /dev/zero | tr '\\0' A > '$MNT/ai_gateway/.BIG.new'"
	[ "$status" -ne 0 ]
	run mv "$MNT/ai_gateway/.BIG.new" "$MNT/ai_gateway/BIG"
	[ "$status" -ne 0 ]
	expect_value "$MNT/ai_gateway/BIG" the-key
	log_has 'a write to it was refused'
}

@test "13. ln after a rotation, a scope move, a write and an rm never gets ENOENT (the kernel's link count)" {
	mount_store
	run py '
import os, sys
mnt = sys.argv[1]
A, B, C = "ai_agent", "ai_gateway", "mcp_server"
p = lambda s, x: os.path.join(mnt, s, x)
def put(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    fd = os.open(path, flags, 0o600); os.write(fd, data); os.close(fd)
bad = 0
for i in range(600):
    x = "R%d" % i
    put(p(A, x), b"v1")
    os.link(p(A, x), p(B, x))
    put(p(A, ".t"), b"v2", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    os.rename(p(A, ".t"), p(A, x))      # rotation: the kernel drops a link
    os.rename(p(B, x), p(C, x))
    put(p(C, x), b"v3", os.O_WRONLY | os.O_TRUNC)
    os.unlink(p(A, x))
    try:
        os.link(p(C, x), p(A, x))
    except OSError as e:
        bad += 1
        print("round %d: ln: %s" % (i, e.strerror))
        continue
    os.unlink(p(A, x)); os.unlink(p(C, x))
print("failed:", bad)
'
	echo "$output" | tail -5
	[[ "$output" == *"failed: 0"* ]]
}

@test "13. the same, made certain: a lookup reply held while the same secret is written" {
	# The lost correction, made to happen every time (tests/tools/reply_hold.c
	# holds the lookup reply of the unlink's fresh lookup while a write
	# commits).  Before: the commit's invalidation made the kernel drop the
	# held reply's link count, the unlink took it to 0, and ln got ENOENT
	# without asking the daemon.
	shim=$(dirname "$SFS")/../tests/reply_hold.so
	if ldd "$SFS" | grep -q libasan; then
		skip "the sanitizer build cannot take a preloaded library before its runtime"
	fi
	[ -f "$shim" ]
	new_store
	REPLY_HOLD_TRIGGER=$T/hold LD_PRELOAD=$shim start_daemon
	cd "$MNT"
	printf v1 >ai_agent/X
	ln ai_agent/X ai_gateway/X
	printf v2 >ai_agent/.t
	mv ai_agent/.t ai_agent/X          # a rotation: the kernel drops a link
	mv ai_gateway/X mcp_server/X
	touch "$T/hold"
	unlink ai_agent/X & rm_pid=$!   # unlink(2) alone: rm would stat first
	sleep 0.1
	printf v3 >mcp_server/X            # commits while the reply is held
	wait "$rm_pid"
	rm -f "$T/hold"
	run ln mcp_server/X ai_agent/X
	cd /
	echo "$output"
	[ "$status" -eq 0 ]
	eq "$(stat -c %h "$MNT/ai_agent/X")" 2
	expect_value "$MNT/ai_agent/X" v3
}

@test "a writer opened on a new name never writes into a secret another change created under it meanwhile" {
	mount_store
	cd "$MNT/ai_gateway"
	exec 7>NEWX                        # pending: not stored yet
	printf fromrename >.newx.tmp
	mv .newx.tmp NEWX                  # stored by the rename
	printf stale >&7                   # (bash's >&7 is a dup: it commits)
	closed=$(python3 -c 'import os
try:
    os.close(7); print("ok")
except OSError as e:
    print("failed")' 7>&7)
	exec 7>&-
	cd /
	eq "$closed" failed
	expect_value "$MNT/ai_gateway/NEWX" fromrename
	eq "$(sfs_version "$MNT/ai_gateway/NEWX")" 1
}

@test "a removed secret's open file: fstat, fgetxattr and ftruncate answer, never ESTALE; its commit fails" {
	mount_store
	printf 'value' >"$MNT/ai_gateway/GONE"
	setfattr -n user.tag.k -v v "$MNT/ai_gateway/GONE"
	run py '
import os, sys
p = os.path.join(sys.argv[1], "ai_gateway", "GONE")
fd = os.open(p, os.O_RDWR)
os.unlink(p)
out = []
for name, f in [("fstat", lambda: os.fstat(fd).st_nlink),
                ("fgetxattr", lambda: os.getxattr(fd, "user.tag.k")),
                ("flistxattr", lambda: os.listxattr(fd)),
                ("ftruncate", lambda: os.ftruncate(fd, 2))]:
    try:
        out.append("%s=%r" % (name, f()))
    except OSError as e:
        out.append("%s:%s" % (name, e.strerror))
try:
    os.close(fd); out.append("close=ok")
except OSError as e:
    out.append("close:" + e.strerror)
print(" ".join(out))
'
	echo "$output"
	[[ "$output" != *"Stale"* ]]
	[[ "$output" == *"fstat=0"* ]]
	[[ "$output" == *"fgetxattr=b'v'"* ]]
	[[ "$output" == *"close:Input/output error"* ]]
	[ ! -e "$MNT/ai_gateway/GONE" ]
}

@test "chmod of a deleted secret does not come back with a new secret of the same ID at the next mount" {
	mount_store -o allow_other
	printf a >"$MNT/ai_gateway/MODEX"
	chmod 0644 "$MNT/ai_gateway/MODEX"
	rm "$MNT/ai_gateway/MODEX"
	printf b >"$MNT/ai_gateway/MODEX"
	eq "$(stat -c %a "$MNT/ai_gateway/MODEX")" 600
	remount -o allow_other
	eq "$(stat -c %a "$MNT/ai_gateway/MODEX")" 600
}

@test "a name pending in one scope is not joined by the same ID created in another (squatting a future ID)" {
	mount_store
	exec 8>"$MNT/ai_gateway/NEW_KEY"   # held open, nothing written: pending in ai_gateway
	run sh -c "printf sk-admin > '$MNT/mcp_server/NEW_KEY'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"File exists"* ]]
	log_has 'not created: NEW_KEY is being created in ai_gateway'
	# created by mv in the other scope: stored there only, and the pending
	# descriptor never commits into it
	printf sk-admin >"$MNT/mcp_server/.NEW_KEY.new"
	mv "$MNT/mcp_server/.NEW_KEY.new" "$MNT/mcp_server/NEW_KEY"
	printf sk-squatter >&8 || true
	exec 8>&-
	eq "$(getfattr --only-values -n secretsfs.scopes "$MNT/mcp_server/NEW_KEY")" mcp_server
	expect_value "$MNT/mcp_server/NEW_KEY" sk-admin
	[ ! -e "$MNT/ai_gateway/NEW_KEY" ]
}

@test "a squatter's pending name is not taken over by the secret another scope creates: no inode, mode or open file passes" {
	mount_store
	exec 8>"$MNT/ai_gateway/FUTURE_KEY"   # pending in ai_gateway, held open
	chmod 0644 "$MNT/ai_gateway/FUTURE_KEY"
	sq_ino=$(stat -c %i "$MNT/ai_gateway/FUTURE_KEY")
	printf sk-admin-secret >"$MNT/mcp_server/.FUTURE_KEY.new"
	mv "$MNT/mcp_server/.FUTURE_KEY.new" "$MNT/mcp_server/FUTURE_KEY"
	[ "$(stat -c %i "$MNT/mcp_server/FUTURE_KEY")" != "$sq_ino" ]
	eq "$(stat -c %a "$MNT/mcp_server/FUTURE_KEY")" 600
	# the squatter's descriptor reaches nothing: reading through it
	# (/proc/self/fd) is refused, its commit fails
	run python3 -c 'import os; print(open("/proc/self/fd/8", "rb").read())' 8>&8
	[[ "$output" != *"sk-admin-secret"* ]]
	printf squat >&8 || true
	exec 8>&-
	expect_value "$MNT/mcp_server/FUTURE_KEY" sk-admin-secret
	eq "$(getfattr --only-values -n secretsfs.scopes "$MNT/mcp_server/FUTURE_KEY")" mcp_server
}

@test "two descriptors on one new file: the later commit is its next version (last writer wins, as on a stored secret)" {
	mount_store
	exec 7>"$MNT/ai_gateway/NEW2"
	exec 8>"$MNT/ai_gateway/NEW2"
	printf first >&8
	printf second >&7
	exec 7>&- 8>&-
	expect_value "$MNT/ai_gateway/NEW2" second
}

@test "chmod of a secret renamed away does not come back with a new secret of its old ID at the next mount" {
	mount_store -o allow_other
	printf a >"$MNT/ai_gateway/MODEX"
	chmod 0644 "$MNT/ai_gateway/MODEX"
	mv "$MNT/ai_gateway/MODEX" "$MNT/ai_gateway/MODEY"
	printf b >"$MNT/ai_gateway/MODEX"
	remount -o allow_other
	eq "$(stat -c %a "$MNT/ai_gateway/MODEX")" 600
}

@test "chmod by the new name right after mv reaches the renamed secret, even while its old inode is open" {
	mount_store
	printf a >"$MNT/ai_gateway/CHX"
	exec 8<"$MNT/ai_gateway/CHX"
	mv "$MNT/ai_gateway/CHX" "$MNT/ai_gateway/CHY"
	chmod 0640 "$MNT/ai_gateway/CHY"
	setfattr -n user.tag.k -v v "$MNT/ai_gateway/CHY"
	exec 8<&-
	eq "$(stat -c %a "$MNT/ai_gateway/CHY")" 640
	eq "$(getfattr --only-values -n user.tag.k "$MNT/ai_gateway/CHY")" v
}
