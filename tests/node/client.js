// A Node.js client of lkn.v1.Gateway: loads protos/ at run time (no generated code), streams
// Generate, calls Probe and ListModels, makes one bad call, and prints one JSON document.
//
//   node tests/node/client.js HOST:PORT [TEXT] [MAX_TOKENS]
//
// Exits 0 when every call behaved as the API says (the bad call must fail with a status
// code), 1 otherwise; the JSON tells what happened either way.
"use strict";

const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTOS = path.resolve(__dirname, "..", "..", "protos");

function loadGateway() {
  const definition = protoLoader.loadSync("lkn/v1/gateway.proto", {
    includeDirs: [PROTOS],
    keepCase: true, // field names as in the .proto
    enums: String,
    longs: String,
    defaults: true,
    oneofs: true, // sets `event` / `input` to the name of the field that is set
  });
  return grpc.loadPackageDefinition(definition).lkn.v1.Gateway;
}

function deadline(seconds) {
  return new Date(Date.now() + seconds * 1000);
}

function statusName(code) {
  return Object.keys(grpc.status).find((name) => grpc.status[name] === code) || String(code);
}

function failure(err) {
  return { code: statusName(err.code), details: err.details, metadata: err.metadata.getMap() };
}

function generate(client, request) {
  return new Promise((resolve) => {
    const result = { start: null, text: "", finish: null, messages: 0, error: null };
    const call = client.Generate(request, { deadline: deadline(20) });
    call.on("data", (message) => {
      result.messages += 1;
      if (message.event === "start") result.start = message.start;
      else if (message.event === "delta") result.text += message.delta.text;
      else if (message.event === "finish") result.finish = message.finish;
    });
    call.on("error", (err) => {
      result.error = failure(err);
      resolve(result);
    });
    call.on("end", () => resolve(result));
  });
}

function unary(client, method, request) {
  return new Promise((resolve) => {
    client[method](request, { deadline: deadline(20) }, (err, reply) => {
      resolve(err ? { error: failure(err) } : reply);
    });
  });
}

async function main() {
  const [target, text = "hello there", maxTokens = "5"] = process.argv.slice(2);
  if (!target) {
    console.error("usage: node client.js HOST:PORT [TEXT] [MAX_TOKENS]");
    process.exit(2);
  }
  const Gateway = loadGateway();
  const client = new Gateway(target, grpc.credentials.createInsecure());
  const chat = { messages: [{ role: "user", content: text }] };

  const out = {};
  out.generate = await generate(client, {
    request_id: "node-1",
    chat,
    sampling: { max_tokens: Number(maxTokens) },
  });
  out.probe = await unary(client, "Probe", { request_id: "node-2", chat, mode: "MODE_ANALITICO" });
  out.models = await unary(client, "ListModels", {});
  out.bad = await generate(client, { chat: { messages: [] } });
  client.close();

  console.log(JSON.stringify(out, null, 2));
  const ok =
    !out.generate.error && out.generate.finish !== null &&
    !out.probe.error && !out.models.error && out.bad.error !== null;
  process.exit(ok ? 0 : 1);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
