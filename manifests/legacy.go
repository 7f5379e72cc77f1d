package manifests

import (
	"math"
	"strconv"
	"strings"
)

// legacyInput holds decoded legacy constructs waiting for translation.
type legacyInput struct {
	ipc          []ipcArray
	interceptors []legacyInterceptor
}

// ipcArray is one capabilities.ipc_publish / ipc_subscribe array.
type ipcArray struct {
	publish bool
	path    keyPath
	vals    []string
	paths   []keyPath
}

// legacyInterceptor is one [[interceptor]].
type legacyInterceptor struct {
	path        keyPath
	event       string
	eventPath   keyPath
	action      string
	priority    uint32
	hasPriority bool
}

// decodeLegacy reads the legacy sections and reports one deprecation
// warning per construct, at its first occurrence.
func (p *parser) decodeLegacy(root *tbl) {
	for _, t := range root.tables("interceptor") {
		ic := legacyInterceptor{path: t.path}
		ev, hasEv := t.str("event")
		tp, hasTp := t.str("topic")
		switch {
		case hasEv && hasTp:
			p.errorf(t.at("topic"), "event and topic are aliases: set only event")
			ic.event, ic.eventPath = ev, t.at("event")
		case hasEv:
			ic.event, ic.eventPath = ev, t.at("event")
		case hasTp:
			ic.event, ic.eventPath = tp, t.at("topic")
		case !t.has("event") && !t.has("topic"):
			p.errorf(t.at("event"), "missing required key")
		}
		ic.action, _ = t.str("action")
		if n, ok := t.intRange("priority", 0, math.MaxUint32); ok {
			ic.priority, ic.hasPriority = uint32(n), true
		}
		t.finish()
		if len(p.leg.interceptors) == 0 {
			p.warnf(t.path, "[[interceptor]] is deprecated since Astrid 0.8: use %s", interceptorSpelling(ic))
		}
		p.leg.interceptors = append(p.leg.interceptors, ic)
	}

	if t, ok := root.sub("dependencies"); ok {
		p.warnf(t.path, "[dependencies] is deprecated since Astrid 0.4: use [imports] and [exports] (provides/requires are kept as dependency edges)")
		d := &Dependencies{}
		vals, paths := t.strsPaths("provides")
		d.Provides, p.org.provides = p.edges(vals, paths)
		vals, paths = t.strsPaths("requires")
		d.Requires, p.org.requires = p.edges(vals, paths)
		t.finish()
		p.m.Dependencies = d
	}

	for i, t := range root.tables("topic") {
		if i == 0 {
			p.warnf(t.path, "[[topic]] is deprecated since Astrid 0.8: put the payload type in the wit field of the [publish]/[subscribe] entry")
		}
		tp := Topic{Name: t.reqStr("name")}
		if d, ok := t.str("direction"); ok && p.oneOf(t.at("direction"), "direction", d, "publish", "subscribe") {
			tp.Direction = d
		}
		tp.Description, _ = t.str("description")
		tp.Schema, _ = t.str("schema")
		tp.WitType, _ = t.str("wit_type")
		t.finish()
		p.m.Topics = append(p.m.Topics, tp)
		p.org.topics = append(p.org.topics, t.at("name"))
	}

	for i, t := range root.tables("cron") {
		if i == 0 {
			p.warnf(t.path, "[[cron]] was removed in Astrid 0.5 and never implemented: kept as data, not run")
		}
		c := Cron{}
		c.Name, _ = t.str("name")
		c.Schedule, _ = t.str("schedule")
		c.Action, _ = t.str("action")
		t.finish()
		p.m.Crons = append(p.m.Crons, c)
	}

	for i, t := range root.tables("llm_provider") {
		if i == 0 {
			p.warnf(t.path, "[[llm_provider]] was removed in Astrid 0.5: kept as data, not acted on (providers answer llm.v1.request.describe)")
		}
		l := LLMProvider{}
		l.ID, _ = t.str("id")
		l.Description, _ = t.str("description")
		l.Capabilities, _ = t.strs("capabilities")
		t.finish()
		p.m.LLMProviders = append(p.m.LLMProviders, l)
	}

	for i, t := range root.tables("connector") {
		if i == 0 {
			p.warnf(t.path, "[[connector]] is a pre-0.2 construct: kept as data, not acted on; declare its topics in [publish]/[subscribe]")
		}
		c := Connector{}
		c.ID, _ = t.str("id")
		c.Protocol, _ = t.str("protocol")
		c.Topics, _ = t.strs("topics")
		t.finish()
		p.m.Connectors = append(p.m.Connectors, c)
	}
}

