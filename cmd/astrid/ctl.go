package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/supervisor"
)

// ctlFlags are the flags of the commands that drive nodes through their
// control service (docs/control.md).
type ctlFlags struct {
	clientFlags
	node   string
	json   bool
	gather time.Duration
}

// add registers the flags; timeout is the command's default --timeout and
// withNode adds --node.
func (f *ctlFlags) add(cmd *cobra.Command, timeout time.Duration, withNode bool) {
	f.clientFlags.add(cmd)
	fl := cmd.Flags()
	_ = fl.MarkHidden("principal")
	t := fl.Lookup("timeout")
	t.DefValue = timeout.String()
	_ = t.Value.Set(timeout.String())
	t.Usage = "how long to wait for the nodes' replies"
	if withNode {
		fl.StringVar(&f.node, "node", bus.ControlAll, `target node id; "all" asks every node`)
	} else {
		f.node = bus.ControlAll
	}
	fl.BoolVar(&f.json, "json", false, "print the nodes' replies as a JSON array instead of a table")
	fl.DurationVar(&f.gather, "gather", 300*time.Millisecond, "node discovery: stop waiting for more nodes this long after the last one answered")
}

// nodeReply is one node's answer: its JSON body (the verb's reply, or a
// supervisor.ControlError), and Err for an error reply.
type nodeReply struct {
	Node string
	Data json.RawMessage
	Err  *bus.ServiceError
}

func toNodeReply(r bus.ServiceReply) nodeReply {
	var id struct {
		Node string `json:"node"`
	}
	_ = json.Unmarshal(r.Data, &id)
	nr := nodeReply{Node: id.Node, Data: r.Data, Err: r.Err}
	if !json.Valid(nr.Data) || len(nr.Data) == 0 {
		nr.Data, _ = json.Marshal(supervisor.ControlError{Node: id.Node, Code: nr.code(), Error: nr.message()})
	}
	return nr
}

func (r nodeReply) code() string {
	if r.Err == nil {
		return ""
	}
	return r.Err.Code
}

func (r nodeReply) message() string {
	if r.Err == nil {
		return ""
	}
	return r.Err.Description
}

