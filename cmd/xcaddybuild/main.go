// Command xcaddybuild builds a custom Caddy from the repository's xcaddy.json
// with xcaddy's Go library (github.com/caddyserver/xcaddy).
//
// xcaddy's own CLI takes its recipe from flags and reads no file, so the build
// recipe (Caddy version, this module, other plugins) lives in xcaddy.json in
// the JSON shape of xcaddy.Builder, and this command feeds it to Builder.Build:
//
//	go run ./cmd/xcaddybuild                 # reads ./xcaddy.json, writes ./caddy
//	go run ./cmd/xcaddybuild -o /usr/local/bin/caddy -config path/to/xcaddy.json
//
// Relative local replacements ("." or "./..." / "../...") are resolved against
// the directory holding the JSON file, not the current directory, because xcaddy
// runs the build in a temporary module elsewhere.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/caddyserver/xcaddy"
)

func main() {
	log.SetFlags(0)
	configPath := flag.String("config", "xcaddy.json", "build recipe in the JSON shape of xcaddy.Builder")
	output := flag.String("o", "", `output binary (default "./caddy", "./caddy.exe" when building for Windows)`)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: xcaddybuild [-config xcaddy.json] [-o caddy]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}

	b, err := loadBuilder(*configPath)
	if err != nil {
		log.Fatalf("xcaddybuild: %v", err)
	}
	// Like the xcaddy CLI: CGO_ENABLED=1 in the environment turns cgo on.
	if os.Getenv("CGO_ENABLED") == "1" {
		b.Cgo = true
	}
	out := *output
	if out == "" {
		out = defaultOutput(b)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := b.Build(ctx, out); err != nil {
		log.Fatalf("xcaddybuild: %v", err)
	}
}

// loadBuilder reads the recipe at path into an xcaddy.Builder and makes its
// relative local replacement paths absolute, relative to path's directory.
func loadBuilder(path string) (xcaddy.Builder, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return xcaddy.Builder{}, err
	}
	b, err := parseBuilder(data)
	if err != nil {
		return xcaddy.Builder{}, fmt.Errorf("%s: %w", path, err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return xcaddy.Builder{}, err
	}
	resolveReplacements(&b, dir)
	return b, nil
}

// parseBuilder decodes a recipe strictly: an unknown field is most likely a
// typo that would otherwise silently drop part of the recipe.
func parseBuilder(data []byte) (xcaddy.Builder, error) {
	var b xcaddy.Builder
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return xcaddy.Builder{}, err
	}
	if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
		return xcaddy.Builder{}, errors.New("trailing data after the JSON object")
	}
	if b.CaddyVersion == "" {
		return xcaddy.Builder{}, errors.New("caddy_version is required (pin the version go.mod uses)")
	}
	for i, p := range b.Plugins {
		if p.PackagePath == "" {
			return xcaddy.Builder{}, fmt.Errorf("plugins[%d]: module_path is required", i)
		}
	}
	for i, r := range b.Replacements {
		if r.Old == "" || r.New == "" {
			return xcaddy.Builder{}, fmt.Errorf("replacements[%d]: old and new are required", i)
		}
	}
	return b, nil
}

// resolveReplacements makes every replacement that is a relative directory
// (as go.mod defines one: ".", "..", or starting with "./" or "../") absolute
// against dir. Module replacements ("path@version") and absolute paths are
// left alone.
func resolveReplacements(b *xcaddy.Builder, dir string) {
	for i, r := range b.Replacements {
		n := string(r.New)
		if isRelativeDir(n) {
			b.Replacements[i].New = xcaddy.ReplacementPath(filepath.Join(dir, filepath.FromSlash(n)))
		}
	}
}

func isRelativeDir(p string) bool {
	if p == "." || p == ".." || strings.HasPrefix(p, "./") || strings.HasPrefix(p, "../") {
		return true
	}
	return runtime.GOOS == "windows" && (strings.HasPrefix(p, `.\`) || strings.HasPrefix(p, `..\`))
}

// defaultOutput is ./caddy, with .exe when the target OS is Windows.
func defaultOutput(b xcaddy.Builder) string {
	goos := b.OS
	if goos == "" {
		goos = os.Getenv("GOOS")
	}
	if goos == "" {
		goos = runtime.GOOS
	}
	if goos == "windows" {
		return "." + string(filepath.Separator) + "caddy.exe"
	}
	return "." + string(filepath.Separator) + "caddy"
}
