package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/firstpartyhq/firstparty/exporter"
	"github.com/firstpartyhq/firstparty/store"
)

// `caddy analytics <command>`: operations on a database file (SPEC §10).
func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "analytics",
		Usage: "<command> [flags]",
		Short: "Back up, restore, verify, import and export Firstparty analytics data",
		Long: `
Operations on a Firstparty analytics database (the file of the "db" directive).

A command that only reads (backup) goes through the admin API of the Caddy
that has the database open, so it may run while Caddy serves; the others open
the file themselves and refuse while a running Caddy holds it.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(backupCommand(), restoreCommand(), exportCommand(),
				deletePersonCommand(), verifyCommand())
			for _, c := range extraCommands {
				cmd.AddCommand(c())
			}
			for _, c := range cmd.Commands() {
				c.SilenceUsage = true // errors are not usage mistakes
			}
		},
	})
}

// extraCommands are subcommands added by other files of the package.
var extraCommands []func() *cobra.Command

// DefaultAdmin is Caddy's default admin address.
const DefaultAdmin = "localhost:2019"

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

// requireFlags fails unless every named flag has a value.
func requireFlags(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if v, _ := cmd.Flags().GetString(n); v == "" {
			return fmt.Errorf("--%s is required (see caddy help analytics %s)", n, cmd.Name())
		}
	}
	return nil
}

// openDirect opens the database file for a command. It refuses when the
// Caddy at the admin address has the file open (two processes must never
// write one log); the store's own lock refuses any other holder.
func openDirect(path, admin string) (*store.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("analytics db %s: %w", path, err)
	}
	if err := notServed(path, admin); err != nil {
		return nil, err
	}
	return store.Open(path, store.Options{Sync: store.SyncAlways})
}

// notServed fails when the Caddy whose admin API answers at admin lists
// path among its open databases.
func notServed(path, admin string) error {
	if admin == "" || admin == "off" {
		return nil
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(adminURL(admin) + "/analytics/sites")
	if err != nil {
		return nil // no Caddy there
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	var sites struct {
		Databases []struct {
			DB string `json:"db"`
		} `json:"databases"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&sites) != nil {
		return nil
	}
	want := canonicalPath(path)
	for _, d := range sites.Databases {
		if d.DB != ":memory:" && canonicalPath(d.DB) == want {
			return fmt.Errorf("%s is open in the Caddy at %s: stop it first (backup and verify work while it runs)", path, admin)
		}
	}
	return nil
}

// adminFlag adds --admin to a command that opens the file itself.
func adminFlag(c *cobra.Command) {
	c.Flags().String("admin", DefaultAdmin, "admin API of a running Caddy, to refuse a database it has open (\"off\" to skip)")
}

func adminOf(cmd *cobra.Command) string {
	a, _ := cmd.Flags().GetString("admin")
	return a
}

func backupCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "backup --db <file> --out <file> [--admin <addr>]",
		Short: "Copy the database consistently, also while Caddy serves it",
		Long: `Writes a consistent snapshot of the database to --out (a temporary file,
fsync, rename). When a Caddy whose admin API answers at --admin has the
database open, that Caddy writes the snapshot (every event acknowledged
before the backup began is in it); otherwise the file is opened directly.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "db", "out"); err != nil {
				return err
			}
			db, _ := cmd.Flags().GetString("db")
			out, _ := cmd.Flags().GetString("out")
			admin, _ := cmd.Flags().GetString("admin")
			res, err := Backup(db, out, admin)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup of %s written to %s (%d bytes, %s)\n", res.DB, res.Out, res.Bytes, res.Via)
			return nil
		},
	}
	c.Flags().String("db", "", "database file")
	c.Flags().String("out", "", "backup file to write")
	c.Flags().String("admin", DefaultAdmin, "admin API address of the running Caddy (\"off\" to open the file directly)")
	return c
}

// BackupResult says what Backup did.
type BackupResult struct {
	DB    string `json:"db"`
	Out   string `json:"out"`
	Bytes int64  `json:"bytes"`
	Via   string `json:"via"` // "admin API at <addr>" or "file"
}

// Backup snapshots db into out: through the admin API at admin when the
// Caddy there has db open, else by opening the file.
func Backup(db, out, admin string) (BackupResult, error) {
	absDB, err := filepath.Abs(db)
	if err != nil {
		return BackupResult{}, err
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return BackupResult{}, err
	}
	if admin != "" && admin != "off" {
		res, err := backupViaAdmin(absDB, absOut, admin)
		if err == nil {
			res.Via = "admin API at " + admin
			return res, nil
		}
		if !errors.Is(err, errNotServing) {
			return res, err
		}
	}
	s, err := openDirect(absDB, "off") // the admin API was asked above
	if err != nil {
		return BackupResult{}, fmt.Errorf("%w (is it open in a Caddy whose admin API is not at %s? pass --admin)", err, admin)
	}
	defer s.Close()
	n, err := s.BackupTo(absOut)
	return BackupResult{DB: absDB, Out: absOut, Bytes: n, Via: "file"}, err
}

// errNotServing means no running Caddy has the database open.
var errNotServing = errors.New("not open in a running Caddy")

func backupViaAdmin(db, out, admin string) (BackupResult, error) {
	var res BackupResult
	body, _ := json.Marshal(map[string]string{"db": db, "out": out})
	client := &http.Client{Timeout: 30 * time.Minute}
	req, err := http.NewRequest(http.MethodPost, adminURL(admin)+"/analytics/backup", bytes.NewReader(body))
	if err != nil {
		return res, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused") {
			return res, errNotServing
		}
		return res, errNotServing
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusOK:
		if err := json.Unmarshal(b, &res); err != nil {
			return res, fmt.Errorf("admin API answered %s", b)
		}
		return res, nil
	case http.StatusNotFound:
		// No such route (no module) or the database is not open there.
		return res, errNotServing
	}
	return res, fmt.Errorf("admin API at %s: %s: %s", admin, resp.Status, bytes.TrimSpace(b))
}

func adminURL(addr string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimSuffix(addr, "/")
	}
	return "http://" + addr
}

func restoreCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "restore --from <backup> --db <file>",
		Short: "Replace the database with a backup (Caddy must not have it open)",
		Long: `Verifies the backup, then replaces --db with it (temporary file, fsync,
rename). The file it replaces is kept as <db>.pre-restore-<time>. Refuses while
a running process has --db open: stop Caddy first, start it after.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "from", "db"); err != nil {
				return err
			}
			from, _ := cmd.Flags().GetString("from")
			db, _ := cmd.Flags().GetString("db")
			if err := notServed(db, adminOf(cmd)); err != nil {
				return err
			}
			kept, err := store.Restore(from, db)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s from %s\n", db, from)
			if kept != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "the previous file is kept as %s\n", kept)
			}
			return nil
		},
	}
	c.Flags().String("from", "", "backup file")
	c.Flags().String("db", "", "database file to replace")
	adminFlag(c)
	return c
}

func exportCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "export --db <file> [--site S] [--from T] [--to T] --format ndjson|csv|parquet [--out <file>]",
		Short: "Export events as NDJSON, CSV or Parquet",
		Long: `Streams the events of a site (every site when --site is empty) in time order,
in the columns of the dashboard's /api/export: uuid, event, distinct_id,
person_id, timestamp, properties (a JSON object). --from/--to take RFC 3339 or
YYYY-MM-DD (UTC); the default is everything. Without --out, writes to stdout.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "db"); err != nil {
				return err
			}
			f := cmd.Flags()
			db, _ := f.GetString("db")
			site, _ := f.GetString("site")
			fromS, _ := f.GetString("from")
			toS, _ := f.GetString("to")
			format, _ := f.GetString("format")
			out, _ := f.GetString("out")
			from, to, err := exportRange(fromS, toS)
			if err != nil {
				return err
			}
			s, err := openDirect(db, adminOf(cmd))
			if err != nil {
				return err
			}
			defer s.Close()
			sites := []string{site}
			if site == "" {
				sites = s.Sites()
			}
			ctx, cancel := signalContext()
			defer cancel()
			write := func(w io.Writer) error {
				if format == "parquet" && len(sites) > 1 {
					return errors.New("parquet export takes one --site at a time")
				}
				total := 0
				for i, st := range sites {
					if format == "csv" && i > 0 {
						// one header for the whole file
						w = &skipFirstLine{w: w}
					}
					n, err := exporter.Export(ctx, s, store.Query{Site: st, From: from, To: to}, format, w)
					total += n
					if err != nil {
						return err
					}
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "exported %d events\n", total)
				return nil
			}
			if out == "" || out == "-" {
				return write(cmd.OutOrStdout())
			}
			_, err = store.WriteFileAtomic(out, write)
			return err
		},
	}
	c.Flags().String("db", "", "database file")
	c.Flags().String("site", "", "site id (default: every site)")
	c.Flags().String("from", "", "start (inclusive), RFC 3339 or YYYY-MM-DD")
	c.Flags().String("to", "", "end (exclusive; a date includes that day)")
	c.Flags().String("format", "ndjson", "ndjson, csv or parquet")
	c.Flags().String("out", "", "file to write (default stdout)")
	adminFlag(c)
	return c
}

// skipFirstLine drops everything up to and including the first newline.
type skipFirstLine struct {
	w    io.Writer
	done bool
}

func (s *skipFirstLine) Write(p []byte) (int, error) {
	n := len(p)
	if !s.done {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return n, nil
		}
		s.done = true
		p = p[i+1:]
	}
	_, err := s.w.Write(p)
	return n, err
}

func exportRange(fromS, toS string) (time.Time, time.Time, error) {
	from, to := time.Unix(0, 0).UTC(), time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)
	parse := func(s string, end bool) (time.Time, error) {
		if t, err := time.Parse("2006-01-02", s); err == nil {
			if end {
				t = t.AddDate(0, 0, 1)
			}
			return t, nil
		}
		return time.Parse(time.RFC3339, s)
	}
	var err error
	if fromS != "" {
		if from, err = parse(fromS, false); err != nil {
			return from, to, fmt.Errorf("--from: %w", err)
		}
	}
	if toS != "" {
		if to, err = parse(toS, true); err != nil {
			return from, to, fmt.Errorf("--to: %w", err)
		}
	}
	return from, to, nil
}

func deletePersonCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "delete-person --db <file> --site S <id>",
		Short: "Delete a person, every event and recording of theirs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "db", "site"); err != nil {
				return err
			}
			db, _ := cmd.Flags().GetString("db")
			site, _ := cmd.Flags().GetString("site")
			s, err := openDirect(db, adminOf(cmd))
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.DeletePerson(context.Background(), site, args[0]); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no person %q in site %q", args[0], site)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted person %s of %s\n", args[0], site)
			return s.Close()
		},
	}
	c.Flags().String("db", "", "database file")
	c.Flags().String("site", "", "site id")
	adminFlag(c)
	return c
}

func verifyCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "verify --db <file>",
		Short: "Read the whole database and report damage with byte offsets",
		Long: `Reads every record of the database file (it never writes, so it may run
while Caddy serves) and decodes every event block. Prints each damaged place
with its byte offset and exits with status 1 if there is any.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "db"); err != nil {
				return err
			}
			db, _ := cmd.Flags().GetString("db")
			rep, err := store.VerifyFile(db)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: %d bytes, %d records, %d keys, %d event blocks, %d events\n",
				db, rep.Size, rep.Commands, rep.Keys, rep.Blocks, rep.Events)
			for _, d := range rep.Damage {
				fmt.Fprintf(out, "damaged at %s\n", d)
			}
			if !rep.OK() {
				cmd.SilenceUsage = true
				return fmt.Errorf("%s is damaged in %d place(s); first at byte offset %d", db, len(rep.Damage), rep.Damage[0].Offset)
			}
			fmt.Fprintln(out, "ok")
			return nil
		},
	}
	c.Flags().String("db", "", "database file")
	return c
}

// openDirectOrCreate opens the database file, creating it (and its
// directory) when missing.
func openDirectOrCreate(path, admin string) (*store.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := notServed(path, admin); err != nil {
		return nil, err
	}
	return store.Open(path, store.Options{Sync: store.SyncAlways})
}