// call sends verb with body to the target node, or to every node: it
// first discovers the nodes (ping, gathering answers until --gather passes
// without a new one, plus the live peers their heartbeats know), then
// gathers the verb's replies until every one of them answered or
// --timeout passes. A node that never answers gets a "504" reply. The
// replies are sorted by node id; peers are the discovered nodes' peers.
func (f *ctlFlags) call(ctx context.Context, conn *bus.Conn, verb string, body []byte) ([]nodeReply, []supervisor.PeerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if f.node != bus.ControlAll {
		r, err := conn.RequestService(ctx, bus.ControlTopic(verb, f.node), body)
		if errors.Is(err, bus.ErrNoResponders) {
			return nil, nil, fmt.Errorf("node %s: no control service answers on %s (unknown node id, or another --server/--subject-prefix?)", f.node, bus.ControlTopic(verb, f.node))
		}
		if err != nil {
			return nil, nil, err
		}
		nr := toNodeReply(r)
		if nr.Node == "" {
			nr.Node = f.node
		}
		return []nodeReply{nr}, nil, nil
	}
	pings, err := conn.Gather(ctx, bus.ControlTopic(supervisor.VerbPing, bus.ControlAll), nil, bus.GatherOptions{Quiet: f.gather})
	if errors.Is(err, bus.ErrNoResponders) || errors.Is(err, bus.ErrTimeout) {
		return nil, nil, fmt.Errorf("no astrid node answered on %s (%v); is a node running on %s with the same --subject-prefix?",
			bus.ControlTopic(supervisor.VerbPing, bus.ControlAll), err, f.server)
	}
	if err != nil {
		return nil, nil, err
	}
	expected := map[string]bool{}
	peers := map[string]supervisor.PeerInfo{}
	var replies []nodeReply
	for _, p := range pings {
		var pr supervisor.PingReply
		if p.Err != nil || json.Unmarshal(p.Data, &pr) != nil || pr.Node == "" {
			continue
		}
		expected[pr.Node] = true
		for _, peer := range pr.Peers {
			if old, seen := peers[peer.ID]; !seen || old.Gone || peer.LastSeen.After(old.LastSeen) {
				peers[peer.ID] = peer
			}
		}
		if verb == supervisor.VerbPing {
			replies = append(replies, toNodeReply(p))
		}
	}
	for id, p := range peers {
		if !p.Gone {
			expected[id] = true
		}
	}
	got := map[string]bool{}
	for _, r := range replies {
		got[r.Node] = true
	}
	if verb == supervisor.VerbPing && len(got) < len(expected) {
		// A node alive by its heartbeats missed the discovery window: ask
		// again and wait for it.
		replies, got = nil, map[string]bool{}
	}
	if verb != supervisor.VerbPing || len(got) < len(expected) {
		rs, err := conn.Gather(ctx, bus.ControlTopic(verb, bus.ControlAll), body, bus.GatherOptions{Done: func(rs []bus.ServiceReply) bool {
			for _, r := range rs[len(rs)-1:] {
				got[toNodeReply(r).Node] = true
			}
			for id := range expected {
				if !got[id] {
					return false
				}
			}
			return true
		}})
		if err != nil && !errors.Is(err, bus.ErrTimeout) {
			return nil, nil, err
		}
		for _, r := range rs {
			replies = append(replies, toNodeReply(r))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(expected)) {
		if !got[id] {
			nr := nodeReply{Node: id, Err: &bus.ServiceError{Code: supervisor.CodeTimeout, Description: fmt.Sprintf("no reply within %v", f.timeout)}}
			nr.Data, _ = json.Marshal(supervisor.ControlError{Node: id, Code: nr.code(), Error: nr.message()})
			replies = append(replies, nr)
		}
	}
	slices.SortStableFunc(replies, func(a, b nodeReply) int { return strings.Compare(a.Node, b.Node) })
	var ps []supervisor.PeerInfo
	for _, id := range slices.Sorted(maps.Keys(peers)) {
		ps = append(ps, peers[id])
	}
	return replies, ps, nil
}

// run connects, calls verb and hands the replies to show (table mode) or
// prints them as a JSON array (--json). It returns the exit error when any
// reply is an error that ignore does not excuse.
func (f *ctlFlags) run(cmd *cobra.Command, verb string, body any, show func(w io.Writer, rs []nodeReply, peers []supervisor.PeerInfo) error, ignore func([]nodeReply) (excused map[int]bool, err error)) error {
	var data []byte
	if body != nil {
		data, _ = json.Marshal(body)
	}
	conn, err := f.connect(cmd.Context())
	if err != nil {
		return err
	}
	defer conn.Close()
	rs, peers, err := f.call(cmd.Context(), conn, verb, data)
	if err != nil {
		return &exitError{code: ExitFailure, err: err}
	}
	out := cmd.OutOrStdout()
	if f.json {
		raws := make([]json.RawMessage, len(rs))
		for i, r := range rs {
			raws[i] = r.Data
		}
		if verb == supervisor.VerbPing {
			// nodes: the rows, gone peers included.
			b, _ := json.MarshalIndent(nodeRows(rs, peers), "", "  ")
			fmt.Fprintln(out, string(b))
		} else {
			b, _ := json.MarshalIndent(raws, "", "  ")
			fmt.Fprintln(out, string(b))
		}
	} else if err := show(out, rs, peers); err != nil {
		return err
	}
	excused := map[int]bool{}
	if ignore != nil {
		if excused, err = ignore(rs); err != nil {
			return &exitError{code: ExitFailure, err: err}
		}
	}
	failed := 0
	for i, r := range rs {
		if r.Err != nil && !excused[i] {
			failed++
			if !f.json {
				fmt.Fprintf(cmd.ErrOrStderr(), "astrid: node %s: %s %s\n", r.Node, r.Err.Code, r.Err.Description)
			}
		}
	}
	if failed > 0 {
		return &exitError{code: ExitFailure, err: fmt.Errorf("%d of %d nodes reported an error", failed, len(rs))}
	}
	return nil
}

func table(w io.Writer, header string, rows [][]string) error {
	if len(rows) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func labelString(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max-3] + "..."
	}
	if s == "" {
		return "-"
	}
	return s
}

