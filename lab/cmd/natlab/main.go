// Command natlab brings the NAT lab up and down by hand:
//
//	natlab up A=symmetric B=port-restricted:hairpin
//	natlab exec a1 -- ping -c1 203.0.113.10
//	natlab exec -timeout 1h a1 -- sh    # commands end after 10 minutes unless told
//	natlab rules a                      # print site a's nftables ruleset
//	natlab down
//
// Namespaces are named phlab-<host>; down removes only those and the
// processes inside them, and is safe to run twice. Hosts: relay (203.0.113.10
// and .11), client (203.0.113.20), gwa/gwb, a1/a2, b1/b2, cgna/cgnb.
// A site with a delay needs the forwarder in this process: `up` then stays
// in the foreground until Ctrl-C or -for (default 1h) and removes the lab.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pinhole/pinhole/lab"
)

const prefix = "phlab-"

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	if why := lab.Available(); why != "" {
		fmt.Fprintln(os.Stderr, "natlab:", why)
		os.Exit(1)
	}
	switch os.Args[1] {
	case "up":
		fs := flag.NewFlagSet("up", flag.ExitOnError)
		lifetime := fs.Duration("for", time.Hour, "with a delay: how long the forwarder (and the lab) stays up")
		fs.Parse(os.Args[2:])
		sites := map[string]lab.Site{}
		for _, arg := range fs.Args() {
			name, spec, ok := strings.Cut(arg, "=")
			name = strings.ToLower(name)
			if !ok || (name != "a" && name != "b") {
				fatal(fmt.Errorf("%q: want A=behaviour[:options] or B=behaviour[:options]", arg))
			}
			s, err := lab.ParseSite(spec)
			if err != nil {
				fatal(fmt.Errorf("%s: %w", arg, err))
			}
			sites[name] = s
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		l, err := lab.Up(ctx, prefix, sites)
		if err != nil {
			fatal(err)
		}
		fmt.Printf("lab up: relay %s and %s, client %s\n", lab.RelayIP, lab.RelayIP2, lab.ClientIP)
		for _, site := range []string{"a", "b"} {
			if s, ok := sites[site]; ok {
				fmt.Printf("site %s: %s (%s), public %s, host %s1 = %s\n", site, s.Behaviour, s.Behaviour.Classic(), l.PublicIP(site), site, l.HostIP(site+"1"))
			}
		}
		fmt.Printf("hosts: %s\n", strings.Join(l.Hosts(), " "))
		fmt.Println("run commands with: natlab exec HOST -- CMD; remove with: natlab down")
		for _, s := range sites {
			if s.Delay > 0 {
				fmt.Printf("delay forwarder running in this process: Ctrl-C (or %v) stops it and removes the lab\n", *lifetime)
				sig := make(chan os.Signal, 1)
				signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
				select {
				case <-sig:
				case <-time.After(*lifetime):
				}
				l.Close()
				return
			}
		}
	case "exec":
		fs := flag.NewFlagSet("exec", flag.ExitOnError)
		timeout := fs.Duration("timeout", 10*time.Minute, "kill the command after this long")
		fs.Parse(os.Args[2:])
		args := fs.Args()
		if len(args) < 3 || args[1] != "--" || *timeout <= 0 {
			usage()
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", prefix + args[0]}, args[2:]...)...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				fatal(fmt.Errorf("%s: killed after %v (-timeout)", strings.Join(args[2:], " "), *timeout))
			}
			if ee, ok := err.(*exec.ExitError); ok {
				os.Exit(ee.ExitCode())
			}
			fatal(err)
		}
	case "rules":
		if len(os.Args) < 3 {
			usage()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", prefix+"gw"+os.Args[2], "nft", "list", "ruleset").CombinedOutput()
		os.Stdout.Write(out)
		if err != nil {
			os.Exit(1)
		}
	case "down":
		lab.Down(prefix)
		fmt.Println("lab down")
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: natlab up [-for 1h] A=BEHAVIOUR[:opt...] [B=...] | exec [-timeout 10m] HOST -- CMD... | rules a|b | down")
	fmt.Fprintln(os.Stderr, "behaviours: none full-cone restricted-cone port-restricted symmetric symmetric-seq udp-blocked")
	fmt.Fprintln(os.Stderr, "options: hairpin cgnat timeout=SECONDS loss=PERCENT% delay=DURATION hosts=1|2")
	os.Exit(2)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "natlab:", err)
	os.Exit(1)
}
