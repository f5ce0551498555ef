package eslogger

// This file is a frozen copy of the eslogger parser as it was before the
// throughput work of issue 6 (commit 4c12566: scan.go and parser.go), renamed
// with a ref prefix. It is the oracle for TestParseMatchesReference and
// FuzzParseMatchesReference: the fast parser must give the same result, byte
// for byte, on every input (the same event, the same mapped flag, and the same
// error text with the same offset). Do not change it to make a test pass; a
// deliberate change of output is a change of this oracle and of the goldens
// in testdata/golden, reviewed as such.

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/fileward/fileward/schema"
)

// refMaxDepth bounds the nesting the skipper accepts (a bit per level).
const refMaxDepth = 64

// refScanner walks one JSON line. Errors are sticky: the first failure records a
// SyntaxError and moves the cursor to the end, so every later call fails fast
// and loops end. Nothing here panics on any input.
type refScanner struct {
	b   []byte
	i   int
	err *SyntaxError
	buf []byte // scratch for unescaping
}

func (s *refScanner) reset(b []byte) {
	s.b, s.i, s.err = b, 0, nil
}

func (s *refScanner) fail(msg string) {
	if s.err == nil {
		s.err = &SyntaxError{Offset: s.i, Msg: msg}
	}
	s.i = len(s.b)
}

func (s *refScanner) ws() {
	b, i := s.b, s.i
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	s.i = i
}

