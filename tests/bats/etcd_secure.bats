#!/usr/bin/env bats
# The etcd store's connection options against a real cluster: etcd+https://
# with a CA and client certificates (-o cacert=,cert=,certkey=; the members
# run with --client-cert-auth), and etcd auth (-o etcd_user=, the password
# from -o etcd_password=FILE or systemd's credential etcd.password).
# Refusals are one line naming what to fix, with nothing mounted; the
# password is in no log line, argv or environment.
load helper
load etcd_helper

setup() {
	T=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-etcdsec.XXXXXX")
	KEY=$T/fleet.key
	mkdir -p "$T/a" "$T/b"
	PIDS=()
}

teardown() { etcd_hosts_teardown; }

# tls_cluster N: N members speaking TLS; SRC is the etcd+https:// source,
# TLS the options that reach it (this cluster's CA, the client certificate)
tls_cluster() {
	ETCD_CLUSTER_TLS=1 etcd_start "$1"
	SRC="etcd+https://${ETCD_ENDPOINTS//https:\/\//}/fleet"
	TLS="cacert=$ETCD_DIR/tls/ca.pem,cert=$ETCD_DIR/tls/client.pem,certkey=$ETCD_DIR/tls/client.key"
}

not_mounted() {
	! grep -qF " $T/a fuse.secretsfs " /proc/mounts
}

# self_signed NAME: a CA of its own (NAME.pem, NAME.key in $T)
self_signed() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-subj "/CN=$1" -keyout "$T/$1.key" -out "$T/$1.pem" 2>/dev/null
}

# fleet_password: the fleet user's password into $T/pw (0600)
fleet_password() {
	(umask 077 && cat "$ETCD_DIR/fleet.password" >"$T/pw")
	PW=$(cat "$T/pw")
}

@test "etcd+https: init and two mounts with client certificates; a value written on A is read on B" {
	tls_cluster 3
	run "$SFS" init "$SRC" -o "key=$KEY,$TLS"
	[ "$status" -eq 0 ]
	[[ "$output" == *"created an empty store at $SRC"* ]]
	# the store is there, under TLS
	etcd_ctl get --keys-only /fleet/identity | grep -qx /fleet/identity
	fails "already holds a store" "$SFS" init "$SRC" -o "key=$KEY,$TLS"

	etcd_host a "$TLS"
	etcd_host b "$TLS"
	printf 'sk-over-tls-7f1e' >"$T/a/ai_agent/TLS_KEY"
	eventually expect_value "$T/b/ai_agent/TLS_KEY" 'sk-over-tls-7f1e'
	printf 'sk-over-tls-rotated' >"$T/b/ai_agent/.TLS_KEY.new"
	mv "$T/b/ai_agent/.TLS_KEY.new" "$T/b/ai_agent/TLS_KEY"
	eventually expect_value "$T/a/ai_agent/TLS_KEY" 'sk-over-tls-rotated'
	# every endpoint it was given is https
	grep -qF "mounted the etcd store $SRC" "$T/log.a"
}

