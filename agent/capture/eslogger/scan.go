package eslogger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// SyntaxError is returned by Parse for a line that is not a well-formed
// eslogger message: broken JSON, a value of the wrong type for a field the
// parser reads, or a missing event object. Offset is the byte offset in the
// line where the problem was found.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("eslogger: malformed message at byte %d: %s", e.Offset, e.Msg)
}

// maxDepth bounds the nesting the skipper accepts (a bit per level).
const maxDepth = 64

// scanner walks one JSON line. Errors are sticky: the first failure records a
// SyntaxError and moves the cursor to the end, so every later call fails fast
// and loops end. Nothing here panics on any input.
type scanner struct {
	b   []byte
	i   int
	err *SyntaxError
	buf []byte // scratch for unescaping
}

func (s *scanner) reset(b []byte) {
	s.b, s.i, s.err = b, 0, nil
}

func (s *scanner) fail(msg string) {
	if s.err == nil {
		s.err = &SyntaxError{Offset: s.i, Msg: msg}
	}
	s.i = len(s.b)
}

func (s *scanner) ws() {
	b, i := s.b, s.i
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	s.i = i
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	b, i := s.b, s.i
	for i < len(b) {
		c := b[i]
		if c > ' ' {
			s.i = i
			return c
		}
		if c != ' ' && c != '\n' && c != '\t' && c != '\r' {
			s.i = i
			return c
		}
		i++
	}
	s.i = i
	return 0
}

// enterObject consumes '{'.
func (s *scanner) enterObject() bool {
	if s.peek() == '{' {
		s.i++
		return true
	}
	s.fail("expected object")
	return false
}

// null consumes a JSON null if it is next and reports whether it did.
func (s *scanner) null() bool {
	if s.peek() == 'n' {
		if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
			s.i += 4
			return true
		}
		s.fail("invalid literal")
	}
	return false
}

// nextKey moves to the next member of the current object (n is the member's
// index, 0 for the first) and returns its raw key. It returns ok=false after
// consuming the closing '}', or on error.
func (s *scanner) nextKey(n int) (key []byte, ok bool) {
	b, i := s.b, s.i
	start := -1
	// eslogger writes `, "` (pretty) or `,"` (compact, as macOS's eslogger
	// does) between members and `{"` at the start: one 32-bit load tells
	// them (the general path takes the last bytes of a line).
	if i+4 <= len(b) {
		w := binary.LittleEndian.Uint32(b[i:])
		switch {
		case n == 0:
			if byte(w) == '"' {
				start = i + 1
			}
		case w&0xffffff == ','|' '<<8|'"'<<16:
			start = i + 3
		case w&0xffff == ','|'"'<<8:
			start = i + 2
		}
	}
	if start < 0 {
		if start, ok = s.keyStart(n); !ok {
			return nil, false
		}
	}
	// Keys are short and never escaped in eslogger output: the closing quote
	// is usually within three SWAR words; anything else takes stringEnd.
	end := -1
	if start+24 <= len(b) {
		q := b[start : start+24 : start+24]
		if m := zeroMask(binary.LittleEndian.Uint64(q) ^ quotes); m != 0 {
			end = start + bits.TrailingZeros64(m)>>3
		} else if m := zeroMask(binary.LittleEndian.Uint64(q[8:]) ^ quotes); m != 0 {
			end = start + 8 + bits.TrailingZeros64(m)>>3
		} else if m := zeroMask(binary.LittleEndian.Uint64(q[16:]) ^ quotes); m != 0 {
			end = start + 16 + bits.TrailingZeros64(m)>>3
		}
		// The first quote ends the key unless a backslash precedes it
		// (b[start-1] is the opening quote).
		if end >= 0 && b[end-1] == '\\' {
			end = -1
		}
	}
	if end < 0 {
		end = stringEnd(b, start)
	}
	if end < 0 {
		s.i = start - 1
		s.fail("unterminated key")
		return nil, false
	}
	key = b[start:end]
	// The separator is ':' or ': ' in eslogger output.
	i = end + 1
	if i < len(b) && b[i] == ':' {
		s.i = i + 1
		return key, true
	}
	if i+1 < len(b) && b[i] == ' ' && b[i+1] == ':' {
		s.i = i + 2
		return key, true
	}
	s.i = i
	if s.peek() != ':' {
		s.fail("expected ':' after key")
		return nil, false
	}
	s.i++
	return key, true
}

