#!/usr/bin/env bats
# The Redpanda Cloud store (redpanda:https://…) against the emulator of the
# Data Plane API and the token endpoint (tests/tools/rp-emulator, written
# from the public contract: the cloud cannot be reached from here), with
# the real tools.  Counts (token requests, list pages) are the emulator's.

load helper
load rp_helper

setup() {
	rp_start
}

teardown() {
	rp_teardown
}

# seed ID JSON: a secret made directly in the emulator (as the Console would)
seed() {
	rp_admin PUT "secrets/$1" "$2" >/dev/null
}

pages_at_least() {
	[ "$(rp_count list_pages)" -ge "$1" ]
}

aigw_key() {
	seed "$1" '{"scopes":["SCOPE_AI_GATEWAY"],"labels":{"managed-by":"aigateway"},"secret_data":"c2stb2xk"}'
}

@test "mount: ls shows the keys, getfattr -d the labels (owner hidden), write-only mode, size 0" {
	aigw_key OPENAI_API_KEY
	aigw_key ANTHROPIC_API_KEY
	seed MCP_TOKEN '{"scopes":["SCOPE_MCP_SERVER","SCOPE_AI_AGENT"],"labels":{},"secret_data":"eA=="}'
	rp_mount -o poll=0
	run ls "$MNT/ai_gateway"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'ANTHROPIC_API_KEY\nOPENAI_API_KEY')" ]
	run getfattr -d --absolute-names "$MNT/ai_gateway/OPENAI_API_KEY"
	[[ "$output" == *'user.tag.managed-by="aigateway"'* ]]
	[[ "$output" != *owner* ]] # the server's own label stays hidden
	[ "$(stat -c '%A %s %h' "$MNT/ai_gateway/OPENAI_API_KEY")" = "--w------- 0 1" ]
	[ "$(stat -c '%h %i' "$MNT/mcp_server/MCP_TOKEN")" = "$(stat -c '%h %i' "$MNT/ai_agent/MCP_TOKEN")" ]
	[ "$(stat -c %h "$MNT/ai_agent/MCP_TOKEN")" = 2 ]
	[ "$(getfattr --only-values -n secretsfs.store "$MNT/ai_gateway/OPENAI_API_KEY")" = redpanda-cloud ]
}

@test "printf, cp and tee create and replace values in the cloud; the owner label is the server's" {
	rp_mount -o poll=0
	printf 'sk-new-1' >"$MNT/ai_gateway/NEW_KEY"
	[ "$(rp_value NEW_KEY)" = sk-new-1 ]
	rp_secret NEW_KEY | grep -q '"scopes": \["SCOPE_AI_GATEWAY"\]'
	rp_secret NEW_KEY | grep -q "\"owner\": \"$RP_CLIENT_ID\""
	printf 'sk-from-cp' >"$T/src"
	cp "$T/src" "$MNT/ai_gateway/NEW_KEY"
	[ "$(rp_value NEW_KEY)" = sk-from-cp ]
	printf 'sk-tee' | tee "$MNT/ai_gateway/TEE_KEY" >/dev/null
	[ "$(rp_value TEE_KEY)" = sk-tee ]
	printf 'sk-again' >"$MNT/ai_gateway/TEE_KEY"
	[ "$(rp_value TEE_KEY)" = sk-again ]
	[ "$(stat -c %s "$MNT/ai_gateway/TEE_KEY")" = 0 ]
}

@test "mv of a scratch file rotates the key; labels and other scopes are kept" {
	seed OPENAI_API_KEY '{"scopes":["SCOPE_AI_GATEWAY","SCOPE_AI_AGENT"],"labels":{"managed-by":"aigateway"},"secret_data":"b2xk"}'
	rp_mount -o poll=0
	ino=$(stat -c %i "$MNT/ai_gateway/OPENAI_API_KEY")
	printf 'sk-rotated' >"$MNT/ai_gateway/.OPENAI_API_KEY.new"
	mv "$MNT/ai_gateway/.OPENAI_API_KEY.new" "$MNT/ai_gateway/OPENAI_API_KEY"
	[ "$(rp_value OPENAI_API_KEY)" = sk-rotated ]
	rp_secret OPENAI_API_KEY | grep -q '"managed-by": "aigateway"'
	rp_secret OPENAI_API_KEY | grep -q '"scopes": \["SCOPE_AI_AGENT", "SCOPE_AI_GATEWAY"\]'
	[ "$(stat -c %i "$MNT/ai_gateway/OPENAI_API_KEY")" = "$ino" ]
	[ "$(getfattr --only-values -n secretsfs.version "$MNT/ai_gateway/OPENAI_API_KEY")" = 2 ]
	[ ! -e "$MNT/ai_gateway/.OPENAI_API_KEY.new" ]
}

