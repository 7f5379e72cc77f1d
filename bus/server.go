package bus

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"
)

// DefaultListen is the client address of the embedded server when the node
// is started without --nats-listen.
const DefaultListen = "127.0.0.1:4222"

// DefaultMaxPayload is the embedded server's max_payload: 1 MiB of payload
// (the ABI limit) plus 64 KiB of room for the Astrid headers. NATS's own
// default of 1 MB would reject a maximal payload once headers are added.
const DefaultMaxPayload = 1<<20 + 64<<10

// readyTimeout bounds how long StartServer waits for the server.
const readyTimeout = 10 * time.Second

// ServerConfig configures the embedded NATS server. The zero value is an
// in-process-only server without JetStream.
type ServerConfig struct {
	// DataDir is the node's data directory. With JetStream the store lives
	// in DataDir/jetstream. Required when JetStream is set.
	DataDir string
	// Listen is the client address host:port. "" means no TCP listener
	// (in-process connections only); "-1" or "host:-1" (or port 0) picks a
	// random port on 127.0.0.1 or host. The node's default is
	// DefaultListen.
	Listen string
	// ServerName names the server (required for JetStream in a cluster).
	ServerName string
	// JetStream enables JetStream (needed by KV).
	JetStream bool
	// SyncAlways makes JetStream fsync every write. Without it writes
	// reach the OS on every message (they survive a process kill) and are
	// fsynced periodically (they may not survive a power loss).
	SyncAlways bool
	// MaxPayload is the largest message (headers plus body) the server
	// accepts; 0 means DefaultMaxPayload.
	MaxPayload int32
	// ClusterName, ClusterListen and Routes configure clustering: the
	// cluster name, the route listen address host:port (same rules as
	// Listen, "" for none) and the route URLs of the other members
	// (nats-route://host:port). Clustering needs a client listener.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// NoLog discards every server log line.
	NoLog bool
	// Verbose also forwards the server's notices (at info) and debug
	// lines; by default only warnings and errors reach the log.
	Verbose bool
}

// Server is an embedded nats-server.
//
// # Concurrency
//
// All methods are safe for concurrent use.
type Server struct {
	ns     *server.Server
	listen bool
	once   sync.Once
}

// parseListen turns a Listen value into host and port; port -1 is random.
func parseListen(addr string) (string, int, error) {
	if addr == "-1" {
		return "127.0.0.1", server.RANDOM_PORT, nil
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// options translates cfg into nats-server options.
func (cfg *ServerConfig) options() (*server.Options, error) {
	opts := &server.Options{
		ServerName:             cfg.ServerName,
		NoSigs:                 true,
		NoLog:                  cfg.NoLog,
		MaxPayload:             cfg.MaxPayload,
		JetStream:              cfg.JetStream,
		SyncAlways:             cfg.SyncAlways,
		DisableJetStreamBanner: true,
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := parseListen(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen %q: %w", cfg.Listen, err)
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.JetStream {
		if cfg.DataDir == "" {
			return nil, errors.New("jetstream needs a data directory")
		}
		// nats-server appends "jetstream" itself.
		opts.StoreDir = cfg.DataDir
	}
	if cfg.ClusterListen != "" || cfg.ClusterName != "" || len(cfg.Routes) > 0 {
		if opts.DontListen {
			// nats-server starts routing only after its client listener.
			return nil, errors.New("clustering needs a client listener (Listen)")
		}
		opts.Cluster.Name = cfg.ClusterName
		if cfg.ClusterListen != "" {
			host, port, err := parseListen(cfg.ClusterListen)
			if err != nil {
				return nil, fmt.Errorf("cluster listen %q: %w", cfg.ClusterListen, err)
			}
			opts.Cluster.Host, opts.Cluster.Port = host, port
		}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("route %q: not a URL", r)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	return opts, nil
}

// StartServer starts an embedded NATS server and waits until it accepts
// connections (at most 10 s). Server log lines go to log with
// component=nats-server: warnings and errors only, unless cfg.Verbose.
// Errors wrap ErrServerStart.
func StartServer(cfg ServerConfig, log zerolog.Logger) (*Server, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrServerStart, err)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrServerStart, err)
	}
	lg := &natsLogger{log: log.With().Str("component", "nats-server").Logger(), verbose: cfg.Verbose}
	if cfg.NoLog {
		lg.log = zerolog.Nop()
	}
	ns.SetLoggerV2(lg, cfg.Verbose, false, false)

	// Start listens and enables JetStream synchronously; failures there
	// are reported through Fatalf rather than returned.
	ns.Start()
	if err := lg.fatalErr(); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("%w: %w", ErrServerStart, err)
	}
	if !ns.ReadyForConnections(readyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		if err := lg.fatalErr(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrServerStart, err)
		}
		return nil, fmt.Errorf("%w: not ready after %s", ErrServerStart, readyTimeout)
	}
	if cfg.JetStream && !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("%w: jetstream is not enabled", ErrServerStart)
	}
	return &Server{ns: ns, listen: !opts.DontListen}, nil
}

// ClientURL returns the URL outside clients connect to
// (nats://host:port, with the actual port when it was random), or "" for
// an in-process-only server.
func (s *Server) ClientURL() string {
	if !s.listen {
		return ""
	}
	return s.ns.ClientURL()
}

// Shutdown stops the server and waits until it has stopped. It is
// idempotent.
func (s *Server) Shutdown() {
	s.once.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	})
}

// NATS returns the underlying nats-server, an escape hatch for what this
// package does not wrap (monitoring, cluster state). Do not shut it down
// directly; use Shutdown.
func (s *Server) NATS() *server.Server { return s.ns }

// natsLogger bridges nats-server's printf-style logger into zerolog.
type natsLogger struct {
	log     zerolog.Logger
	verbose bool

	mu    sync.Mutex
	fatal error
}

var _ server.Logger = (*natsLogger)(nil)

func (l *natsLogger) fatalErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

// Noticef logs at info when verbose.
func (l *natsLogger) Noticef(format string, v ...any) {
	if l.verbose {
		l.log.Info().Msgf(format, v...)
	}
}

// Warnf logs at warn.
func (l *natsLogger) Warnf(format string, v ...any) { l.log.Warn().Msgf(format, v...) }

// Errorf logs at error.
func (l *natsLogger) Errorf(format string, v ...any) { l.log.Error().Msgf(format, v...) }

// Fatalf logs at error and records the failure for StartServer; the
// embedded server does not exit the process.
func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.fatal == nil {
		l.fatal = errors.New(msg)
	}
	l.mu.Unlock()
	l.log.Error().Bool("fatal", true).Msg(msg)
}

// Debugf logs at debug when verbose.
func (l *natsLogger) Debugf(format string, v ...any) {
	if l.verbose {
		l.log.Debug().Msgf(format, v...)
	}
}

// Tracef logs at trace when verbose.
func (l *natsLogger) Tracef(format string, v ...any) {
	if l.verbose {
		l.log.Trace().Msgf(format, v...)
	}
}
