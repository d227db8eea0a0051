#!/usr/bin/env bats
# The walk-through a new user does first (issue 2's "done when").
load helper

setup() { mount_store; }
teardown() { unmount_store; }

@test "create, read, label, overwrite, remount, no plaintext in the store" {
	F=$MNT/ai_gateway/OPENAI_API_KEY
	printf 'sk-live-1234567890' > "$F"
	[ "$(cat "$F")" = "sk-live-1234567890" ]
	setfattr -n user.tag.managed-by -v aigateway "$F"
	getfattr -d "$F" | grep -qx 'user.tag.managed-by="aigateway"'
	printf 'sk-live-rotated-0987' > "$F"
	[ "$(cat "$F")" = "sk-live-rotated-0987" ]
	remount
	[ "$(cat "$F")" = "sk-live-rotated-0987" ]
	getfattr -d "$F" | grep -qx 'user.tag.managed-by="aigateway"'
	! grep -rqa 'sk-live' "$STORE"
}
