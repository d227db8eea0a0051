#!/usr/bin/env bats
# systemd credentials per unit over a socket (-o credsocket=PATH, issue
# 14 section 2), audit records as journal fields (section 3), and where a
# backgrounded daemon's log goes (issue 16 item 2): under a real systemd
# 252 booted in a volatile container (tests/bats/nspawn.bash).
load helper
load nspawn

TOP=$BATS_TEST_DIRNAME/../..
SOCK=/run/secretsfs-credentials.sock

# need_nspawn: skips the test, saying why, where no container can be booted.
need_nspawn() {
	local why
	why=$(nspawn_missing)
	[ -z "$why" ] || skip "$why"
}

setup() {
	W=
	[ -z "$(nspawn_missing)" ] || return 0
	W=$(nspawn_workdir)
	sed 's|@bindir@|/usr/local/bin|g' "$TOP/systemd/secretsfs.service.in" \
		>"$W/units/secretsfs.service"
	# served as root (the shipped opt-out): the store is init's default
	mkdir -p "$W/units/secretsfs.service.d"
	sed 's|@bindir@|/usr/local/bin|g' "$TOP/systemd/secretsfs-as-root.conf.in" \
		>"$W/units/secretsfs.service.d/as-root.conf"
	cp "$SFS" "$W/bin/secretsfs"
	# a value no text tool would keep: NUL, 0xff, no final newline
	printf 'sk-proj-\000\001\377 A\n\nZ' >"$W/value1"
}

teardown() {
	[ -z "${W:-}" ] || rm -rf "$W"
	unmount_store
}

# consumer NAME CREDENTIAL-ID: a oneshot unit that loads CREDENTIAL-ID from
# the socket and hands it back byte for byte in out/NAME.
consumer() {
	cat >"$W/units/$1.service" <<EOF
[Service]
Type=oneshot
DynamicUser=yes
ReadWritePaths=/srv/t-out
LoadCredential=$2:$SOCK
# written by the command itself: a unit that fails at the credential step
# leaves no file (StandardOutput=truncate: would be made before that)
ExecStart=/bin/sh -c 'cat "\$CREDENTIALS_DIRECTORY/$2" >/srv/t-out/$1'
EOF
}

# The store gets OPENAI_API_KEY (from check.sh, before any rule applies),
# then secretsfs.service runs with the options in $1.
store_then_serve() {
	cat >"$W/serve.sh" <<'EOF'
secretsfs init /var/lib/secretsfs
systemctl start secretsfs.service
cp /srv/t/value1 /run/secretsfs/ai_gateway/OPENAI_API_KEY
systemctl stop secretsfs.service
# serve OPTIONS: secretsfs.service again, with -o credsocket and OPTIONS
serve() {
	mkdir -p /run/systemd/system/secretsfs.service.d
	printf '[Service]\nExecStart=\nExecStart=/usr/local/bin/secretsfs /var/lib/secretsfs /run/secretsfs -f -o credsocket=/run/secretsfs-credentials.sock%s\n' "$1" \
		>/run/systemd/system/secretsfs.service.d/cred.conf
	systemctl daemon-reload
	systemctl restart secretsfs.service
	test -S /run/secretsfs-credentials.sock
}
# refused UNIT: UNIT failed to start at the credential step, and its
# command never ran (no output file at all: not even an empty key)
refused() {
	not systemctl start "$1.service"
	test "$(systemctl show -P ExecMainStatus "$1.service")" = 243
	test ! -e "/srv/t-out/$1"
}
EOF
}

