#!/usr/bin/env bats
# Everyday tools on a secret that has a label and two scopes: each must
# leave the exact new value as one new version, keep the labels, the other
# scope and the inode, leave a sane mode, and keep the old value in
# .versions.
load helper

OLD='old-value-longer-than-the-new-one'

setup() {
	mount_store
	G=$MNT/ai_gateway
	M=$MNT/mcp_server
	X=$G/TOOL_KEY
	printf '%s' "$OLD" >"$X"
	setfattr -n user.tag.managed-by -v aigateway "$X"
	ln "$X" "$M/TOOL_KEY"
	V0=$(sfs_version "$X")
	INO=$(stat -c %i "$X")
	[ "$(stat -c %a "$X")" = 600 ]
	SRC=$T/src
	printf 'new-value' >"$SRC"
}
teardown() { unmount_store; }

# in_scope CMD...: runs CMD in ai_gateway (a subshell: the test's own shell
# never sits in the mount, which would keep it busy at unmount).
in_scope() {
	(cd "$G" && "$@")
}

sane_mode() {
	local m
	m=$(stat -c %a "$1")
	[ $((8#$m & 8#002)) -eq 0 ] && [ $((8#$m & 8#400)) -ne 0 ] ||
		{ echo "$1: mode $m is not sane" >&2; return 1; }
}

# check_after VALUE MODE: the state every tool must leave (MODE "sane":
# not world-writable and readable by its owner).
check_after() {
	expect_value "$X" "$1"
	expect_value "$M/TOOL_KEY" "$1"
	[ "$(stat -c %i "$X")" = "$INO" ]
	[ "$(sfs_version "$X")" = $((V0 + 1)) ]
	[ "$(sfs_version "$M/TOOL_KEY")" = $((V0 + 1)) ]
	[ "$(getfattr --absolute-names --only-values -n user.tag.managed-by "$X")" = aigateway ]
	[ "$(getfattr --absolute-names --only-values -n user.tag.managed-by "$M/TOOL_KEY")" = aigateway ]
	[ "$(stat -c %h "$X")" = 2 ]
	[ "$(stat -c %h "$M/TOOL_KEY")" = 2 ]
	if [ "$2" = sane ]; then sane_mode "$X"; else [ "$(stat -c %a "$X")" = "$2" ]; fi
	[ "$(stat -c %s "$X")" = "$(printf '%s' "$1" | wc -c)" ]
	# no temporary left behind, in either scope
	[ "$(ls -A "$G" | LC_ALL=C sort | tr '\n' ' ')" = "${EXPECT_LS:-TOOL_KEY} " ]
	[ "$(ls -A "$M")" = TOOL_KEY ]
	expect_value "$MNT/.versions/TOOL_KEY/$V0" "$OLD"
	expect_value "$MNT/.versions/TOOL_KEY/$((V0 + 1))" "$1"
	log_has "TOOL_KEY: version $((V0 + 1)) committed"
	! grep -q "TOOL_KEY: version $((V0 + 2)) committed" "$LOG"
	# past the attribute timeout the kernel asks again: same inode, both scopes
	sleep 1.1
	[ "$(stat -c %i "$X")" = "$INO" ]
	[ "$(stat -c %i "$M/TOOL_KEY")" = "$INO" ]
	expect_value "$X" "$1"
}

@test "sed -i" {
	run in_scope sed -i 's/old/new/' TOOL_KEY
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	check_after "new-value-longer-than-the-new-one" 600
}

@test "vim -Es (writes in place)" {
	run in_scope vim -Es -u NONE -c '%s/old/new/' -c wq TOOL_KEY
	[ "$status" -eq 0 ]
	# vim ends the last line with a newline, as on any filesystem
	check_after $'new-value-longer-than-the-new-one\n' 600
}

@test "cp src X" {
	in_scope cp "$SRC" TOOL_KEY
	check_after new-value 600
}

@test "cp --preserve=all src X" {
	chmod 0640 "$SRC"
	touch -d '2020-01-02 03:04:05' "$SRC"
	xattr_src=0
	setfattr -n user.tag.team -v payments "$SRC" 2>/dev/null && xattr_src=1
	run in_scope cp --preserve=all "$SRC" TOOL_KEY
	echo "cp: $output"
	[ "$status" -eq 0 ]
	check_after new-value 640
	if [ $xattr_src = 1 ]; then
		[ "$(getfattr --absolute-names --only-values -n user.tag.team "$X")" = payments ]
	fi
}

@test "install -m 0400 src X (unlinks X, then creates it)" {
	in_scope install -m 0400 "$SRC" TOOL_KEY
	check_after new-value 400
}

@test "printf v > X" {
	printf 'new-value' >"$X"
	check_after new-value 600
}

@test "printf v >> X" {
	printf -- '-more' >>"$X"
	check_after "$OLD-more" 600
}

@test "mv .X.new X (rotation)" {
	printf 'new-value' >"$G/.TOOL_KEY.new"
	in_scope mv .TOOL_KEY.new TOOL_KEY
	check_after new-value sane
}

@test "tee X" {
	run in_scope sh -c 'printf new-value | tee TOOL_KEY'
	[ "$status" -eq 0 ]
	[ "$output" = new-value ]
	check_after new-value 600
}

@test "dd of=X (truncates)" {
	printf 'new-value' | in_scope dd of=TOOL_KEY status=none
	check_after new-value 600
}

@test "rsync -r of a directory into a scope: existing secrets rotated, new names created, values exact" {
	mkdir "$T/rs"
	printf 'rsynced-value' >"$T/rs/TOOL_KEY"
	printf 'brand-new-1' >"$T/rs/NEW_ONE"
	head -c 3000 /dev/urandom | base64 -w0 >"$T/rs/NEW_TWO"
	run rsync -r "$T/rs/" "$G/"
	echo "rsync: $output"
	[ "$status" -eq 0 ]
	EXPECT_LS="NEW_ONE NEW_TWO TOOL_KEY"
	check_after rsynced-value sane
	expect_value "$G/NEW_ONE" brand-new-1
	expect_value "$G/NEW_TWO" "$(cat "$T/rs/NEW_TWO")"
	[ "$(sfs_version "$G/NEW_ONE")" = 1 ]
	[ "$(sfs_version "$G/NEW_TWO")" = 1 ]
	sane_mode "$G/NEW_ONE"
	[ "$(stat -c %h "$G/NEW_ONE")" = 1 ]
	[ ! -e "$M/NEW_ONE" ]
	remount
	[ "$(ls -A "$G" | LC_ALL=C sort | tr '\n' ' ')" = "NEW_ONE NEW_TWO TOOL_KEY " ]
	expect_value "$G/NEW_TWO" "$(cat "$T/rs/NEW_TWO")"
	expect_value "$M/TOOL_KEY" rsynced-value
	[ "$(getfattr --absolute-names --only-values -n user.tag.managed-by "$M/TOOL_KEY")" = aigateway ]
	! grep -q 'dropped at unmount' "$LOG"
}

@test "cp a file to a new name in a scope creates the secret; rollback with cp from .versions" {
	cp "$SRC" "$G/COPIED_KEY"
	expect_value "$G/COPIED_KEY" new-value
	[ "$(sfs_version "$G/COPIED_KEY")" = 1 ]
	sane_mode "$G/COPIED_KEY"
	cp "$SRC" "$X"
	cp "$MNT/.versions/TOOL_KEY/$V0" "$X"
	expect_value "$X" "$OLD"
	expect_value "$M/TOOL_KEY" "$OLD"
	[ "$(sfs_version "$X")" = $((V0 + 2)) ]
	[ "$(getfattr --absolute-names --only-values -n user.tag.managed-by "$X")" = aigateway ]
}
