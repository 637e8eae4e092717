package grafana

import (
	"encoding/json"
	"fmt"
)

// Query is one PromQL expression of a dashboard, with where it is used.
type Query struct {
	// Where names the query for humans: `panel "J per output token" (A)`,
	// `variable run_id`, `annotation "Run start"`.
	Where string
	// Expr is the PromQL as written in the dashboard, variables and all;
	// a variable's is its label_values(...) query.
	Expr string
	// Datasource is the uid of the datasource the query names (the
	// panel's when the target names none).
	Datasource string
}

// jsonDashboard is the part of a dashboard's JSON that holds queries.
type jsonDashboard struct {
	Panels      []jsonPanel `json:"panels"`
	Annotations struct {
		List []struct {
			Name       string   `json:"name"`
			Datasource *jsonRef `json:"datasource"`
			Expr       string   `json:"expr"`
			Target     *struct {
				Expr string `json:"expr"`
			} `json:"target"`
		} `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Datasource *jsonRef        `json:"datasource"`
			Query      json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type jsonPanel struct {
	Title      string      `json:"title"`
	Type       string      `json:"type"`
	Datasource *jsonRef    `json:"datasource"`
	Panels     []jsonPanel `json:"panels"` // a collapsed row's
	Targets    []struct {
		RefID      string   `json:"refId"`
		Expr       string   `json:"expr"`
		Datasource *jsonRef `json:"datasource"`
	} `json:"targets"`
}

type jsonRef struct {
	UID string `json:"uid"`
}

func (r *jsonRef) uid() string {
	if r == nil {
		return ""
	}
	return r.UID
}

// QueriesOf lists every PromQL query in a dashboard's JSON: each panel
// target (rows included), each annotation and each query variable.
func QueriesOf(dashboardJSON []byte) ([]Query, error) {
	var d jsonDashboard
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return nil, err
	}
	var qs []Query
	var walk func([]jsonPanel)
	walk = func(ps []jsonPanel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				ds := t.Datasource.uid()
				if ds == "" {
					ds = p.Datasource.uid()
				}
				qs = append(qs, Query{Where: fmt.Sprintf("panel %q (%s)", p.Title, t.RefID), Expr: t.Expr, Datasource: ds})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, a := range d.Annotations.List {
		expr := a.Expr
		if a.Target != nil && a.Target.Expr != "" {
			if expr != "" && expr != a.Target.Expr {
				return nil, fmt.Errorf("annotation %q: expr and target.expr differ", a.Name)
			}
			expr = a.Target.Expr
		}
		qs = append(qs, Query{Where: fmt.Sprintf("annotation %q", a.Name), Expr: expr, Datasource: a.Datasource.uid()})
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			// Grafana also stores {"query": "...", "refId": ...}.
			var obj struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				return nil, fmt.Errorf("variable %s: query is neither a string nor an object", v.Name)
			}
			q = obj.Query
		}
		qs = append(qs, Query{Where: "variable " + v.Name, Expr: q, Datasource: v.Datasource.uid()})
	}
	return qs, nil
}
