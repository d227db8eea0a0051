#!/usr/bin/env bats
# The operator's day (issue 16): names that are not IDs are refused with
# the ID meant, the inventory (secretsfs list), imports into a second
# scope, the README's "Using it" run as written, and the start-up checks
# (non-empty mountpoint, unknown options and scopes, a store in use, init
# beside a foreign key, init with the key elsewhere).
load helper

teardown() { unmount_store; }

# ---------------------------------------------------------------- names

@test "names: non-IDs no tool makes are refused at create (EINVAL), the log names the rule and the ID meant; nothing is listed or stored" {
	mount_store
	G=$MNT/ai_gateway
	mkdir "$T/import"
	printf 'gem-value' >"$T/import/gemini.key"
	run sh -c "printf x > '$G/openai_api_key'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
	log_has "ai_gateway/openai_api_key: not created: not a secret ID .*did you mean OPENAI_API_KEY\?"
	run sh -c "printf x > '$G/MY-KEY'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
	log_has "ai_gateway/MY-KEY: not created: .*did you mean MY_KEY\?"
	run cp "$T/import/gemini.key" "$G/"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
	log_has "ai_gateway/gemini.key: not created: .*tool's temporary.*did you mean GEMINI_KEY\?"
	# no suggestion where none fits
	run sh -c "printf x > '$G/9lives'"
	[ "$status" -ne 0 ]
	log_has "ai_gateway/9lives: not created: not a secret ID"
	! grep -q "9lives: not created: .*did you mean" "$LOG"
	# rsync of a non-ID name: its temporary is fine, the rename onto the
	# name is refused, and nothing is left behind
	run rsync -r "$T/import/" "$G/"
	echo "rsync: $output"
	[ "$status" -eq 23 ]
	[[ "$output" == *'-> "gemini.key": Operation not permitted'* ]]
	log_has "rename of ai_gateway/\.gemini\.key\.[A-Za-z0-9]+ onto ai_gateway/gemini\.key refused: .*did you mean GEMINI_KEY"
	# mv of a scratch file onto such a name: EPERM (mv reports EINVAL as
	# "a subdirectory of itself"), the same log line, the scratch file stays
	printf v >"$G/.draft"
	run mv "$G/.draft" "$G/notes.txt"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	log_has "rename of ai_gateway/\.draft onto ai_gateway/notes\.txt refused: not a secret ID .*did you mean NOTES_TXT\?"
	[ "$(ls -A "$G")" = .draft ]
	rm "$G/.draft"
	[ -z "$(ls -A "$G")" ]
	# the ID meant works
	cp "$T/import/gemini.key" "$G/GEMINI_KEY"
	expect_value "$G/GEMINI_KEY" gem-value
	remount
	[ "$(ls -A "$G")" = GEMINI_KEY ]
}

@test "names: the temporaries of mktemp, Python's tempfile and emacs are scratch files" {
	mount_store
	G=$MNT/ai_gateway
	t1=$(mktemp -p "$G")
	t2=$(mktemp -p "$G" .KEY.XXXXXX)
	t3=$(python3 -c 'import sys, tempfile; f = tempfile.NamedTemporaryFile(dir=sys.argv[1], delete=False); f.write(b"py"); print(f.name)' "$G")
	printf e >"$G/#KEY#"
	[[ "$(basename "$t1")" == tmp.* ]]
	for f in "$t1" "$t2" "$t3" "$G/#KEY#"; do
		[ -f "$f" ]
		log_has "ai_gateway/$(basename "$f" | sed 's/[.]/\\./g'): scratch file"
	done
	expect_value "$t3" py
	mv "$t3" "$G/FROM_PYTHON"
	expect_value "$G/FROM_PYTHON" py
	rm "$t1" "$t2" "$G/#KEY#"
	[ "$(ls -A "$G")" = FROM_PYTHON ]
}

# ---------------------------------------------------------------- list

