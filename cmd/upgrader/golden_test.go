package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
	"upgrader/testdata/simhost"
)

// go test ./cmd/upgrader -run TestGolden -update rewrites testdata/golden.
var update = flag.Bool("update", false, "rewrite testdata/golden/*.txt and *.json from the current output")

var goldenDir = filepath.Join("..", "..", "testdata", "golden")

// goldenCase is one plan of the matrix: a simulated host's site profile,
// the host's facts as fixed below, what the engineer assumes and asks for.
type goldenCase struct {
	name      string
	host      string            // testdata/simhost/<host>/profile.yaml
	procedure string            // "" = the profile's
	assume    []string          // --assume key=value
	without   []string          // facts this host does not have
	with      []string          // --with
	override  map[string]string // --override ID=REASON
	profile   func(*profile.Profile)
}

const (
	gib      = "1073741824"
	plenty   = "53687091200" // 50 GiB free
	pomISO   = "/media/POM.03.01.01.01.00.003-r35434-x86_64.iso"
	dmiModel = "/sys/class/dmi/id/product_name"
	// bareHelpZipSize is the size of testdata/simhost/pombare/root/media/UsingPOM.zip.
	bareHelpZipSize = 541
)

// goldenFacts are the facts of each simulated host as steps.GatherFacts
// would read them, fixed here so the golden files are the same on every
// machine: host.name is "golden-host", free space is 50 GiB.
func goldenFacts(host string, prof profile.Profile) orchestrator.Facts {
	f := orchestrator.Facts{
		orchestrator.FactHostName:    {Value: "golden-host", Source: "hostname"},
		orchestrator.FactFreeBackup:  {Value: plenty, Source: "statfs /var/backups/upgrader", Volatile: true},
		orchestrator.FactFreeInstall: {Value: plenty, Source: "statfs /opt", Volatile: true},
	}
	pom := func(version string) {
		f[orchestrator.FactHostModel] = orchestrator.Fact{Value: "ProLiant DL380 Gen9", Source: dmiModel}
		if version != "" {
			f[orchestrator.FactPOMVersion] = orchestrator.Fact{Value: version, Source: "pom.version"}
		}
		// As steps.GatherFacts reads them: from the profile, and the ISO
		// present at the profile's size, signature files next to it.
		if prof.EP.Version != "" {
			f[orchestrator.FactEPVersion] = orchestrator.Fact{Value: prof.EP.Version, Source: "profile ep.version"}
		}
		if prof.EP.MPPPatch != "" {
			f[orchestrator.FactEPMPPPatch] = orchestrator.Fact{Value: prof.EP.MPPPatch, Source: "profile ep.mpp_patch"}
		}
		f[orchestrator.FactMediaSize] = orchestrator.Fact{Value: strconv.FormatInt(prof.Media.Size, 10), Source: pomISO}
		f[orchestrator.FactMediaSigned] = orchestrator.Fact{Value: "true", Source: pomISO + ".sha256.{crt,sig}"}
		f[orchestrator.FactMediaCrtSize] = orchestrator.Fact{Value: strconv.Itoa(simhost.CertSize), Source: pomISO + ".sha256.crt"}
		f[orchestrator.FactMediaSigSize] = orchestrator.Fact{Value: "256", Source: pomISO + ".sha256.sig"}
		for _, name := range orchestrator.POMMediaFiles() {
			f[orchestrator.MediaFileFact(name)] = orchestrator.Fact{Value: "-1", Source: "/media/" + name}
		}
		// The POM host has its database; the bare one has none yet, and
		// the help library's zip.
		exists := "true"
		if version == "" {
			exists = "false"
			f[orchestrator.MediaFileFact("UsingPOM.zip")] = orchestrator.Fact{Value: strconv.FormatInt(bareHelpZipSize, 10), Source: "/media/UsingPOM.zip"}
		}
		f[orchestrator.FactDBExists] = orchestrator.Fact{Value: exists, Source: "psql localhost:5432/pom", Volatile: true}
		// Each MPP as steps.GatherFacts reads it: reached (here, or over
		// SSH), its file as the simulated host ships it.
		for _, m := range prof.MPPs {
			where := "this server"
			if !m.OnThisServer("golden-host") {
				host, port, user := prof.SSHTarget(m)
				where = user + "@" + host + ":" + strconv.Itoa(port)
			}
			f[orchestrator.MPPFact(m.Name, orchestrator.MPPReachable)] = orchestrator.Fact{Value: "true", Source: where}
			f[orchestrator.MPPFact(m.Name, orchestrator.MPPFactRuntimeSize)] = orchestrator.Fact{Value: "16777216", Source: where + " " + m.Config, Volatile: true}
			f[orchestrator.MPPFact(m.Name, orchestrator.MPPFactContextSize)] = orchestrator.Fact{Value: "", Source: where + " " + m.Config, Volatile: true}
		}
	}
	pc := func(model, version, components string) {
		f[orchestrator.FactHostModel] = orchestrator.Fact{Value: model, Source: dmiModel}
		if version != "" {
			f[orchestrator.FactPCVersion] = orchestrator.Fact{Value: version, Source: "pc.products.dialer"}
		}
		f[orchestrator.FactComponents] = orchestrator.Fact{Value: components, Source: "pc.products.{supervisor,agent,agent-api}"}
		f[orchestrator.FactPCDataSize] = orchestrator.Fact{Value: gib, Source: "/opt/avaya/pds/data", Volatile: true}
	}
	switch host {
	case "pom":
		pom("POM.03.01.01.00.00.039")
	case "pombare":
		pom("")
	case "pc41":
		pc("System x3650 M2", "4.1", "supervisor,agent")
	case "pc411":
		pc("System x3650 M2", "4.1.1", "agent-api")
	case "pcbare", "x3650":
		pc("System x3650 M2", "", "")
	case "dl385":
		pc("ProLiant DL385 G5", "4.1", "supervisor,agent,agent-api")
	default:
		panic("no golden facts for host " + host)
	}
	return f
}

