// Package metricsauth guards the metrics endpoint the way the API server
// guards its own: a bearer token that a TokenReview authenticates, and a
// SubjectAccessReview that authorizes get on the request's path. It is
// controller-runtime's metrics filter in a few client-go calls, without the
// API server libraries that filter pulls in (they double the binary).
package metricsauth

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// cacheFor is how long a token's verdict is kept: Prometheus scrapes
// every few seconds with the same token.
const cacheFor = time.Minute

// Filter is a metricsserver.Options.FilterProvider.
func Filter(config *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	clientset, err := kubernetes.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, err
	}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return &guard{reviews: &reviewer{clientset: clientset}, next: next, log: log, now: time.Now}, nil
	}, nil
}

// reviews decide whether a token may get a path.
type reviews interface {
	// allowed says whether the token's user may get path: 401 when the
	// token is not authenticated, 403 when the user is not authorized.
	allowed(ctx context.Context, token, path string) (status int, err error)
}

type guard struct {
	reviews reviews
	next    http.Handler
	log     logr.Logger
	now     func() time.Time

	mu      sync.Mutex
	decided map[verdictKey]verdict
}

type verdictKey struct{ token, path string }

type verdict struct {
	status int
	until  time.Time
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		http.Error(w, "Unauthorized: a bearer token is required", http.StatusUnauthorized)
		return
	}
	status, err := g.decide(r.Context(), token, r.URL.Path)
	if err != nil {
		g.log.Error(err, "reviewing a metrics request")
		http.Error(w, "Internal Server Error: the request could not be reviewed", http.StatusInternalServerError)
		return
	}
	switch status {
	case http.StatusOK:
		g.next.ServeHTTP(w, r)
	case http.StatusUnauthorized:
		http.Error(w, "Unauthorized", status)
	default:
		http.Error(w, "Forbidden: get on "+r.URL.Path+" is not allowed", status)
	}
}

// decide reviews a token for a path, or reuses a verdict of the last minute.
func (g *guard) decide(ctx context.Context, token, path string) (int, error) {
	key, now := verdictKey{token, path}, g.now()
	g.mu.Lock()
	v, ok := g.decided[key]
	g.mu.Unlock()
	if ok && now.Before(v.until) {
		return v.status, nil
	}
	status, err := g.reviews.allowed(ctx, token, path)
	if err != nil {
		return 0, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.decided == nil || len(g.decided) > 1000 {
		g.decided = map[verdictKey]verdict{} // bounded: tokens of the past are dropped
	}
	g.decided[key] = verdict{status: status, until: now.Add(cacheFor)}
	return status, nil
}

// reviewer asks the API server.
type reviewer struct{ clientset kubernetes.Interface }

func (r *reviewer) allowed(ctx context.Context, token, path string) (int, error) {
	review, err := r.clientset.AuthenticationV1().TokenReviews().Create(ctx,
		&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return 0, err
	}
	if !review.Status.Authenticated {
		return http.StatusUnauthorized, nil
	}
	user := review.Status.User
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	access, err := r.clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: "get"},
	}}, metav1.CreateOptions{})
	if err != nil {
		return 0, err
	}
	if !access.Status.Allowed {
		return http.StatusForbidden, nil
	}
	return http.StatusOK, nil
}
