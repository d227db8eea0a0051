#!/usr/bin/env bats
# Names (secret IDs and scratch files), rename in all its forms, hard links
# and version history, driven through mv, ln, cp, getfattr and renameat2.
load helper

setup() {
	mount_store
	G=$MNT/ai_gateway
	M=$MNT/mcp_server
	A=$MNT/ai_agent
}
teardown() { unmount_store; }

# mk SCOPE_DIR ID VALUE [LABEL_VALUE]: a stored secret, optionally labelled
# managed-by=LABEL_VALUE.
mk() {
	printf '%s' "$3" >"$1/$2"
	[ -z "${4:-}" ] || setfattr -n user.tag.managed-by -v "$4" "$1/$2"
}

@test "tools' temporary names are scratch files: listed, no ID, not stored, dropped at unmount" {
	mk "$G" REAL_ID v1
	for n in .hidden sedAb12Cd 4913 .REAL_ID.swp 'REAL_ID~' tmp.Ab12Cd34Ef '#REAL_ID#'; do
		printf 'scratch-%s' "$n" >"$G/$n"
		expect_value "$G/$n" "scratch-$n"
		run getfattr -n secretsfs.id "$G/$n"
		[ "$status" -ne 0 ]
		[[ "$output" == *"secretsfs.id: No such attribute"* ]]
		log_has "ai_gateway/$(printf '%s' "$n" | sed 's/[.]/\\./g'): scratch file: .*never stored"
	done
	# an empty scratch file is listed too, and holds nothing to drop
	: >"$G/.empty"
	[ "$(ls -A "$G" | LC_ALL=C sort | tr '\n' ' ')" = "#REAL_ID# .REAL_ID.swp .empty .hidden 4913 REAL_ID REAL_ID~ sedAb12Cd tmp.Ab12Cd34Ef " ]
	[ "$(getfattr --only-values -n secretsfs.id "$G/REAL_ID")" = REAL_ID ]
	# a scratch file lives in its own directory only
	[ ! -e "$M/.hidden" ]
	[ "$(stat -c %h "$G/.hidden")" = 1 ]
	# getfattr -d on a scratch file shows no label and no fact
	[ -z "$(getfattr -d -m - "$G/.hidden" 2>/dev/null | grep -v '^#' | grep -v '^$' | grep -v 'system.posix' || true)" ]

	remount
	[ "$(ls -A "$G")" = REAL_ID ]
	expect_value "$G/REAL_ID" v1
	for n in .hidden sedAb12Cd 4913 tmp.Ab12Cd34Ef; do
		log_has "scratch file ai_gateway/$(printf '%s' "$n" | sed 's/[.]/\\./g') dropped at unmount \([0-9]+ bytes"
	done
	! grep -q 'ai_gateway/.empty dropped at unmount' "$LOG"
}

