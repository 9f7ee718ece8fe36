// The demonstration page: write (or edit the draft of) the ideal response to the prompt.
// Ctrl+Enter (or Cmd+Enter) submits; the text is kept in localStorage until submitted (write/drafts.js);
// the preview is the server's one Markdown renderer (POST /markdown-preview), never rendered here.
import { createApi } from "./rank/api.js";
import { $, renderMessages } from "./rank/render.js";
import { dropDraft, saveDraft, startingText, textProblem } from "./write/drafts.js";

const config = JSON.parse($("write-config").textContent);
const api = createApi(config.api);
const storage = window.localStorage;
const state = { task: null, shownAt: 0, busy: false, keys: {}, previewTimer: null };

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function say(text) { $("status").textContent = text; }
function alertMessage(text) { const box = $("alert"); box.textContent = text; box.hidden = !text; }

async function preview() {
  const text = $("text").value;
  const response = await fetch(`${config.api}/markdown-preview`, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify({ text }),
  });
  if (response.ok) $("preview").innerHTML = (await response.json()).html; // sanitised on the server (nh3)
}

function schedulePreview() {
  clearTimeout(state.previewTimer);
  state.previewTimer = setTimeout(preview, 250);
}

function updateCount() {
  const n = $("text").value.length;
  $("count").textContent = `${n} / ${config.maxChars}`;
  $("count").classList.toggle("over", n > config.maxChars);
}

function show(task) {
  if (task.type !== "demonstration") {
    // A head-to-head task of this project: ranked on the ranking page, not written.
    window.location.assign(`${window.location.pathname}?view=rank`);
    return;
  }
  state.task = task;
  state.shownAt = performance.now();
  $("empty").hidden = true;
  $("task").hidden = false;
  $("task").dataset.assignment = String(task.id);
  renderMessages($("messages"), task.messages, false);
  $("draft-note").hidden = !task.draft;
  $("text").value = startingText(storage, task.id, task.draft?.content);
  updateCount();
  preview();
  $("text").focus();
}

function showEmpty(message) {
  state.task = null;
  $("task").hidden = true;
  $("empty").hidden = false;
  $("empty-text").textContent = message || "Nothing to write right now.";
}

async function load() {
  alertMessage("");
  const answer = await api.nextTask(config.projectId);
  if (answer.status === 204) return showEmpty(answer.headers.get("X-No-Task-Message"));
  if (answer.status !== 200) return alertMessage(answer.data?.error?.message ?? `Could not load a task (${answer.status}).`);
  $("left").textContent = answer.data.progress?.left_in_project ?? "…";
  $("done-today").textContent = answer.data.progress?.done_today ?? 0;
  show(answer.data);
}

async function submit() {
  if (!state.task || state.busy) return;
  const text = $("text").value;
  const problem = textProblem(text, config.maxChars);
  if (problem) { alertMessage(problem); return; }
  state.busy = true;
  const id = state.task.id;
  state.keys[id] ??= crypto.randomUUID();
  const duration = Math.round(performance.now() - state.shownAt);
  try {
    const answer = await api.submit(id, { text, duration_ms: duration }, state.keys[id]);
    if (answer.status === 201 || answer.status === 200) {
      dropDraft(storage, id);
      say("Submitted. Thank you!");
      await load();
    } else {
      const fields = answer.data?.error?.fields ?? {};
      alertMessage(fields.text?.join("; ") ?? answer.data?.error?.message ?? `Not submitted (${answer.status}).`);
    }
  } finally {
    state.busy = false;
  }
}

async function skip() {
  if (!state.task) return;
  const id = state.task.id;
  await api.skip(id, "Skipped from the demonstration page");
  dropDraft(storage, id);
  say("Skipped.");
  await load();
}

$("text").addEventListener("input", () => {
  if (state.task) saveDraft(storage, state.task.id, $("text").value);
  updateCount();
  schedulePreview();
});
$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit(); }
});
$("submit").addEventListener("click", submit);
$("skip").addEventListener("click", skip);
$("retry-load").addEventListener("click", load);
setInterval(() => { if (state.task) api.heartbeat(state.task.id); }, Math.max(30, config.leaseSeconds / 3) * 1000);
load();
