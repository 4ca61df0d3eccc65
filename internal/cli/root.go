// Package cli implements edgelink's command line, one file per subcommand.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/config"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command failed: unreachable cluster, I/O error, …
	ExitInvalid = 2 // bad configuration or bad usage: fix the input
)

// usageError marks an error in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// ExitCode maps an error returned by a command to the process exit code.
func ExitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case config.IsInvalid(err), errors.As(err, &ue), strings.HasPrefix(err.Error(), "unknown command"):
		return ExitInvalid
	default:
		return ExitFailure
	}
}

// Main runs the command line with args and returns the exit code. Errors are
// printed to stderr once, here.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		if config.IsInvalid(err) {
			fmt.Fprintf(stderr, "invalid configuration:\n%s\n", indent(err.Error()))
		} else {
			fmt.Fprintf(stderr, "edgelink: %v\n", err)
		}
	}
	return ExitCode(err)
}

// globals are the flags every subcommand shares.
type globals struct {
	logLevel  string
	logFormat string
	stdout    io.Writer
	stderr    io.Writer
}

// NewRoot builds the edgelink command tree.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "edgelink",
		Short: "Replicate Kafka topics between edge sites and the cloud, exactly once",
		Long: "edgelink replicates Apache Kafka topics in real time between edge sites and a\n" +
			"central Kafka cluster, and back: exactly once across any outage.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(newVersionCmd(g), newCheckCmd(g), newRunCmd(g), newOffsetsCmd(g), newVerifyCmd(g),
		newStatusCmd(g), newDemoCmd(g), newFleetCmd(g), newKeygenCmd(g), newBundleCmd(g), newDiodeCmd(g), newFailoverCmd(g), newFailbackCmd(g))
	return root
}

// logger builds the process logger from the global flags; logs go to stderr.
func (g *globals) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(g.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(g.stderr, opts)), nil
	default:
		return nil, usageError{fmt.Errorf("--log-format %q: want text or json", g.logFormat)}
	}
}

// requireArgs rejects positional arguments where a command takes none.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q (did you mean -c %s?)", cmd.CommandPath(), args, args[0])}
	}
	return nil
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
