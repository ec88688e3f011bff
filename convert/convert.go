// Package convert drives one model's conversion, step by step, through the
// Python helpers running in the embedded interpreter, and turns what they
// return into a report.Report.
package convert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/pyembed"
	"github.com/onnx2pt/onnx2pt/python"
	"github.com/onnx2pt/onnx2pt/report"
)

// StagePublish is the step that moves a verified conversion's files into
// place: short, and never to be cut in the middle.
const StagePublish = "publish"

// userErrorType is the Python exception the helpers raise for problems with
// the user's input; its message is shown as is, without a traceback.
const userErrorType = "onnx2pt_py.errors.UserError"

// Session converts models with one warm interpreter: Python starts and
// torch is imported once, however many models follow.
type Session struct {
	ip       *pyembed.Interpreter
	job      *pyembed.Object // the onnx2pt_py.job module
	bridge   *pyembed.Object // the onnx2pt_py.logbridge module
	versions map[string]string
	tool     report.Tool
	envID    string // the virtualenv's identity, for fingerprints
	log      logrus.FieldLogger
	// converters are the user converters loaded (LoadConverters), from
	// the onnx2pt_py.user_converters module.
	converters     []report.Converter
	userConverters *pyembed.Object

	// OnStage, when set, is told each step of a conversion as it starts,
	// so that a supervisor knows where a worker that dies was.
	OnStage func(stage string)
}

// Open prepares a session on a started interpreter whose sys.path holds the
// helpers (see python.Install); envID identifies its virtualenv.
func Open(ip *pyembed.Interpreter, envID, toolVersion string, log logrus.FieldLogger) (*Session, error) {
	s := &Session{ip: ip, envID: envID, log: log}
	var err error
	if s.bridge, err = ip.Import("onnx2pt_py.logbridge"); err != nil {
		return nil, fmt.Errorf("loading the Python helpers: %w", err)
	}
	if err := callInto(s.bridge, "install", nil); err != nil {
		s.Close()
		return nil, fmt.Errorf("routing Python's output into the log: %w", err)
	}
	if s.job, err = ip.Import("onnx2pt_py.job"); err != nil {
		s.Close()
		return nil, fmt.Errorf("loading the Python helpers: %w", err)
	}
	err = callInto(s.job, "warm_up", nil)
	s.forwardPythonLogs(log, false)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("importing torch, onnx2torch and onnxruntime: %w", err)
	}
	if err := callInto(s.job, "versions", &s.versions); err != nil {
		s.Close()
		return nil, err
	}
	s.tool = report.Tool{
		Name:          "onnx2pt",
		Version:       toolVersion,
		GoVersion:     runtime.Version(),
		LinkedPython:  pyembed.LinkedVersion(),
		HelperVersion: python.Version(),
	}
	return s, nil
}

// Versions are the Python side's package versions.
func (s *Session) Versions() map[string]string { return s.versions }

// Close releases the session's Python objects.
func (s *Session) Close() {
	s.job.Close()
	s.bridge.Close()
	s.userConverters.Close()
}

// forwardPythonLogs sends what Python printed, warned and logged since the
// last call into the Go log; quiet turns warnings into debug lines.
func (s *Session) forwardPythonLogs(log logrus.FieldLogger, quiet bool) {
	var records []struct {
		Level   string `json:"level"`
		Source  string `json:"source"`
		Message string `json:"message"`
	}
	if err := callInto(s.bridge, "drain", &records); err != nil {
		log.Debugf("reading Python's log records: %v", err)
		return
	}
	for _, r := range records {
		entry := log.WithField("source", r.Source)
		switch r.Level {
		case "debug":
			entry.Debug(r.Message)
		case "info":
			entry.Info(r.Message)
		case "warning":
			if quiet {
				entry.Debug(r.Message)
			} else {
				entry.Warn(r.Message)
			}
		default:
			entry.Error(r.Message)
		}
	}
}

