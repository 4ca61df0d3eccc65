package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// roleEnv names the variable that makes the bench binary run one raw stage
// as a child process instead of the bench, so that the raw limit is
// measured in a process of its own like every replicator.
const roleEnv = "EDGELINK_REPLBENCH_ROLE"

// Child roles.
const (
	roleConsume = "raw-consume"
	roleProduce = "raw-produce"
)

// childReport is what a raw stage's process reports on stdout, as JSON.
type childReport struct {
	Records, Bytes int64
	// Began is when the process was ready to work; First and Last are the
	// first and last record consumed, or the first record sent and the
	// moment every record was acknowledged.
	Began, First, Last time.Time
	// CPUFirst and CPULast are the process's CPU time at First and Last.
	CPUFirst, CPULast time.Duration
	// MaxRSS is the process's peak resident set in bytes.
	MaxRSS int64
	// Codec is the compression of the producer's batches.
	Codec string
}

// childMain runs role with args and exits.
func childMain(role string, args []string) {
	if err := runChild(role, args, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "replbench %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runChild(role string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet(role, flag.ContinueOnError)
	seeds := fs.String("seeds", "", "bootstrap servers, comma-separated")
	topic := fs.String("topic", "", "topic")
	prof := fs.String("profile", "1kb", "data profile")
	records := fs.Int64("records", 0, "records in the dataset")
	partitions := fs.Int("partitions", 12, "partitions")
	codec := fs.String("compression", "snappy", "producer batch compression (raw-produce)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, err := profileNamed(*prof)
	if err != nil {
		return err
	}
	d := dataset{profile: p, partitions: *partitions, records: *records}
	ctx, stop := signalContext()
	defer stop()
	var rep childReport
	switch role {
	case roleConsume:
		rep, err = rawConsume(ctx, strings.Split(*seeds, ","), *topic, d)
	case roleProduce:
		rep, err = rawProduce(ctx, strings.Split(*seeds, ","), *topic, d, *codec)
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		return err
	}
	// VmHWM, not getrusage's maxrss: that one starts from the parent's
	// resident set at fork and survives exec.
	if _, rep.MaxRSS, err = readMem(os.Getpid()); err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(rep)
}

// selfCPU returns this process's user plus system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawConsume reads every record of the dataset from topic with a plain
// franz-go consumer and discards it: the most a copier can read.
func rawConsume(ctx context.Context, seeds []string, topic string, d dataset) (childReport, error) {
	want := d.perPartition()
	parts := make(map[int32]kgo.Offset, len(want))
	for p := range want {
		parts[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.MetadataMinAge(metadataAge),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchMaxBytes(32<<20))
	if err != nil {
		return childReport{}, fmt.Errorf("create consumer: %w", err)
	}
	defer cl.Close()
	rep := childReport{Began: time.Now()}
	got := make(map[int32]int64, len(want))
	left := len(want)
	for p, n := range want {
		if n == 0 {
			left--
			got[p] = 0
		}
	}
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err) })
		if ferr != nil {
			return rep, ferr
		}
		if rep.First.IsZero() && fs.NumRecords() > 0 {
			rep.First, rep.CPUFirst = time.Now(), selfCPU()
		}
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				rep.Records++
				rep.Bytes += int64(len(r.Key) + len(r.Value))
			}
			before := got[fp.Partition]
			got[fp.Partition] += int64(len(fp.Records))
			if before < want[fp.Partition] && got[fp.Partition] >= want[fp.Partition] {
				left--
			}
		})
	}
	rep.Last, rep.CPULast = time.Now(), selfCPU()
	return rep, nil
}

// rawProduce writes the dataset to topic (which must exist) with a plain
// franz-go producer: the most a copier can write.
func rawProduce(ctx context.Context, seeds []string, topic string, d dataset, codec string) (childReport, error) {
	comp, err := compressionCodec(codec)
	if err != nil {
		return childReport{}, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.MetadataMinAge(metadataAge),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedBytes(64<<20),
		kgo.ProducerBatchCompression(comp))
	if err != nil {
		return childReport{}, fmt.Errorf("create producer: %w", err)
	}
	defer cl.Close()
	pool := datasetPool(d.profile)
	rep := childReport{Began: time.Now(), Codec: codec}
	rep.First, rep.CPUFirst = time.Now(), selfCPU()
	if err := produceDataset(ctx, cl, topic, d, pool); err != nil {
		return rep, err
	}
	rep.Last, rep.CPULast = time.Now(), selfCPU()
	rep.Records, rep.Bytes = d.records, d.bytes()
	return rep, nil
}

func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown compression %q", name)
}

// spawnChild runs role in a new process of this binary and returns its report.
func spawnChild(ctx context.Context, role string, stderr io.Writer, args ...string) (childReport, time.Time, error) {
	self, err := os.Executable()
	if err != nil {
		return childReport{}, time.Time{}, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	began := time.Now()
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return childReport{}, began, fmt.Errorf("%s: %w", role, err)
		}
		return childReport{}, began, fmt.Errorf("run %s: %w", role, err)
	}
	var rep childReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return childReport{}, began, fmt.Errorf("read %s report %q: %w", role, out, err)
	}
	return rep, began, nil
}

func childArgs(seeds []string, topic string, d dataset, extra ...string) []string {
	return append([]string{
		"-seeds", strings.Join(seeds, ","), "-topic", topic, "-profile", d.profile.name,
		"-records", strconv.FormatInt(d.records, 10), "-partitions", strconv.Itoa(d.partitions),
	}, extra...)
}
