// Package cli is kfwctl: the command line, output formats and exit codes,
// as a function that tests (unit tests with a fake client, in-VM tests with
// the real one) can call directly.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the kernel refused, or something failed at run time
	ExitUsage   = 2 // the command line is wrong
)

// Client is the part of *netlinkclient.Client kfwctl uses.
type Client interface {
	Stats(ctx context.Context) (abi.ModuleStats, error)
	Rules(ctx context.Context) ([]netlinkclient.RuleInfo, error)
	AddRule(ctx context.Context, r abi.Rule) error
	DelRule(ctx context.Context, id uint16) error
	Flush(ctx context.Context) error
	SetPolicy(ctx context.Context, policies ...abi.Policy) error
	Policies(ctx context.Context) ([]abi.Policy, error)
	Replace(ctx context.Context, policies []abi.Policy, rules []abi.Rule) error
	Close() error
}

// EventSource is what *netlinkclient.Subscriber provides.
type EventSource interface {
	Run(ctx context.Context, h netlinkclient.Handler) error
}

// Env is everything kfwctl touches outside itself.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Dial opens a command client for a generic netlink family.
	Dial func(family string) (Client, error)
	// Subscribe returns an event source for cfg.
	Subscribe func(cfg netlinkclient.SubscriberConfig) EventSource
	// Location is the time zone of event times in text output; nil is
	// time.Local. JSON output is always UTC.
	Location *time.Location
}

// DefaultEnv is the real thing: the process's standard streams and netlink.
func DefaultEnv() Env {
	return Env{
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Dial: func(family string) (Client, error) {
			return netlinkclient.Dial(family)
		},
		Subscribe: func(cfg netlinkclient.SubscriberConfig) EventSource {
			return netlinkclient.NewSubscriber(cfg)
		},
	}
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitRequest carries kingpin's wish to exit (after --help) through a panic,
// since kingpin would otherwise call os.Exit.
type exitRequest int

// Run runs kfwctl with args (without the program name) and returns its exit
// code. Output goes to env's streams; kernel errors are printed with the
// kernel's extended-ack message.
func Run(ctx context.Context, args []string, env Env) int {
	c := &ctl{env: env}
	app := c.app()
	if len(args) == 0 {
		app.UsageWriter(env.Stderr)
		parseArgs(app, []string{"--help"})
		return ExitUsage
	}
	cmd, code, err := parseArgs(app, args)
	if code >= 0 {
		return code
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "kfwctl: %v (see kfwctl --help)\n", err)
		return ExitUsage
	}
	if err := c.run(ctx, cmd); err != nil {
		fmt.Fprintf(env.Stderr, "kfwctl: %v\n", err)
		if errors.As(err, new(usageError)) {
			return ExitUsage
		}
		return ExitFailure
	}
	return ExitOK
}

// parseArgs runs kingpin; code is the exit code kingpin asked for (after
// printing help), or -1 if it did not.
func parseArgs(app *kingpin.Application, args []string) (cmd string, code int, err error) {
	defer func() {
		if r := recover(); r != nil {
			req, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			cmd, code, err = "", int(req), nil
		}
	}()
	cmd, err = app.Parse(args)
	return cmd, -1, err
}

// ctl holds the parsed command line.
type ctl struct {
	env Env

	family     string
	verbose    bool
	output     string
	addWords   []string
	delID      string
	restore    string
	policyArgs []string
	count      uint64
	readBuffer int
}

func (c *ctl) app() *kingpin.Application {
	app := kingpin.New("kfwctl", "Inspect and change the kfw firewall module through its generic netlink family.")
	app.UsageWriter(c.env.Stdout)
	app.ErrorWriter(c.env.Stderr)
	app.Terminate(func(code int) { panic(exitRequest(code)) })
	app.HelpFlag.Short('h')
	app.Flag("family", "Generic netlink family name.").Default(abi.GenlName).StringVar(&c.family)
	app.Flag("verbose", "Log subscription details to stderr.").Short('v').BoolVar(&c.verbose)

	output := func(cmd *kingpin.CmdClause) {
		cmd.Flag("output", "Output format: text or json.").Short('o').Default("text").EnumVar(&c.output, "text", "json")
	}

	rules := app.Command("rules", "Show and change the rule table.")
	output(rules.Command("list", "List the rules with their counters.").Default())
	rules.Command("add", "Add a rule: kfwctl rules add id=10 action=drop proto=tcp dport=22.").
		Arg("KEY=VALUE", "The rule in the rule language of docs/ABI.md.").Required().StringsVar(&c.addWords)
	rules.Command("del", "Delete a rule.").Arg("ID", "Rule id (N or id=N).").Required().StringVar(&c.delID)
	rules.Command("flush", "Delete every rule (policies stay).")
	rules.Command("save", "Print the table as /proc/kfw/rules does: flush, policies, rules.")
	rules.Command("restore", "Replace the table atomically with saved commands.").
		Arg("FILE", "File to read, or - for standard input.").Default("-").StringVar(&c.restore)

	app.Command("policy", "Show the default policies, or set one: kfwctl policy forward drop.").
		Arg("HOOK ACTION", "Hook (input, forward, output) and action (accept, drop).").StringsVar(&c.policyArgs)

	output(app.Command("stats", "Show the module's identity and event counters."))

	events := app.Command("events", "Print events live, one line each, until interrupted.")
	output(events)
	events.Flag("count", "Exit after this many events (0: never).").Short('n').Uint64Var(&c.count)
	events.Flag("read-buffer", "Socket receive buffer in bytes (0: a large default).").IntVar(&c.readBuffer)
	return app
}

func (c *ctl) run(ctx context.Context, cmd string) error {
	if cmd == "events" {
		return c.events(ctx)
	}
	if cmd == "rules add" {
		// A rule the kernel would refuse is refused here, with the same
		// message, before anything is sent.
		r, err := abi.ParseRule(c.addWords)
		if err != nil {
			return usageError{err}
		}
		return c.withClient(func(cl Client) error { return cl.AddRule(ctx, r) })
	}
	return c.withClient(func(cl Client) error {
		switch cmd {
		case "rules list":
			return c.rulesList(ctx, cl)
		case "rules del":
			return c.rulesDel(ctx, cl)
		case "rules flush":
			return cl.Flush(ctx)
		case "rules save":
			return c.rulesSave(ctx, cl)
		case "rules restore":
			return c.rulesRestore(ctx, cl)
		case "policy":
			return c.policy(ctx, cl)
		case "stats":
			return c.stats(ctx, cl)
		}
		return fmt.Errorf("command %q not implemented", cmd)
	})
}

func (c *ctl) withClient(fn func(Client) error) error {
	cl, err := c.env.Dial(c.family)
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(cl)
}

func (c *ctl) logger() *slog.Logger {
	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(c.env.Stderr, &slog.HandlerOptions{Level: level}))
}
