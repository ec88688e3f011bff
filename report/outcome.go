package report

import "time"

// Result is how one model of a batch ended.
type Result string

// Results, as the summary, the JUnit file and the progress display name them.
const (
	ResultConverted Result = "converted"  // converted and verified
	ResultUpToDate  Result = "up_to_date" // outputs already match the input; not converted again
	ResultFailed    Result = "failed"     // a stage failed; Stage and Reason say which and why
	ResultCrashed   Result = "crashed"    // its worker died (Signal names the signal)
	ResultTimedOut  Result = "timed_out"  // its worker was killed at the per-model timeout
	ResultNotRun    Result = "not_run"    // interrupted, or --fail-fast, before it ran
)

// Failed tells whether r counts against the batch (exit code 1).
func (r Result) Failed() bool {
	return r == ResultFailed || r == ResultCrashed || r == ResultTimedOut
}

// Outcome is one model's line in a batch's summary.
type Outcome struct {
	Input  string `json:"input"`
	Output string `json:"output"`
	Result Result `json:"result"`
	// Stage is the step that failed (load, normalise, convert, probe,
	// save, verify) when Result is failed.
	Stage string `json:"stage,omitempty"`
	// Reason is the one-line message for a model that did not convert.
	Reason string `json:"reason,omitempty"`
	// Signal names the signal that ended a crashed worker (e.g. SIGABRT).
	Signal string `json:"signal,omitempty"`
	// LastLines are the last lines a crashed or timed-out worker printed.
	LastLines []string `json:"last_lines,omitempty"`
	Seconds   float64  `json:"seconds"`
	// MaxAbsDiff is the largest absolute difference from the reference
	// over all outputs, when verification ran and every value was finite.
	MaxAbsDiff *float64 `json:"max_abs_diff,omitempty"`
	// Report is the report file written for the model: its report, or its
	// failure report; empty when none was written.
	Report string `json:"report,omitempty"`
	// PeakRSSBytes is the peak resident memory of the worker process that
	// converted the model, as of the end of the conversion.
	PeakRSSBytes int64 `json:"peak_rss_bytes,omitempty"`
	// CheckerPeakRSSBytes is the peak of the worker's children: the
	// process that checks portable artifacts with torch alone.
	CheckerPeakRSSBytes int64 `json:"checker_peak_rss_bytes,omitempty"`
	// ArtifactsMissing are the portable artifacts asked for by default that
	// could not be made for a converted model, with the reason: the model
	// converted, but not every file is there.
	ArtifactsMissing []MissingArtifact `json:"artifacts_missing,omitempty"`
}

// MissingArtifact is a portable artifact that was not written, and why.
type MissingArtifact struct {
	Format string `json:"format"`
	Reason string `json:"reason"`
}

// MissingArtifacts counts the artifacts missing over outcomes.
func MissingArtifacts(outcomes []Outcome) int {
	n := 0
	for _, o := range outcomes {
		n += len(o.ArtifactsMissing)
	}
	return n
}

// Summary is the outcome of a whole batch, as --summary writes it.
type Summary struct {
	Tool      Tool      `json:"tool"`
	StartedAt time.Time `json:"started_at"`
	Seconds   float64   `json:"seconds"`
	// Shard is this run's part of the model list, when it was sharded.
	Shard *Shard `json:"shard,omitempty"`
	Jobs  int    `json:"jobs"`
	// Counts has one entry per result that occurred.
	Counts map[Result]int `json:"counts"`
	// Models are in the order of the config (and of the command line).
	Models []Outcome `json:"models"`
	// InProgress is true in the summary rewritten as models finish, while
	// the batch runs: Models then holds those finished so far, and Pending
	// counts the rest. A batch that was killed leaves it so.
	InProgress bool `json:"in_progress,omitempty"`
	Pending    int  `json:"pending,omitempty"`
}

// Shard is part I (from 0) of N of a model list.
type Shard struct {
	Index int `json:"index"`
	Count int `json:"count"`
}
