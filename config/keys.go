package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

// invalidKeys matches mapstructure's message for unknown keys:
// "'models[0]' has invalid keys: inptu, ouput".
var invalidKeys = regexp.MustCompile(`^'([^']*)' has invalid keys: (.+)$`)

// explainUnknownKeys turns mapstructure's unknown-key messages into one
// problem per key, named in full (models[0].inptu) with the nearest known
// key as a suggestion; other messages are kept as they are.
func explainUnknownKeys(messages []string) []string {
	var out []string
	for _, msg := range messages {
		m := invalidKeys.FindStringSubmatch(msg)
		if m == nil {
			out = append(out, msg)
			continue
		}
		parent := m[1]
		if parent == "config.Config" || parent == "" {
			parent = ""
		}
		for _, key := range strings.Split(m[2], ",") {
			key = strings.TrimSpace(key)
			full := key
			if parent != "" {
				full = parent + "." + key
			}
			problem := fmt.Sprintf("%s: unknown key", full)
			if s := suggest(key, keysUnder(parent)); s != "" {
				if parent != "" {
					s = parent + "." + s
				}
				problem += fmt.Sprintf(" (did you mean %s?)", s)
			}
			out = append(out, problem)
		}
	}
	return out
}

// keysUnder lists the keys allowed directly under parent ("" for the top,
// "verify", "models[3]", "models[0].data").
func keysUnder(parent string) []string {
	t := reflect.TypeOf(Config{})
	if parent != "" {
		for _, part := range strings.Split(parent, ".") {
			name, _, _ := strings.Cut(part, "[") // models[0] -> models
			f, ok := fieldByTag(t, name)
			if !ok {
				return nil
			}
			t = f.Type
			for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
				t = t.Elem()
			}
		}
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("mapstructure"); tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	return keys
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("mapstructure") == tag {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// suggest is the known key nearest to key, if one is near enough to be
// what was meant: at most a third of its letters edited (at least one).
func suggest(key string, known []string) string {
	best, bestDist := "", max(1, len(key)/3)+1
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Damerau-Levenshtein distance (optimal string
// alignment): insertions, deletions, substitutions and swaps of adjacent
// letters each count one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
