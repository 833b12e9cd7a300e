package steps

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// signer is an RSA-2048 key with a self-signed code-signing certificate.
type signer struct {
	key     *rsa.PrivateKey
	certDER []byte
}

func newSigner(tb testing.TB, name string) signer {
	tb.Helper()
	return newSignerWith(tb, name, time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0), x509.ExtKeyUsageCodeSigning)
}

// newSignerWith makes a self-signed certificate valid from notBefore to
// notAfter with one extended key usage.
func newSignerWith(tb testing.TB, name string, notBefore, notAfter time.Time, usage x509.ExtKeyUsage) signer {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return signer{key: key, certDER: der}
}

func (s signer) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.certDER})
}

func (s signer) fingerprint() string {
	fp := sha256.Sum256(s.certDER)
	return hex.EncodeToString(fp[:])
}

// sign returns a PKCS#1 v1.5 SHA-256 signature over data.
func (s signer) sign(tb testing.TB, data string) []byte {
	tb.Helper()
	digest := sha256.Sum256([]byte(data))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, digest[:])
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

// mediaFixture is an ISO-like file with its published sum, certificate and
// signature, as the vendor ships them.
type mediaFixture struct {
	dir, iso, crt, sig string
	name, sum          string
	size               int64
}

// sumLine is the line the vendor signs, without its newline.
func sumLine(sum, name string) string { return sum + "  " + name }

// fixtureSize is the ISO's size: more than one hash buffer, so progress is
// reported in steps.
const fixtureSize = hashBuf + hashBuf/2 + 7

func newMediaFixture(tb testing.TB, s signer) mediaFixture {
	tb.Helper()
	f := newUnsignedMedia(tb)
	writeTestFile(tb, f.crt, s.certPEM())
	writeTestFile(tb, f.sig, s.sign(tb, sumLine(f.sum, f.name)+"\n"))
	return f
}

// newUnsignedMedia is the ISO alone, with its sum and the names of its
// certificate and signature.
func newUnsignedMedia(tb testing.TB) mediaFixture {
	tb.Helper()
	dir := tb.TempDir()
	f := mediaFixture{dir: dir, name: "POM.03.01.01.01.00.003-r35434-x86_64.iso"}
	f.iso = filepath.Join(dir, f.name)
	f.crt, f.sig = f.iso+".sha256.crt", f.iso+".sha256.sig"
	data := make([]byte, fixtureSize)
	rng := mrand.New(mrand.NewPCG(7, 11))
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	copy(data[0x8001:], "CD001") // ISO 9660 volume descriptor magic
	writeTestFile(tb, f.iso, data)
	sum := sha256.Sum256(data)
	f.sum, f.size = hex.EncodeToString(sum[:]), int64(len(data))
	return f
}

