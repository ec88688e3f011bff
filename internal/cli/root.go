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
	"github.com/onnx2pt/onnx2pt/internal/progress"
)

// app is what every command shares: settings, logger and output streams.
type app struct {
	v      *viper.Viper
	log    *logrus.Logger
	stdout io.Writer
	stderr io.Writer

	configFile string
	flagKeys   map[string]bool // settings given by flags
	verbose    bool
	quiet      bool
}

// Main runs the command line with args and returns the exit code.
func Main(args []string) int {
	return run(context.Background(), args, os.Stdout, os.Stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newApp(stdout, stderr).execute(ctx, args)
}

func newApp(stdout, stderr io.Writer) *app {
	a := &app{v: config.NewViper(), log: logrus.New(), stdout: stdout, stderr: stderr, flagKeys: map[string]bool{}}
	a.log.SetOutput(stderr)
	return a
}

// execute runs the command line args and returns the exit code.
func (a *app) execute(ctx context.Context, args []string) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal stops the work cleanly; a second one, with the
	// default handler back in place, ends the process at once.
	interrupted := context.AfterFunc(ctx, func() {
		stop()
		a.log.Warn("Interrupted: stopping (again to quit at once)")
	})
	// Deferred after stop, so run before it: the end of the run, which
	// cancels ctx too, is not an interrupt to announce.
	defer interrupted()
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
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
	// File names in the message are shown, never obeyed; its own line
	// breaks (a list of configuration problems) stay.
	lines := strings.Split(err.Error(), "\n")
	for i, line := range lines {
		lines[i] = progress.Printable(line)
	}
	fmt.Fprintln(a.stderr, "onnx2pt:", strings.Join(lines, "\n"))
	if isFlagError(err) {
		fmt.Fprintln(a.stderr, "Run 'onnx2pt --help' for usage.")
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

	convertCmd, inspectCmd := a.convertCommand(), a.inspectCommand()
	for _, c := range []*cobra.Command{convertCmd, inspectCmd} {
		a.converterFlags(c.Flags())
	}
	root.AddCommand(convertCmd, inspectCmd, a.venvCommand(), a.versionCommand(), a.workerCommand())
	// Wrong arguments are usage errors (exit 2), like wrong flags.
	for _, c := range root.Commands() {
		if check := c.Args; check != nil {
			c.Args = func(cmd *cobra.Command, args []string) error {
				if err := check(cmd, args); err != nil {
					return flagError{fmt.Errorf("%s: %w", cmd.Name(), err)}
				}
				return nil
			}
		}
	}
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

// pythonFlags adds the flags that choose and provision the Python
// environment. Every command that provisions or starts Python takes them
// all, so a flag that works for one command works for the others.
// --interpreter is there for the version command, whose --python asks for
// the package versions; elsewhere --python is the same setting.
func (a *app) pythonFlags(f *pflag.FlagSet) {
	f.String("venv", "", "virtualenv directory (python.venv; default: the config file's, else one per user, interpreter and requirement set under the user cache folder, shared by every project; created when missing, about 5 GB)")
	f.String("interpreter", "", "interpreter that creates the virtualenv (python.interpreter)")
	if f.Lookup("python") == nil {
		f.String("python", "", "same as --interpreter")
		a.bind(f, "python.interpreter", "python")
	}
	f.Bool("offline", false, "install nothing from the network (python.offline)")
	f.String("installer", "", "auto, uv or pip (python.installer)")
	a.bind(f, "python.venv", "venv")
	a.bind(f, "python.interpreter", "interpreter")
	a.bind(f, "python.offline", "offline")
	a.bind(f, "python.installer", "installer")
}

// converterFlags adds --converters, for the commands that convert or
// inspect models.
func (a *app) converterFlags(f *pflag.FlagSet) {
	f.StringSlice("converters", nil, "your own converters, loaded before converting: .py files or module names, comma-separated or repeated (converters)")
	a.bind(f, "converters", "converters")
}

// bindFlags binds the running command's annotated flags to their settings.
// Viper takes one flag per setting, so where two flags name one setting
// the one given is bound, and giving both is an error.
func (a *app) bindFlags(cmd *cobra.Command) error {
	var keys []string
	flags := map[string][]*pflag.Flag{}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if k := f.Annotations[settingKey]; len(k) == 1 {
			if flags[k[0]] == nil {
				keys = append(keys, k[0])
			}
			flags[k[0]] = append(flags[k[0]], f)
		}
	})
	for _, key := range keys {
		bound := flags[key][0]
		for _, f := range flags[key][1:] {
			if f.Changed && bound.Changed {
				return &config.UsageError{Problems: []string{fmt.Sprintf("--%s and --%s both set %s; give one of them", bound.Name, f.Name, key)}}
			}
			if f.Changed {
				bound = f
			}
		}
		if err := a.v.BindPFlag(key, bound); err != nil {
			return err
		}
		if bound.Changed {
			a.flagKeys[key] = true
		}
	}
	return nil
}

// flagSet tells whether a flag set the setting key.
func (a *app) flagSet(key string) bool { return a.flagKeys[key] }

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
	cfg, err := config.Load(a.v, file, a.flagSet)
	if err == nil {
		for _, r := range cfg.Rebased {
			a.log.Debugf("Relative to the config file: %s", r)
		}
	}
	return cfg, err
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
