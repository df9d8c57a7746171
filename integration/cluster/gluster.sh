#!/usr/bin/env bash
# A GlusterFS cluster on this machine for the many-machines tests (issue 12):
# a replica-2 volume on two brick directories, mounted twice with the
# GlusterFS FUSE client; the two mount points stand for two machines (each
# test runs its own gzfs daemon over each).
#
#   integration/cluster/gluster.sh up   [DIR]   install (apt-get) if needed, start glusterd, create, start and mount the volume
#   integration/cluster/gluster.sh down [DIR]   unmount, stop and delete the volume, stop the daemons, remove DIR
#
# DIR defaults to /var/tmp/gzfs-gluster; the client mounts are DIR/client-a
# and DIR/client-b. Every address is this machine's own (its hostname,
# which resolves to a loopback address): no traffic leaves it. Needs root.
set -euo pipefail
cmd=${1:-}
dir=${2:-/var/tmp/gzfs-gluster}
vol=gzfsvol
host=$(hostname)

say() { echo "gluster.sh: $*" >&2; }

up() {
	if ! command -v glusterd >/dev/null || ! command -v mount.glusterfs >/dev/null; then
		say "installing glusterfs-server and glusterfs-client"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends glusterfs-server glusterfs-client >&2
	fi
	mkdir -p "$dir/brick1" "$dir/brick2" "$dir/client-a" "$dir/client-b"
	if ! pgrep -x glusterd >/dev/null; then
		glusterd --log-file="$dir/glusterd.log"
	fi
	for _ in $(seq 1 100); do
		gluster --mode=script pool list >/dev/null 2>&1 && break
		sleep 0.1
	done
	if ! gluster --mode=script volume info "$vol" >/dev/null 2>&1; then
		gluster --mode=script volume create "$vol" replica 2 "$host:$dir/brick1" "$host:$dir/brick2" force >&2
		# Close-to-open across clients needs each client to ask the bricks,
		# not its own caches, at open and stat (the defaults cache
		# attributes and data for a second or more).
		for opt in performance.stat-prefetch performance.quick-read performance.io-cache \
			performance.read-ahead performance.open-behind performance.readdir-ahead \
			performance.write-behind; do
			gluster --mode=script volume set "$vol" "$opt" off >&2
		done
		gluster --mode=script volume set "$vol" performance.md-cache-timeout 0 >&2 || true
	fi
	if ! gluster --mode=script volume status "$vol" >/dev/null 2>&1; then
		gluster --mode=script volume start "$vol" force >&2
	fi
	# The client itself must not serve a file's old pages or attributes
	# after another client changed it: no kernel caching of attributes and
	# entries, and the page cache purged at every open (mount.glusterfs
	# 10.3 mangles -o fopen-keep-cache=..., so the client is started
	# directly).
	for c in client-a client-b; do
		if ! mountpoint -q "$dir/$c"; then
			glusterfs --process-name fuse --volfile-server="$host" --volfile-id="$vol" \
				--attribute-timeout=0 --entry-timeout=0 --negative-timeout=0 \
				--fopen-keep-cache=off --log-file="$dir/$c.log" "$dir/$c"
			for _ in $(seq 1 100); do
				mountpoint -q "$dir/$c" && break
				sleep 0.1
			done
			mountpoint -q "$dir/$c" || { say "mounting $c failed (see $dir/$c.log)"; exit 1; }
		fi
	done
	say "volume $vol up: $dir/client-a $dir/client-b"
}

down() {
	for c in client-a client-b; do
		mountpoint -q "$dir/$c" 2>/dev/null && { umount "$dir/$c" || umount -l "$dir/$c"; }
	done
	if command -v gluster >/dev/null && pgrep -x glusterd >/dev/null; then
		gluster --mode=script volume stop "$vol" force >/dev/null 2>&1 || true
		gluster --mode=script volume delete "$vol" >/dev/null 2>&1 || true
	fi
	pkill -x glusterfsd 2>/dev/null || true
	pkill -x glusterfs 2>/dev/null || true
	pkill -x glusterd 2>/dev/null || true
	rm -rf "$dir"
	say "cluster down"
}

case "$cmd" in
up) up ;;
down) down ;;
*) echo "usage: $0 up|down [DIR]" >&2; exit 2 ;;
esac
