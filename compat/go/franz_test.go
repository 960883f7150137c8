package compat

// franz-go (kgo) and its admin client kadm against Strom.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	t.Cleanup(cancel)
	return ctx
}

func newKgo(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(seeds()...),
		kgo.ClientID("strom-compat-franz"),
		kgo.RequestTimeoutOverhead(5 * time.Second),
		kgo.RetryTimeout(timeout),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func newKadm(t *testing.T) *kadm.Client {
	t.Helper()
	// kgo answers metadata from a cache younger than the min age (5 s by
	// default); the tests want what the broker says now.
	adm := kadm.NewClient(newKgo(t, kgo.MetadataMinAge(10*time.Millisecond)))
	adm.SetTimeoutMillis(int32(timeout / time.Millisecond))
	return adm
}

func createTopic(t *testing.T, adm *kadm.Client, topic string, n int32, configs map[string]*string) kadm.CreateTopicResponse {
	t.Helper()
	resp, err := adm.CreateTopic(ctxT(t), n, 1, configs, topic)
	if err != nil {
		t.Fatalf("CreateTopic %s: %v (%s)", topic, err, resp.ErrMessage)
	}
	return resp
}

func str(s string) *string { return &s }

func configOf(t *testing.T, adm *kadm.Client, topic, name string) kadm.Config {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctxT(t), topic)
	if err != nil {
		t.Fatalf("DescribeTopicConfigs %s: %v", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("DescribeTopicConfigs %s: %v / %v (%s)", topic, err, rc.Err, rc.ErrMessage)
	}
	for _, c := range rc.Configs {
		if c.Key == name {
			return c
		}
	}
	t.Fatalf("DescribeTopicConfigs %s: no %s among %d configs", topic, name, len(rc.Configs))
	return kadm.Config{}
}

// wantConfig waits for a topic config to read back as value from source:
// Apache Kafka applies config changes through its metadata log, so a
// DescribeConfigs right after an alter may still see the old value there
// (Strom answers the new one at once).
func wantConfig(t *testing.T, adm *kadm.Client, topic, name, value string, source kmsg.ConfigSource) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s %s = %q (source %v)", topic, name, value, source), func() (bool, string) {
		c := configOf(t, adm, topic, name)
		return c.MaybeValue() == value && c.Source == source,
			fmt.Sprintf("%q (source %v)", c.MaybeValue(), c.Source)
	})
}

func partitionCount(t *testing.T, adm *kadm.Client, topic string) int {
	t.Helper()
	tds, err := adm.ListTopics(ctxT(t), topic)
	if err != nil {
		t.Fatalf("ListTopics %s: %v", topic, err)
	}
	td, ok := tds[topic]
	if !ok || td.Err != nil {
		t.Fatalf("ListTopics %s: present %v, err %v", topic, ok, td.Err)
	}
	return len(td.Partitions)
}

func TestFranzTopicAdmin(t *testing.T) {
	t.Parallel()
	adm := newKadm(t)
	ctx := ctxT(t)
	topic := uniqueName("franz-admin")

	brokers, err := adm.ListBrokers(ctx)
	if err != nil || len(brokers) == 0 {
		t.Fatalf("ListBrokers: %v, %d brokers", err, len(brokers))
	}
	brokerIDs := map[int32]bool{}
	for _, b := range brokers {
		brokerIDs[b.NodeID] = true
		if b.Host == "" || b.Port <= 0 {
			t.Errorf("broker %d advertises %q:%d", b.NodeID, b.Host, b.Port)
		}
	}

	created := createTopic(t, adm, topic, partitions, map[string]*string{"retention.ms": str("3600000")})
	if created.NumPartitions != partitions || created.ReplicationFactor != 1 {
		t.Errorf("CreateTopic answered %d partitions x%d, want %d x1", created.NumPartitions, created.ReplicationFactor, partitions)
	}
	if created.ID == (kadm.TopicID{}) {
		t.Errorf("CreateTopic answered no topic id")
	}
	if c, ok := created.Configs["retention.ms"]; !ok || c.MaybeValue() != "3600000" {
		t.Errorf("CreateTopic configs: retention.ms = %q (present %v), want 3600000", c.MaybeValue(), ok)
	}

	// Creating it again is TOPIC_ALREADY_EXISTS.
	again, err := adm.CreateTopics(ctx, partitions, 1, nil, topic)
	if err != nil {
		t.Fatalf("CreateTopics (again): %v", err)
	}
	if e := again[topic].Err; !errors.Is(e, kerr.TopicAlreadyExists) {
		t.Errorf("creating %s twice: %v, want TOPIC_ALREADY_EXISTS", topic, e)
	}

	// Metadata: the topic, its id, and its partitions led by a known broker.
	var all kadm.TopicDetails
	eventually(t, "topic listed in all-topics metadata", func() (bool, string) {
		all, err = adm.ListTopics(ctx)
		if err != nil {
			return false, err.Error()
		}
		_, ok := all[topic]
		return ok, fmt.Sprintf("missing from %v", all.Names())
	})
	td := all[topic]
	if td.ID != created.ID {
		t.Errorf("metadata topic id %v, CreateTopics said %v", td.ID, created.ID)
	}
	if td.IsInternal {
		t.Errorf("%s reported internal", topic)
	}
	if len(td.Partitions) != partitions {
		t.Errorf("metadata: %d partitions, want %d", len(td.Partitions), partitions)
	}
	for p, pd := range td.Partitions {
		if pd.Err != nil || !brokerIDs[pd.Leader] || len(pd.Replicas) != 1 || pd.Replicas[0] != pd.Leader ||
			len(pd.ISR) != 1 || pd.ISR[0] != pd.Leader {
			t.Errorf("partition %d: leader %d replicas %v isr %v err %v", p, pd.Leader, pd.Replicas, pd.ISR, pd.Err)
		}
	}

	// Configs: the one set at creation is a dynamic topic config, the rest defaults.
	wantConfig(t, adm, topic, "retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
	wantConfig(t, adm, topic, "cleanup.policy", "delete", kmsg.ConfigSourceDefaultConfig)
	wantConfig(t, adm, topic, "max.message.bytes", "1048588", kmsg.ConfigSourceDefaultConfig)

	// IncrementalAlterConfigs: set, delete (back to the default), append and
	// subtract on a list config.
	alter := func(what string, ops ...kadm.AlterConfig) {
		t.Helper()
		rs, err := adm.AlterTopicConfigs(ctx, ops, topic)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		r, err := rs.On(topic, nil)
		if err != nil || r.Err != nil {
			t.Fatalf("%s: %v / %v (%s)", what, err, r.Err, r.ErrMessage)
		}
	}
	alter("set", kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms", Value: str("7200000")},
		kadm.AlterConfig{Op: kadm.SetConfig, Name: "max.message.bytes", Value: str("2000000")})
	wantConfig(t, adm, topic, "retention.ms", "7200000", kmsg.ConfigSourceDynamicTopicConfig)
	wantConfig(t, adm, topic, "max.message.bytes", "2000000", kmsg.ConfigSourceDynamicTopicConfig)
	alter("delete", kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "retention.ms"})
	wantConfig(t, adm, topic, "retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig)
	wantConfig(t, adm, topic, "max.message.bytes", "2000000", kmsg.ConfigSourceDynamicTopicConfig)
	alter("append", kadm.AlterConfig{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: str("compact")})
	wantConfig(t, adm, topic, "cleanup.policy", "delete,compact", kmsg.ConfigSourceDynamicTopicConfig)
	alter("subtract", kadm.AlterConfig{Op: kadm.SubtractConfig, Name: "cleanup.policy", Value: str("compact")})
	wantConfig(t, adm, topic, "cleanup.policy", "delete", kmsg.ConfigSourceDynamicTopicConfig)

	// An invalid value and an unknown name are INVALID_CONFIG, and change nothing.
	for _, bad := range []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: str("-5")},
		{Op: kadm.SetConfig, Name: "retention.ms", Value: str("soon")},
		{Op: kadm.SetConfig, Name: "no.such.config", Value: str("1")},
	} {
		rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{bad}, topic)
		if err != nil {
			t.Fatalf("AlterTopicConfigs %s=%s: %v", bad.Name, *bad.Value, err)
		}
		if r, _ := rs.On(topic, nil); !errors.Is(r.Err, kerr.InvalidConfig) {
			t.Errorf("AlterTopicConfigs %s=%s: %v (%s), want INVALID_CONFIG", bad.Name, *bad.Value, r.Err, r.ErrMessage)
		}
	}
	wantConfig(t, adm, topic, "retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig)

	// CreatePartitions: add one; shrinking is INVALID_PARTITIONS.
	cps, err := adm.CreatePartitions(ctx, 1, topic)
	if err != nil {
		t.Fatalf("CreatePartitions: %v", err)
	}
	if r := cps[topic]; r.Err != nil {
		t.Fatalf("CreatePartitions: %v (%s)", r.Err, r.ErrMessage)
	}
	eventually(t, "4 partitions in metadata", func() (bool, string) {
		n := partitionCount(t, adm, topic)
		return n == partitions+1, fmt.Sprintf("%d partitions", n)
	})
	cps, err = adm.UpdatePartitions(ctx, 2, topic)
	if err != nil {
		t.Fatalf("UpdatePartitions: %v", err)
	}
	if r := cps[topic]; !errors.Is(r.Err, kerr.InvalidPartitions) {
		t.Errorf("shrinking to 2 partitions: %v (%s), want INVALID_PARTITIONS", r.Err, r.ErrMessage)
	}
	if n := partitionCount(t, adm, topic); n != partitions+1 {
		t.Errorf("after a refused shrink: %d partitions, want %d", n, partitions+1)
	}

	// DeleteTopics: gone from metadata and configs; deleting again is
	// UNKNOWN_TOPIC_OR_PARTITION.
	del, err := adm.DeleteTopic(ctx, topic)
	if err != nil || del.Err != nil {
		t.Fatalf("DeleteTopic: %v / %v (%s)", err, del.Err, del.ErrMessage)
	}
	eventually(t, "topic gone from metadata", func() (bool, string) {
		tds, err := adm.ListTopics(ctx)
		if err != nil {
			return false, err.Error()
		}
		_, present := tds[topic]
		return !present, "still listed"
	})
	// (kadm answers from kgo's metadata cache while it is younger than the
	// min age, hence eventually.)
	eventually(t, "metadata for the deleted topic to be UNKNOWN_TOPIC_OR_PARTITION", func() (bool, string) {
		tds, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return false, err.Error()
		}
		e := tds[topic].Err
		return errors.Is(e, kerr.UnknownTopicOrPartition), fmt.Sprint(e)
	})
	// (kadm.DeleteTopic returns the topic's error code as its error.)
	if _, err = adm.DeleteTopic(ctx, topic); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("deleting a deleted topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err == nil {
		rc, _ := rcs.On(topic, nil)
		err = rc.Err
	}
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("configs of a deleted topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
}

