//go:build !unix

package cli

import "os"

// fileID is zero where os.FileInfo carries no inode: changes are seen by
// mtime and size alone.
func fileID(os.FileInfo) (dev, ino uint64) { return 0, 0 }
