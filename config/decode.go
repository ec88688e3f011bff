package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// decoded is the settings decoded into a Config, with every problem found
// on the way: unknown keys, and values of the wrong type. A value that
// cannot be decoded is replaced by its default (or left unset), so that
// the rest of the configuration is there to validate; its key is in bad.
type decoded struct {
	cfg      *Config
	problems []string
	bad      []string
}

// decode decodes v's settings (defaults, file, environment, flags) as
// viper's UnmarshalExact would, but collects a problem for every key that
// fails rather than stopping at the first, naming the value and what was
// expected. fromCommandLine (nil: none) tells which keys flags set.
func decode(v *viper.Viper, fromCommandLine func(key string) bool) decoded {
	settings := v.AllSettings()
	var cfg Config
	err := decodeInto(settings, &cfg, true)
	if err == nil {
		return decoded{cfg: &cfg}
	}
	var d decoded
	for _, e := range leafErrors(err) {
		var de *mapstructure.DecodeError
		if !errors.As(e, &de) {
			d.problems = append(d.problems, e.Error())
			continue
		}
		if strings.HasPrefix(de.Unwrap().Error(), "has invalid keys: ") {
			d.problems = append(d.problems, explainUnknownKeys([]string{de.Error()})...)
			continue
		}
		key, problem := describeBadValue(settingName(de.Name()), de.Unwrap(), settings)
		// Lists from the environment are split at commas: their elements
		// come from the list's variable.
		setting, _, _ := strings.Cut(key, "[")
		if envSet(setting) && (fromCommandLine == nil || !fromCommandLine(setting)) {
			problem += " (from " + EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(setting, ".", "_")) + ")"
		}
		d.problems = append(d.problems, problem)
		d.bad = append(d.bad, key)
	}
	if len(d.bad) == 0 {
		d.cfg = &cfg // only unknown keys: everything known was decoded
		return d
	}
	defaults := viper.New()
	Defaults(defaults)
	for _, key := range d.bad {
		resetSetting(settings, key, defaults)
	}
	var again Config
	_ = decodeInto(settings, &again, false) // what still fails was reported above
	d.cfg = &again
	return d
}

// decodeInto decodes settings into out like viper does (weakly typed, with
// durations and comma-separated lists from strings), but refuses a number
// where a duration is wanted (600 would be 600ns) and a fraction where a
// whole number is (2.5 jobs would be 2).
func decodeInto(settings map[string]any, out *Config, errorUnused bool) error {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           out,
		WeaklyTypedInput: true,
		ErrorUnused:      errorUnused,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			durationHook,
			wholeNumberHook,
			weakSliceHook,
		),
	})
	if err != nil {
		return err
	}
	return dec.Decode(settings)
}

var durationType = reflect.TypeFor[time.Duration]()

func durationHook(f, t reflect.Type, data any) (any, error) {
	if t != durationType || f == durationType {
		return data, nil
	}
	bad := &mapstructure.ParseError{Expected: reflect.New(durationType).Elem(), Value: data}
	switch f.Kind() {
	case reflect.String:
		d, err := time.ParseDuration(strings.TrimSpace(data.(string)))
		if err != nil {
			bad.Err = err
			return nil, bad
		}
		return d, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if !reflect.ValueOf(data).IsZero() {
			bad.Err = errors.New("a number without a unit")
			return nil, bad
		}
	}
	return data, nil
}

func wholeNumberHook(f, t reflect.Type, data any) (any, error) {
	if t == durationType || (f.Kind() != reflect.Float32 && f.Kind() != reflect.Float64) {
		return data, nil
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if x := reflect.ValueOf(data).Float(); x != math.Trunc(x) {
			return nil, &mapstructure.ParseError{Expected: reflect.New(t).Elem(), Value: data, Err: errors.New("a fraction")}
		}
	}
	return data, nil
}

// weakSliceHook splits a string into a list at commas, as viper does, for
// lists from the environment (ONNX2PT_VERIFY_BATCH_SIZES=1,4).
func weakSliceHook(f, t reflect.Type, data any) (any, error) {
	if f.Kind() != reflect.String || t.Kind() != reflect.Slice {
		return data, nil
	}
	if data.(string) == "" {
		return []string{}, nil
	}
	return strings.Split(data.(string), ","), nil
}

