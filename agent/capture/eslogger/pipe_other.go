//go:build !linux

package eslogger

import "os"

// growPipe is a no-op off Linux: macOS pipes cannot be resized (the kernel
// grows a pipe up to 64 KiB by itself). It returns 0: the size is unknown.
func growPipe(f *os.File, size int) int { return 0 }
