// Package inventory is the worked example of README.md: a participant
// (package stock) serving a new step, whose contract is here, and a shop
// (package shop) running it before sagabox's own two steps.
package inventory

import "github.com/sagabox/sagabox/pkg/contract"

// Reservation is the step in which the stock service sets an order's
// quantity of an item aside.
func Reservation() contract.Step[ReserveRequest] {
	return contract.Step[ReserveRequest]{Name: "inventory-reservation", ReplyType: "StockUpdated",
		Succeeded: "RESERVED", Failed: "OUT_OF_STOCK", Cancelled: "RELEASED"}
}

// ReserveRequest asks for (REQUEST) or gives back (CANCEL) a quantity of an
// item.
type ReserveRequest struct {
	OrderID  int64  `json:"order-id"`
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}
