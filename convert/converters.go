package convert

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/pyembed"
	"github.com/onnx2pt/onnx2pt/report"
)

// ConverterError is a user converter that could not be loaded: Msg is one
// line naming it and the exception, Detail the Python traceback.
type ConverterError struct {
	Msg    string
	Detail string
}

func (e *ConverterError) Error() string { return e.Msg }

// LoadConverters imports the user's converters (the converters setting:
// .py files and module names) into the session's interpreter, where they
// register with onnx2torch's add_converter; every conversion and
// inspection after it uses them. Call it once, before any of them.
func (s *Session) LoadConverters(ctx context.Context, entries []string) error {
	if len(entries) == 0 {
		return nil
	}
	// A converter's module runs at import: Ctrl-C stops it there too.
	defer s.ip.InterruptOn(ctx)()
	specs := make([]map[string]string, len(entries))
	for i, e := range entries {
		if config.IsConverterFile(e) {
			specs[i] = map[string]string{"path": e}
		} else {
			specs[i] = map[string]string{"module": e}
		}
	}
	mod, err := s.ip.Import("onnx2pt_py.user_converters")
	if err != nil {
		return fmt.Errorf("loading the Python helpers: %w", err)
	}
	var loaded []report.Converter
	err = callInto(mod, "load", &loaded, specs)
	s.forwardPythonLogs(s.log, false)
	if err != nil {
		mod.Close()
		var pe *pyembed.Error
		if errors.As(err, &pe) {
			msg := pe.Message
			if pe.Type != userErrorType {
				msg = fmt.Sprintf("user converters failed to load: %s: %s", pe.Type, firstLine(pe.Message))
			}
			return &ConverterError{Msg: msg + " (run with --verbose for the traceback)", Detail: pe.Traceback}
		}
		return err
	}
	s.userConverters, s.converters = mod, loaded
	for _, c := range loaded {
		ops := make([]string, len(c.Ops))
		for i, op := range c.Ops {
			ops[i] = op.String()
		}
		s.log.WithFields(logrus.Fields{"converter": c.Name(), "module": c.Module, "sha256": c.SHA256}).
			Debugf("Loaded user converter %s: %s", c.Name(), strings.Join(ops, ", "))
	}
	return nil
}

// Converters are the user converters loaded into the session.
func (s *Session) Converters() []report.Converter { return slices.Clone(s.converters) }

// convertedBy fills in, for a copy of each loaded user converter, the nodes
// of model (the graph as converted, a Python ONNX ModelProto) it converts.
func (s *Session) convertedBy(model *pyembed.Object) ([]report.Converter, error) {
	if len(s.converters) == 0 {
		return nil, nil
	}
	var nodes [][]string
	if err := callInto(s.userConverters, "converted_nodes", &nodes, model); err != nil {
		return nil, err
	}
	out := s.Converters()
	for i := range out {
		out[i].Ops = slices.Clone(out[i].Ops)
		out[i].Nodes = []string{}
		if i < len(nodes) && nodes[i] != nil {
			out[i].Nodes = nodes[i]
		}
	}
	return out, nil
}

// logConvertedBy says which nodes each user converter converted.
func logConvertedBy(log logrus.FieldLogger, converters []report.Converter, verb string) {
	for _, c := range converters {
		entry := log.WithField("converter", c.Name())
		if len(c.Nodes) == 0 {
			entry.Debugf("User converter %s %s no node of this model", c.Name(), verb)
			continue
		}
		entry.Infof("User converter %s %s %d node%s: %s", c.Name(), verb, len(c.Nodes), plural(len(c.Nodes)), limitList(c.Nodes, 10))
	}
}

// converterIDs identify user converters in a fingerprint: a file by its
// content, a module by its name (its files are not known here).
func converterIDs(entries []string) []string {
	var out []string
	for _, e := range entries {
		if !config.IsConverterFile(e) {
			out = append(out, "module "+e)
			continue
		}
		sum, err := fileSHA256(e)
		if err != nil {
			sum = err.Error()
		}
		out = append(out, "file "+sum)
	}
	return out
}

// loadedIDs are converterIDs of the converters as they were loaded.
func loadedIDs(converters []report.Converter) []string {
	var out []string
	for _, c := range converters {
		if c.Path == "" {
			out = append(out, "module "+c.Module)
		} else {
			out = append(out, "file "+c.SHA256)
		}
	}
	return out
}

// convertersChanged says how the converters a job asks for differ from
// those recorded in an earlier conversion's report, or "".
func convertersChanged(recorded []report.Converter, entries []string) string {
	if len(recorded) != len(entries) {
		return "the user converters changed"
	}
	now := converterIDs(entries)
	for i, id := range loadedIDs(recorded) {
		if id != now[i] {
			return "user converter " + entries[i] + " changed"
		}
	}
	return ""
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// limitList joins the first n items, saying how many more there are.
func limitList(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}
