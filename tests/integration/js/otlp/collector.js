// collector.js — an independent OTLP/HTTP receiver for pytrace's integration tests
// (tests/integration/test_export_otlp.py). Requests are decoded with the protobuf code that the
// OpenTelemetry JS SDK generates from the official opentelemetry-proto files
// (@opentelemetry/otlp-transformer), never with pytrace's own schema.
//
//   node collector.js decode FILE
//       prints FILE's ExportTraceServiceRequest as one JSON line
//   node collector.js serve [--status CODE] [--max-requests N] [--timeout-s S]
//       listens on 127.0.0.1 at a free port, prints {"ready": true, "port": P}, then one JSON line
//       per POST (headers, path, decoded body) before answering it with CODE (default 200).
//       Exits when stdin closes, after N requests (default 64), or after S seconds (default 120).
'use strict';

const fs = require('fs');
const http = require('http');
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root');

const Request = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const Response = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse;

function hex(bytes) {
  return Buffer.from(bytes || []).toString('hex');
}

// AnyValue as [type, value]; 64-bit integers stay decimal strings so no precision is lost.
function anyValue(v) {
  if (!v) return ['empty', null];
  for (const k of ['stringValue', 'boolValue', 'intValue', 'doubleValue', 'bytesValue']) {
    if (v[k] !== undefined && v[k] !== null) {
      const type = k.replace('Value', '');
      return [type, k === 'bytesValue' ? hex(v[k]) : v[k]];
    }
  }
  return ['other', null];
}

function attributes(list) {
  const out = {};
  for (const kv of list || []) out[kv.key] = anyValue(kv.value);
  return out;
}

function span(s) {
  return {
    trace_id: hex(s.traceId),
    span_id: hex(s.spanId),
    parent_span_id: hex(s.parentSpanId),
    name: s.name,
    kind: s.kind,
    start: String(s.startTimeUnixNano),
    end: String(s.endTimeUnixNano),
    attributes: attributes(s.attributes),
  };
}

// The request as plain JSON; throws when the bytes are not a valid request.
function decode(buf) {
  const msg = Request.decode(buf);
  const obj = Request.toObject(msg, { longs: String, enums: Number, defaults: false,
                                      oneofs: false });
  return {
    resources: (obj.resourceSpans || []).map((rs) => ({
      attributes: attributes(rs.resource && rs.resource.attributes),
      scopes: (rs.scopeSpans || []).map((ss) => ({
        name: ss.scope ? ss.scope.name : null,
        version: ss.scope ? ss.scope.version : null,
        spans: (ss.spans || []).map(span),
      })),
    })),
  };
}

function arg(argv, name, dflt) {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? Number(argv[i + 1]) : dflt;
}

function serve(argv) {
  const status = arg(argv, '--status', 200);
  const maxRequests = arg(argv, '--max-requests', 64);
  const timeoutS = arg(argv, '--timeout-s', 120);
  let seen = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const record = { method: req.method, path: req.url, headers: req.headers,
                       bytes: body.length };
      try {
        record.request = decode(body);
      } catch (e) {
        record.error = String(e && e.message ? e.message : e);
      }
      process.stdout.write(JSON.stringify(record) + '\n');
      const ok = status >= 200 && status < 300;
      const answer = ok ? Buffer.from(Response.encode({}).finish()) : Buffer.from('no, thanks');
      res.writeHead(status, { 'Content-Type': ok ? 'application/x-protobuf' : 'text/plain' });
      res.end(answer);
      if (++seen >= maxRequests) finish(server);
    });
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ ready: true, port: server.address().port }) + '\n');
  });
  setTimeout(() => finish(server), timeoutS * 1000).unref();
  process.stdin.on('end', () => finish(server));
  process.stdin.resume();
}

let finished = false;

function finish(server) {
  if (finished) return;
  finished = true;
  server.close();
  server.closeAllConnections();
  process.stdout.write('', () => process.exit(0));
}

function main() {
  const argv = process.argv.slice(2);
  if (argv[0] === 'decode' && argv.length === 2) {
    process.stdout.write(JSON.stringify(decode(fs.readFileSync(argv[1]))) + '\n');
  } else if (argv[0] === 'serve') {
    serve(argv);
  } else {
    process.stderr.write('usage: collector.js decode FILE | serve [--status CODE] ' +
                         '[--max-requests N] [--timeout-s S]\n');
    process.exit(2);
  }
}

main();
