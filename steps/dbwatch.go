package steps

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"upgrader/orchestrator"
)

// The database watched across the run: upgrader's own checks that the POM
// database answers and has connections to spare, at plan time (facts), and
// right before the backup and the point of no return (the engine's step
// Checks). Not POM's "DB alarm" (OUTREACH-9570), nor a fix of
// OUTREACH-11880 (POM 3.1.1 raises no alarm when connections run out).

var _ orchestrator.HealthChecker = (*Host)(nil)

// HeadroomWarnPercent is the share of connections in use from which
// upgrader warns (upgrader's own figure: a backup, the installer and POM
// itself each need connections of their own).
const HeadroomWarnPercent = 80

// connectionsQuery answers the connections client sessions may use
// (max_connections less those reserved for superusers) and the client
// sessions open now.
const connectionsQuery = "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int, " +
	"(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"

// Connections is what the database answered about its connections.
type Connections struct{ Available, Used int64 }

// Percent is the share of the available connections in use.
func (c Connections) Percent() int64 {
	if c.Available <= 0 {
		return 100
	}
	return c.Used * 100 / c.Available
}

// dbConnections asks the profile's database for its connections; an
// error is ErrDBUnreachable.
func (h *Host) dbConnections(ctx context.Context) (Connections, error) {
	db := h.Profile.DB
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b := &backupDB{h: h}
	argv := append([]string{b.tool("psql", db.PSQLCommand)}, b.conn(db.Name)...)
	argv = append(argv, "--no-psqlrc", "--tuples-only", "--no-align", "--command="+connectionsQuery)
	var rows []string
	err := h.Run.Run(ctx, argv, append(b.env(), "PGCONNECT_TIMEOUT=10"), func(l string) {
		if l = strings.TrimSpace(l); l != "" {
			rows = append(rows, l)
		}
	})
	if err != nil {
		if strings.Contains(err.Error(), "too many clients") {
			// The server answered: it has no connection left.
			return Connections{}, fmt.Errorf("%w (%s:%d, database %s): no connection left (the server refuses more clients: %v)",
				ErrDBUnreachable, db.Host, db.Port, db.Name, err)
		}
		return Connections{}, fmt.Errorf("%w (%s:%d, database %s): %v", ErrDBUnreachable, db.Host, db.Port, db.Name, err)
	}
	var c Connections
	if len(rows) == 1 {
		a, u, ok := strings.Cut(rows[0], "|")
		var err1, err2 error
		c.Available, err1 = strconv.ParseInt(a, 10, 64)
		c.Used, err2 = strconv.ParseInt(u, 10, 64)
		if ok && err1 == nil && err2 == nil {
			return c, nil
		}
	}
	return Connections{}, fmt.Errorf("%w: psql answered %q to the connections query", ErrDBUnreachable, strings.Join(rows, " / "))
}

// Check runs upgrader's own check name before a step ("db").
func (h *Host) Check(ctx context.Context, name string) (orchestrator.CheckResult, error) {
	if name != "db" {
		return orchestrator.CheckResult{}, fmt.Errorf("no check %q", name)
	}
	db := h.Profile.DB
	where := fmt.Sprintf("%s:%d/%s", db.Host, db.Port, db.Name)
	c, err := h.dbConnections(ctx)
	if err != nil {
		return orchestrator.CheckResult{Figures: map[string]string{"db": where}},
			fmt.Errorf("%w; the run holds before this step, nothing of it started: bring the database back, then upgrader retry", err)
	}
	res := orchestrator.CheckResult{Figures: map[string]string{"db": where,
		"connections.used": strconv.FormatInt(c.Used, 10), "connections.available": strconv.FormatInt(c.Available, 10),
		"connections.percent": strconv.FormatInt(c.Percent(), 10)}}
	res.Text = fmt.Sprintf("the database %s answers; %d of %d connections in use (%d%%)", where, c.Used, c.Available, c.Percent())
	switch {
	case c.Used >= c.Available:
		return res, fmt.Errorf("%s: no connection left for the backup or the installer; the run holds before this step, nothing of it started: "+
			"close idle sessions or raise max_connections, then upgrader retry", res.Text)
	case c.Percent() >= HeadroomWarnPercent:
		res.Text += fmt.Sprintf(": warning, from %d%% upgrader warns (POM 3.1.1 raises no alarm when they run out, OUTREACH-11880)", HeadroomWarnPercent)
	}
	return res, nil
}
