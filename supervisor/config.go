package supervisor

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/astrid-go/astrid/manifests"
)

// FileConfig is the node configuration file (astrid run --config
// astrid.toml). Every section is optional.
//
//	[supervision]            # node-wide defaults for keys a manifest leaves unset
//	max_restarts = 5
//	within = "60s"
//	backoff_initial = "100ms"
//
//	[limits]                 # node-wide defaults for [limits]
//	memory_pages = 1024
//
//	[[group]]                # supervision groups (default: one_for_one each)
//	name = "pipeline"
//	strategy = "rest_for_one"   # one_for_one | one_for_all | rest_for_one
//	capsules = ["source", "transform", "sink"]
//
//	[answers.weather]        # answers to install/upgrade elicit prompts
//	UNITS = "metric"
type FileConfig struct {
	Supervision map[string]any `toml:"supervision"`
	Limits      map[string]any `toml:"limits"`
	Groups      []GroupConfig  `toml:"group"`
	// Answers pre-answers elicit requests: [answers.<capsule>] KEY = value.
	Answers map[string]map[string]any `toml:"answers"`
}

// GroupConfig is one [[group]] of the node config.
type GroupConfig struct {
	Name     string   `toml:"name"`
	Strategy string   `toml:"strategy"`
	Capsules []string `toml:"capsules"`
}

// Strategies of a group.
const (
	OneForOne  = "one_for_one"
	OneForAll  = "one_for_all"
	RestForOne = "rest_for_one"
)

// LoadFileConfig reads and validates a node config file. Errors name the
// file, line and key.
func LoadFileConfig(path string) (*FileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("supervisor: config: %w", err)
	}
	var fc FileConfig
	md, err := toml.Decode(string(data), &fc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d:%d: %s", path, pe.Position.Line, pe.Position.Col, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var errs []error
	for _, k := range md.Undecoded() {
		if len(k) > 0 && (k[0] == "supervision" || k[0] == "limits") {
			continue // validated below through the manifest parser
		}
		errs = append(errs, fmt.Errorf("%s: unknown key %s", path, k.String()))
	}
	seen := map[string]string{}
	for i, g := range fc.Groups {
		if g.Name == "" {
			errs = append(errs, fmt.Errorf("%s: group[%d].name: required", path, i))
		}
		if g.Strategy == "" {
			fc.Groups[i].Strategy = OneForOne
		} else if !slices.Contains([]string{OneForOne, OneForAll, RestForOne}, g.Strategy) {
			errs = append(errs, fmt.Errorf("%s: group[%d].strategy: %q is not one_for_one, one_for_all or rest_for_one", path, i, g.Strategy))
		}
		for _, c := range g.Capsules {
			if prev, dup := seen[c]; dup {
				errs = append(errs, fmt.Errorf("%s: group[%d].capsules: %q is already in group %q", path, i, c, prev))
			}
			seen[c] = g.Name
		}
	}
	// Validate the default tables by parsing them as a manifest would.
	if _, err := fc.apply(&manifests.Manifest{Limits: manifests.DefaultLimits(), Supervision: manifests.DefaultSupervision()}); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", path, err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &fc, nil
}

// apply fills m's [supervision] and [limits] keys that the manifest left
// unset with the node-wide defaults, and returns m.
func (fc *FileConfig) apply(m *manifests.Manifest) (*manifests.Manifest, error) {
	if fc == nil || (len(fc.Supervision) == 0 && len(fc.Limits) == 0) {
		return m, nil
	}
	// Render the defaults as a manifest and let the manifest parser
	// validate and decode them, so the node config accepts exactly what a
	// manifest accepts.
	var b strings.Builder
	b.WriteString("[package]\nname = \"node-defaults\"\nversion = \"0.0.0\"\n")
	enc := toml.NewEncoder(&b)
	if err := enc.Encode(map[string]any{"supervision": fc.Supervision, "limits": fc.Limits}); err != nil {
		return nil, err
	}
	d, _, err := manifests.Parse("node config", []byte(b.String()))
	if err != nil {
		return nil, err
	}
	out := *m
	for key := range d.Supervision.Set {
		if m.Supervision.IsSet(key) {
			continue
		}
		setSupervision(&out.Supervision, &d.Supervision, key)
	}
	for key := range d.Limits.Set {
		if m.Limits.IsSet(key) {
			continue
		}
		setLimits(&out.Limits, &d.Limits, key)
	}
	return &out, nil
}

func setSupervision(dst, src *manifests.Supervision, key string) {
	switch key {
	case "restart":
		dst.Restart = src.Restart
	case "max_restarts":
		dst.MaxRestarts = src.MaxRestarts
	case "within":
		dst.Within = src.Within
	case "backoff_initial":
		dst.BackoffInitial = src.BackoffInitial
	case "backoff_max":
		dst.BackoffMax = src.BackoffMax
	case "backoff_multiplier":
		dst.BackoffMultiplier = src.BackoffMultiplier
	case "reset_after":
		dst.ResetAfter = src.ResetAfter
	case "on_exhausted":
		dst.OnExhausted = src.OnExhausted
	case "readiness_timeout":
		dst.ReadinessTimeout = src.ReadinessTimeout
	case "on_crash":
		dst.OnCrash = src.OnCrash
	case "poison_threshold":
		dst.PoisonThreshold = src.PoisonThreshold
	}
}

func setLimits(dst, src *manifests.Limits, key string) {
	switch key {
	case "memory_pages":
		dst.MemoryPages = src.MemoryPages
	case "call_timeout":
		dst.CallTimeout = src.CallTimeout
	case "mailbox_size":
		dst.MailboxSize = src.MailboxSize
	case "overflow":
		dst.Overflow = src.Overflow
	}
}

// groupOf returns the group of capsule id; capsules in no group form their
// own one_for_one group.
func (fc *FileConfig) groupOf(id string) GroupConfig {
	if fc != nil {
		for _, g := range fc.Groups {
			if slices.Contains(g.Capsules, id) {
				return g
			}
		}
	}
	return GroupConfig{Name: id, Strategy: OneForOne, Capsules: []string{id}}
}