@test "list: every secret once, with version, size, time, scopes and labels; scratch files and .versions left out; filters; JSON; nothing read" {
	mount_store
	G=$MNT/ai_gateway
	M=$MNT/mcp_server
	printf 'sk-1' >"$G/OPENAI_API_KEY"
	printf 'sk-22' >"$G/.OPENAI_API_KEY.new"
	mv "$G/.OPENAI_API_KEY.new" "$G/OPENAI_API_KEY"
	setfattr -n user.tag.managed-by -v aigateway "$G/OPENAI_API_KEY"
	setfattr -n user.tag.team -v payments "$G/OPENAI_API_KEY"
	ln "$G/OPENAI_API_KEY" "$M/OPENAI_API_KEY"
	printf 'tok' >"$M/MCP_TOKEN"
	printf 'draft' >"$M/.scratch"
	sync "$MNT" # the audit lines still batched
	reads=$(grep -c 'op=read' "$LOG" || true)

	run "$SFS" list "$MNT"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	[[ "${lines[0]}" == ID*VERSION*SIZE*MODIFIED*SCOPES*LABELS ]]
	read -r id ver size when scopes labels <<<"${lines[1]}"
	[ "$id" = MCP_TOKEN ] && [ "$ver" = 1 ] && [ "$size" = 3 ] && [ "$scopes" = mcp_server ] && [ "$labels" = - ]
	[[ "$when" =~ ^20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9:]+Z$ ]]
	read -r id ver size when scopes labels <<<"${lines[2]}"
	[ "$id" = OPENAI_API_KEY ] && [ "$ver" = 2 ] && [ "$size" = 5 ]
	[ "$scopes" = ai_gateway,mcp_server ]
	[ "$labels" = managed-by=aigateway,team=payments ] || [ "$labels" = team=payments,managed-by=aigateway ]

	run "$SFS" list "$MNT" --label managed-by=aigateway
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ] && [[ "${lines[1]}" == OPENAI_API_KEY* ]]
	run "$SFS" list "$MNT" --label managed-by=other
	[ "$status" -eq 0 ] && [ "${#lines[@]}" -eq 1 ]
	run "$SFS" list "$MNT" --scope ai_gateway
	[ "${#lines[@]}" -eq 2 ] && [[ "${lines[1]}" == OPENAI_API_KEY* ]]
	run "$SFS" list "$MNT" --scope mcp_server --label team=payments
	[ "${#lines[@]}" -eq 2 ] && [[ "${lines[1]}" == OPENAI_API_KEY* ]]

	"$SFS" list "$MNT" --json >"$T/list.json"
	python3 - "$T/list.json" "$(stat -c %Y "$G/OPENAI_API_KEY")" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
assert [e["id"] for e in v] == ["MCP_TOKEN", "OPENAI_API_KEY"], v
o = v[1]
assert o["scopes"] == ["ai_gateway", "mcp_server"], o
assert o["labels"] == {"managed-by": "aigateway", "team": "payments"}, o
assert o["version"] == 2 and o["size"] == 5, o
assert o["mtime_ns"] // 10**9 == int(sys.argv[2]), o
assert v[0]["labels"] == {} and v[0]["scopes"] == ["mcp_server"], v[0]
PY
	"$SFS" list "$MNT" --json --scope ai_agent | python3 -c 'import json, sys; assert json.load(sys.stdin) == []'
	# it opened no value
	sync "$MNT"
	[ "$(grep -c 'op=read' "$LOG" || true)" = "$reads" ]

	# bad arguments: one line each
	run "$SFS" list "$MNT" --scope ai_gatway
	[ "$status" -ne 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"unknown scope 'ai_gatway' (did you mean ai_gateway?); the scopes are: ai_gateway, mcp_server, ai_agent, redpanda_cluster, redpanda_connect"* ]]
	run "$SFS" list "$T"
	[ "$status" -ne 0 ]
	[[ "$output" == *"is not a secretsfs mount"* ]]
	run "$SFS" list
	[ "$status" -ne 0 ]
	[[ "$output" == *"usage: secretsfs list MOUNTPOINT"* ]]
}

# ---------------------------------------------------------------- import into a second scope

