package main

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/astrid-go/astrid/supervisor"
)

func secretCmd(g *globals) *cobra.Command {
	var data, principal string
	var shared bool
	scope := func() string {
		if shared {
			return supervisor.SharedScope
		}
		if principal == "" {
			return "default"
		}
		return principal
	}
	store := func() (*supervisor.FileSecrets, error) {
		return supervisor.NewFileSecrets(filepath.Join(data, "secrets"))
	}
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Set, list and delete capsule secrets (secret-typed [env] keys)",
		Long: `secret manages the node's secret store: one file per secret, mode 0600, under
<data>/secrets. A capsule reads a secret-typed [env] key with get-config, which
resolves it live, for the invoking principal first and then the shared scope.
Values are read from stdin, never from the command line.`,
	}
	cmd.PersistentFlags().StringVar(&data, "data", "astrid-data", "node data directory")
	cmd.PersistentFlags().StringVar(&principal, "principal", "", `principal scope (default "default")`)
	cmd.PersistentFlags().BoolVar(&shared, "shared", false, "use the scope shared by every principal")
	cmd.MarkFlagsMutuallyExclusive("principal", "shared")

	set := &cobra.Command{
		Use:     "set CAPSULE KEY",
		Short:   "Store a secret read from stdin (one line when stdin is a terminal)",
		Example: `  printf %s "$API_KEY" | astrid secret set --principal alice weather API_KEY`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := store()
			if err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "value for %s/%s: ", args[0], args[1])
			v, err := readSecret(cmd.InOrStdin())
			fmt.Fprintln(cmd.ErrOrStderr())
			if err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			if err := s.Set(scope(), args[0], args[1], []byte(v)); err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list CAPSULE",
		Short: "List the secret keys of a capsule (names only)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := store()
			if err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			keys, err := s.List(scope(), args[0])
			if err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			for _, k := range keys {
				fmt.Fprintln(cmd.OutOrStdout(), k)
			}
			return nil
		},
	}
	del := &cobra.Command{
		Use:   "delete CAPSULE KEY",
		Short: "Delete a secret",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := store()
			if err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			if err := s.Delete(scope(), args[0], args[1]); err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			return nil
		},
	}
	cmd.AddCommand(set, list, del)
	return cmd
}

// readSecret reads the value: everything on stdin, without the trailing
// newline.
func readSecret(r io.Reader) (string, error) {
	b, err := io.ReadAll(bufio.NewReader(r))
	if err != nil {
		return "", err
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("empty secret")
	}
	return v, nil
}
