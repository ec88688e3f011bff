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
		Use:   "inspect MODEL.onnx...",
		Short: "Describe ONNX models and whether onnx2torch can convert them",
		Long: `Load and check each ONNX model and print its inputs, outputs, opset and op
histogram; then ask onnx2torch's own converters about every node, and
list each node that would fail (name, op, domain, opset, reason) with the
normalisation pass that fixes it, if one does. Nothing is written. Exits 1
when a model cannot be loaded or has nodes that nothing fixes.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("name at least one ONNX model")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var problems []string
			for _, path := range args {
				if st, err := os.Stat(path); err != nil || st.IsDir() || st.Size() == 0 {
					problems = append(problems, fmt.Sprintf("%s: not a readable, non-empty file", path))
				}
			}
			if len(problems) > 0 {
				return &config.UsageError{Problems: problems}
			}
			sess, err := a.configuredSession(cmd.Context())
			if err != nil {
				return err
			}
			defer sess.Close()
			failed := 0
			var all []*convert.Inspection
			for _, path := range args {
				in, err := sess.Inspect(cmd.Context(), path)
				if err != nil {
					a.log.WithField("model", path).Error(err)
					failed++
					continue
				}
				if !in.Normalisation.Converts() {
					failed++
				}
				all = append(all, in)
				if !asJSON {
					printInspection(cmd.OutOrStdout(), in)
				}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(all); err != nil {
					return err
				}
			}
			if failed > 0 {
				return withCode(exitFailed, fmt.Errorf("%d of %d models cannot be converted as they are", failed, len(args)))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the descriptions as JSON")
	a.pythonFlags(cmd.Flags())
	return cmd
}

func printInspection(w io.Writer, in *convert.Inspection) {
	s, n := in.Source, in.Normalisation
	fmt.Fprintf(w, "%s\n", s.Path)
	fmt.Fprintf(w, "  opset %d, IR version %d, %d nodes", s.Opset, s.IRVersion, s.Nodes)
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
	switch {
	case len(n.Failures) == 0:
		fmt.Fprintln(w, "  converts as it is")
		return
	case n.Converts():
		fmt.Fprintf(w, "  converts after normalisation (%s); as it is, %d nodes fail:\n", passNames(n.Passes), len(n.Failures))
	default:
		fmt.Fprintf(w, "  does not convert: %d nodes fail, %d after normalisation:\n", len(n.Failures), len(n.Remaining))
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

func passNames(passes []report.Pass) string {
	names := make([]string, len(passes))
	for i, p := range passes {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}
