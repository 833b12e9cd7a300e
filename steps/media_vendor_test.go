package steps

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"upgrader/orchestrator"
)

// The vendor's own certificate dates: issued in 2018, expired long ago,
// like the one shipped with the SP1 ISO.
var (
	vendorNotBefore = time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC)
	vendorNotAfter  = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
)

// certShape is how a test certificate differs from a good code-signing one.
type certShape struct {
	name                string
	notBefore, notAfter time.Time
	keyUsage            x509.KeyUsage
	extKeyUsage         []x509.ExtKeyUsage
	ecdsa               bool
}

// certShapes are the certificates the vendor's openssl check accepts
// alike: it reads the public key and nothing else.
func certShapes() []certShape {
	now := time.Now()
	codeSigning := []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	return []certShape{
		{name: "good", notBefore: now.Add(-time.Hour), notAfter: now.AddDate(1, 0, 0),
			keyUsage: x509.KeyUsageDigitalSignature, extKeyUsage: codeSigning},
		{name: "expired 2018-2021", notBefore: vendorNotBefore, notAfter: vendorNotAfter,
			keyUsage: x509.KeyUsageDigitalSignature, extKeyUsage: codeSigning},
		{name: "TLS server only", notBefore: now.Add(-time.Hour), notAfter: now.AddDate(1, 0, 0),
			keyUsage: x509.KeyUsageDigitalSignature, extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{name: "no usages at all", notBefore: now.Add(-time.Hour), notAfter: now.AddDate(1, 0, 0)},
		{name: "key encipherment only", notBefore: now.Add(-time.Hour), notAfter: now.AddDate(1, 0, 0),
			keyUsage: x509.KeyUsageKeyEncipherment, extKeyUsage: codeSigning},
		{name: "expired, TLS server only", notBefore: vendorNotBefore, notAfter: vendorNotAfter,
			keyUsage: x509.KeyUsageDigitalSignature, extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{name: "not yet valid", notBefore: now.AddDate(1, 0, 0), notAfter: now.AddDate(2, 0, 0),
			keyUsage: x509.KeyUsageDigitalSignature, extKeyUsage: codeSigning},
		{name: "ECDSA P-256", notBefore: now.Add(-time.Hour), notAfter: now.AddDate(1, 0, 0),
			keyUsage: x509.KeyUsageDigitalSignature, extKeyUsage: codeSigning, ecdsa: true},
	}
}

// anySigner signs with an RSA or an ECDSA key behind a self-signed
// certificate of the given shape.
type anySigner struct {
	key     crypto.Signer
	certDER []byte
}

func newShapedSigner(tb testing.TB, sh certShape) anySigner {
	tb.Helper()
	var key crypto.Signer
	var err error
	if sh.ecdsa {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "Test File Signing Authority (" + sh.name + ")"},
		NotBefore:    sh.notBefore,
		NotAfter:     sh.notAfter,
		KeyUsage:     sh.keyUsage,
		ExtKeyUsage:  sh.extKeyUsage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	return anySigner{key: key, certDER: der}
}

func (s anySigner) certPEM() []byte { return signer{certDER: s.certDER}.certPEM() }

func (s anySigner) fingerprint() string { return signer{certDER: s.certDER}.fingerprint() }

// sign signs data as `openssl dgst -sha256 -sign` does: PKCS#1 v1.5 for
// RSA, ASN.1 ECDSA for EC keys.
func (s anySigner) sign(tb testing.TB, data string) []byte {
	tb.Helper()
	digest := sha256.Sum256([]byte(data))
	var sig []byte
	var err error
	switch k := s.key.(type) {
	case *rsa.PrivateKey:
		return signer{key: k}.sign(tb, data)
	case *ecdsa.PrivateKey:
		sig, err = ecdsa.SignASN1(rand.Reader, k, digest[:])
	}
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

// vendorVerdict runs the release notes' own check in the media folder,
// word for word: "sha256sum ISO" compared with the published sum;
// "openssl x509 -pubkey -noout -in ISO.sha256.crt >pubkey.pem"; ISO.sha256
// holding "<published sum>  <iso name>"; "openssl dgst -sha256 -verify
// pubkey.pem -signature ISO.sha256.sig ISO.sha256" printing "Verified OK".
// The document does not say whether the .sha256 file ends with a newline
// (echo writes one, an editor may not): either one verifying is the
// vendor's pass.
func vendorVerdict(tb testing.TB, openssl string, f mediaFixture, published string) bool {
	tb.Helper()
	run := func(name string, args ...string) ([]byte, error) {
		cmd := exec.Command(name, args...)
		cmd.Dir = f.dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			tb.Logf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.Bytes())
		}
		return out, err
	}
	out, err := run("sha256sum", f.name)
	if err != nil {
		tb.Fatalf("sha256sum: %v", err)
	}
	hashOK := strings.Fields(string(out))[0] == published
	pub, err := run(openssl, "x509", "-pubkey", "-noout", "-in", f.name+".sha256.crt")
	if err != nil {
		return false
	}
	writeTestFile(tb, filepath.Join(f.dir, "pubkey.pem"), pub)
	sigOK := false
	for _, line := range []string{sumLine(published, f.name) + "\n", sumLine(published, f.name)} {
		writeTestFile(tb, filepath.Join(f.dir, f.name+".sha256"), []byte(line))
		out, err := run(openssl, "dgst", "-sha256", "-verify", "pubkey.pem", "-signature", f.name+".sha256.sig", f.name+".sha256")
		ok := strings.TrimSpace(string(out)) == "Verified OK"
		if ok != (err == nil) {
			tb.Fatalf("openssl dgst: exit %v but output %q", err, out)
		}
		sigOK = sigOK || ok
	}
	return hashOK && sigOK
}

// mediaTamper is what happened to the media after the vendor signed it.
type mediaTamper struct {
	name string
	// apply changes the fixture; it returns the published sum to check
	// against.
	apply func(tb testing.TB, f mediaFixture, s anySigner) string
}

func mediaTampers(other anySigner) []mediaTamper {
	return []mediaTamper{
		{"intact", func(_ testing.TB, f mediaFixture, _ anySigner) string { return f.sum }},
		{"signed without a newline", func(tb testing.TB, f mediaFixture, s anySigner) string {
			writeTestFile(tb, f.sig, s.sign(tb, sumLine(f.sum, f.name)))
			return f.sum
		}},
		{"ISO tampered", func(tb testing.TB, f mediaFixture, _ anySigner) string {
			iso := readTestFile(tb, f.iso)
			iso[len(iso)/3] ^= 0x20
			writeTestFile(tb, f.iso, iso)
			return f.sum
		}},
		{"ISO tampered, its own sum published", func(tb testing.TB, f mediaFixture, _ anySigner) string {
			iso := readTestFile(tb, f.iso)
			iso[len(iso)/3] ^= 0x20
			writeTestFile(tb, f.iso, iso)
			sum := sha256.Sum256(iso)
			return hex.EncodeToString(sum[:])
		}},
		{"signed by another key", func(tb testing.TB, f mediaFixture, _ anySigner) string {
			writeTestFile(tb, f.sig, other.sign(tb, sumLine(f.sum, f.name)+"\n"))
			return f.sum
		}},
		{"signature over another name", func(tb testing.TB, f mediaFixture, s anySigner) string {
			writeTestFile(tb, f.sig, s.sign(tb, sumLine(f.sum, "POM.03.01.01.00.004-r35452-x86_64.iso")+"\n"))
			return f.sum
		}},
		{"signature bit flipped", func(tb testing.TB, f mediaFixture, _ anySigner) string {
			sig := readTestFile(tb, f.sig)
			sig[len(sig)/2] ^= 0x01
			writeTestFile(tb, f.sig, sig)
			return f.sum
		}},
	}
}

// shapedFixture is media signed by s the way the vendor signs it.
func shapedFixture(tb testing.TB, s anySigner) mediaFixture {
	tb.Helper()
	f := newUnsignedMedia(tb)
	writeTestFile(tb, f.crt, s.certPEM())
	writeTestFile(tb, f.sig, s.sign(tb, sumLine(f.sum, f.name)+"\n"))
	return f
}

// With the default policy, upgrader's verdict is the vendor's: for every
// certificate shape and every kind of damage, the media passes exactly
// when sha256sum matches the published sum and openssl prints "Verified
// OK". A pin or a trust anchor that the certificate satisfies changes
// nothing to that verdict (it proves origin, it adds no other condition).
func TestMediaVerdictMatchesVendor(t *testing.T) {
	openssl := opensslPath(t)
	other := newShapedSigner(t, certShapes()[0])
	var cases, agree, passed atomic.Int64
	t.Cleanup(func() {
		t.Logf("vendor cross-check: %d verdicts, %d agree with openssl (%d pass, %d fail)",
			cases.Load(), agree.Load(), passed.Load(), cases.Load()-passed.Load())
	})
	for _, sh := range certShapes() {
		s := newShapedSigner(t, sh)
		for _, tm := range mediaTampers(other) {
			t.Run(sh.name+"/"+tm.name, func(t *testing.T) {
				t.Parallel()
				f := shapedFixture(t, s)
				published := tm.apply(t, f, s)
				vendor := vendorVerdict(t, openssl, f, published)
				anchor := filepath.Join(t.TempDir(), "anchor.pem")
				writeTestFile(t, anchor, s.certPEM())
				for _, pol := range []struct {
					name string
					m    MediaCheck
				}{
					{"no pin, no anchor", MediaCheck{}},
					{"pinned", MediaCheck{PinSHA256: s.fingerprint()}},
					{"trust anchor", MediaCheck{TrustAnchor: anchor}},
				} {
					m := pol.m
					m.ISO, m.SHA256, m.RequireSum = f.iso, published, true
					_, err := m.Run()
					cases.Add(1)
					if (err == nil) != vendor {
						t.Errorf("%s: upgrader passes = %v (%v), the vendor's openssl check passes = %v", pol.name, err == nil, err, vendor)
						continue
					}
					agree.Add(1)
					if vendor {
						passed.Add(1)
					}
				}
			})
		}
	}
}

// The vendor's check ignores the certificate's dates and usages; so does
// upgrader's verdict by default. They are reported, and the report says
// what was accepted and on what ground.
func TestMediaCheckReportsCertificateNotFatal(t *testing.T) {
	shapes := map[string]certShape{}
	for _, sh := range certShapes() {
		shapes[sh.name] = sh
	}
	for _, tc := range []struct {
		name, shape string
		pin, anchor bool
		check       string // the finding that warns
		want        []string
		origin      string
	}{
		{name: "expired, unproven", shape: "expired 2018-2021", check: "validity", origin: "unproven",
			want: []string{"expired on 2021-01-01", "the vendor's check ignores the certificate's dates"}},
		{name: "expired, pinned", shape: "expired 2018-2021", pin: true, check: "validity", origin: "pinned",
			want: []string{"expired on 2021-01-01", "accepted by the pin"}},
		{name: "expired, trust anchor", shape: "expired 2018-2021", anchor: true, check: "validity", origin: "trust-anchor",
			want: []string{"expired on 2021-01-01", "accepted by the trust anchor"}},
		{name: "not yet valid", shape: "not yet valid", check: "validity", origin: "unproven",
			want: []string{"not valid before", "check the host's clock"}},
		{name: "TLS server only, pinned", shape: "TLS server only", pin: true, check: "code-signing", origin: "pinned",
			want: []string{"not issued for code signing", "accepted by the pin"}},
		{name: "TLS server only, trust anchor", shape: "TLS server only", anchor: true, check: "code-signing", origin: "trust-anchor",
			want: []string{"not issued for code signing", "accepted by the trust anchor"}},
		{name: "no usages, unproven", shape: "no usages at all", check: "code-signing", origin: "unproven",
			want: []string{"not issued for code signing", "the vendor's check ignores"}},
		{name: "key encipherment only", shape: "key encipherment only", check: "code-signing", origin: "unproven",
			want: []string{"not issued for code signing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newShapedSigner(t, shapes[tc.shape])
			f := shapedFixture(t, s)
			m := MediaCheck{ISO: f.iso, SHA256: f.sum, RequireSum: true}
			if tc.pin {
				m.PinSHA256 = s.fingerprint()
			}
			if tc.anchor {
				m.TrustAnchor = filepath.Join(f.dir, "anchor.pem")
				writeTestFile(t, m.TrustAnchor, s.certPEM())
			}
			res, err := m.Run()
			if err != nil {
				t.Fatalf("Run: %v; the vendor's check passes this media", err)
			}
			if res.Origin != tc.origin {
				t.Errorf("origin %q, want %q", res.Origin, tc.origin)
			}
			_, findings := m.Checks()
			var got *MediaFinding
			for i := range findings {
				if findings[i].Check == tc.check {
					got = &findings[i]
				}
			}
			if got == nil {
				t.Fatalf("no %s finding: %+v", tc.check, findings)
			}
			if !got.OK || !got.Warning {
				t.Errorf("%s finding ok=%v warning=%v, want a passing warning", tc.check, got.OK, got.Warning)
			}
			for _, w := range tc.want {
				if !strings.Contains(got.Detail, w) {
					t.Errorf("%s detail %q does not say %q", tc.check, got.Detail, w)
				}
			}
		})
	}
}

// An expired certificate is never reported as valid.
func TestMediaCheckNeverCallsExpiredValid(t *testing.T) {
	s := newShapedSigner(t, certShapes()[1])
	f := shapedFixture(t, s)
	_, findings := MediaCheck{ISO: f.iso, SHA256: f.sum, PinSHA256: s.fingerprint()}.Checks()
	for _, fd := range findings {
		if fd.Check == "validity" && (strings.HasPrefix(fd.Detail, "valid ") || !fd.Warning) {
			t.Errorf("validity finding %+v: an expired certificate reported as valid", fd)
		}
	}
	if _, err := os.Stat(f.iso); err != nil {
		t.Fatal(err)
	}
}

// Every finding says whose check it is: the release notes' sha256sum and
// openssl commands are the vendor's; size, dates, usages and origin are
// upgrader's own.
func TestMediaFindingsSayWhoseCheck(t *testing.T) {
	s := newShapedSigner(t, certShapes()[1])
	f := shapedFixture(t, s)
	anchor := filepath.Join(f.dir, "anchor.pem")
	writeTestFile(t, anchor, s.certPEM())
	_, findings := MediaCheck{ISO: f.iso, SHA256: f.sum, Size: f.size, PinSHA256: s.fingerprint(), TrustAnchor: anchor}.Checks()
	want := map[string]orchestrator.Source{"size": orchestrator.SourceUpgrader, "sha256": orchestrator.SourceVendor,
		"certificate": orchestrator.SourceVendor, "signature": orchestrator.SourceVendor, "validity": orchestrator.SourceUpgrader,
		"code-signing": orchestrator.SourceUpgrader, "origin": orchestrator.SourceUpgrader}
	seen := map[string]bool{}
	for _, fd := range findings {
		seen[fd.Check] = true
		if fd.Source != want[fd.Check] {
			t.Errorf("%s: source %q, want %q", fd.Check, fd.Source, want[fd.Check])
		}
	}
	for c := range want {
		if !seen[c] {
			t.Errorf("no %s finding: %+v", c, findings)
		}
	}
}

// The verify-media step follows the site's profile: by default an expired
// certificate passes with its warning recorded on the step and logged;
// with media.require_valid_certificate it fails, saying why.
func TestVerifyMediaStepCertificatePolicy(t *testing.T) {
	e := newHostSim(t, "pom")
	s := newShapedSigner(t, certShapes()[1])
	sum := sha256.Sum256(readTestFile(t, e.sim.ISO))
	writeTestFile(t, e.sim.ISO+".sha256.crt", s.certPEM())
	writeTestFile(t, e.sim.ISO+".sha256.sig", s.sign(t, sumLine(hex.EncodeToString(sum[:]), filepath.Base(e.sim.ISO))+"\n"))
	spec := orchestrator.StepSpec{ID: "verify-media", Action: "verify-media", Params: map[string]string{
		"iso": e.host.Profile.Unroot(e.sim.ISO), "sha256": hex.EncodeToString(sum[:])}}
	st := e.build(t, spec)
	sc := stepContext(spec, nil)
	var logs bytes.Buffer
	sc.Log = zerolog.New(&logs)
	out, err := st.Verify(context.Background(), sc)
	if err != nil {
		t.Fatalf("Verify: %v; the vendor's check passes this media", err)
	}
	if w := out.Values["warning_validity"]; !strings.Contains(w, "expired on 2021-01-01") {
		t.Errorf("warning_validity = %q, want the expiry", w)
	}
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "expired on 2021-01-01") {
		t.Errorf("no warning logged: %s", logs.String())
	}
	e.host.Profile.Media.RequireValidCertificate = true
	_, err = st.Verify(context.Background(), sc)
	if err == nil || !strings.Contains(err.Error(), "require_valid_certificate") || !strings.Contains(err.Error(), "expired on 2021-01-01") {
		t.Fatalf("Verify with require_valid_certificate: %v, want the expiry refused by that rule", err)
	}
}

