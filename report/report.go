// Package report holds what a conversion found out, as Go structs, and
// writes it as JSON next to the converted model.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Report is the machine-readable record of one model's conversion.
type Report struct {
	Tool      Tool      `json:"tool"`
	StartedAt time.Time `json:"started_at"`
	// Status is StatusConverted, or another status with Failure saying why.
	Status  string   `json:"status"`
	Failure *Failure `json:"failure,omitempty"`
	// Fingerprint identifies everything the conversion depended on; a
	// later run with the same fingerprint and untouched outputs skips it.
	Fingerprint string `json:"fingerprint"`
	Source      Source `json:"source"`
	// Converters are the user's own converters (the converters setting)
	// that were loaded, with the nodes of this model each converted.
	Converters []Converter `json:"converters,omitempty"`
	// Normalisation is what the pre-flight found and what was rewritten.
	Normalisation Normalisation `json:"normalisation"`
	Output        Output        `json:"output"`
	Weights       Weights       `json:"weights"`
	// Float32Nodes are the nodes of a float16 or bfloat16 model that compute
	// in float32, torch having no 16-bit CPU kernel for them.
	Float32Nodes []string     `json:"float32_nodes,omitempty"`
	Probes       []Probe      `json:"probes"`
	Verification Verification `json:"verification"`
	// Artifacts are the portable formats tried, written or not.
	Artifacts    []Artifact        `json:"artifacts"`
	Timings      []Timing          `json:"timings"`
	TotalSeconds float64           `json:"total_seconds"`
	Versions     map[string]string `json:"versions"`
}

// Report statuses.
const (
	StatusConverted = "converted"
	StatusFailed    = "failed"
	// A worker that crashed or timed out leaves a report with only the
	// source, the failure and the time.
	StatusCrashed  = "crashed"
	StatusTimedOut = "timed_out"
)

// Failure is where and why a conversion failed.
type Failure struct {
	Stage   string `json:"stage"`
	Message string `json:"message"`
}

// Tool identifies the onnx2pt build that wrote the report.
type Tool struct {
	Name          string `json:"name"`
	Version       string `json:"version"`
	GoVersion     string `json:"go_version"`
	LinkedPython  string `json:"linked_python"`
	HelperVersion string `json:"helper_version"`
}

// Source describes the ONNX model.
type Source struct {
	Path      string `json:"path"`
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
	// ExternalData are the files holding the model's external tensors,
	// part of its content like the ONNX file itself.
	ExternalData []ExternalFile `json:"external_data"`
	IRVersion    int            `json:"ir_version"`
	Producer     string         `json:"producer"`
	Opset        int            `json:"opset"`
	Opsets       map[string]int `json:"opsets"`
	Inputs       []TensorSpec   `json:"inputs"`
	Outputs      []TensorSpec   `json:"outputs"`
	OpHistogram  map[string]int `json:"op_histogram"`
	Nodes        int            `json:"nodes"`
	// Precision is the coarsest floating type the graph computes in
	// (float16 and bfloat16 models are verified at tolerances that follow
	// from it).
	Precision string `json:"precision"`
	// Quantized models (QDQ pairs, QOperator ops, dynamic quantization) are
	// verified against onnxruntime with its graph optimisations off: its
	// fused integer kernels round differently from the specification.
	Quantized bool `json:"quantized"`
}

// TensorSpec is a declared input or output. Shape holds ints for fixed
// dimensions, strings for symbolic ones (e.g. "batch") and nil for unknown.
type TensorSpec struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []any  `json:"shape"`
}

// ShapeString renders the shape as Python would print a tuple, keeping
// symbolic dimensions by name: (batch, 32, 32, 3).
func (t TensorSpec) ShapeString() string {
	if t.Shape == nil {
		return "(unknown)"
	}
	parts := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		switch d := d.(type) {
		case nil:
			parts[i] = "?"
		default:
			parts[i] = fmt.Sprint(d)
		}
	}
	if len(parts) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// OpSummary lists the op histogram as "Add×4 Conv×9 …", sorted by op.
func (s Source) OpSummary() string {
	ops := make([]string, 0, len(s.OpHistogram))
	for op, n := range s.OpHistogram {
		ops = append(ops, fmt.Sprintf("%s×%d", op, n))
	}
	sort.Strings(ops)
	return strings.Join(ops, " ")
}

