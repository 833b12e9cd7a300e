// Package simhost sets up the bundled simulated hosts for tests and the
// demo: a copy of a host tree with the simulated vendor tools (bin/), its
// site profile, and media signed with a key and certificate made on the spot.
//
// Hosts: pom (POM 3.1.1 on EP 7.2), pombare (EP 7.2, no POM yet), pc41 and pc411 (Proactive Contact 4.1
// and 4.1.1), pcbare (bare metal for a fresh install), dl385 (an HP
// ProLiant DL385 G5 running PC 4.1, migration source) and x3650 (an IBM
// System x3650 M2, migration target).
package simhost

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// ISOName is the simulated SP1 ISO's file name.
const ISOName = "POM.03.01.01.01.00.003-r35434-x86_64.iso"

// Sim is one set-up simulated host.
type Sim struct {
	Dir     string // holds profile.yaml and root/
	Root    string // the host's filesystem root
	Profile string // path of the site profile
	ISO     string // path of the ISO
}

// Source is the directory of the simulated host in the repository.
func Source() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Hosts lists the simulated hosts.
var Hosts = []string{"pom", "pombare", "pc41", "pc411", "pcbare", "dl385", "x3650"}

// derived hosts are built from another host's tree: pombare is the POM host
// before POM was installed, with no POM database yet (its own tree adds
// only the help library zip).
var derived = map[string]struct {
	base   string
	remove []string
}{
	"pombare": {base: "pom", remove: []string{"opt/Avaya/avpom", "var/lib/sim/pomdb"}},
}

// Setup copies the simulated POM 3.1.1 host into dir and signs its media.
func Setup(dir string) (Sim, error) { return SetupHost("pom", dir) }

// SetupHost copies the named simulated host into dir with the simulated
// vendor tools, and signs its media if it has an ISO.
func SetupHost(name, dir string) (Sim, error) {
	src := filepath.Join(Source(), name)
	s := Sim{Dir: dir, Root: filepath.Join(dir, "root"), Profile: filepath.Join(dir, "profile.yaml")}
	s.ISO = filepath.Join(s.Root, "media", ISOName)
	// A derived host is its base's tree, less some parts, plus its own.
	if d, ok := derived[name]; ok {
		if err := copyTree(filepath.Join(Source(), d.base, "root"), s.Root); err != nil {
			return s, fmt.Errorf("simulated host %q: %w", name, err)
		}
		for _, rel := range d.remove {
			if err := os.RemoveAll(filepath.Join(s.Root, rel)); err != nil {
				return s, err
			}
		}
	}
	if err := copyTree(filepath.Join(src, "root"), s.Root); err != nil {
		return s, fmt.Errorf("simulated host %q: %w", name, err)
	}
	if err := copyTree(filepath.Join(Source(), "bin"), filepath.Join(s.Root, "sim/bin")); err != nil {
		return s, err
	}
	if err := copyFile(filepath.Join(src, "profile.yaml"), s.Profile, 0o644); err != nil {
		return s, err
	}
	if pgpass := filepath.Join(s.Root, "etc/upgrader/pgpass"); exists(pgpass) {
		if err := os.Chmod(pgpass, 0o600); err != nil {
			return s, err
		}
	}
	// git keeps no empty directories: make the ones the simulator writes to.
	for _, d := range []string{"sim/control", "var/log"} {
		if err := os.MkdirAll(filepath.Join(s.Root, d), 0o755); err != nil {
			return s, err
		}
	}
	if !exists(s.ISO) {
		s.ISO = ""
		return s, nil
	}
	return s, SignMedia(s.ISO)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// SignMedia writes ISO.sha256.crt and ISO.sha256.sig the way the vendor
// does: an RSA-2048 signature (PKCS#1 v1.5, SHA-256) over the line
// "<sha256>  <iso name>\n", with a fresh test-only key.
func SignMedia(iso string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "Simulated File Signing Authority (test only)"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(iso+".sha256.crt", certFile(der), 0o644); err != nil {
		return err
	}
	sum, err := fileSHA256(iso)
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(fmt.Sprintf("%s  %s\n", sum, filepath.Base(iso))))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return err
	}
	return os.WriteFile(iso+".sha256.sig", sig, 0o644)
}

// CertSize is the size of the certificate the release notes' file list
// ships next to the ISO.
const CertSize = 5459

// certFile is the certificate as PEM after a text part, as "openssl x509
// -text" writes one, filled out to the file list's size: PEM readers (Go's
// and openssl's) skip what comes before the block.
func certFile(der []byte) []byte {
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	head := "Certificate:\n    Simulated File Signing Authority (test only), text part filled out to the file list's size\n"
	fill := CertSize - len(head) - len(block)
	if fill < 1 {
		return append([]byte(head), block...)
	}
	pad := strings.Repeat(strings.Repeat(".", 63)+"\n", fill/64) + strings.Repeat(".", fill%64)
	if fill%64 > 0 {
		pad = pad[:len(pad)-1] + "\n"
	}
	return append([]byte(head+pad), block...)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return copyFile(path, target, info.Mode().Perm())
	})
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