func writeTestFile(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// opensslPath finds the openssl CLI; the cross-check must not be skipped.
func opensslPath(tb testing.TB) string {
	tb.Helper()
	if _, err := os.Stat("/usr/bin/openssl"); err == nil {
		return "/usr/bin/openssl"
	}
	p, err := exec.LookPath("openssl")
	if err != nil {
		tb.Fatalf("openssl CLI not found (/usr/bin/openssl or PATH): install openssl (`make deps` installs it) to run the media cross-check")
	}
	return p
}

// opensslVerify checks sig over a .sha256 file holding line the way the
// release notes do, and reports whether openssl printed "Verified OK".
func opensslVerify(tb testing.TB, openssl, crt, sig, line string) bool {
	tb.Helper()
	dir := tb.TempDir()
	pub := filepath.Join(dir, "pubkey.pem")
	out, err := exec.Command(openssl, "x509", "-pubkey", "-noout", "-in", crt, "-out", pub).CombinedOutput()
	if err != nil {
		// A certificate openssl cannot read cannot verify anything.
		tb.Logf("openssl x509: %v: %s", err, out)
		return false
	}
	file := filepath.Join(dir, "media.sha256")
	writeTestFile(tb, file, []byte(line))
	out, err = exec.Command(openssl, "dgst", "-sha256", "-verify", pub, "-signature", sig, file).CombinedOutput()
	ok := strings.TrimSpace(string(out)) == "Verified OK"
	if ok != (err == nil) {
		tb.Fatalf("openssl dgst: exit %v but output %q", err, out)
	}
	return ok
}

func TestMediaCheck(t *testing.T) {
	openssl := opensslPath(t)
	good := newSigner(t, "Test File Signing Authority")
	other := newSigner(t, "Someone Else")
	const otherSum = "0000000000000000000000000000000000000000000000000000000000000000"

	for _, tc := range []struct {
		name string
		// setup changes the fixture and the check before Run.
		setup      func(tb testing.TB, f mediaFixture, m *MediaCheck)
		wantErr    string // "" for success
		wantForm   string
		wantOrigin string
		// crossCheck runs openssl on the same certificate and signature;
		// it must agree with MediaCheck.
		crossCheck bool
	}{
		{name: "good", setup: func(testing.TB, mediaFixture, *MediaCheck) {},
			wantForm: "with-newline", wantOrigin: "unproven", crossCheck: true},
		{name: "no-newline", setup: func(tb testing.TB, f mediaFixture, _ *MediaCheck) {
			writeTestFile(tb, f.sig, good.sign(tb, sumLine(f.sum, f.name)))
		}, wantForm: "no-newline", wantOrigin: "unproven", crossCheck: true},
		{name: "published sum in capitals with spaces", setup: func(_ testing.TB, f mediaFixture, m *MediaCheck) {
			m.SHA256 = " " + strings.ToUpper(f.sum) + "\n"
		}, wantForm: "with-newline", wantOrigin: "unproven"},
		{name: "expected size matches", setup: func(_ testing.TB, f mediaFixture, m *MediaCheck) {
			m.Size = f.size
		}, wantForm: "with-newline", wantOrigin: "unproven"},
		{name: "DER certificate", setup: func(tb testing.TB, f mediaFixture, _ *MediaCheck) {
			writeTestFile(tb, f.crt, good.certDER)
		}, wantForm: "with-newline", wantOrigin: "unproven"},
		{name: "wrong published sum", setup: func(_ testing.TB, _ mediaFixture, m *MediaCheck) {
			m.SHA256 = otherSum
		}, wantErr: "does not match the published", crossCheck: true},
		{name: "no published sum", setup: func(_ testing.TB, _ mediaFixture, m *MediaCheck) {
			m.SHA256, m.RequireSum = "  ", true
		}, wantErr: "no published SHA-256"},
		{name: "no published sum, stand-alone: the signature vouches for the computed hash", setup: func(_ testing.TB, _ mediaFixture, m *MediaCheck) {
			m.SHA256 = ""
		}, wantForm: "with-newline", wantOrigin: "unproven"},
		{name: "expired certificate: the vendor's check ignores the dates", setup: func(tb testing.TB, f mediaFixture, _ *MediaCheck) {
			s := newSignerWith(tb, "expired", time.Now().AddDate(-3, 0, 0), time.Now().AddDate(-1, 0, 0), x509.ExtKeyUsageCodeSigning)
			writeTestFile(tb, f.crt, s.certPEM())
			writeTestFile(tb, f.sig, s.sign(tb, sumLine(f.sum, f.name)+"\n"))
		}, wantForm: "with-newline", wantOrigin: "unproven", crossCheck: true},
		{name: "expired certificate, valid certificates required", setup: func(tb testing.TB, f mediaFixture, m *MediaCheck) {
			s := newSignerWith(tb, "expired", time.Now().AddDate(-3, 0, 0), time.Now().AddDate(-1, 0, 0), x509.ExtKeyUsageCodeSigning)
			writeTestFile(tb, f.crt, s.certPEM())
			writeTestFile(tb, f.sig, s.sign(tb, sumLine(f.sum, f.name)+"\n"))
			m.RequireValidCertificate = true
		}, wantErr: "expired on"},
		{name: "expired but pinned", setup: func(tb testing.TB, f mediaFixture, m *MediaCheck) {
			s := newSignerWith(tb, "expired", time.Now().AddDate(-3, 0, 0), time.Now().AddDate(-1, 0, 0), x509.ExtKeyUsageCodeSigning)
			writeTestFile(tb, f.crt, s.certPEM())
			writeTestFile(tb, f.sig, s.sign(tb, sumLine(f.sum, f.name)+"\n"))
			m.PinSHA256 = s.fingerprint()
		}, wantForm: "with-newline", wantOrigin: "pinned"},
		{name: "expired but pinned, valid certificates required", setup: func(tb testing.TB, f mediaFixture, m *MediaCheck) {
			s := newSignerWith(tb, "expired", time.Now().AddDate(-3, 0, 0), time.Now().AddDate(-1, 0, 0), x509.ExtKeyUsageCodeSigning)
			writeTestFile(tb, f.crt, s.certPEM())
			writeTestFile(tb, f.sig, s.sign(tb, sumLine(f.sum, f.name)+"\n"))
			m.PinSHA256, m.RequireValidCertificate = s.fingerprint(), true
		}, wantErr: "refused by require_valid_certificate, upgrader's own rule"},
		{name: "certificate not yet valid, valid certificates required", setup: func(tb testing.TB, f mediaFixture, m *MediaCheck) {
			s := newSignerWith(tb, "future", time.Now().AddDate(1, 0, 0), time.Now().AddDate(2, 0, 0), x509.ExtKeyUsageCodeSigning)
			writeTestFile(tb, f.crt, s.certPEM())
			writeTestFile(tb, f.sig, s.sign(tb, sumLine(f.sum, f.name)+"\n"))
			m.RequireValidCertificate = true
		}, wantErr: "not valid before"},
		{name: "certificate without code-signing usage, valid certificates required", setup: func(tb testing.TB, f mediaFixture, m *MediaCheck) {
			s := newSignerWith(tb, "tls server", time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0), x509.ExtKeyUsageServerAuth)
			writeTestFile(tb, f.crt, s.certPEM())
			writeTestFile(tb, f.sig, s.sign(tb, sumLine(f.sum, f.name)+"\n"))
			m.RequireValidCertificate = true
		}, wantErr: "not issued for code signing"},
		{name: "trust anchor, valid certificates required, good certificate", setup: func(tb testing.TB, f mediaFixture, m *MediaCheck) {
			m.TrustAnchor = filepath.Join(f.dir, "anchor.pem")
			writeTestFile(tb, m.TrustAnchor, good.certPEM())
			m.RequireValidCertificate = true
		}, wantForm: "with-newline", wantOrigin: "trust-anchor"},
		{name: "truncated ISO, size known", setup: func(tb testing.TB, f mediaFixture, m *MediaCheck) {
			truncate(tb, f.iso, f.size-2048)
			m.Size = f.size
		}, wantErr: fmt.Sprintf("is %d bytes, expected %d", fixtureSize-2048, fixtureSize)},
		{name: "truncated ISO, size 0", setup: func(tb testing.TB, f mediaFixture, m *MediaCheck) {
			truncate(tb, f.iso, f.size-2048)
			m.Size = 0
		}, wantErr: "does not match the published"},
		{name: "ISO missing", setup: func(tb testing.TB, f mediaFixture, _ *MediaCheck) {
			removeFile(tb, f.iso)
		}, wantErr: "no such file"},
		{name: "signature over another file's sum", setup: func(tb testing.TB, f mediaFixture, _ *MediaCheck) {
			writeTestFile(tb, f.sig, good.sign(tb, sumLine(otherSum, f.name)+"\n"))
		}, wantErr: "does not verify", crossCheck: true},
		{name: "signature over another file name", setup: func(tb testing.TB, f mediaFixture, _ *MediaCheck) {
			writeTestFile(tb, f.sig, good.sign(tb, sumLine(f.sum, "POM.03.01.01.00.00.039.iso")+"\n"))
		}, wantErr: "does not verify", crossCheck: true},
		{name: "swapped certificate", setup: func(tb testing.TB, f mediaFixture, _ *MediaCheck) {
			writeTestFile(tb, f.crt, other.certPEM())
		}, wantErr: "does not verify", crossCheck: true},
		{name: "signed with another key", setup: func(tb testing.TB, f mediaFixture, _ *MediaCheck) {
			writeTestFile(tb, f.sig, other.sign(tb, sumLine(f.sum, f.name)+"\n"))
		}, wantErr: "does not verify", crossCheck: true},
		{name: "corrupt signature", setup: func(tb testing.TB, f mediaFixture, _ *MediaCheck) {
			sig := readTestFile(tb, f.sig)
			sig[len(sig)/2] ^= 0x01
			writeTestFile(tb, f.sig, sig)
		}, wantErr: "does not verify", crossCheck: true},
		{name: "truncated signature", setup: func(tb testing.TB, f mediaFixture, _ *MediaCheck) {
			writeTestFile(tb, f.sig, readTestFile(tb, f.sig)[:100])
		}, wantErr: "does not verify", crossCheck: true},
		{name: "missing signature", setup: func(tb testing.TB, f mediaFixture, _ *MediaCheck) {
			removeFile(tb, f.sig)
		}, wantErr: "signature"},
		{name: "missing certificate", setup: func(tb testing.TB, f mediaFixture, _ *MediaCheck) {
			removeFile(tb, f.crt)
		}, wantErr: "certificate"},
		{name: "certificate is garbage", setup: func(tb testing.TB, f mediaFixture, _ *MediaCheck) {
			writeTestFile(tb, f.crt, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"))
		}, wantErr: "not a certificate"},
		{name: "pin matches", setup: func(_ testing.TB, _ mediaFixture, m *MediaCheck) {
			m.PinSHA256 = good.fingerprint()
		}, wantForm: "with-newline", wantOrigin: "pinned"},
		{name: "pin matches in capitals", setup: func(_ testing.TB, _ mediaFixture, m *MediaCheck) {
			m.PinSHA256 = strings.ToUpper(good.fingerprint())
		}, wantForm: "with-newline", wantOrigin: "pinned"},
		{name: "pin mismatch", setup: func(_ testing.TB, _ mediaFixture, m *MediaCheck) {
			m.PinSHA256 = other.fingerprint()
		}, wantErr: "is not the pinned"},
		{name: "pin mismatch with a consistently re-signed file", setup: func(tb testing.TB, f mediaFixture, m *MediaCheck) {
			// Someone re-signed the media with their own key: integrity
			// holds, origin does not.
			writeTestFile(tb, f.crt, other.certPEM())
			writeTestFile(tb, f.sig, other.sign(tb, sumLine(f.sum, f.name)+"\n"))
			m.PinSHA256 = good.fingerprint()
		}, wantErr: "is not the pinned"},
		{name: "trust anchor the certificate chains to", setup: func(tb testing.TB, f mediaFixture, m *MediaCheck) {
			m.TrustAnchor = filepath.Join(f.dir, "anchor.pem")
			writeTestFile(tb, m.TrustAnchor, good.certPEM())
		}, wantForm: "with-newline", wantOrigin: "trust-anchor"},
		{name: "trust anchor refuses a re-signed file", setup: func(tb testing.TB, f mediaFixture, m *MediaCheck) {
			writeTestFile(tb, f.crt, other.certPEM())
			writeTestFile(tb, f.sig, other.sign(tb, sumLine(f.sum, f.name)+"\n"))
			m.TrustAnchor = filepath.Join(f.dir, "anchor.pem")
			writeTestFile(tb, m.TrustAnchor, good.certPEM())
		}, wantErr: "does not chain to the trust anchor"},
		{name: "no pin, re-signed file", setup: func(tb testing.TB, f mediaFixture, _ *MediaCheck) {
			writeTestFile(tb, f.crt, other.certPEM())
			writeTestFile(tb, f.sig, other.sign(tb, sumLine(f.sum, f.name)+"\n"))
		}, wantForm: "with-newline", wantOrigin: "unproven", crossCheck: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newMediaFixture(t, good)
			pr := &progressRecorder{}
			m := MediaCheck{ISO: f.iso, SHA256: f.sum, Progress: pr.progress}
			tc.setup(t, f, &m)
			wantErr := tc.wantErr

			res, err := m.Run()
			if wantErr != "" {
				if err == nil {
					t.Fatalf("Run succeeded (%+v), want an error with %q", res, wantErr)
				}
				if !strings.Contains(err.Error(), wantErr) {
					t.Errorf("Run error %q does not contain %q", err, wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				if res.SignedForm != tc.wantForm || res.Origin != tc.wantOrigin {
					t.Errorf("Run = form %q origin %q, want %q %q", res.SignedForm, res.Origin, tc.wantForm, tc.wantOrigin)
				}
				a := res.Artifact
				if a.Path != f.iso || a.SHA256 != f.sum || a.Size != f.size || a.ModTime.IsZero() {
					t.Errorf("artifact = %+v, want %s sha256 %s size %d", a, f.iso, f.sum, f.size)
				}
				if err := recheckArtifact(a, nil); err != nil {
					t.Errorf("the recorded artifact does not recheck: %v", err)
				}
				calls := pr.all()
				if len(calls) < 2 || calls[len(calls)-1].done != f.size || calls[len(calls)-1].total != f.size {
					t.Errorf("progress = %+v, want several calls ending at %d/%d", calls, f.size, f.size)
				}
			}

			if !tc.crossCheck {
				return
			}
			// openssl checks the signature over the published .sha256
			// file. MediaCheck accepts either form of the line, so
			// openssl must verify the form MediaCheck reports, and
			// neither form when MediaCheck refuses.
			published := strings.ToLower(strings.TrimSpace(m.SHA256))
			forms := map[string]string{
				"with-newline": sumLine(published, f.name) + "\n",
				"no-newline":   sumLine(published, f.name),
			}
			for form, line := range forms {
				ok := opensslVerify(t, openssl, f.crt, f.sig, line)
				want := err == nil && form == res.SignedForm
				if ok != want {
					t.Errorf("openssl says Verified OK = %v on the %s .sha256 file, MediaCheck says %v (form %q)",
						ok, form, err, res.SignedForm)
				}
			}
		})
	}
}

func readTestFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func truncate(tb testing.TB, path string, size int64) {
	tb.Helper()
	if err := os.Truncate(path, size); err != nil {
		tb.Fatal(err)
	}
}

// TestOpensslAgreesOnFixture guards the cross-check itself: openssl
// verifies the fixture's signature over the vendor's .sha256 line and
// rejects one byte changed in it.
func TestOpensslAgreesOnFixture(t *testing.T) {
	openssl := opensslPath(t)
	s := newSigner(t, "Test File Signing Authority")
	f := newMediaFixture(t, s)
	line := sumLine(f.sum, f.name) + "\n"
	changed := []byte(line)
	if changed[0] == '0' {
		changed[0] = '1'
	} else {
		changed[0] = '0'
	}
	for _, tc := range []struct {
		name string
		line string
		want bool
	}{
		{"vendor line", line, true},
		{"one digit changed", string(changed), false},
		{"extra byte", line + "\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := opensslVerify(t, openssl, f.crt, f.sig, tc.line); got != tc.want {
				t.Errorf("openssl Verified OK = %v, want %v", got, tc.want)
			}
		})
	}
	if !bytes.Equal(readTestFile(t, f.crt), s.certPEM()) {
		t.Error("fixture certificate changed")
	}
}

