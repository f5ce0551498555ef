package eslogger

import (
	"bytes"
	"hash/maphash"

	"github.com/fileward/fileward/schema"
)

// The top-level "process" object (es_process_t) is about 1 to 1.5 KB of a
// 1.4 to 5 KB message, and real eslogger streams repeat it byte for byte on
// consecutive events of one process. The parser keeps the decoded form of
// recent ones and, when a message's process object is byte-identical to a
// kept one, copies the decoded fields instead of scanning the object again.
const (
	// procCacheSlots is the number of kept objects (direct-mapped, a power
	// of two). Each holds its raw bytes: about 128 × 1.5 KB per Parser.
	procCacheSlots = 128
	// procCacheKeyLen is how many bytes from the object's '{' choose its
	// slot. The length of the object is not known before it is scanned, so
	// the slot is chosen by a prefix (which may run past a short object's
	// end: that only costs hits; eslogger's are about 1 to 1.5 KB); a hit is
	// decided by comparing all of the kept object's bytes, never by the
	// hash. Objects of different processes can share their first 300 bytes
	// (eslogger's key order varies: code signing or the audit token first).
	procCacheKeyLen = 512
	// maxCachedProcess bounds one kept object; larger ones are not kept.
	maxCachedProcess = 8 << 10
)

// procCache is a Parser's cache of decoded process objects. It is used by
// Parse only, from one goroutine at a time, like the Parser.
type procCache struct {
	seed         maphash.Seed
	slots        [procCacheSlots]procEntry
	hits, misses uint64 // read by the tests
}

type procEntry struct {
	// raw is the exact bytes of a process object that decoded without
	// error, from its '{' to its matching '}'; empty when the slot is free.
	raw []byte
	// seen is the prefix hash of the last object that missed here. An
	// object is kept only when its prefix misses twice in a row in its
	// slot: a stream that never repeats a process then costs a hash and
	// a short compare per message, not a 1.5 KB copy into cold memory.
	seen uint64
	// pr is what process decoded from raw into a zero schema.Process. It
	// holds no slices, maps or pointers (cachedProcess keeps only such
	// values), so copying it by value shares nothing mutable: its strings
	// are immutable.
	pr schema.Process
}

// cachedProcess decodes the message's first process object into pr, which
// must be the zero Process: from the cache when the object's bytes equal a
// kept object's, else by process (and then keeps it if its prefix missed in
// its slot just before).
//
// Equal bytes decode to equal fields: what process decodes depends on no
// byte outside the object (it stops right after the object's closing '}';
// the SWAR key scan may load bytes past a key, but only the key's own
// closing quote decides its result), keeps
// no state between calls that changes what it decodes (the string intern
// table only shares equal strings), and a kept object decoded without
// error. TestProcessCache and FuzzParseMatchesReference check this.
func (p *Parser) cachedProcess(pr *schema.Process) {
	s := &p.s
	if p.noProcCache || s.peek() != '{' {
		p.process(pr, nil)
		return
	}
	c := p.pcache
	if c == nil {
		c = &procCache{seed: maphash.MakeSeed()}
		p.pcache = c
	}
	start := s.i
	e, h := c.slot(s.b[start:])
	if n := len(e.raw); n > 0 && n <= len(s.b)-start && bytes.Equal(s.b[start:start+n], e.raw) {
		*pr = e.pr
		s.i = start + n
		c.hits++
		return
	}
	c.misses++
	p.process(pr, nil)
	end := s.i
	if e.seen != h {
		e.seen = h
		return
	}
	if s.err != nil || end-start > maxCachedProcess || s.b[end-1] != '}' ||
		pr.Args != nil || pr.Parent.Args != nil {
		return // the slot keeps what it holds: that is still valid
	}
	e.raw = append(e.raw[:0], s.b[start:end]...)
	e.pr = *pr
}

// slot returns the slot of the object that begins b, and its prefix hash.
func (c *procCache) slot(b []byte) (*procEntry, uint64) {
	h := maphash.Bytes(c.seed, b[:min(len(b), procCacheKeyLen)])
	return &c.slots[h&(procCacheSlots-1)], h
}
