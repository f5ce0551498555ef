package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// CheckPaths reports, at their lines, the paths the config names that are
// not there on this host: the replay input and the fanotify marks. They are
// not errors of the config itself (the file may be valid on another host),
// so Load does not check them; `fileward check-config` does, and `fileward
// run` fails to start on them.
func (cfg *Config) CheckPaths() error {
	c := &checker{file: cfg.File, lines: cfg.lines}
	s := &cfg.Source
	if s.Type == "replay" && s.Replay.Path != "" {
		if fi, err := os.Stat(s.Replay.Path); err != nil {
			c.at("source.replay.path", "%s", pathProblem(s.Replay.Path, err))
		} else if fi.IsDir() {
			c.at("source.replay.path", "%q is a directory: name a recorded NDJSON file", s.Replay.Path)
		}
	}
	if s.Type == "fanotify" || (s.Type == "auto" && runtime.GOOS == "linux") {
		for i, m := range s.Fanotify.Marks {
			if _, err := os.Stat(m); err != nil {
				c.at(fmt.Sprintf("source.fanotify.marks[%d]", i), "%s", pathProblem(m, err))
			}
		}
	}
	if len(c.errs) > 0 {
		return c.errs
	}
	return nil
}

func pathProblem(p string, err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%q does not exist on this host", p)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("%q cannot be read by this user", p)
	}
	return err.Error()
}
