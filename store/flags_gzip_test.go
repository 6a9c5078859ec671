package store

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"sync"
	"testing"
)

// TestFlagsGzipAnswer: the precompressed gzip answer decompresses, with the
// standard library's reader, to exactly the plain answer, for answers of
// many shapes: many distinct ids and person properties (every outcome of
// every flag, in every order of neighbours), payloads longer than one
// deflate copy, answers larger than deflate's window, and the answer of
// a subset of the flags.
func TestFlagsGzipAnswer(t *testing.T) {
	db := openTest(t, ":memory:")
	defer db.Close()
	rng := rand.New(rand.NewSource(7))
	big := strings.Repeat(`{"k":"a long payload value that repeats itself"},`, 40) // ~2 KB
	for i := 1; i <= 140; i++ {
		var js string
		switch i % 7 {
		case 0, 1:
			js = fmt.Sprintf(`{"key":"rollout-%d","active":true,"filters":{"groups":[{"rollout_percentage":%d}]}}`, i, rng.Intn(101))
		case 2, 3:
			js = fmt.Sprintf(`{"key":"split-%d","active":true,"filters":{"groups":[{"properties":[{"key":"plan","value":"pro"}],"variant":"b"},{"rollout_percentage":70}],"multivariate":{"variants":[{"key":"control","rollout_percentage":34},{"key":"a","rollout_percentage":33},{"key":"b","rollout_percentage":33}]},"payloads":{"a":{"color":"blue"},"b":"\"green\""}}}`, i)
		case 4:
			js = fmt.Sprintf(`{"key":"big-%d","active":true,"filters":{"groups":[{"rollout_percentage":50}],"payloads":{"true":[%s{"i":%d}]}}}`, i, big, i)
		default:
			js = fmt.Sprintf(`{"key":"pro-%d","active":true,"filters":{"groups":[{"properties":[{"key":"plan","operator":"exact","value":"pro"}],"rollout_percentage":80},{"properties":[{"key":"email","operator":"regex","value":"@example\\.com$"}]}],"payloads":{"true":{"limit":%d}}}}`, i, i)
		}
		if _, err := db.SaveFlag(ctx, "s", mustFlag(t, js)); err != nil {
			t.Fatal(err)
		}
	}
	plans := []string{"pro", "free", ""}
	check := func(req FlagRequest, tail string) {
		t.Helper()
		wires := db.EvaluateFlagWires(req, nil)
		plain := append(AppendFlagsJSON(nil, wires), tail...)
		gz, ok := AppendFlagsGzip([]byte("prefix"), wires, plain)
		if !ok {
			// The first time goes plain; the second is compressed.
			gz, ok = AppendFlagsGzip([]byte("prefix"), wires, plain)
		}
		if !ok || !bytes.HasPrefix(gz, []byte("prefix")) {
			t.Fatalf("%s: not compressed", req.DistinctID)
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz[len("prefix"):]))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: %v; got %d bytes, want %d; first difference at %d", req.DistinctID, err, len(got), len(plain), diffAt(got, plain))
		}
	}
	total, zipped := 0, 0
	for i := 0; i < 300; i++ {
		req := FlagRequest{Site: "s", DistinctID: fmt.Sprintf("user-%d", rng.Intn(1000))}
		if p := plans[rng.Intn(3)]; p != "" {
			req.Props = append(req.Props, Prop{Key: "plan", Val: StringValue(p)})
		}
		if rng.Intn(2) == 0 {
			req.Props = append(req.Props, Prop{Key: "email", Val: StringValue("x@example.com")})
		}
		tail := `,"errorsWhileComputingFlags":false,"requestId":"0193a1b2-c3d4-7e5f-8a9b-000000000042"}`
		check(req, tail)
		if i == 0 {
			wires := db.EvaluateFlagWires(req, nil)
			plain := append(AppendFlagsJSON(nil, wires), tail...)
			gz, _ := AppendFlagsGzip(nil, wires, plain)
			total, zipped = len(plain), len(gz)
		}
		if i == 1 {
			// An answer never seen before goes plain.
			wires := db.EvaluateFlagWires(FlagRequest{Site: "s", DistinctID: "once", Props: Props{{Key: "plan", Val: StringValue("once")}}}, nil)
			if _, ok := AppendFlagsGzip(nil, wires, append(AppendFlagsJSON(nil, wires), '}')); ok {
				t.Error("an answer seen once was compressed")
			}
		}
	}
	if total < 40<<10 || zipped*2 > total { // payloads past the window go as literals
		t.Errorf("%d bytes compressed to %d", total, zipped)
	}
	t.Logf("an answer of %d bytes compressed to %d", total, zipped)
	// The same answer again: from the kept prefix, with another rest.
	for i := 0; i < 4; i++ {
		check(FlagRequest{Site: "s", DistinctID: "again"}, fmt.Sprintf(`,"requestId":"%d"}`, i))
		check(FlagRequest{Site: "s", DistinctID: "again"}, strings.Repeat(",", i)+"}")
	}
	check(FlagRequest{Site: "s", DistinctID: "subset", Keys: []string{"pro-6", "big-4", "split-2"}}, "}")
	// Many at once (go test -race): the kept compressions are shared.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				wires := db.EvaluateFlagWires(FlagRequest{Site: "s", DistinctID: fmt.Sprintf("shared-%d", i%15)}, nil)
				plain := append(AppendFlagsJSON(nil, wires), '}')
				gz, ok := AppendFlagsGzip(nil, wires, plain)
				if !ok {
					continue
				}
				zr, err := gzip.NewReader(bytes.NewReader(gz))
				if err == nil {
					var got []byte
					if got, err = io.ReadAll(zr); err == nil && !bytes.Equal(got, plain) {
						err = fmt.Errorf("differs at %d", diffAt(got, plain))
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A plain answer not laid out from the wires is refused, not garbled.
	wires := db.EvaluateFlagWires(FlagRequest{Site: "s", DistinctID: "x"}, nil)
	for range 3 {
		if _, ok := AppendFlagsGzip(nil, wires, []byte(`{"flags":{}}`)); ok {
			t.Error("a short plain answer was compressed")
		}
	}
}

func diffAt(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
