package app

import (
	"errors"
	"testing"
)

func TestParseStatusSet(t *testing.T) {
	for _, tc := range []struct {
		in       string
		str      string
		in1, out []int
	}{
		{"200", "200", []int{200}, []int{201, 404}},
		{"200,204", "200,204", []int{200, 204}, []int{201}},
		{"2xx", "2xx", []int{200, 250, 299}, []int{199, 300}},
		{"200-299, 301", "2xx,301", []int{200, 299, 301}, []int{302}},
		{"5XX", "5xx", []int{503}, []int{200}},
		{"401-403", "401-403", []int{401, 403}, []int{400, 404}},
	} {
		s, err := ParseStatusSet(tc.in)
		if err != nil {
			t.Errorf("ParseStatusSet(%q): %v", tc.in, err)
			continue
		}
		if s.String() != tc.str {
			t.Errorf("ParseStatusSet(%q).String() = %q, want %q", tc.in, s, tc.str)
		}
		for _, c := range tc.in1 {
			if !s.Contains(c) {
				t.Errorf("%q does not contain %d", tc.in, c)
			}
		}
		for _, c := range tc.out {
			if s.Contains(c) {
				t.Errorf("%q contains %d", tc.in, c)
			}
		}
	}
	for _, bad := range []string{"", "20", "2000", "600", "099", "abc", "300-200", "200,", "6xx", "x00", "200-", "-200"} {
		if _, err := ParseStatusSet(bad); !errors.Is(err, ErrStatusSet) {
			t.Errorf("ParseStatusSet(%q) = %v, want ErrStatusSet", bad, err)
		}
	}
	var empty StatusSet
	if !empty.Contains(200) || !empty.Contains(302) || empty.Contains(404) || empty.String() != "200-399" {
		t.Errorf("the empty set is not 200-399: %q", empty)
	}
}

func FuzzParseStatusSet(f *testing.F) {
	for _, s := range []string{"200", "2xx,301", "200-204", "5XX", ",", "1-2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseStatusSet(in)
		if err != nil {
			return
		}
		back, err := ParseStatusSet(s.String())
		if err != nil {
			t.Fatalf("%q parsed, its String %q does not: %v", in, s, err)
		}
		for c := 100; c < 600; c++ {
			if s.Contains(c) != back.Contains(c) {
				t.Fatalf("%q and its String %q differ on %d", in, s, c)
			}
		}
	})
}
