package cli

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/observe"
	"github.com/edgelink/edgelink/internal/status"
)

func newDiodeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diode",
		Short: "Receive a link sent one way through a data diode",
		Long: "A link with a diode block is sent one way over UDP by edgelink run at the site,\n" +
			"which never connects to the link's destination. In the cloud, behind the\n" +
			"diode, `diode receive` listens for it and writes it to the destination.",
		Args: noArgs,
	}
	cmd.AddCommand(newDiodeReceiveCmd(g))
	return cmd
}

func newDiodeReceiveCmd(g *globals) *cobra.Command {
	var file, linkName, listen string
	cmd := &cobra.Command{
		Use:   "receive -c FILE --link NAME --listen HOST:PORT",
		Short: "Write a link received through a data diode to its destination, exactly once",
		Long: "Listen on HOST:PORT (UDP) for the datagrams of the link's sender, authenticate\n" +
			"them with links[].diode.key_file (forged or damaged datagrams are dropped and\n" +
			"counted), repair losses from the sender's parity and repeats, and write the\n" +
			"records to the link's destination as the link would: contiguous offsets per\n" +
			"partition, checkpoints in the same transactions, so that a restart loses and\n" +
			"duplicates nothing. A range the sender's redundancy could not recover is\n" +
			"reported exactly (topic, partition, offsets), counted as lost, and skipped once\n" +
			"its repair window has passed. The status page and API (http block) show the\n" +
			"link, its gaps and whether the sender is heard. Stops on SIGTERM/Ctrl-C.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, lc, logger, err := loadLink(g, file, linkName)
			if err != nil {
				return err
			}
			if lc.Diode == nil {
				return usageError{fmt.Errorf("link %s has no diode block: add links[].diode (key_file; send_to at the site)", lc.Name)}
			}
			if listen == "" {
				return usageError{errors.New("no address to listen on: pass --listen HOST:PORT")}
			}
			recv, err := link.NewDiodeReceiver(cmd.Context(), cfg, lc, listen, link.Options{}, logger)
			if err != nil {
				return err
			}
			model := status.New(status.Options{Links: status.Static(cfg, recv.Link()), Version: Version(), Logger: logger})
			srv, err := observe.Listen(cmd.Context(), observe.Options{HTTP: cfg.HTTP, Status: model, Logger: logger})
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd.Context())
			defer cancel()
			srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
			var wg sync.WaitGroup
			srvDone := make(chan error, 1)
			wg.Go(func() { model.Run(srvCtx) })
			wg.Go(func() { srvDone <- srv.Run(srvCtx) })
			logger.Info("edgelink diode receiver running", "link", lc.Name, "listen", recv.Addr(), "to", lc.To, "status_page", srv.URL())
			err = recv.Run(ctx)
			model.Stopping()
			stopSrv()
			wg.Wait()
			return errors.Join(err, <-srvDone)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file, required")
	cmd.Flags().StringVar(&linkName, "link", "", "the link to receive, required")
	cmd.Flags().StringVar(&listen, "listen", "", "UDP address to listen on, e.g. 0.0.0.0:9999, required")
	return cmd
}