@test "mv scratch onto a secret: rotation keeps ID, labels, scopes, inode; old fd reads old value" {
	mk "$G" ROT_KEY old-value-0123456789 aigateway
	ln "$G/ROT_KEY" "$M/ROT_KEY"
	v0=$(sfs_version "$G/ROT_KEY")
	[ "$v0" = 1 ]
	ino_g=$(stat -c %i "$G/ROT_KEY")
	ino_m=$(stat -c %i "$M/ROT_KEY")
	[ "$ino_g" = "$ino_m" ]

	# one fd opened and partly read before the rotation, one only opened
	exec 4<"$G/ROT_KEY" 5<"$G/ROT_KEY"
	head4=$(dd bs=4 count=1 status=none <&4)
	printf 'new' >"$G/.ROT_KEY.new"
	mv "$G/.ROT_KEY.new" "$G/ROT_KEY"
	rest4=$(cat <&4)
	all5=$(cat <&5)
	exec 4<&- 5<&-
	[ "$head4" = old- ]
	[ "$rest4" = value-0123456789 ]
	[ "$all5" = old-value-0123456789 ]

	expect_value "$G/ROT_KEY" new
	expect_value "$M/ROT_KEY" new
	[ "$(sfs_version "$G/ROT_KEY")" = $((v0 + 1)) ]
	[ "$(sfs_version "$M/ROT_KEY")" = $((v0 + 1)) ]
	[ "$(getfattr --only-values -n user.tag.managed-by "$G/ROT_KEY")" = aigateway ]
	[ "$(getfattr --only-values -n user.tag.managed-by "$M/ROT_KEY")" = aigateway ]
	[ "$(stat -c %h "$G/ROT_KEY")" = 2 ]
	[ "$(stat -c %h "$M/ROT_KEY")" = 2 ]
	[ "$(stat -c %s "$G/ROT_KEY")" = 3 ]
	[ ! -e "$G/.ROT_KEY.new" ]
	[ "$(ls -A "$G")" = ROT_KEY ]
	sleep 1.2 # past the entry/attr timeout: the kernel asks the daemon again
	[ "$(stat -c %i "$M/ROT_KEY")" = "$ino_m" ]
	[ "$(stat -c %i "$G/ROT_KEY")" = "$ino_g" ]
	expect_value "$MNT/.versions/ROT_KEY/$v0" old-value-0123456789
	expect_value "$MNT/.versions/ROT_KEY/$((v0 + 1))" new
	log_has "ROT_KEY: version $((v0 + 1)) committed by rename \(3 bytes\)"

	remount
	expect_value "$M/ROT_KEY" new
	[ "$(sfs_version "$G/ROT_KEY")" = $((v0 + 1)) ]
	[ "$(getfattr --only-values -n user.tag.managed-by "$M/ROT_KEY")" = aigateway ]
	[ "$(stat -c %h "$G/ROT_KEY")" = 2 ]
}

@test "mv scratch onto a free ID creates the secret in that scope, with the scratch file's labels" {
	printf 'fresh-value' >"$G/.NEW_KEY.tmp"
	setfattr -n user.tag.managed-by -v aigateway "$G/.NEW_KEY.tmp"
	setfattr -n user.tag.team -v gw "$G/.NEW_KEY.tmp"
	mv "$G/.NEW_KEY.tmp" "$G/NEW_KEY"
	expect_value "$G/NEW_KEY" fresh-value
	[ "$(sfs_version "$G/NEW_KEY")" = 1 ]
	[ "$(getfattr --only-values -n secretsfs.id "$G/NEW_KEY")" = NEW_KEY ]
	[ "$(getfattr --only-values -n user.tag.managed-by "$G/NEW_KEY")" = aigateway ]
	[ "$(getfattr --only-values -n user.tag.team "$G/NEW_KEY")" = gw ]
	[ "$(stat -c %h "$G/NEW_KEY")" = 1 ]
	[ "$(ls -A "$G")" = NEW_KEY ]
	[ ! -e "$M/NEW_KEY" ]
	log_has "NEW_KEY: version 1 committed by rename \(11 bytes\)"
	remount
	expect_value "$G/NEW_KEY" fresh-value
	[ "$(getfattr --only-values -n user.tag.team "$G/NEW_KEY")" = gw ]
	[ "$(ls -A "$G")" = NEW_KEY ]
	! grep -q 'dropped at unmount' "$LOG"
}