var goldenCases = []goldenCase{
	// pc-4.1.2-upgrade: only from 4.1 or 4.1.1.
	{name: "pc-upgrade-from-4.0-blocked", host: "pc41", assume: []string{"pc.version=4.0"}},
	{name: "pc-upgrade-from-4.1", host: "pc41"},
	{name: "pc-upgrade-from-4.1.1", host: "pc411"},
	{name: "pc-upgrade-from-4.1.2-nothing-to-do", host: "pc41", assume: []string{"pc.version=4.1.2"}},
	{name: "pc-upgrade-from-5.0-blocked", host: "pc41", assume: []string{"pc.version=5.0"}},
	{name: "pc-upgrade-version-unknown-blocked", host: "pc41", without: []string{"pc.version"}},
	{name: "pc-upgrade-4.1-no-components", host: "pc41", assume: []string{"components="}},
	{name: "pc-upgrade-4.1-all-components", host: "pc41", assume: []string{"components=supervisor,agent,agent-api"}},
	{name: "pc-upgrade-4.1.1-with-supervisor", host: "pc411", with: []string{"supervisor"}},
	{name: "pc-upgrade-with-unknown-component-blocked", host: "pc41", with: []string{"pdc"}},
	{name: "pc-upgrade-install-space-blocked", host: "pc41", assume: []string{"disk.free.install=1048576"}},
	{name: "pc-upgrade-from-4.1.0.5-read-as-4.1", host: "pc41", assume: []string{"pc.version=4.1.0.5"}},
	{name: "pc-upgrade-from-4.1.2.1-nothing-to-do", host: "pc41", assume: []string{"pc.version=4.1.2.1"}},

	// pc-4.1.2-install: a bare server.
	{name: "pc-install-bare", host: "pcbare"},
	{name: "pc-install-with-supervisor", host: "pcbare", with: []string{"supervisor"}},
	{name: "pc-install-with-all-components", host: "pcbare", with: []string{"supervisor", "agent", "agent-api"}},
	{name: "pc-install-over-4.1-blocked", host: "pcbare", assume: []string{"pc.version=4.1"}},

	// pc-4.1.2-migrate: from an HP DL385 G2 or G5 to an IBM x3650 M2.
	{name: "pc-migrate-dl385-g5-from-4.1", host: "dl385"},
	{name: "pc-migrate-dl385-g2-from-4.1.1", host: "dl385", assume: []string{"host.model=ProLiant DL385 G2", "pc.version=4.1.1"}},
	{name: "pc-migrate-dl385-g5-no-components", host: "dl385", assume: []string{"components="}},
	{name: "pc-migrate-dl385-g5-with-agent", host: "dl385", assume: []string{"components=supervisor"}, with: []string{"agent"}},
	{name: "pc-migrate-from-4.0-blocked", host: "dl385", assume: []string{"pc.version=4.0"}},
	{name: "pc-migrate-from-4.1.2-blocked", host: "dl385", assume: []string{"pc.version=4.1.2"}},
	{name: "pc-migrate-from-5.0-blocked", host: "dl385", assume: []string{"pc.version=5.0"}},
	{name: "pc-migrate-from-4.1.2-overridden", host: "dl385", assume: []string{"pc.version=4.1.2"},
		override: map[string]string{"pc-migration-from-4.1.2": "moving a 4.1.2 system to new hardware"}},
	{name: "pc-migrate-dl385-g5p-blocked", host: "dl385", assume: []string{"host.model=ProLiant DL385 G5p"}},
	{name: "pc-migrate-backup-space-blocked", host: "dl385", assume: []string{"disk.free.backup=1048576"}},
	{name: "pc-migrate-on-x3650-blocked", host: "x3650"},
	{name: "pc-migrate-on-x3650-overridden", host: "x3650", assume: []string{"pc.version=4.1"},
		override: map[string]string{"migrate-source-model": "planning the migration from the new server"}},
	{name: "pc-migrate-poweredge-r640-blocked", host: "dl385", assume: []string{"host.model=PowerEdge R640"}},
	{name: "pc-migrate-poweredge-r640-overridden", host: "dl385", assume: []string{"host.model=PowerEdge R640"},
		override: map[string]string{"migrate-source-model": "DL385 G5 rebadged by the customer"}},
	{name: "pc-migrate-override-unused-blocked", host: "dl385",
		override: map[string]string{"migrate-source-model": "not needed on a DL385"}},
	{name: "pc-migrate-override-safety-rule-blocked", host: "dl385", assume: []string{"pc.version=4.0"},
		override: map[string]string{"pc-migration-from-4.1-or-4.1.1-only": "customer insists"}},

	// pom-3.1.1-sp1-upgrade: only from 3.1.1; EP patches; media.
	{name: "pom-upgrade-from-3.1.0-blocked", host: "pom", assume: []string{"pom.version=3.1.0"}},
	{name: "pom-upgrade-from-3.1.1", host: "pom", assume: []string{"pom.version=3.1.1"}},
	{name: "pom-upgrade-from-3.1.1-build-039", host: "pom"},
	{name: "pom-upgrade-from-3.1.1-sp1-nothing-to-do", host: "pom", assume: []string{"pom.version=3.1.1 SP1"}},
	{name: "pom-upgrade-from-sp1-patch2-nothing-to-do", host: "pom", assume: []string{"pom.version=POM.03.01.01.01.02.003"}},
	{name: "pom-upgrade-from-3.1.2-nothing-to-do", host: "pom", assume: []string{"pom.version=3.1.2"}},
	{name: "pom-upgrade-version-unknown-blocked", host: "pom", without: []string{"pom.version"}},
	{name: "pom-upgrade-ep-7.1", host: "pom", assume: []string{"ep.version=7.1"}},
	{name: "pom-upgrade-ep-7.2-without-mpp-patch-blocked", host: "pom", without: []string{"ep.mpp_patch"}},
	{name: "pom-upgrade-ep-7.2-moving-to-7.2.1", host: "pom",
		profile: func(p *profile.Profile) { p.EP.MovingTo721 = true }},
	{name: "pom-upgrade-ep-7.2.1-with-mpp-patch", host: "pom", assume: []string{"ep.version=7.2.1", "ep.mpp_patch=7.2.1.0.0622"}},
	{name: "pom-upgrade-ep-7.2.1-without-mpp-patch-blocked", host: "pom", assume: []string{"ep.version=7.2.1"}},
	{name: "pom-upgrade-ep-unknown", host: "pom", without: []string{"ep.version", "ep.mpp_patch"}},
	{name: "pom-upgrade-media-absent-blocked", host: "pom", assume: []string{"media.iso.size=-1"}},
	{name: "pom-upgrade-media-wrong-size-blocked", host: "pom", assume: []string{"media.iso.size=1000"}},
	{name: "pom-upgrade-media-unsigned", host: "pom", assume: []string{"media.iso.signed=false"}},
	{name: "pom-upgrade-media-sum-missing-blocked", host: "pom",
		profile: func(p *profile.Profile) { p.Media.SHA256 = "" }},
	{name: "pom-upgrade-password-file-open-to-others", host: "pom", assume: []string{"db.password_file.mode=0644"}},
	{name: "pom-upgrade-backup-space-blocked", host: "pom", assume: []string{"db.size=10737418240", "disk.free.backup=" + gib}},
	{name: "pom-upgrade-five-mpps-long-names", host: "pom", profile: func(p *profile.Profile) {
		for _, n := range []string{"mpp3", "mpp-east-datacenter-rack-12-unit-7", "mpp-west"} {
			p.MPPs = append(p.MPPs, profile.MPP{Name: n, Host: n, Config: "/opt/Avaya/ExperiencePortal/" + n + "/config/mppconfig.xml"})
		}
	}},
	{name: "pom-upgrade-override-safety-rule-blocked", host: "pom", assume: []string{"pom.version=3.1.0"},
		override: map[string]string{"pom-upgrade-from-3.1.1-only": "customer insists"}},
	{name: "pom-upgrade-with-pdc-and-help-library", host: "pom", with: []string{"pdc", "help-library"},
		assume: []string{"media.file.UsingPOM.zip=541"}},
	{name: "pom-upgrade-with-unknown-option-blocked", host: "pom", with: []string{"bogus"}},
	{name: "pom-upgrade-help-library-zip-missing-blocked", host: "pom", with: []string{"help-library"}},
	{name: "pom-upgrade-no-mpps-listed-blocked", host: "pom", profile: func(p *profile.Profile) { p.MPPs = nil }},
	{name: "pom-upgrade-no-mpps-listed-overridden", host: "pom", profile: func(p *profile.Profile) { p.MPPs = nil },
		override: map[string]string{"mpp-none-listed": "sizes set by hand on both MPPs"}},
	{name: "pom-upgrade-mpp-on-another-server", host: "pom", profile: func(p *profile.Profile) { p.MPPs[1].Host = "mpp2.site.example" }},
	{name: "pom-upgrade-three-mpps-one-unreachable-blocked", host: "pom", profile: threeRemoteMPPs,
		assume: []string{"mpp.mpp3.reachable=false", "mpp.mpp3.error=ssh root@mpp3.site.example:22: dial tcp: connection refused"}},
	{name: "pom-upgrade-three-mpps-one-unreachable-overridden", host: "pom", profile: threeRemoteMPPs,
		assume:   []string{"mpp.mpp3.reachable=false", "mpp.mpp3.error=ssh root@mpp3.site.example:22: dial tcp: connection refused"},
		override: map[string]string{"mpp-unreachable-mpp3": "changed by hand by the EP team"}},
	{name: "pom-upgrade-mpp-patch-read-on-each-mpp", host: "pom", profile: versionedMPPs,
		assume: []string{"mpp.mpp1.patch=7.2.0.0.1202", "mpp.mpp2.patch=7.2.0.0.1100"}},
	{name: "pom-upgrade-with-mpp-restart", host: "pom", with: []string{"mpp-restart"}},
	{name: "pom-upgrade-ep-7.2.0-with-only-7.2.1-patch-blocked", host: "pom", assume: []string{"ep.mpp_patch=7.2.1.0.0622"}},
	{name: "pom-upgrade-ep-7.2.0-later-patch", host: "pom", assume: []string{"ep.mpp_patch=7.2.0.0.1300"}},
	{name: "pom-upgrade-ep-7.2.1-with-7.3-patch-blocked", host: "pom", assume: []string{"ep.version=7.2.1", "ep.mpp_patch=7.3.0.0.0100"}},
	{name: "pom-upgrade-ep-7.2.2-not-named", host: "pom", assume: []string{"ep.version=7.2.2", "ep.mpp_patch=7.2.1.0.0622"}},
	{name: "pom-upgrade-database-not-found-blocked", host: "pom", assume: []string{"db.exists=false"}},
	{name: "pom-upgrade-signature-files-of-other-sizes", host: "pom", assume: []string{"media.iso.crt.size=1318", "media.iso.sig.size=512"}},
	{name: "pom-upgrade-listed-file-short", host: "pom", assume: []string{"media.file.POMPDC_311.zip=1000000"}},

	// pom-3.1.1-sp1-install: a server with EP and no POM yet.
	{name: "pom-install-bare", host: "pombare"},
	{name: "pom-install-with-pdc-and-help-library", host: "pombare", with: []string{"pdc", "help-library"}},
	{name: "pom-install-ep-7.2.1", host: "pombare", assume: []string{"ep.version=7.2.1.0.0622", "ep.mpp_patch=7.2.1.0.0622"}},
	{name: "pom-install-media-absent-blocked", host: "pombare", assume: []string{"media.iso.size=-1"}},
	{name: "pom-install-over-3.1.1-blocked", host: "pombare", assume: []string{"pom.version=3.1.1"}},
	{name: "pom-install-with-unknown-option-blocked", host: "pombare", with: []string{"supervisor"}},
	{name: "pom-install-over-existing-database", host: "pombare", assume: []string{"db.exists=true", "db.size=104857600"}},
	{name: "pom-install-database-unknown", host: "pombare", assume: []string{"db.exists=unknown"}},
	{name: "pom-install-oracle-database-exists", host: "pombare", assume: []string{"db.exists=true"},
		profile: func(p *profile.Profile) { p.DB.Kind = "oracle" }},
}

