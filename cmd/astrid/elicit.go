package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/supervisor"
)

func elicitCmd(g *globals) *cobra.Command {
	var cf clientFlags
	var answers []string
	var count int
	cmd := &cobra.Command{
		Use:   "elicit",
		Short: "Answer install/upgrade prompts of capsules (elicit requests)",
		Long: `elicit listens on astrid.v1.elicit for requests of the given principal and
answers each one: from --answer KEY=VALUE when given, otherwise by asking on
stdin. Secret answers go to the node's secret store; the capsule never sees
them. An empty answer declines the request.`,
		Example: `  astrid elicit --principal default
  astrid elicit --answer UNITS=metric --answer API_KEY=sk-123 --count 2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			preset := map[string]string{}
			for _, a := range answers {
				k, v, ok := strings.Cut(a, "=")
				if !ok {
					return usageError{fmt.Errorf("--answer %q: want KEY=VALUE", a)}
				}
				preset[k] = v
			}
			principal := cf.principal
			if principal == "" {
				principal = bus.DefaultPrincipal
			}
			conn, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer conn.Close()
			reqs := make(chan supervisor.ElicitMessage, 16)
			cancel, err := conn.SubscribeMessages(conn.Subjects().Subject(supervisor.ElicitTopic), func(m *bus.Message) {
				if m.Principal != principal {
					return
				}
				var em supervisor.ElicitMessage
				if json.Unmarshal(m.Payload, &em) == nil {
					reqs <- em
				}
			})
			if err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			defer cancel()
			in := bufio.NewReader(cmd.InOrStdin())
			out := cmd.OutOrStdout()
			fmt.Fprintf(cmd.ErrOrStderr(), "waiting for elicit requests for principal %s\n", principal)
			for n := 0; count == 0 || n < count; n++ {
				var em supervisor.ElicitMessage
				select {
				case em = <-reqs:
				case <-cmd.Context().Done():
					return nil
				}
				f := em.Field
				v, ok := preset[f.Key]
				if !ok {
					fmt.Fprintf(out, "%s asks for %s (%s)", em.CapsuleID, f.Key, f.Kind)
					if f.Description != "" {
						fmt.Fprintf(out, ": %s", f.Description)
					}
					if len(f.Options) > 0 {
						fmt.Fprintf(out, " [%s]", strings.Join(f.Options, ", "))
					}
					if f.Default != "" {
						fmt.Fprintf(out, " (default %s)", f.Default)
					}
					fmt.Fprint(out, "\n> ")
					line, _ := in.ReadString('\n')
					v = strings.TrimRight(line, "\r\n")
					if v == "" {
						v = f.Default
					}
				}
				resp := supervisor.ElicitResponse{RequestID: em.RequestID}
				switch {
				case v == "":
				case f.Kind == "array":
					resp.Values = strings.Split(v, ",")
				default:
					resp.Value = &v
				}
				body, _ := json.Marshal(resp)
				if err := conn.Publish(&bus.Message{Topic: supervisor.ElicitTopic + ".response." + em.RequestID,
					Payload: body, Principal: principal}); err != nil {
					return &exitError{code: ExitFailure, err: err}
				}
				_ = conn.NATS().Flush()
			}
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().StringArrayVar(&answers, "answer", nil, "answer KEY with VALUE without asking (repeatable)")
	cmd.Flags().IntVar(&count, "count", 0, "exit after answering this many requests (0 = until interrupted)")
	return cmd
}
