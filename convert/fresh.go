package convert

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/python"
	"github.com/onnx2pt/onnx2pt/report"
)

// fingerprintFormat changes when what a conversion writes changes in a way
// the other inputs of the fingerprint do not show.
const fingerprintFormat = 3

// Fingerprint identifies a conversion's inputs: the ONNX file's content
// and that of its external data files, the model's probe data, the
// verification settings, the artifacts asked for, the user converters (a
// file by its content, a module by its name), the Python helpers and the
// virtualenv (which includes its packages' versions).
func Fingerprint(src report.Source, j config.Job, envID string) string {
	return fingerprint(src, j, envID, converterIDs(j.Converters))
}

// fingerprint is Fingerprint with the user converters' identities given:
// a conversion uses those of the converters it loaded.
func fingerprint(src report.Source, j config.Job, envID string, converters []string) string {
	data, _ := json.Marshal(struct {
		Format    int                   `json:"format"`
		Source    string                `json:"source"`
		External  []report.ExternalFile `json:"external"`
		Data      []string              `json:"data"`
		Verify    config.VerifyConfig   `json:"verify"`
		Artifacts config.Artifacts      `json:"artifacts"`
		// Left out when there are none: fingerprints from before there
		// were user converters stay valid.
		Converters []string `json:"converters,omitempty"`
		Helpers    string   `json:"helpers"`
		Env        string   `json:"env"`
	}{fingerprintFormat, src.SHA256, src.ExternalData, dataSHA256(j.Model.Data), j.Verify, j.Artifacts,
		converters, python.Version(), envID})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// dataSHA256 hashes the model's probe data: each file, or each file of a
// folder by name. What cannot be read hashes as the error, so a later run
// that can read it is not up to date.
func dataSHA256(d *config.Data) []string {
	var out []string
	for _, path := range d.Files() {
		entries, err := os.ReadDir(path)
		if err != nil { // a file
			sum, err := fileSHA256(path)
			if err != nil {
				sum = err.Error()
			}
			out = append(out, sum)
			continue
		}
		for _, e := range entries {
			// Followed like the loader follows them: a link to an .npy file
			// counts by its target's content. Folders are not read.
			file := filepath.Join(path, e.Name())
			if st, err := os.Stat(file); err == nil && st.IsDir() {
				continue
			}
			sum, err := fileSHA256(file)
			if err != nil {
				sum = err.Error()
			}
			out = append(out, e.Name()+":"+sum)
		}
	}
	return out
}

// UpToDate reports whether m's outputs are those a conversion with the same
// inputs wrote, untouched since; if not, it says why. It reads files only:
// no Python is needed to decide.
func UpToDate(j config.Job, envID string) (bool, string) {
	m := j.Model
	paths := m.Paths()
	rep, err := report.Read(paths.Report)
	if err != nil {
		return false, "no report from an earlier conversion"
	}
	if !rep.Verification.Passed {
		return false, "the last conversion did not pass verification"
	}
	if sum, err := fileSHA256(m.Input); err != nil || sum != rep.Source.SHA256 {
		return false, m.Input + " changed"
	}
	// External data locations are relative to the model's real folder, as
	// the helpers resolve them.
	dir, err := filepath.EvalSymlinks(filepath.Dir(m.Input))
	if err != nil {
		return false, err.Error()
	}
	for _, f := range rep.Source.ExternalData {
		if sum, err := fileSHA256(filepath.Join(dir, f.Location)); err != nil || sum != f.SHA256 {
			return false, "external data " + f.Location + " changed"
		}
	}
	if why := convertersChanged(rep.Converters, j.Converters); why != "" {
		return false, why
	}
	if rep.Fingerprint != Fingerprint(rep.Source, j, envID) {
		return false, "settings, probe data, helpers or Python packages changed"
	}
	out := rep.Output
	type written struct{ path, recorded, sha256 string }
	var files []written
	if j.Artifacts.Wants(config.ArtifactCheckpoint) {
		files = append(files, written{paths.Model, out.Path, out.SHA256})
	}
	if j.Artifacts.Wants(config.ArtifactStateDict) {
		files = append(files, written{paths.StateDict, out.StateDictPath, out.StateDictSHA256})
	}
	for _, a := range rep.Artifacts {
		if a.Path != "" {
			files = append(files, written{paths.Artifact(a.Format), a.Path, a.SHA256})
		}
	}
	for _, f := range files {
		hash := fileSHA256
		if st, err := os.Stat(f.path); err == nil && st.IsDir() { // the source artifact
			hash = func(dir string) (string, error) { sum, _, err := folderSHA256(dir); return sum, err }
		}
		// The report beside the files names them as the run that wrote it
		// saw them, relative to its working directory: by their names alone
		// they are the same from any directory.
		if sum, err := hash(f.path); err != nil || sum != f.sha256 || filepath.Base(f.recorded) != filepath.Base(f.path) {
			return false, f.path + " is missing or was changed"
		}
	}
	return true, ""
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
