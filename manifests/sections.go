package manifests

import (
	"math"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
)

// decode converts the raw TOML tree into p.m, reporting type errors, missing
// required keys, unparsable versions and durations, and unknown keys.
// Cross-field rules are left to validate.
func (p *parser) decode(root *tbl) {
	if t, ok := root.sub("package"); ok {
		p.decodePackage(t)
	} else if _, present := root.m["package"]; !present {
		p.errorf(keyPath{}.key("package"), "missing required section [package]")
	}
	p.decodeComponents(root)
	if t, ok := root.sub("capabilities"); ok {
		p.m.Capabilities = p.decodeCapabilities(t, true)
	}
	p.decodeImports(root)
	p.decodeExports(root)
	p.decodePublish(root)
	p.decodeSubscribe(root)
	p.decodeEnv(root)
	p.decodeTools(root)
	p.decodeCommands(root)
	p.decodeUplinks(root)
	p.decodeMCPServers(root)
	p.decodeSkills(root)
	p.decodeContextFiles(root)
	p.decodeLimits(root)
	p.decodeSupervision(root)
	p.decodeLegacy(root)
	root.finish()
}

func (p *parser) decodePackage(t *tbl) {
	pk := &p.m.Package
	pk.Name = t.reqStr("name")
	if !t.has("version") {
		t.reqStr("version")
	} else if v, ok := t.str("version"); ok {
		pk.VersionRaw = v
		sv, err := semver.StrictNewVersion(v)
		if err != nil {
			p.errorf(t.at("version"), "invalid version %s: expected semver MAJOR.MINOR.PATCH (e.g. \"1.2.0\")", quoteString(v))
		} else {
			pk.Version = sv
		}
	}
	if v, ok := t.str("astrid-version"); ok {
		pk.AstridVersionRaw = v
		p.org.astridVersion = t.at("astrid-version")
		c, err := semver.NewConstraint(v)
		if err != nil {
			p.errorf(t.at("astrid-version"), "invalid version requirement %s: %s", quoteString(v), semverReason(err))
		} else {
			pk.AstridVersion = c
		}
	}
	pk.Description, _ = t.str("description")
	pk.Authors, _ = t.strs("authors")
	pk.License, _ = t.str("license")
	pk.LicenseFile, _ = t.str("license-file")
	pk.Readme, _ = t.str("readme")
	pk.Repository, _ = t.str("repository")
	pk.Homepage, _ = t.str("homepage")
	pk.Documentation, _ = t.str("documentation")
	pk.Keywords, _ = t.strs("keywords")
	pk.Categories, _ = t.strs("categories")
	if b, ok := t.boolean("publish"); ok {
		pk.Publish = &b
	}
	pk.Include, _ = t.strs("include")
	pk.Exclude, _ = t.strs("exclude")
	if v, ok := t.data("metadata"); ok {
		if md, isMap := v.(map[string]any); isMap {
			pk.Metadata = md
		} else {
			p.typeErr(t.at("metadata"), "table", v)
		}
	}
	t.finish()
}

func (t *tbl) has(k string) bool {
	_, ok := t.m[k]
	return ok
}

