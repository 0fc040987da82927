// The voicebot demo page: one WebRTC call, the call's events drawn as they arrive.
// Plain browser JavaScript (no build step); works in current Chromium and Firefox.
"use strict";

const $ = (id) => document.getElementById(id);

const STAGES = [
  ["endpoint", "end of turn"],
  ["asr", "ASR"],
  ["dialog", "dialog"],
  ["tts", "TTS first audio"],
  ["playback", "playback"],
];

const REASONS = {
  hangup: "You hung up.",
  bot_hangup: "The bot ended the call.",
  transfer: "The call was transferred.",
  idle_timeout: "The call ended after a long silence.",
  peer_gone: "The connection was lost.",
  error: "The call failed on the server.",
  server_shutdown: "The server is shutting down.",
  connect_timeout: "The call could not connect.",
  completed: "The call ended.",
};

const token = (location.hash.match(/token=([^&]+)/) || [])[1];
let budget = null;
let call = null; // {pc, dc, stream, audioCtx, raf, ended}
let timerId = null;
let turnRows = [];
let slots = {};
const callerByTurn = new Map();
const botByTurn = new Map();

// --- small DOM helpers ---------------------------------------------------------------
function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function scrollDown() {
  const box = $("transcript");
  box.scrollTop = box.scrollHeight;
}

