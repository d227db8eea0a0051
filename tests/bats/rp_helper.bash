# The Redpanda Cloud emulator for bats tests (tests/tools/rp-emulator: an
# emulator of the Data Plane API and the token endpoint written from the
# public contract, since the cloud cannot be reached from here), with a CA
# and a server certificate made with openssl (once per file: rp_certs), and
# a mount of it.
#
#   load helper; load rp_helper
#   setup()    { rp_start; rp_mount; }     # rp_mount [options...]
#   teardown() { rp_teardown; }
# Variables: $RP_DIR (the emulator's dir: ca.pem, log, url), $RP_URL (its
# base URL), $RP_CREDS (the credentials file, 0600), and helper.bash's $T,
# $MNT, $LOG.
#   rp_admin METHOD PATH [JSON]   the emulator's /_admin/ controls (curl)
#   rp_count KEY                  a count of /_admin/counts (token,
#                                 list_pages, api, or "by_call:GET /v1/…")
# The emulator stops when the bats process that started it exits (its
# watchdog), whatever the test did.

RP_EMULATOR=${RP_EMULATOR:-$BATS_TEST_DIRNAME/../tools/rp-emulator}

# rp_certs DIR: a CA (DIR/ca.pem) and the emulator's certificate for
# 127.0.0.1 (DIR/server.pem, DIR/server.key) that it signed, made once per
# bats file (two RSA keys: about a second), each test's emulator serving
# its own copy.
rp_certs() {
	[ -f "$1/server.pem" ] && return 0
	mkdir -p "$1"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=secretsfs test CA" \
		-keyout "$1/ca.key" -out "$1/ca.pem" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 || return 1
	openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
		-keyout "$1/server.key" -out "$1/server.csr" >/dev/null 2>&1 || return 1
	printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$1/ext"
	openssl x509 -req -in "$1/server.csr" -CA "$1/ca.pem" -CAkey "$1/ca.key" \
		-CAcreateserial -days 2 -extfile "$1/ext" -out "$1/server.tmp" \
		>/dev/null 2>&1 || return 1
	mv "$1/server.tmp" "$1/server.pem"
}

rp_start() {
	command -v openssl >/dev/null || skip "openssl is not installed (scripts/install-deps)"
	command -v curl >/dev/null || skip "curl is not installed (scripts/install-deps)"
	T=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-rp.XXXXXX")
	RP_DIR=$T/rp
	MNT=$T/mnt
	LOG=$T/log
	mkdir -p "$RP_DIR" "$MNT"
	rp_certs "$BATS_FILE_TMPDIR/rp-certs" || return 1
	cp "$BATS_FILE_TMPDIR"/rp-certs/{ca.pem,server.key,server.pem} "$RP_DIR/"
	RP_CLIENT_ID=test-client-$RANDOM
	RP_CLIENT_SECRET=cs-$(openssl rand -hex 16)
	printf 'client_id=%s\nclient_secret=%s\n' "$RP_CLIENT_ID" "$RP_CLIENT_SECRET" >"$RP_DIR/client"
	RP_CREDS=$T/redpanda.credentials
	(umask 077 && cp "$RP_DIR/client" "$RP_CREDS")
	RP_URL=$(RP_EMULATOR_OWNER=$$ "$RP_EMULATOR" start "$RP_DIR") || return 1
	export RP_DIR RP_URL RP_CREDS RP_CLIENT_ID RP_CLIENT_SECRET
}

rp_admin() {
	local method=$1 path=$2
	shift 2
	curl -sS --fail --cacert "$RP_DIR/ca.pem" -X "$method" -H 'Content-Type: application/json' \
		${1:+--data "$1"} "$RP_URL/_admin/$path"
}

rp_count() {
	rp_admin GET counts | python3 -c '
import json, sys
c = json.load(sys.stdin)
k = sys.argv[1]
print(c["by_call"].get(k[8:], 0) if k.startswith("by_call:") else c[k])' "$1"
}

# rp_secret ID: the emulator's record of ID as JSON ({} if none).
rp_secret() {
	rp_admin GET secrets | python3 -c '
import json, sys
print(json.dumps(json.load(sys.stdin)["secrets"].get(sys.argv[1], {}), sort_keys=True))' "$1"
}

# rp_value ID: the value "the cloud" holds for ID.
rp_value() {
	rp_admin GET secrets | python3 -c '
import base64, json, sys
s = json.load(sys.stdin)["secrets"].get(sys.argv[1])
sys.stdout.write(base64.b64decode(s["secret_data"]).decode() if s else "")' "$1"
}

# rp_mount [options...]: mounts the emulator's store on $MNT in the
# foreground (its log in $LOG), waits until it answers.
rp_mount() {
	STORE=redpanda:$RP_URL
	# a mount lists the whole store first: 10,000 secrets are 200 pages, at
	# most 10 requests a second after a burst of 50 (about 15 s)
	START_WAIT_TRIES=1200 start_daemon -o "credentials=$RP_CREDS,cacert=$RP_DIR/ca.pem" \
		-o "token_url=$RP_URL/oauth/token" "$@"
}

# wait_for CMD...: runs CMD until it succeeds, for up to 30 s (a
# condition, not a timing: a change shows after the next poll).
wait_for() {
	local i
	for i in $(seq 1 300); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

rp_teardown() {
	local rc=0
	# a daemon that did not mount in time would mount later, with nobody
	# left to unmount it
	if [ -n "${DAEMON_PID:-}" ] && ! mounted; then
		kill "$DAEMON_PID" 2>/dev/null
	fi
	stop_daemon || rc=$?
	[ -n "${RP_DIR:-}" ] && "$RP_EMULATOR" stop "$RP_DIR"
	if [ -n "${T:-}" ]; then
		if [ "${BATS_TEST_COMPLETED:-}" != 1 ]; then
			tail -n 30 "$LOG" >&2 2>/dev/null
			tail -n 10 "$RP_DIR/log" >&2 2>/dev/null
		fi
		if grep -qE 'AddressSanitizer|runtime error|LeakSanitizer' "$LOG" 2>/dev/null; then
			cat "$LOG" >&2
			rc=1
		fi
		grep -q " $T/" /proc/mounts && fusermount3 -uz "$MNT" 2>/dev/null
		rm -rf "$T"
	fi
	T=
	return $rc
}
