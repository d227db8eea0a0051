#!/usr/bin/env bats
# The mirror (-o mirror=redpanda:https://…): an embedded mount whose every
# committed change is also applied to Redpanda Cloud, here the emulator of
# its Data Plane API (tests/tools/rp-emulator, written from the public
# contract: the cloud cannot be reached from here).  The host reads the
# values; the emulator's /_admin/ shows what "the cloud" holds and every
# change it got (history).

load helper
load rp_helper
load etcd_helper

setup() {
	rp_start
	STORE=$T/store
	"$SFS" init "$STORE" >/dev/null
}

teardown() {
	# an etcd test's hosts (etcd_host) first; their dir is $T
	if [ -n "${ETCD_DIR:-}" ]; then
		local m p
		for m in "$T"/a "$T"/b; do
			grep -qF " $m fuse.secretsfs " /proc/mounts && fusermount3 -u "$m" 2>/dev/null
		done
		for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
		[ "${BATS_TEST_COMPLETED:-}" = 1 ] || tail -n 30 "$T"/log.* >&2 2>/dev/null
		grep -qE 'AddressSanitizer|runtime error|LeakSanitizer' "$T"/log.* 2>/dev/null &&
			cat "$T"/log.* >&2 && sanitized=1
		etcd_teardown
	fi
	rp_teardown
	[ -z "${sanitized:-}" ]
}

# mirror_mount [options...]: the embedded store on $MNT, mirrored to the
# emulator; waits until the mirror has reconciled.
mirror_mount() {
	start_daemon -o "mirror=redpanda:$RP_URL" \
		-o "credentials=$RP_CREDS,cacert=$RP_DIR/ca.pem,token_url=$RP_URL/oauth/token" "$@"
	wait_for grep -q 'mirror: reconciled' "$LOG"
}

mstatus() { getfattr --only-values -n secretsfs.mirror "$1"; }
is_synced() { [ "$(mstatus "$1")" = synced ]; }
is_pending() { mstatus "$1" | grep -q '^pending since 20[0-9-]*T[0-9:]*Z'; }
cloud_has() { [ "$(rp_value "$1")" = "$2" ]; }
cloud_gone() { [ "$(rp_secret "$1")" = "{}" ]; }
cloud_field() { rp_secret "$1" | grep -q "$2"; }
fault() { rp_admin POST faults "$1" >/dev/null; }
held() { [ "$(rp_admin GET history | python3 -c 'import json,sys; print(json.load(sys.stdin)["held"])')" -ge "$1" ]; }

# history ID: the changes the cloud got for ID, one per line: OP VALUE SCOPES LABELS
history() {
	rp_admin GET history | python3 -c '
import base64, json, sys
for h in json.load(sys.stdin)["history"]:
    if h["id"] == sys.argv[1]:
        if h["op"] == "delete":
            print("delete")
            continue
        v = base64.b64decode(h["value"]).decode() if h["value"] else "-"
        print(h["op"], v, ",".join(h["scopes"] or []), json.dumps(h["labels"], sort_keys=True))' "$1"
}

