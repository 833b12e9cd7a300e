package remote

import (
	"net"
	"syscall"
)

// quickAckConn acknowledges every segment at once. sshd writes a reply in
// two segments without waiting in between (no TCP_NODELAY outside an
// interactive session), so Nagle holds the second until the first is
// acknowledged, and Linux delays that acknowledgement up to 40 ms. Every
// request/answer exchange of a connection's set-up (the SFTP start among
// them) then waits 40 ms for nothing: measured, 45 ms of a 90 ms connection
// to a loopback sshd. Linux clears TCP_QUICKACK on its own, hence after
// each read.
type quickAckConn struct{ *net.TCPConn }

func newQuickAckConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	q := quickAckConn{tc}
	q.quickAck()
	return q
}

func (c quickAckConn) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	c.quickAck()
	return n, err
}

// quickAck is best effort: without it the connection is only slower.
func (c quickAckConn) quickAck() {
	if rc, err := c.TCPConn.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
		})
	}
}
