package convert

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx2pt/onnx2pt/config"
)

// outputs lays out new temporary files for out/m.pt, out/m.state_dict.pt
// and out/m.report.json and, when old is set, earlier versions of each.
func outputs(t *testing.T, old bool) (string, []move) {
	t.Helper()
	dir := t.TempDir()
	var moves []move
	for _, name := range []string{"m.pt", "m.state_dict.pt", "m.report.json"} {
		dst := filepath.Join(dir, name)
		tmp := tempName(dst, "tmp")
		writeFile(t, tmp, "new "+name)
		if old {
			writeFile(t, dst, "old "+name)
		}
		moves = append(moves, move{tmp, dst})
	}
	return dir, moves
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// contents maps each file in dir to its content.
func contents(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(data)
	}
	return out
}

func TestPublishReplacesEveryFile(t *testing.T) {
	for _, old := range []bool{false, true} {
		dir, moves := outputs(t, old)
		if err := publish(moves); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"m.pt": "new m.pt", "m.state_dict.pt": "new m.state_dict.pt", "m.report.json": "new m.report.json"}
		if got := contents(t, dir); !maps.Equal(got, want) {
			t.Errorf("with earlier outputs %v: files %v, want %v", old, got, want)
		}
	}
}

// A failure at any step leaves every earlier output as it was (or no
// output, where there was none); the temporary files are the caller's.
func TestPublishFailureAtEachStepKeepsThePreviousOutputs(t *testing.T) {
	for _, old := range []bool{false, true} {
		for step := range 3 {
			dir, moves := outputs(t, old)
			calls := 0
			rename = func(from, to string) error {
				if calls++; calls == step+1 {
					return errors.New("injected failure")
				}
				return os.Rename(from, to)
			}
			err := publish(moves)
			rename = os.Rename
			if err == nil {
				t.Fatalf("step %d: no error", step)
			}
			got := contents(t, dir)
			for _, m := range moves {
				name := filepath.Base(m.dst)
				want, had := "old "+name, old
				if have, ok := got[name]; ok != had || (had && have != want) {
					t.Errorf("earlier outputs %v, failure at step %d: %s is %q (present %v)", old, step, name, have, ok)
				}
				delete(got, name)
				delete(got, filepath.Base(m.tmp))
			}
			if len(got) > 0 {
				t.Errorf("earlier outputs %v, failure at step %d: files left behind: %v", old, step, got)
			}
		}
	}
}

func TestPublishRefusesToReplaceADirectory(t *testing.T) {
	dir, moves := outputs(t, true)
	report := moves[2].dst
	os.Remove(report)
	if err := os.Mkdir(report, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := publish(moves); err == nil {
		t.Fatal("no error")
	}
	got := contents(t, dir)
	if got["m.pt"] != "old m.pt" || got["m.state_dict.pt"] != "old m.state_dict.pt" {
		t.Errorf("earlier outputs changed: %v", got)
	}
}

// snapshot copies dir, hidden files included, into a new folder, with the
// journal's paths moved along, as if a process publishing into dir had
// been killed at this point.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	snap := t.TempDir()
	for name, content := range contents(t, dir) {
		if strings.Contains(name, ".journal-") {
			content = strings.ReplaceAll(content, dir, snap)
		}
		writeFile(t, filepath.Join(snap, name), content)
	}
	return snap
}

func TestRecoverRollsBackAPublishKilledAtAnyStep(t *testing.T) {
	t.Cleanup(func() { PublishPause = nil })
	for _, old := range []bool{false, true} {
		dir, moves := outputs(t, old)
		want := map[string]string{}
		if old {
			for name, content := range contents(t, dir) {
				if !strings.HasPrefix(name, ".") {
					want[name] = content
				}
			}
		}
		var snaps []string
		PublishPause = func() { snaps = append(snaps, snapshot(t, dir)) }
		if err := publish(moves); err != nil {
			t.Fatal(err)
		}
		if len(snaps) != 2*len(moves)+1 {
			t.Fatalf("%d pauses, want %d", len(snaps), 2*len(moves)+1)
		}
		for step, snap := range snaps {
			if err := Recover(config.Model{Output: filepath.Join(snap, "m.pt")}); err != nil {
				t.Errorf("earlier outputs %v, killed at step %d: %v", old, step, err)
			}
			if got := contents(t, snap); !maps.Equal(got, want) {
				t.Errorf("earlier outputs %v, killed at step %d: recovered to %v, want %v", old, step, got, want)
			}
		}
	}
}

func TestRecoverStaleLeavesALivePublishAlone(t *testing.T) {
	dir, moves := outputs(t, true)
	entries := []entry{{Tmp: moves[0].tmp, Dst: moves[0].dst, Old: tempName(moves[0].dst, "old")}}
	if err := os.Link(moves[0].dst, entries[0].Old); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(moves[0].tmp, moves[0].dst); err != nil {
		t.Fatal(err)
	}
	held, err := writeJournal(tempName(filepath.Join(dir, "m.report.json"), "journal"), entries)
	if err != nil {
		t.Fatal(err)
	}
	before := contents(t, dir)
	m := config.Model{Output: filepath.Join(dir, "m.pt")}
	if err := RecoverStale(m); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, dir); !maps.Equal(got, before) {
		t.Errorf("a publish under way was touched: %v, was %v", got, before)
	}
	held.Close() // the publisher died
	if err := RecoverStale(m); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, dir)["m.pt"]; got != "old m.pt" {
		t.Errorf("m.pt is %q after recovery, want the previous version", got)
	}
}

// A folder (the source artifact) is published with the files: replaced
// whole, and put back whole when a later step fails.
func TestPublishAFolder(t *testing.T) {
	for _, fail := range []bool{false, true} {
		dir := t.TempDir()
		folder := filepath.Join(dir, "m")
		os.Mkdir(folder, 0o755)
		writeFile(t, filepath.Join(folder, "model.py"), "old")
		writeFile(t, filepath.Join(folder, "stale.txt"), "old only")
		tmp := tempName(folder, "tmp")
		os.Mkdir(tmp, 0o755)
		writeFile(t, filepath.Join(tmp, "model.py"), "new")
		report := filepath.Join(dir, "m.report.json")
		reportTmp := tempName(report, "tmp")
		writeFile(t, reportTmp, "new report")
		if fail {
			rename = func(from, to string) error {
				if to == report {
					return errors.New("disk full")
				}
				return os.Rename(from, to)
			}
		}
		err := publish([]move{{tmp, folder}, {reportTmp, report}})
		rename = os.Rename
		want := map[string]string{"model.py": "new"}
		if fail {
			want = map[string]string{"model.py": "old", "stale.txt": "old only"}
			if err == nil {
				t.Fatal("the failing publish succeeded")
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if got := contents(t, folder); !maps.Equal(got, want) {
			t.Errorf("failing %v: folder holds %v, want %v", fail, got, want)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("failing %v: %s left behind", fail, e.Name())
			}
		}
	}
}