// semverReason turns a semver parse error into a short lower-case reason.
func semverReason(err error) string {
	s := err.Error()
	if s == "" {
		return "invalid"
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func (p *parser) decodeComponents(root *tbl) {
	v, ok := root.m["component"]
	if !ok {
		return
	}
	if m, isMap := v.(map[string]any); isMap {
		root.take("component")
		t := p.newTbl(root.at("component"), m)
		p.warnf(t.path, "a single [component] table is the legacy spelling: use [[component]]")
		p.decodeComponent(t)
		return
	}
	for _, t := range root.tables("component") {
		p.decodeComponent(t)
	}
}

func (p *parser) decodeComponent(t *tbl) {
	c := Component{Type: ComponentExecutable}
	c.ID, _ = t.str("id")
	file, hasFile := t.str("file")
	entry, hasEntry := t.str("entrypoint")
	switch {
	case hasFile && hasEntry:
		p.errorf(t.at("entrypoint"), "file and entrypoint are aliases: set only file")
		c.File = file
	case hasFile:
		c.File = file
	case hasEntry:
		p.warnf(t.at("entrypoint"), "entrypoint is a legacy alias: use file")
		c.File = entry
	case !t.has("file") && !t.has("entrypoint"):
		p.errorf(t.at("file"), "missing required key")
	}
	c.Hash, _ = t.str("hash")
	if typ, ok := t.str("type"); ok {
		c.Type = typ
	}
	c.Link, _ = t.strs("link")
	if ct, ok := t.sub("capabilities"); ok {
		caps := p.decodeCapabilities(ct, false)
		c.Capabilities = &caps
	}
	t.finish()
	p.m.Components = append(p.m.Components, c)
	p.org.components = append(p.org.components, t.path)
}

// decodeCapabilities reads a [capabilities] table (root, or a component's
// inline one) and checks the form of every entry.
func (p *parser) decodeCapabilities(t *tbl, root bool) Capabilities {
	var c Capabilities
	c.Uplink, _ = t.boolean("uplink")
	c.Net = p.capList(t, "net", nil)
	c.NetConnect = p.capList(t, "net_connect", checkNetConnect)
	c.NetBind = p.capList(t, "net_bind", p.checkNetBind)
	if n, ok := t.intRange("bind_workers", 1, math.MaxInt32); ok {
		w := int(n)
		c.BindWorkers = &w
		p.org.bindWorkers = t.at("bind_workers")
	}
	c.KV = p.capList(t, "kv", nil)
	c.FsRead = p.capList(t, "fs_read", p.checkFsPath)
	c.FsWrite = p.capList(t, "fs_write", p.checkFsPath)
	c.HostProcess = p.capList(t, "host_process", nil)
	if b, ok := t.boolean("allow_persistent"); ok {
		c.AllowPersistent = b
		if b && (root || p.org.allowPersistent == nil) {
			p.org.allowPersistent = t.at("allow_persistent")
		}
	}
	c.Identity = p.capList(t, "identity", checkIdentity)
	c.AllowPromptInjection, _ = t.boolean("allow_prompt_injection")
	for _, k := range []string{"ipc_publish", "ipc_subscribe"} {
		vals, paths := t.strsPaths(k)
		if !t.has(k) {
			continue
		}
		p.leg.ipc = append(p.leg.ipc, ipcArray{publish: k == "ipc_publish", path: t.at(k), vals: vals, paths: paths})
	}
	t.finish()
	return c
}

// capList reads a capability allowlist: strings, none empty; check (if
// set) returns an error message, or "warning: ..." for a warning.
func (p *parser) capList(t *tbl, k string, check func(string) string) []string {
	vals, paths := t.strsPaths(k)
	var out []string
	for i, v := range vals {
		if v == "" {
			p.errorf(paths[i], "must not be empty")
			continue
		}
		if check != nil {
			if msg := check(v); msg != "" {
				if w, isWarn := strings.CutPrefix(msg, "warning: "); isWarn {
					p.warnf(paths[i], "%s", w)
				} else {
					p.errorf(paths[i], "%s", msg)
					continue
				}
			}
		}
		out = append(out, v)
	}
	return out
}

func checkNetConnect(s string) string {
	host, port, ok := cutLast(s, ":")
	if !ok || host == "" || port == "" {
		return "invalid net_connect entry " + quoteString(s) + `: expected "host:port" (host a DNS name or "*", port a number or "*")`
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if host != "*" && strings.Contains(host, "*") {
		return "invalid net_connect entry " + quoteString(s) + `: host patterns like "*.example.com" are not supported; use an exact host or "*"`
	}
	if port != "*" && !isPort(port) {
		return "invalid net_connect entry " + quoteString(s) + `: port must be 1-65535 or "*"`
	}
	return ""
}

func (p *parser) checkNetBind(s string) string {
	if strings.HasPrefix(s, "unix:") {
		return ""
	}
	host, port, ok := cutLast(s, ":")
	if !ok || host == "" || !isPort(port) {
		return "invalid net_bind entry " + quoteString(s) + `: expected "unix:<path or *>" or "127.0.0.1:<port>"`
	}
	switch strings.Trim(host, "[]") {
	case "127.0.0.1", "::1", "localhost":
		return ""
	}
	return "warning: net_bind TCP entries only authorise loopback addresses; " + quoteString(s) + " will never be bound"
}

func (p *parser) checkFsPath(s string) string {
	if s == "*" || strings.HasPrefix(s, "/") || strings.HasPrefix(s, "cwd://") || strings.HasPrefix(s, "home://") {
		return ""
	}
	return "warning: unrecognised path " + quoteString(s) + `: the runtime understands "cwd://...", "home://...", "*" and absolute paths`
}

func checkIdentity(s string) string {
	switch s {
	case "admin", "link", "resolve":
		return ""
	}
	return "invalid identity operation " + quoteString(s) + `: expected "resolve", "link" or "admin"`
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

func isPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n >= 1 && n <= 65535
}

// ipcEntry reads the common part of a long-form publish/subscribe entry.
// ok is false when the entry is unusable.
func (p *parser) ipcEntry(t *tbl, kind string, key string, v any) (wit string, et *tbl, ok bool) {
	switch x := v.(type) {
	case string:
		if x == "" {
			p.errorf(t.at(key), "wit must not be empty")
		}
		return x, nil, true
	case map[string]any:
		et = p.newTbl(t.at(key), x)
		if !et.has("wit") {
			if name, nested := nestedTopic(key, x); nested {
				et.markAllUsed()
				p.errorf(et.path, "missing required key wit: a topic containing dots must be quoted, e.g. [%s] %s = { wit = \"opaque\" }", kind, quoteString(name))
				return "", nil, false
			}
		}
		wit = et.reqStr("wit")
		if w, isStr := x["wit"].(string); isStr && w == "" {
			p.errorf(et.at("wit"), "must not be empty")
		}
		return wit, et, true
	default:
		p.typeErr(t.at(key), "string or table", v)
		return "", nil, false
	}
}

// nestedTopic detects [subscribe.a.b.c]-style mistakes: a table with no wit
// whose only content is one nested table chain. It returns "a.b.c".
func nestedTopic(key string, m map[string]any) (string, bool) {
	name := key
	cur := m
	nested := false
	for len(cur) == 1 {
		var k string
		var v any
		for k, v = range cur {
		}
		sub, isMap := v.(map[string]any)
		if !isMap {
			break
		}
		name += "." + k
		cur = sub
		nested = true
	}
	return name, nested
}

// sourcePin reads the optional source pin of a long-form entry.
func (p *parser) sourcePin(et *tbl) *SourcePin {
	var pin *SourcePin
	var first string
	for _, k := range []string{"version", "tag", "rev", "branch", "path"} {
		s, ok := et.str(k)
		if !ok {
			continue
		}
		if pin != nil {
			p.errorf(et.at(k), "at most one source pin (version, tag, rev, branch, path) is allowed; %s is already set", first)
			continue
		}
		pin = &SourcePin{Kind: k, Value: s}
		first = k
	}
	return pin
}

func (p *parser) decodePublish(root *tbl) {
	t, ok := root.sub("publish")
	if !ok {
		return
	}
	for _, k := range t.keys() {
		v, _ := t.take(k)
		wit, et, ok := p.ipcEntry(t, "publish", k, v)
		if !ok {
			continue
		}
		e := PublishEntry{Topic: k, Wit: wit}
		if et != nil {
			e.Fanout, _ = et.boolean("fanout")
			e.Source = p.sourcePin(et)
			for _, k := range []string{"handler", "priority"} {
				if _, has := et.take(k); has {
					p.errorf(et.at(k), "%s is only allowed in [subscribe] entries", k)
				}
			}
			et.finish()
		}
		p.m.Publish = append(p.m.Publish, e)
		p.org.publish = append(p.org.publish, entryOrigin{topic: t.at(k), entry: t.at(k)})
	}
	t.finish()
}

func (p *parser) decodeSubscribe(root *tbl) {
	t, ok := root.sub("subscribe")
	if !ok {
		return
	}
	for _, k := range t.keys() {
		v, _ := t.take(k)
		wit, et, ok := p.ipcEntry(t, "subscribe", k, v)
		if !ok {
			continue
		}
		e := SubscribeEntry{Topic: k, Wit: wit, Priority: DefaultPriority}
		if et != nil {
			e.Handler, _ = et.str("handler")
			if n, ok := et.intRange("priority", 0, math.MaxUint32); ok {
				e.Priority, e.HasPriority = uint32(n), true
			}
			e.Source = p.sourcePin(et)
			if _, has := et.take("fanout"); has {
				p.errorf(et.at("fanout"), "fanout is only allowed in [publish] entries")
			}
			et.finish()
		}
		p.m.Subscribe = append(p.m.Subscribe, e)
		p.org.subscribe = append(p.org.subscribe, entryOrigin{topic: t.at(k), entry: t.at(k)})
	}
	t.finish()
}

// ifaceItem is one import/export entry before conversion.
type ifaceItem struct {
	ns, iface string
	v         any
	path      keyPath
}

// ifaceItems flattens the flat ("ns:iface" = v) and nested ([x.ns] iface =
// v) forms of [imports]/[exports], in source order.
func (p *parser) ifaceItems(t *tbl, section string) []ifaceItem {
	var items []ifaceItem
	for _, k := range t.keys() {
		v, _ := t.take(k)
		kp := t.at(k)
		if ns, iface, ok := strings.Cut(k, ":"); ok {
			items = append(items, ifaceItem{ns: ns, iface: iface, v: v, path: kp})
			continue
		}
		nm, isMap := v.(map[string]any)
		if !isMap {
			p.errorf(kp, "invalid %s key %s: expected \"namespace:interface\" = ..., or a [%s.%s] table of interfaces", section, quoteString(k), section, RenderKey(k))
			continue
		}
		nt := p.newTbl(kp, nm)
		for _, ik := range nt.keys() {
			items = append(items, ifaceItem{ns: k, iface: ik, v: nm[ik], path: kp.key(ik)})
		}
	}
	return items
}

// valuePath is where an import/export version was written: the entry in
// the string form, its version key in the table form.
func valuePath(it ifaceItem) keyPath {
	if _, isMap := it.v.(map[string]any); isMap {
		return it.path.key("version")
	}
	return it.path
}

func (p *parser) decodeImports(root *tbl) {
	t, ok := root.sub("imports")
	if !ok {
		return
	}
	p.org.importsTable = t.path
	seen := make(map[string]keyPath)
	for _, it := range p.ifaceItems(t, "imports") {
		im := Import{Namespace: it.ns, Interface: it.iface}
		switch x := it.v.(type) {
		case string:
			im.RequirementRaw = x
		case map[string]any:
			et := p.newTbl(it.path, x)
			im.RequirementRaw = et.reqStr("version")
			im.Optional, _ = et.boolean("optional")
			et.finish()
		default:
			p.typeErr(it.path, `requirement string or { version = "...", optional = ... } table`, it.v)
			continue
		}
		if _, isStr := it.v.(string); isStr || im.RequirementRaw != "" {
			c, err := semver.NewConstraint(im.RequirementRaw)
			if err != nil {
				p.errorf(valuePath(it), "invalid version requirement %s: %s", quoteString(im.RequirementRaw), semverReason(err))
			} else {
				im.Requirement = c
			}
		}
		name := it.ns + ":" + it.iface
		if prev, dup := seen[name]; dup {
			ps := p.loc.at(prev)
			p.errorf(it.path, "duplicate import %s (already declared at line %d as %s)", quoteString(name), ps.Line, prev)
			continue
		}
		seen[name] = it.path
		p.m.Imports = append(p.m.Imports, im)
		p.org.imports = append(p.org.imports, it.path)
	}
}

func (p *parser) decodeExports(root *tbl) {
	t, ok := root.sub("exports")
	if !ok {
		return
	}
	seen := make(map[string]keyPath)
	for _, it := range p.ifaceItems(t, "exports") {
		ex := Export{Namespace: it.ns, Interface: it.iface}
		switch x := it.v.(type) {
		case string:
			ex.VersionRaw = x
		case map[string]any:
			et := p.newTbl(it.path, x)
			ex.VersionRaw = et.reqStr("version")
			et.finish()
		default:
			p.typeErr(it.path, `version string or { version = "..." } table`, it.v)
			continue
		}
		if _, isStr := it.v.(string); isStr || ex.VersionRaw != "" {
			v, err := semver.StrictNewVersion(ex.VersionRaw)
			if err != nil {
				p.errorf(valuePath(it), "invalid export version %s: expected an exact semver version MAJOR.MINOR.PATCH", quoteString(ex.VersionRaw))
			} else {
				ex.Version = v
			}
		}
		name := it.ns + ":" + it.iface
		if prev, dup := seen[name]; dup {
			ps := p.loc.at(prev)
			p.errorf(it.path, "duplicate export %s (already declared at line %d as %s)", quoteString(name), ps.Line, prev)
			continue
		}
		seen[name] = it.path
		p.m.Exports = append(p.m.Exports, ex)
		p.org.exports = append(p.org.exports, it.path)
	}
}

func (p *parser) decodeEnv(root *tbl) {
	t, ok := root.sub("env")
	if !ok {
		return
	}
	for _, k := range t.keys() {
		v, _ := t.take(k)
		em, isMap := v.(map[string]any)
		if !isMap {
			p.typeErr(t.at(k), "table", v)
			continue
		}
		et := p.newTbl(t.at(k), em)
		e := EnvVar{Name: k, Type: EnvText}
		if typ, ok := et.str("type"); ok {
			e.Type = typ
			if typ == "string" {
				p.warnf(et.at("type"), `type "string" is the legacy spelling: use "text"`)
				e.Type = EnvText
			}
		}
		e.Request, _ = et.str("request")
		e.Description, _ = et.str("description")
		e.Placeholder, _ = et.str("placeholder")
		if d, ok := et.data("default"); ok {
			if hasTime(d) {
				p.errorf(et.at("default"), "expected string, integer, float, boolean, array or table, found %s", typeName(firstTime(d)))
			} else {
				e.Default = d
			}
		}
		e.EnumValues, _ = et.strs("enum_values")
		if _, ok := et.take("scope"); ok {
			p.warnf(et.at("scope"), "scope is operator-only (astrid secret set --scope) and is ignored in manifests")
		}
		ofKey := ""
		for _, k := range []string{"options_from", "options-from"} {
			if !et.has(k) {
				et.known = append(et.known, k)
				continue
			}
			if ofKey != "" {
				et.take(k)
				p.errorf(et.at(k), "options_from and options-from are aliases: set only options_from")
				continue
			}
			ofKey = k
			if ot, ok := et.sub(k); ok {
				of := &OptionsFrom{}
				of.HTTP = ot.reqStr("http")
				of.Bearer, _ = ot.str("bearer")
				of.Select, _ = ot.str("select")
				of.After, _ = ot.strs("after")
				ot.finish()
				e.OptionsFrom = of
			}
		}
		et.finish()
		p.m.Env = append(p.m.Env, e)
		p.org.env = append(p.org.env, et.path)
	}
}

// hasTime reports whether v is or contains a date/time value.
func hasTime(v any) bool { return firstTime(v) != nil }

func firstTime(v any) any {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if t := firstTime(e); t != nil {
				return t
			}
		}
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if t := firstTime(x[k]); t != nil {
				return t
			}
		}
	default:
		if typeName(v) == "datetime" || typeName(v) == "date" || typeName(v) == "time" {
			return v
		}
	}
	return nil
}

