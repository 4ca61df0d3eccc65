package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/link"
)

func newOffsetsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "offsets",
		Short: "Work with source and mirror offsets",
		Args:  noArgs,
	}
	cmd.AddCommand(newOffsetsTranslateCmd(g))
	return cmd
}

func newOffsetsTranslateCmd(g *globals) *cobra.Command {
	var (
		file, linkName, topic string
		partition             int32
		offset                int64
		asJSON                bool
		timeout               time.Duration
	)
	cmd := &cobra.Command{
		Use:   "translate -c FILE --link L --topic T --partition P --offset O",
		Short: "Translate a source offset to its mirror offset, exactly",
		Long: "Translate a source offset to the offset at which a consumer of the mirror\n" +
			"topic continues: the first mirrored record whose source offset is at least O.\n" +
			"The answer is exact for every offset the mirror still holds.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, lc, _, err := loadLink(g, file, linkName)
			if err != nil {
				return err
			}
			if topic == "" || partition < 0 || offset < 0 {
				return usageError{fmt.Errorf("--topic, --partition and --offset are required (partition and offset >= 0)")}
			}
			opts, err := kafka.ClientOptions(cfg.Clusters[lc.To], nil, kafka.Dial{})
			if err != nil {
				return err
			}
			ctx, cancel := timeoutContext(cmd, timeout)
			defer cancel()
			dst := lc.DestinationTopic(cfg.Site, topic)
			tr, err := link.Translate(ctx, opts, dst, partition, offset)
			if err != nil {
				return fmt.Errorf("translate %s[%d]@%d: %w", topic, partition, offset, err)
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{
					"link": lc.Name, "source_topic": topic, "destination_topic": tr.Topic, "partition": tr.Partition,
					"source_offset": tr.Source, "destination_offset": tr.Destination, "exact": tr.Exact, "pending": tr.Pending,
				})
			}
			note := "the mirrored copy of that source record"
			switch {
			case tr.Pending:
				note = "not replicated yet: the mirror's end"
			case !tr.Exact:
				note = "the next mirrored record (the source offset itself holds no record to copy)"
			}
			fmt.Fprintf(g.stdout, "%s[%d]@%d -> %s[%d]@%d (%s)\n", topic, partition, offset, tr.Topic, tr.Partition, tr.Destination, note)
			return nil
		},
	}
	addConfigFlag(cmd, &file)
	cmd.Flags().StringVar(&linkName, "link", "", "link name (required)")
	cmd.Flags().StringVar(&topic, "topic", "", "source topic (required)")
	cmd.Flags().Int32Var(&partition, "partition", -1, "partition (required)")
	cmd.Flags().Int64Var(&offset, "offset", -1, "source offset (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	return cmd
}
