package hoststate

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// SecretStore holds secret-typed [env] values outside guest-visible state.
// Lookups go per principal first, then to the shared scope.
type SecretStore interface {
	// Get returns the secret of key for capsule, trying principal's scope
	// first and then the shared one; ErrNotFound when neither has it.
	Get(principal, capsule, key string) ([]byte, error)
	// Set stores a secret in principal's scope.
	Set(principal, capsule, key string, value []byte) error
}

// ElicitRequest is the JSON a guest passes to sys_elicit.
type ElicitRequest struct {
	Kind        string   `json:"kind"`
	Key         string   `json:"key"`
	Description string   `json:"description,omitempty"`
	Options     []string `json:"options,omitempty"`
	Default     string   `json:"default,omitempty"`
}

// ElicitAnswer is what sys_elicit returns to the guest. A secret never
// travels back: SecretStored says it was stored.
type ElicitAnswer struct {
	Value        string   `json:"value,omitempty"`
	Values       []string `json:"values,omitempty"`
	SecretStored bool     `json:"secret_stored,omitempty"`
}

// Elicitor asks the operator for a value on behalf of a capsule in a
// lifecycle phase. It returns the raw answer: for kind "secret" the caller
// stores the value and never hands it to the guest. A declined request
// returns ErrCancelled.
type Elicitor interface {
	Elicit(ctx context.Context, capsule, principal string, req ElicitRequest) (ElicitAnswer, error)
}

// MaxElicitWait bounds one elicit call (Astrid's MAX_ELICIT_TIMEOUT_MS).
const MaxElicitWait = 120 * time.Second

func (s *State) secret(key string) (string, error) {
	if s.secrets == nil {
		return "", errf(CodeNotFound, "secret %q is not set", key)
	}
	v, err := s.secrets.Get(s.EffectivePrincipal(), s.capsuleID, key)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", errf(CodeNotFound, "secret %q is not set", key)
		}
		return "", errf(CodeInternal, "secret store unavailable")
	}
	return string(v), nil
}

// HasSecret implements sys_has_secret.
func (s *State) HasSecret(key string) (bool, error) {
	if s.secrets == nil {
		return false, nil
	}
	_, err := s.secrets.Get(s.EffectivePrincipal(), s.capsuleID, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, errf(CodeInternal, "secret store unavailable")
	}
}

// Elicit implements sys_elicit: only in the install and upgrade phases,
// bounded by MaxElicitWait and the incarnation's cancellation. A secret
// answer is stored and never returned.
func (s *State) Elicit(raw []byte) ([]byte, error) {
	if s.phase == PhaseNone {
		return nil, errf(CodeNotInLifecycle, "elicit works only in the install and upgrade hooks")
	}
	var req ElicitRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, errf(CodeInvalidInput, "elicit request is not valid JSON: %v", err)
	}
	if !slices.Contains([]string{"text", "secret", "select", "array"}, req.Kind) {
		return nil, errf(CodeInvalidInput, "elicit kind %q is not text, secret, select or array", req.Kind)
	}
	if req.Key == "" {
		return nil, errf(CodeInvalidInput, "elicit request has no key")
	}
	if req.Kind == "select" && len(req.Options) == 0 {
		return nil, errf(CodeInvalidInput, "a select needs options")
	}
	if s.elicitor == nil {
		return nil, errf(CodeInternal, "no elicit channel on this node")
	}
	ctx, cancel := context.WithTimeout(s.ctx, MaxElicitWait)
	defer cancel()
	principal := s.EffectivePrincipal()
	ans, err := s.elicitor.Elicit(ctx, s.capsuleID, principal, req)
	switch {
	case err == nil:
	case s.ctx.Err() != nil:
		return nil, ErrCancelled
	case errors.Is(err, context.DeadlineExceeded):
		return nil, errf(CodeTimeout, "no answer within %v", MaxElicitWait)
	case errors.Is(err, ErrCancelled):
		return nil, errf(CodeCancelled, "the operator declined")
	default:
		return nil, errf(CodeInternal, "elicit failed")
	}
	if req.Kind == "secret" {
		if s.secrets == nil {
			return nil, errf(CodeInternal, "no secret store")
		}
		if err := s.secrets.Set(principal, s.capsuleID, req.Key, []byte(ans.Value)); err != nil {
			return nil, errf(CodeInternal, "secret store unavailable")
		}
		ans = ElicitAnswer{SecretStored: true}
	}
	out, _ := json.Marshal(ans)
	return out, nil
}
