#!/usr/bin/env bats
# Packaging (issue 5): the Debian package built with packaging/build-deb
# (dpkg-buildpackage), lintian, the man pages, an install on this machine
# used as a new user would (mount(8) through the installed helper, the fstab
# line from the man page and a LoadCredential= consumer under a real
# systemd), a purge that leaves nothing but the store, and the RPM.
#
# The package is built once, by the first test that needs it (~30 s).  Installing touches this
# machine: the tests refuse to run if a secretsfs package is already
# installed, and teardown_file purges what they installed.
load helper
load nspawn

TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

setup_file() {
	PKG=$(mktemp -d /tmp/secretsfs-pkg.XXXXXX)
	export PKG
	if dpkg-query -W -f='${Status}' secretsfs 2>/dev/null | grep -q 'ok installed'; then
		# not ours: never replace or purge it
		touch "$PKG/preinstalled"
	fi
}

# ensure_built: builds the packages once per run of this file (the first
# test that needs them pays ~30 s); sets DEB.
ensure_built() {
	if [ ! -e "$PKG/built" ]; then
		touch "$PKG/built"
		"$TOP/packaging/build-deb" "$PKG/deb" >"$PKG/build.log" 2>&1 ||
			echo $? >"$PKG/build.failed"
	fi
	if [ -e "$PKG/build.failed" ]; then
		echo "packaging/build-deb failed:" >&2
		tail -n 40 "$PKG/build.log" >&2
		return 1
	fi
	DEB=$(ls "$PKG"/deb/secretsfs_*_*.deb)
	[ -f "$DEB" ]
}

teardown_file() {
	if [ ! -e "$PKG/preinstalled" ] &&
		dpkg-query -W -f='${Status}' secretsfs 2>/dev/null | grep -q 'ok installed'; then
		apt-get purge -y -qq -o DPkg::Lock::Timeout=120 secretsfs >/dev/null 2>&1
	fi
	rm -rf "$PKG"
}

setup() {
	[ ! -e "$PKG/preinstalled" ] ||
		skip "a secretsfs package is installed on this machine; these tests would replace it"
	DEB=
	W=
}

teardown() {
	if [ -n "${W:-}" ]; then
		! grep -q " $W/mnt " /proc/mounts || umount -l "$W/mnt"
		rm -rf "$W"
	fi
	unmount_store
}

apt_get() {
	DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o DPkg::Lock::Timeout=120 "$@"
}

installed() {
	dpkg-query -W -f='${Status}' secretsfs 2>/dev/null | grep -q 'ok installed'
}

# ensure_installed: installs the built .deb (with its dependencies) once.
ensure_installed() {
	installed && return 0
	ensure_built
	apt_get install "$DEB" >"$PKG/install.log" 2>&1 || { cat "$PKG/install.log" >&2; return 1; }
	dpkg -L secretsfs >"$PKG/files"
}

