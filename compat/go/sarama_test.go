package compat

// Sarama (IBM/sarama) against Strom. Sarama picks request versions from
// the Kafka version it is configured for, so each scenario runs twice: at
// Sarama's default (2.8) and at a Kafka 4.x version.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

var saramaVersions = []struct {
	name    string
	version sarama.KafkaVersion
}{
	{"kafka-2.8", sarama.DefaultVersion},
	{"kafka-4.1", sarama.V4_1_0_0},
}

func eachSaramaVersion(t *testing.T, fn func(t *testing.T, v sarama.KafkaVersion)) {
	for _, sv := range saramaVersions {
		t.Run(sv.name, func(t *testing.T) {
			t.Parallel()
			fn(t, sv.version)
		})
	}
}

func saramaConfig(v sarama.KafkaVersion) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = v
	cfg.ClientID = "strom-compat-sarama"
	cfg.Admin.Timeout = timeout
	cfg.Metadata.Retry.Max = 10
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	// Producer.Idempotent: Sarama's default (false); the idempotent and
	// transactional scenarios turn it on.
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Flush.Frequency = 20 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.MaxWaitTime = 200 * time.Millisecond
	return cfg
}

func newSaramaAdmin(t *testing.T, v sarama.KafkaVersion) sarama.ClusterAdmin {
	t.Helper()
	adm, err := sarama.NewClusterAdmin(seeds(), saramaConfig(v))
	if err != nil {
		t.Fatalf("sarama.NewClusterAdmin: %v", err)
	}
	t.Cleanup(func() { _ = adm.Close() })
	return adm
}

func saramaCreateTopic(t *testing.T, adm sarama.ClusterAdmin, topic string, n int32, configs map[string]*string) {
	t.Helper()
	err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: n, ReplicationFactor: 1, ConfigEntries: configs}, false)
	if err != nil {
		t.Fatalf("CreateTopic %s: %v", topic, err)
	}
}

