// Package registry is the one registry of the components of sagabox: what
// runs, in which role, on which port, against which database, captured by
// which connector file, with how many instances by default. Everything that
// lists components derives from it: `sagabox up` and its flags, the
// binary's subcommands, the CLIs, the test stack of the end-to-end tests
// and the test lists; tests check docker-compose.yml,
// deploy/postgres/init.sql, deploy/prometheus/prometheus.yml and the
// Dockerfile against it. Adding a participant is adding one entry.
package registry

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/contract"
	"github.com/sagabox/sagabox/services/customer"
	"github.com/sagabox/sagabox/services/order"
	"github.com/sagabox/sagabox/services/payment"
)

// Role is what a component does.
type Role string

// The roles.
const (
	Orchestrator Role = "orchestrator" // a service that runs sagas (pkg/saga)
	Participant  Role = "participant"  // a service that serves steps (pkg/participant)
	Broker       Role = "broker"       // the embedded Kafka-protocol broker (make run only)
	Relay        Role = "relay"        // the outbox relays (make run; Debezium in Docker)
	Console      Role = "console"      // the dashboard
)

// Component is one part of the system.
type Component struct {
	Name string // the subcommand and process name ("order"), the Docker service "<name>-service"
	Role Role
	// Port is where it listens locally (127.0.0.1) and in Docker: the
	// HTTP API of a service or the console, the broker's Kafka port.
	Port int
	// Service runs a service (an orchestrator or a participant);
	// nil for the others.
	Service func() platform.Service
	// Database, Role and Password: a service's database, the role it and
	// the connectors capturing it log in as.
	Database, DBRole, DBPassword string
	// Migrations of the service's database.
	Migrations migrations.Schema
	// Connectors are the Debezium connector files capturing its database
	// (debezium/connectors/<name>.json).
	Connectors []string
	// Steps a participant serves.
	Steps []contract.Info
	// Instances is how many `sagabox up` runs by default.
	Instances int
	// CardKeys: the service seals or opens card numbers, and only such a
	// service is given the card keys.
	CardKeys bool
}

// IsService reports an orchestrator or a participant.
func (c Component) IsService() bool { return c.Service != nil }

// Run runs the component's service until ctx ends (a service only).
func (c Component) Run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	return c.Service().Run(ctx, getenv, stdout)
}

// DockerName is the component's service name in docker-compose.yml.
func (c Component) DockerName() string {
	if c.IsService() {
		return c.Name + "-service"
	}
	return c.Name
}

// URLEnv is the environment variable a CLI reads the service's URL from:
// "ORDER_URL".
func (c Component) URLEnv() string { return strings.ToUpper(c.Name) + "_URL" }

// Components are the components of the system, in start order.
func Components() []Component {
	return []Component{
		{Name: "broker", Role: Broker, Port: 9092, Instances: 1},
		{Name: "relay", Role: Relay, Instances: 1},
		{Name: "order", Role: Orchestrator, Port: 8080, Service: order.Service, Database: "orderdb", DBRole: "orderuser",
			DBPassword: "orderpw", Migrations: migrations.Order(), Connectors: []string{"order-outbox", "order-sagastate"},
			Instances: 1, CardKeys: true},
		{Name: "customer", Role: Participant, Port: 8081, Service: customer.Service, Database: "customerdb", DBRole: "customeruser",
			DBPassword: "customerpw", Migrations: migrations.Customer(), Connectors: []string{"customer-outbox"},
			Steps: []contract.Info{contracts.CreditApproval().Info(), contracts.CreditRelease().Info()}, Instances: 1},
		{Name: "payment", Role: Participant, Port: 8082, Service: payment.Service, Database: "paymentdb", DBRole: "paymentuser",
			DBPassword: "paymentpw", Migrations: migrations.Payment(), Connectors: []string{"payment-outbox"},
			Steps: []contract.Info{contracts.Payment().Info(), contracts.PaymentRefund().Info()}, Instances: 1, CardKeys: true},
		{Name: "console", Role: Console, Port: 8070, Instances: 1},
	}
}

// Services are the components that are services, in start order.
func Services() []Component {
	return slices.DeleteFunc(Components(), func(c Component) bool { return !c.IsService() })
}

// Lookup returns the component called name.
func Lookup(name string) (Component, error) {
	for _, c := range Components() {
		if c.Name == name {
			return c, nil
		}
	}
	return Component{}, fmt.Errorf("no component %q", name)
}

// ServiceNames lists the services' names, in start order.
func ServiceNames() []string {
	var names []string
	for _, c := range Services() {
		names = append(names, c.Name)
	}
	return names
}
