package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/astrid-go/astrid/bus"
)

var errNoCapsules = errors.New("no capsule could be loaded")

// clientFlags are the flags of the commands that talk to a node as an
// outside tool.
type clientFlags struct {
	prefix    string
	server    string
	principal string
	timeout   time.Duration
}

func (c *clientFlags) add(cmd *cobra.Command) {
	def := os.Getenv("NATS_URL")
	if def == "" {
		def = "nats://127.0.0.1:4222"
	}
	cmd.Flags().StringVarP(&c.server, "server", "s", def, "NATS server URL (env NATS_URL)")
	cmd.Flags().StringVar(&c.principal, "principal", "", "principal to claim (Astrid-Principal header); default \"default\"")
	cmd.Flags().DurationVar(&c.timeout, "timeout", 5*time.Second, "how long to wait")
	cmd.Flags().StringVar(&c.prefix, "subject-prefix", "", "the node's --subject-prefix, if it has one")
}

func (c *clientFlags) connect(ctx context.Context) (*bus.Conn, error) {
	if c.principal != "" && !bus.ValidPrincipal(c.principal) {
		return nil, usageError{fmt.Errorf("--principal %q: 1 to 64 of [a-zA-Z0-9_-]", c.principal)}
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, err := bus.Connect(cctx, c.server, "astrid-cli", zerolog.Nop(), bus.WithSubjects(bus.Subjects{Prefix: c.prefix}))
	if err != nil {
		return nil, &exitError{code: ExitFailure, err: err}
	}
	return conn, nil
}

func pubCmd(g *globals) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:     "pub TOPIC PAYLOAD",
		Short:   "Publish a JSON message on a topic, as an outside tool",
		Example: `  astrid pub ticker.v1.in '{"n":1}'`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			conn, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer conn.Close()
			if err := conn.Publish(&bus.Message{Topic: args[0], Payload: []byte(args[1]), Principal: cf.principal}); err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			return conn.NATS().FlushTimeout(cf.timeout)
		},
	}
	cf.add(cmd)
	return cmd
}

func reqCmd(g *globals) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "req TOPIC PAYLOAD",
		Short: "Send a request to a capsule and print the reply",
		Long: `req publishes PAYLOAD on TOPIC with a reply subject and prints the reply.
A typed error reply (Astrid-Error header: the capsule denied the request,
crashed or is quarantined) is printed to stderr and exits 1.`,
		Example: `  astrid req echo.v1.request '{"hi":1}'
  astrid req --principal alice counter.v1.increment '{}'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			conn, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), cf.timeout)
			defer cancel()
			resp, err := conn.Request(ctx, &bus.Message{Topic: args[0], Payload: []byte(args[1]), Principal: cf.principal})
			if err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			if e := resp.Header.Get(bus.HeaderError); e != "" {
				return &exitError{code: ExitFailure, err: errors.New(e)}
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(resp.Data))
			return nil
		},
	}
	cf.add(cmd)
	return cmd
}

func subCmd(g *globals) *cobra.Command {
	var cf clientFlags
	var count int
	cmd := &cobra.Command{
		Use:   "sub PATTERN",
		Short: "Print messages matching a topic pattern (a trailing * is a subtree)",
		Example: `  astrid sub 'ticker.v1.out'
  astrid sub 'astrid.v1.capsule.*'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := bus.ValidatePattern(args[0]); err != nil {
				return usageError{err}
			}
			conn, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer conn.Close()
			got := make(chan *bus.Message, 1024)
			cancel, err := conn.SubscribeMessages(conn.Subjects().Route(args[0]), func(m *bus.Message) {
				cp := *m
				cp.Payload = append([]byte(nil), m.Payload...)
				got <- &cp
			})
			if err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			defer cancel()
			out := cmd.OutOrStdout()
			for n := 0; count == 0 || n < count; n++ {
				select {
				case m := <-got:
					fmt.Fprintf(out, "[%s] principal=%s(%s) %s\n", m.Topic, m.Principal, m.Attribution, m.Payload)
				case <-cmd.Context().Done():
					return nil
				}
			}
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().IntVar(&count, "count", 0, "exit after this many messages (0 = until interrupted)")
	return cmd
}