@test "ln adds a scope, mv moves between scopes, rm removes one and then the secret" {
	aigw_key OPENAI_API_KEY
	rp_mount -o poll=0
	ln "$MNT/ai_gateway/OPENAI_API_KEY" "$MNT/mcp_server/OPENAI_API_KEY"
	rp_secret OPENAI_API_KEY | grep -q '"scopes": \["SCOPE_MCP_SERVER", "SCOPE_AI_GATEWAY"\]'
	[ "$(stat -c %h "$MNT/ai_gateway/OPENAI_API_KEY")" = 2 ]
	mv "$MNT/mcp_server/OPENAI_API_KEY" "$MNT/ai_agent/OPENAI_API_KEY"
	rp_secret OPENAI_API_KEY | grep -q '"scopes": \["SCOPE_AI_AGENT", "SCOPE_AI_GATEWAY"\]'
	[ "$(rp_value OPENAI_API_KEY)" = sk-old ] # value and labels untouched
	rp_secret OPENAI_API_KEY | grep -q '"managed-by": "aigateway"'
	rm "$MNT/ai_agent/OPENAI_API_KEY"
	rp_secret OPENAI_API_KEY | grep -q '"scopes": \["SCOPE_AI_GATEWAY"\]'
	rm "$MNT/ai_gateway/OPENAI_API_KEY"
	[ "$(rp_secret OPENAI_API_KEY)" = "{}" ]
	[ ! -e "$MNT/ai_gateway/OPENAI_API_KEY" ]
}

@test "setfattr sets and removes labels in the cloud" {
	aigw_key OPENAI_API_KEY
	rp_mount -o poll=0
	setfattr -n user.tag.team -v "gateway-ops" "$MNT/ai_gateway/OPENAI_API_KEY"
	rp_secret OPENAI_API_KEY | grep -q '"team": "gateway-ops"'
	setfattr -x user.tag.managed-by "$MNT/ai_gateway/OPENAI_API_KEY"
	! rp_secret OPENAI_API_KEY | grep -q managed-by || false
	rp_secret OPENAI_API_KEY | grep -q "\"owner\": \"console\"" # the server's, kept
	[ "$(rp_value OPENAI_API_KEY)" = sk-old ]
}

@test "cat (as root) is refused with the reason in the log; appends, writes in place and sed -i fail" {
	aigw_key OPENAI_API_KEY
	rp_mount -o poll=0
	run cat "$MNT/ai_gateway/OPENAI_API_KEY"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	grep -q "OPENAI_API_KEY: reading refused: the values of the redpanda-cloud store cannot be read back" "$LOG"
	run bash -c "printf more >>'$MNT/ai_gateway/OPENAI_API_KEY'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	run dd if=/dev/zero of="$MNT/ai_gateway/OPENAI_API_KEY" bs=1 count=1 conv=notrunc status=none
	[ "$status" -ne 0 ]
	grep -q "a write that keeps part of the old value" "$LOG"
	run sed -i s/a/b/ "$MNT/ai_gateway/OPENAI_API_KEY"
	[ "$status" -ne 0 ]
	[ "$(rp_value OPENAI_API_KEY)" = sk-old ] # nothing half-applied
	[ "$(rp_count by_call:PUT\ /v1/secrets/{id})" = 0 ]
}