// goldenPlan builds a case's plan in process, as 'upgrader plan' would,
// from the simulated host's profile and the fixed facts.
func goldenPlan(t *testing.T, c goldenCase) orchestrator.Plan {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "simhost", c.host, "profile.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profile.Decode(data, filepath.Dir(path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	prof.Root = "/" // paths must not depend on where the checkout is
	if c.profile != nil {
		c.profile(&prof)
	}
	facts := goldenFacts(c.host, prof)
	for _, k := range c.without {
		if _, ok := facts[k]; !ok {
			t.Fatalf("without %s: host %s has no such fact", k, c.host)
		}
		delete(facts, k)
	}
	assumed, err := orchestrator.ParseAssumptions(c.assume)
	if err != nil {
		t.Fatal(err)
	}
	proc := c.procedure
	if proc == "" {
		proc = prof.Procedure
	}
	plan, err := orchestrator.BuildPlan(orchestrator.PlanInput{Procedure: proc, Facts: facts.WithAssumptions(assumed),
		Profile: prof, Options: orchestrator.Options{With: c.with, Overrides: c.override}})
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// threeRemoteMPPs puts the profile's MPPs on their own servers, with a
// third one, reached over SSH as the ssh section says.
func threeRemoteMPPs(p *profile.Profile) {
	p.SSH = profile.SSH{KeyFile: "/etc/upgrader/id_ed25519", KnownHosts: "/etc/upgrader/known_hosts"}
	p.MPPs = append(p.MPPs, profile.MPP{Name: "mpp3", Config: p.MPPs[0].Config})
	for i := range p.MPPs {
		p.MPPs[i].Host = p.MPPs[i].Name + ".site.example"
	}
	p.MPPs[1].Port, p.MPPs[1].User = 2222, "avaya"
}

// versionedMPPs reads each MPP's patch level on the MPP.
func versionedMPPs(p *profile.Profile) {
	for i := range p.MPPs {
		p.MPPs[i].Version = profile.VersionSource{File: "/opt/Avaya/ExperiencePortal/MPP/config/mpp.version", Pattern: `Patch=(\S+)`}
	}
}

func TestGolden(t *testing.T) {
	if len(goldenCases) < 30 {
		t.Fatalf("%d golden cases, want at least 30", len(goldenCases))
	}
	names := map[string]bool{}
	covered := map[string]bool{}
	for _, c := range goldenCases {
		if names[c.name] {
			t.Fatalf("two golden cases named %s", c.name)
		}
		names[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			plan := goldenPlan(t, c)
			covered[plan.Procedure] = true
			var text, js bytes.Buffer
			printPlan(&text, plan)
			if err := writeJSON(&js, plan); err != nil {
				t.Fatal(err)
			}
			checkWidth(t, text.String())
			var back orchestrator.Plan
			if err := json.Unmarshal(js.Bytes(), &back); err != nil {
				t.Fatalf("plan JSON does not decode: %v", err)
			}
			if back.Fingerprint != plan.Fingerprint || orchestrator.Fingerprint(back) != plan.Fingerprint {
				t.Errorf("plan JSON decodes to fingerprint %s (recomputed %s), want %s",
					back.Fingerprint, orchestrator.Fingerprint(back), plan.Fingerprint)
			}
			compareGolden(t, c.name+".txt", text.Bytes())
			compareGolden(t, c.name+".json", js.Bytes())
		})
	}
	for _, p := range orchestrator.Procedures() {
		if !covered[p.ID] {
			t.Errorf("procedure %s has no golden case", p.ID)
		}
	}
	if *update {
		// Drop golden files no case writes any more.
		entries, _ := os.ReadDir(goldenDir)
		for _, e := range entries {
			base := e.Name()
			for _, ext := range []string{".mop.md", ".txt", ".json"} {
				base = strings.TrimSuffix(base, ext)
			}
			if !names[base] {
				os.Remove(filepath.Join(goldenDir, e.Name()))
			}
		}
	}
}

