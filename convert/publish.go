package convert

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/onnx2pt/onnx2pt/config"
)

// move is one file of a conversion going from its temporary name to its
// final one.
type move struct{ tmp, dst string }

// rename is os.Rename; tests replace it to fail at a chosen step.
var rename = os.Rename

// publish moves a conversion's files into place all or nothing. Each
// target's previous version is kept (hard-linked aside, so readers never
// see it missing) until every new file is in place, and put back if any
// step fails. New files are synced before they are renamed and the
// directories after, so a crash cannot leave a renamed file whose content
// never reached the disk. The moves are made in order: the last (the
// report) vouches for the others only once they are in place.
func publish(moves []move) error {
	for _, m := range moves {
		if st, err := os.Lstat(m.dst); err == nil && !st.Mode().IsRegular() {
			return fmt.Errorf("%s exists and is not a regular file: remove it or choose another output", m.dst)
		}
		if err := syncFile(m.tmp); err != nil {
			return err
		}
	}
	var kept []move      // previous versions: tmp is the link kept aside
	var created []string // new files that had no previous version
	undo := func(cause error) error {
		errs := []error{cause}
		for _, dst := range created {
			if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		for _, k := range kept { // renaming over the new file: never missing
			if err := os.Rename(k.tmp, k.dst); err != nil {
				errs = append(errs, fmt.Errorf("restoring %s (its previous version is in %s): %w", k.dst, k.tmp, err))
				continue
			}
			// Renaming a link onto the same file leaves both names.
			os.Remove(k.tmp)
		}
		return errors.Join(errs...)
	}
	for _, m := range moves {
		existed := false
		if _, err := os.Lstat(m.dst); err == nil {
			old := tempName(m.dst, "old")
			if err := os.Link(m.dst, old); err != nil {
				return undo(fmt.Errorf("keeping the previous %s: %w", m.dst, err))
			}
			kept, existed = append(kept, move{old, m.dst}), true
		}
		if err := rename(m.tmp, m.dst); err != nil {
			return undo(err)
		}
		if !existed {
			created = append(created, m.dst)
		}
	}
	dirs := map[string]bool{}
	for _, m := range moves {
		dirs[filepath.Dir(m.dst)] = true
	}
	for dir := range dirs {
		if err := syncFile(dir); err != nil {
			return undo(err)
		}
	}
	for _, k := range kept {
		os.Remove(k.tmp)
	}
	return nil
}

// RemoveTemps removes the temporary files a conversion of m may have left
// beside its outputs when its process was killed: the hidden files that
// tempName and report.WriteFileAtomic create.
func RemoveTemps(m config.Model) {
	for _, path := range m.Paths().All() {
		pattern := filepath.Join(filepath.Dir(path), "."+globEscape(filepath.Base(path))+".tmp-*")
		matches, _ := filepath.Glob(pattern)
		for _, tmp := range matches {
			os.Remove(tmp)
		}
	}
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
