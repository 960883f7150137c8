// kafkajs (pure JavaScript protocol implementation) against a running Strom
// broker named by STROM_BOOTSTRAP (scripts/test.sh starts one).
//
// What kafkajs produces is read back both with kcat (a different client,
// librdkafka) and with the kafkajs consumer, which only consumes through a
// consumer group; the consumer-group scenario (two members, commits,
// hand-over, the admin's group APIs) is the second `describe` below.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'

import kafkajs from 'kafkajs'

const { Kafka, AssignerProtocol, CompressionTypes, ConfigResourceTypes, Partitioners, logLevel } = kafkajs

const bootstrap = process.env.STROM_BOOTSTRAP
if (!bootstrap) {
  throw new Error('STROM_BOOTSTRAP is not set: run scripts/test.sh, or start `strom serve` and export STROM_BOOTSTRAP=HOST:PORT')
}

const PARTITIONS = 3
const RECORD_COUNT = 100
const NULL_VALUE = 7
const EMPTY_VALUE = 8
const NULL_KEY = 11
const REPEATED_HEADER = 12

const kafka = new Kafka({
  clientId: 'strom-compat-kafkajs',
  brokers: [bootstrap],
  logLevel: logLevel.ERROR,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 }
})

const uniqueTopic = (prefix) => `${prefix}-${randomBytes(5).toString('hex')}`

// The same shape of scenario as compat/clients/python/scenario.py.
function makeRecords (baseTs) {
  const records = []
  for (let i = 0; i < RECORD_COUNT; i++) {
    const n = String(i).padStart(3, '0')
    let key = `key-${n}`
    let value = `value-${n} `.repeat(1 + (i % 7))
    let headers = {}
    if (i % 4 === 0) headers = { source: 'strom-compat', seq: String(i) }
    if (i === NULL_VALUE) value = null
    if (i === EMPTY_VALUE) value = ''
    if (i === NULL_KEY) key = null
    if (i === REPEATED_HEADER) headers = { dup: ['first', 'second'], other: 'x' }
    records.push({ partition: i % PARTITIONS, key, value, headers, timestamp: baseTs + 10 * i })
  }
  return records
}

function byPartition (records) {
  const out = new Map()
  for (const r of records) {
    if (!out.has(r.partition)) out.set(r.partition, [])
    out.get(r.partition).push(r)
  }
  return out
}

// Flatten headers the way kcat's JSON envelope lists them: [k, v, k, v, ...].
function flatHeaders (headers) {
  const flat = []
  for (const [k, v] of Object.entries(headers)) {
    for (const one of Array.isArray(v) ? v : [v]) flat.push(k, one)
  }
  return flat
}

// Read a partition with kcat (JSON envelope per record).
function readWithKcat (topic, partition) {
  const out = execFileSync('kcat', [
    '-b', bootstrap, '-C', '-t', topic, '-p', String(partition), '-o', 'beginning', '-e', '-J', '-q'
  ], { encoding: 'utf8', timeout: 30000 })
  return out.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l))
}

// Find a kafkajs protocol error type anywhere in an error (aggregate errors nest).
function errorTypes (err) {
  const types = []
  const visit = (e) => {
    if (!e) return
    if (e.type) types.push(e.type)
    for (const inner of e.errors ?? []) visit(inner)
    if (e.originalError) visit(e.originalError)
    if (e.cause) visit(e.cause)
  }
  visit(err)
  return types
}

async function waitFor (predicate, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await predicate()) return
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

// Create a topic and wait until its metadata lists every partition with a
// leader. kafkajs's own waitForLeaders (on by default) gives up on
// UNKNOWN_TOPIC_OR_PARTITION, which a broker may answer until its metadata
// has caught up, so it is off everywhere here.
async function createTopic (admin, topic, numPartitions) {
  const created = await admin.createTopics({ waitForLeaders: false, topics: [{ topic, numPartitions, replicationFactor: 1 }] })
  assert.equal(created, true, `createTopics(${topic}) returned ${created}`)
  await waitFor(async () => {
    const md = await admin.fetchTopicMetadata({ topics: [topic] }).catch(() => null)
    const partitions = md?.topics?.[0]?.partitions ?? []
    return partitions.length === numPartitions && partitions.every((p) => p.leader >= 0)
  }, `metadata of ${topic}`)
}