func TestSaramaAdminTopics(t *testing.T) {
	t.Parallel()
	eachSaramaVersion(t, func(t *testing.T, v sarama.KafkaVersion) {
		adm := newSaramaAdmin(t, v)
		topic := uniqueName("sarama-admin")

		brokers, controller, err := adm.DescribeCluster()
		if err != nil || len(brokers) == 0 {
			t.Fatalf("DescribeCluster: %v, %d brokers", err, len(brokers))
		}
		found := false
		for _, b := range brokers {
			found = found || b.ID() == controller
		}
		if !found {
			t.Errorf("DescribeCluster: controller %d is not among the brokers", controller)
		}

		saramaCreateTopic(t, adm, topic, partitions, map[string]*string{"retention.ms": str("3600000")})
		err = adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
		if !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			t.Errorf("creating %s twice: %v, want TOPIC_ALREADY_EXISTS", topic, err)
		}

		// ListTopics: metadata plus the topic's non-default configs.
		var listed map[string]sarama.TopicDetail
		eventually(t, "topic listed", func() (bool, string) {
			listed, err = adm.ListTopics()
			if err != nil {
				return false, err.Error()
			}
			_, ok := listed[topic]
			return ok, "missing"
		})
		d := listed[topic]
		if d.NumPartitions != partitions || d.ReplicationFactor != 1 {
			t.Errorf("ListTopics %s: %d partitions x%d, want %d x1", topic, d.NumPartitions, d.ReplicationFactor, partitions)
		}
		if rm := d.ConfigEntries["retention.ms"]; rm == nil || *rm != "3600000" {
			t.Errorf("ListTopics %s: retention.ms %v, want 3600000", topic, rm)
		}

		md, err := adm.DescribeTopics([]string{topic})
		if err != nil || len(md) != 1 {
			t.Fatalf("DescribeTopics: %v (%d topics)", err, len(md))
		}
		if md[0].Err != sarama.ErrNoError || len(md[0].Partitions) != partitions {
			t.Errorf("DescribeTopics %s: %v, %d partitions", topic, md[0].Err, len(md[0].Partitions))
		}
		for _, p := range md[0].Partitions {
			if p.Err != sarama.ErrNoError || len(p.Replicas) != 1 || p.Replicas[0] != p.Leader || len(p.Isr) != 1 {
				t.Errorf("partition %d: err %v leader %d replicas %v isr %v", p.ID, p.Err, p.Leader, p.Replicas, p.Isr)
			}
		}

		// DescribeConfig / IncrementalAlterConfig.
		saramaWantConfig(t, adm, topic, "retention.ms", "3600000", sarama.SourceTopic)
		saramaWantConfig(t, adm, topic, "segment.bytes", "1073741824", sarama.SourceDefault)
		err = adm.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
			"retention.ms":   {Operation: sarama.IncrementalAlterConfigsOperationDelete},
			"cleanup.policy": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: str("compact")},
		}, false)
		if err != nil {
			t.Fatalf("IncrementalAlterConfig: %v", err)
		}
		saramaWantConfig(t, adm, topic, "retention.ms", "604800000", sarama.SourceDefault)
		saramaWantConfig(t, adm, topic, "cleanup.policy", "compact", sarama.SourceTopic)

		// CreatePartitions to 4 (a total, in Sarama).
		if err := adm.CreatePartitions(topic, partitions+1, nil, false); err != nil {
			t.Fatalf("CreatePartitions: %v", err)
		}
		eventually(t, "4 partitions", func() (bool, string) {
			md, err := adm.DescribeTopics([]string{topic})
			if err != nil || len(md) != 1 {
				return false, fmt.Sprint(err)
			}
			return len(md[0].Partitions) == partitions+1, fmt.Sprintf("%d partitions", len(md[0].Partitions))
		})

		// An invalid topic name.
		err = adm.CreateTopic("bad name!", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
		if !errors.Is(err, sarama.ErrInvalidTopic) {
			t.Errorf("CreateTopic %q: %v, want INVALID_TOPIC_EXCEPTION", "bad name!", err)
		}

		// DeleteTopic: gone; deleting again is UNKNOWN_TOPIC_OR_PARTITION.
		if err := adm.DeleteTopic(topic); err != nil {
			t.Fatalf("DeleteTopic: %v", err)
		}
		eventually(t, "topic gone", func() (bool, string) {
			listed, err := adm.ListTopics()
			if err != nil {
				return false, err.Error()
			}
			_, ok := listed[topic]
			return !ok, "still listed"
		})
		if err := adm.DeleteTopic(topic); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			t.Errorf("deleting a deleted topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
		}
	})
}

// saramaWantConfig waits for a topic config to read back as value from
// source (Apache Kafka applies config changes asynchronously; see wantConfig).
func saramaWantConfig(t *testing.T, adm sarama.ClusterAdmin, topic, name, value string, source sarama.ConfigSource) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s %s = %q (source %v)", topic, name, value, source), func() (bool, string) {
		entries, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{name}})
		if err != nil {
			t.Fatalf("DescribeConfig %s %s: %v", topic, name, err)
		}
		for _, e := range entries {
			if e.Name == name {
				return e.Value == value && e.Source == source, fmt.Sprintf("%q (source %v)", e.Value, e.Source)
			}
		}
		return false, fmt.Sprintf("no %s among %d entries", name, len(entries))
	})
}

var saramaCodecs = map[string]sarama.CompressionCodec{
	"none":   sarama.CompressionNone,
	"gzip":   sarama.CompressionGZIP,
	"snappy": sarama.CompressionSnappy,
	"lz4":    sarama.CompressionLZ4,
	"zstd":   sarama.CompressionZSTD,
}

func bytesOrNil(b []byte) sarama.Encoder {
	if b == nil {
		return nil
	}
	return sarama.ByteEncoder(b)
}