func TestFranzErrors(t *testing.T) {
	t.Parallel()
	adm := newKadm(t)
	ctx := ctxT(t)
	for _, name := range []string{"bad name!", "..", "a/b", strings.Repeat("x", 250)} {
		resp, err := adm.CreateTopics(ctx, 1, 1, nil, name)
		if err != nil {
			t.Fatalf("CreateTopics %q: %v", name, err)
		}
		if e := resp[name].Err; !errors.Is(e, kerr.InvalidTopicException) {
			t.Errorf("CreateTopics %q: %v (%s), want INVALID_TOPIC_EXCEPTION", name, e, resp[name].ErrMessage)
		}
	}
	// Zero partitions and a replication factor the one broker can't meet.
	topic := uniqueName("franz-bad")
	resp, err := adm.CreateTopics(ctx, 0, 1, nil, topic)
	if err != nil {
		t.Fatalf("CreateTopics 0 partitions: %v", err)
	}
	if e := resp[topic].Err; !errors.Is(e, kerr.InvalidPartitions) {
		t.Errorf("CreateTopics with 0 partitions: %v, want INVALID_PARTITIONS", e)
	}
	resp, err = adm.CreateTopics(ctx, 1, 3, nil, topic)
	if err != nil {
		t.Fatalf("CreateTopics rf 3: %v", err)
	}
	if e := resp[topic].Err; !errors.Is(e, kerr.InvalidReplicationFactor) {
		t.Errorf("CreateTopics with replication factor 3 on one broker: %v, want INVALID_REPLICATION_FACTOR", e)
	}
	// An invalid config at creation is INVALID_CONFIG and creates nothing.
	resp, err = adm.CreateTopics(ctx, 1, 1, map[string]*string{"retention.ms": str("often")}, topic)
	if err != nil {
		t.Fatalf("CreateTopics bad config: %v", err)
	}
	if e := resp[topic].Err; !errors.Is(e, kerr.InvalidConfig) {
		t.Errorf("CreateTopics with retention.ms=often: %v, want INVALID_CONFIG", e)
	}
	tds, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	if _, ok := tds[topic]; ok {
		t.Errorf("%s exists after failed creations", topic)
	}

	// validate_only creates nothing.
	vr, err := adm.ValidateCreateTopics(ctx, 2, 1, nil, topic)
	if err != nil || vr[topic].Err != nil {
		t.Fatalf("ValidateCreateTopics: %v / %v", err, vr[topic].Err)
	}
	if vr[topic].NumPartitions != 2 && vr[topic].NumPartitions != -1 {
		t.Errorf("ValidateCreateTopics answered %d partitions", vr[topic].NumPartitions)
	}
	// Metadata for a topic that does not exist (and is not auto-created by
	// an admin metadata request) is UNKNOWN_TOPIC_OR_PARTITION.
	tds, err = adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatalf("ListTopics %s: %v", topic, err)
	}
	if e := tds[topic].Err; !errors.Is(e, kerr.UnknownTopicOrPartition) {
		t.Errorf("metadata for %s after validate_only: %v, want UNKNOWN_TOPIC_OR_PARTITION", topic, e)
	}

	// Describing a group that does not exist: DescribeGroups v6+ says
	// GROUP_ID_NOT_FOUND; before v6, Kafka answers state Dead and no error
	// (GroupMetadataManager.describeGroups). ConsumerGroupDescribe says
	// GROUP_ID_NOT_FOUND. kgo sends the highest version both sides support
	// (v6 against Strom) whatever req.Version says, so only v6 is checked
	// here; crates/broker/tests/versions.rs checks every version on the wire.
	missing := uniqueName("no-such-group")
	for _, v := range []int16{6} {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Version = v
		req.Groups = []string{missing}
		resp, err := req.RequestWith(ctx, adminKgo(t))
		if err != nil {
			t.Fatalf("DescribeGroups v%d: %v", v, err)
		}
		if len(resp.Groups) != 1 {
			t.Fatalf("DescribeGroups v%d: %d groups in the answer", v, len(resp.Groups))
		}
		g := resp.Groups[0]
		wantCode := int16(0)
		if v >= 6 {
			wantCode = kerr.GroupIDNotFound.Code
		}
		if g.ErrorCode != wantCode || g.State != "Dead" || len(g.Members) != 0 {
			t.Errorf("DescribeGroups v%d of a missing group: error %d state %q; want error %d, state Dead", v, g.ErrorCode, g.State, wantCode)
		}
	}
	cgd, err := adm.DescribeConsumerGroups(ctx, missing)
	if err != nil {
		t.Fatalf("DescribeConsumerGroups: %v", err)
	}
	if e := cgd[missing].Err; !errors.Is(e, kerr.GroupIDNotFound) {
		t.Errorf("ConsumerGroupDescribe of a missing group: %v, want GROUP_ID_NOT_FOUND", e)
	}

	// A batch over the topic's max.message.bytes is MESSAGE_TOO_LARGE and
	// is not appended; a partition the topic lacks is UNKNOWN_TOPIC_OR_PARTITION.
	small := uniqueName("franz-small")
	createTopic(t, adm, small, 1, map[string]*string{"max.message.bytes": str("1024")})
	// Idempotent: kgo's default.
	cl := newKgo(t, kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordRetries(2))
	big := &kgo.Record{Topic: small, Value: make([]byte, 4000)}
	if err := cl.ProduceSync(ctx, big).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Errorf("producing 4000 bytes to a topic with max.message.bytes=1024: %v, want MESSAGE_TOO_LARGE", err)
	}
	fits := &kgo.Record{Topic: small, Value: []byte("fits")}
	if err := cl.ProduceSync(ctx, fits).FirstErr(); err != nil || fits.Offset != 0 {
		t.Errorf("producing a small record after the refused one: offset %d, %v; want offset 0", fits.Offset, err)
	}

	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = small
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = 7
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	// Straight to the broker: kgo would answer from metadata otherwise.
	brokers, err := adm.ListBrokers(ctx)
	if err != nil || len(brokers) == 0 {
		t.Fatalf("ListBrokers: %v", err)
	}
	lresp, err := req.RequestWith(ctx, cl.Broker(int(brokers[0].NodeID)))
	if err != nil {
		t.Fatalf("ListOffsets for partition 7: %v", err)
	}
	if len(lresp.Topics) != 1 || len(lresp.Topics[0].Partitions) != 1 ||
		lresp.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("ListOffsets for partition 7 of a 1-partition topic: %+v, want UNKNOWN_TOPIC_OR_PARTITION", lresp.Topics)
	}
}

var kgoCodecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"gzip":   kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}

// Compression attribute values in a v2 record batch.
var codecAttr = map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

func toKgo(topic string, r rec) *kgo.Record {
	kr := &kgo.Record{
		Topic:     topic,
		Partition: r.partition,
		Key:       r.key,
		Value:     r.value,
		Timestamp: time.UnixMilli(r.tsMillis),
	}
	for _, h := range r.headers {
		kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.key, Value: h.value})
	}
	return kr
}

func fromKgo(r *kgo.Record) consumed {
	c := consumed{offset: r.Offset, rec: rec{
		partition: r.Partition,
		key:       r.Key,
		value:     r.Value,
		tsMillis:  r.Timestamp.UnixMilli(),
	}}
	for _, h := range r.Headers {
		c.headers = append(c.headers, header{h.Key, h.Value})
	}
	return c
}

// franzProduce produces rs with acks=all to their explicit partitions and
// checks the offsets the broker assigned.
func franzProduce(t *testing.T, topic, codec string, rs []rec) {
	t.Helper()
	cl := newKgo(t,
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent: kgo's default
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgoCodecs[codec]),
		kgo.ProducerLinger(20*time.Millisecond),
	)
	krs := make([]*kgo.Record, len(rs))
	for i, r := range rs {
		krs[i] = toKgo(topic, r)
	}
	results := cl.ProduceSync(ctxT(t), krs...)
	if err := results.FirstErr(); err != nil {
		t.Fatalf("produce (%s): %v", codec, err)
	}
	want := expectedOffsets(rs)
	index := map[*kgo.Record]int{}
	for i, kr := range krs {
		index[kr] = i
	}
	if len(results) != len(rs) {
		t.Fatalf("produce (%s): %d results for %d records", codec, len(results), len(rs))
	}
	for _, res := range results {
		i := index[res.Record] // results come in completion order
		if res.Record.Partition != rs[i].partition || res.Record.Offset != want[i] {
			t.Errorf("record %d produced to %d@%d, want %d@%d", i, res.Record.Partition, res.Record.Offset,
				rs[i].partition, want[i])
		}
	}
}

// franzConsume reads n records from the given partitions and offsets with
// direct partition consumption (no group).
func franzConsume(t *testing.T, topic string, from map[int32]kgo.Offset, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	out, _ := franzPoll(t, topic, from, n, opts...)
	return out
}

// franzPoll is franzConsume, also returning the client for reading on.
func franzPoll(t *testing.T, topic string, from map[int32]kgo.Offset, n int, opts ...kgo.Opt) ([]*kgo.Record, *kgo.Client) {
	t.Helper()
	cl := newKgo(t, append([]kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}, opts...)...)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the timeout", len(out), n)
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.Errorf("fetch %s[%d]: %v", tp, p, err)
		})
		out = append(out, fs.Records()...)
	}
	return out, cl
}

func startAll(n int) map[int32]kgo.Offset {
	m := map[int32]kgo.Offset{}
	for p := 0; p < n; p++ {
		m[int32(p)] = kgo.NewOffset().AtStart()
	}
	return m
}

