package rulesreport

import (
	"sort"
	"strings"
)

// Group names of the report's rule sets.
const (
	GroupFile    = "file"    // rules that read file events
	GroupProcess = "process" // rules that read process events and no file events
)

// Categories returns the event categories a rule reads: from its query,
// else (no category in the query) from its index patterns.
func Categories(r *Rule, q *Query) []string {
	var cats []string
	if q != nil {
		cats = q.Categories()
	}
	if len(cats) > 0 && !(len(cats) == 1 && cats[0] == "any") {
		return cats
	}
	set := map[string]bool{}
	for _, ix := range r.Indices() {
		switch {
		case strings.Contains(ix, "file"):
			set["file"] = true
		case strings.Contains(ix, "process"):
			set["process"] = true
		case strings.Contains(ix, "network"):
			set["network"] = true
		}
	}
	if len(set) == 0 {
		return []string{"any"}
	}
	out := sortedKeys(set)
	sort.Strings(out)
	return out
}

// Group returns the report group of a macOS or Linux rule, or "" when the
// rule reads neither file nor process events (or is for neither OS).
func Group(r *Rule, q *Query) string {
	if !r.MacOrLinux() || q == nil {
		return ""
	}
	cats := Categories(r, q)
	has := func(c string) bool {
		for _, x := range cats {
			if x == c {
				return true
			}
		}
		return false
	}
	switch {
	case has("file"):
		return GroupFile
	case has("process"):
		return GroupProcess
	}
	return ""
}