func TestSaramaProduceConsume(t *testing.T) {
	t.Parallel()
	eachSaramaVersion(t, func(t *testing.T, v sarama.KafkaVersion) {
		adm := newSaramaAdmin(t, v)
		for _, codec := range codecs {
			t.Run(codec, func(t *testing.T) {
				topic := uniqueName("sarama-" + codec)
				saramaCreateTopic(t, adm, topic, partitions, nil)
				rs := makeRecords(pastBase())

				// SyncProducer, acks=all, explicit partitions.
				cfg := saramaConfig(v)
				cfg.Producer.Compression = saramaCodecs[codec]
				producer, err := sarama.NewSyncProducer(seeds(), cfg)
				if err != nil {
					t.Fatalf("NewSyncProducer: %v", err)
				}
				defer producer.Close()
				msgs := make([]*sarama.ProducerMessage, len(rs))
				for i, r := range rs {
					m := &sarama.ProducerMessage{
						Topic:     topic,
						Partition: r.partition,
						Key:       bytesOrNil(r.key),
						Value:     bytesOrNil(r.value),
						Timestamp: time.UnixMilli(r.tsMillis),
					}
					for _, h := range r.headers {
						m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.key), Value: h.value})
					}
					msgs[i] = m
				}
				if err := producer.SendMessages(msgs); err != nil {
					t.Fatalf("SendMessages: %v", err)
				}
				want := expectedOffsets(rs)
				for i, m := range msgs {
					if m.Partition != rs[i].partition || m.Offset != want[i] {
						t.Errorf("record %d produced to %d@%d, want %d@%d", i, m.Partition, m.Offset, rs[i].partition, want[i])
					}
				}

				// Partition consumers from the oldest offset.
				consumer, err := sarama.NewConsumer(seeds(), saramaConfig(v))
				if err != nil {
					t.Fatalf("NewConsumer: %v", err)
				}
				defer consumer.Close()
				var cs []consumed
				counts := map[int32]int{}
				for _, r := range rs {
					counts[r.partition]++
				}
				for p := int32(0); p < partitions; p++ {
					pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
					if err != nil {
						t.Fatalf("ConsumePartition %d: %v", p, err)
					}
					deadline := time.After(timeout)
				read:
					for n := 0; n < counts[p]; {
						select {
						case m := <-pc.Messages():
							c := consumed{offset: m.Offset, rec: rec{partition: m.Partition, key: m.Key, value: m.Value, tsMillis: m.Timestamp.UnixMilli()}}
							for _, h := range m.Headers {
								c.headers = append(c.headers, header{string(h.Key), h.Value})
							}
							if m.Topic != topic {
								t.Errorf("%d@%d: topic %q", m.Partition, m.Offset, m.Topic)
							}
							cs = append(cs, c)
							n++
						case err := <-pc.Errors():
							t.Errorf("partition %d: %v", p, err)
						case <-deadline:
							t.Errorf("partition %d: read %d of %d records before the timeout", p, n, counts[p])
							break read
						}
					}
					if hwm := pc.HighWaterMarkOffset(); hwm != int64(counts[p]) {
						t.Errorf("partition %d: high watermark %d, want %d", p, hwm, counts[p])
					}
					_ = pc.Close()
				}
				checkPartitions(t, rs, cs)

				// ListOffsets through the client: oldest, newest, by time.
				client, err := sarama.NewClient(seeds(), saramaConfig(v))
				if err != nil {
					t.Fatalf("NewClient: %v", err)
				}
				defer client.Close()
				for p := int32(0); p < partitions; p++ {
					check := func(what string, at int64, want int64) {
						got, err := client.GetOffset(topic, p, at)
						if err != nil || got != want {
							t.Errorf("GetOffset %s partition %d: %d (%v), want %d", what, p, got, err, want)
						}
					}
					check("oldest", sarama.OffsetOldest, 0)
					check("newest", sarama.OffsetNewest, int64(counts[p]))
					for _, ts := range []int64{rs[0].tsMillis - 60_000, rs[15].tsMillis, rs[15].tsMillis + 1, rs[len(rs)-1].tsMillis, rs[len(rs)-1].tsMillis + 60_000} {
						o, _ := offsetForTime(rs, p, ts)
						check(fmt.Sprintf("time %d", ts), ts, o)
					}
				}
			})
		}
	})
}

