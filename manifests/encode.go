package manifests

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Encode renders m as a current-form Capsule.toml. Legacy constructs appear
// in their translated form ([[interceptor]] as [subscribe] handlers,
// ipc_publish as [publish] keys); legacy data with no current equivalent
// ([dependencies], [[topic]], [[cron]], [[llm_provider]], [[connector]]) is
// written back in its legacy form. Limits and Supervision keys are written
// when set or different from the default.
//
// Parsing the output gives a Manifest equal to m when m came from Parse
// without errors. Encode fails only on a free-form value (an env default,
// package metadata, a tool input schema) of a type TOML cannot represent.
func Encode(m *Manifest) ([]byte, error) {
	e := &encoder{}
	e.pkg(&m.Package)
	for _, c := range m.Components {
		e.section("[[component]]")
		e.str("id", c.ID)
		e.str("file", c.File)
		e.str("hash", c.Hash)
		e.str("type", c.Type)
		e.strs("link", c.Link)
		if c.Capabilities != nil {
			e.kv("capabilities", inline(capsPairs(c.Capabilities)))
		}
	}
	if pairs := capsPairs(&m.Capabilities); len(pairs) > 0 {
		e.section("[capabilities]")
		e.pairs(pairs)
	}
	if len(m.Imports) > 0 {
		e.section("[imports]")
		for _, im := range m.Imports {
			v := quoteString(im.RequirementRaw)
			if im.Optional {
				v = inline([]kvp{{"version", v}, {"optional", "true"}})
			}
			e.kv(im.Namespace+":"+im.Interface, v)
		}
	}
	if len(m.Exports) > 0 {
		e.section("[exports]")
		for _, ex := range m.Exports {
			e.kv(ex.Namespace+":"+ex.Interface, quoteString(ex.VersionRaw))
		}
	}
	if len(m.Publish) > 0 {
		e.section("[publish]")
		for _, p := range m.Publish {
			pairs := []kvp{{"wit", quoteString(p.Wit)}}
			if p.Fanout {
				pairs = append(pairs, kvp{"fanout", "true"})
			}
			pairs = appendPin(pairs, p.Source)
			e.entry(p.Topic, pairs)
		}
	}
	if len(m.Subscribe) > 0 {
		e.section("[subscribe]")
		for _, s := range m.Subscribe {
			pairs := []kvp{{"wit", quoteString(s.Wit)}}
			if s.Handler != "" {
				pairs = append(pairs, kvp{"handler", quoteString(s.Handler)})
			}
			if s.HasPriority {
				pairs = append(pairs, kvp{"priority", strconv.FormatUint(uint64(s.Priority), 10)})
			}
			pairs = appendPin(pairs, s.Source)
			e.entry(s.Topic, pairs)
		}
	}
	if len(m.Env) > 0 {
		e.section("[env]")
		for _, v := range m.Env {
			e.env(v)
		}
	}
	for _, t := range m.Tools {
		e.section("[[tool]]")
		e.str("name", t.Name)
		e.str("description_for_llm", t.DescriptionForLLM)
		e.str("input_schema_wit", t.InputSchemaWit)
		e.boolean("mutable", t.Mutable)
		if t.InputSchema != nil {
			e.value("input_schema", t.InputSchema)
		}
	}
	for _, c := range m.Commands {
		e.section("[[command]]")
		e.str("name", c.Name)
		e.str("description", c.Description)
		e.str("file", c.File)
		e.str("kind", c.Kind)
	}
	for _, u := range m.Uplinks {
		e.section("[[uplink]]")
		e.str("name", u.Name)
		e.str("platform", u.Platform)
		e.str("profile", u.Profile)
	}
	for _, s := range m.MCPServers {
		e.section("[[mcp_server]]")
		e.str("id", s.ID)
		e.str("description", s.Description)
		e.str("type", s.Type)
		e.str("command", s.Command)
		e.strs("args", s.Args)
	}
	for _, s := range m.Skills {
		e.section("[[skill]]")
		e.str("name", s.Name)
		e.str("description", s.Description)
		e.str("file", s.File)
	}
	for _, c := range m.ContextFiles {
		e.section("[[context_file]]")
		e.str("name", c.Name)
		e.str("file", c.File)
	}
	e.limits(m.Limits)
	e.supervision(m.Supervision)
	if d := m.Dependencies; d != nil {
		e.section("[dependencies]")
		if !d.ProvidesDerived {
			e.strs("provides", edgeStrings(d.Provides))
		}
		e.strs("requires", edgeStrings(d.Requires))
	}
	for _, t := range m.Topics {
		e.section("[[topic]]")
		e.str("name", t.Name)
		e.str("direction", t.Direction)
		e.str("description", t.Description)
		e.str("schema", t.Schema)
		e.str("wit_type", t.WitType)
	}
	for _, c := range m.Crons {
		e.section("[[cron]]")
		e.str("name", c.Name)
		e.str("schedule", c.Schedule)
		e.str("action", c.Action)
	}
	for _, l := range m.LLMProviders {
		e.section("[[llm_provider]]")
		e.str("id", l.ID)
		e.str("description", l.Description)
		e.strs("capabilities", l.Capabilities)
	}
	for _, c := range m.Connectors {
		e.section("[[connector]]")
		e.str("id", c.ID)
		e.str("protocol", c.Protocol)
		e.strs("topics", c.Topics)
	}
	if e.err != nil {
		return nil, e.err
	}
	return e.b.Bytes(), nil
}

