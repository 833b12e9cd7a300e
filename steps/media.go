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
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"upgrader/orchestrator"
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
// "<sum>  <name>\n" verifies with the certificate's public key.
type MediaCheck struct {
	ISO      string // path to the ISO
	SHA256   string // published sum
	Size     int64  // expected size, 0 to skip the check
	CertPath string // default ISO.sha256.crt
	SigPath  string // default ISO.sha256.sig
	// PinSHA256 is the expected SHA-256 of the certificate (DER), optional.
	PinSHA256 string
	// TrustAnchor is a PEM file of CA certificates the signing certificate
	// must chain to (for code signing), optional.
	TrustAnchor string
	Progress    orchestrator.Progress
}

// Run performs the check.
func (m MediaCheck) Run() (MediaResult, error) {
	if m.CertPath == "" {
		m.CertPath = m.ISO + ".sha256.crt"
	}
	if m.SigPath == "" {
		m.SigPath = m.ISO + ".sha256.sig"
	}
	want := strings.ToLower(strings.TrimSpace(m.SHA256))
	if want == "" {
		return MediaResult{}, errors.New("no published SHA-256 to check against")
	}
	st, err := os.Stat(m.ISO)
	if err != nil {
		return MediaResult{}, fmt.Errorf("ISO: %w", err)
	}
	if m.Size > 0 && st.Size() != m.Size {
		return MediaResult{}, fmt.Errorf("%s is %d bytes, expected %d: incomplete copy or wrong file", m.ISO, st.Size(), m.Size)
	}
	art, err := artifactOf(m.ISO, m.Progress)
	if err != nil {
		return MediaResult{}, err
	}
	if art.SHA256 != want {
		return MediaResult{}, fmt.Errorf("%s: sha256 %s does not match the published %s: the file is corrupt or not this release", m.ISO, art.SHA256, want)
	}
	cert, err := readCertificate(m.CertPath)
	if err != nil {
		return MediaResult{}, err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return MediaResult{}, fmt.Errorf("%s: the certificate's key is not RSA", m.CertPath)
	}
	sig, err := os.ReadFile(m.SigPath)
	if err != nil {
		return MediaResult{}, fmt.Errorf("signature: %w", err)
	}
	line := want + "  " + filepath.Base(m.ISO)
	res := MediaResult{Artifact: art, Origin: "unproven"}
	for _, form := range []struct{ name, data string }{{"with-newline", line + "\n"}, {"no-newline", line}} {
		digest := sha256.Sum256([]byte(form.data))
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil {
			res.SignedForm = form.name
			break
		}
	}
	if res.SignedForm == "" {
		return MediaResult{}, fmt.Errorf("%s does not verify the line %q with the key of %s: the sum or the signature is not the published one", m.SigPath, line, m.CertPath)
	}
	if m.TrustAnchor != "" {
		if err := verifyChain(cert, m.TrustAnchor); err != nil {
			return MediaResult{}, fmt.Errorf("%s: %w", m.CertPath, err)
		}
		res.Origin = "trust-anchor"
	}
	if m.PinSHA256 != "" {
		fp := sha256.Sum256(cert.Raw)
		if hex.EncodeToString(fp[:]) != strings.ToLower(m.PinSHA256) {
			return MediaResult{}, fmt.Errorf("%s: certificate fingerprint %x is not the pinned %s", m.CertPath, fp, m.PinSHA256)
		}
		res.Origin = "pinned"
	}
	return res, nil
}

// verifyChain proves the certificate was issued for code signing by one of
// the trust anchors in the PEM file.
func verifyChain(cert *x509.Certificate, anchorFile string) error {
	b, err := os.ReadFile(anchorFile)
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
	b, err := os.ReadFile(path)
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
	res, err := MediaCheck{ISO: s.h.Profile.Path(sc.Spec.Params["iso"]), SHA256: sc.Spec.Params["sha256"], Size: size,
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