func TestFranzProduceConsume(t *testing.T) {
	t.Parallel()
	adm := newKadm(t)
	for _, codec := range codecs {
		t.Run(codec, func(t *testing.T) {
			topic := uniqueName("franz-" + codec)
			createTopic(t, adm, topic, partitions, nil)
			rs := makeRecords(pastBase())
			franzProduce(t, topic, codec, rs)

			got := franzConsume(t, topic, startAll(partitions), len(rs))
			var cs []consumed
			for _, r := range got {
				if r.Attrs.CompressionType() != codecAttr[codec] {
					t.Errorf("%d@%d: batch compression %d, want %d (%s)", r.Partition, r.Offset,
						r.Attrs.CompressionType(), codecAttr[codec], codec)
				}
				if r.Attrs.TimestampType() != 0 {
					t.Errorf("%d@%d: timestamp type %d, want 0 (CreateTime)", r.Partition, r.Offset, r.Attrs.TimestampType())
				}
				if r.Topic != topic {
					t.Errorf("%d@%d: topic %q", r.Partition, r.Offset, r.Topic)
				}
				cs = append(cs, fromKgo(r))
			}
			checkPartitions(t, rs, cs)
			checkListOffsets(t, adm, topic, rs)

			// Starting inside a batch: the client skips the batch's earlier
			// records and the first one read is the one asked for.
			mid := franzConsume(t, topic, map[int32]kgo.Offset{0: kgo.NewOffset().At(20)}, 14)
			if len(mid) != 14 || mid[0].Offset != 20 || mid[len(mid)-1].Offset != 33 {
				t.Errorf("reading partition 0 from offset 20: %d records from %v", len(mid), firstOffset(mid))
			}
		})
	}
}

// checkListOffsets asks ListOffsets for the earliest, latest, max-timestamp
// and by-timestamp offsets of a fresh topic holding rs.
func checkListOffsets(t *testing.T, adm *kadm.Client, topic string, rs []rec) {
	t.Helper()
	ctx := ctxT(t)
	counts := map[int32]int64{}
	lastTs := map[int32]int64{}
	for _, r := range rs {
		counts[r.partition]++
		lastTs[r.partition] = r.tsMillis
	}
	lookup := func(what string, l kadm.ListedOffsets, err error, p int32) kadm.ListedOffset {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		o, ok := l.Lookup(topic, p)
		if !ok || o.Err != nil {
			t.Fatalf("%s partition %d: present %v, err %v", what, p, ok, o.Err)
		}
		return o
	}
	start, err1 := adm.ListStartOffsets(ctx, topic)
	end, err2 := adm.ListEndOffsets(ctx, topic)
	maxTs, err3 := adm.ListMaxTimestampOffsets(ctx, topic)
	for p := int32(0); p < partitions; p++ {
		if o := lookup("earliest", start, err1, p); o.Offset != 0 {
			t.Errorf("earliest offset of partition %d: %d, want 0", p, o.Offset)
		}
		if o := lookup("latest", end, err2, p); o.Offset != counts[p] {
			t.Errorf("latest offset of partition %d: %d, want %d", p, o.Offset, counts[p])
		}
		if o := lookup("max-timestamp", maxTs, err3, p); o.Offset != counts[p]-1 || o.Timestamp != lastTs[p] {
			t.Errorf("max-timestamp of partition %d: offset %d ts %d, want %d ts %d", p, o.Offset, o.Timestamp, counts[p]-1, lastTs[p])
		}
	}

	// By timestamp: before everything, exactly on a record, between two
	// records, on the last record. kadm answers with the record's timestamp.
	first := rs[0].tsMillis
	queries := []int64{first - 60_000, rs[15].tsMillis, rs[15].tsMillis + 1, rs[len(rs)-1].tsMillis}
	for _, ts := range queries {
		l, err := adm.ListOffsetsAfterMilli(ctx, ts, topic)
		for p := int32(0); p < partitions; p++ {
			o := lookup(fmt.Sprintf("offsets for time %d", ts), l, err, p)
			wantOff, wantTs := offsetForTime(rs, p, ts)
			if wantOff == -1 {
				// kadm maps "none at or after" to the end offset.
				wantOff = counts[p]
				if o.Offset != wantOff {
					t.Errorf("offset for time %d in partition %d: %d, want end offset %d", ts, p, o.Offset, wantOff)
				}
				continue
			}
			if o.Offset != wantOff || o.Timestamp != wantTs {
				t.Errorf("offset for time %d in partition %d: %d (ts %d), want %d (ts %d)", ts, p, o.Offset, o.Timestamp, wantOff, wantTs)
			}
		}
	}

	// After everything, on the wire: offset -1 and timestamp -1, no error.
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < partitions; p++ {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = rs[len(rs)-1].tsMillis + 60_000
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, newKgo(t))
	if err != nil {
		t.Fatalf("ListOffsets after everything: %v", err)
	}
	answered := 0
	for _, rtp := range resp.Topics {
		for _, rp := range rtp.Partitions {
			answered++
			if rp.ErrorCode != 0 || rp.Offset != -1 || rp.Timestamp != -1 {
				t.Errorf("offset for a time after everything in partition %d: error %d offset %d ts %d, want 0 -1 -1",
					rp.Partition, rp.ErrorCode, rp.Offset, rp.Timestamp)
			}
		}
	}
	if answered != partitions {
		t.Errorf("ListOffsets after everything: %d partitions answered, want %d", answered, partitions)
	}
}

// franzConsumeExactly is franzConsume, then half a second more in which
// nothing else may arrive.
func franzConsumeExactly(t *testing.T, topic string, from map[int32]kgo.Offset, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	out, cl := franzPoll(t, topic, from, n, opts...)
	more, cancelMore := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelMore()
	for more.Err() == nil {
		fs := cl.PollFetches(more)
		for _, r := range fs.Records() {
			t.Errorf("read a record beyond the %d expected: %d@%d %q", n, r.Partition, r.Offset, r.Value)
		}
	}
	return out
}

// TestFranzIdempotentProducer: kgo's default idempotent producer, batches
// of about 25 records with up to five requests in flight (kgo's limit with
// idempotence), three partitions: each
// record is acknowledged and stored once, in produce order, at contiguous
// offsets, in batches carrying the producer ID InitProducerId gave.
func TestFranzIdempotentProducer(t *testing.T) {
	t.Parallel()
	adm := newKadm(t)
	ctx := ctxT(t)
	topic := uniqueName("franz-idem")
	createTopic(t, adm, topic, partitions, nil)
	rs := idempotentRecords(pastBase())
	cl := newKgo(t,
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1024),
		kgo.ProducerLinger(time.Millisecond),
	)
	krs := make([]*kgo.Record, len(rs))
	index := map[*kgo.Record]int{}
	for i, r := range rs {
		krs[i] = toKgo(topic, r)
		index[krs[i]] = i
	}
	results := cl.ProduceSync(ctx, krs...)
	if err := results.FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	want := expectedOffsets(rs)
	for _, res := range results {
		i := index[res.Record]
		if res.Record.Partition != rs[i].partition || res.Record.Offset != want[i] {
			t.Errorf("record %d produced to %d@%d, want %d@%d", i, res.Record.Partition, res.Record.Offset, rs[i].partition, want[i])
		}
	}
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil || pid < 0 || epoch < 0 {
		t.Fatalf("ProducerID: %d/%d, %v; want an id from InitProducerId", pid, epoch, err)
	}

	got := franzConsumeExactly(t, topic, startAll(partitions), len(rs))
	var cs []consumed
	for _, r := range got {
		if r.ProducerID != pid || r.ProducerEpoch != epoch {
			t.Errorf("%d@%d: producer %d/%d, want %d/%d", r.Partition, r.Offset, r.ProducerID, r.ProducerEpoch, pid, epoch)
		}
		cs = append(cs, fromKgo(r))
	}
	checkOnceInOrder(t, rs, cs)
	end, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListEndOffsets: %v", err)
	}
	for p := int32(0); p < partitions; p++ {
		if o, ok := end.Lookup(topic, p); !ok || o.Offset != idempotentPerPartition {
			t.Errorf("end offset of partition %d: %+v, want %d", p, o, idempotentPerPartition)
		}
	}
}