@test "credsocket: an admitted unit gets the exact bytes, audited with its name; refused units (not admitted, no such secret, no rules at all) do not start; the socket goes at stop" {
	need_nspawn
	consumer consumer OPENAI_API_KEY
	consumer intruder OPENAI_API_KEY
	consumer missing NO_SUCH_KEY
	store_then_serve
	cat >"$W/check.sh" <<'EOF'
. /srv/t/serve.sh
serve ,unit=ai_gateway:consumer.service
systemctl start consumer.service
cp /srv/t-out/consumer /srv/t-out/consumer.1
refused intruder
refused missing
# no unit= or cgroup= rule at all: nothing is served, to anyone
serve ""
rm /srv/t-out/consumer
refused consumer
systemctl stop secretsfs.service
test ! -e /run/secretsfs-credentials.sock
journalctl --sync
journalctl -u secretsfs.service -o cat >/srv/t-out/log
journalctl -u intruder.service -o cat >/srv/t-out/intruder.log
EOF
	nspawn_run "$W"
	same_bytes() { cmp "$1" "$2"; }
	same_bytes "$W/value1" "$W/out/consumer.1"
	grep -q 'audit: .* op=credential id=OPENAI_API_KEY unit=consumer.service result=ok .*version=1 ' "$W/out/log"
	grep -q 'audit: .* op=credential id=OPENAI_API_KEY unit=intruder.service result=EACCES ' "$W/out/log"
	grep -q 'audit: .* op=credential id=NO_SUCH_KEY unit=missing.service result=ENOENT ' "$W/out/log"
	grep -q 'intruder.service may not load OPENAI_API_KEY: no unit= or cgroup= rule of its scopes (ai_gateway) admits it (e.g. -o unit=ai_gateway:intruder.service)' "$W/out/log"
	grep -q 'missing.service asks for NO_SUCH_KEY: no such secret' "$W/out/log"
	[ "$(grep -c 'op=credential id=OPENAI_API_KEY unit=consumer.service result=EACCES ' "$W/out/log")" -eq 1 ]
	grep -q 'Failed to set up credentials' "$W/out/intruder.log"
	# never a value in the log
	! grep -q 'sk-proj' "$W/out/log"
}


@test "credsocket under run_as (the shipped unit's default): the keeper binds the socket, the server (as secretsfs, which cannot write /run) serves it: an admitted unit gets the exact bytes, another is refused; a restart keeps serving it" {
	need_nspawn
	rm "$W/units/secretsfs.service.d/as-root.conf"
	cp "$TOP/systemd/secretsfs.sysusers" "$W/"
	consumer consumer OPENAI_API_KEY
	consumer intruder OPENAI_API_KEY
	cat >"$W/check.sh" <<'EOF'
refused() {
	not systemctl start "$1.service"
	test "$(systemctl show -P ExecMainStatus "$1.service")" = 243
	test ! -e "/srv/t-out/$1"
}
run_as_store
systemctl start secretsfs.service
cp /srv/t/value1 /run/secretsfs/ai_gateway/OPENAI_API_KEY
mkdir -p /run/systemd/system/secretsfs.service.d
printf '[Service]\nExecStart=\nExecStart=/usr/local/bin/secretsfs /var/lib/secretsfs /run/secretsfs -f -o run_as=secretsfs,credsocket=/run/secretsfs-credentials.sock,unit=ai_gateway:consumer.service\n' \
	>/run/systemd/system/secretsfs.service.d/cred.conf
systemctl daemon-reload
systemctl restart secretsfs.service
test -S /run/secretsfs-credentials.sock
stat -c %U /run/secretsfs-credentials.sock >/srv/t-out/sock-owner
systemctl start consumer.service
cp /srv/t-out/consumer /srv/t-out/consumer.1
refused intruder
# a restart (the mount taken over) binds it again: still served
systemctl restart secretsfs.service
rm /srv/t-out/consumer
systemctl start consumer.service
cp /srv/t-out/consumer /srv/t-out/consumer.2
journalctl -u secretsfs.service -o cat >/srv/t-out/log
EOF
	nspawn_run "$W"
	cmp "$W/value1" "$W/out/consumer.1"
	cmp "$W/value1" "$W/out/consumer.2"
	[ "$(cat "$W/out/sock-owner")" = root ]
	grep -q 'serving as secretsfs' "$W/out/log"
	grep -q 'audit: .* op=credential id=OPENAI_API_KEY unit=consumer.service result=ok ' "$W/out/log"
	grep -q 'audit: .* op=credential id=OPENAI_API_KEY unit=intruder.service result=EACCES ' "$W/out/log"
}

@test "credsocket: an address that names another unit is refused (the peer's cgroup decides), and gets the refusal text, not the key" {
	need_nspawn
	consumer consumer OPENAI_API_KEY
	store_then_serve
	cat >"$W/forge.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(b"\0" + b"abc/unit/consumer.service/OPENAI_API_KEY")
s.connect(sys.argv[1])
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
open("/srv/t-out/forged", "wb").write(got)
EOF
	cat >"$W/check.sh" <<'EOF'
. /srv/t/serve.sh
serve ,unit=ai_gateway:consumer.service
python3 /srv/t/forge.py /run/secretsfs-credentials.sock
# and one with no systemd address at all
python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1]); s.shutdown(socket.SHUT_WR)
n = 0
while True:
    b = s.recv(65536)
    if not b: break
    n += len(b)
