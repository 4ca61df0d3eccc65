// Command kafkabed fetches the Apache Kafka runtime and starts real KRaft
// clusters on 127.0.0.1 for manual testing, outside `go test`.
//
//	kafkabed fetch                         fetch and verify the Kafka and MirrorMaker 2 jars
//	kafkabed start [-clusters N] [-brokers N] [-secure]
//	                                       start clusters; Ctrl-C stops them
//	kafkabed reap                          kill test-bed JVMs whose owner died
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/edgelink/edgelink/internal/testbed"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kafkabed:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: kafkabed fetch | start [-clusters N] [-brokers N] [-secure] | reap")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "fetch":
		rt, err := testbed.EnsureRuntime(ctx, os.Stdout)
		if err != nil {
			return err
		}
		fmt.Printf("Apache Kafka %s verified in %s\n", rt.Version, rt.LibDir)
		mm, err := testbed.EnsureMirrorMakerRuntime(ctx, os.Stdout)
		if err != nil {
			return err
		}
		fmt.Printf("MirrorMaker 2 %s verified in %s\n", mm.Version, mm.LibDir)
		return nil
	case "reap":
		fmt.Printf("killed %d orphaned broker JVM(s)\n", len(testbed.Reap()))
		return nil
	case "start":
		fs := flag.NewFlagSet("start", flag.ContinueOnError)
		clusters := fs.Int("clusters", 1, "number of independent clusters")
		brokers := fs.Int("brokers", 1, "brokers per cluster")
		secure := fs.Bool("secure", false, "add a SASL_SSL listener (user edgelink / edgelink-secret, mutual TLS)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		var started []*testbed.Cluster
		defer func() {
			for _, c := range started {
				c.Stop()
			}
		}()
		for i := range *clusters {
			opts := testbed.Options{Name: fmt.Sprintf("cluster-%d", i+1), Brokers: *brokers, Progress: os.Stdout}
			if *secure {
				opts.Security = &testbed.Security{Users: map[string]string{"edgelink": "edgelink-secret"}, MutualTLS: true}
			}
			c, err := testbed.Start(ctx, opts)
			if err != nil {
				return err
			}
			started = append(started, c)
			fmt.Printf("%s bootstrap=%s dir=%s\n", c.Name, strings.Join(c.Bootstrap(), ","), c.Dir)
			if c.TLS != nil {
				fmt.Printf("%s sasl_ssl=%s ca=%s cert=%s key=%s\n", c.Name, strings.Join(c.SASLBootstrap(), ","),
					c.TLS.CAFile, c.TLS.ClientCertFile, c.TLS.ClientKeyFile)
			}
		}
		fmt.Println("running; press Ctrl-C to stop")
		<-ctx.Done()
		return nil
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
}
