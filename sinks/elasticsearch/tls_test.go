package elasticsearch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

func TestTLSVerification(t *testing.T) {
	srv := bulktest.NewTLS(1)
	defer srv.Close()
	cert := srv.Certificate()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Raw)
	fp := strings.ToUpper(hex.EncodeToString(sum[:]))
	var colon []string
	for i := 0; i < len(fp); i += 2 {
		colon = append(colon, fp[i:i+2])
	}
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"verification on by default", Options{}, false},
		{"ca_file", Options{CAFile: caFile}, true},
		{"fingerprint", Options{CAFingerprint: fp}, true},
		{"fingerprint with colons", Options{CAFingerprint: strings.Join(colon, ":")}, true},
		{"wrong fingerprint", Options{CAFingerprint: strings.Repeat("AB", 32)}, false},
		{"insecure_skip_verify", Options{InsecureSkipVerify: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Addresses = []string{srv.URL}
			s, err := New(context.Background(), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			res, err := s.Send(context.Background(), batch(2, 0))
			if tc.ok && (err != nil || len(res.Failures) > 0) {
				t.Fatalf("Send: %v %v", res, err)
			}
			if !tc.ok && err == nil {
				t.Fatal("Send succeeded against an unverified certificate")
			}
		})
	}
}
