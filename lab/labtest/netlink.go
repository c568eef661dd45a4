package labtest

import (
	"context"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// DialNetlink opens a command client of kfw's generic netlink family,
// closed when the test ends.
func DialNetlink(t testing.TB) *netlinkclient.Client {
	t.Helper()
	c, err := netlinkclient.Dial(abi.GenlName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// RunSubscriber runs a netlinkclient.Subscriber with cfg that reports to h
// in network namespace ns ("": the test's own; Run opens its sockets on
// its own goroutine, which stays in ns) until the test ends, and then
// fails the test if Run returned an error. It does not wait for the
// subscription. Cleanups that the test registers after this call run
// before the Subscriber is stopped.
func RunSubscriber(t testing.TB, ns string, cfg netlinkclient.SubscriberConfig, h netlinkclient.Handler) {
	t.Helper()
	s := netlinkclient.NewSubscriber(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		if ns == "" {
			done <- s.Run(ctx, h)
			return
		}
		done <- guest.InNetNS(ns, func() error { return s.Run(ctx, h) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Subscriber.Run: %v", err)
		}
	})
}
