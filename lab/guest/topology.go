package guest

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// Endpoint is one end of a veth link of a Topology.
type Endpoint struct {
	NS    string       // network namespace (ip netns name)
	Iface string       // interface name inside NS
	IPv4  netip.Prefix // address and prefix length
	IPv6  netip.Prefix
}

// Topology is a client and a server in their own network namespaces, each
// linked by a veth pair to a router namespace that forwards IPv4 and IPv6
// between them:
//
//	kfwc: eth0 10.10.1.2/24 fd00:1::2/64 ── eth-c 10.10.1.1/24 fd00:1::1/64 :kfwr
//	kfws: eth0 10.10.2.2/24 fd00:2::2/64 ── eth-s 10.10.2.1/24 fd00:2::1/64 :kfwr
//
// Client and server route everything through the router. Duplicate address
// detection is off, so every address is usable as soon as Create returns.
type Topology struct {
	Client       Endpoint
	RouterClient Endpoint // the router's end of the client link
	RouterServer Endpoint // the router's end of the server link
	Server       Endpoint
}

// StandardTopology returns the lab's topology, as drawn on Topology.
func StandardTopology() Topology {
	ep := func(ns, iface, v4, v6 string) Endpoint {
		return Endpoint{NS: ns, Iface: iface, IPv4: netip.MustParsePrefix(v4), IPv6: netip.MustParsePrefix(v6)}
	}
	return Topology{
		Client:       ep("kfwc", "eth0", "10.10.1.2/24", "fd00:1::2/64"),
		RouterClient: ep("kfwr", "eth-c", "10.10.1.1/24", "fd00:1::1/64"),
		RouterServer: ep("kfwr", "eth-s", "10.10.2.1/24", "fd00:2::1/64"),
		Server:       ep("kfws", "eth0", "10.10.2.2/24", "fd00:2::2/64"),
	}
}

// NewTopology creates the standard topology; Destroy removes it.
func NewTopology() (Topology, error) {
	t := StandardTopology()
	return t, t.Create()
}

// Router is the router's namespace.
func (t Topology) Router() string { return t.RouterClient.NS }

// Namespaces lists the topology's namespaces: client, router, server.
func (t Topology) Namespaces() []string {
	return []string{t.Client.NS, t.Router(), t.Server.NS}
}

// Create creates the namespaces, links, addresses and routes. On failure
// it deletes the topology's namespaces.
func (t Topology) Create() error {
	if t.RouterClient.NS != t.RouterServer.NS {
		return fmt.Errorf("topology: router ends in two namespaces (%s, %s)", t.RouterClient.NS, t.RouterServer.NS)
	}
	if err := t.create(); err != nil {
		_ = t.Destroy() // the namespaces take their links along
		return fmt.Errorf("topology: %w", err)
	}
	return nil
}

// create runs the steps of Create: a few ip batches, as each ip command
// costs a process start, which is slow under TCG. The kernel loads veth on
// demand.
func (t Topology) create() error {
	var namespaces []string
	for _, ns := range t.Namespaces() {
		namespaces = append(namespaces, "netns add "+ns)
	}
	if err := ipBatch("", namespaces); err != nil {
		return err
	}
	for _, ns := range t.Namespaces() {
		// Before the links exist, so that their addresses, link-local
		// ones included, skip DAD and are usable at once.
		for _, key := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
			if err := Sysctl(ns, key, "0"); err != nil {
				return err
			}
		}
	}
	// Each pair is created from inside the first endpoint's namespace: a
	// request from the initial namespace looks the name up there, and a
	// VM with networking already has an eth0 of its own (EEXIST).
	for _, l := range [][2]Endpoint{{t.Client, t.RouterClient}, {t.Server, t.RouterServer}} {
		link := fmt.Sprintf("link add %s type veth peer name %s netns %s", l[0].Iface, l[1].Iface, l[1].NS)
		if err := ipBatch(l[0].NS, []string{link}); err != nil {
			return err
		}
	}
	for _, key := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if err := Sysctl(t.Router(), key, "1"); err != nil {
			return err
		}
	}
	return errors.Join(
		ipBatch(t.Client.NS, append(addresses(t.Client), defaultRoutes(t.RouterClient)...)),
		ipBatch(t.Router(), append(addresses(t.RouterClient), addresses(t.RouterServer)...)),
		ipBatch(t.Server.NS, append(addresses(t.Server), defaultRoutes(t.RouterServer)...)),
	)
}

// Destroy deletes the topology's namespaces, and with them its links.
func (t Topology) Destroy() error {
	var cmds []string
	for _, ns := range t.Namespaces() {
		cmds = append(cmds, "netns delete "+ns)
	}
	return ipBatch("", cmds, "-force") // try every command
}

// addresses are the ip commands that address and enable an endpoint.
func addresses(e Endpoint) []string {
	return []string{
		"link set lo up",
		fmt.Sprintf("address add %s dev %s", e.IPv4, e.Iface),
		fmt.Sprintf("address add %s dev %s nodad", e.IPv6, e.Iface), // even if accept_dad changes
		fmt.Sprintf("link set %s up", e.Iface),
	}
}

// defaultRoutes are the ip commands routing everything through a router's
// end of a link.
func defaultRoutes(router Endpoint) []string {
	return []string{
		"route add 0.0.0.0/0 via " + router.IPv4.Addr().String(),
		"route add ::/0 via " + router.IPv6.Addr().String(),
	}
}

// ipBatch runs ip commands in one process (ip -batch), in the network
// namespace ns unless it is "".
func ipBatch(ns string, cmds []string, opts ...string) error {
	args := opts
	if ns != "" {
		args = append(args, "-n", ns)
	}
	args = append(args, "-batch", "-")
	cmd := exec.Command("ip", args...)
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s\ncommands:\n%s", strings.Join(args, " "), err,
			strings.TrimSpace(string(out)), strings.Join(cmds, "\n"))
	}
	return nil
}
