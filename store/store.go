package store

import (
	"context"
	"errors"
	"io"
)

// Store is what the collector and the dashboard need from storage: append a
// batch, run a query. The embedded implementation is DB (buntdb); a
// ClickHouse-backed one can take its place for deployments that outgrow one
// machine.
type Store interface {
	// Append commits events durably and returns, for each, whether it was
	// stored or was a repeat of a stored uuid. It returns only after the
	// events are in the log. An error means none of them were stored.
	Append(ctx context.Context, events []*Event) ([]Outcome, error)
	// AddSite makes a site known even before it has events.
	AddSite(site string)
	// Sites lists the known sites, sorted.
	Sites() []string
	// Count returns the number of stored events of a site.
	Count(site string) int

	// Events lists events newest first.
	Events(ctx context.Context, q EventQuery) (EventPage, error)
	// Persons lists persons, newest first, a page at a time.
	Persons(ctx context.Context, q PersonQuery) (PersonPage, error)
	// Person returns one person by id or by any of its distinct ids.
	Person(ctx context.Context, site, id string) (*Person, error)
	// DeletePerson removes the person and every event of theirs.
	DeletePerson(ctx context.Context, site, id string) error
	// ExportPerson writes everything stored about a person as NDJSON.
	ExportPerson(ctx context.Context, site, id string, w io.Writer) error

	// AppendSnapshots stores session-recording data.
	AppendSnapshots(ctx context.Context, site string, snaps []Snapshot) error
	// Recordings lists the recordings overlapping [from, to), newest first.
	Recordings(ctx context.Context, site string, from, to int64) []RecordingInfo
	// Recording returns a session's rrweb events as a JSON array.
	Recording(ctx context.Context, site, session string) ([]byte, error)
	RecordingTab(ctx context.Context, site, session string, tab int) ([]byte, error)
	// RecordingUsage returns the stored bytes of a session's recording and
	// of the site's recordings on the current UTC day.
	RecordingUsage(site, session string) (sessionBytes, dayTotal int64)

	// Subscribe streams the events stored for a site from now on.
	Subscribe(site string) *Subscription

	// DaySalt returns the random salt of a UTC day (days since the epoch)
	// for cookieless visitor ids, made on first use; older days' salts are
	// deleted from the disk when a new day's is made.
	DaySalt(day int64) ([]byte, error)

	Reports
	Definitions

	Close() error
}

// Reports are the analytics queries of SPEC §4, each over a Query (site,
// range, time zone, filters, cohort). Wherever they take an event name,
// `action:<id>` stands for the action's events. An error wrapping
// ErrBadQuery means the query itself is wrong.
type Reports interface {
	Stats(ctx context.Context, q Query) (Stats, error)
	Breakdown(ctx context.Context, q Query, bq BreakdownQuery) ([]BreakdownRow, error)
	Trends(ctx context.Context, q Query, tq TrendsQuery) (Trends, error)
	Funnel(ctx context.Context, q Query, fq FunnelQuery) ([]FunnelStep, error)
	Retention(ctx context.Context, q Query, rq RetentionQuery) ([]RetentionCohort, error)
	Paths(ctx context.Context, q Query, pq PathsQuery) ([]PathLink, error)
	Heatmap(ctx context.Context, q Query, hq HeatmapQuery) ([]HeatmapPoint, error)
	// HeatmapViewports counts a page's clicks by viewport width class.
	HeatmapViewports(ctx context.Context, q Query, url string) ([]ViewportCount, error)
	// Export calls fn with every event of q in time order.
	Export(ctx context.Context, q Query, fn func(ev *Event, personID string) error) error
	// LiveCount is the number of persons with an event in the last five
	// minutes.
	LiveCount(ctx context.Context, site string) (int, error)
	// Server is what only the server sees: server pageviews and the share
	// the snippet confirmed, 404 pages, slow pages, feeds (SPEC §8).
	Server(ctx context.Context, q Query, limit int) (ServerReport, error)
	// GoalStats counts each goal's visitors, events, conversion rate and
	// revenue over q.
	GoalStats(ctx context.Context, q Query, goals []Goal) ([]GoalResult, error)
	// CohortPersons lists a cohort's persons and gives their number.
	CohortPersons(ctx context.Context, q Query, id int64, limit int) ([]Person, int, error)
}

// Definitions are the saved actions and cohorts of each site. Save
// creates when the ID is 0 and replaces otherwise (ErrNotFound if there is
// no such one); invalid definitions wrap ErrBadQuery.
type Definitions interface {
	Actions(ctx context.Context, site string) ([]Action, error)
	Action(ctx context.Context, site string, id int64) (Action, error)
	SaveAction(ctx context.Context, site string, a Action) (Action, error)
	DeleteAction(ctx context.Context, site string, id int64) error

	Cohorts(ctx context.Context, site string) ([]Cohort, error)
	Cohort(ctx context.Context, site string, id int64) (Cohort, error)
	SaveCohort(ctx context.Context, site string, c Cohort) (Cohort, error)
	DeleteCohort(ctx context.Context, site string, id int64) error

	// Docs are goals, annotations, saved insights and dashboards, by kind
	// (DocGoal, ...): JSON objects the store keeps whole.
	Docs(ctx context.Context, site, kind string) ([]Doc, error)
	Doc(ctx context.Context, site, kind string, id int64) (Doc, error)
	SaveDoc(ctx context.Context, site, kind string, d Doc) (Doc, error)
	DeleteDoc(ctx context.Context, site, kind string, id int64) error
}

var _ Store = (*DB)(nil)

// Outcome is what became of one appended event.
type Outcome uint8

// Outcomes of Append.
const (
	Stored Outcome = iota
	Duplicate
)

// ErrNotFound is returned for an unknown person.
var ErrNotFound = errors.New("not found")

// ErrUnavailable wraps a failure to write the log (a full disk, say): the
// caller should answer 503 and the client retry.
var ErrUnavailable = errors.New("store unavailable")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("store closed")
