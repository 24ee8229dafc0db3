// June's voice page: hold-to-talk over POST /v1/voice/stream, typing over /v1/chat/stream, hands-free over
// WS /v1/realtime. Same origin only. The key comes in the address June prints (`/#key=…`, kept in this browser
// and dropped from the address at once) or is asked for once; each browser acts as a user of its own.

const $ = (id) => document.getElementById(id);
const HOLD_MS = 350; // a shorter press is a tap: it toggles recording instead
const stored = (name, fallback) => localStorage.getItem(`june.${name}`) ?? fallback;
const store = (name, value) => localStorage.setItem(`june.${name}`, value);
const newConversationId = () => `web-${crypto.randomUUID().slice(0, 18)}`;

// The key in the fragment (never sent to June, never in its logs) is kept like a typed one, then removed from
// the address bar and the history, so that neither a bookmark nor a shared screen carries it.
function keyFromAddress() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const key = fragment.get("key");
  if (key === null) return;
  if (key.trim()) store("key", key.trim());
  fragment.delete("key");
  const rest = fragment.toString();
  history.replaceState(history.state, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
}
keyFromAddress();

// State the page shows, and what tests and the benchmark read (window.june.stats).
const june = {
  key: stored("key", null),
  user: stored("user", null) || `web:${crypto.randomUUID()}`, // this browser's own user: no two browsers share one
  conversation: stored("conversation", null) || newConversationId(),
  voice: stored("voice", "on") === "on",
  handsFree: null,
  stats: {
    replies: 0, played: 0, heardSeconds: 0, captureEndedAt: null, firstAudioAt: null, interruptions: 0, lastTimings: null,
  },
};
window.june = june;

const asUser = () => new URLSearchParams({ user_id: june.user });
const replyFormat = () => ($("player").canPlayType("audio/ogg; codecs=opus") ? "ogg" : "wav");
const mimeOf = { ogg: "audio/ogg", wav: "audio/wav" };

// --- the API, with the key -----------------------------------------------------------------------------

let keyPrompt = null;