@test "create, mv rotation, ln, setfattr, rm on the host: the cloud holds the same; pending, then synced" {
	mirror_mount
	K=$MNT/ai_gateway/OPENAI_API_KEY
	# the create is held in the cloud: the write has returned, the
	# host reads the value, the xattr says pending
	fault '{"match":"POST /v1/secrets","hold":true}'
	printf 'sk-1' >"$K"
	wait_for held 1
	[ "$(cat "$K")" = sk-1 ]
	is_pending "$K"
	cloud_gone OPENAI_API_KEY
	rp_admin POST release >/dev/null
	wait_for is_synced "$K"
	cloud_has OPENAI_API_KEY sk-1
	cloud_field OPENAI_API_KEY '"scopes": \["SCOPE_AI_GATEWAY"\]'

	printf 'sk-2' >"$MNT/ai_gateway/.OPENAI_API_KEY.new"
	mv "$MNT/ai_gateway/.OPENAI_API_KEY.new" "$K"
	[ "$(cat "$K")" = sk-2 ]
	wait_for cloud_has OPENAI_API_KEY sk-2
	wait_for is_synced "$K"

	ln "$K" "$MNT/mcp_server/OPENAI_API_KEY"
	wait_for cloud_field OPENAI_API_KEY '"scopes": \["SCOPE_MCP_SERVER", "SCOPE_AI_GATEWAY"\]'
	setfattr -n user.tag.managed-by -v aigateway "$K"
	wait_for cloud_field OPENAI_API_KEY '"managed-by": "aigateway"'
	setfattr -x user.tag.managed-by "$K"
	wait_for eval '! cloud_field OPENAI_API_KEY managed-by'
	rm "$MNT/mcp_server/OPENAI_API_KEY"
	wait_for cloud_field OPENAI_API_KEY '"scopes": \["SCOPE_AI_GATEWAY"\]'
	cloud_has OPENAI_API_KEY sk-2
	wait_for is_synced "$K"
	rm "$K"
	wait_for cloud_gone OPENAI_API_KEY

	# each change once, in order, each a state the host had
	run history OPENAI_API_KEY
	[ "${lines[0]}" = 'create sk-1 SCOPE_AI_GATEWAY {}' ]
	[ "${lines[1]}" = 'update sk-2 SCOPE_AI_GATEWAY {}' ]
	[ "${lines[2]}" = 'update - SCOPE_MCP_SERVER,SCOPE_AI_GATEWAY {}' ]
	[ "${lines[3]}" = 'update - SCOPE_MCP_SERVER,SCOPE_AI_GATEWAY {"managed-by": "aigateway"}' ]
	[ "${lines[4]}" = 'update - SCOPE_MCP_SERVER,SCOPE_AI_GATEWAY {}' ]
	[ "${lines[5]}" = 'update - SCOPE_AI_GATEWAY {}' ]
	[ "${lines[6]}" = delete ]
	[ "${#lines[@]}" = 7 ]
	[ "$(stat -c %a "$STORE/host-attrs.mirror")" = 600 ]
}

@test "the cloud down at mount and during a rotation: pending with the error, pushed once it is back" {
	fault '{"match":"","count":100000,"status":503}'
	start_daemon -o "mirror=redpanda:$RP_URL" \
		-o "credentials=$RP_CREDS,cacert=$RP_DIR/ca.pem,token_url=$RP_URL/oauth/token"
	K=$MNT/ai_gateway/ANTHROPIC_API_KEY
	printf 'sk-old' >"$K" # the mount serves while the cloud is down
	wait_for eval 'mstatus "$K" | grep -q "^pending since .*: reconciling with the cloud; last error: "'
	log_has 'mirror: cannot reconcile with redpanda:https://.* yet'
	rp_admin POST faults/clear >/dev/null
	wait_for is_synced "$K"
	cloud_has ANTHROPIC_API_KEY sk-old
	fault '{"match":"","count":100000,"status":503}'
	printf 'sk-new' >"$MNT/ai_gateway/.ANTHROPIC_API_KEY.new"
	mv "$MNT/ai_gateway/.ANTHROPIC_API_KEY.new" "$K"
	[ "$(cat "$K")" = sk-new ] # the host's services have it
	wait_for eval 'mstatus "$K" | grep -q "^pending since .*; last error (.*): "'
	cloud_has ANTHROPIC_API_KEY sk-old
	log_has 'mirror: ANTHROPIC_API_KEY: not pushed'
	log_has 'mirror: the cloud cannot take changes now'
	# another change meanwhile waits too, and says why
	printf 'sk-other' >"$MNT/ai_gateway/OTHER_KEY"
	wait_for eval 'mstatus "$MNT/ai_gateway/OTHER_KEY" | grep -q "; last error (.*): "'
	rp_admin POST faults/clear >/dev/null
	wait_for cloud_has ANTHROPIC_API_KEY sk-new
	wait_for is_synced "$K"
	wait_for cloud_has OTHER_KEY sk-other
	log_has 'mirror: the cloud takes changes again' 
	run history ANTHROPIC_API_KEY
	[ "${#lines[@]}" = 2 ]
	[ "${lines[1]}" = 'update sk-new SCOPE_AI_GATEWAY {}' ]
}

