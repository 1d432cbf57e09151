package localcloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// Server is a local AWS IoT Core: an MQTT broker (embedded, or an external
// one in attach mode) with the Device Shadow and Jobs services attached.
//
// New binds the listeners and loads stored shadows; Start serves; Close
// stops everything and waits for every goroutine the server started.
type Server struct {
	opts Options
	svc  *service
	st   *store
	emb  *embedded // embedded mode
	att  *attached // attach mode
	disc *discoveryServer

	loaded int
	jobs   *jobsService

	loadedJobs int

	mu        sync.Mutex
	started   bool
	closeOnce sync.Once
	closeErr  error
}

// New validates opts, opens and loads the store (Options.DataDir) and
// binds the listeners, so that every problem with files or ports is
// reported here. Call Close to release them.
func New(opts Options) (_ *Server, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	s := &Server{opts: opts}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	if opts.DataDir != "" {
		if s.st, err = openStore(opts.DataDir, opts.compactAfter); err != nil {
			return nil, err
		}
	}
	s.svc = newService(&s.opts, s.st)
	if s.loaded, err = s.svc.load(); err != nil {
		return nil, err
	}
	s.jobs = newJobsService(&s.opts, s.st, s.svc.fail)
	s.svc.jobs = s.jobs
	if s.loadedJobs, err = s.jobs.load(); err != nil {
		return nil, err
	}
	if opts.Broker != "" {
		s.att = newAttached(&s.opts, s.svc)
		s.svc.pub = s.att
		s.jobs.pub = s.att
	} else {
		if s.emb, err = newEmbedded(&s.opts); err != nil {
			return nil, err
		}
		s.svc.pub = s.emb
		s.jobs.pub = s.emb
		if opts.DiscoveryListen != "" {
			var mqtts net.Addr
			for _, ep := range s.emb.endpoints {
				if ep.Name == "mqtts" {
					mqtts = ep.Addr
				}
			}
			if s.disc, err = newDiscovery(&s.opts, mqtts); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Endpoints returns the addresses the embedded broker listens on, in the
// order mqtt, mqtts, ws, then the Greengrass discovery listener
// ("discovery"); empty in attach mode. With port 0 they carry the port
// actually bound.
func (s *Server) Endpoints() []Endpoint {
	if s.emb == nil {
		return nil
	}
	if s.disc != nil {
		return append(append([]Endpoint(nil), s.emb.endpoints...), Endpoint{Name: "discovery", Addr: s.disc.ln.Addr()})
	}
	return s.emb.endpoints
}

// Loaded returns how many shadows (including deletion records) were loaded
// from the data directory.
func (s *Server) Loaded() int { return s.loaded }

// LoadedJobs returns how many jobs were loaded from the data directory.
func (s *Server) LoadedJobs() int { return s.loadedJobs }

// Start starts the shadow service and the broker (embedded mode) or
// connects to the external broker (attach mode; ctx bounds the first
// connection attempt).
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("localcloud: server already started")
	}
	s.started = true
	s.svc.start()
	s.jobs.start()
	if s.emb != nil {
		if err := s.emb.serve(s.svc); err != nil {
			return err
		}
		if s.disc != nil {
			s.disc.serve()
		}
		return nil
	}
	return s.att.connect(ctx)
}

// Failed is closed when the server hit an error it cannot serve through
// (a storage write failed); Err then returns it. Call Close.
func (s *Server) Failed() <-chan struct{} { return s.svc.failed }

// Err returns the fatal error that closed Failed, or nil.
func (s *Server) Err() error {
	select {
	case <-s.svc.failed:
		return s.svc.failErr
	default:
		return nil
	}
}

// Close stops taking requests, finishes the queued ones (stored and
// answered), then stops the broker and closes the store. It is safe to
// call more than once and without Start.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.svc.stop()
		s.jobs.stop()
		s.closeErr = s.release()
	})
	return s.closeErr
}

func (s *Server) release() error {
	if s.disc != nil {
		s.disc.close()
	}
	if s.emb != nil {
		s.emb.close()
	}
	if s.att != nil && s.started {
		s.att.close()
	}
	if s.st != nil {
		if err := s.st.close(); err != nil {
			return fmt.Errorf("close %s: %w", s.st.path, err)
		}
	}
	return nil
}

// Run starts the server and serves until ctx is done or the server fails,
// then closes it. It returns the start or fatal error, else nil.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		s.Close()
		return err
	}
	select {
	case <-ctx.Done():
	case <-s.Failed():
	}
	cerr := s.Close()
	if err := s.Err(); err != nil {
		return err
	}
	return cerr
}
