#!/usr/bin/env bats
# The core contract (DESIGN.md) checked against a real mount with real tools:
# the tree, secrets as files, hard links as scopes, writes and versions,
# labels as xattrs, lazy decryption, limits, scratch files, read-only mounts,
# command-line errors and clean shutdown.
load helper

# Each test mounts what it needs (the command-line tests mount nothing).
setup() { :; }
teardown() { unmount_store; }

ver() { getfattr --only-values -n secretsfs.version "$1"; }

no_mount_left() {
	! grep -q " $MNT " /proc/mounts || { echo "a mount was left on $MNT" >&2; return 1; }
}

# ---------------------------------------------------------------- the tree

@test "tree: five scope dirs, .versions and .deleted; mkdir, rmdir and symlink are refused with EPERM and logged" {
	mount_store
	eq "$(ls -a "$MNT" | tr '\n' ' ')" ". .. .deleted .versions ai_agent ai_gateway mcp_server redpanda_cluster redpanda_connect "
	eq "$(ls "$MNT" | tr '\n' ' ')" "ai_agent ai_gateway mcp_server redpanda_cluster redpanda_connect "
	for d in ai_gateway mcp_server ai_agent redpanda_cluster redpanda_connect .versions; do
		[ -d "$MNT/$d" ]
	done
	fails "Operation not permitted" mkdir "$MNT/ai_gateway/sub"
	log_has 'mkdir sub refused'
	fails "Operation not permitted" mkdir "$MNT/new_scope"
	log_has 'mkdir new_scope refused'
	fails "Operation not permitted" rmdir "$MNT/mcp_server"
	log_has 'rmdir mcp_server refused'
	[ -d "$MNT/mcp_server" ]
	fails "Operation not permitted" ln -s /etc/passwd "$MNT/ai_gateway/LINK"
	log_has 'symlink LINK refused'
	[ ! -e "$MNT/ai_gateway/LINK" ]
	[ ! -L "$MNT/ai_gateway/LINK" ]
}

# ---------------------------------------------------------------- secrets as files

