package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/convert"
	"github.com/onnx2pt/onnx2pt/report"
)

func (a *app) inspectCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect [MODEL.onnx | DIR | GLOB]...",
		Short: "Describe ONNX models and whether onnx2torch can convert them",
		Long: `Load and check each ONNX model (a folder means its *.onnx files; a glob is
expanded here if the shell did not) and print its inputs, outputs, opset
and op histogram; then ask onnx2torch's own converters about every node,
and list each node that would fail (name, op, domain, opset, reason) with
the normalisation pass that fixes it, if one does. Each model's verdict is
"converts", "converts after normalisation" or "cannot convert"; the last
line counts them, and --json gives them as "verdict" and "summary".
Nothing is written. Exits 1 when a model cannot be loaded or has nodes
that nothing fixes.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("name at least one ONNX model")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			paths, err := inspectInputs(args)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			sess, err := a.configuredSession(ctx)
			if err != nil {
				return err
			}
			defer sess.Close()
			out := cmd.OutOrStdout()
			var all []*convert.Inspection
			for _, path := range paths {
				in, err := sess.Inspect(ctx, path)
				if err != nil {
					if ctx.Err() != nil {
						return fmt.Errorf("interrupted after inspecting %d of %d models", len(all), len(paths))
					}
					var ce *convert.Error
					if errors.As(err, &ce) && ce.Detail != "" {
						a.log.WithField("model", path).Debug("Python traceback:\n" + ce.Detail)
					}
					in = convert.FailedInspection(path, err)
				}
				all = append(all, in)
				if !asJSON {
					printInspection(out, in)
				}
			}
			sum := summarise(all)
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(inspectOutput{Models: all, Summary: sum}); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(out, sum)
			}
			if sum.CannotConvert > 0 {
				return withCode(exitFailed, errors.New(sum.failure()))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the descriptions as JSON: {models: [...], summary: {...}}")
	a.pythonFlags(cmd.Flags())
	return cmd
}

// inspectInputs lists the ONNX files the arguments name, as convert does:
// a file as it is, a folder as its *.onnx files, a glob as its matches. A
// path that does not exist gets convert's message, and so does an empty
// file or a folder among a glob's matches, before Python starts.
func inspectInputs(args []string) ([]string, error) {
	var paths, problems []string
	for _, arg := range args {
		found, err := expandInput(arg)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for _, path := range found {
			if st, err := os.Stat(path); err == nil && st.IsDir() {
				problems = append(problems, fmt.Sprintf("%s is a directory, not an ONNX file", path))
				continue
			} else if err == nil && st.Size() == 0 {
				problems = append(problems, fmt.Sprintf("%s is empty, not an ONNX model", path))
				continue
			}
			paths = append(paths, path)
		}
	}
	if len(problems) > 0 {
		return nil, &config.UsageError{Problems: problems}
	}
	return paths, nil
}

// inspectOutput is what inspect --json prints.
type inspectOutput struct {
	Models  []*convert.Inspection `json:"models"`
	Summary inspectSummary        `json:"summary"`
}

// inspectSummary counts the models by verdict.
type inspectSummary struct {
	Models                     int `json:"models"`
	Converts                   int `json:"converts"`
	ConvertsAfterNormalisation int `json:"converts_after_normalisation"`
	CannotConvert              int `json:"cannot_convert"`
}

func summarise(all []*convert.Inspection) inspectSummary {
	s := inspectSummary{Models: len(all)}
	for _, in := range all {
		switch in.Verdict {
		case convert.VerdictConverts:
			s.Converts++
		case convert.VerdictConvertsAfterNormalisation:
			s.ConvertsAfterNormalisation++
		default:
			s.CannotConvert++
		}
	}
	return s
}

// String is inspect's last line: "8 models: 5 convert, 2 convert after
// normalisation, 1 cannot convert", leaving out the verdicts no model got.
func (s inspectSummary) String() string {
	var parts []string
	if s.Converts > 0 {
		parts = append(parts, plural(s.Converts, "converts", "convert"))
	}
	if s.ConvertsAfterNormalisation > 0 {
		parts = append(parts, plural(s.ConvertsAfterNormalisation, "converts after normalisation", "convert after normalisation"))
	}
	if s.CannotConvert > 0 {
		parts = append(parts, fmt.Sprintf("%d cannot convert", s.CannotConvert))
	}
	return plural(s.Models, "model", "models") + ": " + strings.Join(parts, ", ")
}

// failure is the error inspect exits with when some model cannot convert.
func (s inspectSummary) failure() string {
	if s.Models == 1 {
		return "the model cannot convert"
	}
	return fmt.Sprintf("%d of %d models cannot convert", s.CannotConvert, s.Models)
}

// plural is "1 node" or "2 nodes": n with the form of the word that fits.
func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

func printInspection(w io.Writer, in *convert.Inspection) {
	s, n := in.Source, in.Normalisation
	fmt.Fprintf(w, "%s\n", s.Path)
	if in.Error != "" {
		fmt.Fprintf(w, "  %s: %s\n", convert.VerdictCannotConvert, in.Error)
		return
	}
	fmt.Fprintf(w, "  opset %d, IR version %d, %s", s.Opset, s.IRVersion, plural(s.Nodes, "node", "nodes"))
	if s.Producer != "" {
		fmt.Fprintf(w, ", made by %s", s.Producer)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, t := range s.Inputs {
		fmt.Fprintf(tw, "  input\t%s\t%s\t%s\n", t.Name, t.DType, t.ShapeString())
	}
	for _, t := range s.Outputs {
		fmt.Fprintf(tw, "  output\t%s\t%s\t%s\n", t.Name, t.DType, t.ShapeString())
	}
	tw.Flush()
	fmt.Fprintf(w, "  ops: %s\n", s.OpSummary())
	fmt.Fprintf(w, "  %s\n", verdictLine(in))
	if len(n.Failures) == 0 {
		return
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range n.Failures {
		fix := "fixed by " + f.FixedBy
		if f.FixedBy == "" {
			fix = "not fixed"
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s/%d\t%s\t%s\n", f.Node, f.Op, f.Domain, f.Opset, fix, f.Reason)
	}
	tw.Flush()
}

// verdictLine is a model's verdict with what it rests on; a colon ends it
// when the failing nodes follow.
func verdictLine(in *convert.Inspection) string {
	n := in.Normalisation
	failing := plural(len(n.Failures), "node fails", "nodes fail")
	switch in.Verdict {
	case convert.VerdictConverts:
		return "converts as it is"
	case convert.VerdictConvertsAfterNormalisation:
		return fmt.Sprintf("%s (%s); as it is, %s:", in.Verdict, passNames(n.Passes), failing)
	}
	if len(n.Passes) == 0 {
		return fmt.Sprintf("%s: %s, and no normalisation pass fixes %s:", in.Verdict, failing, pronoun(len(n.Failures)))
	}
	return fmt.Sprintf("%s: %s; after normalisation (%s), %s:", in.Verdict, failing, passNames(n.Passes),
		plural(len(n.Remaining), "still fails", "still fail"))
}

func pronoun(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

func passNames(passes []report.Pass) string {
	names := make([]string, len(passes))
	for i, p := range passes {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}
