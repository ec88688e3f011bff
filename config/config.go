// Package config loads onnx2pt's settings: defaults, then the config file,
// then ONNX2PT_* environment variables, then flags (viper's precedence), and
// validates them before any Python starts.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/viper"
)

// EnvPrefix starts every environment variable that overrides a setting:
// python.venv is ONNX2PT_PYTHON_VENV.
const EnvPrefix = "ONNX2PT"

// Config is the whole configuration.
type Config struct {
	Python PythonConfig `mapstructure:"python"`
	Verify VerifyConfig `mapstructure:"verify"`
	Log    LogConfig    `mapstructure:"log"`
	Run    RunConfig    `mapstructure:"run"`
	// Artifacts are the formats to write for every model (ArtifactFormats);
	// nil is the default: all, the portable ones where they succeed.
	Artifacts []string `mapstructure:"artifacts"`
	// Converters are the user's own converters, loaded in every worker
	// before any conversion: .py files and importable module names.
	Converters []string `mapstructure:"converters"`
	Models     []Model  `mapstructure:"models"`

	// File is the config file that was read, if any.
	File string `mapstructure:"-"`
	// Rebased lists the relative paths of the file that were rebased onto
	// its directory, "key: from → to", for the debug log.
	Rebased []string `mapstructure:"-"`

	// loadProblems are the problems Load found (unknown keys, values that
	// could not be decoded), which Validate reports first; badKeys are the
	// keys whose values could not be decoded, left at their defaults:
	// Validate says nothing more about them.
	loadProblems []string
	badKeys      []string
}

// PythonConfig says which interpreter and virtualenv to use.
type PythonConfig struct {
	// Interpreter creates the virtualenv; empty means the one onnx2pt was
	// built against.
	Interpreter string `mapstructure:"interpreter"`
	// Venv is the virtualenv directory.
	Venv string `mapstructure:"venv"`
	// Requirements is a requirements file; empty means the one built in
	// (with its lock file).
	Requirements string `mapstructure:"requirements"`
	// Lock is a constraints file pinning exact versions; empty means the
	// built-in lock with the built-in requirements, and none otherwise.
	Lock string `mapstructure:"lock"`
	// Installer is uv, pip, or auto (uv when it can be had, else pip).
	Installer string `mapstructure:"installer"`
	// InstallArgs are extra arguments for the installer.
	InstallArgs []string `mapstructure:"install_args"`
	// Offline installs from the local package cache only.
	Offline bool `mapstructure:"offline"`
}

// VerifyConfig says how converted models are probed and checked.
type VerifyConfig struct {
	// BatchSizes fill symbolic dimensions of the inputs, one probe each.
	BatchSizes []int `mapstructure:"batch_sizes"`
	// Dims gives sizes for named symbolic dimensions (other than batch).
	Dims map[string]int `mapstructure:"dims"`
	// IntBounds gives, per integer input, the exclusive upper bound of its
	// random values, where the graph does not show it (token ids that a
	// Gather indexes are bounded by the table's rows without this).
	IntBounds map[string]int `mapstructure:"int_bounds"`
	// Atol and Rtol bound |torch - onnxruntime| <= atol + rtol*|onnxruntime|.
	Atol float64 `mapstructure:"atol"`
	Rtol float64 `mapstructure:"rtol"`
	// Seed makes the probe tensors reproducible.
	Seed int `mapstructure:"seed"`
	// Locate looks for the first diverging node even when verification
	// passes (it always does when verification fails).
	Locate bool `mapstructure:"locate"`
}

// LogConfig sets logging.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Model is one conversion: an ONNX file in, a PyTorch file out.
type Model struct {
	Input  string `mapstructure:"input"`
	Output string `mapstructure:"output"`
	// Verify overrides the global verification settings for this model.
	Verify *VerifyOverride `mapstructure:"verify"`
	// Data, when set, replaces the random probes with the user's inputs
	// (and, optionally, the outputs expected for them).
	Data *Data `mapstructure:"data"`
	// Artifacts overrides the global artifacts for this model.
	Artifacts []string `mapstructure:"artifacts"`

	// FromFlags marks a model given by --input/--output; problems with it
	// name the flags rather than a config key.
	FromFlags bool `mapstructure:"-"`
}

