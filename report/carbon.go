package report

import (
	"slices"
	"strings"
)

// CarbonSource names where the national figures come from (for docs and
// log lines).
const CarbonSource = "Our World in Data / Ember 2021 electricity carbon intensity, as shipped in CodeCarbon's global_energy_mix.json"

// DefaultCarbonIntensity is the world mean CodeCarbon uses when no
// country is known, in g CO2eq per kWh. global_energy_mix.json has no
// world entry, so this is CodeCarbon's own constant, not a table value.
const DefaultCarbonIntensity = 475.0

type nationalIntensity struct {
	alpha2, name string
	gPerKWh      float64
}

// nationalIntensities maps ISO 3166-1 alpha-3 codes (what the Python
// POC's metrics.country_iso_code holds, as CodeCarbon takes them) to 2021
// national average grid intensities from CarbonSource, for the countries
// where inference commonly runs. The figures and names are data, copied
// as published in codecarbon/data/private_infra/global_energy_mix.json
// ("carbon_intensity" and "country_name"); do not round or recompute them.
var nationalIntensities = map[string]nationalIntensity{
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
	"ESP": {"ES", "Spain", 193.863},
	"FIN": {"FI", "Finland", 145.541},
	"FRA": {"FR", "France", 67.39},
	"GBR": {"GB", "United Kingdom", 268.329},
	"GRC": {"GR", "Greece", 353.339},
	"HKG": {"HK", "Hong Kong", 683.972},
	"HUN": {"HU", "Hungary", 233.037},
	"IDN": {"ID", "Indonesia", 623.157},
	"IND": {"IN", "India", 637.182},
	"IRL": {"IE", "Ireland", 363.608},
	"ISR": {"IL", "Israel", 548.03},
	"ITA": {"IT", "Italy", 340.794},
	"JPN": {"JP", "Japan", 478.545},
	"KOR": {"KR", "South Korea", 458.081},
	"MEX": {"MX", "Mexico", 399.852},
	"MYS": {"MY", "Malaysia", 548.611},
	"NLD": {"NL", "Netherlands", 388.702},
	"NOR": {"NO", "Norway", 27.55},
	"NZL": {"NZ", "New Zealand", 132.427},
	"POL": {"PL", "Poland", 660.122},
	"PRT": {"PT", "Portugal", 219.053},
	"SAU": {"SA", "Saudi Arabia", 571.336},
	"SGP": {"SG", "Singapore", 487.937},
	"SVK": {"SK", "Slovakia", 169.589},
	"SWE": {"SE", "Sweden", 45.817},
	"THA": {"TH", "Thailand", 506.635},
	"TUR": {"TR", "Turkey", 430.401},
	"TWN": {"TW", "Taiwan", 573.275},
	"UKR": {"UA", "Ukraine", 240.175},
	"USA": {"US", "United States", 379.26},
	"VNM": {"VN", "Vietnam", 448.217},
	"ZAF": {"ZA", "South Africa", 715.681},
}

// CountryCarbonIntensity returns the national average grid intensity, in
// g CO2eq per kWh, for an ISO 3166-1 alpha-3 code or the alpha-2 code of
// the same country, case-insensitive, with the country's name. ok is
// false for a code not in the table.
func CountryCarbonIntensity(code string) (gPerKWh float64, country string, ok bool) {
	code = strings.ToUpper(strings.TrimSpace(code))
	if n, found := nationalIntensities[code]; found {
		return n.gPerKWh, n.name, true
	}
	if len(code) == 2 {
		for _, n := range nationalIntensities {
			if n.alpha2 == code {
				return n.gPerKWh, n.name, true
			}
		}
	}
	return 0, "", false
}

// CarbonCountries lists the alpha-3 codes known, sorted (for an error
// message or documentation).
func CarbonCountries() []string {
	codes := make([]string, 0, len(nationalIntensities))
	for code := range nationalIntensities {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	return codes
}