// nodeRow is one line of `astrid nodes`.
type nodeRow struct {
	Node     string            `json:"node"`
	Status   string            `json:"status"` // up, gone, unreachable, error
	Labels   map[string]string `json:"labels,omitempty"`
	UptimeMs int64             `json:"uptime_ms,omitempty"`
	Capsules int               `json:"capsules"`
	Ready    int               `json:"ready"`
	NATSURL  string            `json:"nats_url,omitempty"`
	Version  string            `json:"version,omitempty"`
	LastSeen *time.Time        `json:"last_seen,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// nodeRows merges the ping replies with the peers' view: nodes that
// answered are up; peers that did not and are gone are listed as gone.
func nodeRows(rs []nodeReply, peers []supervisor.PeerInfo) []nodeRow {
	var rows []nodeRow
	seen := map[string]bool{}
	for _, r := range rs {
		seen[r.Node] = true
		if r.Err != nil {
			status := "error"
			if r.Err.Code == supervisor.CodeTimeout {
				status = "unreachable"
			}
			rows = append(rows, nodeRow{Node: r.Node, Status: status, Error: r.Err.Description})
			continue
		}
		var p supervisor.PingReply
		_ = json.Unmarshal(r.Data, &p)
		rows = append(rows, nodeRow{Node: p.Node, Status: "up", Labels: p.Labels, UptimeMs: p.UptimeMs,
			Capsules: p.Capsules, Ready: p.Ready, NATSURL: p.NATSURL, Version: p.Version})
	}
	for _, p := range peers {
		if seen[p.ID] || !p.Gone {
			continue
		}
		last := p.LastSeen
		rows = append(rows, nodeRow{Node: p.ID, Status: "gone", Labels: p.Labels, NATSURL: p.NATS,
			Capsules: len(p.Capsules), LastSeen: &last})
	}
	slices.SortStableFunc(rows, func(a, b nodeRow) int { return strings.Compare(a.Node, b.Node) })
	return rows
}

func nodesCmd(g *globals) *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "List the nodes: id, labels, uptime, capsules (and the nodes gone silent)",
		Long: `nodes pings every node's control service (astrid.v1.ctl.ping.all) and prints one
row per node. Nodes that stopped sending heartbeats, as the answering nodes
see them, are listed with status "gone". Exit 1 when a node known to be
alive does not answer within --timeout.`,
		Example: `  astrid nodes
  astrid nodes --json
  astrid nodes -s nats://10.0.0.5:4222`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, supervisor.VerbPing, nil, func(w io.Writer, rs []nodeReply, peers []supervisor.PeerInfo) error {
				var rows [][]string
				for _, r := range nodeRows(rs, peers) {
					up, caps := "-", "-"
					if r.Status == "up" {
						up = (time.Duration(r.UptimeMs) * time.Millisecond).Round(time.Second).String()
						caps = fmt.Sprintf("%d/%d ready", r.Ready, r.Capsules)
					}
					if r.Status == "gone" && r.LastSeen != nil {
						up = "last seen " + time.Since(*r.LastSeen).Round(time.Second).String() + " ago"
					}
					rows = append(rows, []string{r.Node, r.Status, labelString(r.Labels), up, caps, oneLine(r.NATSURL, 40)})
				}
				return table(w, "NODE\tSTATUS\tLABELS\tUPTIME\tCAPSULES\tNATS", rows)
			}, nil)
		},
	}
	f.add(cmd, 5*time.Second, false)
	return cmd
}

