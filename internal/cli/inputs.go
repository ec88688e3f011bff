package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/onnx2pt/onnx2pt/config"
)

// modelsFromArgs turns the command line's inputs into models: a file as
// it is, a folder as its *.onnx files, a glob (quoted, so the shell left
// it alone) as its matches, each in sorted order. Outputs go beside the
// inputs, or into the folder output names (one that exists, or a path
// ending in a separator, which is created once the settings are valid); a
// file name is only for a single input.
func modelsFromArgs(args []string, output string) ([]config.Model, error) {
	var inputs, problems []string
	for _, arg := range args {
		found, err := expandInput(arg)
		if err != nil {
			problems = append(problems, err.Error())
		}
		inputs = append(inputs, found...)
	}
	dir, err := outputDir(output)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return nil, &config.UsageError{Problems: problems}
	}
	if output != "" && dir == "" && len(inputs) > 1 {
		return nil, &config.UsageError{Problems: []string{fmt.Sprintf(
			"--output %s: %d models need a folder (one that exists, or a path ending in /)", output, len(inputs))}}
	}
	models := make([]config.Model, len(inputs))
	for i, in := range inputs {
		out := strings.TrimSuffix(in, filepath.Ext(in)) + ".pt"
		switch {
		case dir != "":
			out = filepath.Join(dir, filepath.Base(out))
		case output != "":
			out = output
		}
		models[i] = config.Model{Input: in, Output: out, FromFlags: true}
	}
	return models, nil
}

// expandInput lists the ONNX files one argument names.
func expandInput(arg string) ([]string, error) {
	st, err := os.Stat(arg)
	switch {
	case err == nil && st.IsDir():
		found, _ := filepath.Glob(filepath.Join(arg, "*.onnx"))
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: a folder without .onnx files", arg)
		}
		sort.Strings(found)
		return found, nil
	case err == nil:
		return []string{arg}, nil
	case strings.ContainsAny(arg, "*?["):
		found, err := filepath.Glob(arg)
		if err != nil {
			return nil, fmt.Errorf("%s: not a valid pattern (%v)", arg, err)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: matches no file", arg)
		}
		sort.Strings(found)
		return found, nil
	}
	return nil, fmt.Errorf("%s does not exist", arg)
}

// outputDir is the folder output names: one that exists, or a path
// ending in a separator (created with the other outputs' folders once the
// settings are valid); "" when output names a file (or nothing). A path
// that names neither an existing file or folder nor a checkpoint (.pt,
// .pth, .pt2) is refused: -o out would write out, out.state_dict, ...
func outputDir(output string) (string, error) {
	if output == "" {
		return "", nil
	}
	if strings.HasSuffix(output, "/") || strings.HasSuffix(output, string(filepath.Separator)) {
		return filepath.Clean(output), nil
	}
	st, err := os.Stat(output)
	if err == nil && st.IsDir() {
		return output, nil
	}
	if errors.Is(err, os.ErrNotExist) && !slices.Contains(checkpointExts, strings.ToLower(filepath.Ext(output))) {
		return "", fmt.Errorf("--output %s: neither a .pt, .pth or .pt2 file nor an existing folder; for a new folder, end it with / (%s/)", output, output)
	}
	return "", nil
}

// checkpointExts are the extensions -o takes for a file that does not
// exist yet.
var checkpointExts = []string{".pt", ".pth", ".pt2"}