@test "import into a second scope: cp and rsync -a of an ID living in another scope are refused (EEXIST; rsync exits 23), the log says where it lives and the ln; after ln they rotate it" {
	mount_store
	G=$MNT/ai_gateway
	M=$MNT/mcp_server
	printf 'gw-value' >"$G/SHARED_KEY"
	mkdir "$T/dir"
	printf 'gw-value' >"$T/dir/SHARED_KEY"
	printf 'mcp-only' >"$T/dir/MCP_ONLY"

	run cp "$T/dir/SHARED_KEY" "$M/"
	echo "cp: $output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"File exists"* ]]
	log_has "mcp_server/SHARED_KEY: create refused \(EEXIST\): secret SHARED_KEY already lives in ai_gateway.*run: ln $MNT/ai_gateway/SHARED_KEY $MNT/mcp_server/SHARED_KEY"
	[ ! -e "$M/SHARED_KEY" ]

	# the same value does not add the scope: ln does (docs/design.md)
	run rsync -a "$T/dir/" "$M/"
	echo "rsync: $output"
	[ "$status" -eq 23 ]
	log_has "mcp_server/SHARED_KEY: rename refused \(EEXIST\): secret SHARED_KEY already lives in ai_gateway.*ln "
	[ "$(ls -A "$M")" = MCP_ONLY ]
	expect_value "$M/MCP_ONLY" mcp-only
	[ "$(getfattr --absolute-names --only-values -n secretsfs.scopes "$G/SHARED_KEY")" = ai_gateway ]
	[ "$(sfs_version "$G/SHARED_KEY")" = 1 ]

	ln "$G/SHARED_KEY" "$M/SHARED_KEY"
	printf 'new-value' >"$T/dir/SHARED_KEY"
	run rsync -a "$T/dir/" "$M/"
	[ "$status" -eq 0 ]
	expect_value "$G/SHARED_KEY" new-value
	[ "$(getfattr --absolute-names --only-values -n secretsfs.scopes "$G/SHARED_KEY")" = ai_gateway,mcp_server ]
	# (the second rsync copies MCP_ONLY again or not, as the mount's mtime,
	# its commit's, falls in the source's second or not: count from here)
	local v
	v=$(sfs_version "$M/MCP_ONLY")
	cp "$T/dir/MCP_ONLY" "$M/"
	[ "$(sfs_version "$M/MCP_ONLY")" = $((v + 1)) ]
}

# ---------------------------------------------------------------- values

@test "a value ending in a newline is stored exactly; the log warns once per mount" {
	mount_store
	echo v >"$MNT/ai_gateway/ECHOED_KEY"
	expect_value "$MNT/ai_gateway/ECHOED_KEY" $'v\n'
	[ "$(stat -c %s "$MNT/ai_gateway/ECHOED_KEY")" = 2 ]
	log_has "ECHOED_KEY: the value ends in a newline and is stored so.*rarely end in one"
	echo w >"$MNT/ai_gateway/ECHOED_TOO"
	printf 'x\n' >"$MNT/ai_gateway/.ECHOED_TOO.new"
	mv "$MNT/ai_gateway/.ECHOED_TOO.new" "$MNT/ai_gateway/ECHOED_TOO"
	expect_value "$MNT/ai_gateway/ECHOED_TOO" $'x\n'
	log_has "ECHOED_TOO: version 2 committed"
	[ "$(grep -c 'ends in a newline' "$LOG")" = 1 ]
	printf 'plain' >"$MNT/ai_gateway/PLAIN_KEY"
	remount
	expect_value "$MNT/ai_gateway/ECHOED_KEY" $'v\n'
	echo z >"$MNT/ai_gateway/PLAIN_KEY"
	[ "$(grep -c 'ends in a newline' "$LOG")" = 2 ]
}

# ---------------------------------------------------------------- the README