@test "SIGKILL of the daemon while a push is held: after remount converged, nothing lost or doubled" {
	mirror_mount
	printf 'v1' >"$MNT/ai_gateway/ROTATED"
	printf 'gone' >"$MNT/ai_gateway/DELETED"
	wait_for is_synced "$MNT/ai_gateway/ROTATED"
	wait_for is_synced "$MNT/ai_gateway/DELETED"
	fault '{"match":"PUT /v1/secrets","hold":true}'
	printf 'v2' >"$MNT/ai_gateway/.ROTATED.new"
	mv "$MNT/ai_gateway/.ROTATED.new" "$MNT/ai_gateway/ROTATED"
	wait_for held 1
	# queued behind the held push, never sent before the kill
	printf 'later' >"$MNT/ai_gateway/CREATED"
	rm "$MNT/ai_gateway/DELETED"
	kill -9 "$DAEMON_PID"
	wait "$DAEMON_PID" || true
	DAEMON_PID=
	fusermount3 -uz "$MNT"
	cloud_gone CREATED
	rp_admin POST release >/dev/null # the held PUT lands after all
	wait_for cloud_has ROTATED v2
	mirror_mount
	wait_for cloud_has CREATED later
	wait_for cloud_gone DELETED
	cloud_has ROTATED v2
	wait_for is_synced "$MNT/ai_gateway/ROTATED"
	wait_for is_synced "$MNT/ai_gateway/CREATED"
	[ "$(cat "$MNT/ai_gateway/ROTATED")" = v2 ]
	# every change the cloud got is one the host made, the last one last
	run history ROTATED
	[ "${lines[0]}" = 'create v1 SCOPE_AI_GATEWAY {}' ]
	for l in "${lines[@]:1}"; do [ "$l" = 'update v2 SCOPE_AI_GATEWAY {}' ]; done
	[ "$(history CREATED)" = 'create later SCOPE_AI_GATEWAY {}' ]
	[ "$(history DELETED | tail -n 1)" = delete ]
	[ "$(history DELETED | grep -c delete)" = 1 ]
}

@test "reconcile at mount: changes made while unmounted are pushed, a secret deleted in the cloud comes back, one only there is left alone" {
	mirror_mount
	for id in KEPT ROTATED DELETED; do printf 'v-%s' "$id" >"$MNT/ai_gateway/$id"; done
	for id in KEPT ROTATED DELETED; do wait_for is_synced "$MNT/ai_gateway/$id"; done
	stop_daemon
	# while unmounted: the console deletes KEPT and makes CONSOLE_ONLY;
	# a mount without the mirror rotates ROTATED and removes DELETED
	rp_admin DELETE secrets/KEPT >/dev/null
	rp_admin PUT secrets/CONSOLE_ONLY '{"scopes":["SCOPE_AI_AGENT"],"secret_data":"eA=="}' >/dev/null
	start_daemon
	printf 'v-new' >"$MNT/ai_gateway/ROTATED"
	rm "$MNT/ai_gateway/DELETED"
	stop_daemon
	rp_admin POST counts/reset >/dev/null
	mirror_mount
	log_has 'mirror: KEPT: deleted in the cloud: created again'
	log_has 'mirror: ROTATED: a value not yet in the cloud: pushed'
	log_has 'mirror: DELETED: deleted here: deleted in the cloud'
	log_has 'mirror: CONSOLE_ONLY: only in the cloud, not pushed by this host: left alone'
	wait_for cloud_has KEPT v-KEPT
	wait_for cloud_has ROTATED v-new
	wait_for cloud_gone DELETED
	[ "$(rp_value CONSOLE_ONLY)" = x ]
	wait_for is_synced "$MNT/ai_gateway/ROTATED"
	# one listing, then one call per difference (and the token)
	[ "$(rp_count 'by_call:GET /v1/secrets')" = 1 ]
	[ "$(rp_count 'by_call:POST /v1/secrets')" = 1 ]
	[ "$(rp_count 'by_call:PUT /v1/secrets/{id}')" = 1 ]
	[ "$(rp_count 'by_call:DELETE /v1/secrets/{id}')" = 1 ]
	# a mount that finds everything in step sends nothing but the listing
	stop_daemon
	rp_admin POST counts/reset >/dev/null
	mirror_mount
	log_has 'mirror: reconciled .*; 0 to push, 1 only in the cloud left alone'
	is_synced "$MNT/ai_gateway/KEPT"
	[ "$(rp_count api)" = 1 ]
	# deleted in the cloud while mounted (no poll sees it): the next
	# change finds it gone (404) and makes it again, with its value
	rp_admin DELETE secrets/KEPT >/dev/null
	setfattr -n user.tag.team -v ops "$MNT/ai_gateway/KEPT"
	wait_for cloud_has KEPT v-KEPT
	cloud_field KEPT '"team": "ops"'
	wait_for is_synced "$MNT/ai_gateway/KEPT"
}

