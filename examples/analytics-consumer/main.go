// Command analytics-consumer reads one tenant's de-identified event stream
// with the credentials `chartstream subscriber create --deidentified`
// issued, through watermill, and prints running counts per event type.
//
//	analytics-consumer --creds research.creds --consumer sub_0123456789abcdef
//
// The credentials may do nothing but pull from the subscriber's durable
// consumer (which the platform created, filtered to the tenant), so the
// watermill subscriber binds to that consumer instead of creating one, and
// the connection uses the subscriber's own inbox prefix.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// config is the consumer's settings.
type config struct {
	// URL is the NATS server (NATS_URL).
	URL string
	// Creds is the subscriber's .creds file.
	Creds string
	// Stream and Consumer are the subscriber's (subscriber create prints
	// them); the inbox prefix follows from the consumer.
	Stream, Consumer string
	// Every is how often the counts are printed when they changed.
	Every time.Duration
	// Max stops after this many messages; 0 runs until interrupted.
	Max int
}

func main() {
	var cfg config
	flag.StringVar(&cfg.URL, "nats-url", os.Getenv("NATS_URL"), "NATS server (default $NATS_URL)")
	flag.StringVar(&cfg.Creds, "creds", "", "the subscriber's .creds file (required)")
	flag.StringVar(&cfg.Stream, "stream", "CLINICAL_DEID", "the de-identified stream")
	flag.StringVar(&cfg.Consumer, "consumer", "", "the subscriber's durable consumer, sub_... (required)")
	flag.DurationVar(&cfg.Every, "every", time.Second, "print the counts this often when they changed")
	flag.IntVar(&cfg.Max, "max", 0, "stop after this many messages (0: until interrupted)")
	flag.Parse()
	if cfg.URL == "" || cfg.Creds == "" || cfg.Consumer == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "analytics-consumer: --nats-url (or NATS_URL), --creds and --consumer are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "analytics-consumer: %v\n", err)
		os.Exit(1)
	}
}

// run consumes until ctx ends or Max messages were counted, printing the
// counts to out.
func run(ctx context.Context, cfg config, out io.Writer) error {
	nc, err := nats.Connect(cfg.URL, nats.UserCredentials(cfg.Creds), nats.Name("analytics-consumer"),
		nats.CustomInboxPrefix("_INBOX_"+cfg.Consumer), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	sub, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
		Conn:   nc,
		Logger: watermill.NewSlogLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		// The platform made the consumer; the credentials may only read
		// its info and pull from it.
		ResourceInitializer: bindConsumer(cfg.Stream, cfg.Consumer),
		AckWaitTimeout:      30 * time.Second,
	})
	if err != nil {
		return err
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	messages, err := sub.Subscribe(ctx, cfg.Stream)
	if err != nil {
		return err
	}
	counts := make(map[string]int)
	total, printed := 0, 0
	tick := time.NewTicker(cfg.Every)
	defer tick.Stop()
	for {
		select {
		case m, ok := <-messages:
			if !ok {
				printCounts(out, counts, total)
				return nil
			}
			var body struct {
				Type     string `json:"type"`
				Withheld string `json:"withheld"`
			}
			if err := json.Unmarshal(m.Payload, &body); err != nil || body.Type == "" {
				m.Nack()
				return errors.New("a message is not a de-identified event")
			}
			counts[body.Type]++
			if body.Withheld != "" {
				counts["(withheld: "+body.Withheld+")"]++
			}
			total++
			m.Ack()
			if cfg.Max > 0 && total >= cfg.Max {
				printCounts(out, counts, total)
				return nil
			}
		case <-tick.C:
			if total != printed {
				printCounts(out, counts, total)
				printed = total
			}
		case <-ctx.Done():
			printCounts(out, counts, total)
			return nil
		}
	}
}

// bindConsumer binds watermill's subscriber to an existing durable
// consumer by its name alone: no stream info, no consumer creation.
func bindConsumer(stream, consumer string) wmjs.ResourceInitializer {
	return func(ctx context.Context, js jetstream.JetStream, _ string) (jetstream.Consumer, func(context.Context, watermill.LoggerAdapter), error) {
		c, err := js.Consumer(ctx, stream, consumer)
		if err != nil {
			return nil, nil, fmt.Errorf("consumer %s of %s: %w", consumer, stream, err)
		}
		return c, nil, nil
	}
}

// printCounts prints one line: the total and each event type's count.
func printCounts(out io.Writer, counts map[string]int, total int) {
	parts := make([]string, 0, len(counts))
	for _, t := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s=%d", t, counts[t]))
	}
	fmt.Fprintf(out, "%s total=%d %s\n", time.Now().UTC().Format(time.TimeOnly), total, strings.Join(parts, " "))
}