// TestFranzTransactions: a GroupTransactSession reads an input topic in a
// consumer group and writes to a two-partition topic: the first transaction
// (5 input records read) commits, the second (5 more read) aborts.
// read_committed reads exactly the committed records; read_uncommitted the
// aborted ones too, after the COMMIT marker's offset; the markers take an
// offset each; the group's offset is where the committed transaction left it.
func TestFranzTransactions(t *testing.T) {
	t.Parallel()
	adm := newKadm(t)
	ctx := ctxT(t)
	topic := uniqueName("franz-txn")
	source := uniqueName("franz-txn-source")
	group := uniqueName("franz-txn-group")
	createTopic(t, adm, topic, txnPartitions, nil)
	createTopic(t, adm, source, 1, nil)
	input := newKgo(t, kgo.DefaultProduceTopic(source))
	var in []*kgo.Record
	for i := 0; i < txnGroupOffsetAborted; i++ {
		in = append(in, &kgo.Record{Value: []byte(fmt.Sprintf("in-%d", i))})
	}
	if err := input.ProduceSync(ctx, in...).FirstErr(); err != nil {
		t.Fatalf("produce the input: %v", err)
	}

	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(seeds()...),
		kgo.ClientID("strom-compat-franz"),
		kgo.TransactionalID(uniqueName("franz-txn-id")),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(source),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.DefaultProduceTopic(topic),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.HeartbeatInterval(300*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("NewGroupTransactSession: %v", err)
	}
	defer sess.Close()
	for _, tx := range []struct {
		kind       string
		count      int
		from, read int64 // input offsets read: from..read-1
		end        kgo.TransactionEndTry
	}{
		{"commit", txnCommitted, 0, txnGroupOffsetCommitted, kgo.TryCommit},
		{"abort", txnAborted, txnGroupOffsetCommitted, txnGroupOffsetAborted, kgo.TryAbort},
	} {
		// Exactly the input records up to tx.read, so that the offset the
		// transaction would commit is known.
		next := tx.from
		for next < tx.read {
			rs := sess.PollRecords(ctx, int(tx.read-next))
			if ctx.Err() != nil {
				t.Fatalf("%s: read the input up to %d of %d", tx.kind, next, tx.read)
			}
			rs.EachError(func(tp string, p int32, err error) { t.Fatalf("%s: fetch %s[%d]: %v", tx.kind, tp, p, err) })
			for _, r := range rs.Records() {
				if r.Offset != next {
					t.Fatalf("%s: input offset %d, want %d", tx.kind, r.Offset, next)
				}
				next++
			}
		}
		if err := sess.Begin(); err != nil {
			t.Fatalf("%s: Begin: %v", tx.kind, err)
		}
		var out []*kgo.Record
		for p := int32(0); p < txnPartitions; p++ {
			for i := 0; i < tx.count; i++ {
				out = append(out, &kgo.Record{Partition: p, Value: txnValue(tx.kind, p, i)})
			}
		}
		if err := sess.ProduceSync(ctx, out...).FirstErr(); err != nil {
			t.Fatalf("%s: produce: %v", tx.kind, err)
		}
		committed, err := sess.End(ctx, tx.end)
		if err != nil || committed != (tx.end == kgo.TryCommit) {
			t.Fatalf("%s: End: committed %v, %v", tx.kind, committed, err)
		}
	}

	read := func(level kgo.IsolationLevel, n int) []txnRead {
		var out []txnRead
		for _, r := range franzConsumeExactly(t, topic, startAll(txnPartitions), n, kgo.FetchIsolationLevel(level)) {
			out = append(out, txnRead{r.Partition, r.Offset, string(r.Value)})
		}
		return out
	}
	checkTxnRead(t, read(kgo.ReadCommitted(), txnPartitions*txnCommitted), true)
	checkTxnRead(t, read(kgo.ReadUncommitted(), txnPartitions*(txnCommitted+txnAborted)), false)

	// Both transactions are over: the last stable offset is the high
	// watermark, past the ABORT marker.
	for _, level := range []int8{0, 1} {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		req.IsolationLevel = level
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		for p := int32(0); p < txnPartitions; p++ {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p
			rp.Timestamp = -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, adminKgo(t))
		if err != nil {
			t.Fatalf("ListOffsets latest (isolation %d): %v", level, err)
		}
		for _, rtp := range resp.Topics {
			for _, rp := range rtp.Partitions {
				if rp.ErrorCode != 0 || rp.Offset != txnEndOffset {
					t.Errorf("latest offset of partition %d (isolation %d): %d, error %d; want %d",
						rp.Partition, level, rp.Offset, rp.ErrorCode, txnEndOffset)
				}
			}
		}
	}

	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("FetchOffsets %s: %v", group, err)
	}
	o, ok := offsets.Lookup(source, 0)
	if !ok || o.Err != nil || o.At != txnGroupOffsetCommitted {
		t.Errorf("group offset of %s[0]: %+v (present %v), want %d", source, o, ok, txnGroupOffsetCommitted)
	}
}