// keyStart is nextKey's general path to the opening quote of a key: it
// returns the index after the quote, or ok=false at '}' (consumed) or on error.
func (s *scanner) keyStart(n int) (start int, ok bool) {
	c := s.peek()
	if c == '}' {
		s.i++
		return 0, false
	}
	if n > 0 {
		if c != ',' {
			s.fail("expected ',' or '}' in object")
			return 0, false
		}
		s.i++
		c = s.peek()
	}
	if c != '"' {
		s.fail("expected object key")
		return 0, false
	}
	return s.i + 1, true
}

// SWAR constants: zeroMask(x ^ c*lsb) has the high bit set in each byte of x
// equal to c (exactly for the lowest such byte, which is all we use).
const (
	lsb         = 0x0101010101010101
	msb         = 0x8080808080808080
	quotes      = '"' * lsb
	backslashes = '\\' * lsb
	opens       = '{' * lsb // '[' | 0x20 == '{'
	closes      = '}' * lsb // ']' | 0x20 == '}'
	lower       = 0x20 * lsb
)

func zeroMask(v uint64) uint64 { return (v - lsb) &^ v & msb }

// stringEnd returns the index of the quote that closes the string whose
// contents start at i, or -1. It looks for quotes only: in the first 72
// bytes by SWAR, 8 at a time (most strings end there), then with
// bytes.IndexByte (SIMD), and a quote is escaped exactly when an odd run of backslashes precedes it
// (within the string). That is the same answer as walking the string and
// skipping the byte after each backslash, because the run starts where an
// escape may start.
func stringEnd(b []byte, i int) int {
	start := i
	for {
		j := -1
		// Most strings (keys, ids, timestamps, short paths) end within a few
		// words: SWAR is cheaper than a call there; long ones take IndexByte.
		lim := min(len(b)-8, i+64)
		for ; i <= lim; i += 8 {
			if m := zeroMask(binary.LittleEndian.Uint64(b[i:]) ^ quotes); m != 0 {
				j = i + bits.TrailingZeros64(m)>>3
				break
			}
		}
		if j < 0 {
			k := bytes.IndexByte(b[i:], '"')
			if k < 0 {
				return -1
			}
			j = i + k
		}
		if j == start || b[j-1] != '\\' {
			return j
		}
		n := 1
		for j-n-1 >= start && b[j-n-1] == '\\' {
			n++
		}
		if n&1 == 0 {
			return j
		}
		i = j + 1
	}
}

// rawString reads a string value and returns its decoded bytes, which alias
// the line or the scanner's scratch buffer and are valid until the next call.
func (s *scanner) rawString() ([]byte, bool) {
	if s.peek() != '"' {
		s.fail("expected string")
		return nil, false
	}
	start := s.i + 1
	end := stringEnd(s.b, start)
	if end < 0 {
		s.fail("unterminated string")
		return nil, false
	}
	s.i = end + 1
	v := s.b[start:end]
	if bytes.IndexByte(v, '\\') < 0 {
		return v, true
	}
	out, ok := unescape(s.buf[:0], v)
	s.buf = out
	if !ok {
		s.i = start
		s.fail("invalid escape in string")
		return nil, false
	}
	return out, true
}

