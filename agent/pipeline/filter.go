package pipeline

import (
	"slices"
	"strings"

	"github.com/fileward/fileward/schema"
)

// Rules are the noise filters of the config's filters block (docs/configuration.md). A rule ending
// in "/" matches that prefix; any other rule matches the exact path.
type Rules struct {
	ExcludePaths       []string
	IncludePaths       []string // empty = everything not excluded
	ExcludeExecutables []string
	ExcludeSigningIDs  []string
	// MutePIDs are dropped whatever their paths: the agent and its children.
	MutePIDs []int32
	// MutePaths are the agent's own files (data_dir, logs), as prefixes.
	MutePaths []string
}

// matcher answers prefix-or-exact questions for one rule list.
type matcher struct {
	exact    map[string]struct{}
	prefixes []string
}

func newMatcher(rules []string) matcher {
	m := matcher{exact: map[string]struct{}{}}
	for _, r := range rules {
		if strings.HasSuffix(r, "/") {
			m.prefixes = append(m.prefixes, r)
		} else {
			m.exact[r] = struct{}{}
		}
	}
	return m
}

func (m *matcher) empty() bool { return len(m.exact) == 0 && len(m.prefixes) == 0 }

func (m *matcher) match(s string) bool {
	if s == "" {
		return false
	}
	if _, ok := m.exact[s]; ok {
		return true
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// filter is the compiled form of Rules.
type filter struct {
	exclude, include, exe, mute matcher
	signing                     map[string]struct{}
	pids                        []int32
}

func newFilter(r Rules) *filter {
	f := &filter{
		exclude: newMatcher(r.ExcludePaths),
		include: newMatcher(r.IncludePaths),
		exe:     newMatcher(r.ExcludeExecutables),
		signing: map[string]struct{}{},
		pids:    slices.Clone(r.MutePIDs),
	}
	var mute []string
	for _, p := range r.MutePaths {
		if p == "" {
			continue
		}
		mute = append(mute, strings.TrimSuffix(p, "/")+"/", strings.TrimSuffix(p, "/"))
	}
	f.mute = newMatcher(mute)
	for _, s := range r.ExcludeSigningIDs {
		f.signing[s] = struct{}{}
	}
	return f
}

// keep reports whether ev passes every rule.
func (f *filter) keep(ev *schema.Event) bool {
	return f.keepPath(ev) && f.keepProcess(ev)
}

// keepPath applies the rules that need only the event itself (pid and
// paths), so the pipeline can drop an event before it pays for process
// enrichment. For two-path events (rename, link, clone, exchange) a path rule
// drops the event only when both paths are excluded, and include keeps it
// when either path is included, so a file moved out of a watched tree is
// still seen.
func (f *filter) keepPath(ev *schema.Event) bool {
	if slices.Contains(f.pids, ev.Process.PID) {
		return false
	}
	if f.mute.match(ev.Path) && (ev.OrigPath == "" || f.mute.match(ev.OrigPath)) {
		return false
	}
	if f.exclude.match(ev.Path) && (ev.OrigPath == "" || f.exclude.match(ev.OrigPath)) {
		return false
	}
	if !f.include.empty() && !f.include.match(ev.Path) && !f.include.match(ev.OrigPath) {
		return false
	}
	return true
}

// keepProcess applies the executable and signing-id rules.
func (f *filter) keepProcess(ev *schema.Event) bool {
	if f.exe.match(ev.Process.Executable) {
		return false
	}
	if len(f.signing) > 0 && ev.Process.SigningID != "" {
		if _, ok := f.signing[ev.Process.SigningID]; ok {
			return false
		}
	}
	return true
}