@test "README: the commands of \"Using it\" run as pasted (the paths moved under the test's dir) and the roll back restores the older value" {
	new_store
	awk '/^## Using it/ { on = 1 } on && /^```sh$/ { grab = 1; next } grab && /^```$/ { exit } grab' \
		"$BATS_TEST_DIRNAME/../../README.md" >"$T/using-it.sh"
	grep -q 'mkdir -p /run/secretsfs' "$T/using-it.sh"
	grep -q '^secretsfs init /var/lib/secretsfs' "$T/using-it.sh"
	# the same commands, on paths of the test's own
	sed -i "s|/var/lib/secretsfs|$T/var-lib|g; s|/run/secretsfs|$T/run|g" "$T/using-it.sh"
	mkdir "$T/bin"
	ln -s "$(readlink -f "$SFS")" "$T/bin/secretsfs"
	MNT=$T/run
	run env PATH="$T/bin:$PATH" bash -ex "$T/using-it.sh"
	echo "$output"
	[ "$status" -eq 0 ]
	! mounted
	[[ "$output" == *"created an empty store in $T/var-lib"* ]]
	[[ "$output" == *"user.tag.managed-by=\"aigateway\""* ]]
	[[ "$output" == *"OPENAI_API_KEY "*"ai_gateway,mcp_server"*"managed-by=aigateway"* ]]
	# its "older value" is the first one, and the roll back brought it back
	STORE=$T/var-lib
	# the backgrounded daemon ends after the unmount: its store lock goes
	for _ in $(seq 1 200); do
		flock -n "$STORE/store.lock" true && break
		sleep 0.05
	done
	start_daemon
	expect_value "$MNT/ai_gateway/OPENAI_API_KEY" 'sk-...'
	expect_value "$MNT/mcp_server/OPENAI_API_KEY" 'sk-...'
	[ "$(sfs_version "$MNT/ai_gateway/OPENAI_API_KEY")" = 3 ]
	expect_value "$MNT/.versions/OPENAI_API_KEY/2" sk-new
}

# ---------------------------------------------------------------- start-up

@test "mountpoint: a non-empty directory is refused (naming a file in it) unless -o nonempty" {
	new_store
	printf x >"$MNT/precious"
	run "$SFS" "$STORE" "$MNT" -f
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"mountpoint $MNT is not empty (precious is in it): "*"-o nonempty"* ]]
	! mounted
	start_daemon -o nonempty
	[ ! -e "$MNT/precious" ]
	stop_daemon
	[ "$(cat "$MNT/precious")" = x ]
}

@test "options: an unknown option or scope is one line naming the nearest and the valid ones" {
	new_store
	run "$SFS" "$STORE" "$MNT" -o alow_other
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "secretsfs: unknown option -o alow_other (did you mean allow_other?); the options are: key=, attrs=, "*"allow_other"* ]]
	run "$SFS" "$STORE" "$MNT" -o keep_version=3
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"unknown option -o keep_version=3 (did you mean keep_versions?)"* ]]
	run "$SFS" "$STORE" "$MNT" -o frobnicate
	[ "$status" -eq 1 ]
	[[ "$output" == *"unknown option -o frobnicate; the options are: "* ]]
	run "$SFS" "$STORE" "$MNT" -o owner=ai_gatway:root
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"-o owner: unknown scope 'ai_gatway' (did you mean ai_gateway?); the scopes are: ai_gateway, mcp_server, ai_agent, redpanda_cluster, redpanda_connect"* ]]
	run "$SFS" "$STORE" "$MNT" -o unit=gateway:x.service
	[ "$status" -eq 1 ]
	[[ "$output" == *"-o unit: unknown scope 'gateway'"*"the scopes are: "* ]]
	! mounted
	# FUSE's own options still reach libfuse
	start_daemon -o nodev,nosuid,noatime
	grep -F " $MNT fuse.secretsfs " /proc/mounts | grep -q nodev
}

