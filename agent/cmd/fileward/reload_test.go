package main

import (
	"slices"
	"testing"

	"github.com/fileward/fileward/agent/config"
)

func TestRestartNeeded(t *testing.T) {
	a := config.Default()
	b := config.Default()
	b.Source.Type = "replay"
	b.Source.Fanotify.Marks = []string{"/", "/home"}
	b.Agent.DataDir = "/elsewhere"
	b.Spool.MaxBytes *= 2
	b.Log.Format = "json"
	// These reload: no restart for them.
	b.Filters.ExcludePaths = append(b.Filters.ExcludePaths, "/tmp/")
	b.Filters.AggregateWindow = 0
	b.Agent.ShutdownTimeout *= 2
	b.Sinks = nil
	got := restartNeeded(&a, &b)
	want := []string{"agent.data_dir", "source.type", "source.fanotify.marks", "spool.max_bytes", "log.format"}
	if !slices.Equal(got, want) {
		t.Errorf("restart needed for %v, want %v", got, want)
	}
	if got := restartNeeded(&a, &a); len(got) != 0 {
		t.Errorf("an unchanged config needs a restart for %v", got)
	}
}
