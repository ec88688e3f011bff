package cli

import (
	"github.com/spf13/cobra"
)

func (a *app) venvCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "venv",
		Aliases: []string{"setup"},
		Short:   "Create or update the Python virtualenv, and do nothing else",
		Long: `Create the virtualenv (python.venv) and install the requirements into it.
Nothing is installed when nothing changed since the last successful install.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			env, err := a.provision(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if !env.Installed {
				a.log.Infof("Virtualenv %s is up to date", env.Dir)
			}
			return nil
		},
	}
	a.pythonFlags(cmd.Flags())
	return cmd
}