// Data is a probe the user supplies: a .npz file, or a folder of
// <input name>.npy files, for the inputs; the same for the expected
// outputs, which are then the reference instead of onnxruntime's.
type Data struct {
	Inputs   string `mapstructure:"inputs"`
	Expected string `mapstructure:"expected"`
}

// Files lists the data's files and folders that are set.
func (d *Data) Files() []string {
	if d == nil {
		return nil
	}
	var out []string
	for _, f := range []string{d.Inputs, d.Expected} {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// VerifyOverride holds per-model verification settings; unset fields keep
// the global value.
type VerifyOverride struct {
	BatchSizes []int          `mapstructure:"batch_sizes"`
	Dims       map[string]int `mapstructure:"dims"`
	IntBounds  map[string]int `mapstructure:"int_bounds"`
	Atol       *float64       `mapstructure:"atol"`
	Rtol       *float64       `mapstructure:"rtol"`
	Seed       *int           `mapstructure:"seed"`
}

// Defaults are the settings used where nothing else sets them.
func Defaults(v *viper.Viper) {
	v.SetDefault("python.interpreter", "")
	v.SetDefault("python.venv", "") // the user's own (see the CLI's venvSpec)
	v.SetDefault("python.requirements", "")
	v.SetDefault("python.lock", "")
	v.SetDefault("python.installer", "auto")
	v.SetDefault("python.install_args", []string{})
	v.SetDefault("python.offline", false)
	v.SetDefault("verify.batch_sizes", []int{1, 4})
	v.SetDefault("verify.dims", map[string]int{})
	v.SetDefault("verify.int_bounds", map[string]int{})
	v.SetDefault("verify.atol", 1e-5)
	v.SetDefault("verify.rtol", 1e-4)
	v.SetDefault("verify.seed", 0)
	v.SetDefault("verify.locate", false)
	v.SetDefault("log.level", "info")
	v.SetDefault("log.format", "text")
	v.SetDefault("converters", []string{})
	runDefaults(v.SetDefault)
}

// NewViper returns a viper with defaults and environment overrides set up.
func NewViper() *viper.Viper {
	v := viper.New()
	Defaults(v)
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	return v
}

// Load reads file (if not empty) into v and decodes the result, refusing
// keys it does not know. Relative paths from the file are rebased onto its
// directory; fromCommandLine (nil: none) tells which keys flags set, whose
// paths stay relative to the working directory like the environment's.
//
// Every unknown key and every value that cannot be decoded is reported,
// each with the value as written and what was expected. Then Load returns
// the error and the Config as well, with defaults in place of those
// values, so that a caller that goes on to Validate it gets those problems
// and every other in one error (Validate repeats them). A file that cannot
// be read or parsed returns no Config.
func Load(v *viper.Viper, file string, fromCommandLine func(key string) bool) (*Config, error) {
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			var notFound *os.PathError
			var parse viper.ConfigParseError
			switch {
			case errors.As(err, &notFound):
				return nil, &UsageError{Where: file, Problems: []string{"config file not found (check --config or ONNX2PT_CONFIG)"}}
			case errors.As(err, &parse):
				return nil, syntaxError(file, parse.Unwrap())
			}
			return nil, &UsageError{Where: file, Problems: []string{err.Error()}}
		}
	}
	d := decode(v, fromCommandLine)
	cfg := d.cfg
	cfg.File = file
	if file != "" {
		cfg.resolveRelative(v, file, fromCommandLine)
	}
	if len(d.problems) > 0 {
		cfg.loadProblems, cfg.badKeys = d.problems, d.bad
		return cfg, &UsageError{Where: file, Problems: d.problems}
	}
	return cfg, nil
}

