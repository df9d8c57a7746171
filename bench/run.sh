#!/usr/bin/env bash
# gzfs benchmark (issue 5): installs the peers when missing, builds gzfs
# (-tags libdeflate), go-fuse's loopback example and the benchmark into the
# cache dir, and runs bench/cmd/gzfsbench. Writes bench/results.md and
# bench/results.svg.
#
#   bench/run.sh [--quick] [--cache DIR] [other gzfsbench flags]
#
# Needs root (FUSE mounts, drop_caches). Exit status non-zero only when
# something is broken; missed goals are reported as MISS.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=/var/tmp/gzfs-bench
mode=full
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
	case "${args[i]}" in
	--cache | -cache) cache="${args[i + 1]}" ;;
	--cache=* | -cache=*) cache="${args[i]#*=}" ;;
	--quick | -quick) mode=quick ;;
	esac
done

need=()
for c in pigz:pigz bgzip:tabix gzip:gzip fusermount3:fuse3 git:git tar:tar mkfs.btrfs:btrfs-progs compsize:btrfs-compsize; do
	command -v "${c%%:*}" >/dev/null 2>&1 || need+=("${c#*:}")
done
[ -e /usr/include/libdeflate.h ] || need+=(libdeflate-dev)
/usr/bin/python3 -c 'import indexed_gzip' 2>/dev/null || need+=(python3-indexed-gzip)
[ -e /usr/include/zlib.h ] || need+=(zlib1g-dev)
if [ ${#need[@]} -gt 0 ]; then
	echo "bench: installing ${need[*]}" >&2
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

bin="$cache/bin-$mode"
mkdir -p "$bin"
GO=${GO:-go}
echo "bench: building gzfs (libdeflate), loopback and gzfsbench into $bin" >&2
$GO build -tags libdeflate -o "$bin/gzfs" ./cmd/gzfs
$GO build -o "$bin/loopback" github.com/hanwen/go-fuse/v2/example/loopback
$GO build -o "$bin/loopback-nopt" ./bench/cmd/loopback-nopt
$GO build -tags libdeflate -o "$bin/gzfsbench" ./bench/cmd/gzfsbench

# Belt and braces: gzfsbench unmounts everything it mounted; this also
# catches a SIGKILLed gzfsbench. Only this mode's work dir, and only when no
# other run of this mode holds the lock (gzfsbench holds it while it runs).
cleanup() {
	local m
	exec 8>>"$cache/work-$mode.lock" || return 0
	if flock -n 8; then
		for m in $(awk -v p="$cache/work-$mode/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts 2>/dev/null); do
			fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		done
	fi
	exec 8>&-
	return 0
}
trap cleanup EXIT

rc=0
"$bin/gzfsbench" --gzfs "$bin/gzfs" --loopback "$bin/loopback" --loopback-nopt "$bin/loopback-nopt" --out bench "$@" || rc=$?
cleanup
trap - EXIT
exit $rc
