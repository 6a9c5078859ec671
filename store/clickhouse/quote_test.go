package clickhouse

import (
	"context"
	"encoding/hex"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

// unquote reads one literal quoted with q from the start of s the way
// ClickHouse's lexer does (a backslash escapes the next byte; \xHH is a
// byte; a doubled quote is one quote) and returns its value and the rest.
func unquote(s string, q byte) (val, rest string, ok bool) {
	if len(s) == 0 || s[0] != q {
		return "", "", false
	}
	var b []byte
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return "", "", false
			}
			i++
			switch s[i] {
			case 'x':
				if i+2 >= len(s) {
					return "", "", false
				}
				v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				if err != nil {
					return "", "", false
				}
				b = append(b, byte(v))
				i += 2
			case 'n':
				b = append(b, '\n')
			case 't':
				b = append(b, '\t')
			case '0':
				b = append(b, 0)
			default:
				b = append(b, s[i])
			}
		case c == q:
			if i+1 < len(s) && s[i+1] == q {
				b = append(b, q)
				i++
				continue
			}
			return string(b), s[i+1:], true
		case c < 0x20:
			return "", "", false // a raw control byte never appears
		default:
			b = append(b, c)
		}
	}
	return "", "", false
}

// TestQuoteProperty: every string quotes to exactly one literal holding
// exactly that string, whatever its bytes, and numbers read back as
// themselves.
func TestQuoteProperty(t *testing.T) {
	for _, s := range quoteSeeds {
		checkQuoted(t, s)
	}
	for _, f := range []float64{0, -0.0, 1.5, -2.25, 1e300, -1e-300, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		q := string(Quote(f))
		g, err := strconv.ParseFloat(strings.Trim(q, "()"), 64)
		if err != nil || g != f {
			t.Errorf("Quote(%v) = %s", f, q)
		}
	}
	for _, n := range []int64{0, -1, math.MinInt64, math.MaxInt64} {
		if q := string(Quote(n)); q != strconv.FormatInt(n, 10) {
			t.Errorf("Quote(%d) = %s", n, q)
		}
	}
	if got := Build("SELECT ? , ?, ?", "a'b", Ident("x`y"), []string{"\\", "'"}); got != `SELECT 'a\'b' , `+"`x\\`y`"+`, ['\\','\'']` {
		t.Errorf("Build: %s", got)
	}
}

func checkQuoted(t *testing.T, s string) {
	t.Helper()
	for _, q := range []byte{'\'', '`'} {
		var lit string
		if q == '\'' {
			lit = string(Quote(s))
		} else {
			lit = string(Quote(Ident(s)))
		}
		val, rest, ok := unquote(lit, q)
		if !ok || rest != "" || val != s {
			t.Fatalf("Quote(%q) = %s reads back as %q rest %q ok %v", s, lit, val, rest, ok)
		}
	}
}

var quoteSeeds = []string{"", "a", "'", "''", "\\", "\\'", "'; DROP TABLE events; --", "\x00", "\n\r\t", "\x7f", "é", "\xff\xfe",
	"`", "?", "\\x41", "' OR 1=1 OR '", "ключ", "emoji 🎉", strings.Repeat("'\\", 100)}

var (
	fuzzClient  *Client
	fuzzCluster *chtest.Cluster
)

// FuzzQuote round-trips strings through Quote and, when clickhouse-server
// is installed, through a real server: SELECT hex(<literal>) must give
// the bytes back.
func FuzzQuote(f *testing.F) {
	for _, s := range quoteSeeds {
		f.Add(s)
	}
	c := chtest.Start(f)
	cl := &Client{URL: c.URL()}
	f.Fuzz(func(t *testing.T, s string) {
		checkQuoted(t, s)
		rows, err := cl.Query(context.Background(), Build("SELECT hex(?), hex(toString(?)), length(?)", s, Ident("x"), s))
		if err == nil || !strings.Contains(err.Error(), "Missing columns") && !strings.Contains(err.Error(), "Unknown identifier") {
			// the identifier `x` does not exist: the query must fail
			// naming it, proving the backquoted form reached the parser
			// as an identifier.
			if err == nil {
				t.Fatalf("identifier x resolved: %v", rows)
			}
			t.Fatalf("query for %q: %v", s, err)
		}
		rows, err = cl.Query(context.Background(), Build("SELECT hex(?), length(?)", s, s))
		if err != nil {
			t.Fatalf("query for %q: %v", s, err)
		}
		var h, n string
		if len(rows) != 1 || len(rows[0]) != 2 {
			t.Fatalf("rows %v", rows)
		}
		h = strings.Trim(string(rows[0][0]), `"`)
		n = strings.Trim(string(rows[0][1]), `"`)
		if want := strings.ToUpper(hex.EncodeToString([]byte(s))); h != want || n != strconv.Itoa(len(s)) {
			t.Fatalf("%q came back as %s (%s bytes), want %s", s, h, n, want)
		}
		if utf8.ValidString(s) && len(s) < 200 {
			// an identifier with the same bytes names a column alias
			rows, err = cl.Query(context.Background(), Build("SELECT 1 AS ?", Ident(s)))
			if s != "" && err != nil {
				t.Fatalf("alias %q: %v", s, err)
			}
		}
	})
}

// TestNoSQLOutsideQuote reads the package's sources: outside quote.go no
// value may be formatted or converted into SQL. SQL(...) conversions take
// only constants, and fmt/strconv formatting never builds query text.
func TestNoSQLOutsideQuote(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	if len(files) < 4 {
		t.Fatal("no sources found")
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if name == "quote.go" || strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.CallExpr:
				if id, ok := x.Fun.(*ast.Ident); ok && id.Name == "SQL" && len(x.Args) == 1 {
					if _, lit := x.Args[0].(*ast.BasicLit); !lit {
						t.Errorf("%s: SQL(%s): only constants become SQL outside quote.go", fset.Position(x.Pos()), src[x.Args[0].Pos()-1:x.Args[0].End()-1])
					}
				}
				if sel, ok := x.Fun.(*ast.SelectorExpr); ok {
					if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "fmt" && strings.HasPrefix(sel.Sel.Name, "Sprint") {
						for _, a := range x.Args {
							if lit, ok := a.(*ast.BasicLit); ok && looksLikeSQL(lit.Value) {
								t.Errorf("%s: fmt.%s of SQL text: use Build", fset.Position(x.Pos()), sel.Sel.Name)
							}
						}
					}
				}
			case *ast.BinaryExpr:
				if x.Op == token.ADD {
					for _, side := range []ast.Expr{x.X, x.Y} {
						if lit, ok := side.(*ast.BasicLit); ok && looksLikeSQL(lit.Value) {
							t.Errorf("%s: SQL text joined with +: use Build", fset.Position(x.Pos()))
						}
					}
				}
			}
			return true
		})
	}
	if checked < 4 {
		t.Fatalf("checked only %d files", checked)
	}
}

func looksLikeSQL(lit string) bool {
	u := strings.ToUpper(lit)
	for _, w := range []string{"SELECT ", "WHERE ", "INSERT ", " FROM ", "ALTER ", " AND ", " OR ", "='", "= '", "IN ("} {
		if strings.Contains(u, w) {
			return true
		}
	}
	return false
}
