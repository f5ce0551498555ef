package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// loaderKey is one key the loader accepts, as a path such as agent.name or
// sinks[].kafka.brokers, with the reflect type of its value.
type loaderKey struct {
	path string
	t    reflect.Type
	// field locates the value in a Config (through sinks[0] for sinks[]).
	index [][]int
}

// loaderKeys walks the config structs' yaml tags exactly as the loader's
// decoder does (structFields): structs are mappings of their tagged fields,
// pointers are their element, a list of structs is written key[]. A leaf is
// anything the decoder reads as one value: a scalar, a custom scalar (Size,
// Duration, Secret) or a list of scalars.
func loaderKeys() []loaderKey {
	var out []loaderKey
	var walk func(t reflect.Type, path string, index [][]int)
	walk = func(t reflect.Type, path string, index [][]int) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if isLeafType(t) {
			out = append(out, loaderKey{path: path, t: t, index: index})
			return
		}
		switch t.Kind() {
		case reflect.Struct:
			fields := structFields(t)
			for _, name := range sortedKeys(fields) {
				i := fields[name]
				walk(t.Field(i).Type, join(path, name), append(append([][]int{}, index...), []int{i}))
			}
		case reflect.Slice:
			walk(t.Elem(), path+"[]", append(append([][]int{}, index...), []int{-1}))
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func isLeafType(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(unmarshalerType) || isScalarKind(t.Kind()) {
		return true
	}
	return t.Kind() == reflect.Slice && isLeafType(t.Elem()) && t.Elem().Kind() != reflect.Struct
}

// typeName is how docs/configuration.md names a key's type.
func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Duration]():
		return "duration"
	case reflect.TypeFor[Size]():
		return "size"
	case reflect.TypeFor[Secret]():
		return "secret"
	case reflect.TypeFor[FileMode]():
		return "file mode"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		return "list of " + typeName(t.Elem()) + "s"
	}
	return strings.ToLower(t.String())
}

// docRow is one row of a key table in docs/configuration.md.
type docRow struct {
	line                        int
	key, typ, def, reload, what string
}

var (
	configDoc     = filepath.Join("..", "..", "docs", "configuration.md")
	exampleConfig = filepath.Join("..", "..", "config.example.yaml")
)

// docRows reads every table row whose first cell is a backquoted key.
func docRows(t *testing.T) []docRow {
	t.Helper()
	data, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	var rows []docRow
	for i, l := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(l, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(l), "|"), "|")
		if len(cells) != 5 {
			t.Errorf("%s:%d: a key row needs 5 cells (key, type, default, reload, what it does), has %d: %s", configDoc, i+1, len(cells), l)
			continue
		}
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		rows = append(rows, docRow{line: i + 1, key: strings.Trim(cells[0], "`"), typ: cells[1], def: cells[2], reload: cells[3], what: cells[4]})
	}
	return rows
}

// defaultAt returns the loader's default for k: the field in Default(), or
// for sinks[] keys the field of a sink entry as the decoder allocates it
// (pointerDefault), with its type-specific block allocated the same way.
func defaultAt(k loaderKey) reflect.Value {
	d := Default()
	v := reflect.ValueOf(&d).Elem()
	for _, idx := range k.index {
		if idx[0] == -1 {
			elem := reflect.New(v.Type().Elem()).Elem()
			if def, ok := pointerDefault(elem.Type()); ok {
				elem.Set(def)
			}
			v = elem
			continue
		}
		v = v.Field(idx[0])
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				n := reflect.New(v.Type().Elem())
				if def, ok := pointerDefault(v.Type().Elem()); ok {
					n.Elem().Set(def)
				}
				v = n
			}
			v = v.Elem()
		}
	}
	return v
}

var leadingLiteral = regexp.MustCompile("^`([^`]*)`")

