//go:build !unix

package replay

import (
	"errors"
	"os"
)

var errNoMap = errors.New("replay: input not mappable")

type mapReader struct{}

func newMapReader(*os.File, int) (*mapReader, error) { return nil, errNoMap }

func (*mapReader) ReadSlice() ([]byte, error) { return nil, errNoMap }

func (*mapReader) Close() error { return nil }
