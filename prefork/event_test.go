package prefork

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Each kind's comment in event.go ends with the fields it sets, in
// brackets; they must be exactly the table's, so that the docs, the log
// line and String come from one description. Every kind has an entry.
func TestEventDocsMatchTheTable(t *testing.T) {
	file, err := parser.ParseFile(token.NewFileSet(), "event.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	brackets := regexp.MustCompile(`\[([^\]]*)\]\s*$`)
	seen := 0
	for _, d := range file.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for i, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			name := vs.Names[0].Name
			if !strings.HasPrefix(name, "Event") {
				continue
			}
			k := EventKind(i + 1)
			spec := kinds[k]
			if spec.name == "" {
				t.Errorf("%s has no entry in kinds", name)
				continue
			}
			seen++
			m := brackets.FindStringSubmatch(strings.TrimSpace(vs.Comment.Text()))
			if m == nil {
				t.Errorf("%s: comment %q does not end with its [fields]", name, vs.Comment.Text())
				continue
			}
			var doc []string
			for f := range strings.SplitSeq(m[1], ",") {
				if f = strings.TrimSpace(f); f != "" {
					doc = append(doc, f)
				}
			}
			var table []string
			for _, f := range spec.fields {
				top, _, _ := strings.Cut(f.name, ".")
				if !slices.Contains(table, top) {
					table = append(table, top)
				}
			}
			if !slices.Equal(doc, table) {
				t.Errorf("%s: comment lists %v, table %v", name, doc, table)
			}
		}
	}
	if seen != len(kinds)-1 {
		t.Errorf("%d kinds documented, the table has %d", seen, len(kinds)-1)
	}
	// Every field the table names is a field of Event that value knows.
	ev := reflect.TypeFor[Event]()
	for k, spec := range kinds {
		for _, f := range spec.fields {
			top, _, _ := strings.Cut(f.name, ".")
			if _, ok := ev.FieldByName(top); !ok {
				t.Errorf("%v names %q, not a field of Event", EventKind(k), f.name)
			}
		}
	}
}
