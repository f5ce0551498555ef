package eslogger

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"slices"

	"github.com/fileward/fileward/schema"
)

// The top-level "process" object (es_process_t) is about 1 to 1.5 KB of a
// 1.4 to 5 KB message, and real eslogger streams repeat it byte for byte on
// consecutive events of one process. The parser keeps the decoded form of
// recent ones and, when a message's process object is byte-identical to a
// kept one, copies the decoded fields instead of scanning the object again.
const (
	// procCacheSets is the number of sets (a power of two); each holds
	// procCacheWays kept objects, 256 in all. With one way per set (a
	// direct-mapped cache, as this was first) two processes that
	// alternate in one slot evict each other on every message and neither
	// is ever kept: on the 38 distinct objects of the demo recording, 128
	// slots kept 50 to 79% of them, depending on the seed; 128 sets of two
	// ways 74 to 100%, 64 sets of four 100%.
	procCacheSets = 64
	procCacheWays = 4
	// procCacheKeyLen is how many bytes from the object's '{' choose its
	// set. The length of the object is not known before it is scanned, so
	// the set is chosen by a prefix (which may run past a short object's
	// end: that only costs hits; eslogger's are about 1 to 1.5 KB); a hit is
	// decided by comparing all of the kept object's bytes, never by the
	// hash alone. Objects of different processes can share their first 300
	// bytes (eslogger's key order varies: code signing or the audit token
	// first), and then share a set: its ways keep them side by side.
	procCacheKeyLen = 512
	// maxCachedProcess bounds one kept object; larger ones are not kept.
	maxCachedProcess = 8 << 10
)

// procCache is a Parser's cache of decoded process objects: set-associative
// (procCacheWays ways), keyed by the hash of an object's first
// procCacheKeyLen bytes. It is used by Parse only, from one goroutine at a
// time, like the Parser.
type procCache struct {
	seed         maphash.Seed
	sets         [procCacheSets]procSet
	hits, misses uint64 // read by the tests
}

// procSet is one set: its ways, when each was last used, and the prefix
// hashes of its last misses.
type procSet struct {
	ways [procCacheWays]procEntry
	used [procCacheWays]uint32 // the set's clock at each way's last hit or fill
	now  uint32                // the set's clock: one tick per lookup
	// seen holds the admission keys (admissionKey) of the set's last
	// procCacheWays misses, seen[0] the latest. An object is kept only
	// when its key is found here on a miss (it missed not long before): a
	// stream that never repeats a process then costs a hash and a few
	// compares of hashes per message, not a 1.5 KB copy into cold memory.
	// As many as there are ways, so that objects that take turns in one
	// set, no more of them than it holds, are all kept.
	seen [procCacheWays]uint64
}

type procEntry struct {
	// raw is the exact bytes of a process object that decoded without
	// error, from its '{' to its matching '}'; empty when the way is free.
	raw []byte
	// h is the prefix hash of raw, and tail its last 8 bytes: compared
	// before all of the bytes, they reject most objects that share a set.
	h, tail uint64
	// pr is what process decoded from raw into a zero schema.Process. It
	// holds no slices, maps or pointers (cachedProcess keeps only such
	// values), so copying it by value shares nothing mutable: its strings
	// are immutable.
	pr schema.Process
}

// cachedProcess decodes the message's first process object into pr, which
// must be the zero Process: from the cache when the object's bytes equal a
// kept object's, else by process (and then keeps it, in the way of its set
// used least recently, if its prefix hash missed not long before).
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
	set, h := c.set(s.b[start:])
	set.now++
	for w := range set.ways {
		e := &set.ways[w]
		if n := len(e.raw); n > 0 && e.h == h && n <= len(s.b)-start &&
			binary.LittleEndian.Uint64(s.b[start+n-8:]) == e.tail && bytes.Equal(s.b[start:start+n], e.raw) {
			*pr = e.pr
			s.i = start + n
			set.used[w] = set.now
			c.hits++
			return
		}
	}
	c.misses++
	p.process(pr, nil)
	end := s.i
	if k := c.admissionKey(h, s.b[start:end]); !slices.Contains(set.seen[:], k) {
		copy(set.seen[1:], set.seen[:])
		set.seen[0] = k
		return
	}
	if s.err != nil || end-start < 8 || end-start > maxCachedProcess || s.b[end-1] != '}' ||
		pr.Args != nil || pr.Parent.Args != nil {
		return // the set keeps what it holds: that is still valid
	}
	w := 0 // the way used least recently (the clock wraps: its age, not its stamp)
	for i := range set.used {
		if set.now-set.used[i] > set.now-set.used[w] {
			w = i
		}
	}
	e := &set.ways[w]
	e.raw = append(e.raw[:0], s.b[start:end]...)
	e.h, e.tail = h, binary.LittleEndian.Uint64(s.b[end-8:])
	e.pr = *pr
	set.used[w] = set.now
}

// set returns the set of the object that begins b, and its prefix hash.
func (c *procCache) set(b []byte) (*procSet, uint64) {
	h := maphash.Bytes(c.seed, b[:min(len(b), procCacheKeyLen)])
	return &c.sets[h&(procCacheSets-1)], h
}

// admissionKey is what procSet.seen remembers of a missed object: its
// prefix hash h mixed with a hash of its last 64 bytes and its length, so
// that objects which share their prefix (the same executable and code
// signature, a different audit token or start time) are told apart without
// hashing all of their bytes.
func (c *procCache) admissionKey(h uint64, obj []byte) uint64 {
	t := maphash.Bytes(c.seed, obj[max(0, len(obj)-64):])
	return h ^ bits.RotateLeft64(t, 17) ^ uint64(len(obj))*0x9e3779b97f4a7c15
}
