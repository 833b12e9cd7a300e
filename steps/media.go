package steps

import (
	"context"
	"crypto/ecdsa"
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

// Origins of a signing certificate.
const (
	OriginPinned      = "pinned"
	OriginTrustAnchor = "trust-anchor"
	OriginUnproven    = "unproven"
)

// MediaCheck verifies an ISO the way the release notes do with sha256sum
// and openssl, and those two checks alone decide: the hash equals the
// published sum and the signature over "<sum>  <name>" verifies with the
// public key of the certificate shipped next to the ISO. The vendor's
// openssl commands read only that key, so the certificate's dates and key
// usages are reported by upgrader, never fatal unless the site asks for it
// (RequireValidCertificate). Its origin (a pinned fingerprint or a trust
// anchor the site configured) is upgrader's own check too: "unproven"
// when neither is configured.
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
	PinSHA256 string
	// TrustAnchor is a PEM file of CA certificates the signing certificate
	// must chain to, optional.
	TrustAnchor string
	// RequireValidCertificate is upgrader's own rule, stricter than the
	// vendor's check, that a site opts into (media.require_valid_certificate):
	// the certificate must be valid today and issued for code signing,
	// pinned or not. Without it, both are warnings.
	RequireValidCertificate bool
	Now                     time.Time // default time.Now()
	Progress                orchestrator.Progress
}

// MediaFinding is one named check of a media verification.
type MediaFinding struct {
	Check string `json:"check"` // size, sha256, certificate, signature, validity, code-signing, origin
	OK    bool   `json:"ok"`
	// Warning marks a check that passes but should be read (origin
	// unproven, certificate expired).
	Warning bool `json:"warning,omitempty"`
	// Source says whose check it is: the release notes' (vendor) or
	// upgrader's own.
	Source orchestrator.Source `json:"source"`
	Detail string              `json:"detail"`
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
	if err := FirstFailure(findings); err != nil {
		return MediaResult{}, err
	}
	return res, nil
}

// FirstFailure is the first failed finding as an error, nil when all pass.
func FirstFailure(findings []MediaFinding) error {
	for _, f := range findings {
		if !f.OK {
			return errors.New(f.Detail)
		}
	}
	return nil
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
	add := func(src orchestrator.Source, check string, ok bool, format string, a ...any) *MediaFinding {
		out = append(out, MediaFinding{Check: check, OK: ok, Source: src, Detail: fmt.Sprintf(format, a...)})
		return &out[len(out)-1]
	}
	vendor := func(check string, ok bool, format string, a ...any) {
		add(orchestrator.SourceVendor, check, ok, format, a...)
	}
	ours := func(check string, ok bool, format string, a ...any) *MediaFinding {
		return add(orchestrator.SourceUpgrader, check, ok, format, a...)
	}
	want := strings.ToLower(strings.TrimSpace(m.SHA256))
	if want == "" && m.RequireSum {
		vendor("sha256", false, "no published SHA-256 to check against: copy it from the support site into media.sha256")
		return MediaResult{}, out
	}
	st, err := securefs.CheckRegular(m.ISO)
	if err != nil {
		ours("size", false, "ISO: %v", err)
		return MediaResult{}, out
	}
	if m.Size > 0 && st.Size() != m.Size {
		ours("size", false, "%s is %d bytes, expected %d: incomplete copy or wrong file (should the published SHA-256 match, the expected size is what is wrong: media.size, --size)",
			m.ISO, st.Size(), m.Size)
	} else if m.Size > 0 {
		ours("size", true, "%d bytes, as the file list says", st.Size())
	}
	art, err := artifactOf(m.ISO, m.Progress)
	if err != nil {
		vendor("sha256", false, "%s: %v", m.ISO, err)
		return MediaResult{}, out
	}
	signedSum := want
	switch {
	case want == "":
		signedSum = art.SHA256
		vendor("sha256", true, "%s (no published sum given: the signature is checked against this computed hash)", art.SHA256)
	case art.SHA256 != want:
		vendor("sha256", false, "%s: sha256 %s does not match the published %s: the file is corrupt or not this release", m.ISO, art.SHA256, want)
	default:
		vendor("sha256", true, "%s matches the published sum", art.SHA256)
	}
	res := MediaResult{Artifact: art, Origin: OriginUnproven}
	cert, err := readCertificate(m.CertPath)
	if err != nil {
		vendor("certificate", false, "%v", err)
		return res, out
	}
	vendor("certificate", true, "%s: %s public key, as `openssl x509 -pubkey` reads it", filepath.Base(m.CertPath), keyName(cert))
	res.SignedForm, err = verifySumLine(cert, m.CertPath, m.SigPath, signedSum+"  "+filepath.Base(m.ISO))
	switch {
	case err != nil:
		vendor("signature", false, "%v", err)
	default:
		vendor("signature", true, "%s verifies \"<sum>  <name>\" (%s), as `openssl dgst -sha256 -verify` does", filepath.Base(m.SigPath), res.SignedForm)
	}

	// Upgrader's own checks: where the certificate comes from, then what
	// it says of itself.
	origin := m.origin(cert, &res)
	m.certificateDates(cert, res.Origin, ours)
	m.codeSigning(cert, res.Origin, ours)
	return res, append(out, origin...)
}