func TestFranzDeleteRecords(t *testing.T) {
	t.Parallel()
	adm := newKadm(t)
	ctx := ctxT(t)
	topic := uniqueName("franz-delrec")
	createTopic(t, adm, topic, partitions, nil)
	rs := makeRecords(pastBase())
	franzProduce(t, topic, "none", rs)
	counts := map[int32]int64{0: 34, 1: 33, 2: 33}

	// Partition 0 up to offset 10, partition 1 to 0 (a no-op), partition 2
	// to the high watermark (-1).
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 10})
	os.Add(kadm.Offset{Topic: topic, Partition: 1, At: 0})
	os.Add(kadm.Offset{Topic: topic, Partition: 2, At: -1})
	drs, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}
	for p, want := range map[int32]int64{0: 10, 1: 0, 2: counts[2]} {
		r, ok := drs.Lookup(topic, p)
		if !ok || r.Err != nil || r.LowWatermark != want {
			t.Errorf("DeleteRecords partition %d: present %v err %v low watermark %d, want %d", p, ok, r.Err, r.LowWatermark, want)
		}
	}

	// Beyond the high watermark is OFFSET_OUT_OF_RANGE.
	var beyond kadm.Offsets
	beyond.Add(kadm.Offset{Topic: topic, Partition: 1, At: counts[1] + 5})
	drs, err = adm.DeleteRecords(ctx, beyond)
	if err != nil {
		t.Fatalf("DeleteRecords beyond: %v", err)
	}
	if r, _ := drs.Lookup(topic, 1); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Errorf("DeleteRecords beyond the high watermark: %v, want OFFSET_OUT_OF_RANGE", r.Err)
	}

	start, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListStartOffsets: %v", err)
	}
	end, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListEndOffsets: %v", err)
	}
	for p, want := range map[int32]int64{0: 10, 1: 0, 2: counts[2]} {
		if o, _ := start.Lookup(topic, p); o.Offset != want {
			t.Errorf("log start offset of partition %d after DeleteRecords: %d, want %d", p, o.Offset, want)
		}
		if o, _ := end.Lookup(topic, p); o.Offset != counts[p] {
			t.Errorf("end offset of partition %d after DeleteRecords: %d, want %d", p, o.Offset, counts[p])
		}
	}

	// Reading partitions 0 and 1 from the start begins at the new log start.
	var want []rec
	p0 := 0
	for _, r := range rs {
		switch r.partition {
		case 0:
			if p0 >= 10 {
				want = append(want, r)
			}
			p0++
		case 1:
			want = append(want, r)
		}
	}
	got := franzConsume(t, topic, startAll(2), len(want))
	var cs []consumed
	for _, r := range got {
		cs = append(cs, fromKgo(r))
	}
	checkPartitionsFrom(t, want, cs, map[int32]int64{0: 10, 1: 0})

	// Fetching below the log start offset is OFFSET_OUT_OF_RANGE, which the
	// client resets to the earliest offset: the first record read is 10.
	got = franzConsume(t, topic, map[int32]kgo.Offset{0: kgo.NewOffset().At(3)}, int(counts[0]-10),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if len(got) == 0 || got[0].Offset != 10 {
		t.Errorf("fetch from offset 3 below log start 10: first offset read %v", firstOffset(got))
	}
}

func adminKgo(t *testing.T) *kgo.Client {
	return newKgo(t, kgo.MetadataMinAge(10*time.Millisecond))
}

func mustLookup(dr kadm.DeleteOffsetsResponses, topic string, p int32) error {
	err, ok := dr.Lookup(topic, p)
	if !ok {
		return fmt.Errorf("partition %d missing from the OffsetDelete response", p)
	}
	return err
}

func firstOffset(rs []*kgo.Record) any {
	if len(rs) == 0 {
		return "none"
	}
	return rs[0].Offset
}

// groupMember is one kgo client in a consumer group, polling in its own
// goroutine and committing synchronously what it read before the next poll.
type groupMember struct {
	name string
	cl   *kgo.Client

	mu       sync.Mutex
	assigned map[int32]bool
	records  []*kgo.Record
	errs     []error

	stop chan struct{}
	done chan struct{}
}

func startMember(t *testing.T, name, group, topic string, nextGen bool) *groupMember {
	t.Helper()
	m := &groupMember{name: name, assigned: map[int32]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	opts := []kgo.Opt{
		kgo.ClientID(name),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.HeartbeatInterval(300 * time.Millisecond),
		kgo.SessionTimeout(10 * time.Second),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range a[topic] {
				m.assigned[p] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range r[topic] {
				delete(m.assigned, p)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range r[topic] {
				delete(m.assigned, p)
			}
		}),
	}
	if nextGen {
		opts = append(opts, kgo.ServerSideBalancer(), kgo.Balancers(kgo.RangeBalancer()))
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds()...)}, opts...)...)
	if err != nil {
		t.Fatalf("%s: kgo.NewClient: %v", name, err)
	}
	m.cl = cl
	go m.run()
	t.Cleanup(m.close)
	return m
}

func (m *groupMember) run() {
	defer close(m.done)
	for {
		select {
		case <-m.stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := m.cl.PollFetches(ctx)
		cancel()
		if fs.IsClientClosed() {
			return
		}
		var errs []error
		fs.EachError(func(tp string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				errs = append(errs, fmt.Errorf("fetch %s[%d]: %w", tp, p, err))
			}
		})
		recs := fs.Records()
		if len(recs) > 0 {
			cctx, ccancel := context.WithTimeout(context.Background(), timeout)
			if err := m.cl.CommitRecords(cctx, recs...); err != nil {
				errs = append(errs, fmt.Errorf("commit: %w", err))
			}
			ccancel()
		}
		m.mu.Lock()
		m.records = append(m.records, recs...)
		m.errs = append(m.errs, errs...)
		m.mu.Unlock()
		m.cl.AllowRebalance()
	}
}

// close leaves the group (LeaveGroup, or a heartbeat with epoch -1) and
// stops polling.
func (m *groupMember) close() {
	select {
	case <-m.stop:
		return
	default:
	}
	close(m.stop)
	<-m.done
	m.cl.Close()
}

func (m *groupMember) snapshot() (assigned []int32, records []*kgo.Record, errs []error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.assigned {
		assigned = append(assigned, p)
	}
	sort.Slice(assigned, func(i, j int) bool { return assigned[i] < assigned[j] })
	return assigned, append([]*kgo.Record(nil), m.records...), append([]error(nil), m.errs...)
}

