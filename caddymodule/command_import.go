package caddymodule

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/firstpartyhq/firstparty/importer"
)

func init() {
	extraCommands = append(extraCommands, importCommand)
}

func importCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "import --db <file> --site S --format posthog|goatcounter|umami|plausible|caddylog FILE...",
		Short: "Import history from PostHog, GoatCounter, Umami, Plausible CE or Caddy access logs",
		Long: `Imports files into a site of the database (Caddy must not have it open: stop
it, import, start it).

  posthog      PostHog event exports: JSON lines (batch export JSONLines) or
               CSV (*.csv) with uuid, event, distinct_id, timestamp, properties
  goatcounter  GoatCounter's CSV export (format 2)
  umami        Umami's event CSV (website_event rows with their session)
  plausible    Plausible CE's CSV export (the zip, or its CSV files): daily
               aggregates, kept as imported data and added into the overview
  caddylog     Caddy's JSON access logs: HTML pageviews (GET, 2xx/404/410,
               no bots, no assets) become $server_pageview events

Events keep their uuid or get one derived from the row, so importing the same
file again adds nothing. A bad row is reported with its line and skipped.
Files ending in .gz are read through gunzip.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "db", "site", "format"); err != nil {
				return err
			}
			db, _ := cmd.Flags().GetString("db")
			site, _ := cmd.Flags().GetString("site")
			format, _ := cmd.Flags().GetString("format")
			valid := false
			for _, f := range importer.Formats {
				valid = valid || f == format
			}
			if !valid {
				return fmt.Errorf("--format %q: want one of %s", format, strings.Join(importer.Formats, ", "))
			}
			s, err := openDirectOrCreate(db, adminOf(cmd))
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := signalContext()
			defer cancel()
			res, err := importer.Import(ctx, s, format, args, importer.Options{Site: site, Progress: cmd.ErrOrStderr(), UA: sharedUAParser})
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%d rows: %d events stored, %d already there, %d left out by the rules, %d days of aggregates, %d bad rows skipped\n",
				res.Rows, res.Stored, res.Duplicates, res.Ignored, res.Days, len(res.Bad))
			for _, b := range res.Bad {
				fmt.Fprintf(out, "skipped %s\n", b)
			}
			if err != nil {
				return err
			}
			return s.Close()
		},
	}
	c.Flags().String("db", "", "database file (created if missing)")
	c.Flags().String("site", "", "site id to import into")
	c.Flags().String("format", "", strings.Join(importer.Formats, ", "))
	adminFlag(c)
	return c
}