func (p *parser) decodeTools(root *tbl) {
	for _, t := range root.tables("tool") {
		tl := Tool{Name: t.reqStr("name")}
		tl.DescriptionForLLM, _ = t.str("description_for_llm")
		tl.InputSchemaWit, _ = t.str("input_schema_wit")
		tl.Mutable, _ = t.boolean("mutable")
		if d, ok := t.str("description"); ok {
			p.warnOnce("tool.description", t.at("description"), "[[tool]] description is the v0.3 spelling: use description_for_llm")
			if tl.DescriptionForLLM == "" {
				tl.DescriptionForLLM = d
			}
		}
		if v, ok := t.data("input_schema"); ok {
			p.warnOnce("tool.input_schema", t.at("input_schema"), "[[tool]] input_schema is the v0.3 JSON schema: use input_schema_wit (schemas now come from the describe fan-out)")
			if m, isMap := v.(map[string]any); isMap {
				tl.InputSchema = m
			} else {
				p.typeErr(t.at("input_schema"), "table", v)
			}
		}
		t.finish()
		p.m.Tools = append(p.m.Tools, tl)
		p.org.tools = append(p.org.tools, t.path)
	}
}

func (p *parser) decodeCommands(root *tbl) {
	for _, t := range root.tables("command") {
		c := Command{Name: t.reqStr("name"), Kind: CommandSlash}
		c.Description, _ = t.str("description")
		c.File, _ = t.str("file")
		if k, ok := t.str("kind"); ok {
			c.Kind = k
		}
		t.finish()
		p.m.Commands = append(p.m.Commands, c)
		p.org.commands = append(p.org.commands, t.path)
	}
}

