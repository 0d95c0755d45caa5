package deploy_test

import (
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// The card keys reach the two services that seal (order) and open
// (payment) card numbers, and no other: the one-shot card-keys service
// creates the key file in the named volume cardkeys, which only those two
// mount, read-only, after card-keys completed; no service is given key
// material in its environment.
func TestComposeCardKeys(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	gen := service(t, p, "card-keys")
	if len(gen.Command) != 3 || gen.Command[0] != "card-keys" || gen.Command[1] != "-file" {
		t.Fatalf("card-keys command %v: want card-keys -file FILE", gen.Command)
	}
	file := gen.Command[2]
	dir := path.Dir(file)
	if order := service(t, p, "order-service"); gen.Image != order.Image || gen.Build != nil || gen.PullPolicy != types.PullPolicyNever {
		t.Errorf("card-keys runs image %q (build %v, pull %q): want order-service's image %q, built by the services, never pulled",
			gen.Image, gen.Build, gen.PullPolicy, order.Image)
	}
	if gen.Restart != "" && gen.Restart != types.RestartPolicyNo {
		t.Errorf("card-keys is one-shot: restart = %q", gen.Restart)
	}
	if m := mountOf(gen, "cardkeys"); m == nil || m.Target != dir || m.ReadOnly {
		t.Errorf("card-keys mounts %+v: want the volume cardkeys at %s, writable", m, dir)
	}
	if _, ok := p.Volumes["cardkeys"]; !ok {
		t.Error("no named volume cardkeys")
	}

	for name, s := range p.Services {
		mount := mountOf(s, "cardkeys")
		switch name {
		case "card-keys":
		case "order-service", "payment-service":
			if got := env(t, s, "CARD_KEYS_FILE"); got != file {
				t.Errorf("%s: CARD_KEYS_FILE = %q, want %q", name, got, file)
			}
			if mount == nil || mount.Target != dir || !mount.ReadOnly {
				t.Errorf("%s mounts %+v: want the volume cardkeys at %s, read-only", name, mount, dir)
			}
			if d, ok := s.DependsOn["card-keys"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
				t.Errorf("%s: depends_on card-keys %+v, want condition service_completed_successfully", name, d)
			}
		default:
			if mount != nil {
				t.Errorf("%s mounts the card keys", name)
			}
		}
		for k := range s.Environment {
			if k == "CARD_KEYS" {
				t.Errorf("%s has key material in its environment (CARD_KEYS): use the file", name)
			}
			if k == "CARD_KEYS_FILE" && name != "order-service" && name != "payment-service" {
				t.Errorf("%s is given CARD_KEYS_FILE", name)
			}
		}
	}

	// A new volume takes the owner of the image's directory: the user the
	// services run as must own it.
	text := strings.Join(dockerfileLines(t), "\n")
	if !strings.Contains(text, "install -d -o 10001 -g 10001 -m 0700 "+dir) || !slices.Contains(dockerfileLines(t), "USER 10001:10001") {
		t.Errorf("Dockerfile: want %s created for and owned by USER 10001 (install -d -o 10001 -g 10001 -m 0700)", dir)
	}
}

func mountOf(s types.ServiceConfig, volume string) *types.ServiceVolumeConfig {
	for i, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source == volume {
			return &s.Volumes[i]
		}
	}
	return nil
}
