package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// IsConverterFile tells whether an entry of the converters setting names a
// Python file (it ends in .py or has a folder in it) rather than a module
// to import by name.
func IsConverterFile(entry string) bool {
	return strings.HasSuffix(strings.ToLower(entry), ".py") || strings.ContainsRune(entry, '/') ||
		strings.ContainsRune(entry, filepath.Separator)
}

// moduleName is a dotted Python name: my_package.converters.
var moduleName = regexp.MustCompile(`^[\p{L}_][\p{L}\p{N}_]*(\.[\p{L}_][\p{L}\p{N}_]*)*$`)

// ValidateConverters checks the converters setting alone, with the
// problems Load found: for commands that load converters without
// converting (inspect).
func (c *Config) ValidateConverters() error {
	var problems []string
	validateConverters(c.Converters, func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	})
	if problems = c.withLoadProblems(problems); len(problems) > 0 {
		return &UsageError{Problems: problems, Where: c.File}
	}
	return nil
}

// validateConverters checks each user converter: a file must exist and be
// a file, a module must be a dotted Python name, and none may be listed
// twice (its converters would register twice, which onnx2torch refuses).
func validateConverters(list []string, add func(string, ...any)) {
	seen := map[string]int{}
	for i, entry := range list {
		key := fmt.Sprintf("converters[%d]", i)
		var id string
		switch {
		case strings.TrimSpace(entry) == "":
			add("%s: empty (name a .py file or a module)", key)
			continue
		case !utf8.ValidString(entry):
			add("%s: the path is not valid UTF-8 (%s): rename the file", key, strconv.Quote(entry))
			continue
		case IsConverterFile(entry):
			st, err := os.Stat(entry)
			switch {
			case err != nil:
				add("%s: %s does not exist", key, entry)
				continue
			case st.IsDir():
				add("%s: %s is a folder, not a .py file (name a package by its module name, e.g. my_package.converters)", key, entry)
				continue
			}
			id = "file " + canonicalPath(entry)
		default:
			if !moduleName.MatchString(entry) {
				add("%s: %s is neither a .py file nor a module name (a dotted Python name such as my_package.converters)",
					key, strconv.Quote(entry))
				continue
			}
			id = "module " + entry
		}
		if j, ok := seen[id]; ok {
			add("%s: %s is also converters[%d]; list each converter once", key, entry, j)
			continue
		}
		seen[id] = i
	}
}
