#!/usr/bin/env bats
# A store.db changed behind the daemon's back, with nothing but sqlite3
# and no key (security items 7 and 8, docs/threat-model.md "Someone who
# can write to the store directory"): a changed row is refused (EIO, or
# left out of the listing, with a log line), never served; SQL planted in
# the database is refused at mount, never run.  Each test failed on the
# store before metadata authentication and the schema check.
load helper

setup() { :; }
teardown() { unmount_store; }

# sql SQL...: runs SQL on the store's database as another process would.
sql() {
	sqlite3 "$STORE/store.db" "$@"
}

# mount_refused PATTERN: a mount of $STORE fails (within 10 s) and says
# PATTERN; nothing is mounted.
mount_refused() {
	run timeout 10 "$SFS" "$STORE" "$MNT" -f
	echo "status $status: $output"
	[ "$status" -ne 0 ] && [ "$status" -ne 124 ]
	[[ "$output" == *"$1"* ]]
	! grep -q " $MNT fuse.secretsfs " /proc/mounts
}

@test "7a. UPDATE secrets SET scopes moves no secret into another scope: it is left out, logged; the rest is served" {
	mount_store
	printf 'gateway-only' >"$MNT/ai_gateway/GW_KEY"
	printf 'untouched' >"$MNT/ai_gateway/OTHER"
	stop_daemon
	sql "UPDATE secrets SET scopes = 31 WHERE id = 'GW_KEY'"
	start_daemon
	[ ! -e "$MNT/mcp_server/GW_KEY" ]
	[ ! -e "$MNT/redpanda_connect/GW_KEY" ]
	[ ! -e "$MNT/ai_gateway/GW_KEY" ]
	log_has 'GW_KEY: metadata failed authentication'
	expect_value "$MNT/ai_gateway/OTHER" untouched
	# and changed while mounted: the next read is refused
	sql "UPDATE secrets SET scopes = 3 WHERE id = 'OTHER'"
	fails "Input/output error" cat "$MNT/ai_gateway/OTHER"
	log_has 'OTHER: metadata failed authentication'
}

@test "7b. UPDATE secrets SET version = 1 serves no revoked value: EIO and a log line, left out at the next mount" {
	mount_store
	F=$MNT/ai_gateway/ROTATED
	printf 'revoked-1' >"$F"
	printf 'current-2' >"$F"
	expect_value "$F" current-2
	sql "UPDATE secrets SET version = 1 WHERE id = 'ROTATED'"
	fails "Input/output error" cat "$F"
	log_has 'ROTATED: metadata failed authentication'
	remount
	[ ! -e "$F" ]
	log_has 'ROTATED: metadata failed authentication \(changed outside secretsfs\): left out'
}

@test "7c. after delete and re-create, version 1's ciphertext from a backup does not open as the new secret's value" {
	mount_store
	F=$MNT/ai_gateway/REBORN
	printf 'old-life' >"$F"
	sql ".backup '$T/backup.db'"
	rm "$F"
	printf 'new-life' >"$F"
	expect_value "$F" new-life
	sql "ATTACH '$T/backup.db' AS b;
	     UPDATE versions SET ct = (SELECT ct FROM b.versions WHERE id = 'REBORN' AND version = 1)
	     WHERE id = 'REBORN' AND version = 1"
	fails "Input/output error" cat "$F"
	log_has 'value of REBORN version 1 failed authentication'
}

@test "8a. a planted trigger (every rotated secret into all five scopes) is refused at mount, named" {
	mount_store
	printf 'gw' >"$MNT/ai_gateway/ROTATE_ME"
	stop_daemon
	sql "CREATE TRIGGER all_scopes AFTER UPDATE ON secrets BEGIN
	       UPDATE secrets SET scopes = 31 WHERE id = NEW.id;
	     END;"
	mount_refused 'trigger "all_scopes"'
	# it never ran: the secret is where it was once the trigger is gone
	sql "DROP TRIGGER all_scopes"
	start_daemon
	printf 'gw2' >"$MNT/ai_gateway/ROTATE_ME"
	[ ! -e "$MNT/mcp_server/ROTATE_ME" ]
	expect_value "$MNT/ai_gateway/ROTATE_ME" gw2
}

@test "8b. a view in store.db is refused at mount, named" {
	new_store
	sql "CREATE VIEW everything AS SELECT * FROM secrets"
	mount_refused 'view "everything"'
}

@test "8c. an extra index or an altered table in store.db is refused at mount, named" {
	new_store
	sql "CREATE INDEX by_scope ON secrets(scopes)"
	mount_refused 'index "by_scope"'
	sql "DROP INDEX by_scope; ALTER TABLE labels ADD COLUMN note TEXT"
	mount_refused 'table "labels"'
}

# restore_rows_from BACKUP ID: replaces one secret's whole row set
# (secrets, labels, versions) by the one in the database file BACKUP, as
# a restore of that one secret from a backup would.
restore_rows_from() {
	sql "ATTACH '$1' AS b;
	     DELETE FROM labels WHERE id = '$2'; DELETE FROM versions WHERE id = '$2';
	     DELETE FROM secrets WHERE id = '$2';
	     INSERT INTO secrets SELECT * FROM b.secrets WHERE id = '$2';
	     INSERT INTO labels SELECT * FROM b.labels WHERE id = '$2';
	     INSERT INTO versions SELECT * FROM b.versions WHERE id = '$2';
	     DETACH b"
}

@test "7d. one secret's whole row set copied back from a backup taken before its rotation: the mount is refused, the revoked value never served" {
	mount_store
	F=$MNT/ai_gateway/ROTATED
	printf 'revoked-1' >"$F"
	setfattr -n user.tag.env -v prod "$F"
	printf 'untouched' >"$MNT/ai_gateway/OTHER"
	sql ".backup '$T/backup.db'"
	printf 'current-2' >"$F"
	expect_value "$F" current-2
	stop_daemon
	# each row of the backup's ROTATED verifies on its own
	restore_rows_from "$T/backup.db" ROTATED
	eq "$(sql "SELECT version FROM secrets WHERE id = 'ROTATED'")" 1
	mount_refused "store.db does not match its authenticated digest: a secret's rows were replaced or removed outside secretsfs"
	run timeout 10 "$SFS" "$STORE" "$MNT" -f -o ro
	[ "$status" -ne 0 ]
	[[ "$output" == *"does not match its authenticated digest"* ]]
	# the whole store from that one backup is what the digest cannot tell
	cp "$T/backup.db" "$STORE/store.db"
	rm -f "$STORE/store.db-wal" "$STORE/store.db-shm"
	start_daemon
	expect_value "$F" revoked-1
}

@test "7e. one secret's rows deleted with sqlite3: the mount is refused; -o reseal_digest accepts the rows as they are" {
	mount_store
	printf 'doomed' >"$MNT/ai_gateway/DELETED"
	printf 'untouched' >"$MNT/ai_gateway/OTHER"
	stop_daemon
	sql "DELETE FROM labels WHERE id = 'DELETED'; DELETE FROM versions WHERE id = 'DELETED';
	     DELETE FROM secrets WHERE id = 'DELETED'"
	mount_refused "store.db does not match its authenticated digest"
	# the operator's way after a repair by hand: once, with a warning
	start_daemon -o reseal_digest
	log_has 'reseal_digest: store.db did not match its authenticated digest'
	[ ! -e "$MNT/ai_gateway/DELETED" ]
	expect_value "$MNT/ai_gateway/OTHER" untouched
	remount
	expect_value "$MNT/ai_gateway/OTHER" untouched
}