describe('kafkajs', () => {
  const admin = kafka.admin()
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: true
    // idempotent: kafkajs's default (false); the idempotent and
    // transactional producers are in their own describe below.
  })

  before(async () => {
    await admin.connect()
    await producer.connect()
  })

  after(async () => {
    await producer.disconnect()
    await admin.disconnect()
  })

  test('admin: create, metadata, configs, partitions, delete', async () => {
    const topic = uniqueTopic('kafkajs-admin')

    await admin.createTopics({ validateOnly: true, waitForLeaders: false, topics: [{ topic, numPartitions: 3, replicationFactor: 1 }] })
    assert.ok(!(await admin.listTopics()).includes(topic), 'validateOnly created the topic')

    await createTopic(admin, topic, 3)
    assert.ok((await admin.listTopics()).includes(topic))

    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(md.topics.length, 1)
    const partitions = md.topics[0].partitions.sort((a, b) => a.partitionId - b.partitionId)
    assert.deepEqual(partitions.map((p) => p.partitionId), [0, 1, 2])
    for (const p of partitions) {
      assert.equal(p.partitionErrorCode, 0)
      assert.deepEqual(p.replicas, [p.leader])
      assert.deepEqual(p.isr, [p.leader])
    }

    // Creating it again: TOPIC_ALREADY_EXISTS.
    await assert.rejects(
      admin.createTopics({ waitForLeaders: false, topics: [{ topic, numPartitions: 3 }] }).then((ok) => {
        // kafkajs resolves false when every topic already exists.
        if (ok === false) throw Object.assign(new Error('exists'), { type: 'TOPIC_ALREADY_EXISTS' })
      }),
      (err) => errorTypes(err).includes('TOPIC_ALREADY_EXISTS')
    )

    const describeConfigs = async () => {
      const res = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }]
      })
      assert.equal(res.resources.length, 1)
      assert.equal(res.resources[0].errorCode, 0)
      return Object.fromEntries(res.resources[0].configEntries.map((e) => [e.configName, e.configValue]))
    }
    let configs = await describeConfigs()
    assert.equal(configs['cleanup.policy'], 'delete')
    assert.equal(configs['retention.ms'], '604800000')

    // kafkajs uses the legacy (non-incremental) AlterConfigs API.
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{
        type: ConfigResourceTypes.TOPIC,
        name: topic,
        configEntries: [{ name: 'retention.ms', value: '3600000' }]
      }]
    })
    configs = await describeConfigs()
    assert.equal(configs['retention.ms'], '3600000')

    await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] })
    await waitFor(async () => {
      const m = await admin.fetchTopicMetadata({ topics: [topic] })
      return m.topics[0].partitions.length === 4
    }, '4 partitions in metadata')

    await admin.deleteTopics({ topics: [topic], timeout: 15000 })
    await waitFor(async () => !(await admin.listTopics()).includes(topic), 'the topic to disappear')
  })

  for (const codec of ['none', 'gzip']) {
    test(`produce (${codec}), offsets, read back with kcat`, async () => {
      const topic = uniqueTopic(`kafkajs-${codec}`)
      await createTopic(admin, topic, PARTITIONS)
      const records = makeRecords(Date.now() - 3_600_000)

      // One send per partition: kafkajs retries a failed send as a whole, so
      // an error on one partition would duplicate the others' records.
      const perPartition = byPartition(records)
      for (const [partition, mine] of perPartition) {
        const results = await producer.send({
          topic,
          acks: -1,
          compression: codec === 'none' ? CompressionTypes.None : CompressionTypes.GZIP,
          messages: mine.map((r) => ({
            partition: r.partition,
            key: r.key,
            value: r.value,
            headers: r.headers,
            timestamp: String(r.timestamp)
          }))
        })
        // All of a partition's records go in one batch: base offset 0.
        assert.deepEqual(
          results.map((r) => [r.partition, r.errorCode, r.baseOffset]),
          [[partition, 0, '0']],
          `produce to partition ${partition}`
        )
      }

      // ListOffsets earliest/latest.
      const offsets = await admin.fetchTopicOffsets(topic)
      assert.equal(offsets.length, PARTITIONS)
      for (const o of offsets) {
        assert.equal(o.low, '0', `partition ${o.partition} low`)
        assert.equal(o.high, String(perPartition.get(o.partition).length), `partition ${o.partition} high`)
      }

      // ListOffsets by timestamp: record 15 sits in partition 0 at offset 5.
      const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, records[15].timestamp)
      const want = new Map([[0, '5'], [1, '5'], [2, '5']]) // records 16 and 17 are at offset 5 too
      for (const o of byTime) assert.equal(o.offset, want.get(o.partition), `partition ${o.partition}`)
      const after = await admin.fetchTopicOffsetsByTimestamp(topic, Date.now())
      for (const o of after) {
        // Kafka answers -1 for "no record at or after"; kafkajs then reports the high watermark.
        assert.equal(o.offset, String(perPartition.get(o.partition).length), `partition ${o.partition} after end`)
      }

      // Read every record back with another client and compare.
      for (const [partition, want] of perPartition) {
        const got = readWithKcat(topic, partition)
        assert.equal(got.length, want.length, `partition ${partition}: ${got.length} records`)
        got.forEach((m, offset) => {
          const w = want[offset]
          const where = `partition ${partition} offset ${offset}`
          assert.equal(m.offset, offset, where)
          assert.equal(m.key, w.key, `${where} key`)
          assert.equal(m.payload, w.value, `${where} value`)
          assert.equal(m.ts, w.timestamp, `${where} timestamp`)
          assert.deepEqual(m.headers ?? [], flatHeaders(w.headers), `${where} headers`)
        })
      }
    })
  }

  test('produce to an invalid topic name fails with INVALID_TOPIC_EXCEPTION', async () => {
    await assert.rejects(
      producer.send({ topic: 'bad topic!', acks: -1, messages: [{ value: 'x' }] }),
      (err) => {
        assert.ok(errorTypes(err).includes('INVALID_TOPIC_EXCEPTION'), `got ${err} (${errorTypes(err)})`)
        return true
      }
    )
  })

  test('create an invalid topic name fails with INVALID_TOPIC_EXCEPTION', async () => {
    await assert.rejects(
      admin.createTopics({ waitForLeaders: false, topics: [{ topic: 'bad topic!', numPartitions: 1 }] }),
      (err) => {
        assert.ok(errorTypes(err).includes('INVALID_TOPIC_EXCEPTION'), `got ${err} (${errorTypes(err)})`)
        return true
      }
    )
  })

  test('consume with the kafkajs consumer: every field read back', async () => {
    const topic = uniqueTopic('kafkajs-consume')
    await createTopic(admin, topic, PARTITIONS)
    const records = makeRecords(Date.now() - 3_600_000)
    const perPartition = byPartition(records)
    for (const [, mine] of perPartition) {
      await producer.send({
        topic,
        acks: -1,
        messages: mine.map((r) => ({
          partition: r.partition, key: r.key, value: r.value, headers: r.headers, timestamp: String(r.timestamp)
        }))
      })
    }

    const got = new Map([...perPartition.keys()].map((p) => [p, []]))
    const consumer = kafka.consumer({ groupId: uniqueTopic('kafkajs-consume'), ...GROUP_CONSUMER_CONFIG })
    try {
      await consumer.connect()
      await consumer.subscribe({ topics: [topic], fromBeginning: true })
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => { got.get(partition).push(message) }
      })
      await waitFor(() => [...got.values()].reduce((n, l) => n + l.length, 0) >= RECORD_COUNT, 'every record', 30000)
    } finally {
      await consumer.disconnect()
    }

    const text = (b) => (b === null ? null : b.toString())
    for (const [partition, want] of perPartition) {
      const mine = got.get(partition)
      assert.equal(mine.length, want.length, `partition ${partition}: ${mine.length} records`)
      mine.forEach((m, offset) => {
        const w = want[offset]
        const where = `partition ${partition} offset ${offset}`
        assert.equal(m.offset, String(offset), where)
        assert.equal(text(m.key), w.key, `${where} key`)
        assert.equal(text(m.value), w.value, `${where} value`)
        assert.equal(m.timestamp, String(w.timestamp), `${where} timestamp`)
        const headers = Object.fromEntries(Object.entries(m.headers ?? {}).map(
          ([k, v]) => [k, Array.isArray(v) ? v.map(text) : text(v)]))
        assert.deepEqual(headers, w.headers, `${where} headers`)
      })
    }
  })
})