@test "loose existing IDs appear escaped and can be changed" {
	seed 'legacy/key-1' '{"scopes":["SCOPE_REDPANDA_CONNECT"],"labels":{},"secret_data":"eA=="}'
	rp_mount -o poll=0
	[ "$(ls "$MNT/redpanda_connect")" = "legacy%2Fkey-1" ]
	setfattr -n user.tag.k -v v "$MNT/redpanda_connect/legacy%2Fkey-1"
	rp_secret 'legacy/key-1' | grep -q '"k": "v"'
}

@test "changes made directly in the emulator appear after the poll interval" {
	aigw_key OPENAI_API_KEY
	aigw_key OLD_KEY
	rp_mount -o poll=1
	aigw_key CONSOLE_KEY
	seed OPENAI_API_KEY '{"scopes":["SCOPE_AI_GATEWAY","SCOPE_MCP_SERVER"],"labels":{"managed-by":"aigateway","env":"prod"}}'
	rp_admin DELETE secrets/OLD_KEY
	wait_for test -e "$MNT/ai_gateway/CONSOLE_KEY"
	wait_for test -e "$MNT/mcp_server/OPENAI_API_KEY"
	wait_for test ! -e "$MNT/ai_gateway/OLD_KEY"
	[ "$(getfattr --only-values -n user.tag.env "$MNT/ai_gateway/OPENAI_API_KEY")" = prod ]
	getfattr -d "$MNT/ai_gateway/CONSOLE_KEY" | grep -q 'managed-by="aigateway"'
	grep -q "the poll found" "$LOG"
}

@test "one poll is the listing's pages and nothing else: no token request, no per-secret call" {
	rp_admin POST bulk '{"n":120,"prefix":"KEY_"}' >/dev/null # 3 pages of 50
	rp_mount -o poll=1
	rp_admin POST counts/reset >/dev/null
	wait_for pages_at_least 6
	run rp_admin GET counts
	echo "$output"
	python3 -c '
import json, sys
c = json.loads(sys.argv[1])
assert c["token"] == 0, c
assert set(c["by_call"]) == {"GET /v1/secrets"}, c
assert c["api"] == c["list_pages"], c' "$output"
	grep -c "page_size=50" "$RP_DIR/log" | grep -qv '^0$'
}

@test "a listing of 10,000 secrets: 200 pages of 50 at mount" {
	rp_admin POST bulk '{"n":10000,"prefix":"BULK_"}' >/dev/null
	rp_mount -o poll=0
	[ "$(ls "$MNT/ai_gateway" | wc -l)" = 10000 ]
	[ "$(rp_count list_pages)" = 200 ]
	getfattr -d "$MNT/ai_gateway/BULK_09999" | grep -q 'managed-by="aigateway"'
}

@test "a token is fetched once and reused over many operations" {
	aigw_key OPENAI_API_KEY
	rp_mount -o poll=1
	for i in $(seq 1 10); do
		printf "sk-$i" >"$MNT/ai_gateway/KEY_$i"
		setfattr -n user.tag.n -v "$i" "$MNT/ai_gateway/KEY_$i"
	done
	ln "$MNT/ai_gateway/KEY_1" "$MNT/mcp_server/KEY_1"
	rm "$MNT/ai_gateway/KEY_2"
	wait_for pages_at_least 3
	[ "$(rp_count token)" = 1 ]
	[ "$(rp_count api)" -ge 25 ]
}

@test "a token is renewed shortly before expires_in, never by a 401" {
	rp_admin POST tokens '{"expires_in":4}' >/dev/null
	aigw_key OPENAI_API_KEY
	rp_mount -o poll=1
	grep -q "new access token, valid for 4 s" "$LOG"
	wait_for pages_at_least 8
	[ "$(rp_count token)" -ge 2 ] # renewed…
	[ "$(rp_count unauthorized)" = 0 ] # …before the server refused one
}

