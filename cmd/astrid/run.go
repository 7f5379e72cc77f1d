package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/astrid-go/astrid/supervisor"
)

func runCmd(g *globals) *cobra.Command {
	var cfg supervisor.Config
	var drain time.Duration
	var configFile, metricsListen string
	var labels []string
	cmd := &cobra.Command{
		Use:   "run [flags] CAPSULE_DIR...",
		Short: "Run a node supervising the capsules in the given directories",
		Long: `run starts an astrid node: it starts an embedded NATS server with JetStream
(data under --data) listening on 127.0.0.1:4222, or joins an existing NATS
server with --nats, loads every capsule found under the given paths (a
capsule dir holding Capsule.toml and its .wasm, or a dir of such dirs), and
supervises them until SIGINT or SIGTERM. A first signal drains the capsules in
reverse boot order within --drain; a second signal exits at once.

SIGHUP rescans the capsule directories and hot-upgrades every capsule whose
binary or version changed: the new version runs its upgrade hook, starts
beside the old one and takes the traffic only once it is ready; if anything
fails the old version keeps serving.

Clustering: --cluster-listen and --routes make the embedded NATS servers of
several nodes one NATS cluster with clustered JetStream (use --kv-replicas 3
for three nodes); capsules on any node then reach capsules on any other.
Handler subjects served on several nodes form a queue group (each request
reaches one node); a capsule with [supervision] singleton = true runs on the
one node holding its lease. Every node publishes a heartbeat on
astrid.v1.node.<id>.heartbeat and reports a silent peer on
astrid.v1.node.<id>.gone.`,
		Example: `  astrid run examples
  astrid run --log-format=console --data /var/lib/astrid examples/echo examples/counter
  astrid run --nats nats://10.0.0.5:4222 ./capsules
  astrid run --data d1 --nats-listen 127.0.0.1:4222 --cluster-listen 127.0.0.1:6222 \
    --routes nats-route://127.0.0.1:6223,nats-route://127.0.0.1:6224 --kv-replicas 3 --label zone=a examples`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger()
			if err != nil {
				return usageError{err}
			}
			cfg.Logger = log
			if cfg.Labels, err = parseLabels(labels); err != nil {
				return usageError{err}
			}
			if cfg.NATSURL != "" && (cfg.ClusterListen != "" || len(cfg.Routes) > 0 || cfg.ClusterName != "") {
				return usageError{errors.New("--cluster-name, --cluster-listen and --routes configure the embedded server; with --nats the external cluster is already formed")}
			}
			if configFile != "" {
				fc, err := supervisor.LoadFileConfig(configFile)
				if err != nil {
					return &exitError{code: ExitFailure, err: err}
				}
				cfg.File = fc
			}
			ctx := cmd.Context()
			node, err := supervisor.Start(ctx, cfg)
			if err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			log.Info().Str("node", node.ID()).Str("nats", node.ClientURL()).Str("data", cfg.DataDir).Msg("node started")
			if metricsListen != "" {
				srv, err := serveMetrics(metricsListen, node.Metrics().Registry)
				if err != nil {
					_ = node.Shutdown(context.Background())
					return &exitError{code: ExitFailure, err: err}
				}
				defer srv.Close()
				log.Info().Str("addr", metricsListen).Msg("metrics on http://" + metricsListen + "/metrics")
			}
			rep, err := node.Load(ctx, args...)
			if err != nil {
				_ = node.Shutdown(context.Background())
				return &exitError{code: ExitFailure, err: err}
			}
			for f, e := range rep.Failed {
				log.Error().Str("capsule", f).Err(e).Msg("capsule failed to load")
			}
			log.Info().Strs("capsules", rep.Loaded).Strs("not_ready", rep.NotReady).Msg("capsules loaded")
			if len(rep.Loaded) == 0 {
				_ = node.Shutdown(context.Background())
				return &exitError{code: ExitFailure, err: errNoCapsules}
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
		wait:
			for {
				select {
				case <-ctx.Done():
					break wait
				case <-hup:
					log.Info().Msg("SIGHUP: rescanning capsule directories")
					rr, err := node.Reload(ctx)
					if err != nil {
						log.Error().Err(err).Msg("reload failed")
						continue
					}
					for id, e := range rr.Failed {
						log.Error().Str("capsule", id).Err(e).Msg("new version not serving; the old one keeps running")
					}
					log.Info().Strs("upgraded", rr.Upgraded).Strs("added", rr.Added).Msg("reload done")
				}
			}
			log.Info().Dur("drain", drain).Msg("shutting down; a second signal exits at once")
			second := make(chan os.Signal, 1)
			signal.Notify(second, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(second)
			go func() {
				<-second
				log.Warn().Msg("second signal: exiting now")
				os.Exit(ExitFailure)
			}()
			sctx, cancel := context.WithTimeout(context.Background(), drain)
			defer cancel()
			if err := node.Shutdown(sctx); err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			log.Info().Msg("node stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&metricsListen, "metrics-listen", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9464)")
	f.StringVar(&configFile, "config", "", "node config file (TOML): node-wide [supervision]/[limits] defaults and [[group]] strategies")
	f.StringVar(&cfg.DataDir, "data", "astrid-data", "data directory (JetStream store, compilation cache, node key)")
	f.StringVar(&cfg.NATSURL, "nats", "", "connect to this NATS server or cluster instead of starting an embedded one")
	f.StringVar(&cfg.NATSListen, "nats-listen", "127.0.0.1:4222", `embedded NATS client address ("none" for in-process only)`)
	f.StringVar(&cfg.NodeID, "node-id", "", "node id in events, heartbeats and leases (default: generated once and kept in <data>/node.id)")
	f.StringArrayVar(&labels, "label", nil, "node label KEY=VALUE, repeatable (carried in heartbeats, used for placement)")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat", supervisor.DefaultHeartbeatInterval, "heartbeat interval; a node silent for 3 intervals is reported gone")
	f.StringVar(&cfg.ClusterName, "cluster-name", "", "NATS cluster name of the embedded server (default \"astrid\" when clustering)")
	f.StringVar(&cfg.ClusterListen, "cluster-listen", "", "embedded NATS cluster (route) address host:port; makes the node a cluster member")
	f.StringSliceVar(&cfg.Routes, "routes", nil, "routes to the other members, comma-separated (nats-route://host:port,...)")
	f.DurationVar(&cfg.LeaseTTL, "lease-ttl", supervisor.DefaultLeaseTTL, "singleton lease time to live; renewed every third of it")
	f.StringVar(&cfg.Owner, "owner", "default", "principal the capsules are loaded for")
	f.IntVar(&cfg.KVReplicas, "kv-replicas", 1, "JetStream KV replica count (KV and lease buckets; 3 for a 3-node cluster)")
	f.StringVar(&cfg.KeyFile, "envelope-key", "", "file holding the envelope-signing key shared by the nodes of a cluster (default: <data>/node.key, this node only)")
	f.StringVar(&cfg.SubjectPrefix, "subject-prefix", "", "put every topic under this NATS subject prefix (isolates deployments sharing a NATS)")
	f.DurationVar(&drain, "drain", 10*time.Second, "how long shutdown may take before giving up")
	cmd.MarkFlagsMutuallyExclusive("nats", "nats-listen")
	return cmd
}

// parseLabels turns --label KEY=VALUE flags into a map.
func parseLabels(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(flags))
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want KEY=VALUE", f)
		}
		out[k] = v
	}
	return out, nil
}

func serveMetrics(addr string, reg *prometheus.Registry) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}
