package convert

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/onnx2pt/onnx2pt/config"
)

// move is one file of a conversion going from its temporary name to its
// final one.
type move struct{ tmp, dst string }

// rename is os.Rename; tests replace it to fail at a chosen step.
var rename = os.Rename

// PublishPause, when set, runs between the moves of a publish: the
// end-to-end tests slow publishing down with it to interrupt it midway.
var PublishPause func()

// publishing is held while a publish is under way: a worker that must exit
// (its supervisor is gone) waits for it, so that it never leaves a model
// half-published on purpose (see HoldPublishing).
var publishing sync.Mutex

// HoldPublishing waits for a publish under way to end and keeps any other
// from starting: for a process about to exit.
func HoldPublishing() { publishing.Lock() }

// entry is one move as the journal records it: Old is where the previous
// version of Dst was kept, "" when there was none. Dir is set for a folder
// (the source artifact), whose previous version is renamed aside, not
// linked: folders cannot be hard-linked.
type entry struct {
	Tmp string `json:"tmp"`
	Dst string `json:"dst"`
	Old string `json:"old"`
	Dir bool   `json:"dir,omitempty"`
}

// publish moves a conversion's files into place all or nothing. Each
// target's previous version is kept (hard-linked aside, so readers never
// see it missing) until every new file is in place, and put back if any
// step fails. New files are synced before they are renamed and the
// directories after, so a crash cannot leave a renamed file whose content
// never reached the disk. The moves are made in order: the last (the
// report) vouches for the others only once they are in place.
//
// A journal beside the last file lists the moves before any is made and
// is removed once all are (the commit): a process killed in between leaves
// it, and Recover rolls the half-made publish back to the previous files.
func publish(moves []move) error {
	publishing.Lock()
	defer publishing.Unlock()
	entries := make([]entry, len(moves))
	for i, m := range moves {
		tmp, err := os.Lstat(m.tmp)
		if err != nil {
			return err
		}
		dir := tmp.IsDir()
		st, err := os.Lstat(m.dst)
		switch {
		case err == nil && dir && !st.IsDir():
			return fmt.Errorf("%s exists and is not a folder: remove it or choose another output", m.dst)
		case err == nil && !dir && !st.Mode().IsRegular():
			return fmt.Errorf("%s exists and is not a regular file: remove it or choose another output", m.dst)
		case err == nil:
			entries[i] = entry{Tmp: m.tmp, Dst: m.dst, Old: tempName(m.dst, "old"), Dir: dir}
		default:
			entries[i] = entry{Tmp: m.tmp, Dst: m.dst, Dir: dir}
		}
		if err := syncTree(m.tmp); err != nil {
			return err
		}
	}
	journal := tempName(moves[len(moves)-1].dst, "journal")
	held, err := writeJournal(journal, entries)
	if err != nil {
		return fmt.Errorf("writing %s: %w", journal, err)
	}
	defer held.Close() // its lock tells other runs this publish is live
	var done []entry
	undo := func(cause error) error {
		err := rollBack(done)
		if err == nil { // rolled back: the journal has nothing left to say
			os.Remove(journal)
		}
		return errors.Join(cause, err)
	}
	pause := func() {
		if PublishPause != nil {
			PublishPause()
		}
	}
	for _, e := range entries {
		pause()
		if e.Old != "" {
			keep := os.Link
			if e.Dir {
				keep = os.Rename
			}
			if err := keep(e.Dst, e.Old); err != nil {
				return undo(fmt.Errorf("keeping the previous %s: %w", e.Dst, err))
			}
		}
		done = append(done, e)
		pause()
		if err := rename(e.Tmp, e.Dst); err != nil {
			return undo(err)
		}
	}
	for _, dir := range folders(moves) {
		if err := syncFile(dir); err != nil {
			return undo(err)
		}
	}
	pause()
	// The commit: from here on the new files are the model's.
	if err := os.Remove(journal); err != nil {
		return undo(err)
	}
	syncFile(filepath.Dir(journal))
	for _, e := range entries {
		if e.Old != "" {
			os.RemoveAll(e.Old)
		}
	}
	return nil
}

