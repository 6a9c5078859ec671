package clickhouse

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// SQL is text that is safe to send to ClickHouse: it is made only by
// Build (which quotes every value through Quote), by joining SQL, or from
// a string constant written in this package. Nothing from outside may be
// converted to SQL directly; TestNoSQLOutsideQuote checks the sources.
type SQL string

// Ident is an identifier (a database, table or column name); Build quotes
// it with backquotes.
type Ident string

// Quote is the one function that turns a value into SQL: strings become
// single-quoted literals with every byte that could end or bend the
// literal escaped, numbers become numeric literals, identifiers are
// backquoted, string slices become array literals and SQL is kept as is.
// Any other type panics: a programming error, not an input.
func Quote(v any) SQL {
	switch x := v.(type) {
	case SQL:
		return x
	case Ident:
		return SQL(quoteWith(string(x), '`'))
	case string:
		return SQL(quoteWith(x, '\''))
	case []string:
		var b strings.Builder
		b.WriteByte('[')
		for i, s := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(quoteWith(s, '\''))
		}
		b.WriteByte(']')
		return SQL(b.String())
	case int:
		return SQL(strconv.FormatInt(int64(x), 10))
	case int64:
		return SQL(strconv.FormatInt(x, 10))
	case int32:
		return SQL(strconv.FormatInt(int64(x), 10))
	case uint64:
		return SQL(strconv.FormatUint(x, 10))
	case uint32:
		return SQL(strconv.FormatUint(uint64(x), 10))
	case bool:
		if x {
			return "1"
		}
		return "0"
	case float64:
		switch {
		case math.IsNaN(x):
			return "nan"
		case math.IsInf(x, 1):
			return "inf"
		case math.IsInf(x, -1):
			return "-inf"
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if x < 0 || (x == 0 && math.Signbit(x)) {
			return SQL("(" + s + ")") // "- -1" or "x-1" never reads as something else
		}
		return SQL(s)
	}
	panic(fmt.Sprintf("clickhouse.Quote: unsupported %T", v))
}

// quoteWith writes s between q quotes, escaping the quote, the backslash
// and every control byte (as \xHH), so that the literal is one token
// whatever the bytes, valid UTF-8 or not.
func quoteWith(s string, q byte) string {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2)
	b = append(b, q)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c == 0x7f:
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return string(append(b, q))
}

// Build makes SQL from a format in which each `?` is replaced by the next
// argument through Quote. A format is always a constant of this package;
// values never go into it.
func Build(format SQL, args ...any) SQL {
	var b strings.Builder
	n := 0
	for i := 0; i < len(format); i++ {
		if format[i] != '?' {
			b.WriteByte(format[i])
			continue
		}
		if n >= len(args) {
			panic("clickhouse.Build: more ? than arguments in " + string(format))
		}
		b.WriteString(string(Quote(args[n])))
		n++
	}
	if n != len(args) {
		panic("clickhouse.Build: more arguments than ? in " + string(format))
	}
	return SQL(b.String())
}

// Join joins SQL fragments with sep.
func Join(parts []SQL, sep SQL) SQL {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteString(string(sep))
		}
		b.WriteString(string(p))
	}
	return SQL(b.String())
}
