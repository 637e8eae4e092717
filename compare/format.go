package compare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/tokenwatt/tokenwatt/internal/termtext"
	"github.com/tokenwatt/tokenwatt/report"
)

// Formats of Write.
const (
	FormatTable    = "table"
	FormatMarkdown = "markdown"
	FormatJSON     = "json"
)

// Write writes r in format: an aligned table for a terminal, Markdown
// for a CI comment, or JSON.
func Write(w io.Writer, r *Result, format string) error {
	var err error
	switch format {
	case FormatJSON:
		b, jerr := json.MarshalIndent(r, "", "  ")
		if jerr != nil {
			return jerr
		}
		_, err = w.Write(append(b, '\n'))
	case FormatMarkdown:
		_, err = w.Write(markdown(r))
	case FormatTable, "":
		_, err = w.Write(table(r))
	default:
		return fmt.Errorf("format %q: want table, markdown or json", format)
	}
	return err
}

// cells are a figure's table cells: label (unit), base, new, Δ, Δ %,
// interval, verdict.
func (f *Figure) cells() []string {
	label := f.Label
	if f.Unit != "" {
		label += " (" + f.Unit + ")"
	}
	ci, verdict := "", ""
	switch {
	case f.CI != nil:
		ci = fmt.Sprintf("[%s, %s]", signedPct(f.CI.Lo), signedPct(f.CI.Hi))
		verdict = f.Verdict
		if f.Verdict != VerdictNone {
			if f.Worse {
				verdict += ", worse"
			} else if f.Better != "" {
				verdict += ", better"
			}
		}
	case f.Untested != "":
		ci = "-"
		verdict = "untested: " + f.Untested
	}
	change := "-"
	if f.Change != nil {
		change = signedPct(*f.Change) + " %"
	}
	return []string{label, report.Number(f.Base), report.Number(f.New), signedNumber(f.Delta), change, ci, verdict}
}

func header(confidence float64) []string {
	return []string{"figure", "base", "new", "Δ", "Δ %", formatPct(confidence*100) + " % CI of Δ %", "verdict"}
}

func runLine(r RunInfo) string {
	s := termtext.Escape(r.RunID)
	if r.BenchmarkName != "" && r.BenchmarkName != r.RunID {
		s += "  " + termtext.Escape(r.BenchmarkName)
	}
	s += fmt.Sprintf("  (%d requests)", r.Requests)
	if r.Simulated {
		s += "  SIMULATED"
	}
	return s
}

func table(r *Result) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "base  %s\n", runLine(r.Base))
	for _, n := range r.Base.Notes {
		fmt.Fprintf(&buf, "      note: %s\n", termtext.Escape(n))
	}
	for _, c := range r.Comparisons {
		buf.WriteByte('\n')
		fmt.Fprintf(&buf, "new   %s\n", runLine(c.New))
		for _, n := range c.New.Notes {
			fmt.Fprintf(&buf, "      note: %s\n", termtext.Escape(n))
		}
		for _, d := range c.Differences {
			fmt.Fprintf(&buf, "      DIFFERENT (--allow-different): %s\n", termtext.Escape(d))
		}
		for _, n := range c.Notes {
			fmt.Fprintf(&buf, "      differs: %s\n", termtext.Escape(n))
		}
		tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  "+strings.Join(header(r.Method.Confidence), "\t"))
		for i := range c.Figures {
			fmt.Fprintln(tw, "  "+strings.Join(c.Figures[i].cells(), "\t"))
		}
		tw.Flush()
		for _, b := range c.Regressions {
			fmt.Fprintf(&buf, "  REGRESSION %s\n", b)
		}
		for _, u := range c.Untested {
			fmt.Fprintf(&buf, "  UNTESTED --fail-on %s\n", u)
		}
	}
	buf.WriteByte('\n')
	fmt.Fprintf(&buf, "Method: %s: %s\n", r.Method.Name, r.Method.Description)
	return trimLines(buf.Bytes())
}

// trimLines drops the trailing blanks tabwriter pads lines with.
func trimLines(b []byte) []byte {
	var out bytes.Buffer
	for l := range strings.Lines(string(b)) {
		out.WriteString(strings.TrimRight(l, " \n"))
		out.WriteByte('\n')
	}
	return out.Bytes()
}

func markdown(r *Result) []byte {
	var buf bytes.Buffer
	esc := func(s string) string { return strings.ReplaceAll(termtext.Escape(s), "|", `\|`) }
	fmt.Fprintf(&buf, "**loadgen compare**, base `%s`", esc(r.Base.RunID))
	if r.Base.Simulated {
		buf.WriteString(" (SIMULATED)")
	}
	buf.WriteString("\n")
	for _, n := range r.Base.Notes {
		fmt.Fprintf(&buf, "\n> note: %s\n", esc(n))
	}
	for _, c := range r.Comparisons {
		fmt.Fprintf(&buf, "\n#### `%s` vs base `%s`", esc(c.New.RunID), esc(r.Base.RunID))
		if c.New.Simulated {
			buf.WriteString(" (SIMULATED)")
		}
		buf.WriteString("\n\n")
		for _, n := range c.New.Notes {
			fmt.Fprintf(&buf, "- note: %s\n", esc(n))
		}
		for _, d := range c.Differences {
			fmt.Fprintf(&buf, "- **different** (`--allow-different`): %s\n", esc(d))
		}
		for _, n := range c.Notes {
			fmt.Fprintf(&buf, "- differs: %s\n", esc(n))
		}
		if len(c.New.Notes)+len(c.Differences)+len(c.Notes) > 0 {
			buf.WriteString("\n")
		}
		fmt.Fprintf(&buf, "| %s |\n|---|---:|---:|---:|---:|---|---|\n", strings.Join(header(r.Method.Confidence), " | "))
		for i := range c.Figures {
			cells := c.Figures[i].cells()
			for j := range cells {
				cells[j] = esc(cells[j])
			}
			if c.Figures[i].Worse {
				cells[6] = "**" + cells[6] + "**"
			}
			fmt.Fprintf(&buf, "| %s |\n", strings.Join(cells, " | "))
		}
		for _, b := range c.Regressions {
			fmt.Fprintf(&buf, "\n:x: **regression** `%s`\n", b)
		}
		for _, u := range c.Untested {
			fmt.Fprintf(&buf, "\n:warning: untested `--fail-on` %s\n", esc(u))
		}
	}
	fmt.Fprintf(&buf, "\n<sub>%s: %s</sub>\n", r.Method.Name, esc(r.Method.Description))
	return buf.Bytes()
}

func signedNumber(p *float64) string {
	s := report.Number(p)
	if p != nil && *p >= 0 && s != "-" {
		s = "+" + s
	}
	return s
}
