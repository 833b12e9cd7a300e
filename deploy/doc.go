// Package deploy holds what installs upgrader on a server: the systemd unit, tmpfiles and sample site profiles.
package deploy