// Error is a failed conversion. Its message is one line naming the model
// and what to do; Detail holds a Python traceback when there is one.
type Error struct {
	Input  string
	Stage  string
	Msg    string
	Detail string
}

func (e *Error) Error() string { return e.Msg }

// Convert converts m.Input to m.Output and verifies the result. Outputs are
// written to temporary files and renamed into place only after
// verification passed, so a failed run leaves existing outputs untouched.
//
// A failed conversion (other than an interrupted one) writes its report,
// marked failed, to the model's FailedReport path, which a later success
// removes, and returns it with the error; the outputs of an earlier
// conversion stay as they were.
func (s *Session) Convert(ctx context.Context, j config.Job) (*report.Report, error) {
	m := j.Model
	log := s.log.WithField("model", m.Input)
	r := &run{s: s, log: log, input: m.Input, rep: &report.Report{
		Tool: s.tool, StartedAt: time.Now().UTC(), Versions: s.versions,
	}}
	start := time.Now()
	defer r.cleanup()
	// Ctrl-C or SIGTERM stops the Python step under way, not just the next.
	defer s.ip.InterruptOn(ctx)()
	paths := m.Paths()
	err := r.convert(ctx, j, paths, start)
	if err == nil {
		os.Remove(paths.FailedReport)
		return r.rep, nil
	}
	var ce *Error
	if ctx.Err() == nil && errors.As(err, &ce) {
		r.rep.Status = report.StatusFailed
		r.rep.Failure = &report.Failure{Stage: ce.Stage, Message: ce.Msg}
		r.rep.TotalSeconds = time.Since(start).Seconds()
		if werr := report.Write(paths.FailedReport, r.rep); werr != nil {
			log.Warnf("Writing the failure report %s: %v", paths.FailedReport, werr)
		}
		return r.rep, err
	}
	return nil, err
}