// appendString reads a string value and appends its decoded bytes to dst.
// It unescapes straight into dst, without the scratch buffer.
func (s *scanner) appendString(dst []byte) ([]byte, bool) {
	if s.peek() != '"' {
		s.fail("expected string")
		return dst, false
	}
	start := s.i + 1
	end := stringEnd(s.b, start)
	if end < 0 {
		s.fail("unterminated string")
		return dst, false
	}
	s.i = end + 1
	v := s.b[start:end]
	if bytes.IndexByte(v, '\\') < 0 {
		return append(dst, v...), true
	}
	n := len(dst)
	out, ok := unescape(dst, v)
	if !ok {
		s.i = start
		s.fail("invalid escape in string")
		return out[:n], false
	}
	return out, true
}

func unhex(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		h := unhex(c)
		if h < 0 {
			return -1
		}
		r = r<<4 | h
	}
	return r
}

// unescape decodes the JSON escapes of v (the bytes between the quotes) into
// dst. The decoded form is never longer than v (an escape of 2, 6 or 12 bytes
// becomes 1 to 4), so it writes into dst's spare room at once: runs without a
// backslash 8 bytes at a time (eslogger escapes every '/' of a path, so runs
// are short and a call per run would cost more than the run).
func unescape(dst, v []byte) ([]byte, bool) {
	n := len(dst)
	dst = slices.Grow(dst, len(v))
	out := dst[n : n+len(v)]
	i, k := 0, 0
	for {
		// k <= i always, so out[k:k+8] is inside out whenever v[i:i+8] is in v.
		for i+8 <= len(v) {
			w := binary.LittleEndian.Uint64(v[i:])
			binary.LittleEndian.PutUint64(out[k:], w)
			if m := zeroMask(w ^ backslashes); m != 0 {
				j := bits.TrailingZeros64(m) >> 3
				i += j
				k += j
				break
			}
			i += 8
			k += 8
		}
		for i < len(v) && v[i] != '\\' {
			out[k] = v[i]
			i++
			k++
		}
		if i == len(v) {
			return dst[:n+k], true
		}
		if i+1 >= len(v) {
			return dst[:n+k], false
		}
		switch c := v[i+1]; c {
		case '"', '\\', '/':
			out[k] = c
			k++
			i += 2
		case 'b':
			out[k] = '\b'
			k++
			i += 2
		case 'f':
			out[k] = '\f'
			k++
			i += 2
		case 'n':
			out[k] = '\n'
			k++
			i += 2
		case 'r':
			out[k] = '\r'
			k++
			i += 2
		case 't':
			out[k] = '\t'
			k++
			i += 2
		case 'u':
			r := hex4(v[i+2:])
			if r < 0 {
				return dst[:n+k], false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(v)-i >= 6 && v[i] == '\\' && v[i+1] == 'u' {
					r2 = hex4(v[i+2:])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					i += 6
					r = d
				} else {
					r = utf8.RuneError
				}
			}
			// At most 3 bytes for the 6 read, 4 for a pair's 12.
			k += utf8.EncodeRune(out[k:], r)
		default:
			return dst[:n+k], false
		}
	}
}

// skipValue skips any JSON value. Strings are jumped with stringEnd, flat
// containers of 32 bytes or more with skipFlat's SIMD scans, and the rest by
// depth counting with a bit stack that checks bracket pairs.
func (s *scanner) skipValue() {
	c := s.peek()
	switch {
	case c == '"':
		end := stringEnd(s.b, s.i+1)
		if end < 0 {
			s.fail("unterminated string")
			return
		}
		s.i = end + 1
	case c == '{' || c == '[':
		s.skipComposite()
	case c == 't':
		s.literal("true")
	case c == 'f':
		s.literal("false")
	case c == 'n':
		s.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		s.skipNumber()
	case c == 0:
		s.fail("unexpected end of input")
	default:
		s.fail("unexpected character")
	}
}

func (s *scanner) literal(lit string) {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return
	}
	s.fail("invalid literal")
}

