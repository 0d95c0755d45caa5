package console

import (
	"encoding/json"
	"time"
)

// The services' answers, as far as the console reads them.

type sagaJSON struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Status      string            `json:"status"`
	CurrentStep string            `json:"currentStep"`
	StepStatus  map[string]string `json:"stepStatus"`
	Attempt     int               `json:"attempt"`
	Deadline    *time.Time        `json:"deadline"`
	StatusSince time.Time         `json:"statusSince"`
	Version     int               `json:"version"`
	Payload     json.RawMessage   `json:"payload"`
	CreatedAt   time.Time         `json:"createdAt"`
	UpdatedAt   time.Time         `json:"updatedAt"`
}

type sagaListJSON struct {
	Sagas []sagaJSON `json:"sagas"`
	Next  string     `json:"next"`
}

type historyJSON struct {
	Version    int        `json:"version"`
	At         time.Time  `json:"at"`
	Step       string     `json:"step"`
	From       string     `json:"from"`
	To         string     `json:"to"`
	SagaStatus string     `json:"sagaStatus"`
	Attempt    int        `json:"attempt"`
	Deadline   *time.Time `json:"deadline"`
	Cause      struct {
		Kind      string `json:"kind"`
		EventID   string `json:"eventId"`
		Topic     string `json:"topic"`
		EventType string `json:"eventType"`
		Actor     string `json:"actor"`
		Action    string `json:"action"`
		Reason    string `json:"reason"`
	} `json:"cause"`
}

type sagaDetailJSON struct {
	Saga    sagaJSON      `json:"saga"`
	OrderID int64         `json:"orderId"`
	History []historyJSON `json:"history"`
}

type statsJSON struct {
	At      time.Time        `json:"at"`
	Window  string           `json:"window"`
	Bucket  string           `json:"bucket"`
	Now     map[string]int64 `json:"now"`
	Stuck   int64            `json:"stuck"`
	Buckets []struct {
		Start     time.Time `json:"start"`
		Started   int64     `json:"started"`
		Succeeded int64     `json:"succeeded"`
		Aborted   int64     `json:"aborted"`
	} `json:"buckets"`
	Ended int64   `json:"ended"`
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
}

type messagingJSON struct {
	Outbox struct {
		Rows   int64      `json:"rows"`
		Oldest *time.Time `json:"oldest"`
	} `json:"outbox"`
	Parked int64 `json:"parked"`
	Slots  []struct {
		Name          string `json:"name"`
		Active        bool   `json:"active"`
		LagBytes      int64  `json:"lagBytes"`
		RetainedBytes int64  `json:"retainedBytes"`
	} `json:"slots"`
}

type parkedJSON struct {
	ID            int64             `json:"id"`
	Consumer      string            `json:"consumer"`
	Topic         string            `json:"topic"`
	Partition     int32             `json:"partition"`
	Offset        int64             `json:"offset"`
	Key           string            `json:"key"`
	Headers       map[string]string `json:"headers"`
	Error         string            `json:"error"`
	ParkedAt      time.Time         `json:"parkedAt"`
	Status        string            `json:"status"`
	Value         string            `json:"value"`
	ReplayedBy    string            `json:"replayedBy"`
	ReplayOutcome string            `json:"replayOutcome"`
}

type parkedListJSON struct {
	Parked []parkedJSON `json:"parked"`
}

type orderJSON struct {
	OrderID    int64    `json:"orderId"`
	CustomerID int64    `json:"customerId"`
	ItemID     int64    `json:"itemId"`
	Quantity   int      `json:"quantity"`
	PaymentDue int64    `json:"paymentDue"`
	CardLast4  string   `json:"creditCardLast4"`
	Status     string   `json:"status"`
	Saga       sagaJSON `json:"saga"`
}

type allocationJSON struct {
	CustomerID int64     `json:"customerId"`
	Amount     int64     `json:"amount"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

type customerJSON struct {
	ID        int64 `json:"id"`
	OpenLimit int64 `json:"openLimit"`
}

type paymentJSON struct {
	Amount    int64     `json:"amount"`
	CardLast4 string    `json:"creditCardLast4"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
}

type placedJSON struct {
	OrderID int64  `json:"orderId"`
	SagaID  string `json:"sagaId"`
	Status  string `json:"status"`
}
