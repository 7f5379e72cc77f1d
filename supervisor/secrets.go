package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/hoststate"
	"github.com/astrid-go/astrid/manifests"
)

// SharedScope is the directory name of secrets shared by every principal.
// It cannot collide with a principal id ('@' is not a principal character).
const SharedScope = "@shared"

// FileSecrets is the node's secret store: one file per secret, mode 0600,
// under <data>/secrets/<principal|@shared>/<capsule>/<KEY>. Values are never
// logged, never put in errors and never held in capsule config memory.
//
// # Concurrency
//
// Goroutine-safe: every call is a single file operation; a Set writes a
// temporary file and renames it.
type FileSecrets struct {
	dir string
}

var secretKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,127}$`)

// NewFileSecrets opens (creating, mode 0700) the store under dir.
func NewFileSecrets(dir string) (*FileSecrets, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("supervisor: secrets: %w", err)
	}
	return &FileSecrets{dir: dir}, nil
}

func (f *FileSecrets) path(scope, capsule, key string) (string, error) {
	if scope != SharedScope && !bus.ValidPrincipal(scope) {
		return "", fmt.Errorf("secrets: invalid principal %q", scope)
	}
	if err := manifests.ValidateCapsuleID(capsule); err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	if !secretKeyRE.MatchString(key) {
		return "", fmt.Errorf("secrets: invalid key %q", key)
	}
	return filepath.Join(f.dir, scope, capsule, key), nil
}

// Get implements hoststate.SecretStore: principal's scope, then shared.
func (f *FileSecrets) Get(principal, capsule, key string) ([]byte, error) {
	for _, scope := range []string{principal, SharedScope} {
		p, err := f.path(scope, capsule, key)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(p)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("secrets: read %s/%s: %w", capsule, key, errors.Unwrap(err))
		}
	}
	return nil, hoststate.ErrNotFound
}

// Set implements hoststate.SecretStore; scope is a principal or
// SharedScope.
func (f *FileSecrets) Set(scope, capsule, key string, value []byte) error {
	p, err := f.path(scope, capsule, key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("secrets: %w", err)
	}
	if _, err := tmp.Write(value); err != nil {
		tmp.Close()
		return fmt.Errorf("secrets: write %s/%s failed", capsule, key)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	return os.Rename(tmp.Name(), p)
}

// Delete removes a secret; deleting a missing one is not an error.
func (f *FileSecrets) Delete(scope, capsule, key string) error {
	p, err := f.path(scope, capsule, key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("secrets: delete %s/%s: %w", capsule, key, errors.Unwrap(err))
	}
	return nil
}

// List returns the secret keys of capsule in scope, sorted (names only).
func (f *FileSecrets) List(scope, capsule string) ([]string, error) {
	p, err := f.path(scope, capsule, "x")
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Dir(p))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	var keys []string
	for _, e := range ents {
		if !e.IsDir() && secretKeyRE.MatchString(e.Name()) {
			keys = append(keys, e.Name())
		}
	}
	sort.Strings(keys)
	return keys, nil
}