func psCmd(g *globals) *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List the capsules of every node (or one) with state, version and restarts",
		Long: `ps asks the nodes for their capsules (astrid.v1.ctl.ps.<node>|all) and prints
one row per capsule. States: starting, ready, failed (restarting after a
backoff), quarantined (restart intensity exceeded; astrid start brings it
back), stopped (astrid stop). Exit 1 when a node reports an error or does
not answer.`,
		Example: `  astrid ps
  astrid ps --node node-1a2b3c4d
  astrid ps --json | jq '.[].capsules[] | select(.state != "ready")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, supervisor.VerbPs, nil, func(w io.Writer, rs []nodeReply, _ []supervisor.PeerInfo) error {
				var rows [][]string
				for _, r := range rs {
					var p supervisor.PsReply
					if r.Err != nil || json.Unmarshal(r.Data, &p) != nil {
						continue
					}
					for _, c := range p.Capsules {
						rows = append(rows, []string{p.Node, c.ID, c.Version, c.State, fmt.Sprint(c.Restarts), oneLine(c.LastFailure, 60)})
					}
				}
				return table(w, "NODE\tCAPSULE\tVERSION\tSTATE\tRESTARTS\tLAST FAILURE", rows)
			}, nil)
		},
	}
	f.add(cmd, 5*time.Second, true)
	return cmd
}

// capsuleCmd builds start, stop and restart.
func capsuleCmd(g *globals, verb, short, long, example string) *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:     verb + " CAPSULE",
		Short:   short,
		Long:    long,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			show := func(w io.Writer, rs []nodeReply, _ []supervisor.PeerInfo) error {
				var rows [][]string
				for _, r := range rs {
					var c supervisor.CapsuleReply
					if r.Err != nil || json.Unmarshal(r.Data, &c) != nil {
						continue
					}
					result := verb + "ed"
					switch {
					case !c.Changed:
						result = "unchanged"
					case verb == supervisor.VerbStop:
						result = "stopped"
					}
					rows = append(rows, []string{c.Node, c.Capsule.ID, c.Capsule.Version, c.Capsule.State, fmt.Sprint(c.Capsule.Restarts), result})
				}
				return table(w, "NODE\tCAPSULE\tVERSION\tSTATE\tRESTARTS\tRESULT", rows)
			}
			// Asking every node: the nodes that do not have the capsule
			// are not failures, unless none has it.
			ignore := func(rs []nodeReply) (map[int]bool, error) {
				excused := map[int]bool{}
				if f.node != bus.ControlAll {
					return excused, nil
				}
				for i, r := range rs {
					if r.code() == supervisor.CodeNotFound {
						excused[i] = true
					}
				}
				if len(rs) > 0 && len(excused) == len(rs) {
					return nil, fmt.Errorf("capsule %s runs on none of the %d nodes", id, len(rs))
				}
				return excused, nil
			}
			return f.run(cmd, verb, supervisor.CapsuleRequest{Capsule: id}, show, ignore)
		},
	}
	f.add(cmd, time.Minute, true)
	return cmd
}

func startCmd(g *globals) *cobra.Command {
	return capsuleCmd(g, supervisor.VerbStart, "Start a stopped or quarantined capsule",
		`start starts CAPSULE on the target nodes when it is stopped (astrid stop) or
quarantined (its restart budget is reset), and waits until it is ready. A
running capsule is left alone ("unchanged"). With --node all, the nodes that
do not run CAPSULE are skipped; exit 1 when a node fails or none has it.`,
		`  astrid start echo
  astrid start --node node-1a2b3c4d counter`)
}

func stopCmd(g *globals) *cobra.Command {
	return capsuleCmd(g, supervisor.VerbStop, "Stop a capsule until it is started again",
		`stop stops CAPSULE on the target nodes: its incarnation ends (blocking host
calls are cancelled), it leaves the router, so the node no longer
subscribes to its topics, and it is not restarted. Requests then reach the
capsule's instances on other nodes, or get "no responders". astrid start
brings it back. With --node all, the nodes that do not run CAPSULE are
skipped; exit 1 when a node fails or none has it.`,
		`  astrid stop ticker
  astrid stop --node node-1a2b3c4d echo --json`)
}

func restartCmd(g *globals) *cobra.Command {
	return capsuleCmd(g, supervisor.VerbRestart, "Restart a capsule with a fresh instance",
		`restart ends CAPSULE's current incarnation on the target nodes and starts a
