package portmap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// The IGD is asked four things over HTTP: its description and three SOAP
// actions, each a request on a fresh connection (Connection: close). This
// client reads the status, Content-Length or chunked bodies, or a body to
// EOF, and refuses anything larger than maxBody: a router's description
// is a few KiB, its SOAP answers a few hundred bytes.
const (
	maxBody       = 64 << 10
	maxHeaderLine = 4 << 10
	maxHeaders    = 64
)

var errTooLarge = fmt.Errorf("http answer larger than %d bytes", maxBody)

// httpURL is an http:// URL whose host is an IP literal: the only kind
// the client follows (a name would need DNS, and could point anywhere).
type httpURL struct {
	addr netip.AddrPort
	path string // starts with '/'
}

func (u httpURL) String() string { return "http://" + u.addr.String() + u.path }

// parseHTTPURL reads "http://IP[:port]/path".
func parseHTTPURL(s string) (httpURL, error) {
	rest, ok := strings.CutPrefix(s, "http://")
	if !ok {
		return httpURL{}, fmt.Errorf("url %q: not http://", s)
	}
	host, path := rest, "/"
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, path = rest[:i], rest[i:]
	}
	if !strings.Contains(host, ":") {
		host += ":80"
	}
	ap, err := netip.ParseAddrPort(host)
	if err != nil || !ap.Addr().Is4() || ap.Port() == 0 {
		return httpURL{}, fmt.Errorf("url %q: host is not an IPv4 address and port", s)
	}
	return httpURL{addr: ap, path: path}, nil
}

// resolve turns ref (an absolute URL or an absolute path, as IGDs write
// control URLs) into a URL on base's host.
func (u httpURL) resolve(ref string) (httpURL, error) {
	if strings.HasPrefix(ref, "/") {
		return httpURL{addr: u.addr, path: ref}, nil
	}
	return parseHTTPURL(ref)
}

// httpDo sends one request (header: extra CRLF-terminated lines) and
// returns the status code and body. The whole exchange ends by httpWait
// (or ctx).
func httpDo(ctx context.Context, u httpURL, method, header string, body []byte) (int, []byte, error) {
	d := net.Dialer{Deadline: deadline(ctx, httpWait)}
	conn, err := d.DialContext(ctx, "tcp4", u.addr.String())
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(deadline(ctx, httpWait))
	req := method + " " + u.path + " HTTP/1.1\r\nHost: " + u.addr.String() + "\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n" + header + "\r\n"
	if _, err := conn.Write(append([]byte(req), body...)); err != nil {
		return 0, nil, err
	}
	status, b, err := readResponse(bufio.NewReaderSize(conn, 4096))
	if err != nil && ctx.Err() != nil {
		return 0, nil, ctx.Err()
	}
	return status, b, err
}

// readResponse reads an HTTP/1.x response: status line, headers, body.
func readResponse(r *bufio.Reader) (int, []byte, error) {
	line, err := readLine(r)
	if err != nil {
		return 0, nil, err
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if !strings.HasPrefix(proto, "HTTP/1.") || err != nil || status < 100 || status > 999 {
		return 0, nil, fmt.Errorf("bad http status line %q", truncate(line))
	}
	length, chunked := -1, false
	for n := 0; ; n++ {
		h, err := readLine(r)
		if err != nil {
			return 0, nil, err
		}
		if h == "" {
			break
		}
		if n >= maxHeaders {
			return 0, nil, errors.New("too many http headers")
		}
		k, v, _ := strings.Cut(h, ":")
		v = strings.TrimSpace(v)
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "content-length":
			if length, err = strconv.Atoi(v); err != nil || length < 0 {
				return 0, nil, fmt.Errorf("bad content-length %q", truncate(v))
			}
		case "transfer-encoding":
			chunked = strings.EqualFold(v, "chunked")
		}
	}
	var body []byte
	switch {
	case chunked:
		body, err = readChunked(r)
	case length > maxBody:
		return 0, nil, errTooLarge
	case length >= 0:
		body = make([]byte, length)
		_, err = io.ReadFull(r, body)
	default: // to EOF (the server closes)
		body, err = io.ReadAll(io.LimitReader(r, maxBody+1))
		if len(body) > maxBody {
			return 0, nil, errTooLarge
		}
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read http body: %w", err)
	}
	return status, body, nil
}

// readChunked reads a chunked body (RFC 9112 §7.1), trailers ignored.
func readChunked(r *bufio.Reader) ([]byte, error) {
	var body []byte
	for {
		line, err := readLine(r)
		if err != nil {
			return nil, err
		}
		hex, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("bad chunk size %q", truncate(line))
		}
		if n == 0 {
			for { // trailers, up to the blank line
				if t, err := readLine(r); err != nil || t == "" {
					return body, err
				}
			}
		}
		if uint64(len(body))+n > maxBody {
			return nil, errTooLarge
		}
		start := len(body)
		body = append(body, make([]byte, n)...)
		if _, err := io.ReadFull(r, body[start:]); err != nil {
			return nil, err
		}
		if crlf, err := readLine(r); err != nil || crlf != "" {
			return nil, errors.New("bad chunk end")
		}
	}
}

// readLine reads a CRLF- or LF-terminated line of at most maxHeaderLine.
func readLine(r *bufio.Reader) (string, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxHeaderLine {
			return "", errors.New("http line too long")
		}
		if err == nil {
			return strings.TrimRight(string(line), "\r\n"), nil
		}
		if err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

// truncate shortens untrusted text for an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
