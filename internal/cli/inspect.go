package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/report"
)

func (a *app) inspectCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect MODEL.onnx...",
		Short: "Describe ONNX models and whether onnx2torch can convert them",
		Long: `Load and check each ONNX model and print its inputs, outputs, opset and op
histogram, and every op onnx2torch has no converter for. Nothing is
converted. Exits 1 when a model cannot be loaded or has unsupported ops.`,
		Args: cobra.MinimumNArgs(1),
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
			var all []*report.Source
			for _, path := range args {
				src, err := sess.Inspect(cmd.Context(), path)
				if err != nil {
					a.log.WithField("model", path).Error(err)
					failed++
					continue
				}
				if len(src.Unsupported) > 0 {
					failed++
				}
				all = append(all, src)
				if !asJSON {
					printSource(cmd.OutOrStdout(), src)
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

func printSource(w io.Writer, s *report.Source) {
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
	if len(s.Unsupported) == 0 {
		fmt.Fprintln(w, "  onnx2torch converts every op")
		return
	}
	var missing []string
	for _, u := range s.Unsupported {
		missing = append(missing, fmt.Sprintf("%s (%s, opset %d)", u.Op, u.Domain, u.Opset))
	}
	fmt.Fprintf(w, "  onnx2torch cannot convert: %s\n", strings.Join(missing, ", "))
}
