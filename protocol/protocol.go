// Package protocol is what a supervisor and its conversion workers say to
// each other.
//
// A worker is the onnx2pt binary started as "onnx2pt worker" (a hidden
// command). It reads requests on file descriptor 3 and writes messages on
// file descriptor 4, one JSON object per line (Message). Its stdout and
// stderr are not part of the protocol: native libraries print there, and
// the supervisor keeps the last lines for crash reports.
//
// The conversation:
//
//	supervisor → worker   start    Start: which virtualenv, log level, user converters
//	worker → supervisor   ready    Ready: the interpreter is warm
//	                   or fatal    Fatal: it could not start (then it exits)
//	supervisor → worker   convert  Convert: one model (ID chosen by the supervisor)
//	worker → supervisor   stage    Stage: the model entered a step (any number)
//	                      log      Log: a log entry (any number)
//	                      result   Result: the model's report or error, memory use
//	... more convert/result pairs ...
//	supervisor closes fd 3         the worker exits 0
//
// Only one model is under way at a time. SIGINT or SIGTERM interrupts the
// model under way (its result says so) and the worker then exits. If fd 3
// reaches its end while a model is under way, the supervisor is gone and
// the worker exits at once, once a publish under way has ended. A worker that dies without a result crashed;
// the supervisor learns how from its exit status and its last output.
package protocol

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/report"
)

// File descriptors of the worker's two pipes, as exec.Cmd.ExtraFiles
// numbers them (3 is ExtraFiles[0]).
const (
	RequestFD = 3
	MessageFD = 4
)

// TempPrefix begins the name of each worker's TMPDIR, which holds a lock
// file (TempLock) as long as the worker or its supervisor lives: a
// worker whose supervisor is gone removes its own, and a supervisor starting
// removes those whose lock no one holds.
const (
	TempPrefix = "onnx2pt-worker-"
	TempLock   = ".lock"
)

// Message types.
const (
	TypeStart   = "start"
	TypeReady   = "ready"
	TypeFatal   = "fatal"
	TypeConvert = "convert"
	TypeStage   = "stage"
	TypeLog     = "log"
	TypeResult  = "result"
)

// Message is one line of the protocol: Type says which one field is set.
type Message struct {
	Type    string   `json:"type"`
	Start   *Start   `json:"start,omitempty"`
	Ready   *Ready   `json:"ready,omitempty"`
	Fatal   *Fatal   `json:"fatal,omitempty"`
	Convert *Convert `json:"convert,omitempty"`
	Stage   *Stage   `json:"stage,omitempty"`
	Log     *Log     `json:"log,omitempty"`
	Result  *Result  `json:"result,omitempty"`
}

// Start tells a worker where to run.
type Start struct {
	// Venv is the provisioned virtualenv, EnvID its identity (for
	// fingerprints) and Helpers the folder of the Python helpers.
	Venv    string `json:"venv"`
	EnvID   string `json:"env_id"`
	Helpers string `json:"helpers"`
	// LogLevel is the lowest level worth sending (logrus names).
	LogLevel string `json:"log_level"`
	// Portable says some model wants a portable artifact: the worker starts
	// the python that checks them at once, beside its own warm-up.
	Portable bool `json:"portable,omitempty"`
	// Converters are the user's converters (.py files and module names),
	// which the worker imports before it says it is ready; one that fails
	// to import makes it send Fatal.
	Converters []string `json:"converters,omitempty"`
}

// Ready says the worker's interpreter is warm.
type Ready struct {
	PID      int               `json:"pid"`
	Versions map[string]string `json:"versions"`
	Seconds  float64           `json:"seconds"`
}

// Fatal says the worker could not start; it exits after sending it.
type Fatal struct {
	Message string `json:"message"`
	Detail  string `json:"detail,omitempty"`
}

// Convert asks for one model's conversion.
type Convert struct {
	ID  int        `json:"id"`
	Job config.Job `json:"job"`
}

// Stage says model ID entered a step of its conversion.
type Stage struct {
	ID    int    `json:"id"`
	Stage string `json:"stage"`
}

// Log is a log entry of the worker's, for the supervisor to log.
type Log struct {
	ID      int            `json:"id"`
	Level   string         `json:"level"`
	Message string         `json:"message"`
	Fields  map[string]any `json:"fields,omitempty"`
}

// Result is how model ID's conversion ended: Report when it converted,
// Error otherwise.
type Result struct {
	ID     int            `json:"id"`
	Report *report.Report `json:"report,omitempty"`
	Error  *Error         `json:"error,omitempty"`
	// RSSBytes is the worker's resident memory after the conversion and
	// PeakRSSBytes the most it has used so far.
	RSSBytes     int64 `json:"rss_bytes"`
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// ChildrenPeakRSSBytes is the sum of its live children's peaks (the
	// artifact checker's).
	ChildrenPeakRSSBytes int64 `json:"children_peak_rss_bytes,omitempty"`
}

// Error is a failed conversion.
type Error struct {
	Stage   string `json:"stage"`
	Message string `json:"message"`
	// Detail is a Python traceback, when there is one.
	Detail string `json:"detail,omitempty"`
	// Interrupted is set when a signal stopped the conversion.
	Interrupted bool `json:"interrupted,omitempty"`
	// FailedReport is the failure report written for the model, if any.
	FailedReport string `json:"failed_report,omitempty"`
}

// Writer sends messages; it is safe for concurrent use.
type Writer struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewWriter sends messages to w.
func NewWriter(w io.Writer) *Writer { return &Writer{enc: json.NewEncoder(w)} }

// Send writes m as one line.
func (w *Writer) Send(m Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.enc.Encode(m)
}

// Reader receives messages.
type Reader struct{ sc *bufio.Scanner }

// NewReader reads messages from r.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	// A report with a large op histogram or many probes is a long line.
	sc.Buffer(make([]byte, 64*1024), 64*1024*1024)
	return &Reader{sc: sc}
}

// Next returns the next message, or io.EOF at the end.
func (r *Reader) Next() (Message, error) {
	var m Message
	if !r.sc.Scan() {
		if err := r.sc.Err(); err != nil {
			return m, err
		}
		return m, io.EOF
	}
	// Numbers in untyped fields (a log entry's) keep their text: a count
	// of 11684712 is logged as that, not as the float 1.1684712e+07.
	d := json.NewDecoder(bytes.NewReader(r.sc.Bytes()))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return m, fmt.Errorf("protocol: bad message %.80q: %w", r.sc.Text(), err)
	}
	return m, nil
}
