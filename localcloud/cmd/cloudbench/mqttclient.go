package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// leanClient is a minimal MQTT 3.1.1 client for load generation: clean
// session, no keep-alive, QoS 1 publishes without waiting for PUBACK, and
// QoS 0/1 deliveries acknowledged and passed to onMessage on the reader
// goroutine. A full client (paho) costs several goroutines, a timer and a
// token per publish; with 1,000 connections on the same two cores as the
// broker that overhead would be measured as broker latency.
type leanClient struct {
	conn      net.Conn
	wmu       sync.Mutex
	nextID    uint16
	onMessage func(topic string, payload []byte)
	done      chan struct{} // closed when the reader ends; err says why
	err       error
	subacks   chan struct{}
}

func dialLean(addr, clientID string, onMessage func(string, []byte)) (*leanClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := &leanClient{conn: conn, onMessage: onMessage, done: make(chan struct{}), subacks: make(chan struct{}, 1)}
	var vh []byte
	vh = appendString(vh, "MQTT")
	vh = append(vh, 4, 0x02, 0x01, 0x2c) // level 3.1.1, clean session, keep-alive 300 s (no pings: runs are shorter)
	vh = appendString(vh, clientID)
	if _, err := conn.Write(packet(0x10, vh)); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ack [4]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		conn.Close()
		return nil, fmt.Errorf("read CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		conn.Close()
		return nil, fmt.Errorf("CONNACK refused: % x", ack)
	}
	conn.SetReadDeadline(time.Time{})
	go c.read()
	return c, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// packet frames a control packet: type/flags byte, remaining length, body.
func packet(first byte, body []byte) []byte {
	out := []byte{first}
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

func (c *leanClient) write(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(p)
	return err
}

func (c *leanClient) id() uint16 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// subscribe subscribes to filters at QoS 1 and waits for the SUBACK.
func (c *leanClient) subscribe(filters ...string) error {
	c.wmu.Lock()
	body := binary.BigEndian.AppendUint16(nil, c.id())
	c.wmu.Unlock()
	for _, f := range filters {
		body = appendString(body, f)
		body = append(body, 1)
	}
	if err := c.write(packet(0x82, body)); err != nil {
		return err
	}
	select {
	case <-c.subacks:
		return nil
	case <-c.done:
		return fmt.Errorf("connection ended: %w", c.err)
	case <-time.After(30 * time.Second):
		return errors.New("no SUBACK")
	}
}

// publish sends a QoS 1 PUBLISH (the PUBACK is read and ignored).
func (c *leanClient) publish(topic string, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	body := make([]byte, 0, 2+len(topic)+2+len(payload))
	body = appendString(body, topic)
	body = binary.BigEndian.AppendUint16(body, c.id())
	body = append(body, payload...)
	_, err := c.conn.Write(packet(0x32, body))
	return err
}

func (c *leanClient) read() {
	r := bufio.NewReaderSize(c.conn, 16*1024)
	var err error
	defer func() {
		c.err = err
		close(c.done)
	}()
	for {
		var first byte
		if first, err = r.ReadByte(); err != nil {
			return
		}
		n, mul := 0, 1
		for {
			var d byte
			if d, err = r.ReadByte(); err != nil {
				return
			}
			n += int(d&0x7f) * mul
			mul *= 128
			if d&0x80 == 0 {
				break
			}
		}
		body := make([]byte, n)
		if _, err = io.ReadFull(r, body); err != nil {
			return
		}
		switch first >> 4 {
		case 3: // PUBLISH
			tl := int(binary.BigEndian.Uint16(body))
			topic := string(body[2 : 2+tl])
			rest := body[2+tl:]
			if qos := (first >> 1) & 3; qos > 0 {
				id := rest[:2]
				rest = rest[2:]
				if err = c.write([]byte{0x40, 2, id[0], id[1]}); err != nil {
					return
				}
			}
			c.onMessage(topic, rest)
		case 9: // SUBACK
			select {
			case c.subacks <- struct{}{}:
			default:
			}
		}
	}
}

// close ends the connection and waits for the reader.
func (c *leanClient) close() {
	c.write([]byte{0xe0, 0}) // DISCONNECT
	c.conn.Close()
	<-c.done
}