type kvp struct{ key, val string }

type encoder struct {
	b   bytes.Buffer
	err error
}

func (e *encoder) section(h string) {
	if e.b.Len() > 0 {
		e.b.WriteByte('\n')
	}
	e.b.WriteString(h)
	e.b.WriteByte('\n')
}

func (e *encoder) kv(key, val string) {
	e.b.WriteString(RenderKey(key))
	e.b.WriteString(" = ")
	e.b.WriteString(val)
	e.b.WriteByte('\n')
}

func (e *encoder) pairs(ps []kvp) {
	for _, p := range ps {
		e.kv(p.key, p.val)
	}
}

// entry writes a publish/subscribe entry: short form when only wit is set.
func (e *encoder) entry(topic string, ps []kvp) {
	if len(ps) == 1 {
		e.kv(topic, ps[0].val)
		return
	}
	e.kv(topic, inline(ps))
}

func (e *encoder) str(key, v string) {
	if v != "" {
		e.kv(key, quoteString(v))
	}
}

func (e *encoder) strs(key string, v []string) {
	if len(v) > 0 {
		e.kv(key, strArray(v))
	}
}

func (e *encoder) boolean(key string, v bool) {
	if v {
		e.kv(key, "true")
	}
}

func (e *encoder) value(key string, v any) {
	s, err := formatValue(v)
	if err != nil {
		if e.err == nil {
			e.err = fmt.Errorf("manifests: encode %s: %w", key, err)
		}
		return
	}
	e.kv(key, s)
}

func (e *encoder) pkg(p *Package) {
	e.section("[package]")
	e.str("name", p.Name)
	v := p.VersionRaw
	if v == "" && p.Version != nil {
		v = p.Version.String()
	}
	e.str("version", v)
	e.str("astrid-version", p.AstridVersionRaw)
	e.str("description", p.Description)
	e.strs("authors", p.Authors)
	e.str("license", p.License)
	e.str("license-file", p.LicenseFile)
	e.str("readme", p.Readme)
	e.str("repository", p.Repository)
	e.str("homepage", p.Homepage)
	e.str("documentation", p.Documentation)
	e.strs("keywords", p.Keywords)
	e.strs("categories", p.Categories)
	if p.Publish != nil {
		e.kv("publish", strconv.FormatBool(*p.Publish))
	}
	e.strs("include", p.Include)
	e.strs("exclude", p.Exclude)
	if p.Metadata != nil {
		e.value("metadata", p.Metadata)
	}
}

func (e *encoder) env(v EnvVar) {
	ps := []kvp{{"type", quoteString(v.Type)}}
	add := func(k, s string) {
		if s != "" {
			ps = append(ps, kvp{k, quoteString(s)})
		}
	}
	add("request", v.Request)
	add("description", v.Description)
	if v.Default != nil {
		s, err := formatValue(v.Default)
		if err != nil {
			if e.err == nil {
				e.err = fmt.Errorf("manifests: encode env %s default: %w", v.Name, err)
			}
		} else {
			ps = append(ps, kvp{"default", s})
		}
	}
	if len(v.EnumValues) > 0 {
		ps = append(ps, kvp{"enum_values", strArray(v.EnumValues)})
	}
	add("placeholder", v.Placeholder)
	if of := v.OptionsFrom; of != nil {
		var ops []kvp
		for _, f := range []kvp{{"http", of.HTTP}, {"bearer", of.Bearer}, {"select", of.Select}} {
			if f.val != "" {
				ops = append(ops, kvp{f.key, quoteString(f.val)})
			}
		}
		if len(of.After) > 0 {
			ops = append(ops, kvp{"after", strArray(of.After)})
		}
		ps = append(ps, kvp{"options_from", inline(ops)})
	}
	e.kv(v.Name, inline(ps))
}

func (e *encoder) limits(l Limits) {
	d := DefaultLimits()
	var ps []kvp
	if l.IsSet("memory_pages") || l.MemoryPages != d.MemoryPages {
		ps = append(ps, kvp{"memory_pages", strconv.FormatUint(uint64(l.MemoryPages), 10)})
	}
	if l.IsSet("call_timeout") || l.CallTimeout != d.CallTimeout {
		ps = append(ps, kvp{"call_timeout", quoteString(l.CallTimeout.String())})
	}
	if l.IsSet("mailbox_size") || l.MailboxSize != d.MailboxSize {
		ps = append(ps, kvp{"mailbox_size", strconv.Itoa(l.MailboxSize)})
	}
	if l.IsSet("overflow") || l.Overflow != d.Overflow {
		ps = append(ps, kvp{"overflow", quoteString(l.Overflow)})
	}
	if len(ps) > 0 {
		e.section("[limits]")
		e.pairs(ps)
	}
}

