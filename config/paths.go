package config

import (
	"path/filepath"
	"strings"
)

// OutputPaths are the files one model's conversion writes. Every name a
// conversion derives from the configured output is made here, so that
// validation sees every file a model writes and a new artifact cannot be
// written without being checked for collisions.
type OutputPaths struct {
	// Model is the converted model: the configured output itself.
	Model string
	// StateDict holds the state_dict alone: models/m.pt → models/m.state_dict.pt.
	StateDict string
	// Report is the JSON report: models/m.pt → models/m.report.json.
	Report string
	// FailedReport is the report of a failed conversion, kept apart so the
	// earlier good outputs keep theirs: models/m.pt → models/m.failed.report.json.
	FailedReport string
	// TorchScript and Exported are the portable artifacts:
	// models/m.pt → models/m.torchscript.pt and models/m.pt2.
	TorchScript string
	Exported    string
	// Source is the folder of the model as PyTorch code: models/m.pt →
	// models/m/ (model.py, model.safetensors, README.md).
	Source string
}

// OutputPathsFor returns the files written for a model whose output is
// output.
func OutputPathsFor(output string) OutputPaths {
	ext := filepath.Ext(output)
	base := strings.TrimSuffix(output, ext)
	exported := base + ".pt2"
	if exported == output { // an output named m.pt2 is the checkpoint
		exported = base + ".exported.pt2"
	}
	source := base
	if source == output { // an output without an extension
		source = base + ".source"
	}
	return OutputPaths{
		Model:        output,
		StateDict:    base + ".state_dict" + ext,
		Report:       base + ".report.json",
		FailedReport: base + ".failed.report.json",
		TorchScript:  base + ".torchscript" + ext,
		Exported:     exported,
		Source:       source,
	}
}

// Artifact is the file a format's artifact is written to.
func (p OutputPaths) Artifact(format string) string {
	switch format {
	case ArtifactCheckpoint:
		return p.Model
	case ArtifactStateDict:
		return p.StateDict
	case ArtifactTorchScript:
		return p.TorchScript
	case ArtifactExported:
		return p.Exported
	case ArtifactSource:
		return p.Source
	}
	return ""
}

// Paths returns the files m's conversion writes.
func (m Model) Paths() OutputPaths { return OutputPathsFor(m.Output) }

// All lists every file, the model first.
func (p OutputPaths) All() []string {
	return []string{p.Model, p.StateDict, p.Report, p.FailedReport, p.TorchScript, p.Exported, p.Source}
}