@test "an empty scratch file cannot become a secret: EINVAL, nothing changes" {
	mk "$G" HAS_VALUE keep-me aigateway
	v0=$(sfs_version "$G/HAS_VALUE")
	: >"$G/.empty"
	run rename2 "$G/.empty" "$G/FREE_ID" 0
	[ "$status" -eq 1 ]
	[ "$output" = "EINVAL Invalid argument" ]
	run rename2 "$G/.empty" "$G/HAS_VALUE" 0
	[ "$output" = "EINVAL Invalid argument" ]
	# mv gets the same EINVAL (coreutils words EINVAL from rename as below)
	run mv "$G/.empty" "$G/FREE_ID"
	[ "$status" -ne 0 ]
	[[ "$output" == *"cannot move"* ]]
	[ ! -e "$G/FREE_ID" ]
	[ -e "$G/.empty" ]
	[ "$(stat -c %s "$G/.empty")" = 0 ]
	expect_value "$G/HAS_VALUE" keep-me
	[ "$(sfs_version "$G/HAS_VALUE")" = "$v0" ]
	[ "$(ls -A "$G" | tr '\n' ' ')" = ".empty HAS_VALUE " ]
	log_has "rename of ai_gateway/\.empty onto FREE_ID refused: it is empty"
	log_has "rename of ai_gateway/\.empty onto HAS_VALUE refused: it is empty"
}

@test "mv -n and RENAME_NOREPLACE onto an existing secret leave it unchanged" {
	mk "$G" KEEP_ME original aigateway
	v0=$(sfs_version "$G/KEEP_ME")
	printf 'intruder' >"$G/.KEEP_ME.new"
	run mv -n "$G/.KEEP_ME.new" "$G/KEEP_ME"
	expect_value "$G/KEEP_ME" original
	[ "$(sfs_version "$G/KEEP_ME")" = "$v0" ]
	expect_value "$G/.KEEP_ME.new" intruder
	run rename2 "$G/.KEEP_ME.new" "$G/KEEP_ME" 1
	[ "$status" -eq 1 ]
	[ "$output" = "EEXIST File exists" ]
	expect_value "$G/KEEP_ME" original
	[ "$(sfs_version "$G/KEEP_ME")" = "$v0" ]
	[ ! -e "$MNT/.versions/KEEP_ME/$((v0 + 1))" ]
	# NOREPLACE onto a free ID works
	run rename2 "$G/.KEEP_ME.new" "$G/OTHER_ONE" 1
	[ "$output" = ok ]
	expect_value "$G/OTHER_ONE" intruder
}

@test "mv ai_gateway/X mcp_server/X moves the secret between scopes" {
	mk "$G" MOVER mover-value aigateway
	v0=$(sfs_version "$G/MOVER")
	ino=$(stat -c %i "$G/MOVER")
	mv "$G/MOVER" "$M/MOVER"
	[ ! -e "$G/MOVER" ]
	expect_value "$M/MOVER" mover-value
	[ "$(getfattr --only-values -n user.tag.managed-by "$M/MOVER")" = aigateway ]
	[ "$(stat -c %h "$M/MOVER")" = 1 ]
	[ "$(stat -c %i "$M/MOVER")" = "$ino" ]
	[ "$(sfs_version "$M/MOVER")" = "$v0" ]
	[ -z "$(ls -A "$G")" ]
	log_has "MOVER: moved from ai_gateway to mcp_server"
	remount
	[ ! -e "$G/MOVER" ]
	expect_value "$M/MOVER" mover-value
	[ "$(getfattr --only-values -n user.tag.managed-by "$M/MOVER")" = aigateway ]
}

@test "mv secret A onto existing secret B: B gets A's value as a new version, keeps its labels and scopes; A is deleted" {
	mk "$G" SRC_A value-of-a labels-of-a
	ln "$G/SRC_A" "$A/SRC_A"
	mk "$G" DST_B value-of-b labels-of-b
	ln "$G/DST_B" "$M/DST_B"
	vb=$(sfs_version "$G/DST_B")
	ino_b=$(stat -c %i "$G/DST_B")
	run mv "$G/SRC_A" "$G/DST_B"
	echo "mv: status $status output: $output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	expect_value "$G/DST_B" value-of-a
	expect_value "$M/DST_B" value-of-a
	[ "$(sfs_version "$G/DST_B")" = $((vb + 1)) ]
	[ "$(getfattr --only-values -n user.tag.managed-by "$G/DST_B")" = labels-of-b ]
	[ "$(stat -c %h "$G/DST_B")" = 2 ]
	[ "$(stat -c %i "$M/DST_B")" = "$ino_b" ]
	expect_value "$MNT/.versions/DST_B/$vb" value-of-b
	[ ! -e "$G/SRC_A" ]
	[ ! -e "$A/SRC_A" ]
	[ "$(ls -A "$G")" = DST_B ]
	[ -z "$(ls -A "$A")" ]
	log_has "SRC_A: deleted after its value moved to DST_B"
	remount
	[ ! -e "$A/SRC_A" ]
	expect_value "$M/DST_B" value-of-a
}

