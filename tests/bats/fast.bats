#!/usr/bin/env bats
# -o fast: zero-message open, page cache, an inode per version.
load helper

setup() { mount_store -o fast; }
teardown() { unmount_store; }

rotate() {  # rotate SCOPE ID VALUE
	printf '%s' "$3" > "$MNT/$1/.$2.new"
	mv "$MNT/$1/.$2.new" "$MNT/$1/$2"
}

@test "fast: rotation by mv; an fd opened before keeps the old bytes, new opens see the new" {
	F=$MNT/ai_gateway/OPENAI_API_KEY
	rotate ai_gateway OPENAI_API_KEY first-value-1
	[ "$(cat "$F")" = first-value-1 ]
	ino1=$(stat -c %i "$F")
	exec 7<"$F"
	rotate ai_gateway OPENAI_API_KEY second-2
	[ "$(cat "$F")" = second-2 ]
	[ "$(cat <&7)" = first-value-1 ]
	exec 7<&-
	# each version is an inode of its own, with its own size
	[ "$(stat -c %i "$F")" != "$ino1" ]
	[ "$(stat -c %s "$F")" = 8 ]
	[ "$(getfattr --only-values -n secretsfs.version "$F")" = 2 ]
	for i in $(seq 1 200); do [ "$(cat "$F")" = second-2 ]; done
}

@test "fast: labels, links and sed -i keep working; in-place writes are refused with a reason" {
	F=$MNT/ai_gateway/K
	rotate ai_gateway K old-value
	setfattr -n user.tag.managed-by -v aigateway "$F"
	ln "$F" "$MNT/mcp_server/K"
	[ "$(stat -c %h "$MNT/mcp_server/K")" = 2 ]
	[ "$(stat -c %i "$MNT/mcp_server/K")" = "$(stat -c %i "$F")" ]
	sed -i 's/old/new/' "$F"
	[ "$(cat "$F")" = new-value ]
	[ "$(cat "$MNT/mcp_server/K")" = new-value ]
	getfattr -d "$F" | grep -qx 'user.tag.managed-by="aigateway"'
	run bash -c "printf x > '$F'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	log_has "with -o fast values change only by rename"
	run bash -c "printf x > '$MNT/ai_gateway/NEWKEY'"
	[[ "$output" == *"Operation not permitted"* ]]
	[ ! -e "$MNT/ai_gateway/NEWKEY" ]
	[ "$(cat "$F")" = new-value ]
}

@test "fast: unit= and cgroup= rules are refused at mount" {
	mkdir "$T/mnt2"
	run "$SFS" "$STORE" "$T/mnt2" -f -o fast,unit=ai_gateway:x.service
	[ "$status" -eq 1 ]
	[[ "$output" == *"-o fast cannot enforce unit= or cgroup= rules"* ]]
	! grep -q " $T/mnt2 " /proc/mounts || false
}
