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

func TestCut(t *testing.T) {
	for _, tt := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abc", 3, "abc"},
		{"abc", 2, "ab"},
		{"aé", 2, "a"}, // é is 2 bytes: not split
		{"aé", 3, "aé"},
		{"€uro", 2, ""},
		{"abc", 0, ""},
	} {
		if got := Cut(tt.s, tt.n); got != tt.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
		if got := string(Cut([]byte(tt.s), tt.n)); got != tt.want {
			t.Errorf("Cut([]byte(%q), %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}

func TestLabelValue(t *testing.T) {
	if got := LabelValue("ok\xff", 10); got != "ok\uFFFD" {
		t.Errorf("invalid UTF-8: %q", got)
	}
	if got := LabelValue("abcdéfgh", 8); got != "abcd…" { // 5 bytes of room: "abcdé" would split é
		t.Errorf("long value: %q", got)
	}
}
