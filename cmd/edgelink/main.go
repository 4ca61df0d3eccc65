// Command edgelink replicates Apache Kafka topics between edge sites and a
// central cluster. See README.md.
package main

import (
	"context"
	"os"

	"github.com/edgelink/edgelink/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