function median(values) {
  const v = [...values].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function drawDetail() {
  const box = $("latency-detail");
  const last = turnRows[turnRows.length - 1];
  box.hidden = !last;
  if (!last) return;
  box.replaceChildren("Turn " + last.turn + (last.v2v === null ? " (typed)" : "") + ": ");
  const parts = STAGES.filter(([key]) => last.event[key + "_ms"] !== null && last.event[key + "_ms"] !== undefined);
  parts.forEach(([key, label], i) => {
    box.append((i ? " · " : "") + label + " ", el("b", "", Math.round(last.event[key + "_ms"]) + " ms"));
  });
  const spoken = turnRows.filter((r) => r.v2v !== null).map((r) => r.v2v);
  if (spoken.length) {
    box.append(el("br"), "Median voice to voice ", el("b", "", fmtMs(median(spoken))),
      " over " + spoken.length + (spoken.length === 1 ? " turn" : " turns"));
  }
}

function setStatus(kind, text) {
  const pill = $("status");
  pill.className = "pill " + kind;
  pill.textContent = text;
}

function notice(text, kind) {
  const box = $("notice");
  box.hidden = !text;
  box.className = "notice" + (kind ? " " + kind : "");
  box.textContent = text || "";
}

function fmtMs(ms) {
  return ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : Math.round(ms) + " ms";
}

// --- conversation --------------------------------------------------------------------
function message(who, cls, text) {
  $("placeholder")?.remove();
  const wrap = el("div", "msg " + cls);
  wrap.append(el("span", "who", who), el("div", "bubble", text));
  $("transcript").append(wrap);
  scrollDown();
  return wrap;
}

function callerBubble(turn) {
  let node = callerByTurn.get(turn);
  if (!node) {
    node = message("you", "caller partial", "…");
    callerByTurn.set(turn, node);
  }
  return node;
}

function tag(node, cls, text) {
  const t = el("span", "tag " + cls, text);
  node.append(t);
  scrollDown();
  return t;
}

function systemLine(text) {
  const node = el("div", "msg system", text);
  $("placeholder")?.remove();
  $("transcript").append(node);
  scrollDown();
}

function speaking(on) {
  $("speaking").hidden = !on;
}

// --- dialog panel --------------------------------------------------------------------
function showSlots(fresh) {
  const body = $("slots");
  body.replaceChildren();
  const names = Object.keys(slots);
  if (!names.length) {
    const row = el("tr", "empty");
    const cell = el("td", "", "no slots yet");
    cell.colSpan = 2;
    row.append(cell);
    body.append(row);
    return;
  }
  for (const name of names) {
    const row = el("tr", fresh.has(name) ? "fresh" : "");
    const value = slots[name];
    row.append(el("td", "", name), el("td", "mono", typeof value === "object" ? JSON.stringify(value) : String(value)));
    body.append(row);
  }
}

function mergeSlots(next) {
  const fresh = new Set();
  for (const [name, value] of Object.entries(next || {})) {
    if (value === null || value === undefined) continue;
    if (JSON.stringify(slots[name]) !== JSON.stringify(value)) fresh.add(name);
    slots[name] = value;
  }
  showSlots(fresh);
}

// --- latency panel -------------------------------------------------------------------
function drawLatency() {
  const box = $("latency");
  box.replaceChildren();
  if (!turnRows.length) {
    box.append(el("p", "empty", "One bar per answered turn: from the end of your voice to the bot's first audio."));
    drawDetail();
    return;
  }
  const totals = turnRows.map((r) => r.total);
  const scale = Math.max((budget || 1000) * 1.25, Math.max(...totals) * 1.05);
  for (const row of turnRows) {
    const over = budget && row.v2v !== null && row.v2v > budget;
    const line = el("div", "lat-row " + (over ? "over" : "ok"));
    line.dataset.turn = row.turn;
    const track = el("div", "track");
    for (const [key, label] of STAGES) {
      const ms = row.event[key + "_ms"];
      if (ms === null || ms === undefined) continue;
      const seg = el("div", "seg seg-" + key);
      seg.style.width = (100 * ms / scale).toFixed(2) + "%";
      seg.title = label + ": " + Math.round(ms) + " ms";
      track.append(seg);
    }
    if (budget) {
      const mark = el("div", "budget");
      mark.style.left = (100 * budget / scale).toFixed(2) + "%";
      mark.title = "budget " + budget + " ms";
      track.append(mark);
    }
    const typed = row.v2v === null;
    const total = el("span", "total" + (typed ? " typed" : ""), fmtMs(typed ? row.total : row.v2v));
    line.append(el("span", "turn", "turn " + row.turn), track, total);
    line.title = row.v2v !== null ? "voice to voice " + Math.round(row.v2v) + " ms"
      : "typed turn: no speech to wait for";
    box.append(line);
  }
  box.scrollTop = box.scrollHeight;
  drawDetail();
}

function addTurn(event) {
  let total = 0;
  for (const [key] of STAGES) total += event[key + "_ms"] || 0;
  turnRows.push({ turn: event.turn, event, v2v: event.voice_to_voice_ms, total });
  drawLatency();
}

// --- events --------------------------------------------------------------------------
function onEvent(ev) {
  switch (ev.type) {
    case "hello":
      budget = ev.latency_budget_ms;
      $("budget").textContent = budget;
      $("pipeline").textContent = ev.pipeline + " (" + ev.language + ")";
      break;
    case "call_started":
      setStatus("live", "Live");
      startTimer();
      break;
    case "speech_started":
      callerBubble(ev.turn);
      break;
    case "transcript": {
      const node = callerBubble(ev.turn);
      const text = ev.text.trim();
      if (ev.final) {
        if (!text) {
          node.remove();
          callerByTurn.delete(ev.turn);
          break;
        }
        node.classList.remove("partial");
      }
      if (text) node.querySelector(".bubble").textContent = text;
      scrollDown();
      break;
    }
    case "intent": {
      const node = callerByTurn.get(ev.turn);
      const conf = typeof ev.confidence === "number" ? " " + Math.round(ev.confidence * 100) + "%" : "";
      if (node) tag(node, "intent", ev.name + conf + (ev.interim ? " · interim" : ""));
      const intent = $("intent");
      intent.replaceChildren(el("b", "", ev.name), el("span", "conf", (conf.trim() || "") + " · " + ev.matcher));
      mergeSlots(ev.slots);
      break;
    }
    case "no_match": {
      const node = callerByTurn.get(ev.turn);
      if (node) tag(node, "nomatch", "no match");
      $("intent").replaceChildren(el("span", "conf", "no match in " + ev.state));
      break;
    }
    case "state": {
      const box = $("state");
      box.replaceChildren();
      if (ev.from) box.append(el("span", "state-from", ev.from + " → "));
      box.append(el("b", "", ev.to));
      break;
    }
    case "reply": {
      botByTurn.set(ev.turn, message("bot", "bot", ev.text));
      break;
    }
    case "playback_started":
      botByTurn.get(ev.turn)?.classList.add("playing");
      speaking(true);
      break;
    case "playback_stopped": {
      const node = botByTurn.get(ev.turn);
      if (node) {
        node.classList.remove("playing");
        node.dataset.done = "played";
      }
      speaking(false);
      break;
    }
    case "interrupted": {
      const node = botByTurn.get(ev.turn);
      if (node) {
        node.classList.remove("playing");
        node.dataset.done = "interrupted";
        tag(node, "", "interrupted · heard " + fmtMs(ev.heard_ms));
      }
      speaking(false);
      break;
    }
    case "turn":
      addTurn(ev);
      break;
    case "outcome": {
      mergeSlots(ev.slots);
      const box = $("outcome");
      box.hidden = false;
      box.textContent = "✓ " + ev.kind + " committed" + (ev.id ? " (#" + ev.id + ")" : "");
      break;
    }
    case "transfer":
      systemLine("Transferring you to " + ev.target + "…");
      break;
    case "silence_timeout":
      systemLine("(silence)");
      break;
    case "flow_error":
      notice("Flow error in " + ev.state + ": " + ev.message);
      break;
    case "error":
      notice("Error in " + ev.stage + ": " + ev.message);
      break;
    case "call_ended":
      finish(ev.reason);
      break;
    case "client_error":
      notice(ev.error);
      break;
  }
}

// --- the call ------------------------------------------------------------------------
function startTimer() {
  const t0 = Date.now();
  clearInterval(timerId);
  timerId = setInterval(() => {
    const s = Math.floor((Date.now() - t0) / 1000);
    $("timer").textContent = String(Math.floor(s / 60)).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0");
  }, 500);
}

function resetView() {
  $("transcript").replaceChildren(el("p", "placeholder", "Connected. Say hello!"));
  $("transcript").firstChild.id = "placeholder";
  callerByTurn.clear();
  botByTurn.clear();
  turnRows = [];
  slots = {};
  showSlots(new Set());
  drawLatency();
  $("state").textContent = "–";
  $("intent").textContent = "–";
  $("outcome").hidden = true;
  $("timer").textContent = "00:00";
  notice("");
  speaking(false);
}

function iceGathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

function meter(stream) {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  const ctx = new Ctx();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const data = new Float32Array(analyser.fftSize);
  const bar = $("level");
  const tick = () => {
    analyser.getFloatTimeDomainData(data);
    let sum = 0;
    for (const x of data) sum += x * x;
    const db = 10 * Math.log10(sum / data.length + 1e-10);
    bar.style.width = Math.max(0, Math.min(100, (db + 60) * 100 / 60)).toFixed(1) + "%";
    if (call) call.raf = requestAnimationFrame(tick);
  };
  ctx.resume?.();
  call.audioCtx = ctx;
  call.raf = requestAnimationFrame(tick);
}

const OFFER_ERRORS = {
  401: "This server needs an access token: open the page as /#token=YOUR_TOKEN.",
  503: "All lines are busy. Please try again in a moment.",
};

async function startCall() {
  $("call").disabled = true;
  resetView();
  setStatus("connecting", "Connecting…");
  call = { ended: false };
  try {
    if (!navigator.mediaDevices) {
      throw new Error("The browser only opens the microphone on a secure page: " +
        "use https:// (voicebot serve --ssl-certfile) or http://localhost.");
    }
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    call.stream = stream;
    const pc = new RTCPeerConnection({ iceServers: [] });
    call.pc = pc;
    for (const track of stream.getAudioTracks()) pc.addTrack(track, stream);
    const dc = pc.createDataChannel("events");
    call.dc = dc;
    dc.onmessage = (e) => onEvent(JSON.parse(e.data));
    pc.ontrack = (e) => {
      const audio = $("botaudio");
      audio.srcObject = e.streams[0] || new MediaStream([e.track]);
      audio.play().catch(() => notice("Click anywhere to hear the bot.", "info"));
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") finish("peer_gone");
    };
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, 3000);
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + decodeURIComponent(token);
    const res = await fetch("offer", {
      method: "POST",
      headers,
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(OFFER_ERRORS[res.status] || body.error || "HTTP " + res.status);
    budget = body.latency_budget_ms;
    $("budget").textContent = budget;
    await pc.setRemoteDescription({ sdp: body.sdp, type: body.type });
    meter(stream);
    $("hangup").disabled = false;
    $("textinput").disabled = false;
    $("send").disabled = false;
  } catch (err) {
    teardown();
    setStatus("error", "Not connected");
    notice(err.name === "NotAllowedError" ? "Microphone access was denied." : err.message);
  }
}

function finish(reason) {
  if (!call || call.ended) return;
  call.ended = true;
  setStatus("ended", "Ended");
  document.querySelectorAll(".msg.playing").forEach((node) => node.classList.remove("playing"));
  systemLine(REASONS[reason] || "The call ended (" + reason + ").");
  teardown();
}

function teardown() {
  clearInterval(timerId);
  if (call) {
    if (call.raf) cancelAnimationFrame(call.raf);
    call.audioCtx?.close();
    call.stream?.getTracks().forEach((t) => t.stop());
    call.pc?.close();
  }
  call = null;
  $("level").style.width = "0%";
  speaking(false);
  $("call").disabled = false;
  $("hangup").disabled = true;
  $("textinput").disabled = true;
  $("send").disabled = true;
}

function hangUp() {
  if (!call) return;
  $("hangup").disabled = true;
  const current = call;
  if (current.dc && current.dc.readyState === "open") {
    current.dc.send(JSON.stringify({ type: "hangup" }));
    // The server answers with call_ended; don't wait forever for it.
    setTimeout(() => { if (call === current) finish("hangup"); }, 1500);
  } else {
    finish("hangup");
  }
}

$("call").addEventListener("click", startCall);
$("hangup").addEventListener("click", hangUp);
$("textform").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("textinput");
  const text = input.value.trim();
  if (!text || !call?.dc || call.dc.readyState !== "open") return;
  call.dc.send(JSON.stringify({ type: "text", text }));
  input.value = "";
});
document.addEventListener("click", () => {
  const audio = $("botaudio");
  if (audio.srcObject && audio.paused) audio.play().catch(() => {});
});

fetch("healthz")
  .then((r) => r.json())
  .then((info) => {
    $("pipeline").textContent = info.pipeline + " (" + info.language + ")";
    budget = info.latency_budget_ms;
    $("budget").textContent = budget;
  })
  .catch(() => notice("The server does not answer."));