@test "packaging/build-deb builds source and binary packages with dpkg-buildpackage" {
	ensure_built
	ls "$PKG"/deb/secretsfs_*.dsc "$PKG"/deb/secretsfs_*.tar.* "$PKG"/deb/secretsfs_*.changes
	dpkg-deb -c "$DEB" >"$PKG/contents"
	for f in ./usr/bin/secretsfs ./usr/sbin/mount.fuse.secretsfs ./usr/sbin/mount.secretsfs \
		./lib/systemd/system/secretsfs.service ./usr/lib/sysusers.d/secretsfs.conf \
		./usr/share/man/man1/secretsfs.1.gz ./usr/share/man/man5/secretsfs.5.gz \
		./usr/share/man/man8/mount.fuse.secretsfs.8.gz \
		./usr/share/doc/secretsfs/README.md.gz ./usr/share/doc/secretsfs/copyright \
		./usr/share/doc/secretsfs/examples/secretsfs-example-consumer.service \
		./usr/share/doc/secretsfs/examples/run-secretsfs.mount \
		./usr/share/doc/secretsfs/examples/secretsfs-as-root.conf; do
		grep -q " $f\( ->.*\)\?$" "$PKG/contents" || { echo "missing in the .deb: $f" >&2; false; }
	done
	# the helpers are links to the daemon
	grep -q ' ./usr/sbin/mount.fuse.secretsfs -> ../bin/secretsfs$' "$PKG/contents"
	# the license
	dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/share/doc/secretsfs/copyright |
		grep -q '^License: Expat'
	# the server's user is made at install (systemd-sysusers), and an upgrade
	# restarts a running service after the files are in (try-restart: the
	# mount stays), never stops it before
	dpkg-deb -e "$DEB" "$PKG/control"
	grep -q 'systemd-sysusers.*secretsfs.conf' "$PKG/control/postinst"
	grep -q 'deb-systemd-invoke try-restart .*secretsfs.service' "$PKG/control/postinst"
	! grep -qs 'stop' "$PKG/control/preinst" || false
	! grep -qs 'deb-systemd-invoke stop' "$PKG/control/prerm" || false
}

@test "lintian reports nothing (every override is explained)" {
	command -v lintian >/dev/null || skip "lintian is not installed"
	ensure_built
	run lintian --pedantic --info --display-info --fail-on error,warning,info,pedantic \
		"$PKG"/deb/secretsfs_*.changes
	out=$(printf '%s\n' "$output" | grep -v '^running with root privileges is not recommended!$' || true)
	echo "$out"
	[ "$status" -eq 0 ]
	[ -z "$out" ]
	# each override line follows a comment that says why
	awk '/^#/ { why = 1; next } /^[^[:space:]]/ { if (!why) { print "unexplained: " $0; bad = 1 } }
		/^$/ { why = 0 } END { exit bad }' "$TOP/packaging/debian/secretsfs.lintian-overrides"
}

@test "secretsfs(1) documents every option of --help; both man pages render without warnings" {
	run "$SFS" --help
	[ "$status" -eq 0 ]
	opts=$(printf '%s\n' "$output" | grep -oE '^  -o [a-z_]+' | awk '{ print $2 }')
	[ -n "$opts" ]
	page=$(LC_ALL=C MANWIDTH=200 man -l "$TOP/docs/man/secretsfs.1" 2>/dev/null)
	for o in $opts; do
		printf '%s\n' "$page" | grep -qE -- "-o $o([=,]|\$| )" ||
			{ echo "secretsfs(1) lacks -o $o" >&2; false; }
	done
	for f in -f -d -s --help --version; do
		printf '%s\n' "$page" | grep -q -- "$f" || { echo "secretsfs(1) lacks $f" >&2; false; }
	done
	for p in "$TOP"/docs/man/secretsfs.1 "$TOP"/docs/man/secretsfs.5; do
		run sh -c 'LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$1" 2>&1 >/dev/null' sh "$p"
		[ -z "$output" ] || { echo "$p: $output" >&2; false; }
	done
}

