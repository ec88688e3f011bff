package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/convert"
)

func (a *app) convertCommand() *cobra.Command {
	var input, output string
	var failFast, force bool
	cmd := &cobra.Command{
		Use:   "convert",
		Short: "Convert ONNX models to PyTorch and verify them",
		Long: `Convert the models listed in the config file, or the one given by --input,
to PyTorch with onnx2torch; verify each against onnxruntime and write
<output>.report.json beside it. Python starts once for all models.`,
		Example: `  onnx2pt convert --config config/onnx2pt.yaml
  onnx2pt convert --input models/resnet8.onnx --output models/resnet8.pt`,
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
	return cmd
}

// convertAll converts every model that is not up to date, in one
// interpreter, and summarises. When all are up to date, Python never starts.
func (a *app) convertAll(cmd *cobra.Command, cfg *config.Config, failFast, force bool) error {
	ctx := cmd.Context()
	start := time.Now()
	env, err := a.provision(ctx, cfg)
	if err != nil {
		return err
	}
	pending := cfg.Models
	if !force {
		pending = a.outdated(cfg, env.ID)
		if len(pending) == 0 {
			return nil
		}
	}
	sess, err := a.startSession(ctx, env)
	if err != nil {
		return err
	}
	defer sess.Close()
	a.log.Debugf("Python ready after %.2fs", time.Since(start).Seconds())

	if len(cfg.Models) == 1 {
		m := pending[0]
		_, err := sess.Convert(ctx, m, cfg.Effective(m))
		a.logDetail(m, err)
		return withCode(exitFailed, err)
	}
	type outcome struct {
		model   config.Model
		err     error
		seconds float64
	}
	var outcomes []outcome
	failed := 0
	for i, m := range pending {
		if ctx.Err() != nil {
			return withCode(exitInterrupted, errors.New("interrupted"))
		}
		t := time.Now()
		_, err := sess.Convert(ctx, m, cfg.Effective(m))
		outcomes = append(outcomes, outcome{m, err, time.Since(t).Seconds()})
		if err != nil {
			failed++
			a.logDetail(m, err)
			a.log.WithField("model", m.Input).Error(err)
			if failFast && i < len(pending)-1 {
				a.log.Warnf("Stopping at the first failure (--fail-fast): %d models not converted", len(pending)-i-1)
				break
			}
		}
	}
	a.log.Infof("Converted %d of %d models in %.1fs (%d up to date)", len(outcomes)-failed, len(pending),
		time.Since(start).Seconds(), len(cfg.Models)-len(pending))
	for _, o := range outcomes {
		entry := a.log.WithFields(logrus.Fields{"model": o.model.Input, "seconds": fmt.Sprintf("%.2f", o.seconds)})
		if o.err != nil {
			entry.Warnf("  failed  %s", o.model.Input)
		} else {
			entry.Infof("  ok      %s → %s", o.model.Input, o.model.Output)
		}
	}
	if failed == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d of %d models failed", failed, len(pending))
	if notRun := len(pending) - len(outcomes); notRun > 0 {
		msg += fmt.Sprintf(", %d not converted (--fail-fast)", notRun)
	}
	return withCode(exitFailed, errors.New(msg))
}

// outdated returns the models whose outputs are not up to date, logging
// the others as skipped. Deciding reads files only.
func (a *app) outdated(cfg *config.Config, envID string) []config.Model {
	var pending []config.Model
	for _, m := range cfg.Models {
		log := a.log.WithField("model", m.Input)
		if fresh, why := convert.UpToDate(m, cfg.Effective(m), envID); !fresh {
			log.Debugf("Converting %s: %s", m.Input, why)
			pending = append(pending, m)
			continue
		}
		log.Infof("Up to date: %s (--force converts it again)", m.Output)
	}
	return pending
}

// logDetail logs a failed conversion's Python traceback at debug level.
func (a *app) logDetail(m config.Model, err error) {
	var ce *convert.Error
	if errors.As(err, &ce) && ce.Detail != "" {
		a.log.WithField("model", m.Input).Debug(ce.Detail)
	}
}