// leafErrors flattens mapstructure's error, which joins the errors of each
// struct, list and map it decoded, into the errors of single keys.
func leafErrors(err error) []error {
	switch e := err.(type) {
	case *mapstructure.DecodeError:
		switch e.Unwrap().(type) {
		case interface{ Unwrap() []error }, *mapstructure.DecodeError:
			return leafErrors(e.Unwrap())
		}
	case interface{ Unwrap() []error }:
		var out []error
		for _, inner := range e.Unwrap() {
			out = append(out, leafErrors(inner)...)
		}
		return out
	case interface{ Unwrap() error }: // "decoding failed due to the following error(s)"
		return leafErrors(e.Unwrap())
	}
	return []error{err}
}

var mapEntry = regexp.MustCompile(`\[([^\]]*[^\]0-9][^\]]*)\]`)

// settingName writes mapstructure's name for a key as the other messages
// do: a map's entry verify.dims[seq] is verify.dims.seq, a list's element
// verify.batch_sizes[1] stays.
func settingName(name string) string {
	return mapEntry.ReplaceAllString(name, ".$1")
}

// describeBadValue says what is wrong with key's value: the value as
// written, and what was expected there. A scalar where a list was expected
// is reported at the list (models: "foo" is not a list), not at the
// element mapstructure made of it; the key reported is returned.
func describeBadValue(key string, err error, settings map[string]any) (string, string) {
	value, found := lookupSetting(settings, key)
	var expected reflect.Type
	var pe *mapstructure.ParseError
	var ue *mapstructure.UnconvertibleTypeError
	switch {
	case errors.As(err, &pe):
		value, found, expected = pe.Value, true, pe.Expected.Type()
	case errors.As(err, &ue):
		value, found, expected = ue.Value, true, ue.Expected.Type()
	default:
		expected = settingType(key)
	}
	if !found {
		if list, _, ok := strings.Cut(key, "["); ok && !strings.Contains(key[len(list):], ".") {
			if v, ok := lookupSetting(settings, list); ok {
				if _, isList := v.([]any); !isList {
					key, value, found, expected = list, v, true, settingType(list)
				}
			}
		}
	}
	what := expectation(expected)
	if !found || what == "" {
		return key, fmt.Sprintf("%s: %v", key, err)
	}
	return key, fmt.Sprintf("%s: %s is not %s", key, formatValue(value), what)
}

// expectation names what a value of type t is written as.
func expectation(t reflect.Type) string {
	if t == nil {
		return ""
	}
	if t == durationType {
		return "a duration (use e.g. 90s or 10m)"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return expectation(t.Elem())
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping (key: value)"
	}
	return ""
}

// formatValue shows a value as it was written: strings quoted (with any
// control characters or invalid bytes escaped), lists and mappings in
// YAML's flow style; long values are shortened.
func formatValue(v any) string {
	var s string
	switch x := v.(type) {
	case nil:
		s = "null"
	case string:
		s = strconv.Quote(x)
	case float64:
		s = strconv.FormatFloat(x, 'g', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = formatValue(e)
		}
		s = "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ": " + formatValue(x[k])
		}
		s = "{" + strings.Join(parts, ", ") + "}"
	default:
		s = fmt.Sprint(x)
	}
	if r := []rune(s); len(r) > 60 {
		s = string(r[:57]) + "..."
	}
	return s
}

// pathStep is one step of a key: a name, or an index into a list.
type pathStep struct {
	name  string
	index int // -1 for a name
}

// parseKey splits models[0].verify.atol into models, [0], verify, atol.
func parseKey(key string) []pathStep {
	var steps []pathStep
	for _, part := range strings.Split(key, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			steps = append(steps, pathStep{name: name, index: -1})
		}
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			n, err := strconv.Atoi(idx)
			if err != nil {
				n = -1
			}
			steps = append(steps, pathStep{index: n})
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return steps
}

// lookupSetting finds key's value in viper's nested settings.
func lookupSetting(settings map[string]any, key string) (any, bool) {
	var cur any = settings
	for _, s := range parseKey(key) {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[s.name]
			if !ok || s.index >= 0 {
				return nil, false
			}
			cur = v
		case []any:
			if s.index < 0 || s.index >= len(c) {
				return nil, false
			}
			cur = c[s.index]
		default:
			return nil, false
		}
	}
	return cur, true
}