func (e *encoder) supervision(s Supervision) {
	d := DefaultSupervision()
	var ps []kvp
	str := func(k, v, def string) {
		if s.IsSet(k) || v != def {
			ps = append(ps, kvp{k, quoteString(v)})
		}
	}
	num := func(k string, v, def int) {
		if s.IsSet(k) || v != def {
			ps = append(ps, kvp{k, strconv.Itoa(v)})
		}
	}
	dur := func(k string, v, def time.Duration) {
		if s.IsSet(k) || v != def {
			ps = append(ps, kvp{k, quoteString(v.String())})
		}
	}
	str("restart", s.Restart, d.Restart)
	num("max_restarts", s.MaxRestarts, d.MaxRestarts)
	dur("within", s.Within, d.Within)
	dur("backoff_initial", s.BackoffInitial, d.BackoffInitial)
	dur("backoff_max", s.BackoffMax, d.BackoffMax)
	if s.IsSet("backoff_multiplier") || s.BackoffMultiplier != d.BackoffMultiplier {
		ps = append(ps, kvp{"backoff_multiplier", formatFloat(s.BackoffMultiplier)})
	}
	dur("reset_after", s.ResetAfter, d.ResetAfter)
	str("on_exhausted", s.OnExhausted, d.OnExhausted)
	if s.IsSet("singleton") || s.Singleton {
		ps = append(ps, kvp{"singleton", strconv.FormatBool(s.Singleton)})
	}
	dur("readiness_timeout", s.ReadinessTimeout, d.ReadinessTimeout)
	str("on_crash", s.OnCrash, d.OnCrash)
	num("poison_threshold", s.PoisonThreshold, d.PoisonThreshold)
	if len(ps) > 0 {
		e.section("[supervision]")
		e.pairs(ps)
	}
}

func capsPairs(c *Capabilities) []kvp {
	var ps []kvp
	b := func(k string, v bool) {
		if v {
			ps = append(ps, kvp{k, "true"})
		}
	}
	l := func(k string, v []string) {
		if len(v) > 0 {
			ps = append(ps, kvp{k, strArray(v)})
		}
	}
	b("uplink", c.Uplink)
	l("net", c.Net)
	l("net_connect", c.NetConnect)
	l("net_bind", c.NetBind)
	if c.BindWorkers != nil {
		ps = append(ps, kvp{"bind_workers", strconv.Itoa(*c.BindWorkers)})
	}
	l("kv", c.KV)
	l("fs_read", c.FsRead)
	l("fs_write", c.FsWrite)
	l("host_process", c.HostProcess)
	b("allow_persistent", c.AllowPersistent)
	l("identity", c.Identity)
	b("allow_prompt_injection", c.AllowPromptInjection)
	return ps
}

func appendPin(ps []kvp, pin *SourcePin) []kvp {
	if pin == nil {
		return ps
	}
	return append(ps, kvp{pin.Kind, quoteString(pin.Value)})
}

func edgeStrings(ds []Dependency) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

func inline(ps []kvp) string {
	if len(ps) == 0 {
		return "{}"
	}
	var b strings.Builder
	b.WriteString("{ ")
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(RenderKey(p.key))
		b.WriteString(" = ")
		b.WriteString(p.val)
	}
	b.WriteString(" }")
	return b.String()
}

func strArray(v []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range v {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteString(s))
	}
	b.WriteByte(']')
	return b.String()
}

// renderValue renders a value for a diagnostic message.
func renderValue(v any) string {
	s, err := formatValue(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return s
}

// formatValue renders a free-form value as inline TOML. Maps are written
// with sorted keys.
func formatValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return quoteString(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case uint32:
		return strconv.FormatUint(uint64(x), 10), nil
	case float64:
		return formatFloat(x), nil
	case float32:
		return formatFloat(float64(x)), nil
	case time.Time:
		return formatTime(x), nil
	case []string:
		return strArray(x), nil
	case []any:
		var b strings.Builder
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			s, err := formatValue(e)
			if err != nil {
				return "", err
			}
			b.WriteString(s)
		}
		b.WriteByte(']')
		return b.String(), nil
	case []map[string]any:
		return formatValue(normalizeValue(x))
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		ps := make([]kvp, 0, len(keys))
		for _, k := range keys {
			s, err := formatValue(x[k])
			if err != nil {
				return "", err
			}
			ps = append(ps, kvp{k, s})
		}
		return inline(ps), nil
	}
	return "", fmt.Errorf("unsupported value type %T", v)
}

func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

// formatTime renders a decoded TOML date/time in its original flavour;
// BurntSushi/toml marks local values with named zones.
func formatTime(t time.Time) string {
	switch t.Location().String() {
	case "datetime-local":
		return t.Format("2006-01-02T15:04:05.999999999")
	case "date-local":
		return t.Format("2006-01-02")
	case "time-local":
		return t.Format("15:04:05.999999999")
	}
	return t.Format(time.RFC3339Nano)
}
