// Command edgelink replicates Apache Kafka topics between edge sites and a
// central cluster. See README.md.
package main

import (
	"context"
	"os"

	// The Mozilla root CAs, used only where the system has none (the
	// container image has no CA bundle), so TLS to a cloud cluster works
	// everywhere.
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/edgelink/edgelink/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
