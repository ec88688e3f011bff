package cli

import (
	"errors"
	"slices"

	"github.com/spf13/cobra"

	"github.com/onnx2pt/onnx2pt/config"
)

func (a *app) convertCommand() *cobra.Command {
	var input, output string
	var failFast, force bool
	cmd := &cobra.Command{
		Use:   "convert [MODEL.onnx | DIR | GLOB]...",
		Short: "Convert ONNX models to PyTorch and verify them",
		Long: `Convert the models given as arguments (a folder means its *.onnx files; a
glob is expanded here if the shell did not), or else those listed in the
config file, to PyTorch with onnx2torch; verify each against onnxruntime
and write <output>.report.json beside it. The config file's settings apply
either way. Each model is written beside its input, or into the folder
-o names (a folder that exists, or a path ending in /); -o FILE is for one
model and ends in .pt, .pth or .pt2. Missing output folders are created.

Models are converted in worker processes, each with a warm interpreter,
--jobs at a time: a model that crashes or hangs its worker costs that
model alone. --shard I/N converts part I of N of the models, for N
machines sharing one config; --summary and --junit write every model's
outcome for CI.`,
		Example: `  onnx2pt convert --config config/onnx2pt.yaml
  onnx2pt convert models/resnet8.onnx
  onnx2pt convert a.onnx b.onnx -o out/
  onnx2pt convert 'models/*.onnx' -o out/
  onnx2pt convert --input models/resnet8.onnx --output models/resnet8.pt
  onnx2pt convert --config zoo.yaml --jobs 2 --summary out/summary.json --junit out/junit.xml
  onnx2pt convert --config zoo.yaml --shard 0/4`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Values the file gives that cannot be read come back with a
			// Config all the same: Validate reports them with the rest.
			cfg, err := a.loadConfig()
			if cfg == nil {
				return err
			}
			if cmd.Flags().Changed("artifacts") {
				cfg.Artifacts, _ = cmd.Flags().GetStringSlice("artifacts")
			}
			if input != "" {
				args = append([]string{input}, args...)
			}
			if len(args) > 0 {
				if cfg.Models, err = modelsFromArgs(args, output); err != nil {
					return withSettingsProblems(err, cfg)
				}
			} else if output != "" {
				return withCode(exitUsage, errors.New("--output needs models to convert: give them as arguments"))
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			// As for -o DIR/: every output's folder is made once the
			// settings are known to be good.
			if err := cfg.CreateOutputFolders(); err != nil {
				return withCode(exitUsage, err)
			}
			return a.convertAll(cmd, cfg, failFast, force)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&input, "input", "i", "", "ONNX model to convert (same as an argument)")
	f.StringVarP(&output, "output", "o", "", "the .pt file to write, or a folder for every model (default: beside each input)")
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
	f.StringSlice("artifacts", nil, "what to write: checkpoint, state_dict, torchscript, exported, source (artifacts; default: all, the last three where they succeed)")
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

// withSettingsProblems adds the settings' own problems to those of the
// command line's models, so that one run shows them all.
func withSettingsProblems(argsErr error, cfg *config.Config) error {
	var args, settings *config.UsageError
	if !errors.As(argsErr, &args) || !errors.As(cfg.ValidateSettings(), &settings) {
		return argsErr
	}
	return &config.UsageError{Where: settings.Where, Problems: append(slices.Clone(args.Problems), settings.Problems...)}
}