func (p *parser) decodeUplinks(root *tbl) {
	for _, t := range root.tables("uplink") {
		u := Uplink{Name: t.reqStr("name")}
		u.Platform, _ = t.str("platform")
		u.Profile, _ = t.str("profile")
		t.finish()
		p.m.Uplinks = append(p.m.Uplinks, u)
		p.org.uplinks = append(p.org.uplinks, t.path)
	}
}

func (p *parser) decodeMCPServers(root *tbl) {
	for _, t := range root.tables("mcp_server") {
		s := MCPServer{ID: t.reqStr("id"), Type: "stdio"}
		s.Description, _ = t.str("description")
		if typ, ok := t.str("type"); ok {
			s.Type = typ
		}
		s.Command, _ = t.str("command")
		s.Args, _ = t.strs("args")
		t.finish()
		p.m.MCPServers = append(p.m.MCPServers, s)
		p.org.mcp = append(p.org.mcp, t.path)
	}
}

func (p *parser) decodeSkills(root *tbl) {
	for _, t := range root.tables("skill") {
		p.warnOnce("skill", t.path, "[[skill]] is ignored since Astrid 0.10: skills are user-space assets")
		s := Skill{}
		s.Name, _ = t.str("name")
		s.Description, _ = t.str("description")
		s.File, _ = t.str("file")
		t.finish()
		p.m.Skills = append(p.m.Skills, s)
	}
}

