package clickhouse

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client speaks ClickHouse's HTTP interface, which every version from 18.16
// on answers the same way.
type Client struct {
	URL      string // e.g. http://127.0.0.1:8123
	User     string
	Password string
	Database string // default database of queries; "" for the server's
	HTTP     *http.Client

	down    atomic.Bool  // could not be reached lately (replicas.go)
	lastUse atomic.Int64 // Unix ns of the last call
}

// Error is an error ClickHouse answered.
type Error struct {
	Status int
	Text   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("clickhouse: %d %s", e.Status, strings.TrimSpace(e.Text))
}

func newQueryID() string {
	var b [12]byte
	rand.Read(b[:])
	return "fp-" + hex.EncodeToString(b[:])
}

func (c *Client) client() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// do sends body to the HTTP interface with the query in the URL (when
// query is not empty) and returns the answer. On ctx's end it kills the
// query on the server: a closed connection alone does not stop it.
func (c *Client) do(ctx context.Context, query SQL, body io.Reader, db bool, settings ...string) ([]byte, error) {
	v := url.Values{}
	for i := 0; i+1 < len(settings); i += 2 {
		v.Set(settings[i], settings[i+1])
	}
	c.lastUse.Store(time.Now().UnixNano())
	v.Set("wait_end_of_query", "1") // an error cannot arrive after a 200
	id := newQueryID()
	v.Set("query_id", id)
	if db && c.Database != "" {
		v.Set("database", c.Database)
	}
	if query != "" {
		v.Set("query", string(query))
	}
	if sqlLog.file != nil {
		body = logSQL(c, query, body, db)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.URL, "/")+"/?"+v.Encode(), body)
	if err != nil {
		return nil, err
	}
	if c.User != "" {
		req.Header.Set("X-ClickHouse-User", c.User)
	}
	if c.Password != "" {
		req.Header.Set("X-ClickHouse-Key", c.Password)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			c.kill(id)
		} else {
			c.markDown()
		}
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			c.kill(id)
		}
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &Error{Status: resp.StatusCode, Text: string(b)}
	}
	return b, nil
}

// kill stops a query the caller gave up on.
func (c *Client) kill(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.do(ctx, Build("KILL QUERY WHERE query_id = ? ASYNC", id), nil, false)
}

// Exec runs a statement that returns nothing.
func (c *Client) Exec(ctx context.Context, q SQL) error {
	_, err := c.do(ctx, "", strings.NewReader(string(q)), true)
	return err
}

// ExecNoDB runs a statement without the default database (to create it).
func (c *Client) ExecNoDB(ctx context.Context, q SQL) error {
	_, err := c.do(ctx, "", strings.NewReader(string(q)), false)
	return err
}

// InsertJSON inserts rows, each a JSON object on its own line, into table.
// Rows with a "ts" (ms) go in as many inserts as keep each within
// maxInsertMonths months: the tables are partitioned by month, and current
// ClickHouse refuses an insert into more than 100 partitions
// (max_partitions_per_insert_block; 18.16 has no such setting to raise),
// which years of history shipped at once would be.
func (c *Client) InsertJSON(ctx context.Context, table Ident, rows []byte) error {
	for len(rows) > 0 {
		part := monthsPrefix(rows, maxInsertMonths)
		// Into a Distributed table the insert reaches every shard before it
		// answers: a shard that is down fails the insert, and the rows stay
		// in the outbox.
		if _, err := c.do(ctx, Build("INSERT INTO ? FORMAT JSONEachRow", table), bytes.NewReader(rows[:part]), true, "insert_distributed_sync", "1"); err != nil {
			return err
		}
		rows = rows[part:]
	}
	return nil
}

// maxInsertMonths is the most months one insert holds (ClickHouse's limit
// is 100 partitions; a month in the server's time zone may straddle two
// UTC ones).
const maxInsertMonths = 90

// monthsPrefix returns the length of the longest run of whole lines at the
// start of rows whose "ts" values fall in at most max UTC months (at least
// one line). Lines without a "ts" count in no month.
func monthsPrefix(rows []byte, max int) int {
	months := map[int64]bool{}
	at := 0
	for at < len(rows) {
		end := bytes.IndexByte(rows[at:], '\n')
		if end < 0 {
			end = len(rows)
		} else {
			end += at + 1
		}
		if m, ok := lineMonth(rows[at:end]); ok && !months[m] {
			if len(months) == max {
				return at
			}
			months[m] = true
		}
		at = end
	}
	return len(rows)
}

// lineMonth is the UTC month (year*12+month) of a row's top-level "ts", the
// first `,"ts":` in it (inside a JSON string the quotes would be escaped).
func lineMonth(line []byte) (int64, bool) {
	i := bytes.Index(line, []byte(`,"ts":`))
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(`,"ts":`):]
	n := 0
	for n < len(rest) && (rest[n] == '-' || rest[n] >= '0' && rest[n] <= '9') {
		n++
	}
	ms, err := strconv.ParseInt(string(rest[:n]), 10, 64)
	if err != nil {
		return 0, false
	}
	t := time.UnixMilli(ms).UTC()
	return int64(t.Year())*12 + int64(t.Month()), true
}

// Query runs a SELECT and returns its rows, each a list of JSON values. A
// query longer than the servers' default max_query_size (256 KiB; a
// cohort's member list makes one) raises it for itself.
func (c *Client) Query(ctx context.Context, q SQL) ([][]json.RawMessage, error) {
	text := string(q) + " FORMAT JSONCompact"
	var settings []string
	if len(text) > 200<<10 {
		settings = []string{"max_query_size", strconv.Itoa(len(text) + 1024)}
	}
	b, err := c.do(ctx, "", strings.NewReader(text), true, settings...)
	if err != nil {
		return nil, err
	}
	var out struct {
		Data [][]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("clickhouse: bad answer: %w", err)
	}
	return out.Data, nil
}

// Ping checks that the server answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Query(ctx, "SELECT 1")
	return err
}

// isUnavailable reports whether err is a failure to reach the server
// rather than an answer.
func isUnavailable(err error) bool {
	var e *Error
	return err != nil && !errors.As(err, &e)
}

// sqlLog, when FIRSTPARTY_CH_SQL_LOG names a file, receives every
// statement sent to ClickHouse as a JSON line {"db", "sql", "data"} (data:
// the rows of an INSERT), for tools/chdb-check, which runs them through
// current ClickHouse.
var sqlLog = struct {
	mu   sync.Mutex
	file *os.File
}{file: openSQLLog()}

func openSQLLog() *os.File {
	if p := os.Getenv("FIRSTPARTY_CH_SQL_LOG"); p != "" {
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			return f
		}
	}
	return nil
}

// logSQL writes one statement to the SQL log and returns the body to send.
func logSQL(c *Client, query SQL, body io.Reader, db bool) io.Reader {
	var text, data []byte
	if body != nil {
		b, err := io.ReadAll(body)
		if err != nil {
			return bytes.NewReader(b)
		}
		text, body = b, bytes.NewReader(b)
	}
	if query != "" { // the statement in the URL, the rows in the body
		text, data = []byte(query), text
	}
	rec := struct {
		DB   string `json:"db"`
		SQL  string `json:"sql"`
		Data string `json:"data,omitempty"`
	}{SQL: string(text), Data: string(data)}
	if db {
		rec.DB = c.Database
	}
	j, _ := json.Marshal(rec)
	sqlLog.mu.Lock()
	sqlLog.file.Write(append(j, '\n'))
	sqlLog.mu.Unlock()
	return body
}