// TestConfigurationDoc holds docs/configuration.md to the loader: every key
// the loader accepts has exactly one row and every row is a key it accepts;
// the type is right; reload says restart or reload (SIGHUP); and a default
// written as a leading literal decodes to the loader's default.
func TestConfigurationDoc(t *testing.T) {
	keys := loaderKeys()
	if len(keys) < 90 {
		t.Fatalf("the key walk found only %d keys", len(keys))
	}
	byPath := map[string]loaderKey{}
	for _, k := range keys {
		byPath[k.path] = k
	}
	rows := docRows(t)
	seen := map[string]int{}
	for _, r := range rows {
		where := fmt.Sprintf("%s:%d: %s", configDoc, r.line, r.key)
		if prev, dup := seen[r.key]; dup {
			t.Errorf("%s: documented twice (also line %d)", where, prev)
		}
		seen[r.key] = r.line
		k, ok := byPath[r.key]
		if !ok {
			t.Errorf("%s: documented, but the loader accepts no such key", where)
			continue
		}
		if want := typeName(k.t); r.typ != want {
			t.Errorf("%s: type %q, the loader's is %q", where, r.typ, want)
		}
		if r.reload != "restart" && r.reload != "reload (SIGHUP)" {
			t.Errorf("%s: reload %q is neither restart nor reload (SIGHUP)", where, r.reload)
		}
		if r.def == "" || r.what == "" {
			t.Errorf("%s: default and description must not be empty", where)
		}
		m := leadingLiteral.FindStringSubmatch(r.def)
		if m == nil {
			if r.def != "required" {
				t.Errorf("%s: default %q must start with a `literal`, or be required", where, r.def)
			}
			continue
		}
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(m[1]), &n); err != nil {
			t.Errorf("%s: default %q is not YAML: %v", where, m[1], err)
			continue
		}
		got := reflect.New(k.t)
		if len(n.Content) > 0 {
			if err := n.Content[0].Decode(got.Interface()); err != nil {
				t.Errorf("%s: default %q does not decode as %s: %v", where, m[1], typeName(k.t), err)
				continue
			}
		}
		want := defaultAt(k)
		if !sameValue(got.Elem(), want) {
			t.Errorf("%s: documented default %s, the loader's is %v", where, m[1], want.Interface())
		}
	}
	for _, k := range keys {
		if _, ok := seen[k.path]; !ok {
			t.Errorf("%s: the loader accepts %s (%s), but it has no row", configDoc, k.path, typeName(k.t))
		}
	}
}

// sameValue compares two values, treating nil and empty lists as equal.
func sameValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// TestConfigurationDocExample loads the example of docs/configuration.md.
func TestConfigurationDocExample(t *testing.T) {
	data, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "## Example")
	if !ok {
		t.Fatal("docs/configuration.md has no ## Example")
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("the example has no ```yaml block")
	}
	if _, err := Parse("configuration.md example", []byte(block), env(map[string]string{"KAFKA_PASSWORD": "p"})); err != nil {
		t.Fatalf("the documented example does not load:\n%v", err)
	}
}

// commentedKeyRe matches a commented-out line of YAML: "# key:" or "# - key:"
// after any indentation, as config.example.yaml writes optional keys.
var commentedKeyRe = regexp.MustCompile(`^(\s*)# ?(\s*(?:- )?[a-z_]+:(?:\s.*)?)$`)

// keyPaths lists the key paths written in a YAML document, as loaderKeys
// names them (lists of mappings as key[]).
func keyPaths(n *yaml.Node, path string, out map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			keyPaths(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			keyPaths(n.Content[i+1], join(path, n.Content[i].Value), out)
		}
	case yaml.SequenceNode:
		mappings := false
		for _, c := range n.Content {
			if c.Kind == yaml.MappingNode {
				mappings = true
				keyPaths(c, path+"[]", out)
			}
		}
		if !mappings {
			out[path] = n.Line
		}
	default:
		out[path] = n.Line
	}
}

// TestExampleConfigShowsEveryKey: config.example.yaml, with its commented-out
// keys uncommented, names every key the loader accepts and nothing else.
// (TestExampleConfigLoads loads it as it is.)
func TestExampleConfigShowsEveryKey(t *testing.T) {
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if m := commentedKeyRe.FindStringSubmatch(l); m != nil {
			lines[i] = m[1] + m[2]
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(strings.Join(lines, "\n")), &doc); err != nil {
		t.Fatalf("config.example.yaml with its optional keys uncommented is not YAML: %v", err)
	}
	written := map[string]int{}
	keyPaths(&doc, "", written)
	want := map[string]bool{}
	for _, k := range loaderKeys() {
		want[k.path] = true
		if _, ok := written[k.path]; !ok {
			t.Errorf("config.example.yaml does not show %s (%s), not even commented out", k.path, typeName(k.t))
		}
	}
	for p, line := range written {
		if !want[p] {
			t.Errorf("config.example.yaml:%d: %s is not a key the loader accepts", line, p)
		}
	}
}