@test "a held push never blocks a FUSE request, and unmount stops a held push at once" {
	mirror_mount
	K=$MNT/ai_gateway/SLOW
	printf 'v1' >"$K"
	wait_for is_synced "$K"
	# The push is held until released: only its call's deadline
	# (RP_CALL_TIMEOUT_MS, 15 s from the hold) would end it without the
	# cancel; each bound below (10 s, from at most a moment after the hold)
	# ends before that.
	fault '{"match":"PUT /v1/secrets","hold":true}'
	printf 'v2' >"$K"
	wait_for held 1
	run timeout 10 sh -c "printf v3 >'$K'" # a kick while the push is held
	[ "$status" -eq 0 ]
	run timeout 10 cat "$K"
	[ "$status" -eq 0 ] && [ "$output" = v3 ]
	run timeout 10 ls "$MNT/ai_gateway"
	[ "$status" -eq 0 ] && [ "$output" = SLOW ]
	is_pending "$K"
	rp_admin POST release >/dev/null
	wait_for cloud_has SLOW v3
	wait_for is_synced "$K"
	# held again: the unmount cancels it, the daemon exits 0 at once
	fault '{"match":"PUT /v1/secrets","hold":true}'
	printf 'v4' >"$K"
	wait_for held 2
	run timeout 10 fusermount3 -u "$MNT"
	[ "$status" -eq 0 ]
	run timeout 10 sh -c "while kill -0 $DAEMON_PID 2>/dev/null; do sleep 0.1; done"
	[ "$status" -eq 0 ]
	wait "$DAEMON_PID"
	DAEMON_PID=
	rp_admin POST release >/dev/null
	# still pending: the next mount pushes it
	mirror_mount
	wait_for cloud_has SLOW v4
}