// ExternalFile is an external data file, located relative to the model's
// folder.
type ExternalFile struct {
	Location  string `json:"location"`
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
}

// Converter is a user converter that was loaded: a Python file or an
// importable module, registering with onnx2torch's add_converter.
type Converter struct {
	// Path is the file, as configured; empty for a module.
	Path string `json:"path,omitempty"`
	// Module is the name it was imported as: the module's own name, or for
	// a file its stem (or a name of its own where the stem was taken).
	// Checkpoints pickle its classes under this name.
	Module string `json:"module"`
	// SHA256 is the file's content as it ran; for a module, its file's,
	// for the record (modules count by name in the fingerprint).
	SHA256 string `json:"sha256,omitempty"`
	// Ops are the converters it registered.
	Ops []ConverterOp `json:"ops"`
	// Nodes are the nodes of the model's main graph it converted.
	Nodes []string `json:"nodes"`
}

// Name is how messages name a user converter: its path or module.
func (c Converter) Name() string {
	if c.Path != "" {
		return c.Path
	}
	return c.Module
}

// ConverterOp is one op version a user converter registered.
type ConverterOp struct {
	Domain  string `json:"domain"`
	Op      string `json:"op"`
	Version int    `json:"version"`
}

func (o ConverterOp) String() string { return fmt.Sprintf("%s %s-%d", o.Domain, o.Op, o.Version) }

// Normalisation is what the pre-flight found onnx2torch would fail on,
// and the passes that rewrote the graph so that it does not.
type Normalisation struct {
	// Failures are the nodes of the original graph that would fail.
	Failures []NodeFailure `json:"failures"`
	// Passes are the passes kept, in the order they ran.
	Passes []Pass `json:"passes"`
	// Remaining are the nodes that still fail after the passes.
	Remaining []NodeFailure `json:"remaining"`
	// Check compares the rewritten graph with the original under
	// onnxruntime; nil when no pass ran.
	Check *Verification `json:"check"`
}

// Converts reports whether the pre-flight expects the conversion to work.
func (n Normalisation) Converts() bool { return len(n.Remaining) == 0 }

// NodeFailure is a node onnx2torch cannot convert, with its reason.
type NodeFailure struct {
	Node   string `json:"node"`
	Op     string `json:"op"`
	Domain string `json:"domain"`
	Opset  int    `json:"opset"`
	Reason string `json:"reason"`
	// FixedBy names the pass that fixed it, if one did.
	FixedBy string `json:"fixed_by,omitempty"`
}

// Pass is one normalisation pass that ran, with counts of what it changed.
type Pass struct {
	Name    string         `json:"name"`
	Changes map[string]int `json:"changes"`
	Fixed   int            `json:"fixed"`
}

// Output describes the files written.
type Output struct {
	Path               string `json:"path"`
	SizeBytes          int64  `json:"size_bytes"`
	SHA256             string `json:"sha256"`
	StateDictPath      string `json:"state_dict_path"`
	StateDictSizeBytes int64  `json:"state_dict_size_bytes"`
	StateDictSHA256    string `json:"state_dict_sha256"`
	ReportPath         string `json:"report_path"`
}

// Weights counts the converted model's weights. onnx2torch keeps some
// weights (constants feeding MatMul/Add) as buffers rather than
// parameters; Total counts both. BatchNorm running statistics are state,
// reported apart and not in Total.
type Weights struct {
	Parameters              int64 `json:"parameters"`
	TrainableParameters     int64 `json:"trainable_parameters"`
	WeightBuffers           int64 `json:"weight_buffers"`
	NormalizationStatistics int64 `json:"normalization_statistics"`
	Total                   int64 `json:"total"`
}

// Probe is one forward pass with test tensors.
type Probe struct {
	Batch int `json:"batch"`
	// Kind is how its inputs were drawn: "normal" (N(0, 1); inputs of ops
	// defined for positive values alone drawn positive), "positive" or
	// "uniform" (when the model's outputs were mostly NaN or infinite on
	// the kinds before), "edge" (zeros, repeated values and large
	// magnitudes), or "data" (the user's).
	Kind string `json:"kind"`
	// Data is the user's input data the probe used, if any (Batch is 0).
	Data         string  `json:"data,omitempty"`
	InputShapes  [][]int `json:"input_shapes"`
	OutputShapes [][]int `json:"output_shapes"`
}