@test "the installed package: --version, man pages, mount -t fuse.secretsfs and -t secretsfs through the helpers" {
	ensure_installed
	run secretsfs --version
	[ "$status" -eq 0 ]
	[[ "$output" == "secretsfs 0.1.0 "* ]]
	[ "$(command -v secretsfs)" = /usr/bin/secretsfs ]
	# the man pages, as installed
	for p in /usr/share/man/man1/secretsfs.1.gz /usr/share/man/man5/secretsfs.5.gz; do
		run sh -c 'LC_ALL=C.UTF-8 man --warnings -l "$1" 2>&1 >/dev/null' sh "$p"
		[ -z "$output" ] || { echo "$p: $output" >&2; false; }
		LC_ALL=C man -l "$p" | grep -q '^NAME'
	done
	man -w secretsfs | grep -q '^/usr/share/man/man1/secretsfs.1.gz$'
	man -w 8 mount.fuse.secretsfs >/dev/null

	new_store
	# as the issue and secretsfs(1) say: mount(8) runs /sbin/mount.fuse.secretsfs
	mount -t fuse.secretsfs "$STORE" "$MNT" -o allow_other,_netdev,nofail
	grep -q " $MNT fuse.secretsfs .*allow_other" /proc/mounts
	pid=$(pgrep -f "^/sbin/mount.fuse.secretsfs $STORE $MNT ")
	printf 'sk-installed' >"$MNT/ai_gateway/OPENAI_API_KEY"
	expect_value "$MNT/ai_gateway/OPENAI_API_KEY" sk-installed
	umount "$MNT"
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	! kill -0 "$pid" 2>/dev/null || false
	# and the type without the fuse. prefix: /sbin/mount.secretsfs
	mount -t secretsfs "$STORE" "$MNT"
	pid=$(pgrep -f "^/sbin/mount.secretsfs $STORE $MNT ")
	expect_value "$MNT/ai_gateway/OPENAI_API_KEY" sk-installed
	umount "$MNT"
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	! kill -0 "$pid" 2>/dev/null || false
}

@test "done when: the installed package under a real systemd, the fstab line from the man page, a LoadCredential= consumer; secretsfs.service as the README sets it up (run_as, the package's user)" {
	why=$(nspawn_missing)
	[ -z "$why" ] || skip "$why"
	ensure_installed
	W=$(nspawn_workdir)   # W/bin stays empty: the installed files only

	# A store made with the installed command, holding a key, for mount(8).
	secretsfs init "$W/store" >/dev/null
	mkdir "$W/mnt"
	mount -t fuse.secretsfs "$W/store" "$W/mnt"
	printf 'sk-proj-\000done\n' >"$W/value"
	cp "$W/value" "$W/mnt/ai_gateway/OPENAI_API_KEY"
	umount "$W/mnt"
	for _ in $(seq 1 100); do pgrep -f "mount.fuse.secretsfs $W/store" >/dev/null || break; sleep 0.05; done

	# /etc/fstab: the line secretsfs(1) gives, as it is printed, for the
	# root-owned store above (bound at /srv/fstab-store).
	LC_ALL=C MANWIDTH=200 man -l /usr/share/man/man1/secretsfs.1.gz |
		sed -n 's/^ *\(\/var\/lib\/secretsfs .*fuse\.secretsfs.*\)$/\1/p' |
		sed 's|^/var/lib/secretsfs |/srv/fstab-store |' >"$W/fstab"
	[ "$(wc -l <"$W/fstab")" -eq 1 ]
	cat "$W/fstab"
	# A service that reads its key as secretsfs(1) says, ordered after the
	# mount the fstab line makes.
	cat >"$W/units/gateway.service" <<'EOF'
[Unit]
RequiresMountsFor=/run/secretsfs

[Service]
Type=oneshot
DynamicUser=yes
LoadCredential=openai:/run/secretsfs/ai_gateway/OPENAI_API_KEY
ExecStart=/bin/cat ${CREDENTIALS_DIRECTORY}/openai
StandardOutput=truncate:/srv/t-out/fstab-consumer
EOF
	# The installed service and the installed example consumer.
	cp /usr/share/doc/secretsfs/examples/secretsfs-example-consumer.service "$W/units/"
	mkdir "$W/units/secretsfs-example-consumer.service.d"
	cat >"$W/units/secretsfs-example-consumer.service.d/test.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=/bin/cat ${CREDENTIALS_DIRECTORY}/openai
StandardOutput=truncate:/srv/t-out/service-consumer
EOF
	# the README's commands for secretsfs.service, as they are printed there
	sed -n '/^# secretsfs.service, as root/,/^```$/p' "$TOP/README.md" | grep -v '^```$' >"$W/readme.sh"
	grep -q 'secretsfs init /var/lib/secretsfs -o key=/etc/secretsfs/key,run_as=secretsfs' "$W/readme.sh"
	cat >"$W/check.sh" <<'EOF'
# mounted at boot from /etc/fstab; with nofail nothing at boot waits for
# the mount (check.service may start first): wait for it, up to 20 s
for i in $(seq 1 200); do systemctl is-active -q run-secretsfs.mount && break; sleep 0.1; done
systemctl is-active -q run-secretsfs.mount
grep -q ' /run/secretsfs fuse.secretsfs .*allow_other' /proc/self/mounts
systemctl start gateway.service
systemctl stop run-secretsfs.mount
not grep -q ' /run/secretsfs ' /proc/self/mounts
for i in $(seq 1 50); do pgrep -f '^/sbin/mount.fuse.secretsfs ' >/dev/null || break; sleep 0.1; done
not pgrep -f '^/sbin/mount.fuse.secretsfs '
# the package's sysusers.d file made the server's user at boot
getent passwd secretsfs
# the packaged secretsfs.service, set up as the README says, pulled in by
# the consumer
systemctl show -P FragmentPath secretsfs.service | grep -x '.*/lib/systemd/system/secretsfs.service'
test "$(systemctl is-enabled secretsfs.service)" = disabled
grep -v 'systemctl enable' /srv/t/readme.sh | sed 's/^/+ /'
. <(grep -v 'systemctl enable' /srv/t/readme.sh)
systemctl start secretsfs.service
cp /srv/t/value /run/secretsfs/ai_gateway/OPENAI_API_KEY
systemctl stop secretsfs.service
systemctl start secretsfs-example-consumer.service
systemctl is-active -q secretsfs.service
keeper=$(systemctl show -P MainPID secretsfs.service)
stat -c %U "/proc/$(pgrep -P "$keeper")" >/srv/t-out/server-user
systemctl stop secretsfs.service
test "$(systemctl show -P Result secretsfs.service)" = success
not grep -q ' /run/secretsfs ' /proc/self/mounts
EOF
	nspawn_run "$W" --bind="$W/store":/srv/fstab-store --bind-ro="$W/fstab":/etc/fstab
	cmp "$W/value" "$W/out/fstab-consumer"
	cmp "$W/value" "$W/out/service-consumer"
	[ "$(cat "$W/out/server-user")" = secretsfs ]
}