@test "an expired token is refreshed once, on the 401" {
	aigw_key OPENAI_API_KEY
	rp_mount -o poll=0
	[ "$(rp_count token)" = 1 ]
	rp_admin POST tokens '{"expire_all":true}' >/dev/null
	setfattr -n user.tag.a -v b "$MNT/ai_gateway/OPENAI_API_KEY"
	rp_secret OPENAI_API_KEY | grep -q '"a": "b"'
	[ "$(rp_count token)" = 2 ]
	setfattr -n user.tag.a -v c "$MNT/ai_gateway/OPENAI_API_KEY"
	[ "$(rp_count token)" = 2 ]
	# a 401 that stays: one refresh, then EACCES with the server's words
	rp_admin POST faults '{"match":"PUT /v1/secrets","status":401,"count":2,"message":"token revoked"}' >/dev/null
	run setfattr -n user.tag.a -v d "$MNT/ai_gateway/OPENAI_API_KEY"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	[ "$(rp_count token)" = 3 ]
	grep -q "HTTP 401.*token revoked" "$LOG"
}

@test "the token endpoint's quota 429 is honoured: no token request until it resets" {
	aigw_key OPENAI_API_KEY
	rp_mount -o poll=0
	rp_admin POST tokens '{"expire_all":true}' >/dev/null
	rp_admin POST faults '{"match":"POST /oauth/token","quota":true,"t":3600,"count":100}' >/dev/null
	run setfattr -n user.tag.a -v b "$MNT/ai_gateway/OPENAI_API_KEY"
	[ "$status" -ne 0 ]
	[ "$(rp_count token)" = 2 ]
	for i in 1 2 3 4 5; do
		run setfattr -n user.tag.a -v "$i" "$MNT/ai_gateway/OPENAI_API_KEY"
		[ "$status" -ne 0 ]
	done
	[ "$(rp_count token)" = 2 ] # never burns the quota
	grep -q "quota: b=per_day;q=100;r=0;t=3600" "$LOG"
	grep -q "no token request for 3600 s" "$LOG"
	grep -q "asking again in" "$LOG"
}

@test "429 with Retry-After is waited for, then the call goes through" {
	aigw_key OPENAI_API_KEY
	rp_mount -o poll=0
	rp_admin POST faults '{"match":"PUT /v1/secrets","status":429,"retry_after":1,"count":1}' >/dev/null
	start=$(date +%s%N)
	setfattr -n user.tag.a -v b "$MNT/ai_gateway/OPENAI_API_KEY"
	end=$(date +%s%N)
	rp_secret OPENAI_API_KEY | grep -q '"a": "b"'
	[ "$(rp_count by_call:PUT\ /v1/secrets/{id})" = 2 ]
	# a lower bound only: the pause the server asked for was taken
	[ $(((end - start) / 1000000)) -ge 1000 ]
}

@test "503, resets mid-body, a proxy's 502 page, malformed JSON and latency are retried" {
	aigw_key OPENAI_API_KEY
	rp_mount -o poll=0
	rp_admin POST faults '[{"match":"PUT /v1/secrets","status":503,"count":1},
		{"match":"PUT /v1/secrets","reset":true,"count":1},
		{"match":"PUT /v1/secrets","html":true,"count":1},
		{"match":"PUT /v1/secrets","malformed":true,"count":1},
		{"match":"PUT /v1/secrets","latency_ms":300,"count":1}]' >/dev/null
	printf 'sk-through' >"$MNT/ai_gateway/OPENAI_API_KEY"
	[ "$(rp_value OPENAI_API_KEY)" = sk-through ]
	[ "$(rp_count by_call:PUT\ /v1/secrets/{id})" = 5 ]
}

