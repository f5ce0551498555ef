// Package fstree copies file trees for the capture benchmarks (the copy of
// $GOROOT/src their workloads read).
package fstree

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Copy copies at most max regular files of src into dst, creating the
// directories on the way, and returns how many files it copied. Entries it
// cannot read are passed over; an error creating or writing in dst ends the
// copy. Each file is streamed, so memory stays flat whatever the tree's size.
func Copy(src, dst string, max int) (int, error) {
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if n >= max {
			return filepath.SkipAll
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer in.Close()
		out, err := os.Create(to)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		n++
		return out.Close()
	})
	return n, err
}
