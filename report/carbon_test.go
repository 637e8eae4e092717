package report

import "testing"

func TestCountryCarbonIntensity(t *testing.T) {
	for _, tc := range []struct {
		code string
		want float64
		name string
		ok   bool
	}{
		{"USA", 379.26, "United States", true},
		{"usa", 379.26, "United States", true},
		{" FRA ", 67.39, "France", true},
		{"US", 379.26, "United States", true},
		{"de", 365.477, "Germany", true},
		{"IND", 637.182, "India", true},
		{"XYZ", 0, "", false},
		{"", 0, "", false},
	} {
		g, name, ok := CountryCarbonIntensity(tc.code)
		if g != tc.want || name != tc.name || ok != tc.ok {
			t.Errorf("CountryCarbonIntensity(%q) = %v, %q, %v; want %v, %q, %v", tc.code, g, name, ok, tc.want, tc.name, tc.ok)
		}
	}
	if codes := CarbonCountries(); len(codes) < 30 || codes[0] != "ARE" {
		t.Errorf("CarbonCountries() = %v", codes)
	}
}
