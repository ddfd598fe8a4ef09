// Drives a supernode with only protos/: register a host and a task, read the task back, and read its last piece
// from the supernode's seed peer with the access grant RegisterTask gave (and once without it).
// Usage: node register_and_read.js SUPERNODE_HOST:PORT ORIGIN_URL
// Prints one JSON object with what it read; exits 1 with the gRPC error otherwise.
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTOS = path.resolve(__dirname, '../../../protos');
const definition = protoLoader.loadSync('dandelion/scheduler/v1/scheduler.proto', {
  includeDirs: [PROTOS],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
});
const loaded = grpc.loadPackageDefinition(definition);
const Scheduler = loaded.dandelion.scheduler.v1.SchedulerService;
const peerDefinition = protoLoader.loadSync('dandelion/peer/v1/peer.proto', {
  includeDirs: [PROTOS],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
});
const PeerService = grpc.loadPackageDefinition(peerDefinition).dandelion.peer.v1.PeerService;

function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + 30000 }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

// A DownloadPieces stream to its end: the bytes received and the final status name.
function readPieces(client, request) {
  return new Promise((resolve) => {
    let bytes = 0;
    const stream = client.DownloadPieces(request, { deadline: Date.now() + 30000 });
    stream.on('data', (chunk) => {
      bytes += chunk.data.length;
    });
    stream.on('error', (err) => resolve({ bytes, status: grpc.status[err.code] }));
    stream.on('end', () => resolve({ bytes, status: 'OK' }));
  });
}

async function main() {
  const [target, url] = process.argv.slice(2);
  const client = new Scheduler(target, grpc.credentials.createInsecure());
  const host = await call(client, 'RegisterHost', {
    host: { hostname: 'node-client', ip: '127.0.0.1', port: 1, upload_slots: 4, location: 'test|node' },
  });
  const registered = await call(client, 'RegisterTask', { host_id: host.host_id, url_meta: { url } });
  // RegisterTask answers at once; the length follows once the seed peer that reads the origin has its answer.
  let task = await call(client, 'GetTask', { task_id: registered.task.task_id });
  const seedHolds = (t) => Number(t.task.content_length) >= 0 && t.task.seed_pieces === t.task.piece_count;
  for (let tries = 0; !seedHolds(task) && tries < 100; tries += 1) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    task = await call(client, 'GetTask', { task_id: registered.task.task_id });
  }
  const seed = new PeerService(target, grpc.credentials.createInsecure());
  const last = { task_id: task.task.task_id, piece_numbers: [task.task.piece_count - 1], requester_peer_id: 'node' };
  const granted = await readPieces(seed, { ...last, requester_host_id: host.host_id, grant: registered.grant });
  const ungranted = await readPieces(seed, last);
  seed.close();
  const hosts = await call(client, 'ListHosts', {});
  let unknown = null;
  try {
    await call(client, 'GetTask', { task_id: 'no-such-task' });
  } catch (err) {
    unknown = grpc.status[err.code];
  }
  console.log(JSON.stringify({
    host_id: host.host_id,
    peer_id: registered.peer_id,
    task_id: task.task.task_id,
    url: task.task.url,
    content_length: task.task.content_length,
    piece_size: task.task.piece_size,
    piece_count: task.task.piece_count,
    peers: task.peers.map((p) => ({ peer_id: p.peer_id, is_seed: p.is_seed, state: p.state })),
    hostnames: hosts.hosts.map((h) => h.hostname),
    unknown_task_status: unknown,
    grant_key_id: host.grant_key_id,
    granted: granted,
    ungranted: ungranted,
  }));
  client.close();
}

main().catch((err) => {
  console.error(`grpc error: ${grpc.status[err.code] || ''} ${err.details || err.message}`);
  process.exit(1);
});