// saramaHandler collects what a consumer group session reads, marking and
// committing every message synchronously.
type saramaHandler struct {
	mu       sync.Mutex
	msgs     []*sarama.ConsumerMessage
	claims   [][]int32 // partitions claimed, per session
	wantMsgs int
	enough   chan struct{}
	once     sync.Once
}

func (h *saramaHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	ps := append([]int32(nil), s.Claims()[firstKey(s.Claims())]...)
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	h.claims = append(h.claims, ps)
	return nil
}

func firstKey(m map[string][]int32) string {
	for k := range m {
		return k
	}
	return ""
}

func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				return nil
			}
			s.MarkMessage(m, "")
			s.Commit()
			h.mu.Lock()
			h.msgs = append(h.msgs, m)
			if len(h.msgs) >= h.wantMsgs {
				h.once.Do(func() { close(h.enough) })
			}
			h.mu.Unlock()
		case <-s.Context().Done():
			return nil
		}
	}
}

func (h *saramaHandler) snapshot() ([]*sarama.ConsumerMessage, [][]int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*sarama.ConsumerMessage(nil), h.msgs...), append([][]int32(nil), h.claims...)
}

// saramaGroupRun joins group, consumes until want messages were read, and
// leaves the group; it returns what was read.
func saramaGroupRun(t *testing.T, v sarama.KafkaVersion, adm sarama.ClusterAdmin, group, topic string, want int, whileRunning func()) []*sarama.ConsumerMessage {
	t.Helper()
	cfg := saramaConfig(v)
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cg, err := sarama.NewConsumerGroup(seeds(), group, cfg)
	if err != nil {
		t.Fatalf("NewConsumerGroup: %v", err)
	}
	h := &saramaHandler{wantMsgs: want, enough: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var groupErrs []error
	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for err := range cg.Errors() {
			groupErrs = append(groupErrs, err)
		}
	}()
	select {
	case <-h.enough:
	case err := <-done:
		cancel()
		_ = cg.Close()
		t.Fatalf("Consume: %v", err)
	case <-time.After(timeout):
		msgs, _ := h.snapshot()
		t.Errorf("read %d of %d messages before the timeout", len(msgs), want)
	}
	if whileRunning != nil {
		whileRunning()
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Consume: %v", err)
	}
	if err := cg.Close(); err != nil {
		t.Errorf("ConsumerGroup.Close: %v", err)
	}
	<-errsDone
	for _, err := range groupErrs {
		t.Errorf("consumer group error: %v", err)
	}
	msgs, claims := h.snapshot()
	for _, c := range claims {
		if len(c) != partitions {
			t.Errorf("a lone member claimed partitions %v, want all %d", c, partitions)
		}
	}
	return msgs
}

func saramaProduceRound(t *testing.T, v sarama.KafkaVersion, topic string, round, perPartition int) {
	t.Helper()
	producer, err := sarama.NewSyncProducer(seeds(), saramaConfig(v))
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	defer producer.Close()
	var msgs []*sarama.ProducerMessage
	for i := 0; i < perPartition; i++ {
		for p := int32(0); p < partitions; p++ {
			msgs = append(msgs, &sarama.ProducerMessage{
				Topic: topic, Partition: p,
				Key:   sarama.StringEncoder(fmt.Sprintf("k-%d-%d", p, i)),
				Value: sarama.StringEncoder(fmt.Sprintf("round-%d p%d i%d", round, p, i)),
			})
		}
	}
	if err := producer.SendMessages(msgs); err != nil {
		t.Fatalf("SendMessages round %d: %v", round, err)
	}
}

// checkSaramaRound: msgs are exactly one round's records, once each, in
// offset order per partition from offset first.
func checkSaramaRound(t *testing.T, msgs []*sarama.ConsumerMessage, round int, first int64, perPartition int) {
	t.Helper()
	next := map[int32]int64{}
	for p := int32(0); p < partitions; p++ {
		next[p] = first
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		id := fmt.Sprintf("%d@%d", m.Partition, m.Offset)
		if seen[id] {
			t.Errorf("round %d: %s consumed twice", round, id)
			continue
		}
		seen[id] = true
		if m.Offset != next[m.Partition] {
			t.Errorf("round %d: partition %d read offset %d, want %d", round, m.Partition, m.Offset, next[m.Partition])
		}
		next[m.Partition] = m.Offset + 1
		i := m.Offset - first
		want := fmt.Sprintf("round-%d p%d i%d", round, m.Partition, i)
		if string(m.Value) != want || string(m.Key) != fmt.Sprintf("k-%d-%d", m.Partition, i) {
			t.Errorf("round %d: %s is %q/%q, want %q", round, id, m.Key, m.Value, want)
		}
	}
	if len(seen) != partitions*perPartition {
		t.Errorf("round %d: %d distinct records consumed, want %d", round, len(seen), partitions*perPartition)
	}
}

