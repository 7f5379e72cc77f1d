package manifests

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/Masterminds/semver/v3"
)

// ValidateCapsuleID checks a capsule id (package.name): non-empty, only
// lowercase ASCII letters, digits and '-'.
func ValidateCapsuleID(id string) error {
	if id == "" {
		return errors.New("manifests: capsule id must not be empty")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("manifests: invalid capsule id %s: only lowercase letters, digits and '-' are allowed", quoteString(id))
		}
	}
	return nil
}

// MaxPrincipalIDLen is the longest principal id ValidatePrincipalID accepts.
const MaxPrincipalIDLen = 64

// ValidatePrincipalID checks a principal id: 1 to 64 ASCII letters,
// digits, '_' and '-'.
func ValidatePrincipalID(id string) error {
	if id == "" {
		return errors.New("manifests: principal id must not be empty")
	}
	if len(id) > MaxPrincipalIDLen {
		return fmt.Errorf("manifests: principal id is %d bytes long; at most %d are allowed", len(id), MaxPrincipalIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !isBareKeyByte(id[i]) {
			return fmt.Errorf("manifests: invalid principal id %s: only letters, digits, '_' and '-' are allowed", quoteString(id))
		}
	}
	return nil
}

// CheckTopic checks a topic or topic pattern as used in [publish] and
// [subscribe] keys: non-empty, no empty segments (no leading, trailing or
// double '.'), no whitespace and no '>' ('*' matches exactly one segment).
func CheckTopic(topic string) error {
	if msg := topicProblem(topic); msg != "" {
		return fmt.Errorf("manifests: invalid topic %s: %s", quoteString(topic), msg)
	}
	return nil
}

func topicProblem(t string) string {
	switch {
	case t == "":
		return "empty topic"
	case strings.IndexFunc(t, unicode.IsSpace) >= 0:
		return "contains whitespace"
	case strings.Contains(t, ">"):
		return "'>' is not allowed (use '*' to match one segment)"
	case slices.Contains(strings.Split(t, "."), ""):
		return "empty segment (leading, trailing or double '.')"
	}
	return ""
}

var ifaceNameRe = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
var cliNameRe = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// validate applies the semantic rules of the manifest (astrid-semantics
// §1.1 and this runtime's additions) to the decoded, translated manifest.
func (p *parser) validate() {
	p.validatePackage()
	p.validateComponents()
	p.validateCapabilities()
	p.validateIPC()
	p.validateInterfaces()
	p.validateEnv()
	p.validateCommands()
	p.validateOther()
}

func (p *parser) checkTopicAt(at keyPath, topic string) {
	if msg := topicProblem(topic); msg != "" {
		p.errorf(at, "invalid topic %s: %s", quoteString(topic), msg)
	}
}

func (p *parser) validatePackage() {
	pk := p.m.Package
	pkg := keyPath{}.key("package")
	if p.loc.has(pkg.key("name")) {
		if err := ValidateCapsuleID(pk.Name); err != nil {
			p.errorf(pkg.key("name"), "%s", strings.TrimPrefix(err.Error(), "manifests: "))
		}
	}
	if pk.AstridVersion != nil {
		rv := semver.MustParse(RuntimeVersion)
		if !pk.AstridVersion.Check(rv) {
			p.errorf(p.org.astridVersion, "requires Astrid %s, but this runtime implements Astrid %s", pk.AstridVersionRaw, RuntimeVersion)
		}
	}
	for _, k := range []struct {
		key  string
		list []string
	}{{"keywords", pk.Keywords}, {"categories", pk.Categories}} {
		if len(k.list) > 5 {
			p.warnf(pkg.key(k.key), "at most 5 %s are used, found %d", k.key, len(k.list))
		}
	}
}

func (p *parser) validateComponents() {
	m := p.m
	ids := make(map[string]bool)
	for i, c := range m.Components {
		at := p.org.components[i]
		p.oneOf(at.key("type"), "component type", c.Type, ComponentExecutable, ComponentLibrary)
		if c.ID != "" {
			if ids[c.ID] {
				p.errorf(at.key("id"), "duplicate component id %s", quoteString(c.ID))
			}
			ids[c.ID] = true
		}
		fileKey := at.key("file")
		if !p.loc.has(fileKey) {
			fileKey = at.key("entrypoint")
		}
		switch {
		case !p.loc.has(fileKey):
		case c.File == "":
			p.errorf(fileKey, "must not be empty")
		case strings.HasPrefix(c.File, "/") || strings.HasPrefix(c.File, `\`) ||
			path.Clean(c.File) == ".." || strings.HasPrefix(path.Clean(c.File), "../"):
			p.errorf(fileKey, "invalid file %s: must be a relative path inside the capsule directory", quoteString(c.File))
		}
	}
	for i, c := range m.Components {
		for _, l := range c.Link {
			if !ids[l] {
				p.errorf(p.org.components[i].key("link"), "unknown component id %s in link", quoteString(l))
			}
		}
	}
	if len(m.Components) > 1 {
		p.warnf(p.org.components[1], "only the first component is loaded: one WASM binary per capsule is supported")
	}
}

func (p *parser) validateCapabilities() {
	m := p.m
	c := m.Capabilities
	if c.BindWorkers != nil && p.org.bindWorkers != nil {
		tcp := slices.ContainsFunc(c.NetBind, func(s string) bool { return !strings.HasPrefix(s, "unix:") })
		switch {
		case !tcp:
			p.warnf(p.org.bindWorkers, "bind_workers is only honoured with a TCP net_bind entry such as \"127.0.0.1:8080\"")
		case len(c.HostProcess) > 0:
			p.warnf(p.org.bindWorkers, "bind_workers is ignored for a capsule with host_process")
		case len(m.Interceptors()) > 0:
			p.warnf(p.org.bindWorkers, "bind_workers is ignored for a capsule with interceptors (subscribe handlers)")
		}
	}
	if c.Uplink && len(m.Imports) > 0 {
		p.errorf(p.org.importsTable, "a capsule with capabilities.uplink = true cannot declare [imports]: uplinks load before every other capsule")
	}
}

func (p *parser) validateIPC() {
	m := p.m
	for i, e := range m.Publish {
		p.checkTopicAt(p.org.publish[i].topic, e.Topic)
	}
	for i, e := range m.Subscribe {
		o := p.org.subscribe[i]
		p.checkTopicAt(o.topic, e.Topic)
		if o.entry == nil {
			continue
		}
		hasHandler := p.loc.has(o.entry.key("handler"))
		if hasHandler && e.Handler == "" {
			p.errorf(o.entry.key("handler"), "must not be empty")
		}
		// Judge what the table declared: legacy translation may have added
		// a handler and priority to a table entry.
		if p.loc.has(o.entry.key("priority")) && !hasHandler {
			p.errorf(o.entry.key("priority"), "priority requires handler: only interceptor bindings are ordered")
		}
	}
}

func (p *parser) validateInterfaces() {
	check := func(at keyPath, ns, iface string) {
		for _, n := range []string{ns, iface} {
			if !ifaceNameRe.MatchString(n) {
				p.errorf(at, "invalid interface name %s in %s: namespace and interface must match ^[a-z][a-z0-9-]*$", quoteString(n), quoteString(ns+":"+iface))
				return
			}
		}
	}
	for i, im := range p.m.Imports {
		check(p.org.imports[i], im.Namespace, im.Interface)
	}
	for i, ex := range p.m.Exports {
		check(p.org.exports[i], ex.Namespace, ex.Interface)
	}
}

func (p *parser) validateEnv() {
	names := make(map[string]bool, len(p.m.Env))
	for _, e := range p.m.Env {
		names[e.Name] = true
	}
	for i, e := range p.m.Env {
		at := p.org.env[i]
		if !p.oneOf(at.key("type"), "env type", e.Type, EnvText, EnvSecret, EnvSelect, EnvArray) {
			continue
		}
		if e.Type == EnvSelect && len(e.EnumValues) == 0 && e.OptionsFrom == nil {
			p.errorf(at.key("type"), `type "select" needs enum_values (or options_from)`)
		}
		if len(e.EnumValues) > 0 && e.Default != nil {
			s, isStr := e.Default.(string)
			if !isStr || !slices.Contains(e.EnumValues, s) {
				q := make([]string, len(e.EnumValues))
				for j, v := range e.EnumValues {
					q[j] = quoteString(v)
				}
				p.errorf(at.key("default"), "default %s is not one of enum_values [%s]", renderValue(e.Default), strings.Join(q, ", "))
			}
		}
		if of := e.OptionsFrom; of != nil {
			ofAt := at.key("options_from")
			if !p.loc.has(ofAt) {
				ofAt = at.key("options-from")
			}
			for _, f := range []struct{ key, val string }{{"http", of.HTTP}, {"bearer", of.Bearer}} {
				for _, ref := range placeholders(f.val) {
					if !names[ref] {
						p.warnf(ofAt.key(f.key), "placeholder {%s} does not name an [env] entry", ref)
					}
				}
			}
			for j, a := range of.After {
				if !names[a] {
					p.warnf(ofAt.key("after").index(j), "%s does not name an [env] entry", quoteString(a))
				}
			}
		}
	}
}

// placeholders returns the names inside {braces} in s.
func placeholders(s string) []string {
	var out []string
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return out
		}
		if name := s[i+1 : i+j]; name != "" {
			out = append(out, name)
		}
		s = s[i+j+1:]
	}
}

func (p *parser) validateCommands() {
	seen := make(map[string]bool)
	for i, c := range p.m.Commands {
		at := p.org.commands[i]
		kindOK := p.oneOf(at.key("kind"), "command kind", c.Kind, CommandSlash, CommandCLI)
		if !p.loc.has(at.key("name")) {
			continue
		}
		switch {
		case c.Name == "":
			p.errorf(at.key("name"), "must not be empty")
		case kindOK && c.Kind == CommandCLI && (len(c.Name) > 32 || !cliNameRe.MatchString(c.Name)):
			p.errorf(at.key("name"), "invalid command name %s: a cli command name must match [a-z][a-z0-9-]* and be 1-32 characters", quoteString(c.Name))
		case kindOK && c.Kind == CommandCLI && slices.Contains(reservedVerbs, c.Name):
			p.errorf(at.key("name"), "command name %s is reserved by the built-in \"astrid capsule %s\"", quoteString(c.Name), c.Name)
		}
		if c.Name != "" {
			if seen[c.Name] {
				p.errorf(at.key("name"), "duplicate command %s", quoteString(c.Name))
			}
			seen[c.Name] = true
		}
	}
}

func (p *parser) validateOther() {
	m := p.m
	dupCheck := func(what string, at func(int) keyPath, n int, name func(int) string) {
		seen := make(map[string]bool)
		for i := 0; i < n; i++ {
			s := name(i)
			if s == "" {
				if p.loc.has(at(i)) {
					p.errorf(at(i), "must not be empty")
				}
				continue
			}
			if seen[s] {
				p.errorf(at(i), "duplicate %s %s", what, quoteString(s))
			}
			seen[s] = true
		}
	}
	dupCheck("tool", func(i int) keyPath { return p.org.tools[i].key("name") }, len(m.Tools), func(i int) string { return m.Tools[i].Name })
	dupCheck("uplink", func(i int) keyPath { return p.org.uplinks[i].key("name") }, len(m.Uplinks), func(i int) string { return m.Uplinks[i].Name })
	dupCheck("mcp_server", func(i int) keyPath { return p.org.mcp[i].key("id") }, len(m.MCPServers), func(i int) string { return m.MCPServers[i].ID })

	for i, u := range m.Uplinks {
		at := p.org.uplinks[i].key("profile")
		switch u.Profile {
		case "":
		case "human":
			p.warnf(at, `profile "human" is a legacy profile: use "chat", "interactive", "notify" or "bridge"`)
		default:
			p.oneOf(at, "uplink profile", u.Profile, "chat", "interactive", "notify", "bridge")
		}
	}
	for i, s := range m.MCPServers {
		at := p.org.mcp[i]
		if !p.oneOf(at.key("type"), "mcp_server type", s.Type, "stdio", "wasm-ipc") || s.Type != "stdio" {
			continue
		}
		if s.Command == "" {
			p.errorf(at.key("command"), `missing required key: type = "stdio" needs a command`)
			continue
		}
		if !slices.ContainsFunc(m.Capabilities.HostProcess, func(h string) bool { return s.Command == h || strings.HasPrefix(s.Command, h+" ") }) {
			p.warnf(at.key("command"), "command %s is not listed in capabilities.host_process; the runtime will refuse to spawn it", quoteString(s.Command))
		}
	}
	if d := m.Dependencies; d != nil {
		for i, e := range p.org.provides {
			if d.Provides[i].Kind == "topic" {
				p.checkTopicAt(e, d.Provides[i].Name)
			}
		}
		for i, e := range p.org.requires {
			if d.Requires[i].Kind == "topic" {
				p.checkTopicAt(e, d.Requires[i].Name)
			}
		}
	}
	for i, t := range m.Topics {
		if t.Name != "" && !p.topicChecked(t.Name) {
			p.checkTopicAt(p.org.topics[i], t.Name)
		}
	}
	if m.Capabilities.AllowPersistent && len(m.Capabilities.HostProcess) == 0 && p.org.allowPersistent != nil {
		p.warnf(p.org.allowPersistent, "allow_persistent has no effect without host_process")
	}
}

// topicChecked reports whether topic is already a publish/subscribe key
// (and so was checked there).
func (p *parser) topicChecked(topic string) bool {
	return p.findPublish(topic) >= 0 || p.findSubscribe(topic) >= 0
}