// interceptorSpelling renders the current-form equivalent of ic.
func interceptorSpelling(ic legacyInterceptor) string {
	topic := ic.event
	if topic == "" {
		topic = "topic"
	}
	s := "[subscribe]." + quoteString(topic) + ` = { wit = "opaque"`
	if ic.action != "" {
		s += ", handler = " + quoteString(ic.action)
		if ic.hasPriority {
			s += ", priority = " + strconv.FormatUint(uint64(ic.priority), 10)
		}
	}
	return s + " }"
}

// edges parses legacy "kind:name" dependency strings.
func (p *parser) edges(vals []string, paths []keyPath) ([]Dependency, []keyPath) {
	var out []Dependency
	var outPaths []keyPath
	for i, v := range vals {
		kind, name, ok := strings.Cut(v, ":")
		if !ok || kind == "" || name == "" {
			p.errorf(paths[i], `invalid dependency %s: expected "kind:name" such as "topic:session.v1.append"`, quoteString(v))
			continue
		}
		switch kind {
		case "topic", "tool", "llm", "uplink":
		default:
			p.warnf(paths[i], "unknown dependency kind %s: expected topic, tool, llm or uplink", quoteString(kind))
		}
		out = append(out, Dependency{Kind: kind, Name: name})
		outPaths = append(outPaths, paths[i])
	}
	return out, outPaths
}

// translateLegacy merges component capabilities and turns legacy IPC
// declarations into current Publish/Subscribe entries.
func (p *parser) translateLegacy() {
	m := p.m
	for _, c := range m.Components {
		if c.Capabilities != nil {
			mergeCapabilities(&m.Capabilities, c.Capabilities)
		}
	}

	warned := map[bool]bool{}
	for _, a := range p.leg.ipc {
		if !warned[a.publish] {
			warned[a.publish] = true
			table := "subscribe"
			if a.publish {
				table = "publish"
			}
			use := "[" + table + "] keys"
			if len(a.vals) > 0 {
				use = "[" + table + "]." + quoteString(a.vals[0]) + ` = { wit = "opaque" }`
			}
			p.warnf(a.path, "%s is deprecated since Astrid 0.8: use %s", a.path[len(a.path)-1].key, use)
		}
		for i, v := range a.vals {
			if a.publish {
				if p.findPublish(v) >= 0 {
					continue
				}
				p.addPublish(PublishEntry{Topic: v, Wit: "opaque"}, entryOrigin{topic: a.paths[i]})
			} else {
				if p.findSubscribe(v) >= 0 {
					continue
				}
				p.addSubscribe(SubscribeEntry{Topic: v, Wit: "opaque", Priority: DefaultPriority}, entryOrigin{topic: a.paths[i]})
			}
		}
	}

	for _, ic := range p.leg.interceptors {
		if ic.eventPath == nil {
			continue // no usable event; already reported
		}
		if ic.action == "" {
			note := ""
			if ic.hasPriority {
				note = " (priority ignored)"
			}
			p.warnf(ic.path, "interceptor has no action: translated to an ACL-only subscribe entry%s", note)
		}
		i := p.findSubscribe(ic.event)
		if i < 0 {
			e := SubscribeEntry{Topic: ic.event, Wit: "opaque", Priority: DefaultPriority}
			if ic.action != "" {
				e.Handler = ic.action
				if ic.hasPriority {
					e.Priority, e.HasPriority = ic.priority, true
				}
			}
			p.addSubscribe(e, entryOrigin{topic: ic.eventPath})
			continue
		}
		if ic.action == "" {
			continue
		}
		e := &m.Subscribe[i]
		switch {
		case e.Handler == "":
			e.Handler = ic.action
			if ic.hasPriority {
				e.Priority, e.HasPriority = ic.priority, true
			}
		case e.Handler != ic.action:
			prev := p.org.subscribe[i].topic
			p.errorf(ic.path, "topic %s already has handler %s (line %d); a subscribe entry binds one handler", quoteString(ic.event), quoteString(e.Handler), p.loc.at(prev).Line)
		}
	}

	for i, tp := range m.Topics {
		if tp.Direction == "" || tp.Name == "" {
			continue
		}
		wit := tp.WitType
		if wit == "" {
			wit = tp.Schema
		}
		if wit == "" {
			wit = "opaque"
		}
		if tp.Direction == "publish" {
			if j := p.findPublish(tp.Name); j < 0 {
				p.addPublish(PublishEntry{Topic: tp.Name, Wit: wit}, entryOrigin{topic: p.org.topics[i]})
			} else if p.org.publish[j].entry == nil {
				m.Publish[j].Wit = wit
			}
			continue
		}
		if j := p.findSubscribe(tp.Name); j < 0 {
			p.addSubscribe(SubscribeEntry{Topic: tp.Name, Wit: wit, Priority: DefaultPriority}, entryOrigin{topic: p.org.topics[i]})
		} else if p.org.subscribe[j].entry == nil {
			m.Subscribe[j].Wit = wit
		}
	}

	if d := m.Dependencies; d != nil && len(d.Provides) == 0 {
		d.Provides = deriveProvides(m)
		d.ProvidesDerived = true
	}
}