func (p *parser) decodeContextFiles(root *tbl) {
	for _, t := range root.tables("context_file") {
		c := ContextFile{}
		c.Name, _ = t.str("name")
		c.File = t.reqStr("file")
		t.finish()
		p.m.ContextFiles = append(p.m.ContextFiles, c)
	}
}

// oneOf checks an enumerated string; it reports an error listing the
// choices and returns false when s is not one of them.
func (p *parser) oneOf(path keyPath, what, s string, choices ...string) bool {
	for _, c := range choices {
		if s == c {
			return true
		}
	}
	q := make([]string, len(choices))
	for i, c := range choices {
		q[i] = quoteString(c)
	}
	p.errorf(path, "invalid %s %s: expected %s", what, quoteString(s), orList(q))
	return false
}

// orList renders ["a","b","c"] as `a, b or c`.
func orList(xs []string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}

func (p *parser) decodeLimits(root *tbl) {
	t, ok := root.sub("limits")
	if !ok {
		return
	}
	l := &p.m.Limits
	set := func(k string) {
		if l.Set == nil {
			l.Set = make(map[string]bool)
		}
		l.Set[k] = true
	}
	if n, ok := t.intRange("memory_pages", 1, MaxMemoryPages); ok {
		l.MemoryPages = uint32(n)
		set("memory_pages")
	}
	if d, ok := t.duration("call_timeout"); ok {
		l.CallTimeout = d
		set("call_timeout")
	}
	if n, ok := t.intRange("mailbox_size", 1, math.MaxInt32); ok {
		l.MailboxSize = int(n)
		set("mailbox_size")
	}
	if s, ok := t.str("overflow"); ok && p.oneOf(t.at("overflow"), "overflow policy", s, "reject", "drop_oldest", "block") {
		l.Overflow = s
		set("overflow")
	}
	t.finish()
}

