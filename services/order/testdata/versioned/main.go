// Command versioned is the order service of the test of a changed saga
// definition (services/order/versions_test.go), holding the versions of
// order-placement that -versions names: version 1 is the service's own
// (credit approval, then payment); version 2 reserves the ordered item in
// the worked example's stock service first (examples/inventory) and gives
// the payment a deadline twice as long.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/sagabox/sagabox/examples/inventory"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/order"
	"github.com/sagabox/sagabox/services/order/internal/app"
)

func main() {
	versions := flag.String("versions", "1", "the order-placement versions held, comma-separated (1, 2)")
	flag.Parse()
	defs := func(s app.Settings) []saga.Definition {
		out := []saga.Definition{app.CancellationDefinition(s)}
		for _, v := range strings.Split(*versions, ",") {
			switch v {
			case "1":
				out = append(out, app.PlacementDefinition(s))
			case "2":
				out = append(out, placementV2(s))
			}
		}
		return out
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := order.ServiceWith(defs).Run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "versioned:", err)
		os.Exit(1)
	}
}

// placementV2 is version 1 with a step added before the others — the
// item's stock reserved — and the payment's deadline doubled.
func placementV2(s app.Settings) saga.Definition {
	v1 := app.PlacementDefinition(s)
	reserve := saga.Call(inventory.Reservation(), func(p app.Placement) (inventory.ReserveRequest, error) {
		return inventory.ReserveRequest{OrderID: p.OrderID, SKU: strconv.FormatInt(p.ItemID, 10), Quantity: int64(p.Quantity)}, nil
	}).Deadline(v1.Steps[0].Deadline).Step()
	d := v1
	d.Version = 2
	d.Steps = append([]saga.Step{reserve}, v1.Steps...)
	d.Steps[2].Deadline.Timeout *= 2
	return d
}
