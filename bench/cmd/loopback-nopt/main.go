// Command loopback-nopt is go-fuse's example/loopback with FUSE passthrough
// turned off: every read and write goes through the daemon, as with gzfs.
//
// go-fuse's example enables kernel passthrough (FOPEN_PASSTHROUGH) when it
// runs as root on a kernel that supports it (6.9+): reads and writes then
// bypass the daemon entirely and the example is no longer a FUSE-daemon
// baseline. The benchmark measures against both.
//
//	loopback-nopt [-q] MOUNTPOINT ORIGINAL
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

type node struct{ fs.LoopbackNode }

// noPT hides the descriptor from go-fuse, which then does not register a
// backing file with the kernel.
type noPT struct{ *fs.LoopbackFile }

func (noPT) PassthroughFd() (int, bool) { return -1, false }

func wrap(fh fs.FileHandle) fs.FileHandle {
	if lf, ok := fh.(*fs.LoopbackFile); ok {
		return noPT{lf}
	}
	return fh
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, e := n.LoopbackNode.Open(ctx, flags)
	return wrap(fh), fl, e
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ino, fh, fl, e := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	return ino, wrap(fh), fl, e
}

func main() {
	flag.Bool("q", false, "quiet (always)")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: loopback-nopt [-q] MOUNTPOINT ORIGINAL")
		os.Exit(2)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(flag.Arg(1), &st); err != nil {
		log.Fatal(err)
	}
	root := &fs.LoopbackRoot{Path: flag.Arg(1), Dev: uint64(st.Dev)}
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &node{fs.LoopbackNode{RootData: r}}
	}
	rootNode := root.NewNode(root, nil, "", &st)
	root.RootNode = rootNode
	sec := time.Second
	server, err := fs.Mount(flag.Arg(0), rootNode, &fs.Options{
		AttrTimeout:     &sec,
		EntryTimeout:    &sec,
		NullPermissions: true,
		MountOptions:    fuse.MountOptions{FsName: flag.Arg(1), Name: "loopback-nopt"},
	})
	if err != nil {
		log.Fatalf("mount: %v", err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sigs; server.Unmount() }()
	server.Wait()
}