// Consumer groups: two kafkajs consumers in one group split a 4-partition
// topic, commit, and hand over to each other; the admin client lists,
// describes and deletes the group and reads its committed offsets.
//
// The broker's group.initial.rebalance.delay.ms (3 s, as Kafka's) holds the
// first join of an empty group; consumers here heartbeat often, so that the
// other rebalances are quick.
const GROUP_CONSUMER_CONFIG = {
  sessionTimeout: 6000,
  heartbeatInterval: 300,
  rebalanceTimeout: 10000,
  maxWaitTimeInMs: 200,
  retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 }
}
const GROUP_PARTITIONS = 4

// Records of one round of producing: `count` per partition from offset
// `start`, each value naming its phase, partition and index.
function phase (name, start, count) {
  const expected = new Map() // "partition/offset" -> value
  for (let p = 0; p < GROUP_PARTITIONS; p++) {
    for (let i = 0; i < count; i++) expected.set(`${p}/${start + i}`, `${name}-${p}-${i}`)
  }
  return { name, start, count, end: start + count, expected }
}

// A consumer in the group, with what it received and what it owns (the
// assignment of its last join, nothing while it rebalances).
async function groupMember (name, groupId, topic) {
  const consumer = kafka.consumer({ groupId, ...GROUP_CONSUMER_CONFIG })
  const member = { name, consumer, got: [], owned: new Set(), memberId: null, connected: true }
  consumer.on(consumer.events.REBALANCING, () => { member.owned = new Set() })
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    member.memberId = payload.memberId
    member.owned = new Set(payload.memberAssignment[topic] ?? [])
  })
  consumer.on(consumer.events.CRASH, ({ payload }) => { member.crash = payload.error })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      member.got.push({ member: name, partition, offset: Number(message.offset), value: message.value.toString() })
    }
  })
  member.leave = async () => {
    if (member.connected) {
      member.connected = false
      await consumer.disconnect()
    }
  }
  return member
}

