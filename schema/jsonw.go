package schema

import (
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"
)

// This file holds the allocation-free JSON writing primitives the encoders
// share. Each appends to dst and returns the extended slice; none allocates
// when dst has room.

const hexDigits = "0123456789abcdef"

// appendString appends s as a quoted JSON string. Quotes, backslashes and
// control characters are escaped; invalid UTF-8 becomes \ufffd; U+2028 and
// U+2029 are escaped so the output is also safe to embed in JavaScript.
//
// The common case, a run of printable ASCII, is scanned eight bytes at a
// time and copied in one piece.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	i := 0
	for i < len(s) {
		// Skip whole words of printable ASCII without quote or backslash.
		for i+8 <= len(s) && wordIsPlain(load64(s, i)) {
			i += 8
		}
		// Fewer than 8 bytes left: the last 8 bytes, which overlap the
		// plain ones before, cover them in one word.
		if i+8 > len(s) && len(s) >= 8 && wordIsPlain(load64(s, len(s)-8)) {
			i = len(s)
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"':
				dst = append(dst, '\\', '"')
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// load64 reads s[i:i+8] as a little-endian word; the compiler merges the
// byte loads into one.
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// wordIsPlain reports whether all eight bytes of w are printable ASCII
// (0x20..0x7f) other than '"' and '\\', i.e. need no escaping.
func wordIsPlain(w uint64) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	// A byte below 0x20: (b - 0x20) borrows into its high bit while b's own
	// high bit is clear. A byte equal to q: b^q is zero.
	lt := (w - ones*0x20) &^ w
	q := w ^ (ones * '"')
	bs := w ^ (ones * '\\')
	eq := ((q - ones) &^ q) | ((bs - ones) &^ bs)
	return (lt|eq|w)&highs == 0
}

// appendUint appends v in decimal, with a fast path for the small values
// (pids, counts, versions) that most numbers in a document are. Longer
// ones are written two digits at a time straight into dst, from the end
// (strconv.AppendUint formats into a buffer of its own and copies that).
func appendUint(dst []byte, v uint64) []byte {
	switch {
	case v < 10:
		return append(dst, byte('0'+v))
	case v < 100:
		return append(dst, digitPairs[2*v], digitPairs[2*v+1])
	}
	n := decimalLen(v)
	l := len(dst)
	dst = slices.Grow(dst, n)[:l+n]
	b := dst[l : l+n]
	i := n
	for v >= 1<<32 {
		q := v / 100
		r := v - q*100
		i -= 2
		b[i], b[i+1] = digitPairs[2*r], digitPairs[2*r+1]
		v = q
	}
	w := uint32(v) // 32-bit divisions from here
	for w >= 100 {
		q := w / 100
		r := w - q*100
		i -= 2
		b[i], b[i+1] = digitPairs[2*r], digitPairs[2*r+1]
		w = q
	}
	if w >= 10 {
		b[i-2], b[i-1] = digitPairs[2*w], digitPairs[2*w+1]
	} else {
		b[i-1] = byte('0' + w)
	}
	return dst
}

// pow10 holds 10^0 to 10^19.
var pow10 = [20]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// decimalLen is the number of decimal digits of v (1 for 0).
func decimalLen(v uint64) int {
	// bits.Len64(v) * log10(2), rounded down, is the digit count or one
	// less.
	n := bits.Len64(v) * 1233 >> 12
	if n < len(pow10) && v >= pow10[n] {
		n++
	}
	return max(n, 1)
}

// appendInt appends v in decimal.
func appendInt(dst []byte, v int64) []byte {
	if v >= 0 {
		return appendUint(dst, uint64(v))
	}
	return strconv.AppendInt(dst, v, 10)
}

// appendUintString appends v as a quoted decimal string (ECS keyword ids such
// as file.inode and user.id).
func appendUintString(dst []byte, v uint64) []byte {
	dst = append(dst, '"')
	dst = appendUint(dst, v)
	return append(dst, '"')
}

// appendBool appends true or false.
func appendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}

// digitPairs holds "00" to "99" for two-digit formatting.
const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

// appendTime appends ns (Unix nanoseconds) as a quoted RFC 3339 UTC time with
// exactly nine fractional digits: "2006-01-02T15:04:05.000000000Z". Every
// int64 falls within years 1677..2262, so the year always has four digits.
func appendTime(dst []byte, ns int64) []byte {
	const nsPerSec = 1_000_000_000
	const secPerDay = 86400
	sec := ns / nsPerSec
	frac := ns % nsPerSec
	if frac < 0 {
		frac += nsPerSec
		sec--
	}
	days := sec / secPerDay
	sod := sec % secPerDay
	if sod < 0 {
		sod += secPerDay
		days--
	}
	y, m, d := civilFromDays(days)
	hms := uint64(sod)
	var b [32]byte
	b[0] = '"'
	put2(b[1:], int(y/100))
	put2(b[3:], int(y%100))
	b[5] = '-'
	put2(b[6:], int(m))
	b[8] = '-'
	put2(b[9:], int(d))
	b[11] = 'T'
	put2(b[12:], int(hms/3600))
	b[14] = ':'
	put2(b[15:], int(hms/60%60))
	b[17] = ':'
	put2(b[18:], int(hms%60))
	b[20] = '.'
	f := uint32(frac)
	put2(b[21:], int(f/10_000_000))
	put2(b[23:], int(f/100_000%100))
	put2(b[25:], int(f/1000%100))
	put2(b[27:], int(f/10%100))
	b[29] = byte('0' + f%10)
	b[30] = 'Z'
	b[31] = '"'
	return append(dst, b[:]...)
}

// put2 writes v (0..99) as two digits at b[0:2].
func put2(b []byte, v int) {
	b[0], b[1] = digitPairs[2*v], digitPairs[2*v+1]
}

// civilFromDays converts days since 1970-01-01 to a proleptic Gregorian date
// with Neri and Schneider's Euclidean affine functions ("Euclidean affine
// functions and their application to calendar algorithms", 2022): a handful
// of 32-bit multiplications and no branches on the sign. The shift by 82
// 400-year eras keeps every day an int64 of nanoseconds can reach positive.
func civilFromDays(days int64) (year, month, day uint32) {
	const (
		eras = 82
		k    = 719468 + 146097*eras
		l    = 400 * eras
	)
	n := uint32(days + k)
	n1 := 4*n + 3
	c := n1 / 146097
	nc := n1 % 146097 / 4
	n2 := 4*nc + 3
	p2 := uint64(2939745) * uint64(n2)
	z := uint32(p2 >> 32)
	ny := uint32(p2) / 2939745 / 4
	y := 100*c + z
	n3 := 2141*ny + 197913
	m := n3 >> 16
	d := (n3&0xffff)/2141 + 1
	if ny >= 306 {
		y++
		m -= 12
	}
	return y - l, m, d
}

// appendMode appends the permission bits (mode & 07777) as a quoted
// four-digit octal string, e.g. "0644" or "4755".
func appendMode(dst []byte, mode uint32) []byte {
	p := mode & 0o7777
	return append(dst, '"', byte('0'+p>>9&7), byte('0'+p>>6&7), byte('0'+p>>3&7), byte('0'+p&7), '"')
}
