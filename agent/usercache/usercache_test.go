package usercache

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestNeverBlocksAndLearns(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	var calls atomic.Int32
	c := New(ctx, func(ctx context.Context, k Kind, id uint32) (string, error) {
		calls.Add(1)
		<-release // a directory service that hangs
		if k == Group {
			return "staff", nil
		}
		if id == 404 {
			return "", errors.New("no such user")
		}
		return "alice", nil
	}, nil)
	start := time.Now()
	for i := 0; i < 10000; i++ {
		if n := c.Name(User, 501); n != "" {
			t.Fatalf("name before the resolver answered: %q", n)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("10000 lookups with a hung resolver took %v", d)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for c.Name(User, 501) != "alice" {
		if time.Now().After(deadline) {
			t.Fatal("name never learnt")
		}
		time.Sleep(time.Millisecond)
	}
	for c.Name(Group, 20) != "staff" {
		if time.Now().After(deadline) {
			t.Fatal("group never learnt")
		}
		time.Sleep(time.Millisecond)
	}
	// A failed lookup is remembered as "no name", not asked again and again.
	c.Name(User, 404)
	time.Sleep(50 * time.Millisecond)
	before := calls.Load()
	for i := 0; i < 100; i++ {
		if c.Name(User, 404) != "" {
			t.Fatal("name for an unknown uid")
		}
	}
	time.Sleep(50 * time.Millisecond)
	if calls.Load() != before {
		t.Errorf("unknown uid asked again: %d calls, then %d", before, calls.Load())
	}
	cancel()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("goroutine did not stop")
	}
}

func TestParseDscacheutil(t *testing.T) {
	out := []byte("name: alice\npassword: ********\nuid: 501\ngid: 20\ndir: /Users/alice\nshell: /bin/zsh\ngecos: Alice\n\n")
	if n, err := ParseDscacheutil(out); err != nil || n != "alice" {
		t.Errorf("%q %v", n, err)
	}
	if _, err := ParseDscacheutil([]byte("\n")); err == nil {
		t.Error("empty output accepted")
	}
}

func TestPlatformRoot(t *testing.T) {
	if n, err := Platform(context.Background(), User, 0); err != nil || n != "root" {
		t.Errorf("uid 0: %q %v", n, err)
	}
}
