// Package rulesreport decides, for each of Elastic's prebuilt detection rules
// that reads macOS or Linux file or process events, whether Fileward's
// documents can satisfy it, and writes docs/detection-rules.md.
//
// It reads the rules from a checkout of elastic/detection-rules given by path
// (the rules are under the Elastic License 2.0 and are not part of this
// repository), parses each rule's KQL, EQL or ES|QL query into a boolean
// expression over comparisons of fields with literals, and evaluates that
// expression abstractly against an inventory of the documents Fileward
// really emits (NDJSON produced by the agent's own encoder). The parsers are
// approximations: see Approximations in the generated report.
package rulesreport

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Rule is the part of a detection rule's TOML the report needs.
type Rule struct {
	Path              string // relative to the checkout
	ID                string
	Name              string
	Type              string // eql, query, new_terms, threshold, esql, ...
	Language          string // eql, kuery, esql, lucene
	Index             []string
	Query             string
	Tags              []string
	Integrations      []string
	Maturity          string
	TimestampOverride string
	// Fields a new_terms or threshold rule groups by: a document without
	// them produces no term, so they are required like a query's fields.
	GroupFields []string
}

type ruleFile struct {
	Metadata struct {
		Integration any    `toml:"integration"`
		Maturity    string `toml:"maturity"`
	} `toml:"metadata"`
	Rule struct {
		RuleID            string   `toml:"rule_id"`
		Name              string   `toml:"name"`
		Type              string   `toml:"type"`
		Language          string   `toml:"language"`
		Index             []string `toml:"index"`
		Query             string   `toml:"query"`
		Tags              []string `toml:"tags"`
		TimestampOverride string   `toml:"timestamp_override"`
		NewTerms          struct {
			Field string   `toml:"field"`
			Value []string `toml:"value"`
		} `toml:"new_terms"`
		Threshold struct {
			Field       any `toml:"field"`
			Cardinality []struct {
				Field string `toml:"field"`
			} `toml:"cardinality"`
		} `toml:"threshold"`
	} `toml:"rule"`
}

// ParseRule decodes one rule file's TOML.
func ParseRule(path string, data []byte) (*Rule, error) {
	var f ruleFile
	if _, err := toml.Decode(string(data), &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r := &Rule{
		Path:              path,
		ID:                f.Rule.RuleID,
		Name:              strings.TrimSpace(f.Rule.Name),
		Type:              f.Rule.Type,
		Language:          f.Rule.Language,
		Index:             f.Rule.Index,
		Query:             f.Rule.Query,
		Tags:              f.Rule.Tags,
		Maturity:          f.Metadata.Maturity,
		TimestampOverride: f.Rule.TimestampOverride,
	}
	switch v := f.Metadata.Integration.(type) {
	case string:
		r.Integrations = []string{v}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				r.Integrations = append(r.Integrations, s)
			}
		}
	}
	if f.Rule.NewTerms.Field == "new_terms_fields" {
		r.GroupFields = append(r.GroupFields, f.Rule.NewTerms.Value...)
	}
	switch v := f.Rule.Threshold.Field.(type) {
	case string:
		if v != "" {
			r.GroupFields = append(r.GroupFields, v)
		}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok && s != "" {
				r.GroupFields = append(r.GroupFields, s)
			}
		}
	}
	for _, c := range f.Rule.Threshold.Cardinality {
		if c.Field != "" {
			r.GroupFields = append(r.GroupFields, c.Field)
		}
	}
	if r.ID == "" {
		return nil, fmt.Errorf("%s: no rule.rule_id", path)
	}
	return r, nil
}

// LoadRules reads every rule under root/rules and root/rules_building_block,
// skipping rules/_deprecated. Files are read in path order.
func LoadRules(root string) ([]*Rule, error) {
	var rules []*Rule
	found := false
	for _, sub := range []string{"rules", "rules_building_block"} {
		dir := filepath.Join(root, sub)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		found = true
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "_deprecated" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(p, ".toml") {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			r, err := ParseRule(filepath.ToSlash(rel), data)
			if err != nil {
				return err
			}
			rules = append(rules, r)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, fmt.Errorf("%s: no rules/ or rules_building_block/ directory: give the path of an elastic/detection-rules checkout", root)
	}
	sort.Slice(rules, func(i, j int) bool { return rules[i].Path < rules[j].Path })
	return rules, nil
}

// OSes returns the rule's operating systems: its "OS: " tags, else the
// values its query compares host.os.type with.
func (r *Rule) OSes() []string {
	var out []string
	for _, t := range r.Tags {
		if s, ok := strings.CutPrefix(t, "OS: "); ok {
			out = append(out, strings.ToLower(s))
		}
	}
	if len(out) == 0 {
		for _, m := range hostOSRe.FindAllStringSubmatch(r.Query, -1) {
			out = append(out, strings.ToLower(m[1]))
		}
	}
	return out
}

var hostOSRe = regexp.MustCompile(`host\.os\.type\s*(?:==|:)\s*\(?\s*"?(linux|macos|windows)`)

// MacOrLinux reports whether the rule is for macOS or Linux.
func (r *Rule) MacOrLinux() bool {
	for _, o := range r.OSes() {
		if o == "macos" || o == "linux" {
			return true
		}
	}
	return false
}

// DefendData reports whether the rule searches Elastic Defend's event
// streams (an index pattern logs-endpoint.events.*).
func (r *Rule) DefendData() bool {
	for _, ix := range r.Indices() {
		if strings.HasPrefix(ix, "logs-endpoint.events") {
			return true
		}
	}
	return false
}

// Indices returns the index patterns the rule searches: rule.index, or an
// ES|QL query's FROM.
func (r *Rule) Indices() []string {
	if len(r.Index) > 0 || r.Language != "esql" {
		return r.Index
	}
	return esqlFrom(r.Query)
}

// Supported reports whether the rule's language is one this package parses.
func (r *Rule) Supported() bool {
	switch r.Language {
	case "eql", "kuery", "esql":
		return true
	}
	return false
}