// rollBack undoes the moves made, last first: a previous version goes back
// in place (renamed over the new file: never missing), a file that had
// none is removed. A move whose temporary file is still there was not made.
func rollBack(made []entry) error {
	var errs []error
	for i := len(made) - 1; i >= 0; i-- {
		e := made[i]
		renamed := !exists(e.Tmp)
		switch {
		case e.Old != "" && exists(e.Old):
			if e.Dir && renamed { // a folder cannot be renamed over another
				if err := os.RemoveAll(e.Dst); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			if err := os.Rename(e.Old, e.Dst); err != nil {
				errs = append(errs, fmt.Errorf("restoring %s (its previous version is in %s): %w", e.Dst, e.Old, err))
				continue
			}
			// Renaming a link onto the same file leaves both names.
			os.Remove(e.Old)
		case e.Old == "" && renamed:
			if err := os.RemoveAll(e.Dst); err != nil {
				errs = append(errs, err)
			}
		}
		os.RemoveAll(e.Tmp)
	}
	return errors.Join(errs...)
}

// writeJournal writes the journal and returns it open and locked.
func writeJournal(path string, entries []entry) (*os.File, error) {
	data, err := json.Marshal(entries)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncFile(filepath.Dir(path))
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return f, nil
}

// Recover puts m's outputs back in a whole state after a conversion whose
// process was killed: a publish cut short (its journal is still there) is
// rolled back to the previous files, and the temporary files of tempName
// and report.WriteFileAtomic are removed. No conversion of m may be under
// way: it is for a supervisor whose worker died.
func Recover(m config.Model) error { return recoverOutputs(m, 0) }

// staleAge is how old a temporary file must be for a starting run to take
// it for a leftover of a killed one rather than another run's work.
const staleAge = 24 * time.Hour

// RecoverStale is Recover for a run that starts, while another process
// may be converting m: a publish whose journal is locked is under way and
// left alone, and so are temporary files younger than staleAge.
func RecoverStale(m config.Model) error { return recoverOutputs(m, staleAge) }

func recoverOutputs(m config.Model, minAge time.Duration) error {
	paths := m.Paths()
	var errs []error
	journals, _ := filepath.Glob(hidden(paths.Report, "journal"))
	for _, journal := range journals {
		f, err := os.Open(journal)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			f.Close()
			return nil // a publish under way: its files are not leftovers
		}
		data, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var entries []entry
		if json.Unmarshal(data, &entries) == nil { // a torn journal: written before any move
			if !ownEntries(entries, paths) {
				errs = append(errs, fmt.Errorf("%s names files that are not %s's outputs; left as it is", journal, m.Output))
				continue
			}
			if err := rollBack(entries); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		os.Remove(journal)
	}
	for _, path := range paths.All() {
		for _, tag := range []string{"tmp", "old"} {
			leftovers, _ := filepath.Glob(hidden(path, tag))
			for _, f := range leftovers {
				if st, err := os.Lstat(f); err == nil && (tag == "old" || time.Since(st.ModTime()) >= minAge) {
					os.RemoveAll(f) // a folder for the source artifact
				}
			}
		}
	}
	return errors.Join(errs...)
}

// ownEntries tells whether a journal only moves m's own files: Recover
// must not rename or remove anything else, whatever a journal says.
func ownEntries(entries []entry, paths config.OutputPaths) bool {
	own := map[string]bool{}
	for _, p := range paths.All() {
		own[filepath.Clean(p)] = true
	}
	for _, e := range entries {
		dir := filepath.Dir(e.Dst)
		if !own[filepath.Clean(e.Dst)] ||
			filepath.Dir(e.Tmp) != dir || !strings.HasPrefix(filepath.Base(e.Tmp), "."+filepath.Base(e.Dst)+".tmp-") ||
			(e.Old != "" && (filepath.Dir(e.Old) != dir || !strings.HasPrefix(filepath.Base(e.Old), "."+filepath.Base(e.Dst)+".old-"))) {
			return false
		}
	}
	return true
}

// hidden is the glob of path's hidden files with tag (see tempName).
func hidden(path, tag string) string {
	return filepath.Join(filepath.Dir(path), "."+globEscape(filepath.Base(path))+"."+tag+"-*")
}

// globEscape quotes the characters filepath.Match treats specially.
func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`).Replace(s)
}

// tempName names a hidden file beside path, unique to this call:
// models/.resnet8.pt.tag-1a2b3c4d5e6f.
func tempName(path, tag string) string {
	var b [6]byte
	rand.Read(b[:])
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+tag+"-"+hex.EncodeToString(b[:]))
}

func folders(moves []move) []string {
	var dirs []string
	seen := map[string]bool{}
	for _, m := range moves {
		if dir := filepath.Dir(m.dst); !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// syncTree flushes a file, or a folder and the files in it, to disk.
func syncTree(path string) error {
	return filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&os.ModeSymlink != 0 {
			return nil
		}
		return syncFile(p)
	})
}

// syncFile flushes a file's or a directory's content to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
