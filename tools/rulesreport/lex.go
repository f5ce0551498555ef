package rulesreport

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Kind is a token's kind.
type Kind uint8

const (
	EOF    Kind = iota
	Ident       // a field, keyword or function name (EQL/ES|QL); any bare word (KQL)
	String      // a quoted string; Text is unescaped
	Number      // digits, possibly with a unit suffix (5s, 1m)
	Op          // punctuation and operators: == != <= >= < > : ( ) [ ] { } , | = + - * / % ~
)

func (k Kind) String() string {
	switch k {
	case EOF:
		return "EOF"
	case Ident:
		return "Ident"
	case String:
		return "String"
	case Number:
		return "Number"
	case Op:
		return "Op"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Token is one lexical token of a query.
type Token struct {
	Kind Kind
	Text string // unescaped for strings and KQL words
	Pos  int    // byte offset of the token's first byte in the query
	// Wild is set on a KQL bare word with an unescaped '*' (a wildcard).
	Wild bool
}

// LexError is a tokenizer error with its byte offset.
type LexError struct {
	Pos int
	Msg string
}

func (e *LexError) Error() string { return fmt.Sprintf("offset %d: %s", e.Pos, e.Msg) }

// LexEQL tokenizes an EQL or ES|QL query: comments (/* */, //) are skipped;
// strings are "..." or '...' with backslash escapes, or raw """...""" and
// ?"...". The last token is always EOF.
func LexEQL(q string) ([]Token, error) {
	var toks []Token
	i := 0
	for i < len(q) {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case strings.HasPrefix(q[i:], "/*"):
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				return toks, &LexError{i, "unterminated comment"}
			}
			i += 2 + end + 2
		case strings.HasPrefix(q[i:], "//"):
			end := strings.IndexByte(q[i:], '\n')
			if end < 0 {
				i = len(q)
			} else {
				i += end + 1
			}
		case strings.HasPrefix(q[i:], `"""`) || strings.HasPrefix(q[i:], `?"""`):
			start := i
			if q[i] == '?' {
				i++
			}
			end := strings.Index(q[i+3:], `"""`)
			if end < 0 {
				return toks, &LexError{start, "unterminated raw string"}
			}
			toks = append(toks, Token{Kind: String, Text: q[i+3 : i+3+end], Pos: start})
			i += 3 + end + 3
		case c == '?' && i+1 < len(q) && q[i+1] == '"':
			end := strings.IndexByte(q[i+2:], '"')
			if end < 0 {
				return toks, &LexError{i, "unterminated raw string"}
			}
			toks = append(toks, Token{Kind: String, Text: q[i+2 : i+2+end], Pos: i})
			i += 2 + end + 1
		case c == '"' || c == '\'':
			s, n, err := unquote(q[i:], c)
			if err != nil {
				return toks, &LexError{i, err.Error()}
			}
			toks = append(toks, Token{Kind: String, Text: s, Pos: i})
			i += n
		case c == '`':
			end := strings.IndexByte(q[i+1:], '`')
			if end < 0 {
				return toks, &LexError{i, "unterminated backquoted name"}
			}
			toks = append(toks, Token{Kind: Ident, Text: q[i+1 : i+1+end], Pos: i})
			i += 1 + end + 1
		case c >= '0' && c <= '9':
			j := i
			for j < len(q) && (isDigit(q[j]) || q[j] == '.' || isLetter(q[j])) {
				j++
			}
			toks = append(toks, Token{Kind: Number, Text: q[i:j], Pos: i})
			i = j
		case isLetter(c) || c == '_' || c == '@' || (c == '?' && i+1 < len(q) && (isLetter(q[i+1]) || q[i+1] == '_' || q[i+1] == '@')):
			j := i
			if c == '?' { // EQL optional field: ?process.name
				j++
			}
			for j < len(q) && (isLetter(q[j]) || isDigit(q[j]) || q[j] == '_' || q[j] == '.' || q[j] == '@') {
				j++
			}
			// A backquoted segment inside a dotted name: file.`weird name`.
			for j+1 < len(q) && q[j-1] == '.' && q[j] == '`' {
				end := strings.IndexByte(q[j+1:], '`')
				if end < 0 {
					return toks, &LexError{j, "unterminated backquoted name"}
				}
				j += 1 + end + 1
				for j < len(q) && (isLetter(q[j]) || isDigit(q[j]) || q[j] == '_' || q[j] == '.') {
					j++
				}
			}
			if j < len(q) && q[j] == '~' { // like~, in~, startsWith~
				j++
			}
			text := strings.ReplaceAll(q[i:j], "`", "")
			text = strings.TrimPrefix(text, "?")
			toks = append(toks, Token{Kind: Ident, Text: text, Pos: i})
			i = j
		default:
			if i+1 < len(q) {
				switch q[i : i+2] {
				case "==", "!=", "<=", ">=":
					toks = append(toks, Token{Kind: Op, Text: q[i : i+2], Pos: i})
					i += 2
					continue
				}
			}
			if strings.IndexByte("=<>:()[]{},|+-*/%~!.", c) >= 0 {
				toks = append(toks, Token{Kind: Op, Text: string(c), Pos: i})
				i++
				continue
			}
			r, _ := utf8.DecodeRuneInString(q[i:])
			return toks, &LexError{i, fmt.Sprintf("unexpected character %q", r)}
		}
	}
	toks = append(toks, Token{Kind: EOF, Pos: len(q)})
	return toks, nil
}

// unquote reads a string quoted with quote at the start of s and returns its
// unescaped text and the number of bytes consumed.
func unquote(s string, quote byte) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == quote:
			return b.String(), i + 1, nil
		case c == '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unterminated string")
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

// LexKQL tokenizes a KQL query: parentheses, braces, ':' and range
// operators are tokens; a quoted string is a String; anything else up to
// whitespace or one of those characters is a bare word (Ident), in which a
// backslash escapes the next character and an unescaped '*' makes it a
// wildcard.
func LexKQL(q string) ([]Token, error) {
	var toks []Token
	i := 0
	for i < len(q) {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '"':
			s, n, err := unquote(q[i:], '"')
			if err != nil {
				return toks, &LexError{i, err.Error()}
			}
			toks = append(toks, Token{Kind: String, Text: s, Pos: i})
			i += n
		case c == '<' || c == '>':
			if i+1 < len(q) && q[i+1] == '=' {
				toks = append(toks, Token{Kind: Op, Text: q[i : i+2], Pos: i})
				i += 2
			} else {
				toks = append(toks, Token{Kind: Op, Text: string(c), Pos: i})
				i++
			}
		case strings.IndexByte("():{}", c) >= 0:
			toks = append(toks, Token{Kind: Op, Text: string(c), Pos: i})
			i++
		default:
			var b strings.Builder
			wild := false
			j := i
			for j < len(q) {
				d := q[j]
				if d == ' ' || d == '\t' || d == '\n' || d == '\r' || d == '\f' || d == '\v' || strings.IndexByte(`():{}<>"`, d) >= 0 {
					break
				}
				if d == '\\' {
					if j+1 >= len(q) {
						return toks, &LexError{j, "trailing backslash"}
					}
					b.WriteByte(q[j+1])
					j += 2
					continue
				}
				if d == '*' {
					wild = true
				}
				b.WriteByte(d)
				j++
			}
			toks = append(toks, Token{Kind: Ident, Text: b.String(), Pos: i, Wild: wild})
			i = j
		}
	}
	toks = append(toks, Token{Kind: EOF, Pos: len(q)})
	return toks, nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
