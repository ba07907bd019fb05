package metricsauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// tokens answers reviews from a table, counting them.
type tokens struct {
	status map[string]int
	err    error
	asked  int
}

func (t *tokens) allowed(_ context.Context, token, _ string) (int, error) {
	t.asked++
	if t.err != nil {
		return 0, t.err
	}
	if s, ok := t.status[token]; ok {
		return s, nil
	}
	return http.StatusUnauthorized, nil
}

func TestGuard(t *testing.T) {
	reviews := &tokens{status: map[string]int{"prometheus": http.StatusOK, "someone": http.StatusForbidden}}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := &guard{reviews: reviews, log: logr.Discard(), now: func() time.Time { return now },
		next: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("metrics")) })}
	get := func(token string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, tt := range []struct {
		token string
		want  int
	}{{"", 401}, {"forged", 401}, {"someone", 403}, {"prometheus", 200}} {
		if code, body := get(tt.token); code != tt.want || (code == 200) != (body == "metrics") {
			t.Errorf("token %q: %d %q, want %d", tt.token, code, body, tt.want)
		}
	}
	asked := reviews.asked
	get("prometheus")
	if reviews.asked != asked {
		t.Error("a token reviewed a moment ago was reviewed again")
	}
	now = now.Add(cacheFor)
	get("prometheus")
	if reviews.asked != asked+1 {
		t.Error("a verdict older than a minute was reused")
	}
	reviews.err = errors.New("connection refused")
	if code, _ := get("other"); code != http.StatusInternalServerError {
		t.Errorf("a failed review: %d, want 500", code)
	}
}

// TestReviewer: the token is authenticated, then its user, with its
// groups, is authorized for get on the path.
func TestReviewer(t *testing.T) {
	client := fake.NewClientset()
	var asked *authorizationv1.SubjectAccessReview
	client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		if review.Spec.Token == "prometheus" {
			review.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{
				Username: "system:serviceaccount:monitoring:prometheus", Groups: []string{"system:serviceaccounts"}}}
		}
		return true, review, nil
	})
	client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		asked = a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		asked.Status.Allowed = asked.Spec.NonResourceAttributes.Path == "/metrics"
		return true, asked, nil
	})
	r := &reviewer{clientset: client}
	for _, tt := range []struct {
		token, path string
		want        int
	}{{"forged", "/metrics", 401}, {"prometheus", "/metrics", 200}, {"prometheus", "/debug", 403}} {
		if got, err := r.allowed(context.Background(), tt.token, tt.path); err != nil || got != tt.want {
			t.Errorf("%s on %s: %d, %v; want %d", tt.token, tt.path, got, err, tt.want)
		}
	}
	if asked.Spec.User != "system:serviceaccount:monitoring:prometheus" || asked.Spec.Groups[0] != "system:serviceaccounts" || asked.Spec.NonResourceAttributes.Verb != "get" {
		t.Errorf("the access review asked %+v", asked.Spec)
	}
}
