package report

import (
	"slices"
	"testing"
)

func TestCountryCarbonIntensity(t *testing.T) {
	for _, tc := range []struct {
		code    string
		want    float64
		country string
		ok      bool
	}{
		// Values exactly as global_energy_mix.json publishes them.
		{"USA", 379.26, "United States", true},
		{"FRA", 67.39, "France", true},
		{"IND", 637.182, "India", true},
		{"NOR", 27.55, "Norway", true},
		{"SGP", 487.937, "Singapore", true},
		{"TWN", 573.275, "Taiwan", true},
		{"ZAF", 715.681, "South Africa", true},
		// Case and surrounding space do not matter.
		{"usa", 379.26, "United States", true},
		{"Deu", 365.477, "Germany", true},
		{" FRA ", 67.39, "France", true},
		// Alpha-2 codes name the same countries.
		{"US", 379.26, "United States", true},
		{"gb", 268.329, "United Kingdom", true},
		{"NL", 388.702, "Netherlands", true},
		// Unknown codes, and codes of neither length.
		{"XYZ", 0, "", false},
		{"UK", 0, "", false},
		{"U", 0, "", false},
		{"USAX", 0, "", false},
		{"", 0, "", false},
	} {
		g, country, ok := CountryCarbonIntensity(tc.code)
		if g != tc.want || country != tc.country || ok != tc.ok {
			t.Errorf("CountryCarbonIntensity(%q) = %v, %q, %v; want %v, %q, %v",
				tc.code, g, country, ok, tc.want, tc.country, tc.ok)
		}
	}
}

func TestCarbonTable(t *testing.T) {
	// The countries where inference commonly runs must all be present.
	required := []string{"USA", "CAN", "MEX", "BRA", "ARG", "CHL", "GBR", "IRL", "FRA", "DEU", "NLD", "BEL",
		"CHE", "AUT", "ITA", "ESP", "PRT", "SWE", "NOR", "FIN", "DNK", "POL", "CZE", "ISR", "ARE", "SAU",
		"IND", "CHN", "JPN", "KOR", "TWN", "SGP", "MYS", "IDN", "AUS", "NZL", "ZAF"}
	codes := CarbonCountries()
	if !slices.IsSorted(codes) {
		t.Errorf("CarbonCountries() not sorted: %v", codes)
	}
	for _, code := range required {
		if !slices.Contains(codes, code) {
			t.Errorf("CarbonCountries() lacks %s", code)
		}
	}
	alpha2 := map[string]string{}
	for _, code := range codes {
		n := nationalIntensities[code]
		if len(n.alpha2) != 2 || n.name == "" || n.gPerKWh <= 0 || n.gPerKWh > 1000 {
			t.Errorf("%s: implausible entry %+v", code, n)
		}
		if other, dup := alpha2[n.alpha2]; dup {
			t.Errorf("%s and %s share alpha-2 code %s", other, code, n.alpha2)
		}
		alpha2[n.alpha2] = code
	}
}
