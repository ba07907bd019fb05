package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stateguard/stateguard/config"
	"github.com/stateguard/stateguard/engine"
)

// Policy holds the engine of the current configuration and reloads it when
// the file changes. A bad new file keeps the last good engine.
type Policy struct {
	file         string
	current      atomic.Pointer[engine.Engine]
	loaded       []byte
	rejected     string // the content, or read error, of the last bad reload
	defaulting   bool   // a mutating webhook configuration sends StatefulSets
	reloadErrors prometheus.Counter
	log          logr.Logger
}

// NewPolicy loads file, or the built-in policy when file is "", and
// registers its metric with reg. defaulting says whether a mutating
// webhook configuration is registered: without one, defaults in the file
// are never applied, and a warning says so.
func NewPolicy(file string, defaulting bool, reg prometheus.Registerer, log logr.Logger) (*Policy, error) {
	p := &Policy{file: file, defaulting: defaulting, log: log, reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "stateguard_config_reload_errors_total",
		Help: "Reloads of the configuration file that failed; the last good configuration stays in force.",
	})}
	if err := reg.Register(p.reloadErrors); err != nil {
		return nil, err
	}
	if file == "" {
		p.current.Store(engine.New(config.Default().Settings()))
		return p, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return nil, &configError{file, err}
	}
	p.use(cfg, data)
	return p, nil
}

type configError struct {
	file string
	err  error
}

func (e *configError) Error() string { return "config " + e.file + ": " + e.err.Error() }

// Engine is the engine of the last good configuration.
func (p *Policy) Engine() *engine.Engine { return p.current.Load() }

// Start watches the file's directory (a mounted ConfigMap replaces the file
// through a symlink swap) until ctx ends. It is a manager Runnable.
func (p *Policy) Start(ctx context.Context) error {
	if p.file == "" {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(p.file)); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-w.Errors:
			p.log.Error(err, "watching the configuration file", "file", p.file)
		case <-w.Events:
			p.reload()
		}
	}
}

// reload applies a changed file. One edit of a mounted ConfigMap raises
// several events (the new directory, the symlink swap, the old directory's
// removal): a file already rejected is neither counted nor logged again.
func (p *Policy) reload() {
	data, err := os.ReadFile(p.file)
	if err == nil && bytes.Equal(data, p.loaded) {
		p.rejected = ""
		return
	}
	attempt := string(data)
	if err != nil {
		attempt = "error: " + err.Error()
	}
	if attempt == p.rejected {
		return
	}
	var cfg *config.Config
	if err == nil {
		cfg, err = config.Parse(data)
	}
	if err != nil {
		p.rejected = attempt
		p.reloadErrors.Inc()
		p.log.Error(err, "the new configuration is not valid; keeping the last good one", "file", p.file)
		return
	}
	p.rejected = ""
	p.use(cfg, data)
	p.log.Info("configuration reloaded", "file", p.file)
}

func (p *Policy) use(cfg *config.Config, data []byte) {
	p.current.Store(engine.New(cfg.Settings()))
	p.loaded = data
	if !p.defaulting && cfg.Defaults != (config.Defaults{}) {
		p.log.Info("warning: the configuration sets defaults, but no mutating webhook configuration is registered to apply them: set them in the chart's values (defaults), which registers it",
			"file", p.file, "defaults", cfg.Defaults)
	}
}
