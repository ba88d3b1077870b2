#!/usr/bin/env node
// A minimal HTTP -> Kafka bridge, as a team would write it in an afternoon: Node's http
// module and kafkajs, one producer, acks=all, one `send` per request. It is the reference
// peer of `bench-client compare --peer`: "a typical JavaScript bridge" next to the gateways.
//
//   node bridge.js --listen 127.0.0.1:8090 --brokers HOST:PORT[,HOST:PORT…]
//
// Speaks what the gateways speak on POST /topics/{topic}:
//   - Content-Type application/vnd.kafka.json.v2+json or application/vnd.kafka.binary.v2+json:
//     the Kafka REST Proxy v2 envelope {"records":[{"key","value","partition"}]}, answered
//     {"offsets":[{"partition","offset","error_code","error"}],"key_schema_id":null,"value_schema_id":null};
//   - anything else: the body is one record value, answered {"partition":P,"offset":O}.
// GET /healthz answers 200. Node answers with Transfer-Encoding: chunked unless told the
// length: the bridge leaves that as Node does (bench-client reads both).
'use strict';

const http = require('http');
const { Kafka, Partitioners, logLevel } = require('kafkajs');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const listen = arg('--listen', process.env.BRIDGE_LISTEN || '127.0.0.1:8090');
const brokers = (arg('--brokers', process.env.BRIDGE_BROKERS || '127.0.0.1:9092')).split(',');
const maxBody = Number(arg('--max-body', String(1024 * 1024)));
const [host, port] = [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))];

const REST_TYPE = 'application/vnd.kafka.v2+json';

// The default partitioner, remembering each message's partition: per-record offsets are
// the partition's base offset plus the record's rank in that partition within the send.
const base = Partitioners.DefaultPartitioner();
const partitioner = () => (args) => {
  const p = base(args);
  args.message.__partition = p;
  return p;
};

const kafka = new Kafka({ clientId: 'node-kafkajs-bridge', brokers, logLevel: logLevel.WARN });
const producer = kafka.producer({ createPartitioner: partitioner, allowAutoTopicCreation: true });

function reply(res, status, type, obj) {
  // No Content-Length: Node sends the body chunked, as most Node services do.
  res.writeHead(status, { 'content-type': type });
  res.end(JSON.stringify(obj));
}

function restError(res, status, code, message) {
  reply(res, status, REST_TYPE, { error_code: code, message });
}

function dialect(contentType) {
  const t = (contentType || '').split(';')[0].trim().toLowerCase();
  if (t === 'application/vnd.kafka.json.v2+json') return 'json';
  if (t === 'application/vnd.kafka.binary.v2+json') return 'binary';
  if (t.startsWith('application/vnd.kafka.')) return 'unsupported';
  return 'raw';
}

// The envelope's records as kafkajs messages, or an error [status, code, message].
function parseEnvelope(kind, body) {
  let env;
  try {
    env = JSON.parse(body.toString('utf8'));
  } catch (e) {
    return { error: [400, 400, `malformed JSON: ${e.message}`] };
  }
  if (!env || !Array.isArray(env.records)) return { error: [422, 422, 'records must be an array'] };
  if (env.records.length === 0) return { error: [422, 42206, 'records must not be empty'] };
  const messages = [];
  for (const r of env.records) {
    if (!r || typeof r !== 'object') return { error: [422, 422, 'a record must be an object'] };
    const m = {};
    for (const f of ['key', 'value']) {
      const v = r[f];
      if (v === undefined || v === null) continue;
      if (kind === 'json') {
        m[f] = JSON.stringify(v);
      } else {
        if (typeof v !== 'string') return { error: [422, 422, `${f} must be a base64 string`] };
        m[f] = Buffer.from(v, 'base64');
      }
    }
    if (m.value === undefined) m.value = null;
    if (r.partition !== undefined && r.partition !== null) {
      if (!Number.isInteger(r.partition) || r.partition < 0) {
        return { error: [422, 422, 'invalid partition'] };
      }
      m.partition = r.partition;
    }
    messages.push(m);
  }
  return { messages };
}

// Per-message (partition, offset) from kafkajs' per-partition metadata.
function offsetsOf(messages, metadata) {
  const basePerPartition = new Map(metadata.map((m) => [m.partition, BigInt(m.baseOffset)]));
  const rank = new Map();
  return messages.map((m) => {
    const p = m.partition !== undefined ? m.partition : m.__partition;
    const k = rank.get(p) || 0n;
    rank.set(p, k + 1n);
    const b = basePerPartition.get(p);
    return { partition: p, offset: b === undefined ? null : Number(b + k) };
  });
}

async function produce(req, res, topic, body) {
  const kind = dialect(req.headers['content-type']);
  if (kind === 'unsupported') return restError(res, 415, 415, 'unsupported media type');
  let messages;
  if (kind === 'raw') {
    messages = [{ value: body }];
  } else {
    const parsed = parseEnvelope(kind, body);
    if (parsed.error) return restError(res, ...parsed.error);
    messages = parsed.messages;
  }
  let metadata;
  try {
    metadata = await producer.send({ topic, acks: -1, messages });
  } catch (e) {
    if (kind === 'raw') return reply(res, 503, 'application/json', { error: 'delivery_failed' });
    return restError(res, 503, e.retriable ? 50003 : 50002, e.message);
  }
  const offsets = offsetsOf(messages, metadata);
  if (kind === 'raw') return reply(res, 200, 'application/json', offsets[0]);
  reply(res, 200, REST_TYPE, {
    offsets: offsets.map((o) => ({ ...o, error_code: null, error: null })),
    key_schema_id: null,
    value_schema_id: null,
  });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://bridge');
  if (req.method === 'GET' && (url.pathname === '/healthz' || url.pathname === '/readyz')) {
    return reply(res, 200, 'application/json', { status: 'ok' });
  }
  const m = /^\/topics\/([A-Za-z0-9._-]{1,249})$/.exec(url.pathname);
  if (!m) return reply(res, 404, 'application/json', { error: 'not_found' });
  if (req.method !== 'POST') return reply(res, 405, 'application/json', { error: 'method_not_allowed' });
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > maxBody) {
      reply(res, 413, 'application/json', { error: 'payload_too_large' });
      req.destroy();
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => {
    if (size > maxBody) return;
    produce(req, res, m[1], Buffer.concat(chunks)).catch((e) => {
      reply(res, 500, 'application/json', { error: String(e && e.message) });
    });
  });
});
server.keepAliveTimeout = 60000;

(async () => {
  await producer.connect();
  server.listen(port, host, () => {
    const a = server.address();
    // The same line the gateways print, so tools can read the port.
    console.log(`listening on ${a.address}:${a.port}`);
  });
})().catch((e) => {
  console.error(`bridge failed to start: ${e.message}`);
  process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    producer.disconnect().finally(() => process.exit(0));
  });
}
