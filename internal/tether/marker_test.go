package tether

import (
	"strings"
	"testing"
)

func TestMarker(t *testing.T) {
	t.Parallel()
	m := Marker{Instance: "ci.example.com", ProjectID: 7, Attempt: "3f9a0c1b"}
	if got, want := m.Label("acme/api"), "Tether: acme/api [tether:ci.example.com/projects/7#3f9a0c1b]"; got != want {
		t.Fatalf("Label = %q, want %q", got, want)
	}
	cases := []struct {
		label string
		want  Marker
		ok    bool
	}{
		{"Tether: acme/api [tether:ci.example.com/projects/7#3f9a0c1b]", m, true},
		{"Tether: acme/api [tether:ci.example.com/projects/7]", Marker{Instance: "ci.example.com", ProjectID: 7}, true},
		{"renamed by someone [tether:localhost:8080/projects/12]  ", Marker{Instance: "localhost:8080", ProjectID: 12}, true},
		{"Tether: x [tether:example.com/tether/projects/3]", Marker{Instance: "example.com/tether", ProjectID: 3}, true},
		{"Tether: acme/api", Marker{}, false},                                    // before markers
		{"[tether:ci.example.com/projects/7] then more", Marker{}, false},        // not at the end
		{"Tether: acme/api [tether:ci.example.com/projects/x]", Marker{}, false}, // no id
		{"Tether: acme/api [tether:/projects/7]", Marker{}, false},
	}
	for _, tc := range cases {
		got, ok := ParseMarker(tc.label)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseMarker(%q) = %+v, %v; want %+v, %v", tc.label, got, ok, tc.want, tc.ok)
		}
	}
	if !m.Same("Tether: acme/api [tether:ci.example.com/projects/7#ffffffff]") || m.Same("Tether: acme/api [tether:ci.example.com/projects/70]") ||
		m.Same("Tether: acme/api [tether:other.example.com/projects/7]") {
		t.Error("Same tells projects or instances apart wrongly")
	}
	long := m.Label(strings.Repeat("é", 200))
	if len(long) > MaxLabel || !strings.HasSuffix(long, m.String()) || !strings.Contains(long, "…") {
		t.Errorf("a long name: %d bytes, %q", len(long), long)
	}
	if back, ok := ParseMarker(long); !ok || back != m {
		t.Errorf("the marker of a cut label reads %+v, %v", back, ok)
	}
	for in, want := range map[string]string{
		"https://CI.example.com":        "ci.example.com",
		"http://localhost:8080/":        "localhost:8080",
		"https://example.com/tether/":   "example.com/tether",
		"https://example.com:8443/a/b/": "example.com:8443/a/b",
	} {
		if got := InstanceOf(in); got != want {
			t.Errorf("InstanceOf(%q) = %q, want %q", in, got, want)
		}
	}
}