@test "each error status becomes the contract's errno, with the server's message in the log" {
	aigw_key OPENAI_API_KEY
	aigw_key GONE_KEY
	rp_mount -o poll=0
	f=$MNT/ai_gateway/OPENAI_API_KEY
	# 400 INVALID_ARGUMENT -> EINVAL, field violations logged
	rp_admin POST faults '{"match":"PUT /v1/secrets","status":400,"reason":"REASON_INVALID_INPUT","message":"provided parameters are invalid","violations":[["labels[team]","value does not match regex pattern"]]}' >/dev/null
	run setfattr -n user.tag.team -v x "$f"
	[[ "$output" == *"Invalid argument"* ]]
	grep -q "INVALID_ARGUMENT: provided parameters are invalid \[REASON_INVALID_INPUT\]; labels\[team\]: value does not match regex pattern" "$LOG"
	# 403 PERMISSION_DENIED -> EACCES
	rp_admin POST faults '{"match":"PUT /v1/secrets","status":403,"message":"not allowed here"}' >/dev/null
	run setfattr -n user.tag.team -v x "$f"
	[[ "$output" == *"Permission denied"* ]]
	grep -q "PERMISSION_DENIED: not allowed here" "$LOG"
	# 404 NOT_FOUND -> ENOENT (deleted in the cloud, not polled yet)
	rp_admin DELETE secrets/GONE_KEY
	run rm "$MNT/ai_gateway/GONE_KEY"
	[[ "$output" == *"No such file or directory"* ]]
	grep -q "NOT_FOUND: secret GONE_KEY not found" "$LOG"
	# 409 ALREADY_EXISTS -> EEXIST (made elsewhere, not polled yet)
	aigw_key TAKEN_KEY
	printf 'v' >"$MNT/ai_gateway/.TAKEN_KEY.new"
	# (one rename(2): mv's own retry after EEXIST is not what is tested)
	run rename2 "$MNT/ai_gateway/.TAKEN_KEY.new" "$MNT/ai_gateway/TAKEN_KEY" 0
	[[ "$output" == *"EEXIST File exists"* ]]
	grep -q "ALREADY_EXISTS: secret TAKEN_KEY already exists" "$LOG"
	# 500 with REASON_SECRET_STORE_ERROR -> EIO
	rp_admin POST faults '{"match":"PUT /v1/secrets","status":500,"code":"INTERNAL","reason":"REASON_SECRET_STORE_ERROR","message":"backing store failed","count":5}' >/dev/null
	run setfattr -n user.tag.team -v x "$f"
	[[ "$output" == *"Input/output error"* ]]
	grep -q "REASON_SECRET_STORE_ERROR.*backing cloud secret manager failed" "$LOG"
	rp_admin POST faults/clear >/dev/null
	# 429 that does not end (Retry-After 0) -> EIO once the retries are spent
	rp_admin POST faults '{"match":"PUT /v1/secrets","status":429,"retry_after":0,"count":20}' >/dev/null
	run setfattr -n user.tag.team -v x "$f"
	[[ "$output" == *"Input/output error"* ]]
	grep -q "HTTP 429" "$LOG"
	rp_admin POST faults/clear >/dev/null
	# nothing of these reached the cloud
	! rp_secret OPENAI_API_KEY | grep -q team || false
}

@test "a pagination loop stops the poll; the mount keeps what it knew" {
	aigw_key OPENAI_API_KEY
	rp_mount -o poll=1
	rp_admin POST faults '{"match":"GET /v1/secrets","loop":true,"count":1}' >/dev/null
	wait_for grep -q "the listing loops (a next_page_token came again)" "$LOG"
	[ -e "$MNT/ai_gateway/OPENAI_API_KEY" ]
	grep -q "this poll found no complete listing" "$LOG"
	rp_admin POST faults/clear >/dev/null
	aigw_key LATER_KEY
	wait_for test -e "$MNT/ai_gateway/LATER_KEY"
	[ -e "$MNT/ai_gateway/OPENAI_API_KEY" ]
}

