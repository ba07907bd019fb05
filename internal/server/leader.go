package server

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// LeaseName is the Lease the replicas elect their leader with.
const LeaseName = "stateguard.io"

// leaderWork is what one replica does at a time: the background audit and
// the rotation of a self-managed certificate. Each term of leadership
// starts the work afresh and stops it when the Lease is lost, and the
// replica campaigns again. Only the work stops: controller-runtime's own
// leader election ends the process when the API server is out of reach
// for longer than the renew deadline, and the webhook with it.
type leaderWork struct {
	lock resourcelock.Interface // nil: no election, one term for the process's life
	// term runs the work of term n until ctx ends.
	term func(ctx context.Context, n int) error
	log  logr.Logger
	// timing is the Lease's: controller-runtime's defaults when zero.
	timing leaseTiming
}

type leaseTiming struct{ duration, renewDeadline, retryPeriod time.Duration }

var defaultLeaseTiming = leaseTiming{duration: 15 * time.Second, renewDeadline: 10 * time.Second, retryPeriod: 2 * time.Second}

// newLeaseLock is the Lease of namespace, held under an identity that
// starts with the host (the Pod's) name, as controller-runtime's does.
func newLeaseLock(clientset kubernetes.Interface, namespace string) (resourcelock.Interface, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	return resourcelock.New(resourcelock.LeasesResourceLock, namespace, LeaseName,
		clientset.CoreV1(), clientset.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: host + "_" + string(uuid.NewUUID())})
}

func (*leaderWork) NeedLeaderElection() bool { return false }

// Start holds terms until ctx ends.
func (w *leaderWork) Start(ctx context.Context) error {
	if w.lock == nil {
		return w.term(ctx, 1)
	}
	for n := 1; ctx.Err() == nil; n++ {
		if err := w.campaign(ctx, n); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(w.timing.retryPeriod):
		}
	}
	return nil
}

// campaign waits for the Lease, runs term n while it is held, and returns
// once it is lost or ctx ends.
func (w *leaderWork) campaign(ctx context.Context, n int) error {
	leading := make(chan context.Context, 1)
	timing := w.timing
	if timing == (leaseTiming{}) {
		timing = defaultLeaseTiming
	}
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            w.lock,
		Name:            LeaseName,
		LeaseDuration:   timing.duration,
		RenewDeadline:   timing.renewDeadline,
		RetryPeriod:     timing.retryPeriod,
		ReleaseOnCancel: true, // hand over at once on SIGTERM
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(termCtx context.Context) { leading <- termCtx },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return err
	}
	ended := make(chan struct{})
	go func() { elector.Run(ctx); close(ended) }()
	select {
	case termCtx := <-leading:
		w.log.Info("leading: the leader's work starts", "term", n, "identity", w.lock.Identity())
		if err := w.term(termCtx, n); err != nil && termCtx.Err() == nil {
			w.log.Error(err, "the leader's work failed", "term", n)
		}
		<-ended
		if ctx.Err() == nil {
			w.log.Info("lost the Lease: the leader's work stopped, the webhook keeps serving; campaigning again", "term", n)
		}
	case <-ended:
	}
	return nil
}

// termRunnables is the work of one term.
type termRunnables []manager.Runnable

// run starts every runnable and returns when ctx ends or one fails; the
// others are stopped then.
func (t termRunnables) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		r   manager.Runnable
		err error
	}
	results := make(chan result, len(t))
	for _, r := range t {
		go func() { results <- result{r, r.Start(ctx)} }()
	}
	var first error
	for range t {
		if res := <-results; res.err != nil && first == nil {
			first = fmt.Errorf("%T: %w", res.r, res.err)
			cancel()
		}
	}
	return first
}