// checkWidth fails on a line longer than lineWidth runes.
func checkWidth(t *testing.T, text string) {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if n := runeLen(l); n > lineWidth {
			t.Errorf("line %d is %d columns, over %d:\n%s", i+1, n, lineWidth, l)
		}
	}
}

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/upgrader -run TestGolden -update writes it)", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(gl), len(wl)) {
		g, w := "", ""
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("%s differs from the golden file at line %d:\n got: %s\nwant: %s\n"+
				"(if the change is intended: go test ./cmd/upgrader -run TestGolden -update, then review git diff %s)",
				name, i+1, g, w, filepath.ToSlash(filepath.Join("testdata", "golden")))
		}
	}
}

// The fixed facts are those of the simulated hosts, so the matrix plans
// what the hosts would: a simulated tree that changes is caught here, not
// in a field engineer's plan.
func TestGoldenFactsMatchSimulatedHosts(t *testing.T) {
	// Hosts are read as set up (a derived host is built from its base).
	roots := map[string]string{}
	read := func(host, path string) string {
		if roots[host] == "" {
			sim, err := simhost.SetupHost(host, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			roots[host] = sim.Root
		}
		b, err := os.ReadFile(filepath.Join(roots[host], path))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	for _, host := range []string{"pom", "pombare", "pc41", "pc411", "pcbare", "dl385", "x3650"} {
		facts := goldenFacts(host, profile.Profile{})
		if got, want := facts[orchestrator.FactHostModel].Value, read(host, dmiModel); got != want {
			t.Errorf("%s: golden host.model %q, the simulated host says %q", host, got, want)
		}
		if v, ok := facts.Get(orchestrator.FactPOMVersion); ok != strings.Contains(read(host, "opt/Avaya/avpom/POManager/config/version.properties"), "POMVersion="+v) {
			t.Errorf("%s: golden pom.version %q (known %v) is not the simulated host's", host, v, ok)
		}
		if v, ok := facts.Get(orchestrator.FactPCVersion); ok != (read(host, "opt/avaya/pds/etc/dialer.version") == "VERSION="+v) {
			t.Errorf("%s: golden pc.version %q (known %v) is not the simulated host's", host, v, ok)
		}
		var installed []string
		for _, c := range orchestrator.PCComponents {
			if read(host, "opt/avaya/pds/etc/"+c+".version") != "" {
				installed = append(installed, c)
			}
		}
		if got, want := facts[orchestrator.FactComponents].Value, strings.Join(installed, ","); got != want {
			t.Errorf("%s: golden components %q, the simulated host has %q", host, got, want)
		}
		if v, ok := facts.Get(orchestrator.FactDBExists); ok && (v == "true") != (read(host, "var/lib/sim/pomdb/tables.sql") != "") {
			t.Errorf("%s: golden db.exists %q is not the simulated host's", host, v)
		}
		for _, name := range append(orchestrator.POMMediaFiles(), simhost.ISOName+".sha256.crt", simhost.ISOName+".sha256.sig") {
			key := orchestrator.MediaFileFact(name)
			switch name {
			case simhost.ISOName + ".sha256.crt":
				key = orchestrator.FactMediaCrtSize
			case simhost.ISOName + ".sha256.sig":
				key = orchestrator.FactMediaSigSize
			}
			v, ok := facts.Get(key)
			if !ok {
				continue
			}
			size := "-1"
			if st, err := os.Stat(filepath.Join(roots[host], "media", name)); err == nil {
				size = strconv.FormatInt(st.Size(), 10)
			}
			if v != size {
				t.Errorf("%s: golden %s = %s, the simulated host's file is %s bytes", host, key, v, size)
			}
		}
	}
	if !slices.ContainsFunc(goldenCases, func(c goldenCase) bool { return c.host == "pombare" }) {
		t.Error("no golden case plans the bare POM host")
	}
}