function askForKey(problem) {
  if (keyPrompt) return keyPrompt;
  keyPrompt = new Promise((resolve) => {
    const dialog = $("key-dialog");
    if (problem) $("key-problem").textContent = problem;
    $("key").value = "";
    dialog.showModal();
    $("key-form").onsubmit = () => {
      june.key = $("key").value.trim();
      store("key", june.key);
      keyPrompt = null;
      resolve();
    };
  });
  return keyPrompt;
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (june.key) headers.Authorization = `Bearer ${june.key}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    await askForKey(june.key ? "That key was refused. Try another." : null);
    return api(path, options);
  }
  return response;
}

async function errorText(response) {
  try {
    return (await response.json()).error.message;
  } catch {
    return `June answered ${response.status}`;
  }
}

async function* serverSentEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) yield [event, JSON.parse(data)];
    }
  }
}

// --- the conversation log ------------------------------------------------------------------------------

function bubble(who, text = "") {
  const item = document.createElement("li");
  item.className = who;
  item.textContent = text;
  $("log").append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function note(item, text) {
  const span = document.createElement("span");
  span.className = "note";
  span.textContent = text;
  item.append(span);
}

// One reply being shown: the same events whether they come over SSE or the WebSocket.
class Reply {
  constructor(you) {
    this.you = you;
    this.june = null;
    this.text = "";
  }

  handle(kind, payload) {
    if (kind === "transcript") {
      this.you.classList.remove("pending");
      this.you.textContent = payload.text || "(nothing heard)";
    } else if (kind === "delta") {
      this.answer().classList.remove("pending");
      this.text += payload.text;
      this.june.textContent = this.text.trimStart();
    } else if (kind === "audio") {
      player.enqueue(payload);
    } else if (kind === "audio_error") {
      note(this.answer(), `No voice: ${payload.message}`);
    } else if (kind === "done") {
      june.stats.replies += 1;
      june.stats.lastTimings = payload.timings_ms;
      if (payload.reply && !this.text) this.answer().textContent = payload.reply;
      if (this.june) this.june.classList.remove("pending");
      showTimings(payload.timings_ms);
      loadConversations();
    } else if (kind === "error") {
      note(this.answer(), payload.error.message);
      this.answer().classList.remove("pending");
    } else if (kind === "interrupted") {
      if (this.june) note(this.june, "(interrupted)");
    }
  }

  answer() {
    if (!this.june) this.june = bubble("june pending");
    return this.june;
  }
}

function showTimings(timings) {
  if (!timings) return;
  const names = { stt: "hearing", think: "thinking", tts: "speaking", first_audio: "first audio", total: "total" };
  $("timings").textContent = "Last reply: " + Object.entries(timings)
    .map(([stage, ms]) => `${names[stage] || stage} ${(ms / 1000).toFixed(2)} s`).join(" · ");
}

async function showStream(response, reply) {
  if (!response.ok) {
    reply.you.classList.remove("pending");
    note(reply.answer(), await errorText(response));
    reply.answer().classList.remove("pending");
    return;
  }
  for await (const [kind, payload] of serverSentEvents(response)) reply.handle(kind, payload);
}

// --- playing the reply, sentence by sentence -----------------------------------------------------------

const player = {
  element: $("player"),
  queue: [],
  busy: false,
  lastTime: 0,

  enqueue(clip) {
    if (!june.voice) return;
    this.queue.push(clip);
    if (!this.busy) this.next();
  },

  next() {
    const clip = this.queue.shift();
    if (this.element.src) URL.revokeObjectURL(this.element.src);
    if (!clip) {
      this.setBusy(false);
      return;
    }
    this.setBusy(true);
    const bytes = Uint8Array.from(atob(clip.audio), (c) => c.charCodeAt(0));
    this.element.src = URL.createObjectURL(new Blob([bytes], { type: mimeOf[clip.audio_format] || "audio/ogg" }));
    this.lastTime = 0;
    this.element.play().catch(() => this.next());
  },

  stop() {
    this.queue = [];
    this.element.pause();
    this.element.removeAttribute("src");
    this.element.load();
    this.setBusy(false);
  },

  setBusy(busy) {
    if (busy === this.busy) return;
    this.busy = busy;
    june.handsFree?.playback(busy);
  },
};

player.element.addEventListener("playing", () => {
  june.stats.played += 1;
  if (june.stats.firstAudioAt === null) june.stats.firstAudioAt = performance.now();
});
player.element.addEventListener("timeupdate", () => {
  const now = player.element.currentTime;
  if (now > player.lastTime) june.stats.heardSeconds += now - player.lastTime;
  player.lastTime = now;
});
player.element.addEventListener("ended", () => player.next());
player.element.addEventListener("error", () => player.busy && player.next());

function newTurn() {
  player.stop();
  june.stats.firstAudioAt = null;
}

// --- hold to talk (or tap to toggle) -------------------------------------------------------------------

let microphone = null;

async function openMicrophone() {
  if (!microphone) {
    microphone = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  }
  return microphone;
}

// Between turns the microphone is off (the browser's indicator too): each press opens it again.
function closeMicrophone() {
  microphone?.getTracks().forEach((track) => track.stop());
  microphone = null;
}

const recorder = {
  state: "idle", // idle | holding | toggled
  pressedAt: 0,
  media: null,
  chunks: [],

  async start() {
    newTurn();
    const stream = await openMicrophone();
    const type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"].find((t) => MediaRecorder.isTypeSupported(t));
    this.media = new MediaRecorder(stream, type ? { mimeType: type } : {});
    this.chunks = [];
    this.media.ondataavailable = (event) => event.data.size && this.chunks.push(event.data);
    this.media.start(250);
    $("talk").classList.add("recording");
    $("talk").setAttribute("aria-pressed", "true");
  },

  stop() {
    const media = this.media;
    this.media = null;
    this.state = "idle";
    $("talk").classList.remove("recording");
    $("talk").setAttribute("aria-pressed", "false");
    $("talk").textContent = "Hold to talk";
    if (!media) return;
    june.stats.captureEndedAt = performance.now();
    media.onstop = () => {
      if (!june.handsFree) closeMicrophone();
      sendVoice(new Blob(this.chunks, { type: media.mimeType || "audio/webm" }));
    };
    media.stop();
  },
};

async function sendVoice(blob) {
  const reply = new Reply(bubble("you pending"));
  const form = new FormData();
  const extension = blob.type.includes("ogg") ? "ogg" : blob.type.includes("mp4") ? "m4a" : "webm";
  form.append("audio", blob, `question.${extension}`);
  form.append("conversation_id", june.conversation);
  form.append("user_id", june.user);
  form.append("reply_format", replyFormat());
  try {
    await showStream(await api("/v1/voice/stream", { method: "POST", body: form }), reply);
  } catch (error) {
    note(reply.answer(), `June could not be reached: ${error.message}`);
  }
}

$("talk").addEventListener("pointerdown", async (event) => {
  event.preventDefault();
  if (june.handsFree) return;
  if (recorder.state === "toggled") {
    recorder.stop();
    return;
  }
  recorder.state = "holding";
  recorder.pressedAt = performance.now();
  try {
    await recorder.start();
  } catch (error) {
    recorder.state = "idle";
    bubble("june", `The microphone is not available: ${error.message}`);
    return;
  }
  if (recorder.state === "idle") recorder.stop(); // released while the microphone was opening
});

function release() {
  if (recorder.state !== "holding") return;
  if (performance.now() - recorder.pressedAt < HOLD_MS) {
    recorder.state = "toggled";
    $("talk").textContent = "Tap to send";
  } else if (recorder.media) {
    recorder.stop();
  } else {
    recorder.state = "idle";
  }
}
for (const name of ["pointerup", "pointercancel", "pointerleave"]) $("talk").addEventListener(name, release);
$("talk").addEventListener("contextmenu", (event) => event.preventDefault());

// --- typing ----------------------------------------------------------------------------------------------

$("text-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  newTurn();
  const reply = new Reply(bubble("you", text));
  const body = {
    text, user_id: june.user, conversation_id: june.conversation, speak: june.voice, reply_format: replyFormat(),
  };
  try {
    await showStream(await api("/v1/chat/stream", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    }), reply);
  } catch (error) {
    note(reply.answer(), `June could not be reached: ${error.message}`);
  }
});

// --- hands-free over WS /v1/realtime ---------------------------------------------------------------------

class HandsFree {
  constructor() {
    this.muted = false;
    this.reply = null;
    this.closedOnPurpose = false;
  }

  async start() {
    const stream = await openMicrophone();
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule("/web/capture.js");
    this.source = this.context.createMediaStreamSource(stream);
    this.capture = new AudioWorkletNode(this.context, "pcm-capture");
    const silent = this.context.createGain();
    silent.gain.value = 0;
    this.source.connect(this.capture).connect(silent).connect(this.context.destination);
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.socket = new WebSocket(`${scheme}://${location.host}/v1/realtime`);
    this.socket.binaryType = "arraybuffer";
    this.ready = false;
    this.socket.onopen = () => this.socket.send(JSON.stringify({
      type: "start", user_id: june.user, conversation_id: june.conversation, reply_format: replyFormat(),
      ...(june.key ? { api_key: june.key } : {}),
    }));
    this.socket.onmessage = (event) => this.receive(JSON.parse(event.data));
    this.socket.onclose = () => this.closed();
    this.capture.port.onmessage = (event) => {
      if (this.ready && !this.muted && this.socket.readyState === WebSocket.OPEN) this.socket.send(event.data);
    };
  }

  receive(message) {
    const { type: kind, ...payload } = message;
    if (kind === "ready") {
      this.ready = true;
      $("talk").textContent = "Listening…";
    } else if (kind === "speech_started") {
      $("talk").textContent = "Hearing you…";
    } else if (kind === "speech_stopped") {
      $("talk").textContent = "Listening…";
      june.stats.captureEndedAt = performance.now();
      june.stats.firstAudioAt = null;
      this.reply = new Reply(bubble("you pending"));
    } else if (kind === "interrupted") {
      june.stats.interruptions += 1;
      player.stop();
      this.reply?.handle(kind, payload);
    } else if (kind === "transcript" && !payload.text) {
      this.reply?.you.remove(); // a noise, not words: June stays quiet
      this.reply = null;
    } else if (kind === "error" && payload.error.code === "unauthorized") {
      this.unauthorized = true;
    } else if (this.reply) {
      this.reply.handle(kind, payload);
    } else if (kind === "error") {
      bubble("june", payload.error.message);
    }
  }

  playback(playing) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: "playback", playing }));
  }

  async closed() {
    if (this.closedOnPurpose) return;
    if (this.unauthorized) {
      this.unauthorized = false;
      await askForKey(june.key ? "That key was refused. Try another." : null);
      this.connect();
      return;
    }
    bubble("june", "Hands-free stopped: the connection to June closed.");
    stopHandsFree();
  }

  setMuted(muted) {
    this.muted = muted;
    $("mute").setAttribute("aria-pressed", String(muted));
    $("mute").textContent = muted ? "Unmute mic" : "Mute mic";
  }

  stop() {
    this.closedOnPurpose = true;
    this.socket?.close();
    this.source?.disconnect();
    this.context?.close();
    closeMicrophone();
  }
}

