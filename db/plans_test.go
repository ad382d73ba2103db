package db

import (
	"context"
	"strings"
	"testing"
)

// The queries about a branch's builds walk the build key (workflows_build)
// since migration 0016 dropped workflows_ref so that each delivery writes
// one random-key index fewer: none of them may scan the workflows table,
// which holds every project's history.
func TestRefQueriesWalkTheBuildKey(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	ctx := context.Background()
	var n int
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'workflows_ref'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("workflows_ref still there (%d, %v): every delivery pays for it", n, err)
	}
	for name, q := range map[string]string{"BranchBuilds": branchBuildsQuery, "StartMissed": branchBuiltQuery} {
		rows, err := s.read.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, 1, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "; ")
		if !strings.Contains(got, "INDEX workflows_build (project_id=? AND trigger=? AND ref_type=? AND ref_name=?") {
			t.Errorf("%s: plan %q, want a search of workflows_build by project, trigger, ref type and name", name, got)
		}
	}
}
