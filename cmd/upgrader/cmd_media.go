package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"upgrader/orchestrator"
	"upgrader/steps"
)

func newVerifyMediaCmd(a *app) *cobra.Command {
	var m steps.MediaCheck
	cmd := &cobra.Command{
		Use:   "verify-media ISO",
		Short: "Verify downloaded media: size, SHA-256, signature, certificate, origin",
		Long: `verify-media checks an ISO the way the release notes do with sha256sum and
openssl, natively, and those checks decide: its SHA-256 against the
published sum, and the signature (ISO.sha256.sig) over "<sum>  <iso name>"
with the public key of the certificate shipped next to it (ISO.sha256.crt).
Each check is marked [vendor].

It also reports checks of its own, marked [upgrader]: the size from the file
list, whether the certificate is valid today and issued for code signing,
and where its trust comes from (a pinned fingerprint, a trust anchor, or
nothing: then the origin is unproven). The vendor's openssl commands ignore
the certificate's dates and usages, and the SP1 certificate of 2018 has long
expired: so these are warnings, and fatal only with
--require-valid-certificate (media.require_valid_certificate in the profile),
upgrader's own stricter rule. A pin or trust anchor that does not match
fails.

Every check is named; the exit code is 0 only when all pass, 4 when one
fails, 2 on bad arguments. -o json gives each check's source (vendor or
upgrader).`,
		Example: `  upgrader verify-media POM.03.01.01.01.00.003-r35434-x86_64.iso --sha256 7c76d3b8…
  upgrader verify-media media.iso --cert media.crt --sig media.sig --size 288784384 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m.ISO = args[0]
			if err := m.CheckFiles(); err != nil {
				return usagef("%v", err)
			}
			out := a.humanOut(cmd)
			printer := &noticePrinter{w: out, tty: isTerminal(out)}
			m.Progress = func(label string, done, total int64) {
				printer.notify(orchestrator.Notice{Kind: "progress", Step: "verify-media", Text: label, Done: done, Of: total})
			}
			res, findings := m.Checks()
			printer.endBar()
			ok := true
			for _, f := range findings {
				ok = ok && f.OK
			}
			if a.output == "json" {
				if err := writeJSON(cmd.OutOrStdout(), map[string]any{"iso": m.ISO, "ok": ok, "sha256": res.Artifact.SHA256,
					"origin": res.Origin, "checks": findings}); err != nil {
					return err
				}
			} else {
				for _, f := range findings {
					mark := "ok  "
					switch {
					case !f.OK:
						mark = "FAIL"
					case f.Warning:
						mark = "WARN"
					}
					fmt.Fprintf(out, "%s %-13s %-10s %s\n", mark, f.Check, "["+string(f.Source)+"]", f.Detail)
				}
				if ok {
					fmt.Fprintf(out, "\n%s verifies (origin: %s).\n", m.ISO, res.Origin)
				} else {
					fmt.Fprintf(out, "\n%s does NOT verify: do not install from it.\n", m.ISO)
				}
			}
			if !ok {
				return withCode(exitFailed, errSilent)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&m.SHA256, "sha256", "", "the published SHA-256 (without it, the signature is checked against the computed hash)")
	f.StringVar(&m.CertPath, "cert", "", "signing certificate (default ISO.sha256.crt)")
	f.StringVar(&m.SigPath, "sig", "", "signature over the .sha256 line (default ISO.sha256.sig)")
	f.Int64Var(&m.Size, "size", 0, "expected size in bytes (from the file list)")
	f.StringVar(&m.PinSHA256, "pin", "", "expected SHA-256 fingerprint of the certificate")
	f.StringVar(&m.TrustAnchor, "trust-anchor", "", "PEM file of CA certificates the certificate must chain to")
	f.BoolVar(&m.RequireValidCertificate, "require-valid-certificate", false,
		"upgrader's own stricter rule: fail when the certificate is expired or not issued for code signing (the vendor's check ignores both)")
	return cmd
}