@test "create: content is the value byte for byte, st_size is its length, nlink 1, 255-char IDs" {
	mount_store
	F=$MNT/ai_gateway/OPENAI_API_KEY
	printf 'sk-test-abc' > "$F"
	eq "$(cat "$F")" "sk-test-abc"
	eq "$(stat -c %s "$F")" 11
	eq "$(wc -c < "$F")" 11
	eq "$(stat -c %h "$F")" 1
	eq "$(stat -c %F "$F")" "regular file"
	eq "$(ls "$MNT/ai_gateway")" "OPENAI_API_KEY"
	eq "$(getfattr --only-values -n secretsfs.id "$F")" OPENAI_API_KEY
	log_has 'OPENAI_API_KEY: version 1 committed \(11 bytes\)'
	# no newline is added, a trailing one is kept
	printf 'line\n' > "$MNT/ai_gateway/NL"
	eq "$(od -An -c "$MNT/ai_gateway/NL" | tr -s ' ')" " l i n e \n"
	eq "$(stat -c %s "$MNT/ai_gateway/NL")" 5
	# binary bytes
	printf '\x00\x01\xff\x0a\x00' > "$T/bin"
	cp "$T/bin" "$MNT/ai_gateway/BIN_1"
	cmp "$T/bin" "$MNT/ai_gateway/BIN_1"
	printf '\x00\x01\xff' > "$MNT/ai_gateway/BIN_2"
	printf '\x00\x01\xff' | cmp - "$MNT/ai_gateway/BIN_2"
	eq "$(stat -c %s "$MNT/ai_gateway/BIN_2")" 3
	# longest ID
	long=A$(printf 'B%.0s' $(seq 254))
	[ ${#long} -eq 255 ]
	printf 'x' > "$MNT/ai_gateway/$long"
	eq "$(getfattr --only-values -n secretsfs.id "$MNT/ai_gateway/$long")" "$long"
	remount
	cmp "$T/bin" "$MNT/ai_gateway/BIN_1"
	eq "$(cat "$MNT/ai_gateway/$long")" x
}

@test "stat: mtime changes with a new version, inode stable across stats and links" {
	mount_store
	F=$MNT/ai_gateway/KEY
	printf one > "$F"
	m1=$(stat -c %.9Y "$F")
	i1=$(stat -c %i "$F")
	eq "$(stat -c %i "$F")" "$i1"
	sleep 0.01
	printf two > "$F"
	m2=$(stat -c %.9Y "$F")
	[ "$m1" != "$m2" ] || { echo "mtime unchanged: $m1" >&2; false; }
	eq "$(stat -c %i "$F")" "$i1"
	ln "$F" "$MNT/redpanda_connect/KEY"
	eq "$(stat -c %i "$MNT/redpanda_connect/KEY")" "$i1"
	eq "$(stat -c %i "$F")" "$i1"
	eq "$(stat -c %h "$F")" 2
	eq "$(stat -c %h "$MNT/redpanda_connect/KEY")" 2
	eq "$(cat "$MNT/redpanda_connect/KEY")" two
}

# ---------------------------------------------------------------- scopes as hard links

@test "ln adds a scope; ln to another name is EPERM; rm removes one scope; rm of the last deletes" {
	mount_store
	printf val > "$MNT/ai_gateway/X"
	ln "$MNT/ai_gateway/X" "$MNT/mcp_server/X"
	log_has 'X: added to mcp_server'
	eq "$(stat -c %h "$MNT/ai_gateway/X")" 2
	eq "$(stat -c %h "$MNT/mcp_server/X")" 2
	eq "$(getfattr --only-values -n secretsfs.scopes "$MNT/ai_gateway/X")" "ai_gateway,mcp_server"
	eq "$(cat "$MNT/mcp_server/X")" val
	ln "$MNT/ai_gateway/X" "$MNT/ai_agent/X"
	eq "$(stat -c %h "$MNT/mcp_server/X")" 3
	eq "$(getfattr --only-values -n secretsfs.scopes "$MNT/ai_gateway/X")" "ai_gateway,mcp_server,ai_agent"

	fails "Operation not permitted" ln "$MNT/ai_gateway/X" "$MNT/mcp_server/Y"
	log_has 'link Y refused'
	[ ! -e "$MNT/mcp_server/Y" ]
	eq "$(stat -c %h "$MNT/ai_gateway/X")" 3

	rm "$MNT/ai_agent/X"
	rm "$MNT/mcp_server/X"
	log_has 'X: removed from mcp_server'
	[ ! -e "$MNT/mcp_server/X" ]
	eq "$(ls "$MNT/mcp_server")" ""
	eq "$(stat -c %h "$MNT/ai_gateway/X")" 1
	eq "$(cat "$MNT/ai_gateway/X")" val
	eq "$(getfattr --only-values -n secretsfs.scopes "$MNT/ai_gateway/X")" "ai_gateway"

	printf keep > "$MNT/ai_gateway/OTHER"
	rm "$MNT/ai_gateway/X"
	log_has 'X: deleted \(its last scope, ai_gateway, was removed\)'
	[ ! -e "$MNT/ai_gateway/X" ]
	eq "$(ls "$MNT/ai_gateway")" "OTHER"
	remount
	[ ! -e "$MNT/ai_gateway/X" ]
	eq "$(ls "$MNT/ai_gateway")" "OTHER"
	for d in mcp_server ai_agent redpanda_cluster redpanda_connect; do
		eq "$(ls "$MNT/$d")" ""
	done
}

@test "creating an ID that exists in another scope is EEXIST, logged with where it lives" {
	mount_store
	printf orig > "$MNT/ai_gateway/X"
	fails "File exists" bash -c "printf v > '$MNT/mcp_server/X'"
	log_has 'mcp_server/X: create refused \(EEXIST\): secret X already lives in ai_gateway.*ln .*/ai_gateway/X .*/mcp_server/X'
	[ ! -e "$MNT/mcp_server/X" ]
	eq "$(cat "$MNT/ai_gateway/X")" orig
	eq "$(stat -c %h "$MNT/ai_gateway/X")" 1
	eq "$(ver "$MNT/ai_gateway/X")" 1
}

# ---------------------------------------------------------------- writes

@test "writes: > then >>, truncate shorter and longer, cp over, one version per open" {
	mount_store
	F=$MNT/ai_gateway/W
	printf a > "$F"
	printf b >> "$F"
	eq "$(cat "$F")" ab
	eq "$(stat -c %s "$F")" 2

	printf abcdefgh > "$F"
	truncate -s 3 "$F"
	eq "$(cat "$F")" abc
	eq "$(stat -c %s "$F")" 3
	truncate -s 10 "$F"
	eq "$(stat -c %s "$F")" 10
	printf 'abc\0\0\0\0\0\0\0' | cmp - "$F"

	printf 'from-cp-source' > "$T/src"
	cp "$T/src" "$F"
	cmp "$T/src" "$F"
	eq "$(stat -c %s "$F")" 14

	# one open, three write(2)s, one close: one version
	v0=$(ver "$F")
	python3 -c 'import os,sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
for p in (b"one", b"two", b"three"):
    os.write(fd, p)
os.close(fd)' "$F"
	eq "$(cat "$F")" onetwothree
	eq "$(ver "$F")" $((v0 + 1))
	# every close(2) of a descriptor that wrote commits (docs/design.md):
	# bash's "printf >&7" writes through a dup of fd 7 and closes it, so
	# each printf is a close and a version; each version is a whole value
	v1=$(ver "$F")
	# (fd 3 is bats' own; use 7)
	exec 7>"$F"
	printf part1 >&7
	eq "$(cat "$F")" part1
	printf part2 >&7
	printf part3 >&7
	exec 7>&-
	eq "$(cat "$F")" part1part2part3
	eq "$(ver "$F")" $((v1 + 3))
	v2=$(ver "$F")
	printf z >> "$F"
	eq "$(ver "$F")" $((v2 + 1))
	eq "$(cat "$F")" part1part2part3z
}

@test "a reader that opened before an overwrite keeps reading the old value" {
	mount_store
	F=$MNT/ai_gateway/SNAP
	printf OLD-VALUE-1234 > "$F"
	exec 8<"$F"
	printf NEW > "$F"
	old=$(cat <&8)
	exec 8<&-
	eq "$old" OLD-VALUE-1234
	eq "$(cat "$F")" NEW
	# and a reader opened between two writes sees the middle one
	exec 9<"$F"
	printf THIRD > "$F"
	eq "$(cat <&9)" NEW
	exec 9<&-
	eq "$(cat "$F")" THIRD
}

# ---------------------------------------------------------------- versions

@test "versions: each commit increments secretsfs.version; .versions keeps the last 5" {
	mount_store
	F=$MNT/ai_gateway/ROT
	for i in 1 2 3 4 5 6 7; do
		printf "value-$i" > "$F"
		eq "$(ver "$F")" $i
	done
	eq "$(ls "$MNT/.versions")" ROT
	eq "$(ls "$MNT/.versions/ROT" | sort -n | tr '\n' ' ')" "3 4 5 6 7 "
	eq "$(cat "$MNT/.versions/ROT/3")" value-3
	eq "$(cat "$MNT/.versions/ROT/6")" value-6
	eq "$(cat "$MNT/.versions/ROT/7")" value-7
	[ ! -e "$MNT/.versions/ROT/2" ]
	eq "$(cat "$F")" value-7
	remount
	eq "$(ver "$F")" 7
	eq "$(ls "$MNT/.versions/ROT" | sort -n | tr '\n' ' ')" "3 4 5 6 7 "
	eq "$(cat "$MNT/.versions/ROT/4")" value-4
}

@test "versions: -o keep_versions=2 keeps two" {
	mount_store -o keep_versions=2
	F=$MNT/mcp_server/ROT2
	for i in 1 2 3 4; do printf "v$i" > "$F"; done
	eq "$(ver "$F")" 4
	eq "$(ls "$MNT/.versions/ROT2" | sort -n | tr '\n' ' ')" "3 4 "
	eq "$(cat "$MNT/.versions/ROT2/3")" v3
	eq "$(cat "$MNT/.versions/ROT2/4")" v4
}

# ---------------------------------------------------------------- labels

@test "labels: set, list, get, remove; missing is ENODATA; a long value survives the size probe" {
	mount_store
	F=$MNT/ai_gateway/LBL
	printf v > "$F"
	setfattr -n user.tag.managed-by -v aigateway "$F"
	log_has 'LBL: label managed-by set'
	getfattr -d "$F" | grep -qx 'user.tag.managed-by="aigateway"'
	eq "$(getfattr --only-values -n user.tag.managed-by "$F")" aigateway
	setfattr -n user.tag.env -v 'prod eu-west/1:a=b+c@d_e.f' "$F"
	eq "$(getfattr --only-values -n user.tag.env "$F")" 'prod eu-west/1:a=b+c@d_e.f'
	eq "$(getfattr -d "$F" | grep -c '^user\.')" 2
	setfattr -x user.tag.managed-by "$F"
	log_has 'LBL: label managed-by removed'
	! getfattr -d "$F" | grep -q managed-by || false
	fails "No such attribute" getfattr -n user.tag.managed-by "$F"
	fails "No such attribute" getfattr -n user.tag.nope "$F"
	fails "No such attribute" setfattr -x user.tag.nope "$F"
	# a 256-byte value: getfattr probes the size first
	long=$(printf 'a%.0s' $(seq 256))
	setfattr -n user.tag.long -v "$long" "$F"
	eq "$(getfattr --only-values -n user.tag.long "$F")" "$long"
	eq "$(python3 -c 'import os,sys; print(len(os.getxattr(sys.argv[1], "user.tag.long")))' "$F")" 256
	getfattr -d "$F" | grep -qx "user.tag.long=\"$long\""
	# an empty value is a valid label
	setfattr -n user.tag.empty -v '' "$F"
	eq "$(getfattr --only-values -n user.tag.empty "$F")" ""
}

@test "labels: secrets with the same labels share them in memory; a change to one leaves the others', also after a remount, a delete and a re-create" {
	mount_store
	for id in A B C; do
		printf v > "$MNT/ai_gateway/SHARED_$id"
		setfattr -n user.tag.managed-by -v aigateway "$MNT/ai_gateway/SHARED_$id"
		setfattr -n user.tag.team -v search "$MNT/ai_gateway/SHARED_$id"
	done
	remount # one label set for the three
	setfattr -n user.tag.team -v ml "$MNT/ai_gateway/SHARED_B"
	setfattr -x user.tag.managed-by "$MNT/ai_gateway/SHARED_C"
	eq "$(getfattr --only-values -n user.tag.team "$MNT/ai_gateway/SHARED_A")" search
	eq "$(getfattr --only-values -n user.tag.managed-by "$MNT/ai_gateway/SHARED_A")" aigateway
	eq "$(getfattr --only-values -n user.tag.team "$MNT/ai_gateway/SHARED_B")" ml
	eq "$(getfattr --only-values -n user.tag.managed-by "$MNT/ai_gateway/SHARED_B")" aigateway
	fails "No such attribute" getfattr -n user.tag.managed-by "$MNT/ai_gateway/SHARED_C"
	eq "$(getfattr --only-values -n user.tag.team "$MNT/ai_gateway/SHARED_C")" search
	# the last secret with a set goes, the others keep theirs
	rm "$MNT/ai_gateway/SHARED_B"
	printf w > "$MNT/ai_gateway/SHARED_A" # a new version: its labels again
	eq "$(getfattr -d "$MNT/ai_gateway/SHARED_A" | grep -c '^user\.tag\.')" 2
	eq "$(getfattr --only-values -n user.tag.team "$MNT/ai_gateway/SHARED_A")" search
	# re-created right after its delete: its own labels come back (a
	# pending secret's labels are its own until stored)
	printf x > "$MNT/ai_gateway/SHARED_B"
	eq "$(getfattr --only-values -n user.tag.team "$MNT/ai_gateway/SHARED_B")" ml
	eq "$(getfattr --only-values -n user.tag.managed-by "$MNT/ai_gateway/SHARED_B")" aigateway
	remount
	eq "$(getfattr --only-values -n user.tag.team "$MNT/ai_gateway/SHARED_A")" search
	eq "$(getfattr --only-values -n user.tag.team "$MNT/ai_gateway/SHARED_C")" search
}

@test "labels: values the store refuses are EINVAL and logged; other namespaces are EOPNOTSUPP" {
	mount_store
	F=$MNT/ai_gateway/LBL
	printf v > "$F"
	setfattr -n user.tag.ok -v good "$F"
	fails "Invalid argument" setfattr -n user.tag.bad -v 'no!' "$F"
	log_has 'label bad'
	fails "Invalid argument" setfattr -n user.tag.bad2 -v 'cost$5' "$F"
	log_has 'label bad2'
	fails "Invalid argument" setfattr -n user.tag.bad3 -v "$(printf 'a\nb')" "$F"
	log_has 'label bad3'
	fails "Invalid argument" setfattr -n user.tag.ok -v 'x!' "$F"
	eq "$(getfattr --only-values -n user.tag.ok "$F")" good
	fails "No such attribute" getfattr -n user.tag.bad "$F"
	# a label value over 256 bytes
	fails "Invalid argument" setfattr -n user.tag.big -v "$(printf 'a%.0s' $(seq 257))" "$F"

	fails "Operation not supported" setfattr -n trusted.x -v 1 "$F"
	fails "Operation not supported" setfattr -n user.other -v 1 "$F"
	log_has 'xattr user.other refused: only labels \(user.tag.KEY\) are stored'
	fails "Operation not supported" setfattr -n security.x -v 1 "$F"
	# a minimal valid ACL (version 2, user::rw- group::--- other::---)
	acl='0x02000000010006000000000004000000000000002000000000000000'
	fails "Operation not supported" setfattr -n system.posix_acl_access -v "$acl" "$F"
	eq "$(getfattr -d -m - "$F" | grep -c '=')" 1
}

@test "read-only facts: secretsfs.id, .version, .scopes; hidden from listings; setting them is EPERM" {
	mount_store
	F=$MNT/ai_gateway/FACTS
	printf v1 > "$F"
	printf v2 > "$F"
	ln "$F" "$MNT/redpanda_cluster/FACTS"
	setfattr -n user.tag.managed-by -v aigateway "$F"
	eq "$(getfattr --only-values -n secretsfs.id "$F")" FACTS
	eq "$(getfattr --only-values -n secretsfs.version "$F")" 2
	eq "$(getfattr --only-values -n secretsfs.scopes "$F")" "ai_gateway,redpanda_cluster"
	eq "$(getfattr --only-values -n secretsfs.scopes "$MNT/redpanda_cluster/FACTS")" "ai_gateway,redpanda_cluster"
	eq "$(getfattr -d "$F" | grep -v '^#' | grep -v '^$')" 'user.tag.managed-by="aigateway"'
	eq "$(getfattr -d -m - "$F" | grep -v '^#' | grep -v '^$')" 'user.tag.managed-by="aigateway"'
	python3 -c 'import os,sys; l=os.listxattr(sys.argv[1]); assert l == ["user.tag.managed-by"], l' "$F"
	fails "Operation not permitted" setfattr -n secretsfs.id -v OTHER "$F"
	fails "Operation not permitted" setfattr -n secretsfs.version -v 9 "$F"
	fails "Operation not permitted" setfattr -n secretsfs.scopes -v ai_gateway "$F"
	fails "Operation not permitted" setfattr -x secretsfs.version "$F"
	eq "$(getfattr --only-values -n secretsfs.version "$F")" 2
	eq "$(getfattr --only-values -n secretsfs.id "$F")" FACTS
	# cp -a of a secret copies the label and not the facts
	cp -a "$F" "$T/copy"
	eq "$(cat "$T/copy")" v2
}

# ---------------------------------------------------------------- lazy decryption

@test "ls, stat and getfattr never decrypt: a tampered value fails only cat, with EIO and a log line" {
	mount_store
	printf 'value-of-A-123' > "$MNT/ai_gateway/A"
	setfattr -n user.tag.managed-by -v aigateway "$MNT/ai_gateway/A"
	printf 'value-of-B-456' > "$MNT/ai_gateway/B"
	stop_daemon
	python3 - "$STORE/store.db" <<-'EOF'
		import sqlite3, sys
		db = sqlite3.connect(sys.argv[1])
		rows = db.execute("SELECT version, ct FROM versions WHERE id='A'").fetchall()
		assert rows, "no versions row for A"
		for v, ct in rows:
		    ct = bytearray(ct)
		    ct[len(ct) // 2] ^= 0x01
		    db.execute("UPDATE versions SET ct=? WHERE id='A' AND version=?", (bytes(ct), v))
		db.commit()
		db.close()
	EOF
	start_daemon
	ls -l "$MNT/ai_gateway" | grep -q ' A$'
	eq "$(stat -c %s "$MNT/ai_gateway/A")" 14
	getfattr -d "$MNT/ai_gateway/A" | grep -qx 'user.tag.managed-by="aigateway"'
	eq "$(getfattr --only-values -n secretsfs.version "$MNT/ai_gateway/A")" 1
	! grep -q 'failed authentication' "$LOG" || false
	fails "Input/output error" cat "$MNT/ai_gateway/A"
	log_has 'value of A version 1 failed authentication'
	eq "$(cat "$MNT/ai_gateway/B")" value-of-B-456
}

# ---------------------------------------------------------------- limits

@test "value limits: 65,536 bytes stored exactly; 65,537 is EFBIG, logged, old value intact" {
	mount_store
	F=$MNT/ai_gateway/BIG
	head -c 65536 /dev/urandom > "$T/max"
	cp "$T/max" "$F"
	cmp "$T/max" "$F"
	eq "$(stat -c %s "$F")" 65536
	v=$(ver "$F")
	head -c 65537 /dev/urandom > "$T/over"
	fails "File too large" cp "$T/over" "$F"
	log_has 'over the 65536-byte'
	cmp "$T/max" "$F"
	eq "$(stat -c %s "$F")" 65536
	eq "$(ver "$F")" "$v"
	fails "File too large" truncate -s 65537 "$F"
	cmp "$T/max" "$F"
	fails "File too large" bash -c "printf x >> '$F'"
	cmp "$T/max" "$F"
	# a new secret over the limit is not stored, and the name goes when
	# the failed writer closes (docs/design.md)
	fails "File too large" cp "$T/over" "$MNT/ai_gateway/NEW_BIG"
	[ ! -e "$MNT/ai_gateway/NEW_BIG" ]
	[ ! -e "$MNT/.versions/NEW_BIG" ]
	log_has "NEW_BIG: closed without a value, so it was not created"
	remount
	cmp "$T/max" "$F"
	[ ! -e "$MNT/ai_gateway/NEW_BIG" ]
	eq "$(ls "$MNT/ai_gateway")" BIG
}

@test "an empty value is not stored: the old value stays, the log says so" {
	mount_store
	F=$MNT/ai_gateway/EMPTY
	printf keepme > "$F"
	: > "$F"
	log_has 'EMPTY: .*not stored'
	eq "$(cat "$F")" keepme
	eq "$(stat -c %s "$F")" 6
	eq "$(ver "$F")" 1
	truncate -s 0 "$F"
	eq "$(cat "$F")" keepme
	eq "$(ver "$F")" 1
	remount
	eq "$(cat "$F")" keepme
}

# ---------------------------------------------------------------- persistence

@test "remount keeps values, labels, scopes and versions" {
	mount_store
	printf 'openai-1' > "$MNT/ai_gateway/OPENAI"
	printf 'openai-2' > "$MNT/ai_gateway/OPENAI"
	ln "$MNT/ai_gateway/OPENAI" "$MNT/ai_agent/OPENAI"
	setfattr -n user.tag.managed-by -v aigateway "$MNT/ai_gateway/OPENAI"
	printf 'pg-pass' > "$MNT/redpanda_connect/PG"
	i=$(stat -c %i "$MNT/ai_gateway/OPENAI")
	remount
	eq "$(cat "$MNT/ai_gateway/OPENAI")" openai-2
	eq "$(cat "$MNT/ai_agent/OPENAI")" openai-2
	eq "$(stat -c %h "$MNT/ai_gateway/OPENAI")" 2
	eq "$(stat -c %i "$MNT/ai_agent/OPENAI")" "$(stat -c %i "$MNT/ai_gateway/OPENAI")"
	eq "$(getfattr --only-values -n secretsfs.scopes "$MNT/ai_gateway/OPENAI")" "ai_gateway,ai_agent"
	eq "$(getfattr --only-values -n user.tag.managed-by "$MNT/ai_agent/OPENAI")" aigateway
	eq "$(ver "$MNT/ai_gateway/OPENAI")" 2
	eq "$(ls "$MNT/.versions/OPENAI" | sort -n | tr '\n' ' ')" "1 2 "
	eq "$(cat "$MNT/.versions/OPENAI/1")" openai-1
	eq "$(cat "$MNT/redpanda_connect/PG")" pg-pass
	eq "$(ls "$MNT/redpanda_connect")" PG
	eq "$(ls "$MNT/ai_gateway")" OPENAI
}

# The ID index (fs/nodes.c) grows to 16,384 slots here, at mount and
# through the mount; its removals move entries back instead of leaving
# tombstones: a wrong move would lose an ID that is still there, or keep
# one that is gone.
@test "a store of 10,000 secrets mounts and lists them all; after 1,000 deletes and 1,000 renames every name answers as it should, also after a remount" {
	mount_store
	for i in $(seq 10000); do printf "v$i" > "$MNT/ai_gateway/K$i"; done
	eq "$(ls -f "$MNT/ai_gateway" | wc -l)" 10002
	remount
	eq "$(ls -f "$MNT/ai_gateway" | wc -l)" 10002
	eq "$(ls "$MNT/ai_gateway" | sort | uniq | wc -l)" 10000
	eq "$(cat "$MNT/ai_gateway/K1")" v1
	eq "$(cat "$MNT/ai_gateway/K5000")" v5000
	eq "$(cat "$MNT/ai_gateway/K10000")" v10000
	eq "$(stat -c %s "$MNT/ai_gateway/K10000")" 6
	# unlink(2) and rename(2) from one process (2,000 rm and mv processes
	# took half a minute)
	python3 - "$MNT/ai_gateway" <<'PY'
import os, sys
d = sys.argv[1]
for i in range(3, 3001, 3):
    os.unlink(f"{d}/K{i}")
for i in range(3001, 4001):
    os.rename(f"{d}/K{i}", f"{d}/R{i}")
PY
	check_names() {
		python3 - "$MNT/ai_gateway" <<'PY'
import os, sys
d = sys.argv[1]
bad = []
for i in range(1, 10001):
    gone = i <= 3000 and i % 3 == 0
    moved = 3001 <= i <= 4000
    k, r = f"{d}/K{i}", f"{d}/R{i}"
    if os.path.exists(k) != (not gone and not moved) or os.path.exists(r) != moved:
        bad.append(i)
    elif not gone and open(r if moved else k).read() != f"v{i}":
        bad.append(i)
print(len(bad), bad[:10])
PY
	}
	run check_names
	eq "$output" "0 []"
	eq "$(ls -f "$MNT/ai_gateway" | wc -l)" 9002
	remount
	run check_names
	eq "$output" "0 []"
	eq "$(ls "$MNT/ai_gateway" | wc -l)" 9000
}

@test "2,000 files open at once over three secrets: each fd reads its own file's value, also after half are closed and the secrets rotated" {
	mount_store
	for k in A_KEY B_KEY C_KEY; do printf "v1-$k" >"$MNT/ai_gateway/$k"; done
	run python3 - "$MNT/ai_gateway" <<'PY'
import os, sys, resource
d = sys.argv[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
keys = ["A_KEY", "B_KEY", "C_KEY"]
fds = [(k, os.open(f"{d}/{k}", os.O_RDONLY)) for i in range(2000) for k in [keys[i % 3]]]
bad = [k for k, fd in fds if os.pread(fd, 100, 0) != f"v1-{k}".encode()]
for k, fd in fds[::2]:
    os.close(fd)
for k in keys:  # a rotation: open snapshots keep the value they opened
    with open(f"{d}/.{k}.new", "w") as f:
        f.write(f"v2-{k}")
    os.rename(f"{d}/.{k}.new", f"{d}/{k}")
bad += [k for k, fd in fds[1::2] if os.pread(fd, 100, 0) != f"v1-{k}".encode()]
new = [open(f"{d}/{k}").read() for k in keys]
print(len(bad), " ".join(new))
PY
	echo "$output"
	eq "$output" "0 v2-A_KEY v2-B_KEY v2-C_KEY"
}

@test "no plaintext in the store directory (db, -wal, anything) while mounted and after" {
	mount_store
	printf 'PLAINTEXT-CANARY-7f3a9' > "$MNT/ai_gateway/CANARY"
	printf 'PLAINTEXT-CANARY-7f3a9-second' > "$MNT/ai_gateway/CANARY"
	printf 'Zebra-Quartz-Plaintext' > "$MNT/mcp_server/CANARY2"
	printf 'scratch-canary-Qx81' > "$MNT/mcp_server/.notes.txt"
	eq "$(cat "$MNT/ai_gateway/CANARY")" PLAINTEXT-CANARY-7f3a9-second
	ls "$STORE" >&2
	! grep -r -a -l -e PLAINTEXT-CANARY -e Zebra-Quartz -e scratch-canary "$STORE" || false
	for f in "$STORE"/*; do
		! grep -a -q -e PLAINTEXT-CANARY -e Zebra-Quartz "$f" || false
	done
	stop_daemon
	! grep -r -a -l -e PLAINTEXT-CANARY -e Zebra-Quartz -e scratch-canary "$STORE" || false
	! grep -a -e PLAINTEXT-CANARY -e Zebra-Quartz -e scratch-canary "$LOG" || false
}

# ---------------------------------------------------------------- scratch files

@test "scratch names: created, listed, readable, no ID, logged as not stored, gone after remount" {
	mount_store
	for n in .tmp 'foo.txt~' 4913; do
		printf "content of $n" > "$MNT/ai_gateway/$n"
		log_has "ai_gateway/$n: scratch file: .*never stored"
		eq "$(cat "$MNT/ai_gateway/$n")" "content of $n"
		eq "$(stat -c %s "$MNT/ai_gateway/$n")" $(( ${#n} + 11 ))
		fails "No such attribute" getfattr -n secretsfs.id "$MNT/ai_gateway/$n"
	done
	eq "$(ls -A "$MNT/ai_gateway" | LC_ALL=C sort | tr '\n' ' ')" ".tmp 4913 foo.txt~ "
	[ ! -e "$MNT/.versions/foo.txt~" ]
	eq "$(ls "$MNT/.versions")" ""
	rm "$MNT/ai_gateway/4913"
	eq "$(ls -A "$MNT/ai_gateway" | LC_ALL=C sort | tr '\n' ' ')" ".tmp foo.txt~ "
	remount
	eq "$(ls -A "$MNT/ai_gateway")" ""
	[ ! -e "$MNT/ai_gateway/foo.txt~" ]
}

# ---------------------------------------------------------------- read-only

@test "read-only mount: reads work; writes, create, rm, ln, truncate, setfattr are EROFS" {
	mount_store
	printf 'ro-value' > "$MNT/ai_gateway/RO"
	setfattr -n user.tag.a -v b "$MNT/ai_gateway/RO"
	remount -o ro
	F=$MNT/ai_gateway/RO
	eq "$(cat "$F")" ro-value
	eq "$(getfattr --only-values -n user.tag.a "$F")" b
	eq "$(ls "$MNT/ai_gateway")" RO
	fails "Read-only file system" bash -c "printf new > '$F'"
	fails "Read-only file system" bash -c "printf more >> '$F'"
	fails "Read-only file system" bash -c "printf new > '$MNT/ai_gateway/NEW'"
	fails "Read-only file system" truncate -s 2 "$F"
	fails "Read-only file system" rm -f "$F"
	fails "Read-only file system" ln "$F" "$MNT/mcp_server/RO"
	fails "Read-only file system" setfattr -n user.tag.a -v c "$F"
	fails "Read-only file system" setfattr -x user.tag.a "$F"
	eq "$(cat "$F")" ro-value
	eq "$(getfattr --only-values -n user.tag.a "$F")" b
	eq "$(ver "$F")" 1
	[ ! -e "$MNT/ai_gateway/NEW" ]
}

@test "read-only from the start: mount_store -o ro serves an empty tree and refuses creation" {
	mount_store -o ro
	grep " $MNT fuse.secretsfs " /proc/mounts | grep -q '[ ,]ro[ ,]'
	eq "$(ls "$MNT" | wc -l)" 5
	fails "Read-only file system" bash -c "printf new > '$MNT/ai_gateway/NEW'"
}

# ---------------------------------------------------------------- command line

@test "cli: --help and --version exit 0" {
	run "$SFS" --help
	[ "$status" -eq 0 ]
	[[ "$output" == *usage* ]]
	run "$SFS" --version
	[ "$status" -eq 0 ]
	[[ "$output" == *secretsfs* ]]
	run "$SFS" -h
	[ "$status" -eq 0 ]
	run "$SFS" -V
	[ "$status" -eq 0 ]
}

@test "cli: a store directory that does not exist is one clear line, no mount" {
	new_store
	run "$SFS" /tmp/nonexistent-dir-secretsfs-$$ "$MNT" -f
	[ "$status" -ne 0 ]
	eq "${#lines[@]}" 1
	[[ "$output" == *"/tmp/nonexistent-dir-secretsfs-$$"* ]]
	[[ "$output" == *"No such file or directory"* ]]
	no_mount_left
}

@test "cli: a directory that is not a store is refused" {
	new_store
	mkdir "$T/plain"
	# with a valid key given, the store itself is what is missing
	run timeout 10 "$SFS" "$T/plain" "$MNT" -f -o key="$STORE/key"
	[ "$status" -ne 0 ]
	[ "$status" -ne 124 ]
	eq "${#lines[@]}" 1
	[[ "$output" == *"not a secretsfs store"* ]]
	no_mount_left
	# with the default key path (DIR/key, absent in a plain directory)
	run timeout 10 "$SFS" "$T/plain" "$MNT" -f
	[ "$status" -ne 0 ]
	[ "$status" -ne 124 ]
	eq "${#lines[@]}" 1
	[[ "$output" == *"not a secretsfs store"* ]] || { echo "got: $output" >&2; false; }
	no_mount_left
}

@test "cli: a wrong key is refused" {
	new_store
	head -c 32 /dev/urandom > "$T/otherkey"
	chmod 0400 "$T/otherkey"
	run timeout 10 "$SFS" "$STORE" "$MNT" -f -o key="$T/otherkey"
	[ "$status" -ne 0 ]
	[ "$status" -ne 124 ]
	eq "${#lines[@]}" 1
	[[ "$output" == *"wrong key"* ]]
	no_mount_left
}

@test "cli: a missing key file is refused" {
	new_store
	run timeout 10 "$SFS" "$STORE" "$MNT" -f -o key="$T/nokey"
	[ "$status" -ne 0 ]
	[ "$status" -ne 124 ]
	eq "${#lines[@]}" 1
	[[ "$output" == *"not found"* ]]
	no_mount_left
	# and the default key file missing
	mv "$STORE/key" "$T/moved-key"
	run timeout 10 "$SFS" "$STORE" "$MNT" -f
	[ "$status" -ne 0 ]
	[ "$status" -ne 124 ]
	[[ "$output" == *"not found"* ]]
	no_mount_left
}

@test "cli: a key file readable by group or others is refused" {
	new_store
	cp "$STORE/key" "$T/key644"
	chmod 0644 "$T/key644"
	run timeout 10 "$SFS" "$STORE" "$MNT" -f -o key="$T/key644"
	[ "$status" -ne 0 ]
	[ "$status" -ne 124 ]
	eq "${#lines[@]}" 1
	[[ "$output" == *"group or others"* ]]
	[[ "$output" == *chmod* ]]
	no_mount_left
	# the same key, private, works
	chmod 0400 "$T/key644"
	start_daemon -o key="$T/key644"
}

@test "cli: a missing mountpoint is refused" {
	new_store
	run timeout 10 "$SFS" "$STORE" "$T/no-such-mnt" -f
	[ "$status" -ne 0 ]
	[ "$status" -ne 124 ]
	eq "${#lines[@]}" 1
	[[ "$output" == *"$T/no-such-mnt"* ]]
	[[ "$output" == *"No such file or directory"* ]]
	! grep -q " $T/no-such-mnt " /proc/mounts || false
}

@test "cli: a busy mountpoint is refused" {
	mount_store
	OTHER=$T/other-store
	"$SFS" init "$OTHER" >/dev/null
	run timeout 10 "$SFS" "$OTHER" "$MNT" -f
	[ "$status" -ne 0 ]
	[ "$status" -ne 124 ]
	eq "${#lines[@]}" 1
	[[ "$output" == *busy* ]]
	eq "$(grep -c " $MNT " /proc/mounts)" 1
	[ -d "$MNT/ai_gateway" ]
}

@test "cli: a second daemon on the same store is refused (in use)" {
	mount_store
	printf v > "$MNT/ai_gateway/X"
	mkdir "$T/mnt2"
	run timeout 10 "$SFS" "$STORE" "$T/mnt2" -f
	[ "$status" -ne 0 ]
	[ "$status" -ne 124 ]
	eq "${#lines[@]}" 1
	[[ "$output" == *"in use"* ]]
	! grep -q " $T/mnt2 " /proc/mounts || false
	eq "$(cat "$MNT/ai_gateway/X")" v
}

# ---------------------------------------------------------------- shutdown

# exits_cleanly: the daemon ends with status 0 and leaves no mount.
exits_cleanly() {
	local rc=0
	wait "$DAEMON_PID" || rc=$?
	DAEMON_PID=
	eq "$rc" 0
	no_mount_left
}

@test "SIGTERM unmounts and the daemon exits 0" {
	mount_store
	printf v > "$MNT/ai_gateway/X"
	kill -TERM "$DAEMON_PID"
	exits_cleanly
	log_has "unmounted"
}

@test "fusermount3 -u ends the daemon with exit 0" {
	mount_store
	printf v > "$MNT/ai_gateway/X"
	fusermount3 -u "$MNT"
	exits_cleanly
}

@test "cli: called as mount.fuse.secretsfs, mount(8)'s -v -n -s are accepted and -f (fake) mounts nothing" {
	new_store
	ln -s "$SFS" "$T/mount.fuse.secretsfs"
	run "$T/mount.fuse.secretsfs" "$STORE" "$MNT" -f -v -o rw,_netdev
	[ "$status" -eq 0 ]
	! grep -q " $MNT " /proc/mounts || false
	"$T/mount.fuse.secretsfs" "$STORE" "$MNT" -v -n -s -o rw,nofail
	grep -q " $MNT fuse.secretsfs " /proc/mounts
	printf helper-mounted > "$MNT/ai_gateway/VIA_HELPER"
	[ "$(cat "$MNT/ai_gateway/VIA_HELPER")" = helper-mounted ]
	fusermount3 -u "$MNT"
	# the daemon was a background one: wait until it let the store go
	for _ in $(seq 1 100); do fuser -s "$STORE/store.lock" 2>/dev/null || break; sleep 0.05; done
}
