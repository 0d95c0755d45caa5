package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sagabox/sagabox/internal/supervisor"
	"github.com/sagabox/sagabox/internal/testenv"
)

// chromium finds the browser the console tests drive. Its absence is a
// missing install step, not a reason to skip: .ci/run installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the console tests need Chromium: apt-get install -y chromium (.ci/run installs it when missing)")
	return ""
}

// artifacts is where the tests write their screenshots: TEST_ARTIFACTS_DIR,
// or .artifacts/ at the repository's root.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TEST_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(t), ".artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is a headless Chromium tab.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The browser starts with the first action run on ctx itself: on a
	// context derived from it, the browser would end with that context.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 900)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b := &browser{t: t, ctx: ctx}
	return b
}

// do runs steps, failing the test after a minute.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v (page text: %s)", err, b.text("body"))
	}
}

// text returns the visible text of the first element sel matches.
func (b *browser) text(sel string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q)?.innerText ?? ""`, sel)))
	return s
}

// until waits for a JavaScript condition on the page, failing with what
// the page shows.
func (b *browser) until(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond),
		chromedp.WithPollingTimeout(80*time.Second))); err != nil {
		b.t.Fatalf("browser: %s: %v\npage text:\n%s", what, err, b.text("main"))
	}
}

// contains fails unless the element sel shows every one of want.
func (b *browser) contains(sel string, want ...string) {
	b.t.Helper()
	got := b.text(sel)
	for _, w := range want {
		if !strings.Contains(got, w) {
			b.t.Errorf("%s does not show %q; it shows:\n%s", sel, w, got)
		}
	}
}

func (b *browser) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return loc
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(artifacts(b.t), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", p)
}

// noCardNumber fails when the page's HTML holds a card number in clear.
func (b *browser) noCardNumber(cards ...string) {
	b.t.Helper()
	html, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range cards {
		if strings.Contains(html, c) {
			b.t.Errorf("page %s shows the card number %s in clear", b.location(), c)
		}
	}
}

func sagaOf(t *testing.T, loc string) string {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(u.Path, "/sagas/") {
		t.Fatalf("not a saga page: %s", loc)
	}
	return path.Base(u.Path)
}

// The dashboard in a real browser, over the whole local system (`sagabox
// up`, one process per component) with a real Jaeger: the three reference
// orders placed through the form reach their final status in the live
// list; the compensated one shows its timeline, its three sides and its
// trace waterfall; a stuck saga is aborted with the admin token; the
// overview counts it all. Then every component's /metrics is checked
// against that traffic (checkMetrics). Screenshots go to the artifacts
// directory.
func TestConsoleInBrowser(t *testing.T) {
	otlp, query := testenv.Jaeger(t)
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	token := hex.EncodeToString(secret)
	// The payment step waits one second, and no sweeper acts on a passed
	// deadline within the test: a saga whose payment service hangs is
	// listed as stuck until an operator acts.
	t.Setenv("SAGA_PAYMENT_TIMEOUT", "1s")
	t.Setenv("SAGA_SWEEP_INTERVAL", "1h")
	t.Setenv("JAEGER_UI_URL", "http://jaeger.local:16686")
	u := startUpEnv(t, filepath.Join(t.TempDir(), "data"), map[string]string{
		"ADMIN_TOKEN": "ops:" + token, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp, "JAEGER_QUERY_URL": query,
	})
	b := newBrowser(t)
	cards := []string{"xxxx-yyyy-dddd-9999", "xxxx-yyyy-dddd-aaaa"}

	// The three reference orders, through the place-order form.
	type scenario struct{ file, saga, order, saga2 string }
	scenarios := []*scenario{
		{file: "place-order.json", saga: "SUCCEEDED", order: "ACCEPTED"},
		{file: "place-invalid-order1.json", saga: "ABORTED", order: "REJECTED"},
		{file: "place-invalid-order2.json", saga: "ABORTED", order: "REJECTED"},
	}
	for _, sc := range scenarios {
		b.do(chromedp.Navigate(u.console+"/place"),
			chromedp.Click(fmt.Sprintf(`form[data-example=%q] button[type=submit]`, sc.file)),
			chromedp.WaitVisible(`.saga-state`))
		b.contains(".flash.ok", "placed")
		sc.saga2 = sagaOf(t, b.location())
	}
	b.do(chromedp.Navigate(u.console + "/sagas"))
	for _, sc := range scenarios {
		b.until(sc.file+" reaches "+sc.saga+" in the list",
			fmt.Sprintf(`document.querySelector('tr[data-saga=%q]')?.dataset.status === %q`, sc.saga2, sc.saga))
	}
	b.noCardNumber(cards...)

	// The compensated saga: timeline, the three sides, the trace.
	compensated := scenarios[1].saga2
	b.do(chromedp.Navigate(u.console + "/sagas/" + compensated))
	b.until("the saga page shows the saga ABORTED", `document.querySelector('.saga-state')?.dataset.status === 'ABORTED'`)
	b.contains("#timeline", "saga started", "credit-approval.response", "payment.response", "FAILED", "COMPENSATING", "COMPENSATED")
	b.contains("#order-side", "REJECTED", "•••• 9999", "49.99")
	b.contains("#step-credit-approval", "UNDONE", "49.99")
	b.contains("#step-payment", "REFUSED", "•••• 9999")
	b.until("the trace waterfall shows every hop, the compensation included", `(() => {
		const names = [...document.querySelectorAll('.waterfall .span-row .wf-name')].map(e => e.textContent.trim());
		const count = (n) => names.filter(x => x === n).length;
		return names.includes('POST /orders') && count('credit-approval.request publish') >= 2 &&
			count('credit-approval.request process') >= 2 && names.includes('payment.request process') &&
			count('credit-approval.response process') >= 2 && names.includes('payment.response process') &&
			document.querySelectorAll('.waterfall .wf-gap').length >= 4 &&
			!!document.querySelector('.span-row[data-service="outbox-relay"] .wf-bar.svc-relay') &&
			!!document.querySelector('.span-row[data-service="customer-service"] .wf-bar.svc-customer');
	})()`)
	b.until("the trace links to the Jaeger UI", `document.querySelector('a.jaeger-link')?.href.startsWith('http://jaeger.local:16686/trace/')`)
	b.noCardNumber(cards...)
	b.screenshot("console-saga.png")

	// The accepted order cancelled from its saga's page: the cancellation
	// saga runs its two steps as branches, and the order ends CANCELLED.
	b.do(chromedp.Navigate(u.console+"/sagas/"+scenarios[0].saga2), chromedp.WaitVisible(`#cancel-order`),
		chromedp.Evaluate[chromedp.Void](`window.confirm = () => true; undefined`), chromedp.Click(`#cancel-order`),
		chromedp.WaitVisible(`.flash.ok`))
	b.contains(".flash.ok", "cancellation started")
	b.until("no abort is offered: a cancellation only goes forward", `!document.querySelector('#abort')`)
	b.until("the cancellation saga succeeds", `document.querySelector('.saga-state')?.dataset.status === 'SUCCEEDED'`)
	b.contains(".saga-head", "order-cancellation", "definition v1")
	b.until("its two steps show as branches", `(() => {
		const steps = [...document.querySelectorAll('#steps-line .stage.branches .step')].map(e => e.dataset.step);
		return steps.includes('payment-refund') && steps.includes('credit-release');
	})()`)
	b.until("the timeline indents the second branch", `!!document.querySelector('#timeline .tl.lane-1')`)
	b.contains("#order-side", "CANCELLED")
	b.contains("#step-payment-refund", "DONE")
	b.contains("#step-credit-release", "DONE")
	b.screenshot("console-cancellation.png")

	// A saga stuck at its payment step (the payment service hangs),
	// seen appearing in the live list, aborted with the admin token.
	pid, err := supervisor.ReadPid(u.runDir, "payment-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer resume()
	b.do(chromedp.Navigate(u.console + "/sagas?stuck=true"))
	body, err := os.ReadFile(filepath.Join("..", "..", "requests", "place-order.json"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(u.order+"/orders", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	var placed struct{ SagaID string }
	if err := decodeJSON(resp, &placed); err != nil || placed.SagaID == "" {
		t.Fatalf("POST /orders: %v %+v", err, placed)
	}
	b.until("the stuck saga appears in the live list", fmt.Sprintf(`!!document.querySelector('tr[data-saga=%q]')`, placed.SagaID))
	b.do(chromedp.Click(fmt.Sprintf(`tr[data-saga=%q] a[href^="/sagas/"]`, placed.SagaID)), chromedp.WaitVisible(`#abort`))
	b.contains(".saga-head", "STARTED", "stuck")

	// A wrong token is refused and changes nothing.
	b.do(chromedp.Click(`#abort`), chromedp.WaitVisible(`#confirm-token`),
		chromedp.SetValue(`#confirm-token`, "not-the-admin-token"), chromedp.SetValue(`#confirm-reason`, "customer called"),
		chromedp.Click(`#confirm-ok`), chromedp.WaitVisible(`.flash.err`))
	b.contains(".flash.err", "abort refused", "401")
	b.contains(".saga-head", "STARTED")
	// The admin token aborts it: ABORTING at once, the order REJECTED.
	b.do(chromedp.Click(`#abort`), chromedp.WaitVisible(`#confirm-token`),
		chromedp.SetValue(`#confirm-token`, token), chromedp.SetValue(`#confirm-reason`, "customer called"),
		chromedp.Click(`#confirm-ok`), chromedp.WaitVisible(`.flash.ok`))
	b.contains(".flash.ok", "abort done", "ABORTING")
	b.contains("#order-side", "REJECTED")
	b.contains("#timeline", `operator abort by ops: "customer called"`, "ABANDONED")
	// The payment service comes back: the abandoned payment is cancelled
	// and the page follows the saga to ABORTED by itself.
	resume()
	b.until("the aborted saga ends ABORTED", `document.querySelector('.saga-state')?.dataset.status === 'ABORTED'`)

	// The overview counts it all.
	b.do(chromedp.Navigate(u.console + "/"))
	b.until("the overview counts 2 succeeded (a placement, a cancellation), 3 aborted, none stuck", `(() => {
		const n = (sel) => document.querySelector(sel)?.textContent.trim();
		const typ = (t) => document.querySelector('#by-type tr[data-type="' + t + '"]')?.textContent || '';
		return n('.st-text-succeeded') === '2' && n('.st-text-aborted') === '3' && n('#stuck .num') === '0' &&
			n('#ended') === '5' && document.querySelectorAll('.svc-row .health.up').length >= 7 &&
			typ('order-placement') !== '' && typ('order-cancellation') !== '';
	})()`)
	b.contains("main", "order_outbox", "customer_outbox", "payment_outbox", "streaming")
	b.noCardNumber(cards...)
	b.screenshot("console-overview.png")

	checkMetrics(t, u)
}