// Effective returns the verification settings for m: the global ones with
// m's overrides applied.
func (c *Config) Effective(m Model) VerifyConfig {
	out := c.Verify
	if o := m.Verify; o != nil {
		if o.BatchSizes != nil {
			out.BatchSizes = o.BatchSizes
		}
		if o.Dims != nil {
			out.Dims = o.Dims
		}
		if o.IntBounds != nil {
			out.IntBounds = o.IntBounds
		}
		if o.Atol != nil {
			out.Atol = *o.Atol
		}
		if o.Rtol != nil {
			out.Rtol = *o.Rtol
		}
		if o.Seed != nil {
			out.Seed = *o.Seed
		}
	}
	return out
}

// Validate checks everything that can be checked without Python and
// returns all problems at once, those Load found first.
func (c *Config) Validate() error { return c.validate(true) }

// ValidateSettings is Validate without the models: for when they could not
// be listed (their problems then come from elsewhere).
func (c *Config) ValidateSettings() error { return c.validate(false) }

// dataKinds is what data.inputs and data.expected may be.
const dataKinds = "a .npz file, a .npy file or a folder of .npy files"

func (c *Config) validate(models bool) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	where := c.File
	// Paths reach the workers and the reports as JSON, where bytes that are
	// not UTF-8 become U+FFFD: the model would fail under another name.
	notUTF8 := func(key, path, fix string) bool {
		if utf8.ValidString(path) {
			return false
		}
		add("%s: the path is not valid UTF-8 (%s): %s", key, strconv.Quote(path), fix)
		return true
	}

	notUTF8("python.venv", c.Python.Venv, "choose another name")
	for _, f := range []struct{ key, path string }{
		{"python.requirements", c.Python.Requirements},
		{"python.lock", c.Python.Lock},
	} {
		if _, err := os.Stat(f.path); f.path != "" && err != nil {
			add("%s: %s does not exist", f.key, f.path)
		}
	}
	switch c.Python.Installer {
	case "", "auto", "uv", "pip":
	default:
		add("python.installer: %q is not auto, uv or pip", c.Python.Installer)
	}
	switch strings.ToLower(c.Log.Level) {
	case "trace", "debug", "info", "warn", "warning", "error":
	default:
		add("log.level: %q is not one of trace, debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format: %q is not text or json", c.Log.Format)
	}
	var globalVerify []string
	validateVerify("verify", c.Verify, func(format string, args ...any) {
		globalVerify = append(globalVerify, fmt.Sprintf(format, args...))
	})
	problems = append(problems, globalVerify...)
	c.Run.validate(add)
	notUTF8("run.summary", c.Run.Summary, "choose another name")
	notUTF8("run.junit", c.Run.JUnit, "choose another name")
	validateArtifacts("artifacts", c.Artifacts, add)
	validateConverters(c.Converters, add)

	list := c.Models
	if !models {
		list = nil
	} else if len(list) == 0 {
		add("models: no models to convert (list them in the config file or pass --input)")
	}
	for i, m := range list {
		inKey, outKey := c.modelKeys(i)
		badInput := m.Input != "" && notUTF8(inKey, m.Input, "rename the file")
		if m.Input == "" {
			add("%s: missing", inKey)
		} else if badInput {
			// reported
		} else if st, err := os.Stat(m.Input); err != nil {
			add("%s: %s does not exist", inKey, m.Input)
		} else if st.IsDir() {
			add("%s: %s is a directory, not an ONNX file", inKey, m.Input)
		} else if st.Size() == 0 {
			add("%s: %s is empty, not an ONNX model", inKey, m.Input)
		}
		if m.Output == "" {
			add("%s: missing", outKey)
		} else if !utf8.ValidString(m.Output) {
			// An output named after its input: renaming the input fixes both.
			if !(m.FromFlags && badInput) {
				notUTF8(outKey, m.Output, "choose another name")
			}
		} else {
			abs, _ := filepath.Abs(m.Output)
			if err := outputDir(filepath.Dir(abs)); err != nil {
				add("%s: %v", outKey, err)
			}
		}
		if m.Input != "" && m.Output != "" && sameFile(m.Input, m.Output) {
			add("%s: same file as the input", outKey)
		}
		// A model's own settings only: what it inherits was reported once,
		// at the global key.
		key := fmt.Sprintf("models[%d].verify", i)
		validateVerify(key, c.Effective(m), func(format string, args ...any) {
			msg := fmt.Sprintf(format, args...)
			if !slices.Contains(globalVerify, "verify"+strings.TrimPrefix(msg, key)) {
				problems = append(problems, msg)
			}
		})
		validateArtifacts(fmt.Sprintf("models[%d].artifacts", i), m.Artifacts, add)
		if d := m.Data; d != nil {
			if d.Inputs == "" {
				add("models[%d].data.inputs: missing (%s)", i, dataKinds)
			}
			for _, f := range []struct{ key, path string }{{"inputs", d.Inputs}, {"expected", d.Expected}} {
				key := fmt.Sprintf("models[%d].data.%s", i, f.key)
				if f.path == "" || notUTF8(key, f.path, "rename the file") {
					continue
				}
				st, err := os.Stat(f.path)
				switch {
				case err != nil:
					add("%s: %s does not exist (expected %s)", key, f.path, dataKinds)
				case st.IsDir():
				default:
					// One .npy array is the one input (or output) of a model
					// that has one.
					if ext := strings.ToLower(filepath.Ext(f.path)); ext != ".npz" && ext != ".npy" {
						add("%s: %s is not %s", key, f.path, dataKinds)
					}
				}
			}
		}
	}
	if models {
		c.validateCollisions(add)
	}
	problems = c.withLoadProblems(problems)
	if len(problems) == 0 {
		return nil
	}
	return &UsageError{Problems: problems, Where: where}
}

