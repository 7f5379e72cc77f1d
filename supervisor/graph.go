package supervisor

import (
	"strings"

	"github.com/astrid-go/astrid/manifests"
)

// Graph is the dependency graph of a set of capsules: an edge runs from
// every capsule exporting an interface (or, in legacy manifests, providing
// a "kind:name") to every capsule importing (requiring) it. All satisfying
// providers get an edge (any-satisfies), as in Astrid's toposort_manifests.
type Graph struct {
	// Order is the boot order: a topological order that keeps discovery
	// order among independent capsules and puts uplinks first. With a cycle
	// it is the discovery order.
	Order []string
	// Deps maps a capsule to the capsules it waits for before it starts.
	// Edges inside a cycle are dropped so the cycle still boots.
	Deps map[string][]string
	// Dependents is the inverse of Deps.
	Dependents map[string][]string
	// Cycle lists the members of a dependency cycle, if one was found.
	Cycle []string
	// Unsatisfied maps a capsule to the imports nobody provides (a warning:
	// the capsule still loads).
	Unsatisfied map[string][]string
}

// BuildGraph computes the boot order of ms, given in discovery order.
func BuildGraph(ms []*manifests.Manifest) Graph {
	g := Graph{Deps: map[string][]string{}, Dependents: map[string][]string{}, Unsatisfied: map[string][]string{}}
	ids := make([]string, len(ms))
	index := map[string]int{}
	for i, m := range ms {
		ids[i] = m.ID()
		index[m.ID()] = i
	}
	edges := make([]map[int]bool, len(ms)) // edges[consumer] = providers
	for i := range edges {
		edges[i] = map[int]bool{}
	}
	for ci, c := range ms {
		for _, imp := range c.Imports {
			found := false
			for pi, p := range ms {
				if pi == ci {
					continue
				}
				for _, ex := range p.Exports {
					if ex.Namespace != imp.Namespace || ex.Interface != imp.Interface {
						continue
					}
					if imp.Requirement != nil && ex.Version != nil && !imp.Requirement.Check(ex.Version) {
						continue
					}
					edges[ci][pi] = true
					found = true
				}
			}
			if !found {
				g.Unsatisfied[c.ID()] = append(g.Unsatisfied[c.ID()], imp.Namespace+":"+imp.Interface+" "+imp.RequirementRaw)
			}
		}
		if c.Dependencies == nil {
			continue
		}
		for _, req := range c.Dependencies.Requires {
			found := false
			for pi, p := range ms {
				if pi == ci || p.Dependencies == nil {
					continue
				}
				for _, prov := range p.Dependencies.Provides {
					if prov.Kind == req.Kind && segmentsMatch(prov.Name, req.Name) {
						edges[ci][pi] = true
						found = true
					}
				}
			}
			if !found {
				g.Unsatisfied[c.ID()] = append(g.Unsatisfied[c.ID()], req.String())
			}
		}
	}

	// Kahn's algorithm; among ready capsules take uplinks first, then
	// discovery order.
	indeg := make([]int, len(ms))
	for ci := range ms {
		indeg[ci] = len(edges[ci])
	}
	done := make([]bool, len(ms))
	var order []int
	for len(order) < len(ms) {
		pick := -1
		for pass := 0; pass < 2 && pick < 0; pass++ {
			for i, m := range ms {
				if done[i] || indeg[i] != 0 {
					continue
				}
				if pass == 0 && !m.Capabilities.Uplink {
					continue
				}
				pick = i
				break
			}
		}
		if pick < 0 {
			break // cycle
		}
		done[pick] = true
		order = append(order, pick)
		for ci := range ms {
			if edges[ci][pick] {
				indeg[ci]--
			}
		}
	}
	inCycle := map[int]bool{}
	if len(order) < len(ms) {
		for i := range ms {
			if !done[i] {
				inCycle[i] = true
				g.Cycle = append(g.Cycle, ids[i])
			}
		}
		order = order[:0]
		for i := range ms {
			order = append(order, i)
		}
	}
	for _, i := range order {
		g.Order = append(g.Order, ids[i])
	}
	for ci := range ms {
		for pi := range ms {
			if !edges[ci][pi] || (inCycle[ci] && inCycle[pi]) {
				continue
			}
			g.Deps[ids[ci]] = append(g.Deps[ids[ci]], ids[pi])
			g.Dependents[ids[pi]] = append(g.Dependents[ids[pi]], ids[ci])
		}
	}
	// Keep Deps and Dependents in boot order for deterministic output.
	pos := map[string]int{}
	for i, id := range g.Order {
		pos[id] = i
	}
	for _, m := range []map[string][]string{g.Deps, g.Dependents} {
		for k, v := range m {
			sortByPos(v, pos)
			m[k] = v
		}
	}
	return g
}

func sortByPos(v []string, pos map[string]int) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && pos[v[j]] < pos[v[j-1]]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

// segmentsMatch matches legacy provides/requires names per segment, where
// "*" covers exactly one segment on either side.
func segmentsMatch(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	if len(as) != len(bs) {
		return false
	}
	for i := range as {
		if as[i] != bs[i] && as[i] != "*" && bs[i] != "*" {
			return false
		}
	}
	return true
}

// After returns the capsules booted after id that depend on it, directly
// or transitively: the "rest" of rest_for_one generalised from list order to
// the dependency graph.
func (g Graph) After(id string) []string {
	seen := map[string]bool{id: true}
	var out []string
	queue := []string{id}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, d := range g.Dependents[cur] {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
				queue = append(queue, d)
			}
		}
	}
	pos := map[string]int{}
	for i, x := range g.Order {
		pos[x] = i
	}
	sortByPos(out, pos)
	return out
}