async function startHandsFree() {
  newTurn();
  june.handsFree = new HandsFree();
  $("talk").classList.add("listening");
  $("talk").disabled = true;
  $("mute").hidden = false;
  $("hint").textContent = "Just talk. June answers when you pause; speak over it to interrupt.";
  try {
    await june.handsFree.start();
  } catch (error) {
    bubble("june", `Hands-free is not available: ${error.message}`);
    stopHandsFree();
  }
}

function stopHandsFree() {
  june.handsFree?.stop();
  june.handsFree = null;
  $("hands-free").checked = false;
  $("talk").classList.remove("listening");
  $("talk").disabled = false;
  $("talk").textContent = "Hold to talk";
  $("mute").hidden = true;
  $("hint").textContent = "Hold the button while you speak, or tap it once to start and again to send.";
}

$("hands-free").addEventListener("change", (event) => (event.target.checked ? startHandsFree() : stopHandsFree()));
$("mute").addEventListener("click", () => june.handsFree?.setMuted(!june.handsFree.muted));
$("voice").checked = june.voice;
$("voice").addEventListener("change", (event) => {
  june.voice = event.target.checked;
  store("voice", june.voice ? "on" : "off");
  if (!june.voice) player.stop();
});

// --- conversations ---------------------------------------------------------------------------------------