// withLoadProblems puts the problems Load found before problems, dropping
// those about keys whose values Load could not decode: they hold defaults,
// or nothing, in their place.
func (c *Config) withLoadProblems(problems []string) []string {
	out := slices.Clone(c.loadProblems)
	for _, p := range problems {
		if !slices.ContainsFunc(c.badKeys, func(key string) bool {
			rest, ok := strings.CutPrefix(p, key)
			return ok && rest != "" && strings.ContainsRune(":.[", rune(rest[0]))
		}) {
			out = append(out, p)
		}
	}
	return out
}

// CreateOutputFolders makes the folders the outputs of this shard's models
// go into, where missing: after Validate, which checked that they can be.
func (c *Config) CreateOutputFolders() error {
	shard, _ := ParseShard(c.Run.Shard) // validated
	for _, m := range shard.Select(c.Models) {
		if err := os.MkdirAll(filepath.Dir(m.Output), 0o755); err != nil {
			return fmt.Errorf("%s: cannot create its folder: %w", m.Output, err)
		}
	}
	return nil
}

// modelKeys names models[i]'s input and output as the user gave them.
func (c *Config) modelKeys(i int) (inKey, outKey string) {
	if c.Models[i].FromFlags {
		return "--input", "--output"
	}
	return fmt.Sprintf("models[%d].input", i), fmt.Sprintf("models[%d].output", i)
}

// validateCollisions reports every file a model would write (OutputPaths)
// that another model also writes, or that some model reads: either way
// one model's result would be lost or another's input replaced, and the
// up-to-date check would convert them again on every run. One problem is
// reported per pair of models.
func (c *Config) validateCollisions(add func(string, ...any)) {
	type writer struct {
		model int
		path  string
	}
	readers := map[string][]int{}
	for j, m := range c.Models {
		if m.Input != "" {
			key := canonicalPath(m.Input)
			readers[key] = append(readers[key], j)
		}
	}
	written := map[string]writer{}
	for i, m := range c.Models {
		if m.Output == "" {
			continue
		}
		_, outKey := c.modelKeys(i)
		paths := m.Paths()
		clashes, overwrites := map[int]bool{}, map[int]bool{}
		for _, p := range paths.All() {
			key := canonicalPath(p)
			if w, ok := written[key]; ok && !clashes[w.model] {
				clashes[w.model] = true
				other := c.Models[w.model].Output
				switch {
				case p == paths.Model && w.path == other:
					add("%s: %s is also the output of models[%d]", outKey, p, w.model)
				case p == paths.Model:
					add("%s: %s is also written by models[%d] (%s); choose another output", outKey, p, w.model, other)
				default:
					add("%s: %s would write %s, which models[%d] (%s) also writes; choose another output", outKey, m.Output, p, w.model, other)
				}
			}
			for _, j := range readers[key] {
				// The output itself being the model's own input is
				// reported above, comparing the files themselves.
				if overwrites[j] || (j == i && p == paths.Model) {
					continue
				}
				overwrites[j] = true
				inKey, _ := c.modelKeys(j)
				if p == paths.Model {
					add("%s: %s would overwrite %s; choose another output", outKey, p, inKey)
				} else {
					add("%s: %s would write %s over %s; choose another output", outKey, m.Output, p, inKey)
				}
			}
		}
		for _, p := range paths.All() {
			key := canonicalPath(p)
			if _, ok := written[key]; !ok {
				written[key] = writer{i, p}
			}
		}
	}
}

