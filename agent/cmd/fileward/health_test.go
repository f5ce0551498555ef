package main

import (
	"testing"
	"time"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/schema"
)

func TestCaptureCheck(t *testing.T) {
	drops := &capture.Drops{}
	clock := time.Unix(1000, 0)
	check := captureCheck(drops, func() time.Time { return clock }, 30*time.Second)
	if err := check(); err != nil {
		t.Fatalf("fresh agent: %v", err)
	}
	drops.Add(schema.LossSpoolFull, 5) // a sink-side loss is the sinks' health, not capture's
	if err := check(); err != nil {
		t.Fatalf("spool_full made capture unhealthy: %v", err)
	}
	drops.Add(schema.LossRingFull, 1)
	if err := check(); err == nil {
		t.Fatal("ring_full did not degrade capture")
	}
	clock = clock.Add(29 * time.Second)
	if err := check(); err == nil {
		t.Fatal("healthy again before the window passed")
	}
	clock = clock.Add(2 * time.Second)
	if err := check(); err != nil {
		t.Fatalf("still degraded after the window: %v", err)
	}
	drops.Add(schema.LossKernelOverflow, 1)
	if err := check(); err == nil {
		t.Fatal("kernel_overflow did not degrade capture")
	}
}
