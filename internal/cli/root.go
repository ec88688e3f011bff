// Package cli is onnx2pt's command line: the cobra commands, flag and
// config wiring, logging setup and the mapping of errors to exit codes.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/onnx2pt/onnx2pt/config"
)

// app is what every command shares: settings, logger and output streams.
type app struct {
	v      *viper.Viper
	log    *logrus.Logger
	stdout io.Writer
	stderr io.Writer

	configFile string
	verbose    bool
	quiet      bool
}

// Main runs the command line with args and returns the exit code.
func Main(args []string) int {
	return run(context.Background(), args, os.Stdout, os.Stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{v: config.NewViper(), log: logrus.New(), stdout: stdout, stderr: stderr}
	a.log.SetOutput(stderr)
	// The first signal stops the work cleanly; a second one, with the
	// default handler back in place, ends the process at once.
	context.AfterFunc(ctx, func() {
		stop()
		a.log.Warn("Interrupted: stopping (again to quit at once)")
	})
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitFailed
	var ee *exitError
	var ue *config.UsageError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case errors.As(err, &ue):
		code = exitUsage
	case isFlagError(err):
		code = exitUsage
	}
	if ctx.Err() != nil {
		code = exitInterrupted
	}
	fmt.Fprintln(stderr, "onnx2pt:", err)
	if isFlagError(err) {
		fmt.Fprintln(stderr, "Run 'onnx2pt --help' for usage.")
	}
	return code
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "onnx2pt",
		Short:         "Convert ONNX models to PyTorch, verified against onnxruntime",
		Long:          "onnx2pt converts ONNX models to PyTorch with onnx2torch inside an embedded CPython,\nverifies the result against onnxruntime and writes a JSON report beside it.",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := a.bindFlags(cmd); err != nil {
				return err
			}
			return a.setupLogging()
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return flagError{err} })
	f := root.PersistentFlags()
	f.StringVarP(&a.configFile, "config", "c", "", "config file (default: onnx2pt.yaml in the current directory, if present)")
	f.String("log-level", "", "log level: trace, debug, info, warn, error (log.level)")
	f.String("log-format", "", "log format: text or json (log.format)")
	f.BoolVarP(&a.verbose, "verbose", "v", false, "verbose logs, with Python tracebacks (log.level=debug)")
	f.BoolVarP(&a.quiet, "quiet", "q", false, "log warnings and errors only")
	a.bind(f, "log.level", "log-level")
	a.bind(f, "log.format", "log-format")

	root.AddCommand(a.convertCommand(), a.inspectCommand(), a.venvCommand(), a.versionCommand())
	return root
}

// settingKey annotates a flag with the setting it overrides.
const settingKey = "onnx2pt/setting"

// bind makes flag override the setting key (flags > env > file >
// default). The binding is made when the command runs (bindFlags), since
// several commands have flags for the same setting.
func (a *app) bind(f *pflag.FlagSet, key, flag string) {
	if err := f.SetAnnotation(flag, settingKey, []string{key}); err != nil {
		panic(err)
	}
}

// bindFlags binds the running command's annotated flags to their settings.
func (a *app) bindFlags(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if keys := f.Annotations[settingKey]; len(keys) == 1 && err == nil {
			err = a.v.BindPFlag(keys[0], f)
		}
	})
	return err
}

// loadConfig reads the config file and environment into a Config.
func (a *app) loadConfig() (*config.Config, error) {
	file := a.configFile
	if file == "" {
		file = os.Getenv(config.EnvPrefix + "_CONFIG")
	}
	if file == "" {
		if _, err := os.Stat("onnx2pt.yaml"); err == nil {
			file = "onnx2pt.yaml"
		}
	}
	return config.Load(a.v, file)
}

func (a *app) setupLogging() error {
	level := a.v.GetString("log.level")
	if a.verbose {
		level = "debug"
	}
	if a.quiet {
		level = "warn"
	}
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return &config.UsageError{Where: "log.level", Problems: []string{fmt.Sprintf("%q is not one of trace, debug, info, warn, error", level)}}
	}
	a.log.SetLevel(lvl)
	switch a.v.GetString("log.format") {
	case "json":
		a.log.SetFormatter(&logrus.JSONFormatter{})
	case "text", "":
		_, noColor := os.LookupEnv("NO_COLOR")
		a.log.SetFormatter(&logrus.TextFormatter{DisableColors: noColor, FullTimestamp: true, TimestampFormat: "15:04:05.000"})
	default:
		return &config.UsageError{Where: "log.format", Problems: []string{fmt.Sprintf("%q is not text or json", a.v.GetString("log.format"))}}
	}
	return nil
}

type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }

func isFlagError(err error) bool {
	var fe flagError
	return errors.As(err, &fe) || strings.HasPrefix(err.Error(), "unknown command")
}