@test "mv A B: B is made in the cloud before A is deleted there" {
	mirror_mount
	printf 'a1' >"$MNT/ai_gateway/OLD_NAME"
	wait_for is_synced "$MNT/ai_gateway/OLD_NAME"
	mv "$MNT/ai_gateway/OLD_NAME" "$MNT/ai_gateway/NEW_NAME"
	wait_for cloud_gone OLD_NAME
	wait_for cloud_has NEW_NAME a1
	run rp_admin GET history
	order=$(printf '%s' "$output" | python3 -c '
import json, sys
print(" ".join(h["op"] + ":" + h["id"] for h in json.load(sys.stdin)["history"]))')
	[ "$order" = "create:OLD_NAME create:NEW_NAME delete:OLD_NAME" ]
}

@test "a create whose answer was lost landed; rm on the host: the DELETE reaches the cloud" {
	mirror_mount
	# the POST is made, its answer lost (reset); the retries are refused
	# (400: at once, no retry of the HTTP layer)
	fault '[{"match":"POST /v1/secrets","lost":true},{"match":"POST /v1/secrets","count":1000,"status":400}]'
	printf 'x1' >"$MNT/ai_gateway/ZOMBIE"
	wait_for log_has 'mirror: ZOMBIE: not pushed'
	cloud_has ZOMBIE x1
	rm "$MNT/ai_gateway/ZOMBIE"
	wait_for cloud_gone ZOMBIE
	[ "$(history ZOMBIE | tail -n 1)" = delete ]
	rp_admin POST faults/clear >/dev/null
}

@test "one secret the cloud keeps refusing (a 500 for its ID) holds up no other" {
	mirror_mount
	fault '{"exact":"PUT /v1/secrets/STUCK","count":100000,"status":500}'
	printf 's1' >"$MNT/ai_gateway/STUCK"
	wait_for is_synced "$MNT/ai_gateway/STUCK"
	printf 's2' >"$MNT/ai_gateway/STUCK"
	wait_for log_has 'mirror: STUCK: not pushed'
	printf 'o1' >"$MNT/ai_gateway/OTHER"
	wait_for cloud_has OTHER o1
	wait_for is_synced "$MNT/ai_gateway/OTHER"
	is_pending "$MNT/ai_gateway/STUCK"
	cloud_has STUCK s1
}

@test "an etcd mount mirrors too: its own changes and those another host made (its watch)" {
	etcd_start 1
	KEY=$T/fleet.key
	SRC="etcd://${ETCD_ENDPOINTS//http:\/\//}/fleet"
	PIDS=()
	mkdir -p "$T/a" "$T/b"
	"$SFS" init "$SRC" -o "key=$KEY" >/dev/null
	etcd_host a "mirror=redpanda:$RP_URL,credentials=$RP_CREDS,cacert=$RP_DIR/ca.pem,token_url=$RP_URL/oauth/token"
	etcd_host b
	wait_for grep -q 'mirror: reconciled' "$T/log.a"
	printf 'from-a' >"$T/a/ai_gateway/FROM_A"
	wait_for cloud_has FROM_A from-a
	printf 'from-b' >"$T/b/ai_gateway/FROM_B" # A's watch applies it, then A's mirror
	wait_for cloud_has FROM_B from-b
	printf 'b-rotated' >"$T/b/ai_gateway/.FROM_A.new"
	mv "$T/b/ai_gateway/.FROM_A.new" "$T/b/ai_gateway/FROM_A"
	wait_for cloud_has FROM_A b-rotated
	wait_for eval '[ "$(mstatus "$T/a/ai_gateway/FROM_A")" = synced ]'
	[ "$(stat -c %a "$T/attrs.a.mirror")" = 600 ]
}

@test "-o mirror: refused on a Redpanda Cloud store and for another URL; in --help" {
	run "$SFS" "redpanda:$RP_URL" "$MNT" -f -o "credentials=$RP_CREDS,mirror=redpanda:$RP_URL"
	[ "$status" -ne 0 ]
	[[ "$output" == *"-o mirror= is for embedded and etcd stores"* ]]
	run "$SFS" "$STORE" "$MNT" -f -o "credentials=$RP_CREDS,mirror=https://example.com"
	[ "$status" -ne 0 ]
	[[ "$output" == *"expected mirror=redpanda:https://DATAPLANE-URL"* ]]
	run env -u CREDENTIALS_DIRECTORY "$SFS" "$STORE" "$MNT" -f -o "mirror=redpanda:$RP_URL"
	[ "$status" -ne 0 ]
	[[ "$output" == *"needs its OAuth client: -o credentials=FILE"* ]]
	run "$SFS" "$STORE" "$MNT" -f -o "ro,credentials=$RP_CREDS,mirror=redpanda:$RP_URL"
	[ "$status" -ne 0 ]
	[[ "$output" == *"-o ro and -o mirror= together: the mirror would still change the cloud"* ]]
	run "$SFS" --help
	[[ "$output" == *"-o mirror=redpanda:https://DATAPLANE-URL"* ]]
	# a record others may read (or write) is refused, not adopted
	printf 'mirror redpanda:%s\n' "$RP_URL" >"$STORE/host-attrs.mirror"
	chmod 0644 "$STORE/host-attrs.mirror"
	run "$SFS" "$STORE" "$MNT" -f -o "mirror=redpanda:$RP_URL,credentials=$RP_CREDS,cacert=$RP_DIR/ca.pem"
	[ "$status" -ne 0 ]
	[[ "$output" == *"mirror record $STORE/host-attrs.mirror is open to group or others"* ]]
	! mounted
}

@test "-o mirror=redpanda: with -o cluster=ID: the data plane from the control plane" {
	rp_admin PUT clusters/cx3mirror '{}' >/dev/null
	start_daemon -o "mirror=redpanda:,cluster=cx3mirror,controlplane=$RP_URL" \
		-o "credentials=$RP_CREDS,cacert=$RP_DIR/ca.pem,token_url=$RP_URL/oauth/token"
	wait_for grep -q 'mirror: reconciled' "$LOG"
	printf 'c1' >"$MNT/ai_gateway/VIA_CLUSTER"
	wait_for cloud_has VIA_CLUSTER c1
	wait_for is_synced "$MNT/ai_gateway/VIA_CLUSTER"
	grep -qx 'mirror redpanda:cluster=cx3mirror' "$STORE/host-attrs.mirror"
}
