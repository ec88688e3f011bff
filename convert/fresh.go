package convert

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/python"
	"github.com/onnx2pt/onnx2pt/report"
)

// fingerprintFormat changes when what a conversion writes changes in a way
// the other inputs of the fingerprint do not show.
const fingerprintFormat = 1

// Fingerprint identifies a conversion's inputs: the ONNX file's content,
// the verification settings, the Python helpers and the virtualenv.
func Fingerprint(sourceSHA256 string, v config.VerifyConfig, envID string) string {
	data, _ := json.Marshal(struct {
		Format  int                 `json:"format"`
		Source  string              `json:"source"`
		Verify  config.VerifyConfig `json:"verify"`
		Helpers string              `json:"helpers"`
		Env     string              `json:"env"`
	}{fingerprintFormat, sourceSHA256, v, python.Version(), envID})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// UpToDate reports whether m's outputs are those a conversion with the same
// inputs wrote, untouched since; if not, it says why. It reads files only:
// no Python is needed to decide.
func UpToDate(m config.Model, v config.VerifyConfig, envID string) (bool, string) {
	rep, err := report.Read(report.Path(m.Output))
	if err != nil {
		return false, "no report from an earlier conversion"
	}
	source, err := fileSHA256(m.Input)
	if err != nil {
		return false, err.Error()
	}
	switch {
	case rep.Source.SHA256 != source:
		return false, m.Input + " changed"
	case rep.Fingerprint != Fingerprint(source, v, envID):
		return false, "settings, helpers or Python packages changed"
	case !rep.Verification.Passed:
		return false, "the last conversion did not pass verification"
	}
	if sum, err := fileSHA256(m.Output); err != nil || sum != rep.Output.SHA256 {
		return false, m.Output + " is missing or was changed"
	}
	if fileSize(rep.Output.StateDictPath) != rep.Output.StateDictSizeBytes || rep.Output.StateDictPath != stateDictPath(m.Output) {
		return false, stateDictPath(m.Output) + " is missing or was changed"
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
