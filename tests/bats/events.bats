#!/usr/bin/env bats
# inotify: what a service's reload script (inotifywait -m -e
# close_write,moved_to DIR) sees for local writes and rotations.
load helper

setup() {
	mount_store
	G=$MNT/ai_gateway
	M=$MNT/mcp_server
	WATCH_PID=
}
teardown() {
	if [ -n "${WATCH_PID:-}" ]; then
		kill "$WATCH_PID" 2>/dev/null
		wait "$WATCH_PID" 2>/dev/null || true
	fi
	unmount_store
}

# count_events LINE: how many lines of $T/events are exactly LINE.
count_events() {
	grep -cxF "$1" "$T/events" || true
}

show_events() {
	echo "events seen:" >&2
	cat "$T/events" >&2
}

@test "a local write gives CLOSE_WRITE on the secret, once per write" {
	start_watch "$G"
	printf 'v1' >"$G/EV_KEY"
	# inotify merges an event with an identical one still queued: the
	# second write waits until the watcher has taken the first
	for _ in $(seq 1 200); do
		[ "$(count_events 'CLOSE_WRITE,CLOSE EV_KEY')" -ge 1 ] && break
		sleep 0.05
	done
	printf 'v2-longer' >"$G/EV_KEY"
	stop_watch
	show_events
	[ "$(count_events 'CLOSE_WRITE,CLOSE EV_KEY')" = 2 ]
	[ "$(wc -l <"$T/events")" = 2 ]
	expect_value "$G/EV_KEY" v2-longer
}

@test "a rotation by mv gives MOVED_TO X once, and no CLOSE_WRITE on X" {
	printf 'before' >"$G/EV_KEY"
	setfattr -n user.tag.managed-by -v aigateway "$G/EV_KEY"
	start_watch "$G"
	printf 'after' >"$G/.EV_KEY.new"
	mv "$G/.EV_KEY.new" "$G/EV_KEY"
	stop_watch
	show_events
	[ "$(count_events 'MOVED_TO EV_KEY')" = 1 ]
	[ "$(count_events 'CLOSE_WRITE,CLOSE .EV_KEY.new')" = 1 ]
	[ "$(grep -c ' EV_KEY$' "$T/events")" = 1 ]
	expect_value "$G/EV_KEY" after
}

@test "a reload script sees each of 20 rotations exactly once" {
	printf 'v0' >"$G/RELOADED"
	ln "$G/RELOADED" "$M/RELOADED"
	v0=$(sfs_version "$G/RELOADED")
	start_watch "$G"
	for i in $(seq 1 20); do
		printf 'value-%d' "$i" >"$G/.RELOADED.new"
		mv "$G/.RELOADED.new" "$G/RELOADED"
	done
	stop_watch
	show_events
	[ "$(count_events 'MOVED_TO RELOADED')" = 20 ]
	[ "$(grep -c ' RELOADED$' "$T/events")" = 20 ]
	[ "$(count_events 'CLOSE_WRITE,CLOSE .RELOADED.new')" = 20 ]
	[ "$(wc -l <"$T/events")" = 40 ]
	expect_value "$G/RELOADED" value-20
	expect_value "$M/RELOADED" value-20
	[ "$(sfs_version "$G/RELOADED")" = $((v0 + 20)) ]
}

@test "a script watching a file's events: sed -i gives one MOVED_TO, cp one CLOSE_WRITE, vim one CLOSE_WRITE" {
	printf 'old-value' >"$G/TOOLED"
	start_watch "$G"
	(cd "$G" && sed -i 's/old/new/' TOOLED)
	stop_watch
	show_events
	[ "$(count_events 'MOVED_TO TOOLED')" = 1 ]
	[ "$(grep -c ' TOOLED$' "$T/events")" = 1 ]
	expect_value "$G/TOOLED" new-value

	printf 'cp-value' >"$T/src"
	start_watch "$G"
	cp "$T/src" "$G/TOOLED"
	stop_watch
	show_events
	[ "$(count_events 'CLOSE_WRITE,CLOSE TOOLED')" = 1 ]
	[ "$(grep -c ' TOOLED$' "$T/events")" = 1 ]
	expect_value "$G/TOOLED" cp-value

	start_watch "$G"
	(cd "$G" && vim -Es -u NONE -c '%s/cp/vim/' -c wq TOOLED)
	stop_watch
	show_events
	[ "$(count_events 'CLOSE_WRITE,CLOSE TOOLED')" = 1 ]
	[ "$(grep -c ' TOOLED$' "$T/events")" = 1 ]
	expect_value "$G/TOOLED" $'vim-value\n'
}
