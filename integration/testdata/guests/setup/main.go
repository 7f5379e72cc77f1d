// Command setup is a test guest for install/upgrade lifecycle hooks.
//
// The install hook elicits UNITS (a select) and API_KEY (a secret) and
// records UNITS in KV. The upgrade hook records the previous version in KV
// key "upgraded_from", or fails when the [env] key fail_upgrade is "yes".
// Handler "show" (topic setup.v1.show) replies with what the hooks left:
// {"units","installed","upgraded_from","has_secret","api_key_len"}. Handler
// "elicit" (setup.v1.elicit) tries to elicit outside the lifecycle and
// replies {"err": "<code>"}.
package main

import (
	"errors"

	"github.com/astrid-go/astrid/sdk"
)

func init() {
	sdk.OnInstall(func() error {
		units, err := sdk.Elicit(sdk.ElicitRequest{Kind: sdk.ElicitSelect, Key: "UNITS",
			Description: "Units for reports", Options: []string{"metric", "imperial"}, Default: "metric"})
		if err != nil {
			return err
		}
		key, err := sdk.Elicit(sdk.ElicitRequest{Kind: sdk.ElicitSecret, Key: "API_KEY", Description: "API key"})
		if err != nil {
			return err
		}
		if key.Value != "" {
			return errors.New("the host returned a secret to the guest")
		}
		if !key.SecretStored {
			return errors.New("secret not stored")
		}
		if err := sdk.KVSet("units", []byte(units.Value)); err != nil {
			return err
		}
		return sdk.KVSet("installed", []byte("yes"))
	})
	sdk.OnUpgrade(func(prev string) error {
		if v, _, _ := sdk.Config("fail_upgrade"); v == "yes" {
			return errors.New("upgrade refused by test configuration")
		}
		return sdk.KVSet("upgraded_from", []byte(prev))
	})
	sdk.Handle("elicit", func(c *sdk.Call) sdk.Result {
		_, err := sdk.Elicit(sdk.ElicitRequest{Kind: sdk.ElicitText, Key: "LATE"})
		if err == nil {
			return sdk.Reply(map[string]any{"err": ""})
		}
		var e *sdk.Error
		if errors.As(err, &e) {
			return sdk.Reply(map[string]any{"err": e.Code.String()})
		}
		return sdk.Reply(map[string]any{"err": err.Error()})
	})
	sdk.Handle("show", func(c *sdk.Call) sdk.Result {
		get := func(k string) string {
			v, err := sdk.KVGet(k)
			if err != nil {
				return ""
			}
			return string(v)
		}
		has, _ := sdk.HasSecret("API_KEY")
		key, _, _ := sdk.Config("API_KEY")
		return sdk.Reply(map[string]any{
			"units": get("units"), "installed": get("installed"), "upgraded_from": get("upgraded_from"),
			"has_secret": has, "api_key_len": len(key),
		})
	})
}

func main() {}