async function loadConversations() {
  const response = await api(`/v1/conversations?${asUser()}`);
  if (!response.ok) return;
  const { conversations } = await response.json();
  const list = $("conversations");
  list.replaceChildren();
  for (const conversation of conversations) {
    const item = document.createElement("li");
    item.classList.toggle("current", conversation.conversation_id === june.conversation);
    const open = document.createElement("button");
    open.className = "open";
    open.textContent = conversation.title || conversation.conversation_id;
    open.title = `${conversation.turns} turns, ${new Date(conversation.updated_at * 1000).toLocaleString()}`;
    open.onclick = () => {
      $("conversations-panel").classList.remove("open");  // on a phone the list covers the talk button
      openConversation(conversation.conversation_id);
    };
    const remove = document.createElement("button");
    remove.className = "delete";
    remove.textContent = "×";
    remove.setAttribute("aria-label", `Delete “${open.textContent}”`);
    remove.onclick = () => deleteConversation(conversation.conversation_id);
    item.append(open, remove);
    list.append(item);
  }
}

async function openConversation(id) {
  stopHandsFree();
  newTurn();
  june.conversation = id;
  store("conversation", id);
  $("log").replaceChildren();
  const response = await api(`/v1/conversations/${encodeURIComponent(id)}?${asUser()}`);
  if (response.ok) {
    for (const turn of (await response.json()).turns) bubble(turn.role === "user" ? "you" : "june", turn.content);
  }
  loadConversations();
}

async function deleteConversation(id) {
  if (!confirm("Delete this conversation? June forgets it.")) return;
  const response = await api(`/v1/conversations/${encodeURIComponent(id)}?${asUser()}`, { method: "DELETE" });
  if (!response.ok) {
    bubble("june", await errorText(response));
    return;
  }
  if (id === june.conversation) startNewConversation();
  loadConversations();
}

function startNewConversation() {
  stopHandsFree();
  newTurn();
  june.conversation = newConversationId();
  store("conversation", june.conversation);
  $("log").replaceChildren();
  loadConversations();
}

$("new-conversation").addEventListener("click", startNewConversation);
$("toggle-conversations").addEventListener("click", () => $("conversations-panel").classList.toggle("open"));

// --- June's status ---------------------------------------------------------------------------------------

async function showStatus() {
  const health = $("health");
  try {
    const response = await api("/v1/status");
    const status = await response.json();
    health.textContent = status.status;
    health.className = `pill ${status.status}`;
    health.title = Object.entries(status.deployments).map(([name, state]) => `${name}: ${state}`).join("\n");
    $("models").textContent = Object.values(status.models).join(" · ");
  } catch {
    health.textContent = "unreachable";
    health.className = "pill down";
  }
}

store("conversation", june.conversation);
store("user", june.user);
await showStatus();
await openConversation(june.conversation);
setInterval(showStatus, 15000);