@test "upgrade under load: dpkg -i of a newer package while a reader loops on cat of a key served by secretsfs.service: zero failed reads, the service restarted (try-restart), the mount kept" {
	why=$(nspawn_missing)
	[ -z "$why" ] || skip "$why"
	ensure_built   # sets DEB
	ensure_installed
	W=$(nspawn_workdir)   # W/bin stays empty: the installed files only
	# the newer package: this build repacked as version 0.1.0+upgrade1
	dpkg-deb -R "$DEB" "$W/new"
	sed -i 's/^Version: .*/Version: 0.1.0+upgrade1/' "$W/new/DEBIAN/control"
	dpkg-deb -b "$W/new" "$W/new.deb" >/dev/null
	rm -rf "$W/new"
	head -c 3000 /dev/urandom >"$W/value"
	cat >"$W/check.sh" <<'EOF'
K=/run/secretsfs/ai_gateway/OPENAI_API_KEY
# this machine's policy-rc.d (a container image's) forbids every service
# action from maintainer scripts; a real host has none (only the overlay
# loses it)
rm -f /usr/sbin/policy-rc.d
test "$(dpkg-query -W -f='${Version}' secretsfs)" = 0.1.0
getent passwd secretsfs
secretsfs init /var/lib/secretsfs -o key=/etc/secretsfs/key,run_as=secretsfs
systemctl start secretsfs.service
cp /srv/t/value "$K"
ino=$(stat -c %i "$K")
keeper=$(systemctl show -P MainPID secretsfs.service)
reader_start "$K" /srv/t/value
dpkg -i /srv/t/new.deb
reader_stop
test "$(dpkg-query -W -f='${Version}' secretsfs)" = 0.1.0+upgrade1
test "$(systemctl show -P ActiveState secretsfs.service)" = active
test "$(systemctl show -P MainPID secretsfs.service)" != "$keeper"
test "$(stat -c %i "$K")" = "$ino"
test "$(grep -c ' /run/secretsfs fuse.secretsfs ' /proc/self/mounts)" = 1
journalctl -u secretsfs.service -o cat >/srv/t-out/log
EOF
	NSPAWN_ROOT=overlay nspawn_run "$W"
	cat "$W/out/log"
	nspawn_reads_ok "$W"
	grep -q 'the server handed the mount on /run/secretsfs over; it stays for the next daemon' "$W/out/log"
	grep -q 'took over the mount on /run/secretsfs: 1 of 1 secrets kept their inode numbers' "$W/out/log"
}

