package report

import (
	"slices"
	"strings"
)

// CarbonSource names where the national figures come from.
const CarbonSource = "Our World in Data / Ember 2021 electricity carbon intensity, as shipped in CodeCarbon's global_energy_mix.json"

// DefaultCarbonIntensity is the world mean CodeCarbon uses when no
// country is known, in g CO2eq per kWh.
const DefaultCarbonIntensity = 475.0

type country struct {
	alpha2, name string
	gPerKWh      float64
}

// countries maps ISO 3166-1 alpha-3 codes (what the Python POC's
// metrics.country_iso_code holds, as CodeCarbon takes them) to 2021
// national average grid intensities from CarbonSource: data, copied as
// published, for the countries where inference commonly runs.
var countries = map[string]country{
	"ARE": {"AE", "United Arab Emirates", 461.845},
	"ARG": {"AR", "Argentina", 357.786},
	"AUS": {"AU", "Australia", 531.247},
	"AUT": {"AT", "Austria", 147.573},
	"BEL": {"BE", "Belgium", 156.922},
	"BRA": {"BR", "Brazil", 158.592},
	"CAN": {"CA", "Canada", 128.461},
	"CHE": {"CH", "Switzerland", 47.101},
	"CHL": {"CL", "Chile", 416.881},
	"CHN": {"CN", "China", 544.355},
	"CZE": {"CZ", "Czechia", 405.589},
	"DEU": {"DE", "Germany", 365.477},
	"DNK": {"DK", "Denmark", 221.416},
	"FRA": {"FR", "France", 67.39},
	"GBR": {"GB", "United Kingdom", 268.329},
	"GRC": {"GR", "Greece", 353.339},
	"HKG": {"HK", "Hong Kong", 683.972},
	"HUN": {"HU", "Hungary", 233.037},
	"IDN": {"ID", "Indonesia", 623.157},
	"IND": {"IN", "India", 637.182},
	"IRL": {"IE", "Ireland", 363.608},
	"JPN": {"JP", "Japan", 478.545},
	"KOR": {"KR", "South Korea", 458.081},
	"MEX": {"MX", "Mexico", 399.852},
	"SVK": {"SK", "Slovakia", 169.589},
	"SWE": {"SE", "Sweden", 45.817},
	"THA": {"TH", "Thailand", 506.635},
	"TUR": {"TR", "Turkey", 430.401},
	"UKR": {"UA", "Ukraine", 240.175},
	"USA": {"US", "United States", 379.26},
	"VNM": {"VN", "Vietnam", 448.217},
	"ZAF": {"ZA", "South Africa", 715.681},
}

// CountryCarbonIntensity returns the national average grid intensity, in
// g CO2eq per kWh, for an ISO 3166-1 alpha-3 code (or its alpha-2 code),
// case-insensitive, with the country's name.
func CountryCarbonIntensity(code string) (gPerKWh float64, name string, ok bool) {
	code = strings.ToUpper(strings.TrimSpace(code))
	if c, found := countries[code]; found {
		return c.gPerKWh, c.name, true
	}
	if len(code) == 2 {
		for _, c := range countries {
			if c.alpha2 == code {
				return c.gPerKWh, c.name, true
			}
		}
	}
	return 0, "", false
}

// CarbonCountries lists the alpha-3 codes known, sorted.
func CarbonCountries() []string {
	codes := make([]string, 0, len(countries))
	for code := range countries {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	return codes
}
