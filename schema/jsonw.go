package schema

import (
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
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
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

// appendUintString appends v as a quoted decimal string (ECS keyword ids such
// as file.inode and user.id).
func appendUintString(dst []byte, v uint64) []byte {
	dst = append(dst, '"')
	dst = strconv.AppendUint(dst, v, 10)
	return append(dst, '"')
}

// appendBool appends true or false.
func appendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}

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
	dst = append(dst, '"')
	dst = append4(dst, int(y))
	dst = append(dst, '-')
	dst = append2(dst, int(m))
	dst = append(dst, '-')
	dst = append2(dst, int(d))
	dst = append(dst, 'T')
	dst = append2(dst, int(sod/3600))
	dst = append(dst, ':')
	dst = append2(dst, int(sod/60%60))
	dst = append(dst, ':')
	dst = append2(dst, int(sod%60))
	dst = append(dst, '.')
	f := int(frac)
	var buf [9]byte
	for i := 8; i >= 0; i-- {
		buf[i] = byte('0' + f%10)
		f /= 10
	}
	dst = append(dst, buf[:]...)
	return append(dst, 'Z', '"')
}

// civilFromDays converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's days_from_civil inverse).
func civilFromDays(z int64) (year int64, month, day int64) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

func append2(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/10), byte('0'+v%10))
}

func append4(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}

// appendMode appends the permission bits (mode & 07777) as a quoted
// four-digit octal string, e.g. "0644" or "4755".
func appendMode(dst []byte, mode uint32) []byte {
	p := mode & 0o7777
	return append(dst, '"', byte('0'+p>>9&7), byte('0'+p>>6&7), byte('0'+p>>3&7), byte('0'+p&7), '"')
}
