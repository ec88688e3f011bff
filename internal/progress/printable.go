package progress

import (
	"strconv"
	"strings"
	"unicode"
)

// Printable is s with every character a terminal would act on (escape
// sequences, carriage returns, other control characters) written as a Go
// escape: file names are shown as they are named, never obeyed.
func Printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsPrint(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}
