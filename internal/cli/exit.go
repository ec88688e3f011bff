package cli

// Exit codes, documented in the README.
const (
	exitOK          = 0   // everything converted and verified
	exitFailed      = 1   // a model failed to convert or verify
	exitUsage       = 2   // bad flags or configuration
	exitEnvironment = 3   // Python or the virtualenv could not be set up
	exitInterrupted = 130 // stopped by Ctrl-C or SIGTERM
)

// exitError carries an exit code with the message to print.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}
