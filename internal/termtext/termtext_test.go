package termtext

import "testing"

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"},
		{`quotes "stay" and back\slashes`, `quotes "stay" and back\slashes`},
		{"évian 模型", "évian 模型"},
		{"evil\x1b[31mRED\nnext\tline\r", `evil\x1b[31mRED\nnext\tline\r`},
		{"nul\x00del\x7f", `nul\x00del\x7f`},
		{"c1 \u009b2J and \u0085", `c1 \u009b2J and \u0085`},
		{"bad \xff\xfe utf-8", `bad \xff\xfe utf-8`},
		{"é\x1b", `é\x1b`},
	} {
		if got := Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