// convert runs the steps of Convert, filling r.rep.
func (r *run) convert(ctx context.Context, j config.Job, paths config.OutputPaths, start time.Time) error {
	s, log := r.s, r.log
	m, v := j.Model, j.Verify

	log.Infof("Loading ONNX model from %s", m.Input)
	kwargs := pyembed.Kwargs{
		"batch_sizes": v.BatchSizes, "dims": v.Dims, "seed": v.Seed, "int_bounds": v.IntBounds,
		"atol": v.Atol, "rtol": v.Rtol, "locate": v.Locate, "artifacts": j.Artifacts.Formats,
	}
	if d := m.Data; d != nil {
		kwargs["data"], kwargs["expected"] = d.Inputs, d.Expected
	}
	job, err := s.job.CallMethod("ConversionJob", m.Input, kwargs)
	if err != nil {
		return r.fail("load", err)
	}
	defer job.Close()

	if err := r.step(ctx, "load", job, "load", &r.rep.Source); err != nil {
		return err
	}
	src := &r.rep.Source
	r.rep.Fingerprint = fingerprint(*src, j, s.envID, loadedIDs(s.converters))
	r.rep.Converters = s.Converters()
	log.WithFields(logrus.Fields{"opset": src.Opset, "ir_version": src.IRVersion, "nodes": src.Nodes}).
		Debugf("ONNX ops: %s", src.OpSummary())
	if src.Quantized {
		log.Info("Quantized model: checked against onnxruntime with its graph optimisations off (the specification's integer arithmetic)")
	}
	if src.Precision == "float16" || src.Precision == "bfloat16" {
		log.Infof("Computes in %s: verified at tolerances for that precision", src.Precision)
	}

	norm := &r.rep.Normalisation
	if err := r.step(ctx, "normalise", job, "normalise", norm); err != nil {
		return err
	}
	logNormalisation(log, norm)

	log.Infof("Converting to PyTorch with onnx2torch %s...", s.versions["onnx2torch"])
	var converted struct {
		Weights      report.Weights `json:"weights"`
		Float32Nodes []string       `json:"float32_nodes"`
	}
	if err := r.step(ctx, "convert", job, "convert", &converted); err != nil {
		return err
	}
	r.rep.Weights, r.rep.Float32Nodes = converted.Weights, converted.Float32Nodes
	log.Info("Model converted successfully")
	if err := r.convertedBy(job, "converted"); err != nil {
		return r.fail("convert", err)
	}
	if len(converted.Float32Nodes) > 0 {
		log.WithField("nodes", strings.Join(converted.Float32Nodes, ", ")).
			Warnf("%d nodes compute in float32: torch has no %s kernel for them", len(converted.Float32Nodes), src.Precision)
	}
	for _, in := range src.Inputs {
		log.WithField("input", in.Name).Infof("Input shape: %s", in.ShapeString())
	}
	for _, out := range src.Outputs {
		log.WithField("output", out.Name).Infof("Output shape: %s", out.ShapeString())
	}
	w := r.rep.Weights
	log.WithFields(logrus.Fields{
		"parameters": w.Parameters, "trainable": w.TrainableParameters,
		"weight_buffers": w.WeightBuffers, "batchnorm_statistics": w.NormalizationStatistics,
	}).Infof("Parameters: %d (%d in parameters, %d in weight buffers)", w.Total, w.Parameters, w.WeightBuffers)

	if err := r.step(ctx, "probe", job, "probe", &r.rep.Probes); err != nil {
		return err
	}
	for _, p := range r.rep.Probes {
		log.Debugf("Probe with batch %d: inputs %v, outputs %v", p.Batch, p.InputShapes, p.OutputShapes)
	}

	out := &r.rep.Output
	out.Path, out.StateDictPath, out.ReportPath = paths.Model, paths.StateDict, paths.Report
	tmpModel, tmpState := r.temp(paths.Model), r.temp(paths.StateDict)
	var saved struct {
		SHA256          string `json:"sha256"`
		StateDictSHA256 string `json:"state_dict_sha256"`
	}
	metadata := map[string]any{
		"created_by": "onnx2pt " + s.tool.Version,
		"source":     map[string]any{"file": filepath.Base(m.Input), "sha256": src.SHA256},
		"opset":      src.Opset,
		"inputs":     src.Inputs,
		"outputs":    src.Outputs,
		"versions":   s.versions,
	}
	if err := r.step(ctx, "save", job, "save", &saved, tmpModel, tmpState, metadata); err != nil {
		return err
	}
	out.SHA256, out.StateDictSHA256 = saved.SHA256, saved.StateDictSHA256

	ver := &r.rep.Verification
	reference := "onnxruntime"
	if m.Data != nil && m.Data.Expected != "" {
		reference = "the expected outputs"
	}
	if err := r.step(ctx, "verify", job, "verify", ver, tmpModel, saved.SHA256); err != nil {
		return err
	}
	for _, o := range ver.Outputs {
		log.WithFields(logrus.Fields{"output": o.Name, "max_rel_diff": fmtDiff(o.MaxRelDiff), "atol": ver.Atol, "rtol": ver.Rtol,
			"compared": fmt.Sprintf("%d of %d", o.Compared, o.Elements)}).
			Infof("Max abs diff vs %s: %s", reference, fmtDiff(o.MaxAbsDiff))
	}
	if d := ver.Divergence; d != nil {
		log.WithFields(logrus.Fields{"node": d.Node, "op": d.Op, "output": d.Output, "max_rel_diff": fmtDiff(d.MaxRelDiff)}).
			Warnf("First diverging node: %s (%s), output %q, max abs diff %s", d.Node, d.Op, d.Output, fmtDiff(d.MaxAbsDiff))
	}
	if !ver.Passed && ver.Reason != "" {
		return &Error{Input: m.Input, Stage: "verify", Msg: fmt.Sprintf(
			"%s: not verified: %s; no outputs written, details in %s", m.Input, ver.Reason, paths.FailedReport)}
	}
	if !ver.Passed {
		where := ""
		if d := ver.Divergence; d != nil {
			where = fmt.Sprintf(", starting at node %q (%s)", d.Node, d.Op)
		}
		return &Error{Input: m.Input, Stage: "verify", Msg: fmt.Sprintf(
			"%s: the converted model's outputs differ from %s beyond tolerance (%s; atol %g, rtol %g)%s; no outputs written, details in %s",
			m.Input, reference, worst(ver.Outputs), ver.Atol, ver.Rtol, where, paths.FailedReport)}
	}

	var moves []move
	if j.Artifacts.Wants(config.ArtifactCheckpoint) {
		moves = append(moves, move{tmpModel, paths.Model})
		out.SizeBytes = fileSize(tmpModel)
	} else {
		out.Path, out.SHA256 = "", ""
	}
	if j.Artifacts.Wants(config.ArtifactStateDict) {
		moves = append(moves, move{tmpState, paths.StateDict})
		out.StateDictSizeBytes = fileSize(tmpState)
	} else {
		out.StateDictPath, out.StateDictSHA256 = "", ""
	}
	portable, err := r.exportAll(ctx, job, j, paths, metadata)
	if err != nil {
		return err
	}
	moves = append(moves, portable...)

	r.rep.Status = report.StatusConverted
	r.rep.TotalSeconds = time.Since(start).Seconds()
	tmpReport := r.temp(paths.Report)
	data, err := report.Marshal(r.rep)
	if err == nil {
		err = os.WriteFile(tmpReport, data, 0o644)
	}
	if err != nil {
		return &Error{Input: m.Input, Stage: "save", Msg: fmt.Sprintf("writing report %s: %v; the previous outputs were kept", paths.Report, err)}
	}
	earlier := writtenBy(paths.Report)
	if s.OnStage != nil { // a supervisor lets a publish finish before it kills
		s.OnStage(StagePublish)
	}
	if err := publish(append(moves, move{tmpReport, paths.Report})); err != nil {
		return &Error{Input: m.Input, Stage: "save", Msg: fmt.Sprintf("%s: %v; the previous outputs were kept", m.Input, err)}
	}
	// What an earlier conversion wrote and this one did not (a format no
	// longer asked for, or one that failed this time) is not the model's
	// any more: the new report does not vouch for it. Only the model's own
	// artifact paths are candidates, whatever the old report says.
	for _, format := range config.ArtifactFormats {
		path := filepath.Clean(paths.Artifact(format))
		published := slices.ContainsFunc(moves, func(mv move) bool { return filepath.Clean(mv.dst) == path })
		if !published && slices.Contains(earlier, path) {
			removeOutput(path)
		}
	}
	for _, mv := range moves {
		log.Infof("Saved to %s", mv.dst)
	}
	log.Debugf("Report written to %s", paths.Report)
	return nil
}

