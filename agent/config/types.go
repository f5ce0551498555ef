package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Size is a byte count written as an integer or with a KiB, MiB or GiB suffix
// (also KB/MB/GB, meaning the same binary units, and B).
type Size int64

// UnmarshalYAML parses "16MiB", "1GiB", "512KiB" or a plain integer.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalYAML writes the size back in its largest exact unit.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

func (s Size) String() string {
	units := []struct {
		suf string
		n   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if s != 0 && int64(s)%u.n == 0 {
			return strconv.FormatInt(int64(s)/u.n, 10) + u.suf
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// ParseSize parses a size such as "1GiB".
func ParseSize(v string) (Size, error) {
	t := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suf string
		n   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suf) {
			mult = u.n
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suf))
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q: use a whole number with KiB, MiB or GiB, e.g. 16MiB", v)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is too large", v)
	}
	return Size(n * mult), nil
}

// Duration is a time.Duration written in Go's syntax ("500ms", "1s", "2m").
type Duration time.Duration

// UnmarshalYAML parses a Go duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("invalid duration %q: use Go syntax such as 500ms, 10s or 1m", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration in Go syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// FileMode is a file permission written in octal: 0640, "0640" or 0o640.
type FileMode uint32

// UnmarshalYAML parses an octal permission.
func (m *FileMode) UnmarshalYAML(n *yaml.Node) error {
	v := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(n.Value), "0o"), "0O")
	u, err := strconv.ParseUint(v, 8, 32)
	if err != nil || u > 0o7777 {
		return fmt.Errorf("invalid file mode %q: write it in octal, e.g. 0600 or 0640", n.Value)
	}
	*m = FileMode(u)
	return nil
}

// MarshalYAML writes the mode in octal.
func (m FileMode) MarshalYAML() (any, error) { return m.String(), nil }

func (m FileMode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// Secret is a string that never prints: logs and check-config show "<redacted>".
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// GoString keeps %#v from leaking the value.
func (s Secret) GoString() string { return s.String() }

// MarshalYAML redacts the value.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// Value returns the secret itself, for the code that must use it.
func (s Secret) Value() string { return string(s) }