// peek returns the next non-space byte, or 0 at the end.
func (s *refScanner) peek() byte {
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
func (s *refScanner) enterObject() bool {
	if s.peek() == '{' {
		s.i++
		return true
	}
	s.fail("expected object")
	return false
}

// null consumes a JSON null if it is next and reports whether it did.
func (s *refScanner) null() bool {
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
func (s *refScanner) nextKey(n int) (key []byte, ok bool) {
	c := s.peek()
	if c == '}' {
		s.i++
		return nil, false
	}
	if n > 0 {
		if c != ',' {
			s.fail("expected ',' or '}' in object")
			return nil, false
		}
		s.i++
		c = s.peek()
	}
	if c != '"' {
		s.fail("expected object key")
		return nil, false
	}
	start := s.i + 1
	end := refStringEnd(s.b, start)
	if end < 0 {
		s.fail("unterminated key")
		return nil, false
	}
	key = s.b[start:end]
	s.i = end + 1
	if s.peek() != ':' {
		s.fail("expected ':' after key")
		return nil, false
	}
	s.i++
	return key, true
}

// SWAR constants: refZeroMask(x ^ c*refLSB) has the high bit set in each byte of x
// equal to c (exactly for the lowest such byte, which is all we use).
const (
	refLSB         = 0x0101010101010101
	refMSB         = 0x8080808080808080
	refQuotes      = '"' * refLSB
	refBackslashes = '\\' * refLSB
	refOpens       = '{' * refLSB // '[' | 0x20 == '{'
	refCloses      = '}' * refLSB // ']' | 0x20 == '}'
	refLower       = 0x20 * refLSB
)

func refZeroMask(v uint64) uint64 { return (v - refLSB) &^ v & refMSB }

// refStringEnd returns the index of the quote that refCloses the string whose
// contents start at i, or -1. It tests 8 bytes at a time for '"' or '\\'.
func refStringEnd(b []byte, i int) int {
	for i < len(b) {
		if i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			m := refZeroMask(x^refQuotes) | refZeroMask(x^refBackslashes)
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		switch b[i] {
		case '"':
			return i
		case '\\':
			i += 2 // the escaped byte cannot end the string
		default:
			i++
		}
	}
	return -1
}

// rawString reads a string value and returns its decoded bytes, which alias
// the line or the refScanner's scratch buffer and are valid until the next call.
func (s *refScanner) rawString() ([]byte, bool) {
	if s.peek() != '"' {
		s.fail("expected string")
		return nil, false
	}
	start := s.i + 1
	end := refStringEnd(s.b, start)
	if end < 0 {
		s.fail("unterminated string")
		return nil, false
	}
	s.i = end + 1
	v := s.b[start:end]
	if bytes.IndexByte(v, '\\') < 0 {
		return v, true
	}
	out, ok := refUnescape(s.buf[:0], v)
	s.buf = out
	if !ok {
		s.i = start
		s.fail("invalid escape in string")
		return nil, false
	}
	return out, true
}

// appendString reads a string value and appends its decoded bytes to dst.
func (s *refScanner) appendString(dst []byte) ([]byte, bool) {
	v, ok := s.rawString()
	if !ok {
		return dst, false
	}
	return append(dst, v...), true
}

func refUnhex(c byte) rune {
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

func refHex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		h := refUnhex(c)
		if h < 0 {
			return -1
		}
		r = r<<4 | h
	}
	return r
}

// refUnescape decodes the JSON escapes of v (the bytes between the refQuotes) into dst.
func refUnescape(dst, v []byte) ([]byte, bool) {
	for len(v) > 0 {
		j := bytes.IndexByte(v, '\\')
		if j < 0 {
			return append(dst, v...), true
		}
		dst = append(dst, v[:j]...)
		v = v[j:]
		if len(v) < 2 {
			return dst, false
		}
		switch v[1] {
		case '"', '\\', '/':
			dst = append(dst, v[1])
			v = v[2:]
		case 'b':
			dst = append(dst, '\b')
			v = v[2:]
		case 'f':
			dst = append(dst, '\f')
			v = v[2:]
		case 'n':
			dst = append(dst, '\n')
			v = v[2:]
		case 'r':
			dst = append(dst, '\r')
			v = v[2:]
		case 't':
			dst = append(dst, '\t')
			v = v[2:]
		case 'u':
			r := refHex4(v[2:])
			if r < 0 {
				return dst, false
			}
			v = v[6:]
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(v) >= 6 && v[0] == '\\' && v[1] == 'u' {
					r2 = refHex4(v[2:])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					v = v[6:]
					r = d
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, false
		}
	}
	return dst, true
}

// skipValue skips any JSON value. Strings are jumped with IndexByte and
// containers by depth counting with a bit stack that checks bracket pairs.
func (s *refScanner) skipValue() {
	c := s.peek()
	switch {
	case c == '"':
		end := refStringEnd(s.b, s.i+1)
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

func (s *refScanner) literal(lit string) {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return
	}
	s.fail("invalid literal")
}

func (s *refScanner) skipNumber() {
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

func (s *refScanner) skipComposite() {
	b := s.b
	i := s.i
	var stack uint64 // bit set = '{'
	depth := 0
	for i < len(b) {
		if i+8 <= len(b) {
			// Jump 8 bytes at a time to the next quote or bracket.
			x := binary.LittleEndian.Uint64(b[i:])
			y := x | refLower
			m := refZeroMask(x^refQuotes) | refZeroMask(y^refOpens) | refZeroMask(y^refCloses)
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		switch c := b[i]; c {
		case '"':
			end := refStringEnd(b, i+1)
			if end < 0 {
				s.i = i
				s.fail("unterminated string")
				return
			}
			i = end + 1
			continue
		case '{', '[':
			if depth == refMaxDepth {
				s.i = i
				s.fail("nesting too deep")
				return
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

// uint reads a non-negative integer.
func (s *refScanner) uint() uint64 {
	c := s.peek()
	if c < '0' || c > '9' {
		s.fail("expected unsigned integer")
		return 0
	}
	b := s.b
	i := s.i
	var v uint64
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
func (s *refScanner) int() int64 {
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
func (s *refScanner) uint32v() uint32 {
	v := s.uint()
	if v > 1<<32-1 {
		s.fail("integer out of range")
		return 0
	}
	return uint32(v)
}

func (s *refScanner) bool() bool {
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
func (s *refScanner) timeNS() int64 {
	if s.null() {
		return 0
	}
	start := s.i
	v, ok := s.rawString()
	if !ok {
		return 0
	}
	if ns, ok := refFastTime(v); ok {
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

func refDigits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// refFastTime parses "YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z", the form eslogger writes.
// Anything else returns ok=false and goes through time.Parse.
func refFastTime(b []byte) (int64, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return 0, false
	}
	y, ok1 := refDigits(b[0:4])
	mo, ok2 := refDigits(b[5:7])
	d, ok3 := refDigits(b[8:10])
	h, ok4 := refDigits(b[11:13])
	mi, ok5 := refDigits(b[14:16])
	se, ok6 := refDigits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > refDaysIn(mo, y) || h > 23 || mi > 59 || se > 59 {
		return 0, false
	}
	frac := 0
	rest := b[19 : len(b)-1]
	if len(rest) > 0 {
		if rest[0] != '.' || len(rest) < 2 || len(rest) > 10 {
			return 0, false
		}
		f, ok := refDigits(rest[1:])
		if !ok {
			return 0, false
		}
		for n := len(rest) - 1; n < 9; n++ {
			f *= 10
		}
		frac = f
	}
	days := refDaysFromCivil(y, mo, d)
	return (days*86400+int64(h*3600+mi*60+se))*1e9 + int64(frac), true
}

func refDaysIn(m, y int) int {
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

// refDaysFromCivil is Howard Hinnant's algorithm: days since 1970-01-01.
func refDaysFromCivil(y, m, d int) int64 {
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

// refParser decodes eslogger JSON lines into schema.Event values. Parse must be
// called from one goroutine at a time; Stats may be called from any goroutine.
//
// It is a hand-written refScanner over the line bytes: it decodes only the fields
// the agent needs, skips the rest by bracket counting, and accepts keys in any
// order, unknown keys, escaped slashes, audit tokens as objects or as 8-integer
// arrays, and null signing or team ids.
type refParser struct {
	s refScanner

	// per-message scratch, reused
	target, source, dir, exe refFileInfo
	name                     []byte
	newName                  []byte
	extattr                  []byte
	fflag                    uint64
	modified, mappedWritable bool
	hasNewPath               bool
	execProc                 schema.Process
	execFile                 refFileInfo
	cwd                      refFileInfo
	args                     []string
	procs                    map[int32]procInfo

	intern map[string]string
	recent [256]string // direct-mapped cache in front of intern

	lines, mapped, unmapped, unknown, malformed atomic.Uint64
	mu                                          sync.Mutex
	unknownNames                                map[string]uint64
}

// refFileInfo is an es_file_t being decoded; path is a reused buffer.
type refFileInfo struct {
	set     bool
	path    []byte
	trunc   bool
	hasStat bool
	inode   uint64
	dev     uint64
	mode    uint32
	uid     uint32
	gid     uint32
	size    int64
	mtimeNS int64
}

func (f *refFileInfo) clear() {
	p := f.path[:0]
	*f = refFileInfo{path: p}
}

// newRefParser returns a refParser. The zero refParser is ready to use too.
func newRefParser() *refParser {
	return &refParser{intern: make(map[string]string, 256), unknownNames: make(map[string]uint64)}
}

// Stats returns a snapshot of the counters.
func (p *refParser) Stats() Stats {
	st := Stats{
		Lines: p.lines.Load(), Mapped: p.mapped.Load(), Unmapped: p.unmapped.Load(),
		Unknown: p.unknown.Load(), Malformed: p.malformed.Load(),
		UnknownByName: map[string]uint64{},
	}
	p.mu.Lock()
	for k, v := range p.unknownNames {
		st.UnknownByName[k] = v
	}
	p.mu.Unlock()
	return st
}

// refMaxIntern bounds the intern table; it is cleared when full.
const refMaxIntern = 4096

// str returns b as a string, shared with earlier equal strings for the
// low-cardinality process fields (executable, signing and team ids, cdhash).
func (p *refParser) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	// Most lines repeat the previous lines' executables and ids: a cheap
	// direct-mapped check avoids hashing the whole string.
	slot := &p.recent[(uint(len(b))*31^uint(b[len(b)-1])*7^uint(b[len(b)/2]))&255]
	if *slot == string(b) {
		return *slot
	}
	if p.intern == nil {
		p.intern = make(map[string]string, 256)
	}
	if s, ok := p.intern[string(b)]; ok {
		*slot = s
		return s
	}
	if len(p.intern) >= refMaxIntern {
		clear(p.intern)
	}
	s := string(b)
	p.intern[s] = s
	*slot = s
	return s
}

// Parse decodes one eslogger JSON line (with or without its trailing newline)
// into ev, which it resets first.
//
// mapped is true when the line is a file or exec event Fileward maps: ev is
// then complete except for CreatedNS, which the caller sets (Stream is the
// message's mach_time, see below), and,
// when !ev.HasGlobalSeq (message version < 4), Seq, which the caller sets to
// its own per-stream position (the runner uses the line number in the child's
// output). When HasGlobalSeq, Seq is global_seq_num.
//
// mapped is false with a nil error for a valid message that is not mapped
// (fork, exit, or an unknown event type; counted in Stats, not fatal). Even
// then ev.ESFEvent, ESFVersion, ESFSeqNum, GlobalSeq and HasGlobalSeq are set,
// so that the caller can still check sequence numbers.
//
// err is a *SyntaxError for a malformed line. Strings in ev never alias line.
//
// For exec, ev.Process is the new image (exec's target: same pid, new
// pidversion, new executable, code signature and args) and ev.Path is its
// executable; the parent pid is the target's parent.
func (p *refParser) Parse(line []byte, ev *schema.Event) (mapped bool, err error) {
	*ev = schema.Event{}
	p.lines.Add(1)
	p.target.clear()
	p.source.clear()
	p.dir.clear()
	p.execFile.clear()
	p.cwd.clear()
	p.execProc = schema.Process{}
	p.name = p.name[:0]
	p.newName = p.newName[:0]
	p.extattr = p.extattr[:0]
	p.fflag = 0
	p.modified, p.mappedWritable, p.hasNewPath = false, false, false
	p.args = nil

	s := &p.s
	s.reset(line)
	kind, sawEvent := p.message(ev)
	if s.err == nil {
		if s.ws(); s.i < len(s.b) {
			s.fail("trailing data after message")
		}
	}
	if s.err == nil && !sawEvent {
		s.i = 0
		s.fail("message has no event object")
	}
	if s.err != nil {
		p.malformed.Add(1)
		e := s.err
		s.err = nil
		*ev = schema.Event{}
		return false, e
	}
	ev.Provider = schema.ProviderEndpointSecurity
	if ev.HasGlobalSeq {
		ev.Seq = ev.GlobalSeq
	}
	switch kind {
	case kindUnknown:
		p.unknown.Add(1)
		p.mu.Lock()
		if p.unknownNames == nil {
			p.unknownNames = make(map[string]uint64)
		}
		if _, ok := p.unknownNames[ev.ESFEvent]; ok || len(p.unknownNames) < maxUnknownNames {
			p.unknownNames[ev.ESFEvent]++
		}
		p.mu.Unlock()
		return false, nil
	case kindUnmapped:
		p.unmapped.Add(1)
		return false, nil
	}
	p.finish(kind, ev)
	p.mapped.Add(1)
	return true, nil
}

// message decodes the top-level object.
func (p *refParser) message(ev *schema.Event) (kind eventKind, sawEvent bool) {
	s := &p.s
	if !s.enterObject() {
		return kindUnknown, false
	}
	for n := 0; ; n++ {
		k, ok := s.nextKey(n)
		if !ok {
			break
		}
		switch string(k) {
		case "version":
			ev.ESFVersion = s.uint32v()
		case "time":
			ev.TimeNS = s.timeNS()
		case "mach_time":
			// The message's Mach absolute time: with global_seq_num it makes
			// the event id unique across eslogger restarts, and it comes from
			// the message itself, so the live runner and `fileward convert`
			// derive the same id from the same line.
			ev.Stream = s.uint()
		case "seq_num":
			ev.ESFSeqNum = s.uint()
		case "global_seq_num":
			ev.GlobalSeq = s.uint()
			ev.HasGlobalSeq = s.err == nil
		case "process":
			p.process(&ev.Process, nil)
			refRemember(&p.procs, &ev.Process, nil)
		case "event":
			if sawEvent {
				s.fail("duplicate event object")
				break
			}
			sawEvent = true
			kind = p.event(ev)
		default:
			s.skipValue()
		}
	}
	return kind, sawEvent
}

// event decodes {"<name>": {payload}}.
func (p *refParser) event(ev *schema.Event) eventKind {
	s := &p.s
	if !s.enterObject() {
		return kindUnknown
	}
	k, ok := s.nextKey(0)
	if !ok {
		if s.err == nil {
			s.fail("empty event object")
		}
		return kindUnknown
	}
	kind := eventKinds[string(k)] // kindUnknown when absent
	// Event names are plain identifiers; refUnescape only for odd input.
	if kind == kindUnknown && len(k) > 0 {
		if u, ok := refUnescape(nil, k); ok {
			k = u
		}
	}
	ev.ESFEvent = p.str(k)
	if kind == kindUnknown || kind == kindUnmapped {
		s.skipValue()
	} else {
		p.payload(kind)
	}
	if _, more := s.nextKey(1); more {
		s.fail("event object has more than one key")
	}
	return kind
}

// payload decodes the fields of a mapped event payload.
func (p *refParser) payload(kind eventKind) {
	s := &p.s
	if !s.enterObject() {
		return
	}
	for n := 0; ; n++ {
		k, ok := s.nextKey(n)
		if !ok {
			return
		}
		switch string(k) {
		case "target":
			if kind == kindExec {
				p.process(&p.execProc, &p.execFile)
			} else {
				p.file(&p.target)
			}
		case "file", "file1":
			p.file(&p.target)
		case "file2", "source":
			p.file(&p.source)
		case "target_dir":
			p.file(&p.dir)
		case "target_filename", "target_name":
			p.newName, _ = s.appendString(p.newName[:0])
		case "destination":
			p.destination()
		case "fflag":
			p.fflag = uint64(s.int())
		case "modified":
			p.modified = s.bool()
		case "was_mapped_writable":
			p.mappedWritable = s.bool()
		case "extattr":
			if !s.null() {
				p.extattr, _ = s.appendString(p.extattr[:0])
			}
		case "args":
			if kind == kindExec {
				p.stringArray()
			} else {
				s.skipValue()
			}
		case "cwd":
			if kind == kindExec {
				p.fileStat(&p.cwd, false)
			} else {
				s.skipValue()
			}
		default:
			s.skipValue()
		}
	}
}

// destination decodes create/rename destinations: {"existing_file": file}
// or {"new_path": {"dir": file, "filename": "..."}}. destination_type is not
// needed: whichever key is present decides.
func (p *refParser) destination() {
	s := &p.s
	if s.null() || !s.enterObject() {
		return
	}
	for n := 0; ; n++ {
		k, ok := s.nextKey(n)
		if !ok {
			return
		}
		switch string(k) {
		case "existing_file":
			p.file(&p.dir) // reuse: an existing file is the whole destination
			p.hasNewPath = false
		case "new_path":
			p.hasNewPath = true
			if s.null() || !s.enterObject() {
				break
			}
			for m := 0; ; m++ {
				k2, ok := s.nextKey(m)
				if !ok {
					break
				}
				switch string(k2) {
				case "dir":
					p.file(&p.dir)
				case "filename":
					p.newName, _ = s.appendString(p.newName[:0])
				default:
					s.skipValue()
				}
			}
		default:
			s.skipValue()
		}
	}
}

func (p *refParser) stringArray() {
	s := &p.s
	if s.null() {
		return
	}
	if s.peek() != '[' {
		s.fail("expected array")
		return
	}
	s.i++
	args := make([]string, 0, 8)
	for n := 0; ; n++ {
		c := s.peek()
		if c == ']' {
			s.i++
			break
		}
		if n > 0 {
			if c != ',' {
				s.fail("expected ',' or ']' in array")
				return
			}
			s.i++
		}
		v, ok := s.rawString()
		if !ok {
			return
		}
		args = append(args, string(v))
	}
	p.args = args
}

// file decodes an es_file_t into f, with its stat.
func (p *refParser) file(f *refFileInfo) { p.fileStat(f, true) }

// fileStat decodes an es_file_t into f; the stat only when withStat.
func (p *refParser) fileStat(f *refFileInfo, withStat bool) {
	s := &p.s
	if s.null() {
		return
	}
	if !s.enterObject() {
		return
	}
	f.set = true
	for n := 0; ; n++ {
		k, ok := s.nextKey(n)
		if !ok {
			return
		}
		switch string(k) {
		case "path":
			f.path, _ = s.appendString(f.path[:0])
		case "path_truncated":
			f.trunc = s.bool()
		case "stat":
			if withStat {
				p.stat(f)
			} else {
				s.skipValue()
			}
		default:
			s.skipValue()
		}
	}
}

func (p *refParser) stat(f *refFileInfo) {
	s := &p.s
	if s.null() || !s.enterObject() {
		return
	}
	f.hasStat = true
	for n := 0; ; n++ {
		k, ok := s.nextKey(n)
		if !ok {
			return
		}
		switch string(k) {
		case "st_dev":
			// dev_t is a signed 32-bit value on Darwin.
			v := s.int()
			if v < 0 {
				v = int64(uint32(int32(v)))
			}
			f.dev = uint64(v)
		case "st_ino":
			f.inode = s.uint()
		case "st_mode":
			f.mode = s.uint32v()
		case "st_uid":
			f.uid = s.uint32v()
		case "st_gid":
			f.gid = s.uint32v()
		case "st_size":
			f.size = s.int()
		case "st_mtimespec":
			f.mtimeNS = s.timeNS()
		default:
			s.skipValue()
		}
	}
}

// process decodes an es_process_t. exe, when not nil, receives the
// executable's es_file_t (for exec's target).
func (p *refParser) process(pr *schema.Process, exe *refFileInfo) {
	s := &p.s
	if s.null() || !s.enterObject() {
		return
	}
	var parentPID int32
	hasParent := false
	for n := 0; ; n++ {
		k, ok := s.nextKey(n)
		if !ok {
			break
		}
		switch string(k) {
		case "audit_token":
			var t refToken
			if p.refToken(&t) {
				pr.PID = t.pid
				pr.PIDVersion = t.pidversion
				pr.UID = t.euid
				pr.RUID = t.ruid
				pr.GID = t.egid
				pr.HasUser = true
			}
		case "parent_audit_token":
			var t refToken
			if p.refToken(&t) {
				parentPID, hasParent = t.pid, true
				pr.Parent.PIDVersion = t.pidversion
			}
		case "ppid":
			v := s.int()
			if !hasParent {
				pr.PPID = int32(v)
			}
		case "executable":
			f := exe
			if f == nil {
				f = &p.exe
				f.clear()
			}
			p.fileStat(f, exe != nil)
			if f.set {
				pr.Executable = p.str(f.path)
			}
		case "signing_id":
			pr.HasCodeSig = true
			if !s.null() {
				if v, ok := s.rawString(); ok {
					pr.SigningID = p.str(v)
				}
			}
		case "team_id":
			pr.HasCodeSig = true
			if !s.null() {
				if v, ok := s.rawString(); ok {
					pr.TeamID = p.str(v)
				}
			}
		case "cdhash":
			pr.HasCodeSig = true
			if !s.null() {
				if v, ok := s.rawString(); ok {
					pr.CDHash = p.str(v)
				}
			}
		case "is_platform_binary":
			pr.HasCodeSig = true
			pr.Platform = s.bool()
		case "codesigning_flags":
			if !s.null() {
				pr.HasCodeSig = true
				pr.CSFlags = uint32(s.uint())
				pr.HasCSFlags = s.err == nil
			}
		case "start_time":
			pr.StartNS = s.timeNS()
		default:
			s.skipValue()
		}
	}
	if hasParent {
		pr.PPID = parentPID
	}
}

type refToken struct {
	pid                    int32
	pidversion, euid, ruid uint32
	egid                   uint32
}

// refToken decodes an audit token: an object with named members, or (macOS 26,
// message version 10) an array [auid, euid, egid, ruid, rgid, pid, asid,
// pidversion]. It reports whether one was present (not null).
func (p *refParser) refToken(t *refToken) bool {
	s := &p.s
	switch s.peek() {
	case 'n':
		s.null()
		return false
	case '[':
		s.i++
		var v [8]uint32
		for n := 0; ; n++ {
			c := s.peek()
			if c == ']' {
				s.i++
				if n != 8 {
					s.fail("audit token array needs 8 integers")
					return false
				}
				break
			}
			if n > 0 {
				if c != ',' {
					s.fail("expected ',' or ']' in audit token")
					return false
				}
				s.i++
			}
			if n >= 8 {
				s.fail("audit token array needs 8 integers")
				return false
			}
			v[n] = s.uint32v()
			if s.err != nil {
				return false
			}
		}
		t.euid, t.egid, t.ruid, t.pid, t.pidversion = v[1], v[2], v[3], int32(v[5]), v[7]
		return true
	case '{':
		s.i++
		for n := 0; ; n++ {
			k, ok := s.nextKey(n)
			if !ok {
				break
			}
			switch string(k) {
			case "pid":
				t.pid = int32(s.uint32v())
			case "pidversion":
				t.pidversion = s.uint32v()
			case "euid":
				t.euid = s.uint32v()
			case "ruid":
				t.ruid = s.uint32v()
			case "egid":
				t.egid = s.uint32v()
			default:
				s.skipValue()
			}
		}
		return s.err == nil
	}
	s.fail("expected audit token object or array")
	return false
}

// finish maps the decoded payload onto ev.
func (p *refParser) finish(kind eventKind, ev *schema.Event) {
	switch kind {
	case kindOpen:
		ev.Action = schema.ActionOpen
		if p.fflag&fflagRead != 0 {
			ev.Access |= schema.AccessRead
		}
		if p.fflag&fflagWrite != 0 {
			ev.Access |= schema.AccessWrite
		}
		p.setFile(ev, &p.target)
	case kindClose:
		ev.Action = schema.ActionClose
		if p.modified || p.mappedWritable {
			ev.Action = schema.ActionModification
		}
		p.setFile(ev, &p.target)
	case kindWrite:
		ev.Action = schema.ActionModification
		p.setFile(ev, &p.target)
	case kindUnlink:
		ev.Action = schema.ActionDeletion
		p.setFile(ev, &p.target)
	case kindTruncate:
		ev.Action = schema.ActionTruncate
		p.setFile(ev, &p.target)
	case kindAttr:
		ev.Action = schema.ActionAttributesModification
		p.setFile(ev, &p.target)
	case kindExtAttr:
		ev.Action = schema.ActionExtendedAttributesModification
		if ev.ESFEvent == "deleteextattr" {
			ev.Action = schema.ActionExtendedAttributesDelete
		}
		p.setFile(ev, &p.target)
		ev.ExtAttr = p.str(p.extattr)
	case kindCreate:
		ev.Action = schema.ActionCreation
		p.setDest(ev, p.hasNewPath)
	case kindRename:
		ev.Action = schema.ActionRename
		// The stat of the moved file is the source's.
		p.setFile(ev, &p.source)
		ev.OrigPath = ev.Path
		ev.Path = ""
		ev.PathTruncated = p.source.trunc
		p.setDestPath(ev, p.hasNewPath)
	case kindLink:
		ev.Action = schema.ActionLink
		// A hard link shares the source's inode, so its stat applies.
		p.setFile(ev, &p.source)
		ev.OrigPath = ev.Path
		ev.Path = ""
		p.setDestPath(ev, true)
	case kindClone:
		ev.Action = schema.ActionClone
		// A clone is a new inode: the source's stat does not describe it.
		ev.OrigPath = string(p.source.path)
		ev.PathTruncated = p.source.trunc
		p.setDestPath(ev, true)
	case kindExchange:
		ev.Action = schema.ActionExchange
		p.setFile(ev, &p.target)
		ev.OrigPath = string(p.source.path)
		ev.PathTruncated = ev.PathTruncated || p.source.trunc
	case kindExec:
		ev.Action = schema.ActionExec
		args := p.args
		ev.Process = p.execProc
		ev.Process.Args = args
		if p.cwd.set && len(p.cwd.path) > 0 {
			ev.Process.WorkingDir = p.str(p.cwd.path)
		}
		refRemember(&p.procs, &ev.Process, args)
		refParentOf(p.procs, &ev.Process)
		p.setFile(ev, &p.execFile)
	}
}

// setFile sets Path, PathTruncated and the stat from f.
func (p *refParser) setFile(ev *schema.Event, f *refFileInfo) {
	ev.Path = string(f.path)
	ev.PathTruncated = ev.PathTruncated || f.trunc
	if f.hasStat {
		ev.HasStat = true
		ev.Inode, ev.Device, ev.Mode = f.inode, f.dev, f.mode
		ev.UID, ev.GID, ev.Size, ev.MtimeNS = f.uid, f.gid, f.size, f.mtimeNS
	}
}

// setDest sets Path (and, for an existing file, the stat) from a create
// destination.
func (p *refParser) setDest(ev *schema.Event, newPath bool) {
	if !newPath {
		p.setFile(ev, &p.dir)
		return
	}
	p.setDestPath(ev, true)
}

// setDestPath sets Path to dir + "/" + name (newPath) or to the existing
// file's path, without the stat (the stat there is the directory's or the
// replaced file's).
func (p *refParser) setDestPath(ev *schema.Event, newPath bool) {
	ev.PathTruncated = ev.PathTruncated || p.dir.trunc
	if !newPath {
		ev.Path = string(p.dir.path)
		return
	}
	d := p.dir.path
	buf := p.s.buf[:0]
	buf = append(buf, d...)
	if len(d) == 0 || d[len(d)-1] != '/' {
		buf = append(buf, '/')
	}
	buf = append(buf, p.newName...)
	p.s.buf = buf
	ev.Path = string(buf)
}

// refRemember and refParentOf restate Parser.rememberProcess and parentOf.
func refRemember(m *map[int32]procInfo, pr *schema.Process, args []string) {
	if pr.PID <= 0 || pr.PIDVersion == 0 || pr.StartNS == 0 {
		return
	}
	if *m == nil {
		*m = map[int32]procInfo{}
	}
	if e, ok := (*m)[pr.PID]; ok && e.pidVersion == pr.PIDVersion && args == nil {
		return
	}
	if len(*m) >= maxProcs {
		clear(*m)
	}
	(*m)[pr.PID] = procInfo{pidVersion: pr.PIDVersion, startNS: pr.StartNS, executable: pr.Executable, args: args}
}

func refParentOf(m map[int32]procInfo, pr *schema.Process) {
	if pr.PPID <= 0 || pr.Parent.PIDVersion == 0 {
		return
	}
	if e, ok := m[pr.PPID]; ok && e.pidVersion == pr.Parent.PIDVersion {
		pr.Parent.Executable, pr.Parent.Args, pr.Parent.StartNS = e.executable, e.args, e.startNS
	}
}
