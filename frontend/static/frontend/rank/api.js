// The ranking API as the page calls it: session cookie + CSRF header, JSON in and out.

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export function createApi(base) {
  async function call(method, path, body, headers = {}, { keepalive = false } = {}) {
    const init = {
      method,
      credentials: "same-origin",
      keepalive,
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken(), ...headers },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(base + path, init);
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch { data = null; }
    }
    return { status: response.status, data, headers: response.headers };
  }
  return {
    nextTask: (projectId, after) => call("GET", `/projects/${projectId}/next-task${after ? `?after=${after}` : ""}`),
    // One request per ranking: the answer carries the next assignment (query from flow.submitQuery).
    submit: (id, body, key, query = "") => call("POST", `/assignments/${id}/submit${query}`, body, { "Idempotency-Key": key }),
    skip: (id, reason, options) => call("POST", `/assignments/${id}/skip`, { reason }, {}, options),
    heartbeat: (id) => call("POST", `/assignments/${id}/heartbeat`),
    // Admins, from the task page (gold.js): tiers of response ids, or null to unmark.
    gold: (taskId, tiers) => call("POST", `/tasks/${taskId}/gold`, { gold_ranking: tiers }),
  };
}
