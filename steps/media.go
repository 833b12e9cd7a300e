package steps

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
)

// MediaResult is what a media check proved.
type MediaResult struct {
	Artifact orchestrator.Artifact
	// Origin says whether the certificate is trusted ("pinned",
	// "trust-anchor") or only proves integrity ("unproven").
	Origin string
	// SignedForm says which form of the .sha256 line the signature covers.
	SignedForm string
}

// MediaCheck verifies an ISO the way the release notes do with sha256sum
// and openssl: the hash equals the published sum and the signature over
// "<sum>  <name>\n" verifies with the certificate's public key. It also
// checks what openssl does not: the certificate is valid today and issued
// for code signing, and its origin (a pinned fingerprint or a trust
// anchor).
type MediaCheck struct {
	ISO    string // path to the ISO
	SHA256 string // published sum; empty: the signature is checked against the computed hash
	// RequireSum makes a missing published sum a failure (the step does;
	// the stand-alone command does not).
	RequireSum bool
	Size       int64  // expected size, 0 to skip the check
	CertPath   string // default ISO.sha256.crt
	SigPath    string // default ISO.sha256.sig
	// PinSHA256 is the expected SHA-256 of the certificate (DER), optional.
	// A pinned certificate is trusted even when expired: pinning it is the
	// engineer's explicit decision.
	PinSHA256 string
	// TrustAnchor is a PEM file of CA certificates the signing certificate
	// must chain to (for code signing), optional.
	TrustAnchor string
	Now         time.Time // default time.Now()
	Progress    orchestrator.Progress
}

// MediaFinding is one named check of a media verification.
type MediaFinding struct {
	Check string `json:"check"` // size, sha256, certificate, validity, code-signing, signature, origin
	OK    bool   `json:"ok"`
	// Warning marks a check that passes but should be read (origin unproven).
	Warning bool   `json:"warning,omitempty"`
	Detail  string `json:"detail"`
}

// Limits of the small files a media check reads: a certificate, a trust
// anchor bundle (the system's whole CA bundle is a few hundred kB), an RSA
// signature (512 bytes for a 4096-bit key).
const (
	maxCertSize = 1 << 20
	maxSigSize  = 64 << 10
)

// CheckFiles refuses, before any check reads them, an ISO, certificate,
// signature or trust anchor that exists but is not a regular file: a
// device (/dev/zero) would be read forever and a FIFO would block. A file
// that does not exist is left to the checks, which name it.
func (m MediaCheck) CheckFiles() error {
	for _, f := range []struct{ what, path string }{
		{"ISO", m.ISO}, {"--cert", m.CertPath}, {"--sig", m.SigPath}, {"--trust-anchor", m.TrustAnchor},
	} {
		if f.path == "" {
			continue
		}
		if _, err := securefs.CheckRegular(f.path); errors.Is(err, securefs.ErrNotRegular) {
			return fmt.Errorf("%s: %w", f.what, err)
		}
	}
	return nil
}

// Run performs the check and returns the first failure as the error.
func (m MediaCheck) Run() (MediaResult, error) {
	res, findings := m.Checks()
	for _, f := range findings {
		if !f.OK {
			return MediaResult{}, errors.New(f.Detail)
		}
	}
	return res, nil
}

