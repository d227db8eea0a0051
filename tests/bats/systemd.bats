#!/usr/bin/env bats
# secretsfs under a real systemd (issue 5): the shipped units from systemd/
# run by a systemd 252 booted in a volatile container (tests/bats/nspawn.bash),
# with the daemon just built bound over /usr/local/bin.  The store lives in
# the container's tmpfs /var/lib/secretsfs; nothing of the host changes.
load helper
load nspawn

TOP=$BATS_TEST_DIRNAME/../..

setup_file() {
	BASE=$(mktemp -d /tmp/secretsfs-sd-base.XXXXXX)
	export BASE
	# The units as meson installs them, for a daemon in /usr/local/bin.
	mkdir -p "$BASE/units"
	sed 's|@bindir@|/usr/local/bin|g' "$TOP/systemd/secretsfs.service.in" \
		>"$BASE/units/secretsfs.service"
	sed 's|@bindir@|/usr/local/bin|g' "$TOP/systemd/secretsfs-as-root.conf.in" \
		>"$BASE/as-root.conf"
	cp "$TOP/systemd/secretsfs-example-consumer.service" "$TOP/systemd/run-secretsfs.mount" \
		"$BASE/units/"
	# A value no text tool would keep: NUL, 0xff, no final newline but
	# blank lines before the end.
	printf 'sk-proj-\000\001\377 A\n\nZ' >"$BASE/value1"
	printf 'sk-rotated-\n%s' "$(head -c 300 /dev/zero | tr '\0' x)" >"$BASE/value2"
	# slowmount.so delays the FUSE mount(2) by $SLOW_MOUNT_SECONDS, so that
	# "active only once the mount answers" is visible from outside.
	cat >"$BASE/slowmount.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int mount(const char *src, const char *dst, const char *type, unsigned long flags,
          const void *data)
{
	int (*real)(const char *, const char *, const char *, unsigned long, const void *) =
		(int (*)(const char *, const char *, const char *, unsigned long, const void *))
		dlsym(RTLD_NEXT, "mount");
	const char *s = getenv("SLOW_MOUNT_SECONDS");
	if (s && type && strncmp(type, "fuse", 4) == 0)
		sleep((unsigned)atoi(s));
	return real(src, dst, type, flags, data);
}
EOF
	cc -shared -fPIC -O2 -o "$BASE/slowmount.so" "$BASE/slowmount.c" -ldl
}

teardown_file() {
	rm -rf "$BASE"
}

