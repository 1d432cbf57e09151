package discovery

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// Response is what the discovery service answers for a thing: the
// Greengrass groups it belongs to (at most 10), each with its cores and
// the CAs that sign the cores' server certificates.
type Response struct {
	Groups []Group `json:"GGGroups"`
}

// Group is one Greengrass group.
type Group struct {
	ID    string `json:"GGGroupId"`
	Cores []Core `json:"Cores"`
	// CAs are the group's CA certificates, PEM.
	CAs []string `json:"CAs"`
}

// Core is one Greengrass core of a group.
type Core struct {
	ThingArn     string         `json:"thingArn"`
	Connectivity []Connectivity `json:"Connectivity"`
}

// Connectivity is one address a core can be reached at.
type Connectivity struct {
	ID          string `json:"Id"`
	HostAddress string `json:"HostAddress"`
	PortNumber  int    `json:"PortNumber"`
	// Metadata is free text ("" when absent).
	Metadata string `json:"Metadata,omitempty"`
}

// ErrResponse is wrapped by Parse's errors: the body is not a discovery
// response.
var ErrResponse = errors.New("discovery: malformed response")

// Parse decodes a discovery response body. It rejects anything that is not
// one JSON object of the documented shape (wrong types, trailing data);
// unknown fields are ignored, as AWS may add some. Entries are not
// validated here: an unusable address is one entry a Router leaves out,
// not a reason to lose the other entries.
func Parse(body []byte) (*Response, error) {
	if !bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		return nil, fmt.Errorf("%w: want a JSON object with GGGroups", ErrResponse)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var r Response
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrResponse, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrResponse)
	}
	return &r, nil
}

// CoreRef is a core with the group it belongs to.
type CoreRef struct {
	GroupID string
	Core    Core
}

// GroupCA is one CA certificate (PEM) of a group.
type GroupCA struct {
	GroupID string
	PEM     string
}

// Cores returns every core of every group, in response order.
func (r *Response) Cores() []CoreRef {
	var out []CoreRef
	for _, g := range r.Groups {
		for _, c := range g.Cores {
			out = append(out, CoreRef{GroupID: g.ID, Core: c})
		}
	}
	return out
}

// CAs returns every CA of every group, in response order (the v1 SDK's
// getAllCas).
func (r *Response) CAs() []GroupCA {
	var out []GroupCA
	for _, g := range r.Groups {
		for _, ca := range g.CAs {
			out = append(out, GroupCA{GroupID: g.ID, PEM: ca})
		}
	}
	return out
}

// CAsByGroup returns the CAs keyed by group id.
func (r *Response) CAsByGroup() map[string][]string {
	out := map[string][]string{}
	for _, g := range r.Groups {
		out[g.ID] = append(out[g.ID], g.CAs...)
	}
	return out
}

// Group returns the group with this id.
func (r *Response) Group(id string) (Group, bool) {
	for _, g := range r.Groups {
		if g.ID == id {
			return g, true
		}
	}
	return Group{}, false
}

// Candidate is one way to reach a core: a connectivity entry, its core and
// its group's CAs.
type Candidate struct {
	GroupID  string
	CoreArn  string
	Entry    Connectivity
	GroupCAs []string
}

// Candidates lists every connectivity entry of every core of every group,
// in response order: the order a Router tries them in.
func (r *Response) Candidates() []Candidate {
	var out []Candidate
	for _, g := range r.Groups {
		for _, c := range g.Cores {
			for _, e := range c.Connectivity {
				out = append(out, Candidate{GroupID: g.ID, CoreArn: c.ThingArn, Entry: e, GroupCAs: g.CAs})
			}
		}
	}
	return out
}

// Endpoint returns the entry's host:port, or why it cannot be dialled.
func (c Connectivity) Endpoint() (string, error) {
	h := strings.TrimSpace(c.HostAddress)
	switch {
	case h == "":
		return "", fmt.Errorf("connectivity entry %q has no HostAddress", c.ID)
	case strings.ContainsAny(h, "/ ") || strings.Contains(h, "://"):
		return "", fmt.Errorf("connectivity entry %q: HostAddress %q is not a host name or IP address", c.ID, c.HostAddress)
	case c.PortNumber < 1 || c.PortNumber > 65535:
		return "", fmt.Errorf("connectivity entry %q: PortNumber %d is not 1–65535", c.ID, c.PortNumber)
	}
	return net.JoinHostPort(h, strconv.Itoa(c.PortNumber)), nil
}

// CertPool returns the group CAs as a pool, or an error when none of them
// is a PEM certificate.
func (c Candidate) CertPool() (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	ok := false
	for _, pem := range c.GroupCAs {
		if pool.AppendCertsFromPEM([]byte(pem)) {
			ok = true
		}
	}
	if !ok {
		return nil, fmt.Errorf("group %s: no usable CA certificate in the discovery response (%d CAs)", c.GroupID, len(c.GroupCAs))
	}
	return pool, nil
}
