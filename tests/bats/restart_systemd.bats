#!/usr/bin/env bats
# Restart under a live mount with systemd's fd store (issue 14): the
# shipped secretsfs.service in a booted systemd 252 (tests/bats/nspawn.bash),
# the daemon just built bound over /usr/local/bin.  Without systemd:
# restart.bats.
load helper
load nspawn

TOP=$BATS_TEST_DIRNAME/../..

setup() {
	W=$(nspawn_workdir)
	sed 's|@bindir@|/usr/local/bin|g' "$TOP/systemd/secretsfs.service.in" \
		>"$W/units/secretsfs.service"
	cp "$SFS" "$W/bin/secretsfs"
	cp "$TOP/systemd/secretsfs.sysusers" "$W/"
	head -c 3000 /dev/urandom >"$W/value"
}

# as_root: the root-mode drop-in (one process mounts and serves).
as_root() {
	mkdir -p "$W/units/secretsfs.service.d"
	sed 's|@bindir@|/usr/local/bin|g' "$TOP/systemd/secretsfs-as-root.conf.in" \
		>"$W/units/secretsfs.service.d/as-root.conf"
}

teardown() {
	[ -z "${W:-}" ] || rm -rf "$W"
}

need_nspawn() {
	local why
	why=$(nspawn_missing)
	[ -z "$why" ] || skip "$why"
}

@test "fd store, as root (secretsfs-as-root.conf): a reader looping on cat through kill -9 (Restart=) and systemctl restart: no failed read, every value whole, the same inode, an fd opened before reads to the end" {
	need_nspawn
	as_root
	cat >"$W/check.sh" <<'EOF2'
K=/run/secretsfs/ai_gateway/OPENAI_API_KEY
secretsfs init /var/lib/secretsfs
systemctl start secretsfs.service
cp /srv/t/value "$K"
ino=$(stat -c %i "$K")
exec 7<"$K"
head -c 1000 <&7 >/tmp/got7 # GNU head leaves the offset at 1000
reader_start "$K" /srv/t/value
pid=$(systemctl show -P MainPID secretsfs.service)
systemctl kill --signal=SIGKILL secretsfs.service
wait_restarted secretsfs.service 1
pid2=$(systemctl show -P MainPID secretsfs.service)
test "$pid2" != "$pid"
systemctl restart secretsfs.service
test "$(systemctl show -P ActiveState secretsfs.service)" = active
test "$(systemctl show -P MainPID secretsfs.service)" != "$pid2"
reader_stop
cat <&7 >>/tmp/got7
exec 7<&-
cmp /tmp/got7 /srv/t/value
test "$(stat -c %i "$K")" = "$ino"
test "$(grep -c ' /run/secretsfs fuse.secretsfs ' /proc/self/mounts)" = 1
ls /run/secretsfs/ai_gateway >/srv/t-out/ls
journalctl -u secretsfs.service -o cat >/srv/t-out/log
systemctl stop secretsfs.service
not grep -q ' /run/secretsfs ' /proc/self/mounts
EOF2
	nspawn_run "$W"
	nspawn_reads_ok "$W"
	grep -qx OPENAI_API_KEY "$W/out/ls"
	[ "$(grep -c 'took over the mount on /run/secretsfs: 1 of 1 secrets kept their inode numbers' "$W/out/log")" = 2 ]
	grep -q 'handed the mount on /run/secretsfs over to the next daemon' "$W/out/log"
	! grep -q 'cleaned up the dead secretsfs mount' "$W/out/log" || false
	! grep -q 'does not resend' "$W/out/log" || false
}

