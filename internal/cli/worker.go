package cli

import (
	"context"
	"errors"
	"os"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/onnx2pt/onnx2pt/convert"
	"github.com/onnx2pt/onnx2pt/protocol"
	"github.com/onnx2pt/onnx2pt/pyembed"
	"github.com/onnx2pt/onnx2pt/worker"
)

// workerCommand is the hidden command a supervisor starts its workers
// with; it speaks package protocol on file descriptors 3 and 4.
func (a *app) workerCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "worker",
		Short:  "Convert models for a supervising onnx2pt convert (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, fd := range []int{protocol.RequestFD, protocol.MessageFD} {
				var st syscall.Stat_t
				if syscall.Fstat(fd, &st) != nil {
					return withCode(exitUsage, errors.New("the worker command is started by onnx2pt convert, not by hand"))
				}
			}
			in := os.NewFile(protocol.RequestFD, "requests")
			out := os.NewFile(protocol.MessageFD, "messages")
			err := worker.Serve(cmd.Context(), in, out, openWorkerSession)
			// The supervisor removes it too, unless it is gone.
			worker.RemoveOwnTemp()
			return err
		},
	}
}

// openWorkerSession starts the embedded interpreter in the virtualenv the
// supervisor provisioned and opens the session the worker hosts.
func openWorkerSession(ctx context.Context, start protocol.Start, log logrus.FieldLogger, onStage func(string)) (worker.Converter, map[string]string, error) {
	path := []string{start.Helpers}
	hooksDir, hooksModule := testHooks()
	if hooksModule != "" {
		path = append(path, hooksDir)
	}
	log.Debugf("Starting Python %s in %s", pyembed.LinkedVersion(), start.Venv)
	ip, err := pyembed.Start(pyembed.Options{Venv: start.Venv, Path: path})
	if err != nil {
		return nil, nil, err
	}
	if start.Portable {
		// Its torch import overlaps with this interpreter's.
		if artifacts, err := ip.Import("onnx2pt_py.artifacts"); err == nil {
			if res, err := artifacts.CallMethod("start_checker"); err == nil {
				res.Close()
			}
			artifacts.Close()
		}
	}
	stopInterrupts := ip.InterruptOn(ctx)
	defer stopInterrupts()
	sess, err := convert.Open(ip, start.EnvID, toolVersion(), log)
	if err != nil {
		return nil, nil, err
	}
	if hooksModule != "" {
		if _, err := ip.Import(hooksModule); err != nil {
			return nil, nil, err
		}
	}
	if err := loadConverters(ctx, sess, start.Converters, log); err != nil {
		sess.Close()
		return nil, nil, err
	}
	sess.OnStage = onStage
	return sess, sess.Versions(), nil
}

// loadConverters imports the user's converters into sess; one that fails
// is a one-line error naming it, with its traceback in the debug log.
func loadConverters(ctx context.Context, sess *convert.Session, converters []string, log logrus.FieldLogger) error {
	err := sess.LoadConverters(ctx, converters)
	var ce *convert.ConverterError
	if errors.As(err, &ce) && ce.Detail != "" {
		log.Debug("Python traceback:\n" + ce.Detail)
	}
	return err
}
