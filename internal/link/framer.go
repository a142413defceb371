package link

import (
	"encoding/binary"
	"fmt"
	"io"
)

// maxRecord bounds one length-prefixed record on the TCP transport.
const maxRecord = 1<<16 - 1

// WriteRecord writes b with its 2-byte big-endian length in one Write.
func WriteRecord(w io.Writer, b []byte) error {
	if len(b) > maxRecord {
		return fmt.Errorf("record of %d bytes exceeds %d", len(b), maxRecord)
	}
	buf := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(buf, uint16(len(b)))
	copy(buf[2:], b)
	_, err := w.Write(buf)
	return err
}

// ReadRecord reads one record into buf (which must hold maxRecord bytes).
func ReadRecord(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > len(buf) {
		return nil, fmt.Errorf("record of %d bytes exceeds buffer", n)
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// NewRecordBuffer returns a buffer large enough for any record.
func NewRecordBuffer() []byte { return make([]byte, maxRecord) }