func saramaCheckCommitted(t *testing.T, adm sarama.ClusterAdmin, group, topic string, want int64) {
	t.Helper()
	resp, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
	if err != nil {
		t.Fatalf("ListConsumerGroupOffsets: %v", err)
	}
	for p := int32(0); p < partitions; p++ {
		b := resp.GetBlock(topic, p)
		if b == nil || b.Err != sarama.ErrNoError || b.Offset != want {
			t.Errorf("committed offset of %s[%d]: %+v, want %d", topic, p, b, want)
		}
	}
}

func TestSaramaConsumerGroup(t *testing.T) {
	t.Parallel()
	eachSaramaVersion(t, func(t *testing.T, v sarama.KafkaVersion) {
		adm := newSaramaAdmin(t, v)
		topic := uniqueName("sarama-group")
		group := uniqueName("sarama-group")
		saramaCreateTopic(t, adm, topic, partitions, nil)
		const perRound = 20

		saramaProduceRound(t, v, topic, 1, perRound)
		msgs := saramaGroupRun(t, v, adm, group, topic, partitions*perRound, func() {
			// While the member is in the group: listed and described.
			groups, err := adm.ListConsumerGroups()
			if err != nil {
				t.Fatalf("ListConsumerGroups: %v", err)
			}
			if pt := groups[group]; pt != "consumer" {
				t.Errorf("ListConsumerGroups: %s has protocol type %q, want consumer", group, pt)
			}
			ds, err := adm.DescribeConsumerGroups([]string{group})
			if err != nil || len(ds) != 1 {
				t.Fatalf("DescribeConsumerGroups: %v (%d groups)", err, len(ds))
			}
			d := ds[0]
			if d.Err != sarama.ErrNoError || d.State != "Stable" || d.ProtocolType != "consumer" || len(d.Members) != 1 {
				t.Errorf("DescribeConsumerGroups %s: err %v state %q protocol type %q, %d members; want Stable, consumer, 1",
					group, d.Err, d.State, d.ProtocolType, len(d.Members))
			}
			for _, m := range d.Members {
				a, err := m.GetMemberAssignment()
				if err != nil || len(a.Topics[topic]) != partitions {
					t.Errorf("member %s assignment: %v (%v)", m.MemberId, a, err)
				}
				if m.ClientId != "strom-compat-sarama" {
					t.Errorf("member client id %q", m.ClientId)
				}
			}
		})
		checkSaramaRound(t, msgs, 1, 0, perRound)
		saramaCheckCommitted(t, adm, group, topic, perRound)

		// A new session of the group continues from the commits.
		saramaProduceRound(t, v, topic, 2, 5)
		msgs = saramaGroupRun(t, v, adm, group, topic, partitions*5, nil)
		checkSaramaRound(t, msgs, 2, perRound, 5)
		saramaCheckCommitted(t, adm, group, topic, perRound+5)

		// Empty now; then deleted.
		eventually(t, "group empty", func() (bool, string) {
			ds, err := adm.DescribeConsumerGroups([]string{group})
			if err != nil || len(ds) != 1 {
				return false, fmt.Sprint(err)
			}
			return ds[0].State == "Empty" && len(ds[0].Members) == 0, fmt.Sprintf("state %q, %d members", ds[0].State, len(ds[0].Members))
		})
		if err := adm.DeleteConsumerGroup(group); err != nil {
			t.Fatalf("DeleteConsumerGroup: %v", err)
		}
		groups, err := adm.ListConsumerGroups()
		if err != nil {
			t.Fatalf("ListConsumerGroups: %v", err)
		}
		if _, ok := groups[group]; ok {
			t.Errorf("%s still listed after DeleteConsumerGroup", group)
		}
	})
}