// Checks names every failure at once, so an engineer fixes them in one go
// (a site that requires valid certificates sees those failures too).
func TestMediaChecksNamesEveryFailure(t *testing.T) {
	good := newSigner(t, "vendor")
	f := newMediaFixture(t, good)
	s := newSignerWith(t, "tls", time.Now().AddDate(-3, 0, 0), time.Now().AddDate(-1, 0, 0), x509.ExtKeyUsageServerAuth)
	writeTestFile(t, f.crt, s.certPEM())
	_, findings := MediaCheck{ISO: f.iso, SHA256: strings.Repeat("0", 64), Size: f.size + 1, RequireValidCertificate: true}.Checks()
	failed := map[string]bool{}
	for _, fd := range findings {
		if !fd.OK {
			failed[fd.Check] = true
		}
	}
	for _, c := range []string{"size", "sha256", "validity", "code-signing", "signature"} {
		if !failed[c] {
			t.Errorf("check %s not reported as failed: %+v", c, findings)
		}
	}
}

// The step reads media files named by the profile: a device or a FIFO
// where the ISO, the certificate, the signature or the trust anchor should
// be fails its check at once, named, instead of hashing /dev/zero forever
// or waiting on the FIFO.
func TestMediaCheckRefusesSpecialFiles(t *testing.T) {
	f := newMediaFixture(t, newSigner(t, "vendor"))
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, check, want string
		m                 MediaCheck
	}{
		{"ISO is /dev/zero", "size", "/dev/zero is a character device", MediaCheck{ISO: "/dev/zero"}},
		{"ISO is a FIFO", "size", "is a named pipe", MediaCheck{ISO: fifo}},
		{"certificate is /dev/zero", "certificate", "/dev/zero is a character device", MediaCheck{ISO: f.iso, CertPath: "/dev/zero"}},
		{"signature is a FIFO", "signature", "is a named pipe", MediaCheck{ISO: f.iso, SigPath: fifo}},
		{"trust anchor is /dev/zero", "origin", "/dev/zero is a character device", MediaCheck{ISO: f.iso, TrustAnchor: "/dev/zero"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan []MediaFinding, 1)
			go func() { _, fs := tc.m.Checks(); done <- fs }()
			select {
			case findings := <-done:
				named := false
				for _, fd := range findings {
					named = named || fd.Check == tc.check && !fd.OK && strings.Contains(fd.Detail, tc.want)
				}
				if !named {
					t.Errorf("no failed %s check naming %q: %+v", tc.check, tc.want, findings)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the check did not return")
			}
			if err := tc.m.CheckFiles(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckFiles: %v", err)
			}
		})
	}
	hashed := make(chan error, 1)
	go func() { _, _, err := HashFile(fifo, nil); hashed <- err }()
	select {
	case err := <-hashed:
		if err == nil || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("HashFile of a FIFO: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("HashFile of a FIFO did not return")
	}
}