// Verification compares the reloaded PyTorch model with onnxruntime.
type Verification struct {
	Passed  bool           `json:"passed"`
	Atol    float64        `json:"atol"`
	Rtol    float64        `json:"rtol"`
	Outputs []OutputParity `json:"outputs"`
	// Reason says why verification failed where no difference does: an
	// output the probes left mostly NaN or infinite.
	Reason string `json:"reason,omitempty"`
	// Divergence is the first node, in graph order, whose output differs
	// from onnxruntime's beyond tolerance: looked for when verification
	// fails, or always with verify.locate.
	Divergence *Divergence `json:"divergence"`
}

// Artifact is a portable format of the converted model (TorchScript, a
// torch.export program), checked with torch alone: Path is empty, and
// Error says why, when it was not written.
type Artifact struct {
	Format    string `json:"format"`
	Path      string `json:"path,omitempty"`
	SizeBytes int64  `json:"size_bytes,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	// Load is how to load it, in Python.
	Load string `json:"load,omitempty"`
	// Batches are the batch sizes it was checked at (0: the user's data).
	Batches      []int         `json:"batches"`
	Verification *Verification `json:"verification"`
	// Rewrites counts the export-friendly replacements made, by module.
	Rewrites map[string]int `json:"rewrites,omitempty"`
	Error    string         `json:"error,omitempty"`
	// Node is the converted model's module that failed, "name (Class)".
	Node string `json:"node,omitempty"`
	// Class is the source artifact's nn.Module class in model.py.
	Class string `json:"class,omitempty"`
}

// MaxAbsDiff is the largest absolute difference over all outputs; nil
// when there were none or one was not finite.
func (v Verification) MaxAbsDiff() *float64 {
	var worst *float64
	for _, o := range v.Outputs {
		if o.MaxAbsDiff == nil {
			return nil
		}
		if worst == nil || *o.MaxAbsDiff > *worst {
			worst = o.MaxAbsDiff
		}
	}
	return worst
}

// Divergence locates where a converted model parts from onnxruntime.
type Divergence struct {
	Node       string   `json:"node"`
	Op         string   `json:"op"`
	Output     string   `json:"output"`
	MaxAbsDiff *float64 `json:"max_abs_diff"`
	MaxRelDiff *float64 `json:"max_rel_diff"`
	// Compared is how many intermediate tensors were compared up to it.
	Compared int `json:"compared"`
}

// OutputParity is the largest difference seen on one output over all
// probes, over the values that are finite on both sides (nil: the
// difference itself overflowed); MaxRelDiff is relative to the scale each
// element is judged at (its slice's, see the README's Verification). NaN
// and infinities must sit at the same places with the same values on both
// sides, the dtype must be onnxruntime's, and most expected values must be
// finite (FiniteShare), for an output to be within tolerance.
type OutputParity struct {
	Name          string   `json:"name"`
	DType         string   `json:"dtype"`
	ExpectedDType string   `json:"expected_dtype"`
	MaxAbsDiff    *float64 `json:"max_abs_diff"`
	MaxRelDiff    *float64 `json:"max_rel_diff"`
	// MaxExpected is the largest finite expected magnitude.
	MaxExpected         float64 `json:"max_expected"`
	NonfiniteMismatches int     `json:"nonfinite_mismatches"`
	// Elements is how many values the probes gave, Compared how many of
	// them were finite in the expected outputs, FiniteShare their ratio.
	Elements        int     `json:"elements"`
	Compared        int     `json:"compared"`
	FiniteShare     float64 `json:"finite_share"`
	WithinTolerance bool    `json:"within_tolerance"`
}

// Timing is how long one stage took.
type Timing struct {
	Stage   string  `json:"stage"`
	Seconds float64 `json:"seconds"`
}

// Read reads a report written by Write.
func Read(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Write writes r as indented JSON to path, atomically: readers see the old
// file or the new one, never a part.
func Write(path string, r *Report) error {
	data, err := Marshal(r)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data)
}

// Marshal is a report as Write writes it.
func Marshal(r *Report) ([]byte, error) {
	data, err := json.MarshalIndent(r, "", "  ")
	return append(data, '\n'), err
}

// WriteFileAtomic writes data to a temporary file beside path and renames
// it into place.
func WriteFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