@test "-o cluster=ID: the data plane URL comes from the control plane (dedicated or serverless); a cluster not ready or unknown is refused with one line" {
	aigw_key OPENAI_API_KEY
	rp_admin PUT clusters/cx1serverless '{"serverless":true}' >/dev/null
	rp_admin PUT clusters/cx2creating '{"ready":false}' >/dev/null
	rp_admin PUT clusters/cx0dedicated '{}' >/dev/null
	opts="credentials=$RP_CREDS,cacert=$RP_DIR/ca.pem,token_url=$RP_URL/oauth/token,controlplane=$RP_URL,poll=0"
	fails "cluster cx2creating has no Data Plane API yet" "$SFS" redpanda: "$MNT" -f -o "$opts,cluster=cx2creating"
	fails "knows no cluster nosuch" "$SFS" redpanda: "$MNT" -f -o "$opts,cluster=nosuch"
	fails "a Redpanda Cloud cluster ID is letters" "$SFS" redpanda: "$MNT" -f -o "$opts,cluster=../x"
	fails "not both" "$SFS" "redpanda:$RP_URL" "$MNT" -f -o "$opts,cluster=cx0dedicated"
	fails "which data plane?" "$SFS" redpanda: "$MNT" -f -o "credentials=$RP_CREDS"
	! mounted || false
	rp_admin POST counts/reset >/dev/null
	STORE=redpanda: start_daemon -o "$opts,cluster=cx1serverless"
	[ "$(ls "$MNT/ai_gateway")" = OPENAI_API_KEY ]
	printf 'sk-new' >"$MNT/ai_gateway/NEW_KEY"
	[ "$(rp_value NEW_KEY)" = sk-new ]
	grep -q "cluster cx1serverless: Data Plane API $RP_URL" "$LOG"
	! grep -q "not found" "$LOG" || false # the dedicated endpoint's 404 is no error
	# one lookup (dedicated first, then serverless), one token for both planes
	[ "$(rp_count by_call:GET\ /v1/clusters/{id})" = 1 ]
	[ "$(rp_count by_call:GET\ /v1/serverless/clusters/{id})" = 1 ]
	[ "$(rp_count token)" = 1 ]
	stop_daemon
	STORE=redpanda: start_daemon -o "$opts,cluster=cx0dedicated"
	[ "$(ls "$MNT/ai_gateway")" = "$(printf 'NEW_KEY\nOPENAI_API_KEY')" ]
}

@test "a credentials file group or others can read is refused" {
	chmod 0644 "$RP_CREDS"
	run "$SFS" "redpanda:$RP_URL" "$MNT" -f -o "credentials=$RP_CREDS,cacert=$RP_DIR/ca.pem"
	[ "$status" -ne 0 ]
	[[ "$output" == *"credentials file $RP_CREDS"* ]]
	[[ "$output" == *"chmod"* ]]
	[ "$(rp_count token)" = 0 ]
	! mounted || false
	run "$SFS" "redpanda:$RP_URL" "$MNT" -f
	[ "$status" -ne 0 ]
	[[ "$output" == *"-o credentials=FILE"* ]]
}

@test "a CA that is not the server's is refused (TLS is verified)" {
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=other" \
		-keyout "$T/other.key" -out "$T/other.pem" >/dev/null 2>&1
	run "$SFS" "redpanda:$RP_URL" "$MNT" -f -o "credentials=$RP_CREDS,cacert=$T/other.pem,token_url=$RP_URL/oauth/token"
	[ "$status" -ne 0 ]
	! mounted || false
	[ "$(rp_count token)" = 0 ]
}

@test "nothing secret reaches the daemon log, even with -d" {
	aigw_key OPENAI_API_KEY
	rp_mount -d -o poll=1
	printf 'sk-VALUE-one-1234' >"$MNT/ai_gateway/NEW_KEY"
	printf 'sk-VALUE-two-5678' >"$MNT/ai_gateway/.NEW_KEY.tmp"
	mv "$MNT/ai_gateway/.NEW_KEY.tmp" "$MNT/ai_gateway/NEW_KEY"
	rp_admin POST tokens '{"expire_all":true}' >/dev/null
	setfattr -n user.tag.a -v b "$MNT/ai_gateway/NEW_KEY"
	cat "$MNT/ai_gateway/NEW_KEY" 2>/dev/null || true
	wait_for pages_at_least 3
	stop_daemon
	[ "$(rp_value NEW_KEY)" = sk-VALUE-two-5678 ]
	! grep -q "sk-VALUE" "$LOG" || false
	! grep -q "$(printf sk-VALUE-two-5678 | base64)" "$LOG" || false
	! grep -q "$(printf sk-VALUE-one-1234 | base64)" "$LOG" || false
	! grep -qF "$RP_CLIENT_SECRET" "$LOG" || false
	for tok in $(rp_admin GET tokens | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)["tokens"]))'); do
		! grep -qF -e "$tok" "$LOG" || false
	done
	[ "$(rp_admin GET tokens | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tokens"]))')" = 2 ]
}
