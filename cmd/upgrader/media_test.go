package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// resignExpired signs the simulated ISO the way the vendor signed SP1: a
// code-signing certificate valid 2018-01-01 to 2021-01-01, long expired.
func resignExpired(t *testing.T, iso string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2018), Subject: pkix.Name{CommonName: "expired signing authority (test)"},
		NotBefore: time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(iso)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	digest := sha256.Sum256([]byte(hexSum + "  " + filepath.Base(iso) + "\n"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(iso+".sha256.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(iso+".sha256.sig", sig, 0o644); err != nil {
		t.Fatal(err)
	}
	return hexSum
}

// verify-media passes media the vendor's own openssl check passes, even
// with an expired certificate, and says whose each check is: a marker in
// text, a source in JSON. --require-valid-certificate is upgrader's
// stricter rule, on request only.
func TestVerifyMediaExpiredCertificate(t *testing.T) {
	s := newSim(t)
	iso := filepath.Join(s.root, "media", "POM.03.01.01.01.00.003-r35434-x86_64.iso")
	sum := resignExpired(t, iso)

	r := s.mustRun(exitOK, "verify-media", iso, "--sha256", sum)
	for _, want := range []string{"[vendor]", "[upgrader]", "expired on 2021-01-01", "WARN validity", "verifies (origin: unproven)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = s.mustRun(exitOK, "verify-media", iso, "--sha256", sum, "-o", "json")
	var doc struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Check, Source string
			OK            bool
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{}
	for _, c := range doc.Checks {
		sources[c.Check] = c.Source
	}
	if !doc.OK || sources["sha256"] != "vendor" || sources["signature"] != "vendor" || sources["validity"] != "upgrader" || sources["origin"] != "upgrader" {
		t.Errorf("json ok=%v sources %v", doc.OK, sources)
	}
	r = s.mustRun(exitFailed, "verify-media", iso, "--sha256", sum, "--require-valid-certificate")
	if !strings.Contains(r.stdout, "FAIL validity") || !strings.Contains(r.stdout, "upgrader's own rule") {
		t.Errorf("--require-valid-certificate:\n%s", r.stdout)
	}
}
