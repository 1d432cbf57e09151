// Package atomicfile replaces a file so that a crash or power cut at any
// moment leaves either the old content or the new, never a mix or an empty
// file: the new content goes to a temporary file in the same directory, is
// fsynced, renamed over the target, and the directory is fsynced.
//
// Every file the agent keeps across restarts (state, job statuses, the
// configuration switch record, downloads, discovery's CA) is written this
// way.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrDone is returned by Write and Commit on a File already committed or
// aborted.
var ErrDone = errors.New("atomicfile: file already committed or aborted")

// File is the new version of a file while it is written. It is not safe for
// concurrent use.
type File struct {
	f    *os.File
	path string
	perm fs.FileMode
	done bool
}

// Create starts a new version of path, which gets permissions perm on
// Commit. The directory must exist. Until Commit, path is untouched.
func Create(path string, perm fs.FileMode) (*File, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary file in %s: %w", dir, err)
	}
	return &File{f: f, path: path, perm: perm}, nil
}

// Write appends to the new version.
func (f *File) Write(p []byte) (int, error) {
	if f.done {
		return 0, ErrDone
	}
	return f.f.Write(p)
}

// Commit makes the new version the file at path. On error, path keeps its
// old content and the temporary file is gone.
func (f *File) Commit() error {
	if f.done {
		return ErrDone
	}
	f.done = true
	tmp := f.f.Name()
	fail := func(what string, err error) error {
		f.f.Close()
		os.Remove(tmp)
		return fmt.Errorf("%s %s: %w", what, f.path, err)
	}
	if err := f.f.Chmod(f.perm); err != nil {
		return fail("setting the mode of", err)
	}
	if err := f.f.Sync(); err != nil {
		return fail("writing", err)
	}
	if err := f.f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replacing %s: %w", f.path, err)
	}
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		_ = d.Sync() // best effort: some filesystems refuse fsync on directories
		d.Close()
	}
	return nil
}

// Abort drops the new version; path is untouched. It does nothing after
// Commit, so `defer f.Abort()` is the usual pattern.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.f.Close()
	os.Remove(f.f.Name())
}

// WriteFile replaces path with data (permissions perm) atomically.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Commit()
}
