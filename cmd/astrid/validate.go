package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/astrid-go/astrid/manifests"
)

type validateResult struct {
	File        string                 `json:"file"`
	Capsule     string                 `json:"capsule,omitempty"`
	Valid       bool                   `json:"valid"`
	Diagnostics []manifests.Diagnostic `json:"diagnostics"`
}

func validateCmd(g *globals) *cobra.Command {
	var asJSON, quiet bool
	cmd := &cobra.Command{
		Use:   "validate PATH...",
		Short: "Check Capsule.toml manifests and report every error and warning",
		Long: `validate parses and validates Capsule.toml manifests, current and legacy forms.

PATH is a Capsule.toml, a capsule directory, or a directory of capsule
directories. Every problem is printed on its own line as

    file:line:col: key.path: message

with warnings (unknown keys, deprecated legacy sections) marked "warning:".
The exit code is 1 when any manifest has an error, 0 otherwise.`,
		Example: `  astrid validate examples/echo
  astrid validate --json ~/.astrid/capsules`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var results []validateResult
			failed := false
			for _, arg := range args {
				files, err := manifests.Discover(arg)
				if err != nil {
					return &exitError{code: ExitFailure, err: err}
				}
				for _, f := range files {
					m, diags, err := manifests.Load(f)
					r := validateResult{File: f, Valid: err == nil, Diagnostics: diags}
					if r.Diagnostics == nil {
						r.Diagnostics = []manifests.Diagnostic{}
					}
					if m != nil {
						r.Capsule = m.Package.Name
					}
					if err != nil {
						failed = true
						if !errors.Is(err, manifests.ErrInvalid) && len(diags) == 0 {
							r.Diagnostics = append(r.Diagnostics, manifests.Diagnostic{File: f, Severity: manifests.SeverityError, Msg: err.Error()})
						}
					}
					results = append(results, r)
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					for _, d := range r.Diagnostics {
						if quiet && d.Severity == manifests.SeverityWarning {
							continue
						}
						fmt.Fprintln(out, d.String())
					}
				}
				errs, warns := 0, 0
				for _, r := range results {
					for _, d := range r.Diagnostics {
						if d.Severity == manifests.SeverityError {
							errs++
						} else {
							warns++
						}
					}
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%d manifest(s): %d error(s), %d warning(s)\n", len(results), errs, warns)
			}
			if failed {
				return &exitError{code: ExitFailure}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print results as JSON (for tools)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print errors only, not warnings")
	return cmd
}
