package vfs

import (
	"bytes"
	"io"
	"os"
)

// Reader is a file open for reading: its bytes in order (Read), or from
// any offset (ReadAt), which leaves the offset Read goes on from alone.
type Reader interface {
	io.ReadCloser
	io.ReaderAt
	// Size is the file's length when it was opened.
	Size() int64
}

// ReaderFS is an FS that can open a file to be read in pieces, so that a
// large file (a snapshot) is never held whole in memory. OSFS and MemFS
// are ReaderFSs; OpenRead serves any FS.
type ReaderFS interface {
	FS
	// OpenRead opens an existing file for reading.
	OpenRead(name string) (Reader, error)
}

// OpenRead opens the file name of fsys for reading: with fsys's own
// OpenRead if it is a ReaderFS, or else from what its ReadFile returns.
func OpenRead(fsys FS, name string) (Reader, error) {
	if r, ok := fsys.(ReaderFS); ok {
		return r.OpenRead(name)
	}
	b, err := fsys.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return bytesReader{bytes.NewReader(b)}, nil
}

// OpenRead implements ReaderFS.
func (OSFS) OpenRead(name string) (Reader, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return osReader{f, st.Size()}, nil
}

type osReader struct {
	*os.File
	size int64
}

func (r osReader) Size() int64 { return r.size }

// OpenRead implements ReaderFS: the reader reads the file as it is now,
// whatever is written to it later.
func (m *MemFS) OpenRead(name string) (Reader, error) {
	b, err := m.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return bytesReader{bytes.NewReader(b)}, nil
}

// bytesReader is a Reader of bytes in memory.
type bytesReader struct{ *bytes.Reader }

func (bytesReader) Close() error { return nil }
