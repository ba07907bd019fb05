package webhook

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// stalledUpload starts a POST that declares n bytes, sends one, and stalls
// until the returned function is called.
func stalledUpload(t *testing.T, url string, n int64) (finish func(), done <-chan *http.Response) {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, url, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/json")
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- nil
			return
		}
		resp.Body.Close()
		answered <- resp
	}()
	if _, err := pw.Write([]byte("{")); err != nil {
		t.Fatal(err)
	}
	return func() { pw.Close() }, answered
}

// TestLargeBodiesCannotCrowdOutReviews: while the large-body slots are
// held by uploads that stall, another large body is refused at once and
// the API server's ordinary reviews are still answered.
func TestLargeBodiesCannotCrowdOutReviews(t *testing.T) {
	s := newTestServerWith(t, corpusConfig, func(o *Options) {
		o.Limits = Limits{InFlight: 8, InFlightLarge: 2}
	}, corpusObjects()...)
	server := httptest.NewServer(s.handlers[PathValidateStatefulSet])
	defer server.Close()
	for range 2 {
		finish, _ := stalledUpload(t, server.URL, 6<<20)
		defer finish()
	}
	time.Sleep(100 * time.Millisecond) // the handlers hold their slots
	finish, answered := stalledUpload(t, server.URL, 6<<20)
	defer finish()
	select {
	case resp := <-answered:
		if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("a third large upload: %v, want 429 Too Many Requests", resp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a third large upload waits instead of being refused")
	}
	if code := postReview(t, server.URL); code != http.StatusOK {
		t.Errorf("an ordinary review during the stalled uploads: HTTP %d, want 200", code)
	}
}

// TestStalledBodiesTimeOut: a body that stops arriving is given up after
// ReadTimeout, and its slot is free again.
func TestStalledBodiesTimeOut(t *testing.T) {
	s := newTestServerWith(t, corpusConfig, func(o *Options) {
		o.Limits = Limits{ReadTimeout: 200 * time.Millisecond, InFlight: 1, InFlightLarge: 1}
	}, corpusObjects()...)
	server := httptest.NewServer(s.handlers[PathValidateStatefulSet])
	defer server.Close()
	start := time.Now()
	finish, answered := stalledUpload(t, server.URL, 100)
	defer finish()
	select {
	case resp := <-answered:
		if resp != nil && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("a stalled body: HTTP %d, want 400 or a closed connection", resp.StatusCode)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a stalled body is still being read after 5 s")
	}
	t.Logf("a stalled body was given up after %s", time.Since(start).Round(time.Millisecond))
	if code := postReview(t, server.URL); code != http.StatusOK {
		t.Errorf("a review after the stalled one: HTTP %d, want 200: the slot was not freed", code)
	}
}

// postReview posts the review of a database's StatefulSet and returns the HTTP status.
func postReview(t *testing.T, url string) int {
	t.Helper()
	body := reviewOf(t, admissionv1.Create, statefulSetKind, "statefulsets", postgres("shop"), nil)
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