// resetSetting puts key's default back in settings, or removes the key
// where it has none; a list with a bad element is reset as a whole, a
// bad list element that should be a mapping becomes an empty one.
func resetSetting(settings map[string]any, key string, defaults *viper.Viper) {
	steps := parseKey(key)
	for len(steps) > 1 && steps[len(steps)-1].index >= 0 {
		if t := settingType(joinSteps(steps)); t != nil && t.Kind() == reflect.Struct {
			break
		}
		steps = steps[:len(steps)-1]
	}
	var parent any = settings
	for _, s := range steps[:len(steps)-1] {
		switch p := parent.(type) {
		case map[string]any:
			parent = p[s.name]
		case []any:
			if s.index < 0 || s.index >= len(p) {
				return
			}
			parent = p[s.index]
		default:
			return
		}
	}
	last := steps[len(steps)-1]
	switch p := parent.(type) {
	case map[string]any:
		full := joinSteps(steps)
		if defaults.IsSet(full) {
			p[last.name] = defaults.Get(full)
		} else {
			delete(p, last.name)
		}
	case []any:
		if last.index >= 0 && last.index < len(p) {
			p[last.index] = map[string]any{}
		}
	}
}

func joinSteps(steps []pathStep) string {
	var b strings.Builder
	for _, s := range steps {
		if s.index >= 0 {
			fmt.Fprintf(&b, "[%d]", s.index)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.name)
	}
	return b.String()
}

// settingType is the Go type of key's value in Config, or nil.
func settingType(key string) reflect.Type {
	t := reflect.TypeFor[Config]()
	for _, s := range parseKey(key) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case s.index >= 0 && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
			t = t.Elem()
		case s.index < 0 && t.Kind() == reflect.Map:
			t = t.Elem()
		case s.index < 0 && t.Kind() == reflect.Struct:
			f, ok := fieldByTag(t, s.name)
			if !ok {
				return nil
			}
			t = f.Type
		default:
			return nil
		}
	}
	return t
}

// yamlLine matches the line the YAML library puts in its messages.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?(?:line (\d+): )?`)

// notMapping matches the YAML library's message for a file that is a list
// or a single value.
var notMapping = regexp.MustCompile(`cannot unmarshal !!\w+ (?:.* )?into map\[string\]`)

// syntaxError reports a config file that does not parse at file:line, the
// line shown. For YAML, the library's own line is often one off, or that
// of the enclosing block: the line at fault is the first at which the
// file, read up to there, fails with the same message.
func syntaxError(file string, err error) error {
	msg := err.Error()
	ext := strings.ToLower(filepath.Ext(file))
	data, readErr := os.ReadFile(file)
	if (ext != ".yaml" && ext != ".yml") || readErr != nil {
		return &UsageError{Where: file, Problems: []string{strings.TrimPrefix(msg, "yaml: ")}}
	}
	lines := strings.SplitAfter(string(data), "\n")
	at := func(n int, problem string) string {
		if n < 1 || n > len(lines) {
			return fmt.Sprintf("%s: %s", file, problem)
		}
		return fmt.Sprintf("%s:%d: %s: %s", file, n, problem, strconv.Quote(strings.TrimRight(lines[n-1], "\r\n")))
	}
	if notMapping.MatchString(msg) {
		return &UsageError{Where: file, Problems: []string{"not a mapping of settings (key: value)"}}
	}
	// Errors found once parsed (a key given twice) have their lines right.
	if rest, ok := strings.CutPrefix(msg, "yaml: unmarshal errors:\n"); ok {
		var problems []string
		for _, l := range strings.Split(rest, "\n") {
			l = strings.TrimSpace(l)
			if l == "" {
				continue
			}
			m := yamlLine.FindStringSubmatch(l)
			n, _ := strconv.Atoi(m[1])
			problems = append(problems, at(n, l[len(m[0]):]))
		}
		return &UsageError{Problems: problems}
	}
	m := yamlLine.FindStringSubmatch(msg)
	problem := msg[len(m[0]):]
	line, _ := strconv.Atoi(m[1])
	if len(data) <= 1<<18 { // each try parses the file so far
		for n := 1; n <= len(lines); n++ {
			if e := parseYAML(strings.Join(lines[:n], "")); e != nil {
				if pm := yamlLine.FindStringSubmatch(e.Error()); e.Error()[len(pm[0]):] == problem {
					line = n
					break
				}
			}
		}
	}
	return &UsageError{Problems: []string{at(line, problem)}}
}

// parseYAML parses text as viper parses a YAML config file, returning the
// YAML library's error.
func parseYAML(text string) error {
	p := viper.New()
	p.SetConfigType("yaml")
	err := p.ReadConfig(strings.NewReader(text))
	var pe viper.ConfigParseError
	if errors.As(err, &pe) {
		return pe.Unwrap()
	}
	return err
}