// Checks performs every check it can and reports each one, so an engineer
// sees all that is wrong at once. The result is meaningful only when every
// finding is OK.
func (m MediaCheck) Checks() (MediaResult, []MediaFinding) {
	if m.CertPath == "" {
		m.CertPath = m.ISO + ".sha256.crt"
	}
	if m.SigPath == "" {
		m.SigPath = m.ISO + ".sha256.sig"
	}
	if m.Now.IsZero() {
		m.Now = time.Now()
	}
	var out []MediaFinding
	add := func(check string, ok bool, format string, a ...any) {
		out = append(out, MediaFinding{Check: check, OK: ok, Detail: fmt.Sprintf(format, a...)})
	}
	want := strings.ToLower(strings.TrimSpace(m.SHA256))
	if want == "" && m.RequireSum {
		add("sha256", false, "no published SHA-256 to check against: copy it from the support site into media.sha256")
		return MediaResult{}, out
	}
	st, err := securefs.CheckRegular(m.ISO)
	if err != nil {
		add("size", false, "ISO: %v", err)
		return MediaResult{}, out
	}
	if m.Size > 0 && st.Size() != m.Size {
		add("size", false, "%s is %d bytes, expected %d: incomplete copy or wrong file", m.ISO, st.Size(), m.Size)
	} else if m.Size > 0 {
		add("size", true, "%d bytes, as the file list says", st.Size())
	}
	art, err := artifactOf(m.ISO, m.Progress)
	if err != nil {
		add("sha256", false, "%s: %v", m.ISO, err)
		return MediaResult{}, out
	}
	signedSum := want
	switch {
	case want == "":
		signedSum = art.SHA256
		add("sha256", true, "%s (no published sum given: the signature is checked against this computed hash)", art.SHA256)
	case art.SHA256 != want:
		add("sha256", false, "%s: sha256 %s does not match the published %s: the file is corrupt or not this release", m.ISO, art.SHA256, want)
	default:
		add("sha256", true, "%s matches the published sum", art.SHA256)
	}
	res := MediaResult{Artifact: art, Origin: "unproven"}
	cert, err := readCertificate(m.CertPath)
	if err != nil {
		add("certificate", false, "%v", err)
		return res, out
	}
	pinned := false
	if m.PinSHA256 != "" {
		fp := sha256.Sum256(cert.Raw)
		pinned = hex.EncodeToString(fp[:]) == strings.ToLower(m.PinSHA256)
		if pinned {
			add("origin", true, "certificate fingerprint matches the pinned %s", m.PinSHA256)
			res.Origin = "pinned"
		} else {
			add("origin", false, "%s: certificate fingerprint %x is not the pinned %s", m.CertPath, fp, m.PinSHA256)
		}
	}
	switch {
	case m.Now.After(cert.NotAfter) && !pinned:
		add("validity", false, "%s expired on %s: ask the vendor for current media, or pin this certificate's fingerprint (media.pin_sha256) if the vendor confirms it",
			m.CertPath, cert.NotAfter.UTC().Format("2006-01-02"))
	case m.Now.Before(cert.NotBefore) && !pinned:
		add("validity", false, "%s is not valid before %s: check the host's clock", m.CertPath, cert.NotBefore.UTC().Format("2006-01-02"))
	default:
		add("validity", true, "valid %s to %s", cert.NotBefore.UTC().Format("2006-01-02"), cert.NotAfter.UTC().Format("2006-01-02"))
	}
	if slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageCodeSigning) &&
		(cert.KeyUsage == 0 || cert.KeyUsage&x509.KeyUsageDigitalSignature != 0) {
		add("code-signing", true, "issued for code signing")
	} else {
		add("code-signing", false, "%s is not issued for code signing (extended key usage): it cannot vouch for media", m.CertPath)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		add("signature", false, "%s: the certificate's key is not RSA", m.CertPath)
		return res, out
	}
	sig, err := securefs.ReadRegular(m.SigPath, maxSigSize)
	if err != nil {
		add("signature", false, "signature: %v", err)
		return res, out
	}
	line := signedSum + "  " + filepath.Base(m.ISO)
	for _, form := range []struct{ name, data string }{{"with-newline", line + "\n"}, {"no-newline", line}} {
		digest := sha256.Sum256([]byte(form.data))
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil {
			res.SignedForm = form.name
			break
		}
	}
	if res.SignedForm == "" {
		add("signature", false, "%s does not verify the line %q with the key of %s: the sum or the signature is not the published one", m.SigPath, line, m.CertPath)
	} else {
		add("signature", true, "%s verifies \"<sum>  <name>\" (%s)", filepath.Base(m.SigPath), res.SignedForm)
	}
	if m.TrustAnchor != "" {
		if err := verifyChain(cert, m.TrustAnchor); err != nil {
			add("origin", false, "%s: %v", m.CertPath, err)
		} else {
			add("origin", true, "certificate chains to the trust anchor %s", m.TrustAnchor)
			if res.Origin == "unproven" {
				res.Origin = "trust-anchor"
			}
		}
	}
	if m.PinSHA256 == "" && m.TrustAnchor == "" {
		add("origin", true, "UNPROVEN: the certificate ships with the ISO, so it proves integrity, not origin; configure media.pin_sha256 or media.trust_anchor")
		out[len(out)-1].Warning = true
	}
	return res, out
}

// verifyChain proves the certificate was issued for code signing by one of
// the trust anchors in the PEM file.
func verifyChain(cert *x509.Certificate, anchorFile string) error {
	b, err := securefs.ReadRegular(anchorFile, maxCertSize)
	if err != nil {
		return fmt.Errorf("trust anchor: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		return fmt.Errorf("trust anchor %s holds no PEM certificate", anchorFile)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
		return fmt.Errorf("certificate does not chain to the trust anchor %s: %w", anchorFile, err)
	}
	return nil
}

func readCertificate(path string) (*x509.Certificate, error) {
	b, err := securefs.ReadRegular(path, maxCertSize)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	if block, _ := pem.Decode(b); block != nil {
		b = block.Bytes
	}
	cert, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("%s: not a certificate: %w", path, err)
	}
	return cert, nil
}

// verifyMedia is the verify-media step. It changes nothing, so Probe always
// says "not done" and Verify does the work every time it runs.
type verifyMedia struct{ h *Host }

func (s verifyMedia) Probe(context.Context, orchestrator.StepContext) (bool, error) {
	return false, nil
}
func (s verifyMedia) Apply(context.Context, orchestrator.StepContext) error { return nil }

func (s verifyMedia) Verify(_ context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	size, _ := strconv.ParseInt(sc.Spec.Params["size"], 10, 64)
	res, err := MediaCheck{ISO: s.h.Profile.Path(sc.Spec.Params["iso"]), SHA256: sc.Spec.Params["sha256"], RequireSum: true, Size: size,
		PinSHA256: s.h.Profile.Media.PinSHA256, TrustAnchor: s.h.Profile.Path(s.h.Profile.Media.TrustAnchor),
		Progress: sc.Progress}.Run()
	if err != nil {
		return orchestrator.Outputs{}, err
	}
	if res.Origin == "unproven" {
		sc.Log.Warn().Msg("the certificate proves integrity, not origin: no pinned fingerprint or trust anchor is configured")
	}
	res.Artifact.Path = s.h.Profile.Unroot(res.Artifact.Path)
	return orchestrator.Outputs{
		Artifacts: map[string]orchestrator.Artifact{"media": res.Artifact},
		Values:    map[string]string{"origin": res.Origin, "signed_form": res.SignedForm},
	}, nil
}