@test "mv secret A onto a free ID B: B made with A's value, labels and scopes (source dir's scope replaced); A deleted" {
	mk "$G" OLD_NAME the-value aigateway
	ln "$G/OLD_NAME" "$M/OLD_NAME"
	run mv "$G/OLD_NAME" "$A/NEW_NAME"
	echo "mv: status $status output: $output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	expect_value "$A/NEW_NAME" the-value
	expect_value "$M/NEW_NAME" the-value
	[ ! -e "$G/NEW_NAME" ]
	[ "$(stat -c %h "$A/NEW_NAME")" = 2 ]
	[ "$(getfattr --only-values -n user.tag.managed-by "$A/NEW_NAME")" = aigateway ]
	[ ! -e "$G/OLD_NAME" ]
	[ ! -e "$M/OLD_NAME" ]
	[ "$(ls -A "$M")" = NEW_NAME ]
	log_has "OLD_NAME: deleted after its value moved to NEW_NAME"
	remount
	[ "$(ls -A "$M")" = NEW_NAME ]
	[ -z "$(ls -A "$G")" ]
	expect_value "$A/NEW_NAME" the-value
}

@test "mv secret to a non-ID name is refused: Operation not permitted, secret unchanged" {
	mk "$G" PRECIOUS keep aigateway
	v0=$(sfs_version "$G/PRECIOUS")
	run mv "$G/PRECIOUS" "$G/a.bak"
	[ "$status" -eq 1 ]
	[ "$output" = "mv: cannot move '$G/PRECIOUS' to '$G/a.bak': Operation not permitted" ]
	expect_value "$G/PRECIOUS" keep
	[ "$(sfs_version "$G/PRECIOUS")" = "$v0" ]
	[ "$(ls -A "$G")" = PRECIOUS ]
	log_has "rename of ai_gateway/PRECIOUS to a\.bak refused: a\.bak is not a secret ID"
}

@test "RENAME_EXCHANGE swaps two secrets' values; RENAME_WHITEOUT is EINVAL" {
	mk "$G" SWAP_A alpha label-a
	mk "$G" SWAP_B beta-longer label-b
	ln "$G/SWAP_B" "$M/SWAP_B"
	run rename2 "$G/SWAP_A" "$G/SWAP_B" 2
	echo "exchange: $output"
	[ "$output" = ok ]
	[ "$status" -eq 0 ]
	expect_value "$G/SWAP_A" beta-longer
	expect_value "$G/SWAP_B" alpha
	expect_value "$M/SWAP_B" alpha
	[ "$(getfattr --only-values -n user.tag.managed-by "$G/SWAP_A")" = label-a ]
	[ "$(getfattr --only-values -n user.tag.managed-by "$G/SWAP_B")" = label-b ]
	[ "$(stat -c %h "$G/SWAP_B")" = 2 ]
	[ "$(stat -c %h "$G/SWAP_A")" = 1 ]
	log_has "SWAP_A and SWAP_B: values exchanged"

	run rename2 "$G/SWAP_A" "$G/SWAP_B" 4
	[ "$status" -eq 1 ]
	[ "$output" = "EINVAL Invalid argument" ]
	expect_value "$G/SWAP_A" beta-longer
	expect_value "$G/SWAP_B" alpha
	log_has "rename SWAP_A: flags 0x4 not supported"
	# a scratch file cannot take part in an exchange
	printf x >"$G/.scratch"
	run rename2 "$G/.scratch" "$G/SWAP_A" 2
	[ "$output" = "EINVAL Invalid argument" ]
	expect_value "$G/SWAP_A" beta-longer
}

