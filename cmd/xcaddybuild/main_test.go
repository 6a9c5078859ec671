package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/xcaddy"
)

// repoRoot is where xcaddy.json and go.mod live, seen from this package.
const repoRoot = "../.."

// goModInfo returns the module path and the required Caddy version from go.mod.
func goModInfo(t *testing.T) (modPath, caddyVersion string) {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 2 && fields[0] == "module":
			modPath = fields[1]
		case len(fields) >= 2 && fields[0] == "github.com/caddyserver/caddy/v2":
			caddyVersion = fields[1]
		case len(fields) >= 3 && fields[0] == "require" && fields[1] == "github.com/caddyserver/caddy/v2":
			caddyVersion = fields[2]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if modPath == "" || caddyVersion == "" {
		t.Fatalf("go.mod: module path %q, caddy version %q: want both", modPath, caddyVersion)
	}
	return modPath, caddyVersion
}

// TestRecipe checks xcaddy.json against go.mod without building anything:
// same Caddy version, this module among the plugins, built from this checkout.
func TestRecipe(t *testing.T) {
	modPath, caddyVersion := goModInfo(t)
	b, err := loadBuilder(filepath.Join(repoRoot, "xcaddy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if b.CaddyVersion != caddyVersion {
		t.Errorf("xcaddy.json caddy_version = %q, go.mod requires caddy %s", b.CaddyVersion, caddyVersion)
	}

	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	// The module must be replaced by this checkout (the proxy does not have it).
	var replaced bool
	for _, r := range b.Replacements {
		old, _, _ := strings.Cut(string(r.Old), "@")
		if old == modPath {
			replaced = true
			if filepath.Clean(string(r.New)) != root {
				t.Errorf("replacement %s => %s: want the checkout %s", r.Old, r.New, root)
			}
		}
	}
	if !replaced {
		t.Errorf("xcaddy.json: no replacement of %s by the local checkout", modPath)
	}

	// And one plugin must be a package of this module that registers the
	// Caddy module, i.e. an importable directory with Go files in the checkout.
	var found bool
	for _, p := range b.Plugins {
		if p.PackagePath != modPath && !strings.HasPrefix(p.PackagePath, modPath+"/") {
			continue
		}
		found = true
		dir := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(strings.TrimPrefix(p.PackagePath, modPath), "/")))
		if !hasGoFiles(t, dir) {
			t.Errorf("plugin %s: no Go package in %s; xcaddy blank-imports the plugin path", p.PackagePath, dir)
		}
	}
	if !found {
		t.Errorf("xcaddy.json: no plugin from module %s", modPath)
	}
}

func hasGoFiles(t *testing.T, dir string) bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() && strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			return true
		}
	}
	return false
}

func TestParseBuilderRejects(t *testing.T) {
	for name, in := range map[string]string{
		"unknown field":   `{"caddy_version": "v2.11.9", "plugin": []}`,
		"no version":      `{"plugins": [{"module_path": "example.com/p"}]}`,
		"empty plugin":    `{"caddy_version": "v2.11.9", "plugins": [{"version": "v1.0.0"}]}`,
		"half replace":    `{"caddy_version": "v2.11.9", "replacements": [{"old": "example.com/p"}]}`,
		"trailing":        `{"caddy_version": "v2.11.9"} {}`,
		"not json object": `["v2.11.9"]`,
	} {
		if _, err := parseBuilder([]byte(in)); err == nil {
			t.Errorf("%s: parseBuilder(%s) succeeded, want an error", name, in)
		}
	}
}

func TestResolveReplacements(t *testing.T) {
	dir := filepath.FromSlash("/src/recipe")
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs // on Windows, gives the path a volume
	}
	b := xcaddy.Builder{Replacements: []xcaddy.Replace{
		xcaddy.NewReplace("example.com/a", "."),
		xcaddy.NewReplace("example.com/b", "./b"),
		xcaddy.NewReplace("example.com/c", "../c"),
		xcaddy.NewReplace("example.com/d", "example.com/fork v1.2.3"),
		xcaddy.NewReplace("example.com/e", dir),
		xcaddy.NewReplace("example.com/f@v1.0.0", ".."),
	}}
	resolveReplacements(&b, dir)
	want := []string{
		dir,
		filepath.Join(dir, "b"),
		filepath.Join(filepath.Dir(dir), "c"),
		"example.com/fork v1.2.3",
		dir,
		filepath.Dir(dir),
	}
	for i, r := range b.Replacements {
		if string(r.New) != want[i] {
			t.Errorf("replacement %s: new = %q, want %q", r.Old, r.New, want[i])
		}
	}
}
