package rulesreport

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// docFacts is what the meaning checks need from one event document.
type docFacts struct {
	source, host, pid, entity, ts string
	start, file                   bool
	hasArgs, platform             bool
	extension                     string
	teamID, trusted, csFlags      string
	hasSignature                  bool
}

func factsOf(source string, flat map[string][]string) docFacts {
	has := func(f, v string) bool {
		for _, x := range flat[f] {
			if x == v {
				return true
			}
		}
		return false
	}
	d := docFacts{
		source: source, host: one(flat["host.id"]), pid: one(flat["process.pid"]), entity: one(flat["process.entity_id"]),
		ts: one(flat["@timestamp"]), extension: one(flat["file.extension"]),
		teamID: one(flat["process.code_signature.team_id"]), trusted: one(flat["process.code_signature.trusted"]),
		csFlags: one(flat["process.code_signature.flags"]), platform: one(flat["fileward.process.platform_binary"]) == "true",
	}
	_, d.hasSignature = flat["process.code_signature.exists"]
	_, d.hasArgs = flat["process.args"]
	d.start = has("event.category", "process") && (has("event.type", "start") || has("event.action", "exec"))
	d.file = has("event.category", "file") && !d.start
	return d
}

// Check is one meaning check over the documents.
type MeaningCheck struct {
	Name   string
	Passed bool
	Detail string
	// Applies reports whether the check matters to a rule (it reads a field
	// whose meaning the check tests); when the check fails, such rules get a
	// note.
	Field string
}

// JoinFigures are the figures of the entity_id join check.
type JoinFigures struct{ Starts, Joined, Mismatched int }

// Join counts, for every process start (or exec) document, the later file
// documents of the same host and pid (up to that pid's next start) that
// carry the start's process.entity_id, and those that carry another.
func (inv *Inventory) Join() JoinFigures {
	type key struct{ source, host, pid string }
	byKey := map[key][]docFacts{}
	for _, d := range inv.facts {
		if d.pid == "" {
			continue
		}
		k := key{d.source, d.host, d.pid}
		byKey[k] = append(byKey[k], d)
	}
	var j JoinFigures
	for _, ds := range byKey {
		sort.SliceStable(ds, func(a, b int) bool { return ds[a].ts < ds[b].ts })
		cur := ""
		for _, d := range ds {
			switch {
			case d.start:
				j.Starts++
				cur = d.entity
			case d.file && cur != "":
				if d.entity == cur {
					j.Joined++
				} else {
					j.Mismatched++
				}
			}
		}
	}
	return j
}

// MeaningChecks tests, on the documents, the meanings Elastic's rules rely
// on beyond field presence.
func (inv *Inventory) MeaningChecks() []MeaningCheck {
	var out []MeaningCheck
	// file.extension is lowercase in Defend documents.
	total, upper := 0, 0
	var ex []string
	for _, d := range inv.facts {
		if d.extension == "" {
			continue
		}
		total++
		if d.extension != strings.ToLower(d.extension) {
			upper++
			if len(ex) < 3 {
				ex = append(ex, "`"+d.extension+"`")
			}
		}
	}
	c := MeaningCheck{Name: "`file.extension` is lowercase, as in Elastic Defend", Field: "file.extension", Passed: upper == 0}
	c.Detail = fmt.Sprintf("%d of %d documents with an extension carry upper case", upper, total)
	if len(ex) > 0 {
		c.Detail += " (" + strings.Join(ex, ", ") + ")"
	}
	out = append(out, c)

	// process.code_signature.trusted in Elastic Defend's meaning: a valid
	// signature (CS_VALID) that is not ad hoc (CS_ADHOC) from a team
	// (team_id) or the platform (CS_PLATFORM_BINARY, or eslogger's
	// is_platform_binary in fileward.process.platform_binary). Testable only on
	// documents that carry the code-signing flags.
	const csValid, csAdhoc, csPlatform = 0x1, 0x2, 0x4000000
	withFlags, wrong, signed := 0, 0, 0
	for _, d := range inv.facts {
		if d.trusted == "" {
			continue
		}
		signed++
		if d.csFlags == "" {
			continue
		}
		f, err := strconv.ParseUint(d.csFlags, 0, 64)
		if err != nil {
			continue
		}
		withFlags++
		want := f&csValid != 0 && f&csAdhoc == 0 && (d.teamID != "" || f&csPlatform != 0 || d.platform)
		if strconv.FormatBool(want) != d.trusted {
			wrong++
		}
	}
	c = MeaningCheck{Name: "`process.code_signature.trusted` means what Elastic Defend means: a valid, not ad-hoc signature from a team or the platform", Field: "process.code_signature.trusted"}
	switch {
	case signed == 0:
		c.Passed = true
		c.Detail = "no document carries process.code_signature.trusted"
	case withFlags == 0:
		c.Detail = fmt.Sprintf("cannot be verified: none of the %d documents with `trusted` carries `process.code_signature.flags`", signed)
	default:
		c.Passed = wrong == 0 && withFlags == signed
		c.Detail = fmt.Sprintf("%d of %d documents with `trusted` carry the flags; on %d of them `trusted` disagrees with CS_VALID, CS_ADHOC, team_id and platform-binary status", withFlags, signed, wrong)
	}
	out = append(out, c)

	// Start events carry the arguments (process.args is the 9th most read
	// field of the Defend file rules, mostly on the start step of a sequence).
	starts, withArgs := 0, 0
	for _, d := range inv.facts {
		if d.start {
			starts++
			if d.hasArgs {
				withArgs++
			}
		}
	}
	c = MeaningCheck{Name: "process start events carry `process.args`", Field: "process.args", Passed: starts > 0 && withArgs == starts}
	c.Detail = fmt.Sprintf("%d of %d process start/exec documents carry process.args", withArgs, starts)
	out = append(out, c)

	// process.entity_id joins a start event with its file events.
	j := inv.Join()
	c = MeaningCheck{Name: "`process.entity_id` is the same on a process's start event and on its file events (EQL sequences `by process.entity_id` join)", Field: "process.entity_id"}
	c.Passed = j.Starts > 0 && j.Mismatched == 0 && j.Joined > 0
	c.Detail = fmt.Sprintf("%d process start/exec documents; of the file events of the same pid that follow them, %d carry the start's entity_id and %d another", j.Starts, j.Joined, j.Mismatched)
	out = append(out, c)
	return out
}

// Meaning returns the meaning checks and join figures, computed once.
func (inv *Inventory) Meaning() ([]MeaningCheck, JoinFigures) {
	if inv.checks == nil {
		inv.checks = inv.MeaningChecks()
		j := inv.Join()
		inv.join = &j
	}
	return inv.checks, *inv.join
}
