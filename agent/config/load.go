package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one configuration problem at a place in a file.
type Error struct {
	File string
	Line int    // 0 when the key is not in the file (a default was invalid)
	Path string // key path such as sinks[1].kafka.brokers
	Msg  string
}

func (e Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
		if e.Line > 0 {
			fmt.Fprintf(&b, "%d:", e.Line)
		}
		b.WriteByte(' ')
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one config, in file order.
type Errors []Error

func (errs Errors) Error() string {
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// ErrInvalid is matched (errors.Is) by an Errors value.
var ErrInvalid = errors.New("invalid configuration")

// Is makes errors.Is(err, ErrInvalid) true for Errors.
func (errs Errors) Is(target error) bool { return target == ErrInvalid }

// MaxFileBytes is the largest config file Load reads. Real configs are a
// few KiB; anything near this is the wrong file, and decoding YAML costs
// many times its size in memory.
const MaxFileBytes = 1 << 20

// Load reads, expands, decodes and validates the config at path.
// Any problem comes back as Errors; reading the file may also fail with an
// *os.PathError. A file larger than MaxFileBytes is refused without being
// read whole.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	tooBig := func(size string) error {
		return Errors{{File: path, Msg: fmt.Sprintf("the config file is %s; a config may be at most 1 MiB (is this the right file?)", size)}}
	}
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxFileBytes {
		return nil, tooBig(fmt.Sprintf("%.1f MiB (%d bytes)", float64(st.Size())/(1<<20), st.Size()))
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(data) > MaxFileBytes {
		return nil, tooBig("larger than 1 MiB")
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load on bytes already read; lookup resolves ${VAR}.
func Parse(file string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	cfg := Default()
	cfg.File = file
	d := &decoder{file: file, lookup: lookup, lines: map[string]int{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Errors{{File: file, Line: yamlErrLine(err), Msg: yamlSyntaxMsg(err)}}
	}
	if len(doc.Content) > 0 {
		d.walk(doc.Content[0], reflect.ValueOf(&cfg).Elem(), "")
	}
	cfg.lines = d.lines
	d.errs = append(d.errs, cfg.validate(d.lines)...)
	if len(d.errs) > 0 {
		sort.SliceStable(d.errs, func(i, j int) bool {
			a, b := d.errs[i].Line, d.errs[j].Line
			if a == 0 {
				a = 1 << 30
			}
			if b == 0 {
				b = 1 << 30
			}
			return a < b
		})
		return nil, d.errs
	}
	return &cfg, nil
}

var yamlLineRe = regexp.MustCompile(`line (\d+)`)

// yamlSyntaxMsg is a YAML syntax error without the "yaml: line N:" its
// FILE:LINE prefix already says.
func yamlSyntaxMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = yamlLinePrefixRe.ReplaceAllString(msg, "")
	return "YAML syntax: " + msg
}

var yamlLinePrefixRe = regexp.MustCompile(`^line \d+: `)

func yamlErrLine(err error) int {
	m := yamlLineRe.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

type decoder struct {
	file   string
	lookup func(string) (string, bool)
	errs   Errors
	lines  map[string]int // key path → line, for validation messages
}

func (d *decoder) fail(line int, path, format string, args ...any) {
	d.errs = append(d.errs, Error{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// walk decodes node into v, reporting unknown keys, type errors and
// unresolved variables with their lines, and carrying on after each.
func (d *decoder) walk(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if _, set := d.lines[path]; path != "" && !set {
		d.lines[path] = n.Line // a list item; a key's own line is set already
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value keeps the default
	}
	// Custom scalars (Size, Duration, Secret) and plain scalars decode directly.
	if _, ok := v.Addr().Interface().(yaml.Unmarshaler); ok || isScalarKind(v.Kind()) {
		d.leaf(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.fail(n.Line, path, "expected a mapping of keys, got %s", kindName(n))
			return
		}
		fields := structFields(v.Type())
		first := map[string]int{} // key → line of its first occurrence
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			idx, ok := fields[k.Value]
			kp := join(path, k.Value)
			if l, dup := first[k.Value]; dup {
				d.fail(k.Line, kp, "given twice in one mapping (first at line %d): remove one", l)
				continue
			}
			first[k.Value] = k.Line
			if !ok {
				d.fail(k.Line, kp, "unknown key (known keys: %s)", strings.Join(sortedKeys(fields), ", "))
				continue
			}
			d.lines[kp] = k.Line
			d.walk(val, v.Field(idx), kp)
		}
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
			if def, ok := pointerDefault(v.Type().Elem()); ok {
				v.Elem().Set(def)
			}
		}
		d.walk(n, v.Elem(), path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n.Line, path, "expected a list, got %s", kindName(n))
			return
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			elem := out.Index(i)
			if def, ok := pointerDefault(elem.Type()); ok {
				elem.Set(def)
			}
			d.walk(item, elem, fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(out)
	default:
		d.fail(n.Line, path, "unsupported type %s", v.Type())
	}
}

func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n.Line, path, "expected a single value, got %s", kindName(n))
		return
	}
	val, ok := d.expand(n, path)
	if !ok {
		return
	}
	c := *n
	c.Value = val
	if val != n.Value && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		c.Tag = "" // an unquoted ${VAR} resolves as if its value were written in place
	}
	if err := c.Decode(v.Addr().Interface()); err != nil {
		msg := err.Error()
		var te *yaml.TypeError
		if errors.As(err, &te) {
			// yaml's own words ("cannot unmarshal !!str `lots` into int")
			// are its internals: say what was expected instead.
			msg = fmt.Sprintf("%q is not %s", val, expected(v.Kind()))
		}
		d.fail(n.Line, path, "%s", msg)
	}
}

// expected names what a scalar of kind k must look like.
func expected(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number of 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "text (quote it)"
	}
	return "a value of type " + k.String()
}

var envRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expand replaces ${VAR} and ${VAR:-default} in a scalar.
func (d *decoder) expand(n *yaml.Node, path string) (string, bool) {
	ok := true
	out := envRe.ReplaceAllStringFunc(n.Value, func(m string) string {
		sub := envRe.FindStringSubmatch(m)
		if v, set := d.lookup(sub[1]); set {
			return v
		}
		if sub[2] != "" {
			return sub[3]
		}
		d.fail(n.Line, path, "environment variable %s is not set (export it, or write ${%s:-default})", sub[1], sub[1])
		ok = false
		return ""
	})
	return out, ok
}

func isScalarKind(k reflect.Kind) bool {
	switch k {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.String:
		return true
	}
	return false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

func structFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		m[tag] = i
	}
	return m
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// pointerDefault returns the defaults for blocks that are allocated while
// decoding: sink entries and their type-specific blocks.
func pointerDefault(t reflect.Type) (reflect.Value, bool) {
	switch t {
	case reflect.TypeFor[Sink]():
		return reflect.ValueOf(Sink{Backoff: DefaultBackoff()}), true
	case reflect.TypeFor[FileSink]():
		return reflect.ValueOf(DefaultFileSink()), true
	case reflect.TypeFor[Kafka]():
		// No default broker: a sink must say where to send.
		k := DefaultKafka()
		k.Brokers = nil
		return reflect.ValueOf(k), true
	case reflect.TypeFor[Elasticsearch]():
		e := DefaultElasticsearch()
		e.Addresses = nil
		return reflect.ValueOf(e), true
	}
	return reflect.Value{}, false
}
