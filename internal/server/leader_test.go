package server

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestLosingTheLeaseStopsOnlyTheWork: when the Lease cannot be renewed
// (the API server out of reach), the term's work stops and Start keeps
// running; once the API server answers again, a new term starts.
func TestLosingTheLeaseStopsOnlyTheWork(t *testing.T) {
	clientset := fake.NewClientset()
	var unreachable atomic.Bool
	clientset.PrependReactor("*", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		if unreachable.Load() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	lock, err := newLeaseLock(clientset, "stateguard-system")
	if err != nil {
		t.Fatal(err)
	}
	terms := make(chan string, 10)
	w := &leaderWork{
		lock: lock, log: logr.Discard(),
		timing: leaseTiming{duration: 1500 * time.Millisecond, renewDeadline: time.Second, retryPeriod: 100 * time.Millisecond},
		term: func(ctx context.Context, n int) error {
			terms <- "term started"
			<-ctx.Done()
			terms <- "term stopped"
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- w.Start(ctx) }()

	expect := func(want string) {
		t.Helper()
		select {
		case got := <-terms:
			if got != want {
				t.Fatalf("%s, want %s", got, want)
			}
		case err := <-stopped:
			t.Fatalf("Start returned (%v) while waiting for %q", err, want)
		case <-time.After(10 * time.Second):
			t.Fatalf("waited 10 s for %q", want)
		}
	}
	expect("term started")
	unreachable.Store(true)
	expect("term stopped")
	unreachable.Store(false)
	expect("term started")
	cancel()
	expect("term stopped")
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Start: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return after its context ended")
	}
}