// produceRound produces perPartition records to each partition, with values
// naming the round, and returns them keyed by "partition/offset-in-round".
func produceRound(t *testing.T, topic string, round, perPartition int) {
	t.Helper()
	// Idempotent: kgo's default.
	cl := newKgo(t, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var krs []*kgo.Record
	for i := 0; i < perPartition; i++ {
		for p := int32(0); p < partitions; p++ {
			krs = append(krs, &kgo.Record{
				Topic: topic, Partition: p,
				Key:   []byte(fmt.Sprintf("k-%d-%d", p, i)),
				Value: []byte(fmt.Sprintf("round-%d p%d i%d", round, p, i)),
			})
		}
	}
	if err := cl.ProduceSync(ctxT(t), krs...).FirstErr(); err != nil {
		t.Fatalf("produce round %d: %v", round, err)
	}
}

func TestFranzConsumerGroup(t *testing.T) {
	t.Parallel()
	t.Run("classic", func(t *testing.T) { t.Parallel(); franzGroupScenario(t, false) })
	t.Run("consumer-protocol", func(t *testing.T) { t.Parallel(); franzGroupScenario(t, true) })
}

func franzGroupScenario(t *testing.T, nextGen bool) {
	adm := newKadm(t)
	ctx := ctxT(t)
	topic := uniqueName("franz-group")
	group := uniqueName("franz-group")
	createTopic(t, adm, topic, partitions, nil)
	const perRound = 50

	a := startMember(t, "member-a", group, topic, nextGen)
	b := startMember(t, "member-b", group, topic, nextGen)

	// Both members get partitions; together all of them, none twice.
	eventually(t, "both members assigned, disjointly covering all partitions", func() (bool, string) {
		pa, _, ea := a.snapshot()
		pb, _, eb := b.snapshot()
		if len(ea)+len(eb) > 0 {
			t.Fatalf("errors: a %v, b %v", ea, eb)
		}
		seen := map[int32]int{}
		for _, p := range append(append([]int32{}, pa...), pb...) {
			seen[p]++
		}
		ok := len(pa) > 0 && len(pb) > 0 && len(seen) == partitions && len(pa)+len(pb) == partitions
		return ok, fmt.Sprintf("a %v, b %v", pa, pb)
	})

	// The coordinator's view agrees.
	checkGroupDescribed(t, adm, group, topic, nextGen, []string{"member-a", "member-b"}, "Stable")
	checkOtherDescribe(t, adm, group, nextGen)

	// Round 1: every record is read once, by the member owning its partition.
	produceRound(t, topic, 1, perRound)
	total := partitions * perRound
	eventually(t, "round 1 consumed", func() (bool, string) {
		_, ra, _ := a.snapshot()
		_, rb, _ := b.snapshot()
		return len(ra)+len(rb) >= total, fmt.Sprintf("%d+%d of %d", len(ra), len(rb), total)
	})
	pa, ra, ea := a.snapshot()
	pb, rb, eb := b.snapshot()
	if len(ea)+len(eb) > 0 {
		t.Fatalf("errors: a %v, b %v", ea, eb)
	}
	checkOwned(t, "member-a", ra, pa)
	checkOwned(t, "member-b", rb, pb)
	checkExactlyOnce(t, append(append([]*kgo.Record{}, ra...), rb...), 1, 0, perRound)

	// Commits: every partition at the end of round 1.
	checkCommitted(t, adm, group, topic, perRound, nextGen)

	lg, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	if g, ok := lg[group]; !ok || g.ProtocolType != "consumer" || g.State != "Stable" {
		t.Errorf("ListGroups: %s present %v protocol type %q state %q, want consumer/Stable", group, ok, g.ProtocolType, g.State)
	} else if nextGen && g.GroupType != "consumer" || !nextGen && g.GroupType != "classic" && g.GroupType != "" {
		t.Errorf("ListGroups: %s group type %q", group, g.GroupType)
	}

	// b leaves; a takes its partitions and continues from b's commits:
	// round 2 is read exactly once, and nothing of round 1 again.
	b.close()
	eventually(t, "member-a owns all partitions", func() (bool, string) {
		pa, _, _ := a.snapshot()
		return len(pa) == partitions, fmt.Sprintf("a %v", pa)
	})
	checkGroupDescribed(t, adm, group, topic, nextGen, []string{"member-a"}, "Stable")
	produceRound(t, topic, 2, perRound)
	eventually(t, "round 2 consumed by member-a", func() (bool, string) {
		_, ra2, _ := a.snapshot()
		return len(ra2)-len(ra) >= total, fmt.Sprintf("%d of %d", len(ra2)-len(ra), total)
	})
	_, ra2, ea := a.snapshot()
	if len(ea) > 0 {
		t.Fatalf("errors: a %v", ea)
	}
	checkExactlyOnce(t, ra2[len(ra):], 2, perRound, perRound)
	checkCommitted(t, adm, group, topic, 2*perRound, nextGen)

	// OffsetDelete on a topic the live group subscribes to is refused.
	subscribed := kadm.TopicsSet{}
	subscribed.Add(topic, 0)
	if dr, err := adm.DeleteOffsets(ctx, group, subscribed); err != nil {
		t.Errorf("OffsetDelete while subscribed: %v", err)
	} else if e := mustLookup(dr, topic, 0); !errors.Is(e, kerr.GroupSubscribedToTopic) {
		t.Errorf("OffsetDelete while subscribed: %v, want GROUP_SUBSCRIBED_TO_TOPIC", e)
	}
	checkCommitted(t, adm, group, topic, 2*perRound, nextGen)

	// a leaves too: the group is empty but keeps its offsets; a new member
	// reads only what was produced after.
	a.close()
	eventually(t, "group empty", func() (bool, string) {
		state, n := groupState(t, adm, group, nextGen)
		return state == "Empty" && n == 0, fmt.Sprintf("state %q, %d members", state, n)
	})
	produceRound(t, topic, 3, 5)
	c := startMember(t, "member-c", group, topic, nextGen)
	eventually(t, "round 3 consumed by member-c", func() (bool, string) {
		_, rc, _ := c.snapshot()
		return len(rc) >= partitions*5, fmt.Sprintf("%d of %d", len(rc), partitions*5)
	})
	_, rc, ec := c.snapshot()
	if len(ec) > 0 {
		t.Fatalf("errors: c %v", ec)
	}
	checkExactlyOnce(t, rc, 3, 2*perRound, 5)
	checkCommitted(t, adm, group, topic, 2*perRound+5, nextGen)
	c.close()
	eventually(t, "group empty again", func() (bool, string) {
		state, n := groupState(t, adm, group, nextGen)
		return state == "Empty" && n == 0, fmt.Sprintf("state %q, %d members", state, n)
	})

	// OffsetDelete on the empty group removes just that partition's commit.
	dor, err := adm.DeleteOffsets(ctx, group, subscribed)
	if err != nil || mustLookup(dor, topic, 0) != nil {
		t.Errorf("OffsetDelete on an empty group: %v / %v", err, mustLookup(dor, topic, 0))
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("FetchOffsets: %v", err)
	}
	if o, ok := offs.Lookup(topic, 0); ok && o.At != -1 {
		t.Errorf("partition 0 still committed at %d after OffsetDelete", o.At)
	}
	for p := int32(1); p < partitions; p++ {
		if o, ok := offs.Lookup(topic, p); !ok || o.At != 2*perRound+5 {
			t.Errorf("partition %d committed at %d (present %v) after deleting partition 0's offset, want %d", p, o.At, ok, 2*perRound+5)
		}
	}

	// DeleteGroups: gone from the list, offsets gone.
	dr, err := adm.DeleteGroup(ctx, group)
	if err != nil || dr.Err != nil {
		t.Fatalf("DeleteGroup: %v / %v", err, dr.Err)
	}
	lg, err = adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	if _, ok := lg[group]; ok {
		t.Errorf("%s still listed after DeleteGroups", group)
	}
	offs, err = adm.FetchOffsets(ctx, group)
	if err == nil && len(offs) > 0 {
		t.Errorf("offsets of a deleted group: %v", offs)
	}
	// (kadm.DeleteGroup returns the group's error code as its error.)
	if _, err = adm.DeleteGroup(ctx, group); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Errorf("deleting a deleted group: %v, want GROUP_ID_NOT_FOUND", err)
	}
}

// checkOwned: a member only reads partitions it was assigned.
func checkOwned(t *testing.T, name string, rs []*kgo.Record, owned []int32) {
	t.Helper()
	own := map[int32]bool{}
	for _, p := range owned {
		own[p] = true
	}
	for _, r := range rs {
		if !own[r.Partition] {
			t.Errorf("%s read %d@%d but owns %v", name, r.Partition, r.Offset, owned)
			return
		}
	}
}

