// Command kfwctl inspects and changes the kfw firewall module: rules,
// policies, counters, and live drop/hit events.
//
//	kfwctl rules list|add|del|flush|save|restore
//	kfwctl policy [HOOK ACTION]
//	kfwctl stats
//	kfwctl events [-o json]
//
// Exit codes: 0 ok, 1 the kernel refused or something failed, 2 usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kfwlabs/kfw_exporter/cmd/kfwctl/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.DefaultEnv())
	stop()
	os.Exit(code)
}
