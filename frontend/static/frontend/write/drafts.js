// Drafts of demonstrations, kept in localStorage per assignment so a reload (or a closed tab) keeps
// what was written. Pure functions over a Storage-like object: tested with `node --test`.

const PREFIX = "demonstration-draft:";

export function draftKey(assignmentId) {
  return `${PREFIX}${assignmentId}`;
}

export function saveDraft(storage, assignmentId, text) {
  try { storage.setItem(draftKey(assignmentId), text); } catch { /* storage full or off: not fatal */ }
}

// The text to start from: the stored draft if any, else the task's draft response, else "".
export function startingText(storage, assignmentId, draftResponse) {
  let stored = null;
  try { stored = storage.getItem(draftKey(assignmentId)); } catch { stored = null; }
  if (stored !== null) return stored;
  return draftResponse ?? "";
}

export function dropDraft(storage, assignmentId) {
  try { storage.removeItem(draftKey(assignmentId)); } catch { /* ignore */ }
}

// What the server will accept, checked before sending (the server checks it again and names `text`).
export function textProblem(text, maxChars) {
  if (!text.trim()) return "Write the response first: it must not be empty.";
  if (text.length > maxChars) return `Too long: ${text.length} characters, at most ${maxChars}.`;
  return "";
}
