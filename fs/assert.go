package fs

import fusefs "github.com/hanwen/go-fuse/v2/fs"

// Compile-time checks of the go-fuse interfaces each type implements.
var (
	_ fusefs.InodeEmbedder      = (*node)(nil)
	_ fusefs.NodeLookuper       = (*node)(nil)
	_ fusefs.NodeGetattrer      = (*node)(nil)
	_ fusefs.NodeSetattrer      = (*node)(nil)
	_ fusefs.NodeOpener         = (*node)(nil)
	_ fusefs.NodeCreater        = (*node)(nil)
	_ fusefs.NodeMkdirer        = (*node)(nil)
	_ fusefs.NodeMknoder        = (*node)(nil)
	_ fusefs.NodeSymlinker      = (*node)(nil)
	_ fusefs.NodeLinker         = (*node)(nil)
	_ fusefs.NodeUnlinker       = (*node)(nil)
	_ fusefs.NodeRmdirer        = (*node)(nil)
	_ fusefs.NodeRenamer        = (*node)(nil)
	_ fusefs.NodeReadlinker     = (*node)(nil)
	_ fusefs.NodeStatfser       = (*node)(nil)
	_ fusefs.NodeOpendirHandler = (*node)(nil)
	_ fusefs.NodeGetxattrer     = (*node)(nil)
	_ fusefs.NodeSetxattrer     = (*node)(nil)
	_ fusefs.NodeRemovexattrer  = (*node)(nil)
	_ fusefs.NodeListxattrer    = (*node)(nil)

	_ fusefs.FileReader    = (*gzHandle)(nil)
	_ fusefs.FileWriter    = (*gzHandle)(nil)
	_ fusefs.FileFlusher   = (*gzHandle)(nil)
	_ fusefs.FileFsyncer   = (*gzHandle)(nil)
	_ fusefs.FileReleaser  = (*gzHandle)(nil)
	_ fusefs.FileLseeker   = (*gzHandle)(nil)
	_ fusefs.FileAllocater = (*gzHandle)(nil)

	_ fusefs.FileReader    = (*plainHandle)(nil)
	_ fusefs.FileWriter    = (*plainHandle)(nil)
	_ fusefs.FileFlusher   = (*plainHandle)(nil)
	_ fusefs.FileFsyncer   = (*plainHandle)(nil)
	_ fusefs.FileReleaser  = (*plainHandle)(nil)
	_ fusefs.FileLseeker   = (*plainHandle)(nil)
	_ fusefs.FileAllocater = (*plainHandle)(nil)

	_ fusefs.FileReader   = (*foreignHandle)(nil)
	_ fusefs.FileReleaser = (*foreignHandle)(nil)

	_ fusefs.FileReaddirenter = (*dirHandle)(nil)
	_ fusefs.FileLookuper     = (*dirHandle)(nil)
	_ fusefs.FileSeekdirer    = (*dirHandle)(nil)
	_ fusefs.FileFsyncdirer   = (*dirHandle)(nil)
	_ fusefs.FileReleasedirer = (*dirHandle)(nil)
)
