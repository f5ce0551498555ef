//go:build linux

package fanotify

import "strings"

// dirCache is a bounded LRU from a directory's file identifier (fsid, handle
// type and handle bytes) to its path. A negative entry (ok == false) records a
// handle that can no longer be opened (the directory is gone); such a handle
// never becomes valid again, so caching the failure saves a syscall per event
// during an rm -r. It is used by one read loop only and is not safe for
// concurrent use.
type dirCache struct {
	max        int
	m          map[string]*dirEntry
	head, tail *dirEntry // head is the most recently used
}

type dirEntry struct {
	key        string
	path       string
	ok         bool
	prev, next *dirEntry
}

func newDirCache(max int) *dirCache {
	if max < 1 {
		max = 1
	}
	return &dirCache{max: max, m: make(map[string]*dirEntry, min(max, 4096))}
}

func (c *dirCache) len() int { return len(c.m) }

// get looks key up without allocating.
func (c *dirCache) get(key []byte) (path string, ok, found bool) {
	e := c.m[string(key)]
	if e == nil {
		return "", false, false
	}
	c.moveFront(e)
	return e.path, e.ok, true
}

func (c *dirCache) put(key []byte, path string, ok bool) {
	if e := c.m[string(key)]; e != nil {
		e.path, e.ok = path, ok
		c.moveFront(e)
		return
	}
	if len(c.m) >= c.max {
		old := c.tail
		c.unlink(old)
		delete(c.m, old.key)
	}
	e := &dirEntry{key: string(key), path: path, ok: ok}
	c.m[e.key] = e
	c.pushFront(e)
}

func (c *dirCache) remove(key []byte) {
	if e := c.m[string(key)]; e != nil {
		c.unlink(e)
		delete(c.m, e.key)
	}
}

// invalidatePrefix drops every entry whose path is p or lies under p. It
// runs on a directory rename or delete, which are rare next to file events,
// so a scan of the bounded cache is acceptable.
func (c *dirCache) invalidatePrefix(p string) int {
	if p == "" {
		return 0
	}
	n := 0
	for e := c.head; e != nil; {
		next := e.next
		if e.ok && underPath(e.path, p) {
			c.unlink(e)
			delete(c.m, e.key)
			n++
		}
		e = next
	}
	return n
}

func (c *dirCache) moveFront(e *dirEntry) {
	if c.head == e {
		return
	}
	c.unlink(e)
	c.pushFront(e)
}

func (c *dirCache) pushFront(e *dirEntry) {
	e.prev, e.next = nil, c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}

func (c *dirCache) unlink(e *dirEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// underPath reports whether path is p or a descendant of p.
func underPath(path, p string) bool {
	if p == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == p || (len(path) > len(p) && path[len(p)] == '/' && strings.HasPrefix(path, p))
}

// joinPath joins a resolved directory and an entry name from the kernel. The
// name "." (an event on the directory itself) yields the directory.
func joinPath(dir string, name []byte) string {
	if len(name) == 0 || (len(name) == 1 && name[0] == '.') {
		return dir
	}
	if dir == "/" {
		return "/" + string(name)
	}
	return dir + "/" + string(name)
}