// saramaIdempotentConfig is what Sarama requires of an idempotent producer:
// acks=all (saramaConfig's already) and one request in flight.
func saramaIdempotentConfig(v sarama.KafkaVersion) *sarama.Config {
	cfg := saramaConfig(v)
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	return cfg
}

// saramaConsumeExactly reads want[p] records from each partition p from the
// oldest offset, then half a second more in which nothing else may arrive,
// and checks the high watermark each partition consumer saw.
func saramaConsumeExactly(t *testing.T, cfg *sarama.Config, topic string, want, hwm map[int32]int) []*sarama.ConsumerMessage {
	t.Helper()
	consumer, err := sarama.NewConsumer(seeds(), cfg)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	defer consumer.Close()
	var out []*sarama.ConsumerMessage
	for p := int32(0); p < int32(len(want)); p++ {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("ConsumePartition %d: %v", p, err)
		}
		deadline := time.After(timeout)
		n := 0
	read:
		for {
			var quiet <-chan time.Time
			if n >= want[p] {
				quiet = time.After(500 * time.Millisecond)
			}
			select {
			case m := <-pc.Messages():
				if n >= want[p] {
					t.Errorf("partition %d: a record beyond the %d expected: offset %d %q", p, want[p], m.Offset, m.Value)
				}
				out = append(out, m)
				n++
			case err := <-pc.Errors():
				t.Errorf("partition %d: %v", p, err)
			case <-quiet:
				break read
			case <-deadline:
				t.Errorf("partition %d: read %d of %d records before the timeout", p, n, want[p])
				break read
			}
		}
		if got := pc.HighWaterMarkOffset(); got != int64(hwm[p]) {
			t.Errorf("partition %d: high watermark %d, want %d", p, got, hwm[p])
		}
		_ = pc.Close()
	}
	return out
}

// TestSaramaIdempotentProducer: Sarama's idempotent producer (one request in
// flight, acks=all), requests of at most 10 records, three partitions: each
// record is acknowledged and stored once, in produce order, at contiguous
// offsets.
func TestSaramaIdempotentProducer(t *testing.T) {
	t.Parallel()
	eachSaramaVersion(t, func(t *testing.T, v sarama.KafkaVersion) {
		adm := newSaramaAdmin(t, v)
		topic := uniqueName("sarama-idem")
		saramaCreateTopic(t, adm, topic, partitions, nil)
		rs := idempotentRecords(pastBase())

		cfg := saramaIdempotentConfig(v)
		cfg.Producer.Flush.MaxMessages = 10
		producer, err := sarama.NewSyncProducer(seeds(), cfg)
		if err != nil {
			t.Fatalf("NewSyncProducer: %v", err)
		}
		defer producer.Close()
		msgs := make([]*sarama.ProducerMessage, len(rs))
		for i, r := range rs {
			msgs[i] = &sarama.ProducerMessage{
				Topic: topic, Partition: r.partition,
				Key: sarama.ByteEncoder(r.key), Value: sarama.ByteEncoder(r.value),
				Timestamp: time.UnixMilli(r.tsMillis),
			}
		}
		if err := producer.SendMessages(msgs); err != nil {
			t.Fatalf("SendMessages: %v", err)
		}
		want := expectedOffsets(rs)
		for i, m := range msgs {
			if m.Partition != rs[i].partition || m.Offset != want[i] {
				t.Errorf("record %d produced to %d@%d, want %d@%d", i, m.Partition, m.Offset, rs[i].partition, want[i])
			}
		}

		counts := map[int32]int{}
		for p := int32(0); p < partitions; p++ {
			counts[p] = idempotentPerPartition
		}
		var cs []consumed
		for _, m := range saramaConsumeExactly(t, saramaConfig(v), topic, counts, counts) {
			cs = append(cs, consumed{offset: m.Offset, rec: rec{partition: m.Partition, key: m.Key, value: m.Value, tsMillis: m.Timestamp.UnixMilli()}})
		}
		checkOnceInOrder(t, rs, cs)
	})
}

