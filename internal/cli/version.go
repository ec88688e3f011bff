package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sort"

	"github.com/spf13/cobra"

	"github.com/onnx2pt/onnx2pt/pyembed"
	"github.com/onnx2pt/onnx2pt/python"
)

// toolVersion is the module version, or the VCS revision for a build from
// a checkout.
func toolVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

func (a *app) versionCommand() *cobra.Command {
	var withPython bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print onnx2pt's version, and with --python the Python side's",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "onnx2pt %s (%s, %s/%s)\n", toolVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			fmt.Fprintf(out, "embeds Python %s (built against %s)\n", pyembed.LinkedVersion(), pyembed.BuildInterpreter())
			fmt.Fprintf(out, "python helpers %s\n", python.Version())
			if cfg, err := a.loadConfig(); err == nil {
				if spec, why, err := a.venvSpec(cfg); err == nil {
					fmt.Fprintf(out, "virtualenv %s (%s)\n", spec.Dir, why)
				}
			}
			if !withPython {
				return nil
			}
			sess, err := a.pythonSession(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer sess.Close()
			versions := sess.Versions()
			names := make([]string, 0, len(versions))
			for name := range versions {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				fmt.Fprintf(out, "%-12s %s\n", name, versions[name])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&withPython, "python", false, "also start Python in the virtualenv and print its package versions")
	// --python is taken above, so here the interpreter is --interpreter only.
	a.pythonFlags(cmd.Flags())
	return cmd
}
