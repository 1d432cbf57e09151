package discovery

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const fixtureCA = "-----BEGIN CERTIFICATE-----\\nMIIEFTCCAv2gAwIBAgIVAPZfc4GMLZPmXbnoaZm6jRDqDs4+MA0GCSqGSIb3DQEB\\n-----END CERTIFICATE-----\\n"

// v1Fixture has the shape of the v1 SDK's parsing test: 1 group, 1 core,
// 3 entries Id-N / 192.168.101.N / 808N / Description-N, 1 CA.
func v1Fixture() string {
	var entries []string
	for i := range 3 {
		entries = append(entries, fmt.Sprintf(`{"Id":"Id-%d","HostAddress":"192.168.101.%d","PortNumber":808%d,"Metadata":"Description-%d"}`, i, i, i, i))
	}
	return `{"GGGroups":[{"GGGroupId":"627bf63d-ae64-4f58-a18c-80a44fcf4088",` +
		`"Cores":[{"thingArn":"arn:aws:iot:us-east-1:003261610643:thing/DRS_GGC_0kegiNGA_0","Connectivity":[` + strings.Join(entries, ",") + `]}],` +
		`"CAs":["` + fixtureCA + `"]}]}`
}

func TestParseV1Fixture(t *testing.T) {
	r, err := Parse([]byte(v1Fixture()))
	if err != nil {
		t.Fatal(err)
	}
	cores := r.Cores()
	if len(r.Groups) != 1 || len(cores) != 1 {
		t.Fatalf("groups %d cores %d, want 1 and 1", len(r.Groups), len(cores))
	}
	const gid = "627bf63d-ae64-4f58-a18c-80a44fcf4088"
	if cores[0].GroupID != gid || cores[0].Core.ThingArn != "arn:aws:iot:us-east-1:003261610643:thing/DRS_GGC_0kegiNGA_0" {
		t.Errorf("core = %+v", cores[0])
	}
	for i, e := range cores[0].Core.Connectivity {
		want := Connectivity{ID: fmt.Sprintf("Id-%d", i), HostAddress: fmt.Sprintf("192.168.101.%d", i), PortNumber: 8080 + i, Metadata: fmt.Sprintf("Description-%d", i)}
		if e != want {
			t.Errorf("entry %d = %+v, want %+v", i, e, want)
		}
	}
	cas := r.CAs()
	if len(cas) != 1 || cas[0].GroupID != gid || !strings.HasPrefix(cas[0].PEM, "-----BEGIN CERTIFICATE-----\nMIIEFTCC") {
		t.Errorf("CAs = %+v", cas)
	}
	if by := r.CAsByGroup(); len(by[gid]) != 1 {
		t.Errorf("CAsByGroup = %v", by)
	}
	if g, ok := r.Group(gid); !ok || g.ID != gid {
		t.Errorf("Group(%s) = %v %v", gid, g, ok)
	}
	if _, ok := r.Group("other"); ok {
		t.Error("Group(other) found")
	}
	cands := r.Candidates()
	if len(cands) != 3 || cands[2].Entry.ID != "Id-2" || cands[2].GroupID != gid || len(cands[2].GroupCAs) != 1 {
		t.Errorf("candidates = %+v", cands)
	}
	if ep, err := cands[1].Entry.Endpoint(); err != nil || ep != "192.168.101.1:8081" {
		t.Errorf("endpoint = %q, %v", ep, err)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		body string
		want *Response // nil: an error wrapping ErrResponse
	}{
		{"empty groups", `{"GGGroups":[]}`, &Response{Groups: []Group{}}},
		{"no GGGroups field", `{}`, &Response{}},
		{"metadata missing is empty", `{"GGGroups":[{"GGGroupId":"g","Cores":[{"thingArn":"a","Connectivity":[{"Id":"1","HostAddress":"h","PortNumber":8883}]}],"CAs":[]}]}`,
			&Response{Groups: []Group{{ID: "g", Cores: []Core{{ThingArn: "a", Connectivity: []Connectivity{{ID: "1", HostAddress: "h", PortNumber: 8883}}}}, CAs: []string{}}}}},
		{"unknown fields ignored", `{"GGGroups":[{"GGGroupId":"g","New":1}],"Extra":true}`, &Response{Groups: []Group{{ID: "g"}}}},
		{"surrounding whitespace", " \n{\"GGGroups\":null}\n", &Response{}},
		{"not JSON", `<html>`, nil},
		{"an array", `[{"GGGroups":[]}]`, nil},
		{"null", `null`, nil},
		{"empty body", ``, nil},
		{"port as string", `{"GGGroups":[{"Cores":[{"Connectivity":[{"PortNumber":"8883"}]}]}]}`, nil},
		{"CAs not strings", `{"GGGroups":[{"CAs":[1]}]}`, nil},
		{"trailing data", `{"GGGroups":[]} {}`, nil},
		{"truncated", `{"GGGroups":[{"GGGroupId":"g"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.body))
			if tt.want == nil {
				if !errors.Is(err, ErrResponse) {
					t.Fatalf("Parse = %+v, %v; want ErrResponse", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHelpersAcrossGroups(t *testing.T) {
	r := &Response{Groups: []Group{
		{ID: "g1", CAs: []string{"ca1a", "ca1b"}, Cores: []Core{
			{ThingArn: "c1", Connectivity: []Connectivity{{ID: "1"}, {ID: "2"}}},
			{ThingArn: "c2", Connectivity: []Connectivity{{ID: "3"}}},
		}},
		{ID: "g2", CAs: []string{"ca2"}, Cores: []Core{{ThingArn: "c3", Connectivity: []Connectivity{{ID: "4"}}}}},
	}}
	var order []string
	for _, c := range r.Candidates() {
		order = append(order, c.GroupID+"/"+c.CoreArn+"/"+c.Entry.ID+"/"+strings.Join(c.GroupCAs, "+"))
	}
	want := []string{"g1/c1/1/ca1a+ca1b", "g1/c1/2/ca1a+ca1b", "g1/c2/3/ca1a+ca1b", "g2/c3/4/ca2"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("candidates %v, want %v", order, want)
	}
	if cas := r.CAs(); len(cas) != 3 || cas[2] != (GroupCA{GroupID: "g2", PEM: "ca2"}) {
		t.Errorf("CAs = %v", cas)
	}
	if cores := r.Cores(); len(cores) != 3 || cores[2].GroupID != "g2" || cores[2].Core.ThingArn != "c3" {
		t.Errorf("Cores = %v", cores)
	}
	if by := r.CAsByGroup(); !reflect.DeepEqual(by, map[string][]string{"g1": {"ca1a", "ca1b"}, "g2": {"ca2"}}) {
		t.Errorf("CAsByGroup = %v", by)
	}
}

func TestConnectivityEndpoint(t *testing.T) {
	tests := []struct {
		e       Connectivity
		want    string
		problem string
	}{
		{Connectivity{ID: "a", HostAddress: "192.168.1.5", PortNumber: 8883}, "192.168.1.5:8883", ""},
		{Connectivity{ID: "b", HostAddress: "core.local", PortNumber: 443}, "core.local:443", ""},
		{Connectivity{ID: "c", HostAddress: "fe80::1", PortNumber: 8883}, "[fe80::1]:8883", ""},
		{Connectivity{ID: "d", HostAddress: "", PortNumber: 8883}, "", "no HostAddress"},
		{Connectivity{ID: "e", HostAddress: "h", PortNumber: 0}, "", "PortNumber 0"},
		{Connectivity{ID: "f", HostAddress: "h", PortNumber: 70000}, "", "PortNumber 70000"},
		{Connectivity{ID: "g", HostAddress: "ssl://h", PortNumber: 8883}, "", "not a host name"},
	}
	for _, tt := range tests {
		got, err := tt.e.Endpoint()
		if tt.problem == "" {
			if err != nil || got != tt.want {
				t.Errorf("%+v: %q, %v; want %q", tt.e, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.problem) || !strings.Contains(err.Error(), tt.e.ID) {
			t.Errorf("%+v: %q, %v; want an error naming the entry and %q", tt.e, got, err, tt.problem)
		}
	}
}

func TestCertPoolNeedsAPEM(t *testing.T) {
	if _, err := (Candidate{GroupID: "g", GroupCAs: []string{"garbage"}}).CertPool(); err == nil || !strings.Contains(err.Error(), "group g") {
		t.Errorf("CertPool of garbage: %v", err)
	}
}