fresh one (a "restarted" event; the restart count goes up), then waits until
it is ready. A quarantined capsule gets a fresh restart budget; a stopped one
must be started. With --node all, the nodes that do not run CAPSULE are
skipped; exit 1 when a node fails or none has it.`,
		`  astrid restart counter
  astrid restart --node node-1a2b3c4d ticker`)
}

func upgradeCmd(g *globals) *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:   "upgrade DIR",
		Short: "Hot-upgrade capsules on the nodes from a directory on those nodes",
		Long: `upgrade asks the target nodes to rescan DIR (a capsule dir or a dir of capsule
dirs, made absolute against the current directory and read by each node on
its own filesystem) and hot-upgrade every capsule whose binary or version
differs from what runs, as SIGHUP does: the new version runs its upgrade
hook, starts beside the old one and takes the traffic once it is ready; on
failure the old version keeps serving. Capsules not running yet are loaded.
Later SIGHUP rescans look for an upgraded capsule in DIR. Exit 1 when any
capsule fails on any node.`,
		Example: `  astrid upgrade /srv/capsules/echo-0.2.0
  astrid upgrade --node node-1a2b3c4d ./build/capsules`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return usageError{err}
			}
			return f.run(cmd, supervisor.VerbUpgrade, supervisor.UpgradeRequest{Dir: dir}, func(w io.Writer, rs []nodeReply, _ []supervisor.PeerInfo) error {
				var rows [][]string
				for _, r := range rs {
					var u supervisor.UpgradeReply
					if json.Unmarshal(r.Data, &u) != nil || (r.Err != nil && u.Failed == nil) {
						continue
					}
					var failed []string
					for _, id := range slices.Sorted(maps.Keys(u.Failed)) {
						failed = append(failed, id+": "+oneLine(u.Failed[id], 60))
					}
					rows = append(rows, []string{u.Node, list(u.Upgraded), list(u.Added), list(failed)})
				}
				return table(w, "NODE\tUPGRADED\tADDED\tFAILED", rows)
			}, nil)
		},
	}
	f.add(cmd, 2*time.Minute, true)
	return cmd
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}

func deployCmd(g *globals) *cobra.Command {
	var f ctlFlags
	var labels []string
	var replicas int
	cmd := &cobra.Command{
		Use:   "deploy DIR",
		Short: "Push a capsule into the cluster's object store and run it on the nodes matching labels",
		Long: `deploy packs the capsule in DIR (its Capsule.toml and the wasm files its
[[component]] entries name) into the JetStream object store bucket
astrid_capsules under <capsule>/<version>/<digest>, then asks the target
nodes to deploy it: each node whose labels match every --label KEY=VALUE
fetches the archive, unpacks it into <data>/deployed/<capsule>/ and loads
it, or hot-upgrades the capsule when it already runs. Other nodes report
"skipped". Exit 1 when a node fails or no node matches.`,
		Example: `  astrid deploy examples/echo
  astrid deploy --label zone=a --label tier=edge ./build/weather
  astrid deploy --node node-1a2b3c4d --json examples/counter`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			selector, err := parseSelector(labels)
			if err != nil {
				return usageError{err}
			}
			a, err := supervisor.PackCapsule(args[0])
			if err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			conn, err := f.connect(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			store, err := bus.OpenObjectStore(ctx, conn, bus.ObjectStoreConfig{Bucket: supervisor.CapsuleBucket, Create: true,
				Replicas: replicas, Description: "astrid capsule archives (astrid deploy)"})
			if err == nil {
				_, err = store.Put(ctx, a.Key, a.Data, fmt.Sprintf("capsule %s %s", a.ID, a.Version))
			}
			conn.Close()
			if err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			if !f.json {
				fmt.Fprintf(cmd.ErrOrStderr(), "pushed %s %s to %s/%s (%d bytes)\n", a.ID, a.Version, supervisor.CapsuleBucket, a.Key, len(a.Data))
			}
			show := func(w io.Writer, rs []nodeReply, _ []supervisor.PeerInfo) error {
				var rows [][]string
				for _, r := range rs {
					var d supervisor.DeployReply
					if r.Err != nil || json.Unmarshal(r.Data, &d) != nil {
						continue
					}
					rows = append(rows, []string{d.Node, d.Capsule, d.Version, d.Action, oneLine(d.Reason, 60)})
				}
				return table(w, "NODE\tCAPSULE\tVERSION\tACTION\tDETAIL", rows)
			}
			ignore := func(rs []nodeReply) (map[int]bool, error) {
				acted := 0
				for _, r := range rs {
					var d supervisor.DeployReply
					if r.Err != nil || (json.Unmarshal(r.Data, &d) == nil && d.Action != "skipped") {
						acted++
					}
				}
				if acted == 0 {
					return nil, fmt.Errorf("no node matches %s", labelString(selector))
				}
				return nil, nil
			}
			return f.run(cmd, supervisor.VerbDeploy, supervisor.DeployRequest{BucketKey: a.Key, Labels: selector}, show, ignore)
		},
	}
	f.add(cmd, 2*time.Minute, true)
	cmd.Flags().StringArrayVar(&labels, "label", nil, "deploy only on nodes with this label KEY=VALUE (repeatable; all must match)")
	cmd.Flags().IntVar(&replicas, "replicas", 1, "replicas of the astrid_capsules bucket when deploy creates it")
	return cmd
}

func parseSelector(flags []string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want KEY=VALUE", f)
		}
		out[k] = v
	}
	return out, nil
}
