package iot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strconv"
)

// Router chooses the destination of each connection attempt, so one client
// can move between brokers without being rebuilt (and without its
// subscribers, queue and handlers noticing): Greengrass discovery moves it
// between core entries, a fresh discovery answer and the IoT Core endpoint.
type Router interface {
	// Route returns where the next attempt goes. failed is how many
	// attempts in a row failed before this one: 0 for the first attempt and
	// after a connection that came online. It may block (a re-discovery)
	// until ctx, the client's lifetime, ends.
	Route(ctx context.Context, failed int) (Route, error)
}

// Route is one destination of a Router. Only the mutual TLS transports
// (mqtts, alpn) route; the device certificate is the client's.
type Route struct {
	// Endpoint is host:port; "" is the client's configured endpoint, with
	// its configured CA, server name and ALPN (the other fields but Name
	// are then ignored).
	Endpoint string
	// Roots are the CAs the server's certificate must chain to; nil keeps
	// the client's configured CA.
	Roots *x509.CertPool
	// ServerName is the name the server's certificate must hold; "" means
	// Endpoint's host.
	ServerName string
	// ALPN offers "x-amzn-mqtt-ca" (AWS IoT on port 443).
	ALPN bool
	// Name is what status and logs call the destination; "" means Endpoint.
	Name string
}

// destination is where one attempt goes, with its TLS configuration.
type destination struct {
	endpoint string // host:port
	name     string
	tls      *tls.Config
}

// destinationFor asks the router (if any) where the next attempt goes and
// remembers it for status and error messages.
func (c *Client) destinationFor(failed int) (destination, error) {
	if c.cfg.Router == nil {
		return destination{endpoint: c.endpoint, name: c.endpoint, tls: c.tls}, nil
	}
	r, err := c.cfg.Router.Route(c.runCtx, failed)
	if err != nil {
		return destination{}, fmt.Errorf("iot: choosing where to connect: %w", err)
	}
	d, err := c.routeDestination(r)
	if err != nil {
		return destination{}, err
	}
	if d.name == "" {
		d.name = d.endpoint
	}
	c.mu.Lock()
	c.dest = d
	c.mu.Unlock()
	return d, nil
}

// routeDestination turns a route into an attempt's destination.
func (c *Client) routeDestination(r Route) (destination, error) {
	if r.Endpoint == "" {
		return destination{endpoint: c.endpoint, name: r.Name, tls: c.tls}, nil
	}
	host, port, err := net.SplitHostPort(r.Endpoint)
	if _, perr := strconv.Atoi(port); err != nil || perr != nil || host == "" {
		return destination{}, &ConfigError{Field: "route endpoint", Value: r.Endpoint, Reason: "must be host:port"}
	}
	t := c.tls.Clone()
	if r.Roots != nil {
		t.RootCAs = r.Roots
	}
	t.ServerName = host
	if r.ServerName != "" {
		t.ServerName = r.ServerName
	}
	t.NextProtos = nil
	if r.ALPN {
		t.NextProtos = []string{ALPNProtocol}
	}
	return destination{endpoint: r.Endpoint, name: r.Name, tls: t}, nil
}

// Destination names where the client connects: the router's latest choice
// (its Route.Name; "" before the first attempt), or the configured endpoint
// (host:port).
func (c *Client) Destination() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dest.name
}

// currentEndpoint is the host:port of the latest attempt.
func (c *Client) currentEndpoint() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dest.endpoint
}