// canonicalPath names path so that two spellings of one file compare
// equal: absolute, clean, with symlinks in its directory resolved. The
// file itself is not resolved, because outputs are renamed into place,
// which replaces a link rather than writing through it.
func canonicalPath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.Clean(path)
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(dir, filepath.Base(abs))
	}
	return abs
}

func validateVerify(key string, v VerifyConfig, add func(string, ...any)) {
	if len(v.BatchSizes) == 0 {
		add("%s.batch_sizes: at least one batch size is needed", key)
	}
	for _, b := range v.BatchSizes {
		if b < 1 || b > 1<<16 {
			add("%s.batch_sizes: %d is not between 1 and 65536", key, b)
		}
	}
	for name, d := range v.Dims {
		if d < 1 {
			add("%s.dims.%s: %d is not a positive size", key, name, d)
		}
	}
	for name, b := range v.IntBounds {
		if b < 1 {
			add("%s.int_bounds.%s: %d is not a positive bound", key, name, b)
		}
	}
	if v.Atol < 0 || v.Atol >= 1 {
		add("%s.atol: %g is not in [0, 1)", key, v.Atol)
	}
	if v.Rtol < 0 || v.Rtol >= 1 {
		add("%s.rtol: %g is not in [0, 1)", key, v.Rtol)
	}
	if v.Atol == 0 && v.Rtol == 0 {
		add("%s: atol and rtol are both 0; floating-point results never match exactly", key)
	}
}

// outputDir checks that outputs can be written into dir: a writable
// directory, or one that can be created (CreateOutputFolders) because the
// nearest directory above it that exists is writable.
func outputDir(dir string) error {
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return writableDir(dir)
	}
	for above := filepath.Dir(dir); ; above = filepath.Dir(above) {
		st, err := os.Stat(above)
		switch {
		case err == nil && !st.IsDir():
			return fmt.Errorf("cannot create directory %s: %s is not a directory", dir, above)
		case err == nil:
			if err := writableDir(above); err != nil {
				return fmt.Errorf("cannot create directory %s: %v", dir, err)
			}
			return nil
		case above == filepath.Dir(above):
			return fmt.Errorf("cannot create directory %s: %v", dir, err)
		}
	}
}

func writableDir(dir string) error {
	f, err := os.CreateTemp(dir, ".onnx2pt-write-test-")
	if err != nil {
		return fmt.Errorf("directory %s is not writable", dir)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(sa, sb)
	}
	aa, _ := filepath.Abs(a)
	ab, _ := filepath.Abs(b)
	return aa == ab
}

// UsageError is a problem with the settings: exit code 2.
type UsageError struct {
	Where    string // the config file, or "" for flags and environment
	Problems []string
}

func (e *UsageError) Error() string {
	prefix := ""
	if e.Where != "" {
		prefix = e.Where + ": "
	}
	if len(e.Problems) == 1 {
		return prefix + e.Problems[0]
	}
	return fmt.Sprintf("%s%d problems:\n  - %s", prefix, len(e.Problems), strings.Join(e.Problems, "\n  - "))
}
