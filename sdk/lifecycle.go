package sdk

import "encoding/json"

// ElicitKind is the kind of value Elicit asks the operator for.
type ElicitKind string

// Elicit kinds (Astrid's elicit request kinds).
const (
	ElicitText   ElicitKind = "text"
	ElicitSecret ElicitKind = "secret"
	ElicitSelect ElicitKind = "select"
	ElicitArray  ElicitKind = "array"
)

// ElicitRequest asks the operator for one configuration value during the
// install or upgrade hook.
type ElicitRequest struct {
	Kind        ElicitKind `json:"kind"`
	Key         string     `json:"key"`
	Description string     `json:"description,omitempty"`
	// Options are the choices of a select (required for ElicitSelect).
	Options []string `json:"options,omitempty"`
	Default string   `json:"default,omitempty"`
}

// ElicitAnswer is the operator's answer. A secret is never returned to
// the guest: the host stores it and sets SecretStored; read it later with
// Config.
type ElicitAnswer struct {
	Value        string   `json:"value,omitempty"`
	Values       []string `json:"values,omitempty"`
	SecretStored bool     `json:"secret_stored,omitempty"`
}

// Elicit asks the operator for a value and blocks until the answer comes
// (at most 120 s: ErrTimeout; ErrCancelled when the operator declines or the
// capsule stops). It works only inside the install and upgrade hooks
// (ErrNotInLifecycle otherwise).
func Elicit(req ElicitRequest) (ElicitAnswer, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return ElicitAnswer{}, &Error{Code: InvalidInput, Detail: err.Error()}
	}
	rp, rl := buf(b)
	op, oc := outArgs()
	data, err := collect(sysElicit(rp, rl, op, oc))
	if err != nil {
		return ElicitAnswer{}, err
	}
	var a ElicitAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		return ElicitAnswer{}, &Error{Code: Internal, Detail: "sdk: bad elicit answer: " + err.Error()}
	}
	return a, nil
}

// HasSecret reports whether the secret-typed [env] key has a value in the
// secret store (for the invoking principal, or shared).
func HasSecret(key string) (bool, error) {
	kp, kl := str(key)
	n := sysHasSecret(kp, kl)
	if n < 0 {
		return false, hostError(n)
	}
	return n == 1, nil
}
