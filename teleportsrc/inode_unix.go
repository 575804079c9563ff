package teleportsrc

import (
	"os"
	"syscall"
)

// inode tells a file replaced by rename (how tbot and `tctl auth sign`
// write) from the same file.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