async function produceGroupPhase (producer, topic, ph) {
  for (let p = 0; p < GROUP_PARTITIONS; p++) {
    const messages = []
    for (let i = 0; i < ph.count; i++) messages.push({ partition: p, key: `k-${p}-${i}`, value: `${ph.name}-${p}-${i}` })
    const [res] = await producer.send({ topic, acks: -1, messages })
    assert.deepEqual([res.partition, res.errorCode, res.baseOffset], [p, 0, String(ph.start)], `produce ${ph.name} to ${p}`)
  }
}

// What `members` received since `since` (member name -> index).
function receivedSince (members, since = {}) {
  return members.flatMap((m) => {
    assert.equal(m.crash, undefined, `${m.name} crashed: ${m.crash}`)
    return m.got.slice(since[m.name] ?? 0)
  })
}

async function waitReceived (members, since, count, what) {
  await waitFor(() => receivedSince(members, since).length >= count, what, 30000)
  // Anything more than expected would be a duplicate: give it a moment to show.
  await new Promise((resolve) => setTimeout(resolve, 500))
  return receivedSince(members, since)
}

// Each record of the phase exactly once and nothing else; no partition read
// by two members. Returns member name -> partitions it read.
function checkExactlyOnce (got, ph) {
  const seen = new Map()
  for (const g of got) {
    const where = `${g.partition}/${g.offset}`
    assert.ok(!seen.has(where), `${where} delivered twice (to ${seen.get(where)?.member} and ${g.member})`)
    assert.ok(ph.expected.has(where), `${where} is not a record of ${ph.name} (value ${g.value})`)
    assert.equal(g.value, ph.expected.get(where), `${where} value`)
    seen.set(where, g)
  }
  const missing = [...ph.expected.keys()].filter((w) => !seen.has(w))
  assert.deepEqual(missing, [], `records of ${ph.name} never delivered`)
  const byMember = {}
  const owners = new Map()
  for (const g of got) {
    byMember[g.member] ??= new Set()
    byMember[g.member].add(g.partition)
    owners.set(g.partition, new Set([...(owners.get(g.partition) ?? []), g.member]))
  }
  for (const [p, who] of owners) assert.equal(who.size, 1, `partition ${p} consumed by ${[...who]}`)
  return byMember
}