// sourceFiles are what the source artifact's folder holds: a folder no
// longer asked for loses these, and itself only when nothing else is left.
var sourceFiles = []string{"model.py", "model.safetensors", "README.md", "__pycache__"}

// removeOutput removes an output an earlier conversion wrote.
func removeOutput(path string) {
	if st, err := os.Lstat(path); err == nil && st.IsDir() {
		for _, name := range sourceFiles {
			os.RemoveAll(filepath.Join(path, name))
		}
		os.Remove(path) // only if empty: what else is there is not ours
		return
	}
	os.Remove(path)
}

// writtenBy lists the outputs the report at path records, if any.
func writtenBy(path string) []string {
	rep, err := report.Read(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range []string{rep.Output.Path, rep.Output.StateDictPath} {
		if p != "" {
			out = append(out, filepath.Clean(p))
		}
	}
	for _, a := range rep.Artifacts {
		if a.Path != "" {
			out = append(out, filepath.Clean(a.Path))
		}
	}
	return out
}

// loadSnippets say how to load each portable format, given its path.
var loadSnippets = map[string]string{
	config.ArtifactTorchScript: "import torch\nmodel = torch.jit.load(%q)",
	config.ArtifactExported:    "import torch\nmodel = torch.export.load(%q).module()",
}

// exportAll makes and checks the portable artifacts j asks for, recording
// each in the report, and returns the files to publish. A format that
// fails is left out with a warning, or fails the conversion when the user
// asked for it.
func (r *run) exportAll(ctx context.Context, job *pyembed.Object, j config.Job, paths config.OutputPaths, metadata map[string]any) ([]move, error) {
	var moves []move
	for _, format := range j.Artifacts.Formats {
		if !config.Portable(format) {
			continue
		}
		final := paths.Artifact(format)
		tmp := r.temp(final)
		var a report.Artifact
		if format == config.ArtifactSource {
			if err := r.source(ctx, job, tmp, final, metadata, &a); err != nil {
				return nil, err
			}
		} else if err := r.step(ctx, "export", job, "export", &a, format, tmp, metadata); err != nil {
			return nil, err
		}
		if a.Error != "" {
			where := ""
			if a.Node != "" {
				where = " at " + a.Node
			}
			if j.Artifacts.Required {
				return nil, &Error{Input: j.Model.Input, Stage: "export", Msg: fmt.Sprintf(
					"%s: the %s artifact failed%s: %s; no outputs written", j.Model.Input, format, where, a.Error)}
			}
			r.log.WithField("artifact", format).Warnf("No %s artifact%s: %s", format, where, a.Error)
			r.rep.Artifacts = append(r.rep.Artifacts, a)
			continue
		}
		a.Path = final
		if format != config.ArtifactSource {
			a.SizeBytes, a.Load = fileSize(tmp), fmt.Sprintf(loadSnippets[format], final)
		}
		r.log.WithFields(logrus.Fields{"artifact": format, "batches": a.Batches}).
			Infof("Checked %s with torch alone: max abs diff %s", format, fmtDiff(a.Verification.MaxAbsDiff()))
		r.rep.Artifacts = append(r.rep.Artifacts, a)
		moves = append(moves, move{tmp, final})
	}
	return moves, nil
}

// source writes the model as PyTorch code into the folder tmp (published
// as final) and checks it with torch alone, filling a.
func (r *run) source(ctx context.Context, job *pyembed.Object, tmp, final string, metadata map[string]any, a *report.Artifact) error {
	var res struct {
		Batches      []int                `json:"batches"`
		Verification *report.Verification `json:"verification"`
		Error        string               `json:"error"`
		Node         string               `json:"node"`
		Load         string               `json:"load"`
		Summary      struct {
			Class string `json:"class"`
		} `json:"summary"`
	}
	if err := r.step(ctx, "export", job, "source", &res, tmp, metadata); err != nil {
		return err
	}
	*a = report.Artifact{Format: config.ArtifactSource, Batches: res.Batches, Verification: res.Verification,
		Error: res.Error, Node: res.Node}
	if a.Error != "" {
		os.RemoveAll(tmp)
		return nil
	}
	sum, size, err := folderSHA256(tmp)
	if err != nil {
		a.Error = err.Error()
		return nil
	}
	a.SHA256, a.SizeBytes, a.Class = sum, size, res.Summary.Class
	a.Load = strings.NewReplacer("PATH + '/model.safetensors'", strconv.Quote(filepath.Join(final, "model.safetensors")),
		"PATH", strconv.Quote(final)).Replace(res.Load)
	return nil
}

// folderSHA256 hashes a folder's files, by name and content, and sums
// their sizes: the identity of the source artifact.
func folderSHA256(dir string) (string, int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	var size int64
	for _, e := range entries { // sorted by name
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		sum, err := fileSHA256(path)
		if err != nil {
			return "", 0, err
		}
		fmt.Fprintf(h, "%s %s\n", sum, e.Name())
		size += fileSize(path)
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

// logNormalisation says what the pre-flight found and what each pass did.
func logNormalisation(log logrus.FieldLogger, n *report.Normalisation) {
	for _, f := range n.Failures {
		entry := log.WithFields(logrus.Fields{"node": f.Node, "op": f.Op, "domain": f.Domain, "opset": f.Opset})
		if f.FixedBy != "" {
			entry.Debugf("Pre-flight: %s fails as it is (%s); fixed by %s", f.Op, f.Reason, f.FixedBy)
		} else {
			entry.Debugf("Pre-flight: %s fails: %s", f.Op, f.Reason)
		}
	}
	for _, p := range n.Passes {
		log.WithField("pass", p.Name).Infof("Normalised with %s: %s (fixes %d nodes)", p.Name, formatCounts(p.Changes), p.Fixed)
	}
	if c := n.Check; c != nil {
		for _, o := range c.Outputs {
			log.WithField("output", o.Name).Debugf("Normalised graph vs original under onnxruntime: max abs diff %s", fmtDiff(o.MaxAbsDiff))
		}
	}
}

func formatCounts(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}

// Inspection is what Inspect finds out about a model without converting it.
type Inspection struct {
	Source        report.Source        `json:"source"`
	Normalisation report.Normalisation `json:"normalisation"`
	// Verdict is what the pre-flight predicts: VerdictConverts,
	// VerdictConvertsAfterNormalisation or VerdictCannotConvert.
	Verdict string `json:"verdict"`
	// Error says why the model could not be inspected at all (not loaded,
	// not checked, or normalised into a graph that computes otherwise); its
	// verdict is then VerdictCannotConvert.
	Error string `json:"error,omitempty"`
	// Converters are the user converters loaded, each with the nodes of
	// the model it converts.
	Converters []report.Converter `json:"converters,omitempty"`
}

// The verdicts of an Inspection.
const (
	// VerdictConverts: onnx2torch converts the graph as it is.
	VerdictConverts = "converts"
	// VerdictConvertsAfterNormalisation: some nodes fail as they are, and
	// the normalisation passes fix every one of them.
	VerdictConvertsAfterNormalisation = "converts after normalisation"
	// VerdictCannotConvert: nodes fail that no pass fixes, or the model
	// could not be inspected.
	VerdictCannotConvert = "cannot convert"
)

// Verdict is what n predicts for the conversion.
func Verdict(n report.Normalisation) string {
	switch {
	case !n.Converts():
		return VerdictCannotConvert
	case len(n.Failures) == 0:
		return VerdictConverts
	}
	return VerdictConvertsAfterNormalisation
}

// FailedInspection describes a model that Inspect could not describe:
// err says why, and it cannot be converted.
func FailedInspection(path string, err error) *Inspection {
	return &Inspection{Source: report.Source{Path: path}, Verdict: VerdictCannotConvert, Error: err.Error()}
}

// Inspect loads and checks an ONNX model, describes it and runs the
// pre-flight and the normalisation (checked under onnxruntime), without
// converting it: which nodes onnx2torch would fail on and which pass, if
// any, fixes each.
func (s *Session) Inspect(ctx context.Context, path string) (*Inspection, error) {
	r := &run{s: s, log: s.log.WithField("model", path), input: path, rep: &report.Report{}}
	defer s.ip.InterruptOn(ctx)()
	job, err := s.job.CallMethod("ConversionJob", path)
	if err != nil {
		return nil, r.fail("load", err)
	}
	defer job.Close()
	if err := r.step(ctx, "load", job, "load", &r.rep.Source); err != nil {
		return nil, err
	}
	if err := r.step(ctx, "normalise", job, "normalise", &r.rep.Normalisation); err != nil {
		return nil, err
	}
	if err := r.convertedBy(job, "converts"); err != nil {
		return nil, r.fail("normalise", err)
	}
	return &Inspection{Source: r.rep.Source, Normalisation: r.rep.Normalisation, Verdict: Verdict(r.rep.Normalisation),
		Converters: r.rep.Converters}, nil
}

// convertedBy records and logs the nodes of the graph to convert (the
// normalised one) that the user converters convert; verb says how.
func (r *run) convertedBy(job *pyembed.Object, verb string) error {
	if len(r.s.converters) == 0 {
		return nil
	}
	model, err := job.Attr("normalised")
	if err != nil {
		return err
	}
	defer model.Close()
	converters, err := r.s.convertedBy(model)
	if err != nil {
		return err
	}
	r.rep.Converters = converters
	logConvertedBy(r.log, converters, verb)
	return nil
}

// run is the state of one Convert call.
type run struct {
	s     *Session
	log   logrus.FieldLogger
	input string
	rep   *report.Report
	temps []string
}

// step calls job.method(args...), times it as stage and decodes its result.
func (r *run) step(ctx context.Context, stage string, job *pyembed.Object, method string, out any, args ...any) error {
	if err := ctx.Err(); err != nil {
		return &Error{Input: r.input, Stage: stage, Msg: fmt.Sprintf("%s: interrupted before %s", r.input, stage)}
	}
	if r.s.OnStage != nil {
		r.s.OnStage(stage)
	}
	t := time.Now()
	err := callInto(job, method, out, args...)
	r.rep.Timings = append(r.rep.Timings, report.Timing{Stage: stage, Seconds: time.Since(t).Seconds()})
	// What torch's exporters print while they try (graph dumps, hundreds
	// of lines) is detail: the artifact's outcome is logged on its own.
	r.s.forwardPythonLogs(r.log, stage == "export")
	if err != nil {
		return r.fail(stage, err)
	}
	return nil
}

// fail turns err into an *Error: the helpers' UserError messages as they
// are, anything else as a one-line summary with the traceback as detail.
func (r *run) fail(stage string, err error) error {
	var pe *pyembed.Error
	if !errors.As(err, &pe) {
		return &Error{Input: r.input, Stage: stage, Msg: fmt.Sprintf("%s: %s failed: %v", r.input, stage, err)}
	}
	switch pe.Type {
	case userErrorType:
		return &Error{Input: r.input, Stage: stage, Msg: pe.Message, Detail: pe.Traceback}
	case "KeyboardInterrupt":
		return &Error{Input: r.input, Stage: stage, Msg: fmt.Sprintf("%s: interrupted during %s; nothing was written", r.input, stage)}
	}
	msg := pe.Message
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return &Error{Input: r.input, Stage: stage, Detail: pe.Traceback,
		Msg: fmt.Sprintf("%s: %s failed: %s: %s (run with --verbose for the traceback)", r.input, stage, pe.Type, msg)}
}

// temp names a temporary file beside path, with path's extension (some
// writers check it), and remembers it for cleanup.
func (r *run) temp(path string) string {
	tmp := tempName(path, "tmp") + filepath.Ext(path)
	r.temps = append(r.temps, tmp)
	return tmp
}

// cleanup removes temporary files (and the source artifact's folder) that
// were not renamed into place.
func (r *run) cleanup() {
	for _, tmp := range r.temps {
		os.RemoveAll(tmp)
	}
}

// callInto calls obj.method(args...) and decodes the result into out,
// unless out is nil.
func callInto(obj *pyembed.Object, method string, out any, args ...any) error {
	res, err := obj.CallMethod(method, args...)
	if err != nil {
		return err
	}
	defer res.Close()
	if out == nil {
		return nil
	}
	return res.Decode(out)
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func fmtDiff(d *float64) string {
	if d == nil {
		return "not finite"
	}
	return fmt.Sprintf("%.3g", *d)
}

func worst(outputs []report.OutputParity) string {
	var parts []string
	for _, o := range outputs {
		switch {
		case o.WithinTolerance:
		case o.DType != o.ExpectedDType:
			parts = append(parts, fmt.Sprintf("%q is %s, onnxruntime gives %s", o.Name, o.DType, o.ExpectedDType))
		case o.NonfiniteMismatches > 0:
			parts = append(parts, fmt.Sprintf("%q has %d NaN or infinite values where onnxruntime's differ", o.Name, o.NonfiniteMismatches))
		default:
			parts = append(parts, fmt.Sprintf("%q max abs diff %s, max rel diff %s", o.Name, fmtDiff(o.MaxAbsDiff), fmtDiff(o.MaxRelDiff)))
		}
	}
	return strings.Join(parts, "; ")
}
