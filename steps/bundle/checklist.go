package bundle

// SupportAlsoAsks is what the release notes' Contact Support Checklist asks
// for that no bundle made on this server can hold. Every archive lists it
// (MANIFEST, the JSON result), so whoever sends the archive knows what
// support will still ask for, and where it is.
var SupportAlsoAsks = []string{
	"FINEST level logs: the checklist asks for every log at FINEST level; upgrader cannot change or check POM's log level, " +
		"so the logs here are at whatever level POM was set to",
	"POM Agent API logs from the desktop side for the affected agent: they are on that agent's desktop, not on this server; collect them there",
	"with an external application server, its logs ($APPSERVER_HOME/logs, $APPSERVER_HOME/webapps/<APP_NAME>/data/log) are on that server: " +
		"collect them there (-a collects only this server's " + DefaultAppServerHome + ")",
	"custom OD application logs, if the campaigns use one: wherever that application writes them; upgrader does not know where",
}