const sorted = (set) => [...set].sort((x, y) => x - y)

describe('kafkajs consumer groups', () => {
  const admin = kafka.admin()
  // idempotent: kafkajs's default (false).
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })

  before(async () => {
    await admin.connect()
    await producer.connect()
  })

  after(async () => {
    await producer.disconnect()
    await admin.disconnect()
  })

  test('two consumers share a topic, commit, hand over; admin lists, describes, deletes', async () => {
    const topic = uniqueTopic('kafkajs-group')
    const groupId = uniqueTopic('kafkajs-group')
    const [first, second, third] = [phase('phase0', 0, 20), phase('phase1', 20, 10), phase('phase2', 30, 5)]
    await createTopic(admin, topic, GROUP_PARTITIONS)
    const all = [0, 1, 2, 3]
    const committed = async ({ metadata = false } = {}) => {
      const res = await admin.fetchOffsets({ groupId, topics: [topic] })
      assert.equal(res.length, 1)
      return Object.fromEntries(res[0].partitions.map((p) => [p.partition, metadata ? [p.offset, p.metadata] : p.offset]))
    }
    const everywhere = (offset) => Object.fromEntries(all.map((p) => [p, String(offset)]))
    const members = []
    try {
      // Two members join; the group splits the partitions between them.
      const a = await groupMember('a', groupId, topic)
      members.push(a)
      const b = await groupMember('b', groupId, topic)
      members.push(b)
      await waitFor(() => a.owned.size > 0 && b.owned.size > 0 && a.owned.size + b.owned.size === GROUP_PARTITIONS,
        'both members to be assigned partitions', 30000)
      assert.deepEqual(sorted(new Set([...a.owned, ...b.owned])), all, `a owns ${sorted(a.owned)}, b ${sorted(b.owned)}`)

      // Every record reaches exactly one member, and each partition one member.
      await produceGroupPhase(producer, topic, first)
      const byMember = checkExactlyOnce(await waitReceived([a, b], {}, first.expected.size, 'the first records'), first)
      assert.deepEqual(sorted(byMember.a ?? []), sorted(a.owned), 'a read from what it owns')
      assert.deepEqual(sorted(byMember.b ?? []), sorted(b.owned), 'b read from what it owns')
      for (const m of [a, b]) {
        await m.consumer.commitOffsets([...m.owned].map((partition) => ({ topic, partition, offset: String(first.end) })))
      }
      assert.deepEqual(await committed(), everywhere(first.end))

      // The admin view of a Stable group with its two members.
      const { groups: listed } = await admin.listGroups()
      assert.deepEqual(listed.filter((g) => g.groupId === groupId), [{ groupId, protocolType: 'consumer' }])
      const { groups: [desc] } = await admin.describeGroups([groupId])
      assert.equal(desc.errorCode, 0)
      assert.equal(desc.groupId, groupId)
      assert.equal(desc.state, 'Stable')
      assert.equal(desc.protocolType, 'consumer')
      assert.equal(desc.protocol, 'RoundRobinAssigner')
      const described = Object.fromEntries(desc.members.map((m) => {
        const assignment = AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
        const subscription = AssignerProtocol.MemberMetadata.decode(m.memberMetadata)
        assert.deepEqual(subscription.topics, [topic])
        assert.equal(m.clientId, 'strom-compat-kafkajs')
        return [m.memberId, sorted(assignment.assignment[topic] ?? [])]
      }))
      assert.deepEqual(described, { [a.memberId]: sorted(a.owned), [b.memberId]: sorted(b.owned) })

      // A group with members cannot be deleted.
      await assert.rejects(admin.deleteGroups([groupId]), (err) => {
        assert.ok(errorTypes(err).includes('NON_EMPTY_GROUP') ||
          (err.groups ?? []).some((g) => g.error?.type === 'NON_EMPTY_GROUP'), `got ${err}`)
        return true
      })

      // b leaves; a takes over b's partitions from b's committed offsets.
      const since = { a: a.got.length }
      await b.leave()
      await waitFor(() => a.owned.size === GROUP_PARTITIONS, 'a to own every partition', 30000)
      await produceGroupPhase(producer, topic, second)
      checkExactlyOnce(await waitReceived([a], since, second.expected.size, 'the second records'), second)
      // With metadata this time, which comes back as committed.
      await a.consumer.commitOffsets(all.map((partition) => ({ topic, partition, offset: String(second.end), metadata: `meta-${partition}` })))
      assert.deepEqual(await committed({ metadata: true }),
        Object.fromEntries(all.map((p) => [p, [String(second.end), `meta-${p}`]])))
      await a.leave()

      // Nobody is left; a new member resumes exactly at the committed offsets.
      const { groups: [empty] } = await admin.describeGroups([groupId])
      assert.equal(empty.state, 'Empty')
      assert.deepEqual(empty.members, [])
      await produceGroupPhase(producer, topic, third)
      const c = await groupMember('c', groupId, topic)
      members.push(c)
      checkExactlyOnce(await waitReceived([c], {}, third.expected.size, 'the third records'), third)
      assert.deepEqual(sorted(c.owned), all)
      await c.leave()

      // The committed offsets outlive the members; the group can go now.
      assert.deepEqual(await committed(), everywhere(second.end))
      assert.deepEqual(await admin.deleteGroups([groupId]), [{ groupId, errorCode: 0 }])
      assert.ok(!(await admin.listGroups()).groups.some((g) => g.groupId === groupId), 'deleted group still listed')
      assert.deepEqual(await committed(), everywhere(-1))
    } finally {
      for (const m of members) await m.leave()
      await admin.deleteTopics({ topics: [topic] }).catch(() => {})
    }
  })
})