// deriveProvides computes legacy provides for a manifest that declares
// none: topic:<publish key>, tool:<name>, llm:<provider id>,
// uplink:<name>.
func deriveProvides(m *Manifest) []Dependency {
	var out []Dependency
	for _, e := range m.Publish {
		out = append(out, Dependency{Kind: "topic", Name: e.Topic})
	}
	for _, t := range m.Tools {
		if t.Name != "" {
			out = append(out, Dependency{Kind: "tool", Name: t.Name})
		}
	}
	for _, l := range m.LLMProviders {
		if l.ID != "" {
			out = append(out, Dependency{Kind: "llm", Name: l.ID})
		}
	}
	for _, u := range m.Uplinks {
		if u.Name != "" {
			out = append(out, Dependency{Kind: "uplink", Name: u.Name})
		}
	}
	return out
}

// findPublish returns the index of the Publish entry for topic, or -1.
func (p *parser) findPublish(topic string) int {
	if p.pubIdx == nil {
		p.pubIdx = make(map[string]int, len(p.m.Publish))
		for i, e := range p.m.Publish {
			if _, dup := p.pubIdx[e.Topic]; !dup {
				p.pubIdx[e.Topic] = i
			}
		}
	}
	if i, ok := p.pubIdx[topic]; ok {
		return i
	}
	return -1
}

// findSubscribe returns the index of the Subscribe entry for topic, or -1.
func (p *parser) findSubscribe(topic string) int {
	if p.subIdx == nil {
		p.subIdx = make(map[string]int, len(p.m.Subscribe))
		for i, e := range p.m.Subscribe {
			if _, dup := p.subIdx[e.Topic]; !dup {
				p.subIdx[e.Topic] = i
			}
		}
	}
	if i, ok := p.subIdx[topic]; ok {
		return i
	}
	return -1
}

func (p *parser) addPublish(e PublishEntry, o entryOrigin) {
	p.findPublish(e.Topic) // builds the index
	p.pubIdx[e.Topic] = len(p.m.Publish)
	p.m.Publish = append(p.m.Publish, e)
	p.org.publish = append(p.org.publish, o)
}

func (p *parser) addSubscribe(e SubscribeEntry, o entryOrigin) {
	p.findSubscribe(e.Topic)
	p.subIdx[e.Topic] = len(p.m.Subscribe)
	p.m.Subscribe = append(p.m.Subscribe, e)
	p.org.subscribe = append(p.org.subscribe, o)
}

// mergeCapabilities merges src into dst: lists are unioned (order kept,
// duplicates dropped), bools OR-ed, and a set BindWorkers overrides.
func mergeCapabilities(dst *Capabilities, src *Capabilities) {
	dst.Uplink = dst.Uplink || src.Uplink
	dst.Net = union(dst.Net, src.Net)
	dst.NetConnect = union(dst.NetConnect, src.NetConnect)
	dst.NetBind = union(dst.NetBind, src.NetBind)
	if src.BindWorkers != nil {
		w := *src.BindWorkers
		dst.BindWorkers = &w
	}
	dst.KV = union(dst.KV, src.KV)
	dst.FsRead = union(dst.FsRead, src.FsRead)
	dst.FsWrite = union(dst.FsWrite, src.FsWrite)
	dst.HostProcess = union(dst.HostProcess, src.HostProcess)
	dst.AllowPersistent = dst.AllowPersistent || src.AllowPersistent
	dst.Identity = union(dst.Identity, src.Identity)
	dst.AllowPromptInjection = dst.AllowPromptInjection || src.AllowPromptInjection
}

func union(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	seen := make(map[string]bool, len(a)+len(b))
	out := make([]string, 0, len(a)+len(b))
	for _, s := range a {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range b {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
