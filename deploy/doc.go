// Package deploy holds what installs upgrader on a server: the systemd unit, tmpfiles and sample site profiles
// (make install). deploy/package builds the .deb and .rpm of them (make package); deploy/ansible drives a fleet.
package deploy