// Read a topic from the beginning with a kafkajs consumer (its own fresh
// group, no commits) until `count` records have arrived, then a moment more
// for anything extra. Returns [partition, offset, value] per partition in
// offset order.
async function consumeTopic (topic, count, { readUncommitted = false } = {}) {
  const got = []
  const consumer = kafka.consumer({ groupId: uniqueTopic('kafkajs-read'), readUncommitted, ...GROUP_CONSUMER_CONFIG })
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        got.push([partition, Number(message.offset), message.value === null ? null : message.value.toString()])
      }
    })
    await waitFor(() => got.length >= count, `${count} records of ${topic} (have ${got.length})`, 30000)
    await new Promise((resolve) => setTimeout(resolve, 500))
  } finally {
    await consumer.disconnect()
  }
  // Partitions interleave; within one, the order is the log's (a stable sort).
  return got.sort((a, b) => a[0] - b[0])
}

// Idempotent and transactional producers (KIP-98).
describe('kafkajs idempotent and transactional producers', () => {
  const admin = kafka.admin()

  before(async () => { await admin.connect() })
  after(async () => { await admin.disconnect() })

  test('idempotent producer: every record once, in order, at contiguous offsets', async () => {
    const topic = uniqueTopic('kafkajs-idem')
    await createTopic(admin, topic, PARTITIONS)
    // kafkajs keeps an idempotent producer to one request in flight.
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    const perSend = 10 // records per partition in each send
    const sends = 20
    try {
      await producer.connect()
      for (let s = 0; s < sends; s++) {
        const messages = []
        for (let i = 0; i < perSend; i++) {
          for (let p = 0; p < PARTITIONS; p++) {
            const j = s * perSend + i
            messages.push({ partition: p, key: `k-${p}-${j}`, value: `idem-p${p}-${j}` })
          }
        }
        const results = await producer.send({ topic, acks: -1, messages })
        // Each send's records land right after the previous send's.
        assert.deepEqual(
          results.map((r) => [r.partition, r.errorCode, r.baseOffset]).sort((a, b) => a[0] - b[0]),
          [...Array(PARTITIONS).keys()].map((p) => [p, 0, String(s * perSend)]),
          `send ${s}`
        )
      }
    } finally {
      await producer.disconnect()
    }
    const total = PARTITIONS * sends * perSend
    const got = await consumeTopic(topic, total)
    const values = got.map((g) => g[2])
    assert.equal(new Set(values).size, values.length, 'a record read twice')
    assert.equal(got.length, total, `read ${got.length} records, want ${total}`)
    const want = []
    for (let p = 0; p < PARTITIONS; p++) {
      for (let j = 0; j < sends * perSend; j++) want.push([p, j, `idem-p${p}-${j}`])
    }
    assert.deepEqual(got, want)
    for (const o of await admin.fetchTopicOffsets(topic)) {
      assert.deepEqual([o.low, o.high], ['0', String(sends * perSend)], `partition ${o.partition}`)
    }
  })

  test('transactions: commit and abort, read_committed and read_uncommitted, sendOffsets', async () => {
    // Per partition: 3 committed records (0-2), COMMIT marker (3), 2 aborted
    // records (4-5), ABORT marker (6).
    const [txnPartitions, committedCount, abortedCount, endOffset] = [2, 3, 2, 7]
    const [groupOffsetCommitted, groupOffsetAborted] = ['5', '10']
    const topic = uniqueTopic('kafkajs-txn')
    // The input topic a consume-transform-produce loop would read: only its
    // group offset is committed here, but it has to exist.
    const source = uniqueTopic('kafkajs-txn-source')
    const groupId = uniqueTopic('kafkajs-txn-group')
    await createTopic(admin, topic, txnPartitions)
    await createTopic(admin, source, 1)

    const producer = kafka.producer({
      transactionalId: uniqueTopic('kafkajs-txn-id'),
      idempotent: true,
      maxInFlightRequests: 1
    })
    const value = (kind, p, i) => `${kind}-p${p}-${i}`
    try {
      await producer.connect()
      for (const [kind, count, offset] of [['commit', committedCount, groupOffsetCommitted], ['abort', abortedCount, groupOffsetAborted]]) {
        const txn = await producer.transaction()
        const messages = []
        for (let p = 0; p < txnPartitions; p++) {
          for (let i = 0; i < count; i++) messages.push({ partition: p, value: value(kind, p, i) })
        }
        const results = await txn.send({ topic, acks: -1, messages })
        assert.deepEqual(results.map((r) => r.errorCode), Array(txnPartitions).fill(0), `${kind}: produce`)
        await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: source, partitions: [{ partition: 0, offset }] }] })
        if (kind === 'commit') await txn.commit()
        else await txn.abort()
      }
    } finally {
      await producer.disconnect()
    }

    const want = (readCommitted) => {
      const out = []
      for (let p = 0; p < txnPartitions; p++) {
        for (let i = 0; i < committedCount; i++) out.push([p, i, value('commit', p, i)])
        if (!readCommitted) {
          for (let i = 0; i < abortedCount; i++) out.push([p, committedCount + 1 + i, value('abort', p, i)])
        }
      }
      return out
    }
    assert.deepEqual(await consumeTopic(topic, txnPartitions * committedCount), want(true), 'read_committed')
    assert.deepEqual(await consumeTopic(topic, txnPartitions * (committedCount + abortedCount), { readUncommitted: true }),
      want(false), 'read_uncommitted')

    // Both transactions are over: the end is past the ABORT marker.
    for (const o of await admin.fetchTopicOffsets(topic)) {
      assert.deepEqual([o.low, o.high], ['0', String(endOffset)], `partition ${o.partition}`)
    }
    // The group's offset is the committed transaction's, not the aborted one's.
    const [fetched] = await admin.fetchOffsets({ groupId, topics: [source] })
    assert.deepEqual(fetched.partitions.map((p) => [p.partition, p.offset]), [[0, groupOffsetCommitted]])
  })
})
