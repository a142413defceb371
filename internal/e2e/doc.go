// Package e2e holds the loopback end-to-end tests: a real relay and real
// agents in one process, talking over real sockets on 127.0.0.1, with
// local services whose bytes are checked by hash on the far side. The NAT
// lab (lab/) repeats the important ones with the real binary behind real
// NATs.
package e2e