// origin checks the pin and the trust anchor. Its findings are returned
// apart so they are listed last, after what they vouch for.
func (m MediaCheck) origin(cert *x509.Certificate, res *MediaResult) []MediaFinding {
	var origin []MediaFinding
	add := func(ok bool, format string, a ...any) *MediaFinding {
		origin = append(origin, MediaFinding{Check: "origin", OK: ok, Source: orchestrator.SourceUpgrader, Detail: fmt.Sprintf(format, a...)})
		return &origin[len(origin)-1]
	}
	if m.PinSHA256 != "" {
		fp := sha256.Sum256(cert.Raw)
		if hex.EncodeToString(fp[:]) == strings.ToLower(m.PinSHA256) {
			add(true, "certificate fingerprint matches the pinned %s", m.PinSHA256)
			res.Origin = OriginPinned
		} else {
			add(false, "%s: certificate fingerprint %x is not the pinned %s", m.CertPath, fp, m.PinSHA256)
		}
	}
	if m.TrustAnchor != "" {
		if detail, err := verifyChain(cert, m.TrustAnchor, m.Now, m.RequireValidCertificate); err != nil {
			add(false, "%s: %v", m.CertPath, err)
		} else {
			add(true, "certificate chains to the trust anchor %s%s", m.TrustAnchor, detail)
			if res.Origin == OriginUnproven {
				res.Origin = OriginTrustAnchor
			}
		}
	}
	if m.PinSHA256 == "" && m.TrustAnchor == "" {
		add(true, "UNPROVEN: the certificate ships with the ISO, so it proves integrity, not origin; configure media.pin_sha256 or media.trust_anchor").Warning = true
	}
	return origin
}

// accepted says on what ground a certificate upgrader would question is
// taken: the vendor's check ignores what is wrong with it.
func accepted(origin, what string) string {
	ground := map[string]string{OriginPinned: "accepted by the pin", OriginTrustAnchor: "accepted by the trust anchor"}[origin]
	if ground == "" {
		ground = "accepted"
	}
	return fmt.Sprintf("%s: the vendor's check ignores the certificate's %s (upgrader's own require_valid_certificate rule, off here, would refuse it)", ground, what)
}

// refused says why upgrader's own stricter rule refuses the certificate.
const refusedByRule = "refused by require_valid_certificate, upgrader's own rule, stricter than the vendor's check (which ignores the certificate's dates and usages)"

func (m MediaCheck) certificateDates(cert *x509.Certificate, origin string, add func(string, bool, string, ...any) *MediaFinding) {
	span := fmt.Sprintf("valid %s to %s", day(cert.NotBefore), day(cert.NotAfter))
	var problem string
	switch {
	case m.Now.After(cert.NotAfter):
		problem = fmt.Sprintf("%s expired on %s (%s)", filepath.Base(m.CertPath), day(cert.NotAfter), span)
	case m.Now.Before(cert.NotBefore):
		problem = fmt.Sprintf("%s is not valid before %s (%s): check the host's clock", filepath.Base(m.CertPath), day(cert.NotBefore), span)
	default:
		add("validity", true, "%s", span)
		return
	}
	if m.RequireValidCertificate {
		add("validity", false, "%s; %s: ask the vendor for current media, or drop that rule (media.require_valid_certificate in the profile)", problem, refusedByRule)
		return
	}
	add("validity", true, "%s; %s", problem, accepted(origin, "dates")).Warning = true
}