@test "etcd+https: a wrong CA, the system CAs, no or a foreign client certificate, bad files: refused in a line, nothing mounted" {
	tls_cluster 1
	local ep=${ETCD_ENDPOINTS%%,*} cert=$ETCD_DIR/tls/client.pem ckey=$ETCD_DIR/tls/client.key
	"$SFS" init "$SRC" -o "key=$KEY,$TLS" >/dev/null
	self_signed other
	# the server's certificate is not of this CA: the endpoint and curl's reason
	fails "unable to get local issuer certificate" \
		"$SFS" "$SRC" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,cacert=$T/other.pem,cert=$cert,certkey=$ckey"
	[[ "$output" == *"at $ep:"* ]]
	[[ "$output" == *"TLS with etcd failed; nothing mounted"* ]]
	# a configuration to fix: not retried (etcd_kv asks for 3 more rounds)
	[[ "$output" == *"(1 attempt,"* ]]
	not_mounted
	# without cacert=: the system's CAs, which do not know the test CA
	fails "TLS with etcd failed" "$SFS" "$SRC" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,cert=$cert,certkey=$ckey"
	not_mounted
	# the cluster requires a client certificate (--client-cert-auth)
	fails "alert" "$SFS" "$SRC" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,cacert=$ETCD_DIR/tls/ca.pem"
	[[ "$output" == *"TLS with etcd failed; nothing mounted"* ]]
	not_mounted
	# one signed by another CA
	openssl req -new -key "$T/other.key" -subj "/O=intruder" -out "$T/foreign.csr" 2>/dev/null
	openssl x509 -req -in "$T/foreign.csr" -CA "$T/other.pem" -CAkey "$T/other.key" \
		-CAcreateserial -days 1 -out "$T/foreign.pem" 2>/dev/null
	cp "$T/other.key" "$T/foreign.key"
	fails "TLS with etcd failed" "$SFS" "$SRC" "$T/a" \
		-o "key=$KEY,attrs=$T/attrs.a,cacert=$ETCD_DIR/tls/ca.pem,cert=$T/foreign.pem,certkey=$T/foreign.key"
	not_mounted
	# init is held to the same
	fails "unable to get local issuer certificate" \
		"$SFS" init "${SRC%/fleet}/other" -o "key=$T/k2,cacert=$T/other.pem,cert=$cert,certkey=$ckey"
	[ ! -e "$T/k2" ]
	# the files: a key others may read, a missing CA, a cert without its key
	cp "$ckey" "$T/open.key"
	chmod 0644 "$T/open.key"
	fails "client certificate key (-o certkey=) $T/open.key is open to group or others; make it private: chmod 0400 $T/open.key" \
		"$SFS" "$SRC" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,cacert=$ETCD_DIR/tls/ca.pem,cert=$cert,certkey=$T/open.key"
	ln -s "$ckey" "$T/link.key"
	fails "is a symlink" \
		"$SFS" "$SRC" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,cacert=$ETCD_DIR/tls/ca.pem,cert=$cert,certkey=$T/link.key"
	fails "CA file (-o cacert=) $T/none.pem: No such file or directory" \
		"$SFS" "$SRC" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,cacert=$T/none.pem,cert=$cert,certkey=$ckey"
	fails "-o cert= needs -o certkey= too" \
		"$SFS" "$SRC" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,cacert=$ETCD_DIR/tls/ca.pem,cert=$cert"
	# TLS options on a plain etcd:// source
	fails "are for etcd+https:// stores" \
		"$SFS" "etcd://${ETCD_ENDPOINTS#https://}/fleet" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,$TLS"
	not_mounted
	# a typo is told the name it meant
	fails "did you mean cacert?" "$SFS" "$SRC" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,cacrt=x"
	fails "not an option of init" "$SFS" init "$SRC" -o "key=$KEY,attrs=x"

	# and the right ones mount (daemonized, as a service would)
	"$SFS" "$SRC" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,$TLS"
	[ -d "$T/a/ai_agent" ]
	fusermount3 -u "$T/a"
}

