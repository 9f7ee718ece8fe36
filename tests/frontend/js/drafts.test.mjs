// node --test: the demonstration page's drafts (frontend/static/frontend/write/drafts.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { dropDraft, saveDraft, startingText, textProblem } from "../../../frontend/static/frontend/write/drafts.js";

function memoryStorage() {
  const items = new Map();
  return { getItem: (k) => (items.has(k) ? items.get(k) : null), setItem: (k, v) => items.set(k, String(v)),
           removeItem: (k) => items.delete(k) };
}

test("a stored draft wins over the task's draft response, which wins over nothing", () => {
  const storage = memoryStorage();
  assert.equal(startingText(storage, 7, null), "");
  assert.equal(startingText(storage, 7, "From the model"), "From the model");
  saveDraft(storage, 7, "Mine");
  assert.equal(startingText(storage, 7, "From the model"), "Mine");
  assert.equal(startingText(storage, 8, "Other task"), "Other task");
  dropDraft(storage, 7);
  assert.equal(startingText(storage, 7, "From the model"), "From the model");
});

test("an empty stored draft is kept (the annotator cleared the text on purpose)", () => {
  const storage = memoryStorage();
  saveDraft(storage, 1, "");
  assert.equal(startingText(storage, 1, "Draft"), "");
});

test("a broken storage is not fatal", () => {
  const broken = { getItem() { throw new Error("off"); }, setItem() { throw new Error("full"); }, removeItem() { throw new Error("off"); } };
  saveDraft(broken, 1, "x");
  dropDraft(broken, 1);
  assert.equal(startingText(broken, 1, "Draft"), "Draft");
});

test("empty and too long texts are refused before sending", () => {
  assert.match(textProblem("  \n", 10), /empty/);
  assert.match(textProblem("x".repeat(11), 10), /11 characters, at most 10/);
  assert.equal(textProblem("fine", 10), "");
});
