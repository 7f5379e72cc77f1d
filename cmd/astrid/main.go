// Command astrid runs and drives astrid capsule nodes.
//
// Every subcommand explains itself with --help. Exit codes: 0 success,
// 1 failure (including manifests with errors), 2 usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

// globals are the persistent flags shared by every subcommand.
type globals struct {
	logFormat string
	logLevel  string
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
}

func (g *globals) logger() (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(g.logLevel)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("--log-level: %w", err)
	}
	var w io.Writer
	switch g.logFormat {
	case "json":
		w = g.stderr
	case "console":
		w = zerolog.ConsoleWriter{Out: g.stderr, TimeFormat: "15:04:05.000"}
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format must be json or console, not %q", g.logFormat)
	}
	// Millisecond timestamps (zerolog's default is whole seconds).
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// run is main without os.Exit, for tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "astrid",
		Short: "Run and supervise sandboxed WebAssembly capsules over NATS",
		Long: `astrid loads sandboxed WebAssembly capsules, runs each one as an actor that
owns its wazero instance and host state, supervises them like Erlang/OTP, and
carries every message between capsules, nodes and outside tools over NATS.

Start a node on the example capsules (embedded NATS on 127.0.0.1:4222):

    make examples
    astrid run examples

then talk to it with the nats CLI or astrid itself:

    astrid req echo.v1.request '{"hi":1}'
    astrid req --principal alice counter.v1.increment '{}'`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "json", "log format: json or console")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	root.AddCommand(validateCmd(g), runCmd(g), pubCmd(g), reqCmd(g), subCmd(g), secretCmd(g), elicitCmd(g), logsCmd(g))
	root.AddCommand(nodesCmd(g), psCmd(g), startCmd(g), stopCmd(g), restartCmd(g), upgradeCmd(g), deployCmd(g))

	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "astrid:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "astrid:", err)
	if isUsageError(err) {
		fmt.Fprintln(stderr, "Run 'astrid --help' for usage.")
		return ExitUsage
	}
	return ExitFailure
}

// usageError marks errors about how the command was called.
type usageError struct{ error }

func isUsageError(err error) bool {
	var u usageError
	if errors.As(err, &u) {
		return true
	}
	// cobra's own flag and argument errors.
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "flag needs", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
