package config

import (
	"slices"
	"strings"
)

// Artifact formats: what a conversion can write for a model.
const (
	// ArtifactCheckpoint is the .pt checkpoint: the pickled model with its
	// state_dict and metadata (loading it needs onnx2torch).
	ArtifactCheckpoint = "checkpoint"
	// ArtifactStateDict is the state_dict alone.
	ArtifactStateDict = "state_dict"
	// ArtifactTorchScript is a torch.jit.trace of the model (torch.jit.load).
	ArtifactTorchScript = "torchscript"
	// ArtifactExported is a torch.export program with dynamic dimensions
	// (torch.export.load).
	ArtifactExported = "exported"
	// ArtifactSource is a folder with the model as plain PyTorch code
	// (model.py) and its weights (model.safetensors).
	ArtifactSource = "source"
)

// ArtifactFormats are all formats, in the order they are made (the source
// after exported: its torch.export check must pass where that one did).
var ArtifactFormats = []string{ArtifactCheckpoint, ArtifactStateDict, ArtifactTorchScript, ArtifactExported, ArtifactSource}

// Portable tells whether a format loads with torch alone; those are made
// and checked after the checkpoint, and can fail on their own.
func Portable(format string) bool {
	return format == ArtifactTorchScript || format == ArtifactExported || format == ArtifactSource
}

// Artifacts is what to write for a model.
type Artifacts struct {
	Formats []string `json:"formats"`
	// Required is set when the user chose the formats: then a portable one
	// that fails fails the conversion. By default the portable formats are
	// written where they succeed.
	Required bool `json:"required"`
}

// Wants tells whether format is among the formats.
func (a Artifacts) Wants(format string) bool { return slices.Contains(a.Formats, format) }

// ArtifactsFor returns what to write for m: its own list, the global one,
// or by default every format, the portable ones where they succeed.
func (c *Config) ArtifactsFor(m Model) Artifacts {
	switch {
	case m.Artifacts != nil:
		return Artifacts{Formats: m.Artifacts, Required: true}
	case c.Artifacts != nil:
		return Artifacts{Formats: c.Artifacts, Required: true}
	}
	return Artifacts{Formats: ArtifactFormats}
}

func validateArtifacts(key string, formats []string, add func(string, ...any)) {
	if formats != nil && len(formats) == 0 {
		add("%s: empty; name at least one of %s", key, strings.Join(ArtifactFormats, ", "))
	}
	for _, f := range formats {
		if !slices.Contains(ArtifactFormats, f) {
			add("%s: %q is not one of %s", key, f, strings.Join(ArtifactFormats, ", "))
		}
	}
}

// Job is one model's conversion with the settings that apply to it.
type Job struct {
	Model     Model        `json:"model"`
	Verify    VerifyConfig `json:"verify"`
	Artifacts Artifacts    `json:"artifacts"`
	// Converters are the user converters the conversion loads (part of
	// its fingerprint).
	Converters []string `json:"converters,omitempty"`
}

// Job returns m's conversion with its effective settings.
func (c *Config) Job(m Model) Job {
	return Job{Model: m, Verify: c.Effective(m), Artifacts: c.ArtifactsFor(m), Converters: c.Converters}
}