@test "ln adds a scope (same inode, nlink 2); ln to another name is refused" {
	mk "$G" LINKED lv aigateway
	ino=$(stat -c %i "$G/LINKED")
	ln "$G/LINKED" "$M/LINKED"
	[ "$(stat -c %i "$M/LINKED")" = "$ino" ]
	[ "$(stat -c %h "$G/LINKED")" = 2 ]
	[ "$(stat -c %h "$M/LINKED")" = 2 ]
	expect_value "$M/LINKED" lv
	log_has "LINKED: added to mcp_server"
	run ln "$G/LINKED" "$M/OTHER"
	[ "$status" -eq 1 ]
	[ "$output" = "ln: failed to create hard link '$M/OTHER' => '$G/LINKED': Operation not permitted" ]
	[ ! -e "$M/OTHER" ]
	log_has "link OTHER refused"
	remount
	[ "$(stat -c %h "$M/LINKED")" = 2 ]
	[ "$(stat -c %i "$M/LINKED")" = "$(stat -c %i "$G/LINKED")" ]
	# rm in one scope removes only that scope
	rm "$M/LINKED"
	[ ! -e "$M/LINKED" ]
	[ "$(stat -c %h "$G/LINKED")" = 1 ]
	log_has "LINKED: removed from mcp_server"
}

@test "versions: secretsfs.version, .versions/X lists kept versions, rollback with cp" {
	printf 'one' >"$G/VERSIONED"
	[ "$(sfs_version "$G/VERSIONED")" = 1 ]
	printf 'two-2' >"$G/VERSIONED"
	[ "$(sfs_version "$G/VERSIONED")" = 2 ]
	printf 'three-333' >"$G/VERSIONED"
	[ "$(sfs_version "$G/VERSIONED")" = 3 ]
	[ "$(ls "$MNT/.versions")" = VERSIONED ]
	[ "$(ls "$MNT/.versions/VERSIONED" | tr '\n' ' ')" = "1 2 3 " ]
	expect_value "$MNT/.versions/VERSIONED/1" one
	expect_value "$MNT/.versions/VERSIONED/2" two-2
	expect_value "$MNT/.versions/VERSIONED/3" three-333
	run sh -c "printf x > '$MNT/.versions/VERSIONED/1'"
	[ "$status" -ne 0 ]
	expect_value "$MNT/.versions/VERSIONED/1" one

	cp "$MNT/.versions/VERSIONED/1" "$G/VERSIONED"
	expect_value "$G/VERSIONED" one
	[ "$(sfs_version "$G/VERSIONED")" = 4 ]
	[ "$(ls "$MNT/.versions/VERSIONED" | tr '\n' ' ')" = "1 2 3 4 " ]
	expect_value "$MNT/.versions/VERSIONED/3" three-333
	remount
	expect_value "$G/VERSIONED" one
	[ "$(sfs_version "$G/VERSIONED")" = 4 ]
	expect_value "$MNT/.versions/VERSIONED/2" two-2
}

@test "version files report the value's length (st_size): cmp -s and rsync of a version work" {
	printf 'first-value' >"$G/SIZED"
	printf 'v2' >"$G/SIZED"
	printf 'first-value' >"$T/copy"
	[ "$(stat -c %s "$G/SIZED")" = 2 ]
	expect_value "$MNT/.versions/SIZED/1" first-value
	[ "$(stat -c %s "$MNT/.versions/SIZED/1")" = 11 ]
	[ "$(stat -c %s "$MNT/.versions/SIZED/2")" = 2 ]
	cmp -s "$T/copy" "$MNT/.versions/SIZED/1"
	mkdir "$T/restore"
	rsync "$MNT/.versions/SIZED/1" "$T/restore/"
	[ "$(cat "$T/restore/1")" = first-value ]
}