// issued makes a CA valid from notBefore to notAfter and a signing
// certificate it issued with the same dates; it returns the CA's PEM and
// the signer.
func issued(tb testing.TB, notBefore, notAfter time.Time) ([]byte, anySigner) {
	tb.Helper()
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"}, NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Test File Signing"}, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	return signer{certDER: caDER}.certPEM(), anySigner{key: key, certDER: der}
}

// A trust anchor proves origin for a certificate that expired with its CA:
// the chain held when the certificate was issued, and the finding says it
// does not hold today. A certificate the anchor never issued fails, expired
// or not; with require_valid_certificate the chain must hold today.
func TestMediaTrustAnchorExpiredChain(t *testing.T) {
	caPEM, s := issued(t, vendorNotBefore, vendorNotAfter)
	otherCA, _ := issued(t, vendorNotBefore, vendorNotAfter)
	f := shapedFixture(t, s)
	anchor := filepath.Join(f.dir, "anchor.pem")
	writeTestFile(t, anchor, caPEM)
	m := MediaCheck{ISO: f.iso, SHA256: f.sum, TrustAnchor: anchor}
	res, findings := m.Checks()
	if err := FirstFailure(findings); err != nil || res.Origin != OriginTrustAnchor {
		t.Fatalf("expired chain: %v, origin %q; want it proven by the anchor", err, res.Origin)
	}
	for _, fd := range findings {
		if fd.Check == "origin" && !strings.Contains(fd.Detail, "when the certificate was issued (2018-01-01); not today") {
			t.Errorf("origin detail %q does not say the chain holds only as of issue", fd.Detail)
		}
	}
	m.RequireValidCertificate = true
	if _, err := m.Run(); err == nil {
		t.Error("require_valid_certificate accepts an expired chain")
	}
	writeTestFile(t, anchor, otherCA)
	m.RequireValidCertificate = false
	if _, err := m.Run(); err == nil || !strings.Contains(err.Error(), "does not chain to the trust anchor") {
		t.Errorf("another CA as anchor: %v", err)
	}
}