@test "fd store, as root: secrets created after the state's last whole write (a restart's) keep their inode numbers through kill -9: its journal carries them, a re-created one with its new number" {
	need_nspawn
	as_root
	cat >"$W/check.sh" <<'EOF2'
D=/run/secretsfs/ai_gateway
secretsfs init /var/lib/secretsfs
systemctl start secretsfs.service
printf 'first' >"$D/FIRST"
printf 'gone' >"$D/NEW_B"
old_b=$(stat -c %i "$D/NEW_B")
# a restart: the new daemon writes the whole state once it serves
systemctl restart secretsfs.service
# then only records in its journal: two created, one deleted and created again
printf 'a' >"$D/NEW_A"
rm "$D/NEW_B"
printf 'b' >"$D/NEW_B"
printf 'c' >"$D/NEW_C"
test "$(stat -c %i "$D/NEW_B")" != "$old_b"
# and past the block of inode numbers reserved (1024 a block): a new
# block is a record too
for i in $(seq 1000 2040); do printf x >"$D/MANY_$i"; done
stat -c '%n %i' "$D"/* | sort >/srv/t-out/before
systemctl kill --signal=SIGKILL secretsfs.service
wait_restarted secretsfs.service 1
stat -c '%n %i' "$D"/* | sort >/srv/t-out/after
test "$(cat "$D/NEW_B")" = b
# a number handed out now is none that the kernel knew
printf 'd' >"$D/NEW_D"
new=$(stat -c %i "$D/NEW_D")
not grep -q " $new\$" /srv/t-out/before
test "$new" -gt "$(cut -d' ' -f2 /srv/t-out/before | sort -n | tail -1)"
journalctl -u secretsfs.service -o cat >/srv/t-out/log
EOF2
	nspawn_run "$W"
	[ "$(wc -l <"$W/out/before")" = 1045 ]
	cmp "$W/out/before" "$W/out/after"
	grep -q 'took over the mount on /run/secretsfs: 2 of 2 secrets kept their inode numbers$' "$W/out/log"
	grep -q "took over the mount on /run/secretsfs: 1045 of 1045 secrets kept their inode numbers; 1044 of the state's secrets from its journal" "$W/out/log"
}

@test "fd store (run_as, the default): a stored connection whose mount is gone (umount -l) is dropped at the next start, which mounts anew" {
	need_nspawn
	cat >"$W/check.sh" <<'EOF2'
run_as_store
systemctl start secretsfs.service
printf 'sk-1' >/run/secretsfs/ai_gateway/OPENAI_API_KEY
# a file open on it keeps the detached mount's connection alive
exec 9</run/secretsfs/ai_gateway/OPENAI_API_KEY
umount -l /run/secretsfs
not grep -q ' /run/secretsfs fuse.secretsfs ' /proc/self/mounts
systemctl restart secretsfs.service
# the old connection ended: its file cannot be read any more
not cat <&9 2>/srv/t-out/old-fd
exec 9<&-
test "$(grep -c ' /run/secretsfs fuse.secretsfs ' /proc/self/mounts)" = 1
test "$(cat /run/secretsfs/ai_gateway/OPENAI_API_KEY)" = sk-1
# and the new mount's connection is the one stored now: a crash keeps it
systemctl kill --signal=SIGKILL secretsfs.service
wait_restarted secretsfs.service 1
test "$(cat /run/secretsfs/ai_gateway/OPENAI_API_KEY)" = sk-1
journalctl -u secretsfs.service -o cat >/srv/t-out/log
EOF2
	nspawn_run "$W"
	cat "$W/out/old-fd"
	grep -q 'cannot take over the mount on /run/secretsfs (it is no longer mounted there): aborting its connection and mounting anew' "$W/out/log"
	grep -q 'took over the mount on /run/secretsfs: 1 of 1 secrets kept their inode numbers' "$W/out/log"
}

@test "fd store (run_as, the default): a stored state that is not whole (overwritten, then kill -9) is refused by the next server (the root keeper does not parse it): the old connection is dropped, the next daemon mounts anew and serves" {
	need_nspawn
	cat >"$W/check.sh" <<'EOF2'
run_as_store
systemctl start secretsfs.service
printf 'sk-1' >/run/secretsfs/ai_gateway/OPENAI_API_KEY
# the server holds the state (the keeper closed its copy)
pid=$(pgrep -P "$(systemctl show -P MainPID secretsfs.service)")
n=
for f in /proc/$pid/fd/*; do
	case "$(readlink "$f")" in /memfd:secretsfs-state*) n=$f ;; esac
done
test -n "$n"
printf 'XXXXXXXX' | dd of="$n" conv=notrunc status=none
systemctl kill --signal=SIGKILL secretsfs.service
# the next keeper (root) adopts without reading the state; its server
# reads it, refuses it and exits, the keeper aborts the connection, and
# the start after that mounts anew
wait_restarted secretsfs.service 2
test "$(grep -c ' /run/secretsfs fuse.secretsfs ' /proc/self/mounts)" = 1
test "$(cat /run/secretsfs/ai_gateway/OPENAI_API_KEY)" = sk-1
journalctl -u secretsfs.service -o cat >/srv/t-out/log
EOF2
	nspawn_run "$W"
	grep -q 'the stored state of the mount on /run/secretsfs is not whole (Bad message): the keeper aborts the connection, and the next start mounts anew' "$W/out/log"
	grep -q 'cannot take over the mount on /run/secretsfs (its stored state is not whole): aborting its connection and mounting anew' "$W/out/log"
	! grep -q 'took over the mount' "$W/out/log" || false
}

@test "fd store under -o run_as (the shipped unit): a reader looping on cat through kill -9 of the server and systemctl restart: no failed read; the new servers run as secretsfs; stop unmounts" {
	need_nspawn
	cat >"$W/check.sh" <<'EOF2'
K=/run/secretsfs/ai_gateway/OPENAI_API_KEY
run_as_store
systemctl start secretsfs.service
cp /srv/t/value "$K"
ino=$(stat -c %i "$K")
reader_start "$K" /srv/t/value
keeper=$(systemctl show -P MainPID secretsfs.service)
server=$(pgrep -P "$keeper")
# the server dies outright: the keeper leaves the mount, Restart= follows
kill -KILL "$server"
wait_restarted secretsfs.service 1
keeper2=$(systemctl show -P MainPID secretsfs.service)
test "$keeper2" != "$keeper"
systemctl restart secretsfs.service
test "$(systemctl show -P ActiveState secretsfs.service)" = active
keeper3=$(systemctl show -P MainPID secretsfs.service)
test "$keeper3" != "$keeper2"
reader_stop
server3=$(pgrep -P "$keeper3")
stat -c %U /proc/$server3 >/srv/t-out/server-user
test "$(stat -c %i "$K")" = "$ino"
test "$(grep -c ' /run/secretsfs fuse.secretsfs ' /proc/self/mounts)" = 1
journalctl -u secretsfs.service -o cat >/srv/t-out/log
systemctl stop secretsfs.service
not grep -q ' /run/secretsfs ' /proc/self/mounts
systemctl show -p Result secretsfs.service >/srv/t-out/show
EOF2
	nspawn_run "$W"
	cat "$W/out/log" "$W/out/show" "$W/out/server-user" # shown if a check fails
	nspawn_reads_ok "$W"
	[ "$(cat "$W/out/server-user")" = secretsfs ]
	grep -qx 'Result=success' "$W/out/show"
	grep -q 'was killed by signal 9; the mount on /run/secretsfs stays for the next daemon' "$W/out/log"
	grep -q 'the server handed the mount on /run/secretsfs over; it stays for the next daemon' "$W/out/log"
	[ "$(grep -c 'took over the mount on /run/secretsfs: 1 of 1 secrets kept their inode numbers' "$W/out/log")" = 2 ]
	! grep -q 'cleaned up the dead secretsfs mount' "$W/out/log" || false
	! grep -q 'unmounted /run/secretsfs' "$W/out/log" || false
}
