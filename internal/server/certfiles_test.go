package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestCertFilesFollowTheSecret: the files appear when the Secret gets its
// certificate, change when it is renewed, and other Secrets are ignored.
func TestCertFilesFollowTheSecret(t *testing.T) {
	dir := t.TempDir()
	clientset := fake.NewClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "stateguard-system"},
			Data: map[string][]byte{corev1.TLSCertKey: []byte("other-crt"), corev1.TLSPrivateKeyKey: []byte("other-key")}},
		// The chart's Secret starts empty: the leader fills it in.
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sg-stateguard-tls", Namespace: "stateguard-system"}},
	)
	c := &certFiles{clientset: clientset, namespace: "stateguard-system", secret: "sg-stateguard-tls", dir: dir, log: logr.Discard()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	files := func() string {
		crt, _ := os.ReadFile(filepath.Join(dir, "tls.crt"))
		key, _ := os.ReadFile(filepath.Join(dir, "tls.key"))
		return string(crt) + "/" + string(key)
	}
	issue := func(crt, key string) {
		t.Helper()
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sg-stateguard-tls", Namespace: "stateguard-system"},
			Data: map[string][]byte{corev1.TLSCertKey: []byte(crt), corev1.TLSPrivateKeyKey: []byte(key)}}
		if _, err := clientset.CoreV1().Secrets("stateguard-system").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFiles := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if files() == want {
				return
			}
		}
		t.Fatalf("the files hold %q, want %q", files(), want)
	}
	time.Sleep(200 * time.Millisecond)
	if got := files(); got != "/" {
		t.Fatalf("files before the certificate is issued: %q", got)
	}
	issue("crt-1", "key-1")
	waitFiles("crt-1/key-1")
	issue("crt-2", "key-2")
	waitFiles("crt-2/key-2")
}