// TestSaramaTransactions: a transactional producer (Transaction.ID) writes
// to two partitions and commits a group offset (AddOffsetsToTxn) in each of
// two transactions; the first commits, the second aborts. read_committed
// reads exactly the committed records; read_uncommitted the aborted ones
// too, after the COMMIT marker's offset; the markers take an offset each;
// the group's offset is the committed transaction's.
func TestSaramaTransactions(t *testing.T) {
	t.Parallel()
	eachSaramaVersion(t, func(t *testing.T, v sarama.KafkaVersion) {
		adm := newSaramaAdmin(t, v)
		topic := uniqueName("sarama-txn")
		// The input topic a consume-transform-produce loop would read: only
		// its group offset is committed here, but it has to exist.
		source := uniqueName("sarama-txn-source")
		group := uniqueName("sarama-txn-group")
		saramaCreateTopic(t, adm, topic, txnPartitions, nil)
		saramaCreateTopic(t, adm, source, 1, nil)

		cfg := saramaIdempotentConfig(v)
		cfg.Producer.Transaction.ID = uniqueName("sarama-txn-id")
		producer, err := sarama.NewSyncProducer(seeds(), cfg)
		if err != nil {
			t.Fatalf("NewSyncProducer: %v", err)
		}
		defer producer.Close()
		for _, tx := range []struct {
			kind   string
			count  int
			offset int64
		}{
			{"commit", txnCommitted, txnGroupOffsetCommitted},
			{"abort", txnAborted, txnGroupOffsetAborted},
		} {
			if err := producer.BeginTxn(); err != nil {
				t.Fatalf("%s: BeginTxn: %v", tx.kind, err)
			}
			var msgs []*sarama.ProducerMessage
			for p := int32(0); p < txnPartitions; p++ {
				for i := 0; i < tx.count; i++ {
					msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: p, Value: sarama.ByteEncoder(txnValue(tx.kind, p, i))})
				}
			}
			if err := producer.SendMessages(msgs); err != nil {
				t.Fatalf("%s: SendMessages: %v", tx.kind, err)
			}
			offsets := map[string][]*sarama.PartitionOffsetMetadata{
				source: {{Partition: 0, Offset: tx.offset, LeaderEpoch: -1}},
			}
			if err := producer.AddOffsetsToTxn(offsets, group); err != nil {
				t.Fatalf("%s: AddOffsetsToTxn: %v", tx.kind, err)
			}
			if tx.kind == "commit" {
				err = producer.CommitTxn()
			} else {
				err = producer.AbortTxn()
			}
			if err != nil {
				t.Fatalf("%s: end the transaction: %v", tx.kind, err)
			}
		}

		ends := map[int32]int{}
		for p := int32(0); p < txnPartitions; p++ {
			ends[p] = txnEndOffset
		}
		for _, readCommitted := range []bool{true, false} {
			ccfg := saramaConfig(v)
			counts := map[int32]int{}
			for p := int32(0); p < txnPartitions; p++ {
				counts[p] = txnCommitted + txnAborted
			}
			if readCommitted {
				ccfg.Consumer.IsolationLevel = sarama.ReadCommitted
				for p := range counts {
					counts[p] = txnCommitted
				}
			}
			var got []txnRead
			for _, m := range saramaConsumeExactly(t, ccfg, topic, counts, ends) {
				got = append(got, txnRead{m.Partition, m.Offset, string(m.Value)})
			}
			checkTxnRead(t, got, readCommitted)
		}

		resp, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{source: {0}})
		if err != nil {
			t.Fatalf("ListConsumerGroupOffsets: %v", err)
		}
		if b := resp.GetBlock(source, 0); b == nil || b.Err != sarama.ErrNoError || b.Offset != txnGroupOffsetCommitted {
			t.Errorf("group offset of %s[0]: %+v, want %d", source, b, txnGroupOffsetCommitted)
		}
	})
}
