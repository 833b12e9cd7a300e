// Command impostor is a local user's fake upgrader daemon, for the tests:
// it listens on the socket path it is given and, for every connection,
// prints one line saying how many bytes the client sent (and what, quoted)
// before it went quiet or closed. A client that sends something gets a
// plausible answer, as a real impostor would give.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: impostor SOCKET")
		os.Exit(2)
	}
	l, err := net.Listen("unix", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening as uid %d\n", os.Getuid())
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		var got []byte
		buf := make([]byte, 64<<10)
		for {
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if len(got) > 0 {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
		}
		c.Close()
		fmt.Printf("received %d bytes %q\n", len(got), got)
	}
}