@test "apt-get purge leaves nothing behind but the store" {
	ensure_installed
	T=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-test.XXXXXX")
	STORE=$T/store
	secretsfs init "$STORE" >/dev/null
	files=$(cat "$PKG/files")
	[ -n "$files" ]
	apt_get purge secretsfs >/dev/null
	! installed || false
	left=
	while read -r f; do
		[ -e "$f" ] || [ -L "$f" ] || continue
		# a directory other packages (or the system: /., the merged-/usr
		# links /lib -> usr/lib) own may stay
		if [ -d "$f" ] && { [ -L "$f" ] || [ "$f" = /. ] || dpkg -S "$f" >/dev/null 2>&1; }; then
			continue
		fi
		left="$left $f"
	done <<<"$files"
	[ -z "$left" ] || { echo "left behind:$left" >&2; false; }
	! ls /var/lib/dpkg/info/secretsfs.* 2>/dev/null || false
	! ls /etc/systemd/system/*secretsfs* /etc/systemd/system/*/*secretsfs* 2>/dev/null || false
	! ls /var/lib/systemd/deb-systemd-helper-enabled/*secretsfs* \
		/var/lib/systemd/deb-systemd-helper-masked/*secretsfs* 2>/dev/null || false
	hash -r
	! command -v secretsfs || false
	# the store is the user's: kept
	[ -f "$STORE/store.db" ] && [ -f "$STORE/key" ]
}

@test "packaging/build-rpm builds a binary RPM with rpmbuild" {
	command -v rpmbuild >/dev/null || skip "rpmbuild is not installed (Debian package rpm)"
	run "$TOP/packaging/build-rpm" "$PKG/rpm"
	echo "$output"
	[ "$status" -eq 0 ]
	rpm=$(ls "$PKG"/rpm/secretsfs-0.1.0-*.rpm | grep -v -e debuginfo -e debugsource -e '\.src\.rpm$')
	rpm -qlp "$rpm" >"$PKG/rpm.files"
	for f in /usr/bin/secretsfs /usr/sbin/mount.fuse.secretsfs /usr/sbin/mount.secretsfs \
		/usr/lib/systemd/system/secretsfs.service /usr/lib/sysusers.d/secretsfs.conf \
		/usr/share/licenses/secretsfs-0.1.0/LICENSE; do
		grep -qx "$f" "$PKG/rpm.files" || { echo "missing in the RPM: $f" >&2; false; }
	done
	grep -q '^/usr/share/man/man1/secretsfs.1' "$PKG/rpm.files"
	grep -q '^/usr/share/man/man5/secretsfs.5' "$PKG/rpm.files"
	rpm -qp --requires "$rpm" | grep -q '^libfuse3.so.3'
	rpm -qlp "$rpm" | grep -q '^/usr/share/doc/secretsfs-0.1.0/secretsfs-as-root.conf$'
	rpm -qp --scripts "$rpm" | grep -q 'systemd-sysusers /usr/lib/sysusers.d/secretsfs.conf'
}
