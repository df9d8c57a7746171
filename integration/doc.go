// Package integration holds the end-to-end tests of gzfs: TestMain builds
// the gzfs binary and every test mounts it as a separate process on a real
// FUSE mount (the test process never serves its own mount), then checks
// each operation both through the mount and on the backing files with the
// standard gzip tools.
//
// The tests need /dev/fuse and fusermount3. Without them they are skipped,
// unless the environment variable CI is set: then they fail.
package integration