// checkExactlyOnce: rs holds exactly the records of one round, each once, in
// offset order per partition, at offsets first..first+perPartition-1.
func checkExactlyOnce(t *testing.T, rs []*kgo.Record, round int, first int64, perPartition int) {
	t.Helper()
	seen := map[string]int{}
	next := map[int32]int64{}
	for p := int32(0); p < partitions; p++ {
		next[p] = first
	}
	for _, r := range rs {
		id := fmt.Sprintf("%d@%d", r.Partition, r.Offset)
		seen[id]++
		if seen[id] > 1 {
			t.Errorf("round %d: %s consumed %d times", round, id, seen[id])
			continue
		}
		if r.Offset != next[r.Partition] {
			t.Errorf("round %d: partition %d read offset %d, want %d", round, r.Partition, r.Offset, next[r.Partition])
		}
		next[r.Partition] = r.Offset + 1
		i := r.Offset - first
		want := fmt.Sprintf("round-%d p%d i%d", round, r.Partition, i)
		if string(r.Value) != want || string(r.Key) != fmt.Sprintf("k-%d-%d", r.Partition, i) {
			t.Errorf("round %d: %s is %q/%q, want %q", round, id, r.Key, r.Value, want)
		}
	}
	if len(seen) != partitions*perPartition {
		t.Errorf("round %d: %d distinct records consumed, want %d", round, len(seen), partitions*perPartition)
	}
}

func checkCommitted(t *testing.T, adm *kadm.Client, group, topic string, want int64, nextGen bool) {
	t.Helper()
	offs, err := adm.FetchOffsets(ctxT(t), group)
	if err != nil {
		t.Fatalf("FetchOffsets %s: %v", group, err)
	}
	for p := int32(0); p < partitions; p++ {
		o, ok := offs.Lookup(topic, p)
		if !ok || o.Err != nil || o.At != want {
			t.Errorf("committed offset of %s[%d]: present %v err %v at %d, want %d", topic, p, ok, o.Err, o.At, want)
		}
	}
	if nextGen {
		// kadm.Lag describes the group with DescribeGroups, which Kafka
		// answers with GROUP_ID_NOT_FOUND for a KIP-848 group.
		return
	}
	lag, err := adm.Lag(ctxT(t), group)
	if err != nil {
		t.Fatalf("Lag %s: %v", group, err)
	}
	if l := lag[group]; l.Error() != nil || l.Lag.Total() != 0 {
		t.Errorf("lag of %s: %d (err %v), want 0", group, l.Lag.Total(), l.Error())
	}
}

func groupState(t *testing.T, adm *kadm.Client, group string, nextGen bool) (string, int) {
	t.Helper()
	if nextGen {
		ds, err := adm.DescribeConsumerGroups(ctxT(t), group)
		if err != nil {
			t.Fatalf("DescribeConsumerGroups: %v", err)
		}
		d := ds[group]
		if d.Err != nil {
			t.Fatalf("DescribeConsumerGroups %s: %v", group, d.Err)
		}
		return d.State, len(d.Members)
	}
	ds, err := adm.DescribeGroups(ctxT(t), group)
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	d := ds[group]
	if d.Err != nil {
		t.Fatalf("DescribeGroups %s: %v", group, d.Err)
	}
	return d.State, len(d.Members)
}

// checkGroupDescribed: state, members by client id, and assignments that
// cover every partition exactly once.
func checkGroupDescribed(t *testing.T, adm *kadm.Client, group, topic string, nextGen bool, clientIDs []string, state string) {
	t.Helper()
	var gotState string
	var gotClients []string
	count := map[int32]int{}
	eventually(t, "group described as "+state, func() (bool, string) {
		gotClients = nil
		count = map[int32]int{}
		if nextGen {
			ds, err := adm.DescribeConsumerGroups(ctxT(t), group)
			if err != nil {
				return false, err.Error()
			}
			d := ds[group]
			if d.Err != nil {
				return false, d.Err.Error()
			}
			gotState = d.State
			for _, m := range d.Members {
				gotClients = append(gotClients, m.ClientID)
				m.Assignment.Each(func(tp string, p int32) {
					if tp == topic {
						count[p]++
					}
				})
			}
		} else {
			ds, err := adm.DescribeGroups(ctxT(t), group)
			if err != nil {
				return false, err.Error()
			}
			d := ds[group]
			if d.Err != nil {
				return false, d.Err.Error()
			}
			gotState = d.State
			if d.ProtocolType != "consumer" {
				t.Errorf("protocol type %q, want consumer", d.ProtocolType)
			}
			for _, m := range d.Members {
				gotClients = append(gotClients, m.ClientID)
				if c, ok := m.Assigned.AsConsumer(); ok {
					for _, tp := range c.Topics {
						if tp.Topic == topic {
							for _, p := range tp.Partitions {
								count[p]++
							}
						}
					}
				}
			}
		}
		sort.Strings(gotClients)
		return gotState == state && strings.Join(gotClients, ",") == strings.Join(clientIDs, ","),
			fmt.Sprintf("state %q members %v", gotState, gotClients)
	})
	for p := int32(0); p < partitions; p++ {
		if count[p] != 1 {
			t.Errorf("describe %s: partition %d assigned %d times", group, p, count[p])
		}
	}
}

// checkOtherDescribe: each describe API answers only for its own kind of
// group. Kafka 4.x answers ConsumerGroupDescribe for a classic group, and
// DescribeGroups (v6+) for a KIP-848 group, with GROUP_ID_NOT_FOUND ("Group
// g is not a classic group.") and state Dead (GroupMetadataManager).
func checkOtherDescribe(t *testing.T, adm *kadm.Client, group string, nextGen bool) {
	t.Helper()
	if nextGen {
		ds, err := adm.DescribeGroups(ctxT(t), group)
		if err != nil {
			t.Fatalf("DescribeGroups: %v", err)
		}
		d := ds[group]
		if !errors.Is(d.Err, kerr.GroupIDNotFound) || d.State != "Dead" || len(d.Members) != 0 {
			t.Errorf("DescribeGroups (classic API) of a KIP-848 group: err %v (%s), state %q, protocol type %q, "+
				"protocol %q, %d members; want GROUP_ID_NOT_FOUND, state Dead, no members",
				d.Err, d.ErrMessage, d.State, d.ProtocolType, d.Protocol, len(d.Members))
		}
		return
	}
	ds, err := adm.DescribeConsumerGroups(ctxT(t), group)
	if err != nil {
		t.Fatalf("DescribeConsumerGroups: %v", err)
	}
	if d := ds[group]; !errors.Is(d.Err, kerr.GroupIDNotFound) {
		t.Errorf("ConsumerGroupDescribe of a classic group: err %v, state %q, %d members; want GROUP_ID_NOT_FOUND",
			d.Err, d.State, len(d.Members))
	}
}