func (p *parser) decodeSupervision(root *tbl) {
	t, ok := root.sub("supervision")
	if !ok {
		return
	}
	s := &p.m.Supervision
	set := func(k string) {
		if s.Set == nil {
			s.Set = make(map[string]bool)
		}
		s.Set[k] = true
	}
	if v, ok := t.str("restart"); ok && p.oneOf(t.at("restart"), "restart type", v, "permanent", "transient", "temporary") {
		s.Restart = v
		set("restart")
	}
	if n, ok := t.intRange("max_restarts", 0, math.MaxInt32); ok {
		s.MaxRestarts = int(n)
		set("max_restarts")
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{
		{"within", &s.Within},
		{"backoff_initial", &s.BackoffInitial},
		{"backoff_max", &s.BackoffMax},
		{"reset_after", &s.ResetAfter},
		{"readiness_timeout", &s.ReadinessTimeout},
	} {
		if v, ok := t.duration(d.key); ok {
			*d.dst = v
			set(d.key)
		}
	}
	if f, ok := t.number("backoff_multiplier"); ok {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 1 || f > 100 {
			p.errorf(t.at("backoff_multiplier"), "must be between 1.0 and 100.0, found %v", f)
		} else {
			s.BackoffMultiplier = f
			set("backoff_multiplier")
		}
	}
	if v, ok := t.str("on_exhausted"); ok && p.oneOf(t.at("on_exhausted"), "on_exhausted policy", v, "quarantine", "escalate") {
		s.OnExhausted = v
		set("on_exhausted")
	}
	if b, ok := t.boolean("singleton"); ok {
		s.Singleton = b
		set("singleton")
	}
	if v, ok := t.str("on_crash"); ok && p.oneOf(t.at("on_crash"), "on_crash policy", v, "retry", "deadletter") {
		s.OnCrash = v
		set("on_crash")
	}
	if n, ok := t.intRange("poison_threshold", 1, math.MaxInt32); ok {
		s.PoisonThreshold = int(n)
		set("poison_threshold")
	}
	if s.IsSet("backoff_initial") || s.IsSet("backoff_max") {
		if s.BackoffInitial > s.BackoffMax {
			key := "backoff_max"
			if !s.IsSet("backoff_max") {
				key = "backoff_initial"
			}
			p.errorf(t.at(key), "backoff_initial (%s) must not exceed backoff_max (%s)", s.BackoffInitial, s.BackoffMax)
		}
	}
	t.finish()
}
