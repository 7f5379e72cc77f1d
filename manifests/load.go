package manifests

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Load reads and parses a manifest. path is a manifest file (any name) or a
// capsule directory containing Capsule.toml. Diagnostics name the file as
// the path that was read.
//
// I/O failures return a nil manifest and an error wrapping the cause
// (ErrNotFound when a directory has no Capsule.toml); otherwise Load returns
// what Parse returns.
func Load(path string) (*Manifest, []Diagnostic, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("manifests: load: %w", err)
	}
	if fi.IsDir() {
		path = filepath.Join(path, FileName)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w in %s", ErrNotFound, filepath.Dir(path))
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("manifests: load: %w", err)
	}
	return Parse(path, data)
}

// Discover returns the manifest paths under root, sorted:
//   - root is a file: just root;
//   - root is a directory with a Capsule.toml: that file;
//   - otherwise every root/<dir>/Capsule.toml (one level deep).
//
// It returns an error wrapping ErrNotFound when nothing is found. Resolving
// duplicate package names (first root wins) is the caller's job.
func Discover(root string) ([]string, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("manifests: discover: %w", err)
	}
	if !fi.IsDir() {
		return []string{root}, nil
	}
	own := filepath.Join(root, FileName)
	if st, err := os.Stat(own); err == nil && !st.IsDir() {
		return []string{own}, nil
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("manifests: discover: %w", err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(root, e.Name(), FileName)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w in %s or its subdirectories", ErrNotFound, root)
	}
	sort.Strings(out)
	return out, nil
}
