// The official OpenAI Node client against `wavllm serve`: node openai_client.mjs SCENARIO CONFIG.json
// prints one JSON object of what the client got; tests/python/test_serve.py checks it.
//   api:   every endpoint once through the client (and its errors), streaming included;
//   mixed: config.requests all at once (transcriptions, translations, chats), their texts in order;
//   load:  config.load.count chat requests over config.load.connections connections, no retries:
//          the HTTP status of each.
import fs from "node:fs";
import OpenAI from "openai";

const [scenario, configPath] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(configPath, "utf8"));
const client = new OpenAI({ baseURL: config.base_url, apiKey: config.api_key ?? "none", maxRetries: 0, timeout: 300000 });

function audioPart(path) {
  const ext = path.split(".").pop();
  return { type: "input_audio", input_audio: { data: fs.readFileSync(path).toString("base64"), format: ext } };
}

function chatBody(r) {
  return {
    model: config.model,
    temperature: 0,
    max_tokens: r.max_tokens,
    messages: [{ role: "user", content: [{ type: "text", text: r.instruction }, audioPart(r.audio)] }],
  };
}

async function run(r) {
  if (r.kind === "transcribe")
    return (await client.audio.transcriptions.create({ file: fs.createReadStream(r.audio), model: config.model })).text;
  if (r.kind === "translate")
    return (await client.audio.translations.create({ file: fs.createReadStream(r.audio), model: config.model })).text;
  return (await client.chat.completions.create(chatBody(r))).choices[0].message.content;
}

async function errorOf(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return { status: e.status ?? null, name: e.constructor.name, message: e.message };
  }
}

async function api() {
  const out = {};
  const audio = config.audio;
  out.models = (await client.models.list()).data.map((m) => m.id);
  out.transcription = (await client.audio.transcriptions.create({ file: fs.createReadStream(audio), model: config.model })).text;
  out.transcription_text = await client.audio.transcriptions.create({
    file: fs.createReadStream(audio), model: config.model, response_format: "text" });
  out.transcription_srt = await client.audio.transcriptions.create({
    file: fs.createReadStream(audio), model: config.model, response_format: "srt" });
  out.transcription_verbose = await client.audio.transcriptions.create({
    file: fs.createReadStream(audio), model: config.model, response_format: "verbose_json" });
  out.translation = (await client.audio.translations.create({ file: fs.createReadStream(audio), model: config.model })).text;
  const request = { kind: "chat", audio, instruction: config.instruction, max_tokens: 12 };
  const chat = await client.chat.completions.create({ ...chatBody(request), logprobs: true });
  out.chat = { content: chat.choices[0].message.content, finish_reason: chat.choices[0].finish_reason,
               usage: chat.usage, logprobs: chat.choices[0].logprobs.content.length };
  const stream = await client.chat.completions.create({ ...chatBody(request), stream: true });
  let streamed = "", chunks = 0, finish = null;
  for await (const chunk of stream) {
    streamed += chunk.choices[0]?.delta?.content ?? "";
    finish = chunk.choices[0]?.finish_reason ?? finish;
    ++chunks;
  }
  out.stream = { content: streamed, chunks, finish_reason: finish };
  out.errors = {
    no_audio: await errorOf(client.chat.completions.create({
      model: config.model, messages: [{ role: "user", content: [{ type: "text", text: "hi" }] }] })),
    bad_format: await errorOf(client.audio.transcriptions.create({
      file: fs.createReadStream(audio), model: config.model, response_format: "xml" })),
    not_audio: await errorOf(client.audio.transcriptions.create({
      file: fs.createReadStream(configPath), model: config.model })),
    wrong_key: await errorOf(new OpenAI({ baseURL: config.base_url, apiKey: "wrong", maxRetries: 0 }).models.list()),
  };
  return out;
}

async function mixed() {
  const texts = await Promise.all(config.requests.map(run));
  return { texts };
}

async function load() {
  const { count, connections, request } = config.load;
  const statuses = {};
  let next = 0;
  async function worker() {
    while (next < count) {
      ++next;
      const e = await errorOf(client.chat.completions.create(chatBody(request)));
      const status = e ? String(e.status) : "200";
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: connections }, worker));
  return { statuses };
}

const scenarios = { api, mixed, load };
process.stdout.write(JSON.stringify(await scenarios[scenario]()) + "\n");