open("/srv/t-out/anon", "w").write(str(n))' /run/secretsfs-credentials.sock
# the real consumer still gets its key
systemctl start consumer.service
journalctl --sync
journalctl -u secretsfs.service -o cat >/srv/t-out/log
EOF
	nspawn_run "$W"
	[ "$(stat -c %s "$W/out/forged")" -eq $((1024 * 1024 + 1)) ]
	head -c 200 "$W/out/forged" | grep -q '^secretsfs refused this credential; the reason is in its log: journalctl -t secretsfs$'
	! grep -q 'sk-proj' "$W/out/forged"
	[ "$(cat "$W/out/anon")" -eq $((1024 * 1024 + 1)) ]
	grep -q 'claims to start consumer.service: refused' "$W/out/log"
	grep -q 'audit: .* op=credential id=OPENAI_API_KEY unit=check.service result=EPERM ' "$W/out/log"
	grep -q 'audit: .* op=credential id=- unit=check.service result=EPROTO ' "$W/out/log"
	grep -q 'is not systemd loading a credential' "$W/out/log"
	cmp "$W/value1" "$W/out/consumer"
}

@test "credsocket: a unit name at the address limit is served" {
	need_nspawn
	# \0 + 16 hex digits + /unit/ + 69-byte unit + / + OPENAI_API_KEY =
	# 107 bytes, the longest address systemd 252 binds (one byte more and
	# systemd fails the unit itself, before it connects)
	local unit
	unit=$(printf 'u%.0s' $(seq 1 61)).service
	[ ${#unit} -eq 69 ]
	consumer "${unit%.service}" OPENAI_API_KEY
	store_then_serve
	cat >"$W/check.sh" <<EOF
. /srv/t/serve.sh
serve ,unit=ai_gateway:uuu*.service
systemctl start $unit
journalctl --sync
journalctl -u secretsfs.service -o cat >/srv/t-out/log
EOF
	nspawn_run "$W"
	cmp "$W/value1" "$W/out/${unit%.service}"
	grep -q "audit: .* op=credential id=OPENAI_API_KEY unit=$unit result=ok " "$W/out/log"
}

@test "journal: audit records carry SECRETSFS_* fields: journalctl SECRETSFS_ID= says who read a key; -o audit=journal as well" {
	need_nspawn
	consumer consumer OPENAI_API_KEY
	store_then_serve
	cat >"$W/check.sh" <<'EOF'
. /srv/t/serve.sh
serve ,unit=ai_gateway:consumer.service
systemctl start consumer.service
# a read through the mount, refused (check.service is not admitted)
not cat /run/secretsfs/ai_gateway/OPENAI_API_KEY
journalctl --sync
journalctl SECRETSFS_ID=OPENAI_API_KEY -o json >/srv/t-out/by-id.json
# -o audit=journal: the same, whatever the log does
serve ,unit=ai_gateway:consumer.service,audit=journal
systemctl start consumer.service
journalctl --sync
journalctl SECRETSFS_ID=OPENAI_API_KEY SECRETSFS_UNIT=consumer.service -o json >/srv/t-out/explicit.json
EOF
	nspawn_run "$W"
	python3 - "$W/out/by-id.json" "$W/out/explicit.json" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
got = {(r["SECRETSFS_OP"], r["SECRETSFS_UNIT"], r["SECRETSFS_RESULT"], r["SECRETSFS_VERSION"]) for r in recs}
assert ("credential", "consumer.service", "ok", "1") in got, got
assert ("read", "check.service", "EACCES", "1") in got, got
for r in recs:
    assert r["SYSLOG_IDENTIFIER"] == "secretsfs", r
    assert r["MESSAGE"].startswith("audit: time="), r
    assert r["_SYSTEMD_UNIT"] == "secretsfs.service", r
    assert "sk-proj" not in json.dumps(r)
ex = [json.loads(l) for l in open(sys.argv[2])]
assert len(ex) == 2, ex   # one per start of consumer.service
EOF
}

@test "log: a backgrounded daemon's errors are in journalctl -t secretsfs; with no syslog socket it says at start where the log and the audit trail go" {
	need_nspawn
	cat >"$W/check.sh" <<'EOF'
secretsfs init /var/lib/secretsfs
mkdir -p /mnt/a
# mounted, backgrounded (as mount(8) or a Type=forking unit runs it; a
# unit only for LimitMEMLOCK=), an error a person must be able to look up
run() {
	systemd-run -q -p Type=forking -p LimitMEMLOCK=infinity \
		-p StandardError=file:/srv/t-out/start.$1 \
		/usr/local/bin/secretsfs /var/lib/secretsfs /mnt/a
	printf v >/mnt/a/ai_gateway/K_$1
	cat /mnt/a/ai_gateway/K_$1 >/dev/null
	not sh -c "printf w >/mnt/a/mcp_server/K_$1"
	umount /mnt/a
	for i in $(seq 1 100); do pgrep -x secretsfs >/dev/null || break; sleep 0.05; done
}
run 1
journalctl --sync
journalctl -t secretsfs -o cat >/srv/t-out/t.1

# no syslog socket: straight to the journal, and it says so
systemctl stop systemd-journald-dev-log.socket
rm -f /run/systemd/journal/dev-log /dev/log
test ! -e /dev/log
run 2
journalctl --sync
journalctl -t secretsfs -o cat >/srv/t-out/t.2

# no syslog and no journal: stderr stays, and it says where that is
systemctl stop systemd-journald.socket systemd-journald-audit.socket systemd-journald.service
rm -f /run/systemd/journal/socket
run 3
# ... but not a pipe: whoever reads it would wait for ever (out=$(...));
# then it says the log is lost and how to keep it
secretsfs /var/lib/secretsfs /mnt/a -o allow_unlocked 2>&1 | cat >/srv/t-out/start.4
umount /mnt/a
EOF
	nspawn_run "$W"
	# 1: the journal has the error, under -t secretsfs, with the audit trail
	grep -q 'mcp_server/K_1: create refused (EEXIST): secret K_1 already lives in ai_gateway' "$W/out/t.1"
	grep -q '^audit: .* op=read id=K_1 .*result=ok' "$W/out/t.1"
	# (only the line that says it is mounted)
	[ "$(cat "$W/out/start.1")" = "secretsfs: info: mounted the embedded store /var/lib/secretsfs on /mnt/a" ]
	# 2: said at start, and true
	grep -qx 'secretsfs: info: no syslog socket (/dev/log): the log goes to the journal directly (journalctl -t secretsfs), the audit trail with it' "$W/out/start.2"
	grep -q 'mcp_server/K_2: create refused (EEXIST): secret K_2 already lives in ai_gateway' "$W/out/t.2"
	grep -q '^audit: .* op=read id=K_2 .*result=ok' "$W/out/t.2"
	# 3: said at start, and the error and the audit line follow on that
	# stderr (a file); 4: a pipe is not kept, and it says so
	grep -q "^secretsfs: info: no syslog socket (/dev/log) and no journal (/run/systemd/journal/socket): the log stays on this process's stderr (/srv/t-out/start.3), the audit trail with it$" "$W/out/start.3"
	grep -q 'mcp_server/K_3: create refused (EEXIST): secret K_3 already lives in ai_gateway' "$W/out/start.3"
	grep -q 'secretsfs: info: audit: .* op=read id=K_3 .*result=ok' "$W/out/start.3"
	grep -q "^secretsfs: warning: no syslog socket (/dev/log) and no journal (/run/systemd/journal/socket): in the background the log is lost, and the audit trail with it; to keep it, mount with -f, or with stderr sent to a file (2>>FILE), or give the audit trail a file of its own (-o audit=FILE)$" "$W/out/start.4"
}

@test "on_rotate=SCOPE:restart: a new value restarts the units that loaded it, and they get it; a scope without the rule restarts nothing" {
	need_nspawn
	for u in gw:OPENAI_API_KEY mcp:MCP_KEY; do
		cat >"$W/units/${u%%:*}.service" <<EOF
[Service]
DynamicUser=yes
ReadWritePaths=/srv/t-out
LoadCredential=${u#*:}:$SOCK
ExecStart=/bin/sh -c 'cp "\$CREDENTIALS_DIRECTORY/${u#*:}" /srv/t-out/${u%%:*}.new && mv /srv/t-out/${u%%:*}.new /srv/t-out/${u%%:*} && exec sleep infinity'
EOF
	done
	store_then_serve
	cat >"$W/check.sh" <<'EOF'
. /srv/t/serve.sh
systemctl start secretsfs.service
printf sk-mcp-1 >/run/secretsfs/mcp_server/MCP_KEY
systemctl stop secretsfs.service
serve ,unit=ai_gateway:gw.service,unit=ai_gateway:check.service,unit=mcp_server:mcp.service,unit=mcp_server:check.service,on_rotate=ai_gateway:restart
systemctl start gw.service mcp.service
for i in $(seq 1 100); do [ -e /srv/t-out/gw ] && [ -e /srv/t-out/mcp ] && break; sleep 0.1; done
cmp /srv/t/value1 /srv/t-out/gw
gw=$(systemctl show -P InvocationID gw.service)
mcp=$(systemctl show -P InvocationID mcp.service)
# no on_rotate for mcp_server
printf sk-mcp-2 >/run/secretsfs/mcp_server/MCP_KEY
# a rotation in ai_gateway, by mv
printf sk-rotated-2 >/run/secretsfs/ai_gateway/.OPENAI_API_KEY.new
mv /run/secretsfs/ai_gateway/.OPENAI_API_KEY.new /run/secretsfs/ai_gateway/OPENAI_API_KEY
for i in $(seq 1 100); do [ "$(cat /srv/t-out/gw)" = sk-rotated-2 ] && break; sleep 0.1; done
test "$(cat /srv/t-out/gw)" = sk-rotated-2
test "$(systemctl show -P InvocationID gw.service)" != "$gw"
test "$(systemctl show -P ActiveState gw.service)" = active
test "$(systemctl show -P InvocationID mcp.service)" = "$mcp"
test "$(cat /srv/t-out/mcp)" = sk-mcp-1
journalctl --sync
journalctl -u secretsfs.service -o cat >/srv/t-out/log
EOF
	nspawn_run "$W"
	grep -q 'OPENAI_API_KEY has a new value: restarting gw.service, which loaded it as a credential (-o on_rotate)' "$W/out/log"
	! grep -q 'restarting mcp.service' "$W/out/log"
	[ "$(grep -c 'op=credential id=OPENAI_API_KEY unit=gw.service result=ok' "$W/out/log")" -eq 2 ]
}

@test "credsocket: bad places are refused before mounting, each with one line; a stale socket is replaced, a live one is not, and the socket goes at unmount" {
	new_store
	local s=$T/cred.sock
	mount_fails() {
		fails "$1" "$SFS" "$STORE" "$MNT" -f "${@:2}" || return 1
		! mounted || { echo "mounted anyway" >&2; return 1; }
	}
	mount_fails "-o credsocket=rel.sock: expected an absolute path" -o credsocket=rel.sock
	mount_fails "-o credsocket=$MNT/c.sock is inside the mountpoint $MNT" -o credsocket="$MNT/c.sock"
	mount_fails "-o credsocket=$T/nodir/c.sock: its directory: No such file or directory" -o credsocket="$T/nodir/c.sock"
	mount_fails "restarts units that loaded a secret from -o credsocket: give it too" -o on_rotate=ai_gateway:restart
	mount_fails "expected on_rotate=SCOPE:restart" -o credsocket="$s",on_rotate=ai_gateway:reload
	mount_fails "-o on_rotate cannot be combined with -o run_as: restarting a unit takes root" -o credsocket="$s",on_rotate=ai_gateway:restart,run_as=nobody
	mkdir -m 0777 "$T/open"
	mount_fails "-o credsocket=$T/open/c.sock: its directory is writable by group or others" -o credsocket="$T/open/c.sock"
	: >"$T/file"
	mount_fails "-o credsocket=$T/file: exists and is not a socket" -o credsocket="$T/file"
	[ -f "$T/file" ]
	# a socket nobody listens on (a daemon that died) is replaced
	python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$s"
	[ -S "$s" ]
	start_daemon -o credsocket="$s"
	[ "$(stat -c %a "$s")" = 600 ]
	log_has "serving systemd credentials on $s"
	# a second daemon on the same socket is refused, and leaves it alone
	mkdir "$T/mnt2"
	"$SFS" init "$T/store2" >/dev/null
	fails "-o credsocket=$s: another process listens on it" "$SFS" "$T/store2" "$T/mnt2" -f -o credsocket="$s"
	! grep -q " $T/mnt2 " /proc/mounts
	[ -S "$s" ]
	# a connection that is not systemd's gets the refusal text, not nothing
	run python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.shutdown(socket.SHUT_WR)
n = 0
while True:
    b = s.recv(65536)
    if not b: break
    n += len(b)
print(n)' "$s"
	[ "$output" = $((1024 * 1024 + 1)) ]
	stop_daemon
	[ ! -e "$s" ]
}