@test "a second daemon on a store in use names the pid and the mountpoint holding it" {
	mount_store
	mkdir "$T/mnt2"
	run "$SFS" "$STORE" "$T/mnt2" -f
	[ "$status" -eq 1 ]
	[[ "$output" == *"the store in $STORE is in use by another secretsfs: pid $DAEMON_PID, mounted on $MNT (unmount it first: fusermount3 -u $MNT)"* ]]
	# through another path to the same directory, too
	mkdir "$T/other-path"
	mount --bind "$STORE" "$T/other-path"
	run "$SFS" "$T/other-path" "$T/mnt2" -f
	umount "$T/other-path"
	[ "$status" -eq 1 ]
	[[ "$output" == *"the store in $T/other-path is in use by another secretsfs: pid $DAEMON_PID, mounted on $MNT "* ]]
	[ -d "$MNT/ai_gateway" ]
}

@test "init: a directory holding a foreign key is refused as such, and nothing is left behind" {
	T=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-test.XXXXXX")
	mkdir -m 0700 "$T/d"
	head -c 32 /dev/urandom >"$T/d/key"
	chmod 0400 "$T/d/key"
	run "$SFS" init "$T/d"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/d/key is a key with no store beside it (a key from elsewhere is never adopted)"* ]]
	[[ "$output" != *"already holds a store"* ]]
	[ "$(ls -A "$T/d")" = key ]
	# a real store still says so
	"$SFS" init "$T/s" >/dev/null
	run "$SFS" init "$T/s"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/s already holds a store"* ]]
}

@test "init -o key=FILE: the key is made at FILE outside DIR; mounting needs -o key=FILE; an existing FILE is refused and nothing is left" {
	T=$(mktemp -d "${SECRETSFS_TEST_TMP:-/tmp}/secretsfs-test.XXXXXX")
	STORE=$T/store
	MNT=$T/mnt
	LOG=$T/log
	mkdir -m 0700 "$T/keys" "$MNT"
	run "$SFS" init "$STORE" -o key="$T/keys/store.key"
	[ "$status" -eq 0 ]
	[[ "$output" == *"its key is the new file $T/keys/store.key (mode 0400): mount with -o key=$T/keys/store.key"* ]]
	[ "$(stat -c %a "$T/keys/store.key")" = 400 ]
	[ "$(stat -c %s "$T/keys/store.key")" = 32 ]
	[ ! -e "$STORE/key" ]
	run "$SFS" "$STORE" "$MNT" -f
	[ "$status" -eq 1 ]
	[[ "$output" == *"key file $STORE/key not found (give the key with -o key=FILE)"* ]]
	start_daemon -o key="$T/keys/store.key"
	printf 'outside' >"$MNT/ai_gateway/K"
	remount -o key="$T/keys/store.key"
	expect_value "$MNT/ai_gateway/K" outside
	stop_daemon
	# the -okey= spelling, and a key file that exists already
	run "$SFS" init "$T/store2" -okey="$T/keys/store.key"
	[ "$status" -eq 1 ]
	[[ "$output" == *"key file $T/keys/store.key already exists (a key from elsewhere is never adopted)"* ]]
	[ ! -e "$T/store2" ]
	# a missing key directory is made, 0700 (/etc/secretsfs for the
	# shipped unit); one whose parent is missing too is refused
	run "$SFS" init "$T/store3" -o key="$T/nowhere/k"
	[ "$status" -eq 0 ]
	[ "$(stat -c %a "$T/nowhere")" = 700 ]
	[ "$(stat -c %a "$T/nowhere/k")" = 400 ]
	run "$SFS" init "$T/store4" -o key="$T/no/where/k"
	[ "$status" -eq 1 ]
	[[ "$output" == *"cannot make its directory $T/no/where"* ]]
	[ ! -e "$T/store4" ]
}

@test "--help lists every scope directory of a mount, the ID rule and the scratch names" {
	mount_store
	run "$SFS" --help
	[ "$status" -eq 0 ]
	for d in $(ls "$MNT"); do
		[[ "$output" == *"$d"* ]] || { echo "--help lacks the scope $d" >&2; return 1; }
	done
	[[ "$output" == *'^[A-Z][A-Z0-9_]*$'* ]]
	[[ "$output" == *"sedXXXXXX"* ]]
	[[ "$output" == *"list MOUNTPOINT"* ]]
	[[ "$output" == *"init DIR -o key=FILE"* ]]
	[[ "$output" == *"-o nonempty"* ]]
}
