package cli

import (
	"errors"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/onnx2pt/onnx2pt/config"
)

func (a *app) convertCommand() *cobra.Command {
	var input, output string
	var failFast, force bool
	cmd := &cobra.Command{
		Use:   "convert",
		Short: "Convert ONNX models to PyTorch and verify them",
		Long: `Convert the models listed in the config file, or the one given by --input,
to PyTorch with onnx2torch; verify each against onnxruntime and write
<output>.report.json beside it.

Models are converted in worker processes, each with a warm interpreter,
--jobs at a time: a model that crashes or hangs its worker costs that
model alone. --shard I/N converts part I of N of the models, for N
machines sharing one config; --summary and --junit write every model's
outcome for CI.`,
		Example: `  onnx2pt convert --config config/onnx2pt.yaml
  onnx2pt convert --input models/resnet8.onnx --output models/resnet8.pt
  onnx2pt convert --config zoo.yaml --jobs 2 --summary out/summary.json --junit out/junit.xml
  onnx2pt convert --config zoo.yaml --shard 0/4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			if input != "" {
				if output == "" {
					output = strings.TrimSuffix(input, filepath.Ext(input)) + ".pt"
				}
				cfg.Models = []config.Model{{Input: input, Output: output, FromFlags: true}}
			} else if output != "" {
				return withCode(exitUsage, errors.New("--output needs --input"))
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			return a.convertAll(cmd, cfg, failFast, force)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&input, "input", "i", "", "ONNX model to convert (instead of the config's models)")
	f.StringVarP(&output, "output", "o", "", "where to write the PyTorch model (default: the input with .pt)")
	f.BoolVar(&failFast, "fail-fast", false, "stop at the first model that fails")
	f.BoolVarP(&force, "force", "f", false, "convert even models whose outputs are up to date")
	a.pythonFlags(f)
	f.Float64("atol", 0, "absolute tolerance vs onnxruntime (verify.atol)")
	f.Float64("rtol", 0, "relative tolerance vs onnxruntime (verify.rtol)")
	f.IntSlice("batch-sizes", nil, "batch sizes to probe, e.g. 1,4 (verify.batch_sizes)")
	f.Bool("locate", false, "find the first node that differs from onnxruntime even when verification passes (verify.locate)")
	a.bind(f, "verify.atol", "atol")
	a.bind(f, "verify.rtol", "rtol")
	a.bind(f, "verify.batch_sizes", "batch-sizes")
	a.bind(f, "verify.locate", "locate")
	f.IntP("jobs", "j", 0, "models converted at once, each in its own worker (run.jobs; 0: from cores and memory)")
	f.String("shard", "", "convert only part I of N of the models, e.g. 0/4 (run.shard)")
	f.String("summary", "", "write every model's outcome to this JSON file (run.summary)")
	f.String("junit", "", "write every model's outcome to this JUnit XML file (run.junit)")
	f.Duration("timeout", 0, "give up on a model after this long, e.g. 20m (run.timeout)")
	a.bind(f, "run.jobs", "jobs")
	a.bind(f, "run.shard", "shard")
	a.bind(f, "run.summary", "summary")
	a.bind(f, "run.junit", "junit")
	a.bind(f, "run.timeout", "timeout")
	return cmd
}