@test "etcd auth: the right password mounts (a file, the systemd credential; a boot from the cache logs in once etcd is back); a wrong one, a 0644 file, an empty one: refused in a line; the password in no log, argv or environment" {
	etcd_start 1
	SRC="etcd://${ETCD_ENDPOINTS//http:\/\//}/fleet"
	etcd_auth /fleet/
	fleet_password
	# without a login etcd refuses even init (and the new key goes again)
	fails "user name is empty" "$SFS" init "$SRC" -o "key=$KEY"
	[ ! -e "$KEY" ]
	run "$SFS" init "$SRC" -o "key=$KEY,etcd_user=fleet,etcd_password=$T/pw"
	[ "$status" -eq 0 ]
	[[ "$output" != *"$PW"* ]]
	# the role covers /fleet/ only
	fails "permission denied" "$SFS" init "${SRC%/fleet}/elsewhere" \
		-o "key=$T/k2,etcd_user=fleet,etcd_password=$T/pw"

	# wrong password: one line, nothing mounted
	(umask 077 && echo 'not-the-password' >"$T/wrong")
	run "$SFS" "$SRC" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,etcd_user=fleet,etcd_password=$T/wrong"
	[ "$status" -ne 0 ]
	[[ "$output" == *"etcd refused the login of user fleet (wrong password in $T/wrong, or no such user)"* ]]
	[[ "$output" != *"not-the-password"* ]]
	not_mounted
	# a password file others may read, an empty one, a password without a user
	cp "$T/pw" "$T/open"
	chmod 0644 "$T/open"
	fails "etcd password file $T/open is open to group or others; make it private: chmod 0400 $T/open" \
		"$SFS" "$SRC" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,etcd_user=fleet,etcd_password=$T/open"
	(umask 077 && : >"$T/empty")
	fails "etcd password file $T/empty: its first line is empty" \
		"$SFS" "$SRC" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,etcd_user=fleet,etcd_password=$T/empty"
	fails "-o etcd_password= needs -o etcd_user=NAME" \
		"$SFS" "$SRC" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,etcd_password=$T/pw"
	fails "-o etcd_user=fleet needs its password" \
		"$SFS" "$SRC" "$T/a" -o "key=$KEY,attrs=$T/attrs.a,etcd_user=fleet"
	not_mounted

	# the right one, its first line only (CRLF too), from a file
	(umask 077 && printf '%s\r\nsecond line\n' "$PW" >"$T/pw.crlf")
	etcd_host a "etcd_user=fleet,etcd_password=$T/pw.crlf"
	printf 'sk-behind-auth' >"$T/a/ai_agent/AUTH_KEY"
	expect_value "$T/a/ai_agent/AUTH_KEY" 'sk-behind-auth'
	# and by default from systemd's credential, never from argv or environment
	mkdir -m 0700 "$T/creds"
	cp "$T/pw" "$T/creds/etcd.password"
	CREDENTIALS_DIRECTORY=$T/creds etcd_host b "etcd_user=fleet"
	eventually expect_value "$T/b/ai_agent/AUTH_KEY" 'sk-behind-auth'
	local p
	for p in "$PID_a" "$PID_b"; do
		run grep -caF "$PW" "/proc/$p/cmdline" "/proc/$p/environ"
		[[ "$output" == *"cmdline:0"* ]] && [[ "$output" == *"environ:0"* ]]
	done
	fusermount3 -u "$T/a"
	fusermount3 -u "$T/b"
	wait "$PID_a"
	wait "$PID_b"
	grep -q "mounted the etcd store" "$T/log.a"
	run grep -caF "$PW" "$T/log.a" "$T/log.b"
	[[ "$output" == *"log.a:0"* ]] && [[ "$output" == *"log.b:0"* ]]

	# a host that boots while etcd is down (from A's sealed cache) cannot
	# log in then; it does once etcd is back, for its writes and its watch
	etcd_stop 1
	mkdir "$T/c"
	etcd_host c "etcd_user=fleet,etcd_password=$T/pw,cache=$T/attrs.a.etcd-cache"
	grep -q "starting from the sealed cache" "$T/log.c"
	expect_value "$T/c/ai_agent/AUTH_KEY" 'sk-behind-auth'
	etcd_restart 1
	eventually sh -c "printf 'sk-after-boot' >'$T/c/ai_agent/AUTH_KEY'"
	expect_value "$T/c/ai_agent/AUTH_KEY" 'sk-after-boot'
	# etcd options on a store that is not etcd's
	fails "are for etcd stores only" "$SFS" "$T/c" "$T/b" -o "etcd_user=fleet"
}

@test "etcd auth over TLS: a lapsed token (--auth-token-ttl), and tokens voided: calls and the watch log in again" {
	ETCD_CLUSTER_TOKEN_TTL=1 tls_cluster 1
	etcd_auth /fleet/
	fleet_password
	local auth="$TLS,etcd_user=fleet,etcd_password=$T/pw"
	"$SFS" init "$SRC" -o "key=$KEY,$auth" >/dev/null
	etcd_host a "$auth"
	printf 'before-the-lapse' >"$T/a/ai_agent/LAPSE"
	# etcd logs each token it lets lapse: once two of fleet's are gone,
	# init's and the mount's are (only a new login would make a third)
	lapsed() {
		[ "$(grep -F '"deleted a simple token"' "$ETCD_DIR/m1/log" |
			grep -cF '"user-name":"fleet"')" -ge 2 ]
	}
	eventually lapsed
	printf 'after-the-lapse' >"$T/a/ai_agent/LAPSE"
	expect_value "$T/a/ai_agent/LAPSE" 'after-the-lapse'

	# every token of fleet void (a password change, to the same one), and
	# a restart so that B's watch must connect again: it comes back with a
	# new login and brings A's next change (a new name: B's listing comes
	# from its watch alone, B makes no call that could log in for it); A's
	# next write logs in again too
	etcd_host b "$auth"
	expect_value "$T/b/ai_agent/LAPSE" 'after-the-lapse'
	etcd_ctl user passwd fleet --interactive=false <"$T/pw" >/dev/null
	etcd_stop 1
	etcd_restart 1
	printf 'after-the-restart' >"$T/a/ai_agent/RESTARTED"
	eventually [ -e "$T/b/ai_agent/RESTARTED" ]
	expect_value "$T/b/ai_agent/RESTARTED" 'after-the-restart'
}