func (s *scanner) skipNumber() {
	b := s.b
	i := s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	for i < len(b) {
		c := b[i]
		if ('0' <= c && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
			i++
			continue
		}
		break
	}
	if i == start {
		s.fail("invalid number")
		return
	}
	s.i = i
}

func (s *scanner) skipComposite() {
	b := s.b
	i := s.i
	if end, ok := skipFlat(b, i); ok {
		s.i = end
		return
	}
	var stack uint64 // bit set = '{'
	depth := 0
	for i < len(b) {
		if i+8 <= len(b) {
			// Jump 8 bytes at a time to the next quote or bracket.
			x := binary.LittleEndian.Uint64(b[i:])
			y := x | lower
			m := zeroMask(x^quotes) | zeroMask(y^opens) | zeroMask(y^closes)
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		switch c := b[i]; c {
		case '"':
			end := stringEnd(b, i+1)
			if end < 0 {
				s.i = i
				s.fail("unterminated string")
				return
			}
			i = end + 1
			continue
		case '{', '[':
			if depth == maxDepth {
				s.i = i
				s.fail("nesting too deep")
				return
			}
			if depth > 0 {
				// A nested flat composite (the stat of a skipped file)
				// ends where the walk would end it.
				if end, ok := skipFlat(b, i); ok {
					i = end
					continue
				}
			}
			stack <<= 1
			if c == '{' {
				stack |= 1
			}
			depth++
		case '}', ']':
			if depth == 0 || (stack&1 == 1) != (c == '}') {
				s.i = i
				s.fail("mismatched bracket")
				return
			}
			stack >>= 1
			depth--
			if depth == 0 {
				s.i = i + 1
				return
			}
		}
		i++
	}
	s.i = i
	s.fail("unexpected end of input")
}

// flatMin is the size from which skipFlat pays for its scans.
const flatMin = 32

// skipFlat skips a long composite that holds no nested composite and no
// escape (an es_file_t's stat, an audit token array) with a few SIMD scans
// instead of a walk. b[i] is '{' or '['. The first closing bracket of the same
// kind ends the composite when the bytes before it hold no opening bracket,
// no closing bracket of the other kind, no backslash and an even number of
// quotes: the quotes then pair up into strings that hold no bracket, so the
// exact skipper (skipComposite's walk) would stop at the same byte. Anything
// else returns ok=false and the walk decides, errors included.
func skipFlat(b []byte, i int) (end int, ok bool) {
	closer, other := byte('}'), byte(']')
	if b[i] == '[' {
		closer, other = ']', '}'
	}
	r := b[i+1:]
	k := bytes.IndexByte(r, closer)
	if k < flatMin {
		return 0, false
	}
	r = r[:k]
	if bytes.IndexByte(r, '{') >= 0 || bytes.IndexByte(r, '[') >= 0 || bytes.IndexByte(r, other) >= 0 ||
		bytes.IndexByte(r, '\\') >= 0 || bytes.Count(r, []byte{'"'})&1 != 0 {
		return 0, false
	}
	return i + 1 + k + 1, true
}

// uint reads a non-negative integer.
func (s *scanner) uint() uint64 {
	c := s.peek()
	if c < '0' || c > '9' {
		s.fail("expected unsigned integer")
		return 0
	}
	b := s.b
	i := s.i
	var v uint64
	// Up to 19 digits cannot overflow: no check per digit.
	d := b[i:min(len(b), i+19)]
	k := 0
	for k < len(d) && d[k]-'0' <= 9 {
		v = v*10 + uint64(d[k]-'0')
		k++
	}
	fast := i + k
	if fast-i < 19 || fast == len(b) || b[fast]-'0' > 9 {
		i = fast
		if i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E') {
			s.i = i
			s.fail("expected integer")
			return 0
		}
		s.i = i
		return v
	}
	v = 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		d := uint64(b[i] - '0')
		if v > (1<<64-1-d)/10 {
			s.fail("integer overflow")
			return 0
		}
		v = v*10 + d
		i++
	}
	if i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E') {
		s.i = i
		s.fail("expected integer")
		return 0
	}
	s.i = i
	return v
}

