package sinks

import (
	"errors"
	"io"
	"testing"
)

// TestPermanent: Permanent keeps the error's text and identity and adds
// ErrPermanent; a nil error stays nil; an unwrapped error is not permanent.
func TestPermanent(t *testing.T) {
	if err := Permanent(nil); err != nil {
		t.Errorf("Permanent(nil) = %v, want nil", err)
	}
	err := Permanent(io.ErrUnexpectedEOF)
	if err == nil || err.Error() != io.ErrUnexpectedEOF.Error() {
		t.Fatalf("Permanent(io.ErrUnexpectedEOF) = %v", err)
	}
	if !IsPermanent(err) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Permanent error: IsPermanent %v, Is(ErrUnexpectedEOF) %v", IsPermanent(err), errors.Is(err, io.ErrUnexpectedEOF))
	}
	if IsPermanent(io.ErrUnexpectedEOF) || IsPermanent(nil) {
		t.Error("an error not wrapped by Permanent reported permanent")
	}
}