func (m MediaCheck) codeSigning(cert *x509.Certificate, origin string, add func(string, bool, string, ...any) *MediaFinding) {
	if slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageCodeSigning) &&
		(cert.KeyUsage == 0 || cert.KeyUsage&x509.KeyUsageDigitalSignature != 0) {
		add("code-signing", true, "issued for code signing")
		return
	}
	problem := fmt.Sprintf("%s is not issued for code signing (key usage digitalSignature and extended key usage codeSigning)", filepath.Base(m.CertPath))
	if m.RequireValidCertificate {
		add("code-signing", false, "%s; %s", problem, refusedByRule)
		return
	}
	add("code-signing", true, "%s; %s", problem, accepted(origin, "key usages")).Warning = true
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02") }

// keyName names a certificate's public key: "RSA-2048", "ECDSA P-256".
func keyName(cert *x509.Certificate) string {
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	}
	return cert.PublicKeyAlgorithm.String()
}

// verifySumLine checks the signature over the .sha256 line the way
// `openssl dgst -sha256 -verify pubkey.pem` does with the certificate's
// key: PKCS#1 v1.5 for RSA, ASN.1 ECDSA for EC keys. The document does not
// say whether the file ends with a newline, so both forms are tried; the
// one that verifies is returned.
func verifySumLine(cert *x509.Certificate, certPath, sigPath, line string) (string, error) {
	var algo x509.SignatureAlgorithm
	switch cert.PublicKey.(type) {
	case *rsa.PublicKey:
		algo = x509.SHA256WithRSA
	case *ecdsa.PublicKey:
		algo = x509.ECDSAWithSHA256
	default:
		return "", fmt.Errorf("%s: the certificate's key is %s: upgrader verifies RSA and ECDSA signatures", certPath, cert.PublicKeyAlgorithm)
	}
	sig, err := securefs.ReadRegular(sigPath, maxSigSize)
	if err != nil {
		return "", fmt.Errorf("signature: %w", err)
	}
	for _, form := range []struct{ name, data string }{{"with-newline", line + "\n"}, {"no-newline", line}} {
		if cert.CheckSignature(algo, []byte(form.data), sig) == nil {
			return form.name, nil
		}
	}
	return "", fmt.Errorf("%s does not verify the line %q with the key of %s: the sum or the signature is not the published one", sigPath, line, certPath)
}

// verifyChain proves the certificate was issued by one of the trust
// anchors in the PEM file. Strict, the chain must be valid now and for
// code signing. Otherwise, like the vendor's check, neither the dates nor
// the usages decide: a chain valid when the certificate was issued (an
// expired 2018 certificate and its CA) proves the origin all the same, and
// the detail says so.
func verifyChain(cert *x509.Certificate, anchorFile string, now time.Time, strict bool) (string, error) {
	b, err := securefs.ReadRegular(anchorFile, maxCertSize)
	if err != nil {
		return "", fmt.Errorf("trust anchor: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		return "", fmt.Errorf("trust anchor %s holds no PEM certificate", anchorFile)
	}
	opts := x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	if !strict {
		opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	}
	_, err = cert.Verify(opts)
	if err == nil {
		return "", nil
	}
	if !strict {
		opts.CurrentTime = cert.NotBefore
		if _, err2 := cert.Verify(opts); err2 == nil {
			return fmt.Sprintf(" as it stood when the certificate was issued (%s); not today: %v", day(cert.NotBefore), err), nil
		}
	}
	return "", fmt.Errorf("certificate does not chain to the trust anchor %s: %w", anchorFile, err)
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
	media := s.h.Profile.Media
	res, findings := MediaCheck{ISO: s.h.Profile.Path(sc.Spec.Params["iso"]), SHA256: sc.Spec.Params["sha256"], RequireSum: true, Size: size,
		PinSHA256: media.PinSHA256, TrustAnchor: s.h.Profile.Path(media.TrustAnchor),
		RequireValidCertificate: media.RequireValidCertificate, Progress: sc.Progress}.Checks()
	if err := FirstFailure(findings); err != nil {
		return orchestrator.Outputs{}, err
	}
	values := map[string]string{"origin": res.Origin, "signed_form": res.SignedForm}
	for _, f := range findings {
		if f.Warning {
			sc.Log.Warn().Str("check", f.Check).Str("source", string(f.Source)).Msg(f.Detail)
			values["warning_"+f.Check] = f.Detail
		}
	}
	res.Artifact.Path = s.h.Profile.Unroot(res.Artifact.Path)
	return orchestrator.Outputs{
		Artifacts: map[string]orchestrator.Artifact{"media": res.Artifact},
		Values:    values,
	}, nil
}
