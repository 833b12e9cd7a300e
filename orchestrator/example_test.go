package orchestrator_test

import (
	"fmt"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
)

// Example plans the POM 3.1.1 SP1 upgrade for a POM 3.1.1 host on
// Experience Portal 7.2.0 with two MPPs. BuildPlan is pure: the facts would
// come from steps.GatherFacts and --assume, the profile from the site's
// YAML file. The engine runs exactly these steps, in this order.
func Example() {
	prof := profile.Profile{
		Site: "acme-pom-01",
		Root: "/",
		POM:  profile.POM{Services: []string{"vpms"}},
		MPPs: []profile.MPP{
			{Name: "mpp1", Config: "/opt/Avaya/ExperiencePortal/mpp1/config/mppconfig.xml"},
			{Name: "mpp2", Config: "/opt/Avaya/ExperiencePortal/mpp2/config/mppconfig.xml"},
		},
		Media: profile.Media{
			Dir:    "/media",
			ISO:    "POM.03.01.01.01.00.003-r35434-x86_64.iso",
			SHA256: "4bba4c54aa533f7129361ec262c4343949dc3c8d240d17d217edefc910131193",
		},
		DB: profile.DB{Name: "pom", BackupDir: "/var/backups/upgrader"},
	}
	facts := orchestrator.Facts{
		orchestrator.FactPOMVersion:  {Value: "3.1.1", Source: "version.properties"},
		orchestrator.FactEPVersion:   {Value: "7.2.0.0.0318", Source: "profile"},
		orchestrator.FactEPMPPPatch:  {Value: "7.2.0.0.1202", Source: "profile"},
		orchestrator.FactMediaSize:   {Value: "288784384", Source: "/media"},
		orchestrator.FactMediaSigned: {Value: "true", Source: "/media"},
	}
	plan, err := orchestrator.BuildPlan(orchestrator.PlanInput{
		Procedure: "pom-3.1.1-sp1-upgrade", Facts: facts, Profile: prof,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s → %s, %d blockers\n", plan.From, plan.To, len(plan.Blockers))
	for i, s := range plan.Steps {
		fmt.Printf("%d. %s (skip: %s)\n", i+1, s.ID, s.Skip)
	}
	fmt.Println("point of no return:", plan.PointOfNoReturn)
	fmt.Printf("outage: %s … %s\n", plan.Outage.From, plan.Outage.To)
	// Output:
	// 3.1.1 → POM.03.01.01.01.00.003, 0 blockers
	// 1. verify-media (skip: never)
	// 2. backup-db (skip: never)
	// 3. mpp-config-mpp1 (skip: with-reason)
	// 4. mpp-config-mpp2 (skip: with-reason)
	// 5. stop-services (skip: never)
	// 6. upgrade-pom (skip: never)
	// 7. start-services (skip: never)
	// 8. enable-dnc-import (skip: with-reason)
	// point of no return: upgrade-pom
	// outage: stop-services … start-services
}
