package lookup

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// gatedAPIServer answers each read when the test releases it: the first
// read finds no Service, every later one finds it.
type gatedAPIServer struct {
	client.Reader
	started chan int
	release chan struct{}
	mu      sync.Mutex
	reads   int
}

func (s *gatedAPIServer) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	s.mu.Lock()
	s.reads++
	n := s.reads
	s.mu.Unlock()
	s.started <- n
	<-s.release
	if n == 1 {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "services"}, key.Name)
	}
	obj.(*corev1.Service).ObjectMeta = metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}
	return nil
}

// TestLiveReadsCoalesceAndStayFresh: reviews that arrive while a live
// read is under way do not take its answer, which may predate them; they
// share the next read, one for all of them. A Service created during the
// first read is seen by all of them.
func TestLiveReadsCoalesceAndStayFresh(t *testing.T) {
	api := &gatedAPIServer{started: make(chan int, 100), release: make(chan struct{})}
	l := &Cache{Store: NewStore(), Live: api}
	ctx := context.Background()

	first := make(chan error, 1)
	go func() {
		svc, err := l.Service(ctx, "shop", "db")
		if err == nil && svc != nil {
			err = errFoundTooEarly
		}
		first <- err
	}()
	if n := <-api.started; n != 1 {
		t.Fatalf("read %d started first", n)
	}

	// Twenty reviews during the first read, one of which gives up.
	const waiting = 20
	found := make(chan bool, waiting)
	for range waiting {
		go func() {
			svc, err := l.Service(ctx, "shop", "db")
			found <- err == nil && svc != nil && svc.Name == "db"
		}()
	}
	cancelled, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() { _, err := l.Service(cancelled, "shop", "db"); gaveUp <- err }()
	waitFlights(t, l, waiting+1)
	cancel()
	if err := <-gaveUp; err != context.Canceled {
		t.Errorf("a review whose context ended while it waited: %v, want context.Canceled", err)
	}

	api.release <- struct{}{} // the first read: no Service
	if err := <-first; err != nil {
		t.Fatalf("the first review: %v", err)
	}
	if n := <-api.started; n != 2 {
		t.Fatalf("read %d started second", n)
	}
	api.release <- struct{}{} // the second read finds the Service
	for range waiting {
		if !<-found {
			t.Fatal("a review that arrived during the first read did not see the Service the second read found")
		}
	}
	if api.reads != 2 {
		t.Errorf("%d reviews made %d live reads, want 2", waiting+2, api.reads)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.flights) != 0 {
		t.Errorf("%d objects still have reads in flight", len(l.flights))
	}
}

var errFoundTooEarly = apierrors.NewBadRequest("the first read found a Service created after it")

// waitFlights waits until n reviews wait on the next read: each has
// joined it once the next read exists and the goroutines have run.
func waitFlights(t *testing.T, l *Cache, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		ready := len(l.flights) == 1
		for _, kf := range l.flights {
			ready = ready && kf.next != nil
		}
		l.mu.Unlock()
		if ready {
			// The others join the same next read; give them time to.
			time.Sleep(100 * time.Millisecond)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d reviews did not wait on the next read within 5s", n)
		}
		time.Sleep(time.Millisecond)
	}
}
