// The review page: accept or reject demonstrations written by others (A / R, or the buttons).
import { $, renderMessages } from "./rank/render.js";

const config = JSON.parse($("review-config").textContent);
const state = { item: null, busy: false };

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function call(method, path, body) {
  const response = await fetch(config.api + path, {
    method, credentials: "same-origin",
    headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  if (response.status !== 204) { try { data = await response.json(); } catch { data = null; } }
  return { status: response.status, data };
}

function alertMessage(text) { $("alert").textContent = text; $("alert").hidden = !text; }

async function load() {
  alertMessage("");
  const answer = await call("GET", `/projects/${config.projectId}/next-review`);
  state.item = answer.status === 200 ? answer.data : null;
  $("item").hidden = !state.item;
  $("empty").hidden = Boolean(state.item) || answer.status !== 204;
  if (answer.status !== 200 && answer.status !== 204) alertMessage(answer.data?.error?.message ?? `Could not load (${answer.status}).`);
  if (!state.item) return;
  $("item").dataset.demonstration = String(state.item.id);
  renderMessages($("messages"), state.item.messages, false);
  $("demonstration").innerHTML = state.item.text_html; // sanitised on the server (nh3)
  $("note").value = "";
}

async function review(accepted) {
  if (!state.item || state.busy) return;
  state.busy = true;
  try {
    const answer = await call("POST", `/projects/${config.projectId}/demonstrations/${state.item.id}/review`,
      { accepted, note: $("note").value });
    if (answer.status === 200) { $("status").textContent = accepted ? "Accepted." : "Rejected."; await load(); }
    else alertMessage(answer.data?.error?.message ?? `Not stored (${answer.status}).`);
  } finally { state.busy = false; }
}

$("accept").addEventListener("click", () => review(true));
$("reject").addEventListener("click", () => review(false));
$("retry-load").addEventListener("click", load);
document.addEventListener("keydown", (event) => {
  if (event.target.matches("textarea, input") || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "a" || event.key === "A") review(true);
  if (event.key === "r" || event.key === "R") review(false);
});
load();
