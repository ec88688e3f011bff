package report

import "encoding/json"

// Tally fills s.Counts from s.Models, one entry per result that occurs.
// It starts afresh so that a summary written twice never counts twice.
func (s *Summary) Tally() {
	s.Counts = make(map[Result]int)
	for _, m := range s.Models {
		s.Counts[m.Result]++
	}
}

// WriteSummary tallies s and writes it as indented JSON to path,
// atomically, so that a CI job never picks up half a summary.
func WriteSummary(path string, s *Summary) error {
	s.Tally()
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(data, '\n'))
}