// int reads a signed integer that fits int64.
func (s *scanner) int() int64 {
	neg := false
	if s.peek() == '-' {
		neg = true
		s.i++
	}
	u := s.uint()
	if s.err != nil {
		return 0
	}
	if neg {
		if u > 1<<63 {
			s.fail("integer overflow")
			return 0
		}
		return -int64(u)
	}
	if u > 1<<63-1 {
		s.fail("integer overflow")
		return 0
	}
	return int64(u)
}

// uint32v reads an integer that must fit uint32.
func (s *scanner) uint32v() uint32 {
	v := s.uint()
	if v > 1<<32-1 {
		s.fail("integer out of range")
		return 0
	}
	return uint32(v)
}

func (s *scanner) bool() bool {
	switch s.peek() {
	case 't':
		s.literal("true")
		return true
	case 'f':
		s.literal("false")
		return false
	}
	s.fail("expected boolean")
	return false
}

// timeNS reads an RFC 3339 timestamp string into Unix nanoseconds. A null
// gives 0.
func (s *scanner) timeNS() int64 {
	if s.null() {
		return 0
	}
	start := s.i
	// eslogger's timestamps have no escapes: try the raw bytes first. When
	// fastTime accepts them they hold no backslash, so they are the decoded
	// string too.
	if b := s.b; start < len(b) && b[start] == '"' {
		if end := stringEnd(b, start+1); end >= 0 {
			if ns, ok := fastTime(b[start+1 : end]); ok {
				s.i = end + 1
				return ns
			}
		}
	}
	v, ok := s.rawString()
	if !ok {
		return 0
	}
	if ns, ok := fastTime(v); ok {
		return ns
	}
	t, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil {
		s.i = start
		s.fail("invalid timestamp")
		return 0
	}
	return t.UnixNano()
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// fastTime parses "YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z", the form eslogger writes.
// Anything else returns ok=false and goes through time.Parse.
func fastTime(b []byte) (int64, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return 0, false
	}
	// Unrolled two-digit fields: each byte minus '0' must be at most 9.
	y1, y2, y3, y4 := b[0]-'0', b[1]-'0', b[2]-'0', b[3]-'0'
	m1, m2, d1, d2 := b[5]-'0', b[6]-'0', b[8]-'0', b[9]-'0'
	h1, h2, i1, i2 := b[11]-'0', b[12]-'0', b[14]-'0', b[15]-'0'
	s1, s2 := b[17]-'0', b[18]-'0'
	if y1 > 9 || y2 > 9 || y3 > 9 || y4 > 9 || m1 > 9 || m2 > 9 || d1 > 9 || d2 > 9 ||
		h1 > 9 || h2 > 9 || i1 > 9 || i2 > 9 || s1 > 9 || s2 > 9 {
		return 0, false
	}
	y := int(y1)*1000 + int(y2)*100 + int(y3)*10 + int(y4)
	mo, d := int(m1)*10+int(m2), int(d1)*10+int(d2)
	h, mi, se := int(h1)*10+int(h2), int(i1)*10+int(i2), int(s1)*10+int(s2)
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(mo, y) || h > 23 || mi > 59 || se > 59 {
		return 0, false
	}
	frac := 0
	rest := b[19 : len(b)-1]
	if len(rest) > 0 {
		if rest[0] != '.' || len(rest) < 2 || len(rest) > 10 {
			return 0, false
		}
		f, ok := digits(rest[1:])
		if !ok {
			return 0, false
		}
		for n := len(rest) - 1; n < 9; n++ {
			f *= 10
		}
		frac = f
	}
	days := daysFromCivil(y, mo, d)
	return (days*86400+int64(h*3600+mi*60+se))*1e9 + int64(frac), true
}

func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is Howard Hinnant's algorithm: days since 1970-01-01.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
