package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
)

// A three-node JetStream cluster on loopback, the stream replicated on all
// three (RELAY_REPLICAS=3): the node leading the stream dies while events
// are appended continuously, the relay carries on with the new leader, and
// the relay verify finds every committed event in the stream once, in
// order.
func TestRelayOnAClusterSurvivesTheStreamLeadersDeath(t *testing.T) {
	t.Parallel()
	cluster := testkit.MustNATSCluster(t, 3)
	js, err := jetstream.New(cluster.MustConnect(t))
	if err != nil {
		t.Fatal(err)
	}
	e := newRelayEnvOn(t, js)
	e.cfg.Replicas = 3
	relayJS, err := jetstream.New(cluster.MustConnect(t))
	if err != nil {
		t.Fatal(err)
	}
	var published atomic.Int64
	e.startRelayOn(relayJS, func(p workers.PublishedParams) {
		if p.Event.Tenant == e.tenant {
			published.Add(1)
		}
	}, nil)

	// Appends go on, one every few milliseconds, until stop.
	stop, done := make(chan struct{}), make(chan error, 1)
	var appended atomic.Int64
	go func() {
		ids := streams(4)
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			ev := chartstream.NewEvent{Type: "test.happened", Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
			if _, err := e.writer.Append(context.Background(), e.tenant, chartstream.StreamRef{Type: "patient", ID: ids[i%len(ids)]}, chartstream.AnyVersion, ev); err != nil {
				done <- err
				return
			}
			appended.Add(1)
			time.Sleep(3 * time.Millisecond)
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}()

	waitUntil(t, 20*time.Second, "the relay publishes on the cluster", func() bool { return published.Load() >= 200 })
	stream, err := js.Stream(testkit.Context(t), e.cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(testkit.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream replicas %d, cluster %+v; want 3 (a leader and 2 replicas)", info.Config.Replicas, info.Cluster)
	}
	leader := info.Cluster.Leader
	killed := cluster.Node(leader)
	if killed < 0 {
		t.Fatalf("no node named %q leads the stream", leader)
	}
	cluster.Stop(killed)
	atKill, appendedAtKill := published.Load(), appended.Load()
	t.Logf("stopped %s, the stream's leader, after %d events published", leader, atKill)

	waitUntil(t, 30*time.Second, "the relay publishes again after the leader died", func() bool { return published.Load() >= atKill+200 })
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("an append failed: %v", err)
	}
	want := appended.Load()
	if want <= appendedAtKill {
		t.Fatal("nothing was appended after the leader died")
	}
	got := e.waitPublished(int(want), 20*time.Second)
	e.assertExactlyOnceInOrder(got)

	report := e.verify(nil)
	if !report.OK() || report.StoreEvents != want || report.StreamMessages != want {
		t.Errorf("relay verify after the leader died: %+v; want OK with %d events", report, want)
	}
	if info, err = stream.Info(testkit.Context(t)); err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || info.Cluster.Leader == leader || info.Cluster.Leader == "" {
		t.Errorf("stream leader now %+v; want another node than %s", info.Cluster, leader)
	}
	t.Logf("%d events appended, %d of them after the leader died; relay verify: %d in the store, %d in the stream, OK %t",
		want, want-appendedAtKill, report.StoreEvents, report.StreamMessages, report.OK())
}