setup() {
	W=$(nspawn_workdir)
	cp "$BASE"/units/* "$W/units/"
	cp "$SFS" "$W/bin/secretsfs"
	cp "$BASE/value1" "$BASE/value2" "$BASE/slowmount.so" "$TOP/systemd/secretsfs.sysusers" "$W/"
}

# as_root: secretsfs.service with the shipped root-mode drop-in.
as_root() {
	mkdir -p "$W/units/secretsfs.service.d"
	cp "$BASE/as-root.conf" "$W/units/secretsfs.service.d/as-root.conf"
}

teardown() {
	[ -z "${W:-}" ] || rm -rf "$W"
	unmount_store
}

# need_nspawn: skips the test, saying why, where no container can be booted.
need_nspawn() {
	local why
	why=$(nspawn_missing)
	[ -z "$why" ] || skip "$why"
}

# The consumer's ExecStart replaced by one that hands its credential back
# byte for byte (the shipped LoadCredential=, ordering and sandbox stay).
consumer_writes_back() {
	mkdir -p "$W/units/secretsfs-example-consumer.service.d"
	cat >"$W/units/secretsfs-example-consumer.service.d/test.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=/bin/cat ${CREDENTIALS_DIRECTORY}/openai
StandardOutput=truncate:/srv/t-out/openai
EOF
}

# same_bytes EXPECTED ACTUAL
same_bytes() {
	cmp "$1" "$2" || {
		echo "expected: $(od -An -c "$1" | head -c 300)" >&2
		echo "got:      $(od -An -c "$2" 2>&1 | head -c 300)" >&2
		return 1
	}
}

# verify_units: systemd-analyze verify of the units in W/units, in a mount
# namespace with a tmpfs /run (as root, verify leaves
# /run/systemd/systemd-units-load behind) and the daemon in /usr/local/bin,
# where the units under test expect it.  Any output is a failure.
verify_units() {
	run unshare -m --propagation private sh -c '
		mount -t tmpfs tmpfs /run && mount --bind "$1" /usr/local/bin &&
		cd "$2" && exec systemd-analyze verify --man=no \
			secretsfs.service secretsfs-example-consumer.service run-secretsfs.mount' \
		sh "$W/bin" "$W/units"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "systemd-analyze verify prints nothing for the shipped units, with and without the root-mode drop-in" {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
	verify_units
	as_root
	verify_units
}

@test "mount.fuse.secretsfs takes what mount(8) passes, fstab options included" {
	new_store
	ln -s "$SFS" "$T/mount.fuse.secretsfs"
	# what mount(8) runs for: mount -t fuse.secretsfs STORE MNT -o allow_other,_netdev,nofail
	"$T/mount.fuse.secretsfs" "$STORE" "$MNT" -o rw,allow_other,_netdev,nofail,noauto,x-systemd.automount,comment=x 2>"$LOG"
	grep -q " $MNT fuse.secretsfs .*allow_other" /proc/mounts
	printf 'sk-helper' >"$MNT/ai_gateway/OPENAI_API_KEY"
	expect_value "$MNT/ai_gateway/OPENAI_API_KEY" sk-helper
	pid=$(pgrep -f "^$T/mount.fuse.secretsfs $STORE ")
	umount "$MNT"
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	! kill -0 "$pid" 2>/dev/null || false
	! grep -q " $MNT " /proc/mounts || false
}

@test "secretsfs.service: activating with STATUS= until the mount answers; a consumer started meanwhile gets its key byte-exact" {
	need_nspawn
	consumer_writes_back
	cat >"$W/check.sh" <<'EOF'
run_as_store
systemctl start secretsfs.service
cp /srv/t/value1 /run/secretsfs/ai_gateway/OPENAI_API_KEY
systemctl stop secretsfs.service

# From now on the daemon's mount(2) takes 2 seconds.
mkdir -p /run/systemd/system/secretsfs.service.d
printf '[Service]\nEnvironment=LD_PRELOAD=/srv/t/slowmount.so SLOW_MOUNT_SECONDS=2\n' \
	>/run/systemd/system/secretsfs.service.d/slow.conf
systemctl daemon-reload
systemctl start --no-block secretsfs.service
for i in $(seq 1 50); do
	[ -n "$(systemctl show -P StatusText secretsfs.service)" ] && break
	sleep 0.05
done
# started, not ready: activating, saying so, and nothing mounted yet
test "$(systemctl show -P ActiveState secretsfs.service)" = activating
systemctl show -P StatusText secretsfs.service | grep '^Opening the store in /var/lib/secretsfs'
not grep -q ' /run/secretsfs ' /proc/self/mounts
# the consumer's start waits for the service to be ready
systemctl start secretsfs-example-consumer.service
test "$(systemctl show -P Result secretsfs-example-consumer.service)" = success
test "$(systemctl show -P ActiveState secretsfs.service)" = active
systemctl show -P StatusText secretsfs.service | grep -x 'Serving /var/lib/secretsfs on /run/secretsfs as secretsfs'
start=$(systemctl show -P ExecMainStartTimestampMonotonic secretsfs.service)
active=$(systemctl show -P ActiveEnterTimestampMonotonic secretsfs.service)
test $((active - start)) -ge 2000000
EOF
	nspawn_run "$W"
	same_bytes "$W/value1" "$W/out/openai"
}

@test "secretsfs.service serves as the user secretsfs in its own read-only namespace; only the keeper, in the host's namespace, keeps CAP_SYS_ADMIN; a consumer gets its key; the store is secretsfs's, the key root's; stop unmounts and is recorded as success" {
	need_nspawn
	consumer_writes_back
	cat >"$W/check.sh" <<'EOF'
run_as_store
stat -c '%U %a' /var/lib/secretsfs /var/lib/secretsfs/store.db /etc/secretsfs /etc/secretsfs/key >/srv/t-out/owners
systemctl start secretsfs.service
cp /srv/t/value1 /run/secretsfs/ai_gateway/OPENAI_API_KEY
systemctl start secretsfs-example-consumer.service
keeper=$(systemctl show -P MainPID secretsfs.service)
server=$(pgrep -P "$keeper")
grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/$keeper/status >/srv/t-out/keeper
grep -E '^(Uid|CapEff|NoNewPrivs):' /proc/$server/status >/srv/t-out/server
# the mount is made where everyone sees it; the server has a view of its own
test "$(readlink /proc/$keeper/ns/mnt)" = "$(readlink /proc/1/ns/mnt)"
grep -q ' /run/secretsfs fuse.secretsfs ' /proc/1/mounts
test "$(readlink /proc/$server/ns/mnt)" != "$(readlink /proc/1/ns/mnt)"
grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/$server/mountinfo | cut -d' ' -f6 >/srv/t-out/server-root
# no network
test "$(readlink /proc/$keeper/ns/net)" != "$(readlink /proc/1/ns/net)"
# stop: unmounted, both gone, recorded as a success
systemctl stop secretsfs.service
not grep -q ' /run/secretsfs ' /proc/self/mounts
not kill -0 "$keeper"
not kill -0 "$server"
systemctl show -p ActiveState -p Result -p ExecMainStatus -p NRestarts \
	secretsfs.service >/srv/t-out/show
not systemctl is-failed -q secretsfs.service
journalctl -u secretsfs.service -o cat >/srv/t-out/log
EOF
	nspawn_run "$W"
	same_bytes "$W/value1" "$W/out/openai"
	cat "$W/out/show"
	grep -qx 'ActiveState=inactive' "$W/out/show"
	grep -qx 'Result=success' "$W/out/show"
	grep -qx 'ExecMainStatus=0' "$W/out/show"
	grep -qx 'NRestarts=0' "$W/out/show"
	grep -q 'unmounted /run/secretsfs' "$W/out/log"
	grep -q 'serving as secretsfs' "$W/out/log"
	grep -q 'secretsfs.service: Deactivated successfully' "$W/out/journal.log"
	# only the keeper speaks to systemd (NotifyAccess=main refuses others)
	! grep -q 'secretsfs.service: Got notification message from PID' "$W/out/journal.log" || false
	cat "$W/out/owners"
	[ "$(cat "$W/out/owners")" = "$(printf 'secretsfs 700\nsecretsfs 600\nroot 700\nroot 400')" ]
	grep -qx 'Uid:[[:space:]]*0[[:space:]]*0[[:space:]]*0[[:space:]]*0' "$W/out/keeper"
	grep -qx 'CapEff:[[:space:]]*0000000000200000' "$W/out/keeper"
	# the unit's set: CAP_SYS_ADMIN (21), CAP_IPC_LOCK (14), CAP_SETUID (7), CAP_SETGID (6)
	grep -qx 'CapBnd:[[:space:]]*00000000002040c0' "$W/out/keeper"
	grep -qx 'NoNewPrivs:[[:space:]]*1' "$W/out/keeper"
	grep -qx 'Seccomp:[[:space:]]*2' "$W/out/keeper"
	! grep -qx 'Uid:[[:space:]]*0.*' "$W/out/server" || false
	grep -qx 'CapEff:[[:space:]]*0000000000004000' "$W/out/server"
	grep -qx 'NoNewPrivs:[[:space:]]*1' "$W/out/server"
	grep -q '^ro,nosuid' "$W/out/server-root"
}

@test "a secret rotated with mv is what the consumer gets after systemctl restart" {
	need_nspawn
	consumer_writes_back
	cat >"$W/check.sh" <<'EOF'
run_as_store
systemctl start secretsfs.service
cp /srv/t/value1 /run/secretsfs/ai_gateway/OPENAI_API_KEY
systemctl start secretsfs-example-consumer.service
cp /srv/t-out/openai /srv/t-out/openai.1
# rotation: a scratch file renamed over the secret
cp /srv/t/value2 /run/secretsfs/ai_gateway/.OPENAI_API_KEY.new
mv /run/secretsfs/ai_gateway/.OPENAI_API_KEY.new /run/secretsfs/ai_gateway/OPENAI_API_KEY
systemctl restart secretsfs-example-consumer.service
cp /srv/t-out/openai /srv/t-out/openai.2
# and it stays rotated across a restart of secretsfs itself
systemctl restart secretsfs.service
systemctl restart secretsfs-example-consumer.service
cp /srv/t-out/openai /srv/t-out/openai.3
getfattr --only-values -n secretsfs.version /run/secretsfs/ai_gateway/OPENAI_API_KEY >/srv/t-out/version
EOF
	nspawn_run "$W"
	same_bytes "$W/value1" "$W/out/openai.1"
	same_bytes "$W/value2" "$W/out/openai.2"
	same_bytes "$W/value2" "$W/out/openai.3"
	[ "$(cat "$W/out/version")" = 2 ]
}

@test "after a crash, Restart= mounts again over the dead mount" {
	need_nspawn
	# with no fd store to keep the connection (restart_systemd.bats: with)
	mkdir -p "$W/units/secretsfs.service.d"
	printf '[Service]\nFileDescriptorStoreMax=0\n' >"$W/units/secretsfs.service.d/no-fdstore.conf"
	cat >"$W/check.sh" <<'EOF'
run_as_store
systemctl start secretsfs.service
printf 'sk-before-crash' >/run/secretsfs/ai_gateway/OPENAI_API_KEY
systemctl kill --signal=SIGKILL secretsfs.service
# the mount is dead until the restart (RestartSec=1s)
wait_restarted secretsfs.service 1
test "$(systemctl show -P ActiveState secretsfs.service)" = active
test "$(cat /run/secretsfs/ai_gateway/OPENAI_API_KEY)" = sk-before-crash
test "$(grep -c ' /run/secretsfs fuse.secretsfs ' /proc/self/mounts)" = 1
journalctl -u secretsfs.service -o cat | grep 'cleaned up the dead secretsfs mount on /run/secretsfs'
systemctl stop secretsfs.service
not grep -q ' /run/secretsfs ' /proc/self/mounts
EOF
	nspawn_run "$W"
}

@test "the store key from LoadCredentialEncrypted=" {
	need_nspawn
	cat >"$W/check.sh" <<'EOF'
run_as_store
systemctl start secretsfs.service
printf 'sk-credential' >/run/secretsfs/ai_gateway/OPENAI_API_KEY
systemctl stop secretsfs.service
# the key encrypted with the host key instead of in /etc/secretsfs
mkdir -p /etc/credstore.encrypted
systemd-creds encrypt --with-key=host --name=secretsfs.key /etc/secretsfs/key \
	/etc/credstore.encrypted/secretsfs.key
mv /etc/secretsfs/key /root/key.backup
mkdir -p /run/systemd/system/secretsfs.service.d
printf '[Service]\nLoadCredential=\nLoadCredentialEncrypted=secretsfs.key:/etc/credstore.encrypted/secretsfs.key\n' \
	>/run/systemd/system/secretsfs.service.d/key.conf
systemctl daemon-reload
systemctl start secretsfs.service
test "$(cat /run/secretsfs/ai_gateway/OPENAI_API_KEY)" = sk-credential
systemctl stop secretsfs.service
EOF
	nspawn_run "$W"
}

@test "an fstab line of type fuse.secretsfs (with _netdev,nofail,noauto,x-systemd.*) mounts and unmounts" {
	need_nspawn
	cat >"$W/fstab" <<'EOF'
/var/lib/secretsfs  /run/secretsfs  fuse.secretsfs  allow_other,_netdev,nofail,noauto,x-systemd.requires-mounts-for=/var/lib/secretsfs,x-systemd.mount-timeout=30  0  0
EOF
	rm "$W/units/run-secretsfs.mount"   # the unit must come from the fstab line
	cat >"$W/check.sh" <<'EOF'
secretsfs init /var/lib/secretsfs
# the generator made a mount unit from the line
systemctl cat run-secretsfs.mount | grep -x 'Type=fuse.secretsfs'
systemctl start run-secretsfs.mount
grep -q ' /run/secretsfs fuse.secretsfs .*allow_other' /proc/self/mounts
printf 'sk-fstab' >/run/secretsfs/ai_gateway/OPENAI_API_KEY
test "$(cat /run/secretsfs/ai_gateway/OPENAI_API_KEY)" = sk-fstab
systemctl stop run-secretsfs.mount
not grep -q ' /run/secretsfs ' /proc/self/mounts
test "$(systemctl show -P Result run-secretsfs.mount)" = success
not pgrep -x secretsfs
# and by hand: mount(8) finds the options in fstab
mount /run/secretsfs
test "$(cat /run/secretsfs/ai_gateway/OPENAI_API_KEY)" = sk-fstab
umount /run/secretsfs
for i in $(seq 1 50); do pgrep -x secretsfs || break; sleep 0.1; done
not pgrep -x secretsfs
EOF
	nspawn_run "$W" --bind-ro="$W/fstab":/etc/fstab
}

@test "the example run-secretsfs.mount serves a LoadCredential= consumer ordered after it" {
	need_nspawn
	mkdir -p "$W/units/mount-consumer.service.d"
	cat >"$W/units/mount-consumer.service" <<'EOF'
[Unit]
Requires=run-secretsfs.mount
After=run-secretsfs.mount

[Service]
Type=oneshot
DynamicUser=yes
LoadCredential=openai:/run/secretsfs/ai_gateway/OPENAI_API_KEY
ExecStart=/bin/cat ${CREDENTIALS_DIRECTORY}/openai
StandardOutput=truncate:/srv/t-out/openai
EOF
	cat >"$W/check.sh" <<'EOF'
secretsfs init /var/lib/secretsfs
systemctl start run-secretsfs.mount
cp /srv/t/value1 /run/secretsfs/ai_gateway/OPENAI_API_KEY
systemctl stop run-secretsfs.mount
not grep -q ' /run/secretsfs ' /proc/self/mounts
# starting the consumer mounts the store first
systemctl start mount-consumer.service
systemctl is-active -q run-secretsfs.mount
systemctl stop run-secretsfs.mount
test "$(systemctl show -P Result run-secretsfs.mount)" = success
not grep -q ' /run/secretsfs ' /proc/self/mounts
EOF
	nspawn_run "$W"
	same_bytes "$W/value1" "$W/out/openai"
}

@test "with -o unit=ai_gateway:CONSUMER only the consumer's LoadCredential= reads the scope" {
	need_nspawn
	consumer_writes_back
	cat >"$W/check.sh" <<'EOF'
run_as_store
systemctl start secretsfs.service
cp /srv/t/value1 /run/secretsfs/ai_gateway/OPENAI_API_KEY
systemctl stop secretsfs.service
mkdir -p /run/systemd/system/secretsfs.service.d
printf '[Service]\nExecStart=\nExecStart=/usr/local/bin/secretsfs /var/lib/secretsfs /run/secretsfs -f -o run_as=secretsfs,unit=ai_gateway:secretsfs-example-consumer.service\n' \
	>/run/systemd/system/secretsfs.service.d/policy.conf
systemctl daemon-reload
systemctl start secretsfs.service
# this script (check.service, root) is refused ...
not cat /run/secretsfs/ai_gateway/OPENAI_API_KEY
# ... systemd reading the credential for the consumer is not
systemctl start secretsfs-example-consumer.service
journalctl -u secretsfs.service -o cat >/srv/t-out/log
EOF
	nspawn_run "$W"
	same_bytes "$W/value1" "$W/out/openai"
	grep -q 'op=read id=OPENAI_API_KEY .*unit=check.service result=EACCES' "$W/out/log"
	grep -q 'op=read id=OPENAI_API_KEY .*unit=secretsfs-example-consumer.service result=ok' "$W/out/log"
}

@test "secretsfs-as-root.conf: the opt-out serves as root from the store init makes by default, hardened, in the host's mount namespace; a consumer gets its key; systemctl restart keeps the mount; back to run_as over that root store is refused with the fix, leaving no mount" {
	need_nspawn
	consumer_writes_back
	as_root
	cat >"$W/check.sh" <<'EOF'
secretsfs init /var/lib/secretsfs
systemctl start secretsfs.service
cp /srv/t/value1 /run/secretsfs/ai_gateway/OPENAI_API_KEY
systemctl start secretsfs-example-consumer.service
pid=$(systemctl show -P MainPID secretsfs.service)
# one process, no server child
not pgrep -P "$pid"
test "$(readlink /proc/$pid/ns/mnt)" = "$(readlink /proc/1/ns/mnt)"
grep -q ' /run/secretsfs fuse.secretsfs ' /proc/1/mounts
grep -E '^(Uid|NoNewPrivs|Seccomp|CapBnd|CapEff):' /proc/$pid/status >/srv/t-out/status
test "$(readlink /proc/$pid/ns/net)" != "$(readlink /proc/1/ns/net)"
systemctl restart secretsfs.service
cmp /srv/t/value1 /run/secretsfs/ai_gateway/OPENAI_API_KEY
# back to run_as without moving the store (as an upgrade over a root-mode
# store would): the keeper refuses it before forking and gives up the
# connection it took over, so no mount is left without a server
systemd-sysusers /srv/t/secretsfs.sysusers
mkdir -p /run/systemd/system/secretsfs.service.d
printf '[Service]\nExecStart=\nExecStart=/usr/local/bin/secretsfs /var/lib/secretsfs /run/secretsfs -f -o run_as=secretsfs\n' \
	>/run/systemd/system/secretsfs.service.d/zz-run-as.conf
systemctl daemon-reload
not systemctl restart secretsfs.service
not grep -q ' /run/secretsfs ' /proc/self/mounts
systemctl stop secretsfs.service
not grep -q ' /run/secretsfs ' /proc/self/mounts
journalctl -u secretsfs.service -o cat >/srv/t-out/log
EOF
	nspawn_run "$W"
	same_bytes "$W/value1" "$W/out/openai"
	grep -qx 'Uid:[[:space:]]*0[[:space:]]*0[[:space:]]*0[[:space:]]*0' "$W/out/status"
	grep -qx 'NoNewPrivs:[[:space:]]*1' "$W/out/status"
	grep -qx 'Seccomp:[[:space:]]*2' "$W/out/status"
	# CAP_SYS_ADMIN (21) and CAP_IPC_LOCK (14), nothing else
	grep -qx 'CapBnd:[[:space:]]*0000000000204000' "$W/out/status"
	grep -q 'took over the mount on /run/secretsfs: 1 of 1 secrets kept their inode numbers' "$W/out/log"
	! grep -q 'serving as' "$W/out/log" || false
	grep -q "run_as=secretsfs: the server cannot open the store in /var/lib/secretsfs: it is uid 0's, not secretsfs's" "$W/out/log"
	grep -q 'cannot take over the mount on /run/secretsfs (-o run_as refused it, see above): aborting its connection' "$W/out/log"
}
