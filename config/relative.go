package config

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/viper"
)

// resolveRelative rebases the relative paths that come from the config
// file onto the file's directory, as go-task and docker compose do, so a
// config works from any working directory. Paths from flags and
// environment variables stay relative to the working directory. Each
// rebased path is recorded in c.Rebased.
func (c *Config) resolveRelative(v *viper.Viper, file string, fromCommandLine func(key string) bool) {
	dir := filepath.Dir(file)
	fromFile := func(key string) bool {
		if !v.InConfig(key) || envSet(key) {
			return false
		}
		return fromCommandLine == nil || !fromCommandLine(key)
	}
	rebase := func(key string, path *string) {
		if *path == "" || filepath.IsAbs(*path) || !fromFile(key) {
			return
		}
		to := filepath.Join(dir, *path)
		c.Rebased = append(c.Rebased, key+": "+*path+" → "+to)
		*path = to
	}
	rebase("python.venv", &c.Python.Venv)
	rebase("python.requirements", &c.Python.Requirements)
	rebase("python.lock", &c.Python.Lock)
	if strings.ContainsRune(c.Python.Interpreter, filepath.Separator) { // else a name looked up on PATH
		rebase("python.interpreter", &c.Python.Interpreter)
	}
	for i := range c.Converters {
		if IsConverterFile(c.Converters[i]) { // else a module name
			rebase("converters", &c.Converters[i])
		}
	}
	rebase("run.summary", &c.Run.Summary)
	rebase("run.junit", &c.Run.JUnit)
	for i := range c.Models {
		m := &c.Models[i]
		rebase("models", &m.Input)
		rebase("models", &m.Output)
		if m.Data != nil {
			rebase("models", &m.Data.Inputs)
			rebase("models", &m.Data.Expected)
		}
	}
}

// envSet tells whether the environment variable for key is set.
func envSet(key string) bool {
	_, ok := os.LookupEnv(EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_")))
	return ok
}
