// node --test: the ranking page's key mapping (frontend/static/frontend/rank/keys.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { KEY_HELP, keyAction, targetKind } from "../../../frontend/static/frontend/rank/keys.js";

const ctx = (over = {}) => ({ target: "other", dialog: null, flagsOpen: null, responses: 4, flags: 4, ...over });
const press = (key, mods = {}, over = {}) => keyAction({ key, shiftKey: false, ctrlKey: false, metaKey: false, altKey: false, ...mods }, ctx(over));

test("letters place their response; past the task's responses they do nothing", () => {
  assert.deepEqual(press("b"), { type: "place", index: 1 });
  assert.deepEqual(press("D"), { type: "place", index: 3 });
  assert.equal(press("e"), null);
});

test("Enter submits wherever the focus is, except in a text box and on a link outside the task", () => {
  for (const target of ["other", "tier", "text"]) assert.deepEqual(press("Enter", {}, { target }), { type: "submit" });
  assert.equal(press("Enter", {}, { target: "textarea" }), null); // a new line
  assert.deepEqual(press("Enter", { ctrlKey: true }, { target: "textarea" }), { type: "submit" });
  assert.equal(press("Enter", {}, { target: "link" }), null);
});

test("command letters are past the response letters", () => {
  assert.deepEqual(press("s"), { type: "skip" });
  assert.deepEqual(press("u"), { type: "skip-undo" });
  assert.deepEqual(press("r"), { type: "rationale" });
  assert.deepEqual(press("t"), { type: "raw" });
  assert.deepEqual(press("i"), { type: "instructions" });
  assert.deepEqual(press("i", {}, { responses: 9 }), { type: "place", index: 8 }); // a ninth response wins
});

test("Shift+letter opens that response's flags; digits then toggle flags, Escape closes", () => {
  assert.deepEqual(press("B", { shiftKey: true }), { type: "flags", index: 1 });
  assert.deepEqual(press("2", {}, { flagsOpen: 1 }), { type: "flag-toggle", index: 1 });
  assert.deepEqual(press("5", {}, { flagsOpen: 1 }), { type: "rate", value: 5 }); // only 4 flags
  assert.deepEqual(press("Escape", {}, { flagsOpen: 1 }), { type: "flags-close" });
  assert.deepEqual(press("2"), { type: "rate", value: 2 });
});

test("the skip dialog takes digits for reasons, Enter to confirm and Escape to cancel", () => {
  assert.deepEqual(press("3", {}, { dialog: "skip" }), { type: "skip-reason", index: 2 });
  assert.deepEqual(press("Enter", {}, { dialog: "skip" }), { type: "skip-confirm" });
  assert.deepEqual(press("Escape", {}, { dialog: "skip" }), { type: "skip-cancel" });
  assert.equal(press("a", {}, { dialog: "skip" }), null);
});

test("? toggles the key list, which swallows other keys while open", () => {
  assert.deepEqual(press("?"), { type: "help" });
  assert.deepEqual(press("?", {}, { dialog: "help" }), { type: "help" });
  assert.equal(press("a", {}, { dialog: "help" }), null);
});

test("on a focused place, Alt+arrows move it and Delete takes it out", () => {
  assert.deepEqual(press("ArrowLeft", { altKey: true }, { target: "tier" }), { type: "tier-move", by: -1 });
  assert.deepEqual(press("ArrowRight", { altKey: true }, { target: "tier" }), { type: "tier-move", by: 1 });
  assert.deepEqual(press("Delete", {}, { target: "tier" }), { type: "tier-remove" });
  assert.equal(press("ArrowLeft", { altKey: true }), null);
});

test("typing in a field is left alone and Ctrl shortcuts stay the browser's", () => {
  assert.equal(press("a", {}, { target: "textarea" }), null);
  assert.deepEqual(press("Escape", {}, { target: "textarea" }), { type: "leave-field" });
  assert.equal(press("c", { ctrlKey: true }), null);
  assert.deepEqual(press("Backspace"), { type: "undo" });
  assert.deepEqual(press("="), { type: "tie" });
});

test("every key the mapping knows is listed in the help table", () => {
  const listed = KEY_HELP.map(([keys]) => keys).join(" ");
  for (const key of ["Enter", "Backspace", "S", "U", "R", "T", "I", "?", "Shift", "Alt", "="]) assert.ok(listed.includes(key), key);
});

test("targetKind sorts elements the way the mapping expects", () => {
  const node = (tagName, extra = {}) => ({ tagName, classList: { contains: (c) => (extra.classes || []).includes(c) }, closest: () => extra.inApp ?? null, ...extra });
  assert.equal(targetKind(node("TEXTAREA")), "textarea");
  assert.equal(targetKind(node("INPUT", { type: "text" })), "text");
  assert.equal(targetKind(node("INPUT", { type: "checkbox" })), "other");
  assert.equal(targetKind(node("A")), "link");
  assert.equal(targetKind(node("A", { inApp: {} })), "other");
  assert.equal(targetKind(node("BUTTON")), "link"); // Log out in the top bar
  assert.equal(targetKind(node("BUTTON", { inApp: {} })), "other"); // a button of the task: Enter submits
  assert.equal(targetKind(node("LI", { classes: ["tier"] })), "tier");
  assert.equal(targetKind(null), "other");
});
