// The ranking page's keys: one table (KEY_HELP, which the "?" dialog lists) and one pure mapping
// from a key press to an action (keyAction), so every binding is tested in node without a page.

export const LETTERS = "ABCDEFGHIJKLMNOP";

export const KEY_HELP = [
  ["A B C …", "put that response next in the ranking"],
  ["= then a letter", "tie it with the previous place (where the project allows ties)"],
  ["Backspace", "undo the last placement"],
  ["Enter", "submit, wherever the focus is (the last unranked response goes last); Space presses a focused button"],
  ["Shift + letter", "flags of that response: then 1–4 toggle a flag, Esc closes"],
  ["S", "skip: choose a reason (1–5, Enter), then U undoes it for a few seconds"],
  ["U", "undo a skip while the notice shows"],
  ["1 – 7", "rate the best response (optional)"],
  ["R", "write a rationale (Ctrl + Enter submits from there, Esc leaves it)"],
  ["T", "raw text of every response on or off (what the model wrote, unformatted)"],
  ["I", "show the instructions again (or the Instructions button)"],
  ["Alt + ← / →", "on a focused place in the ranking: move it earlier or later (Delete takes it out)"],
  ["?", "show or hide this list"],
];

/**
 * What a key press means on the ranking page, or null for "let the browser handle it".
 *
 * @param {object} e  {key, shiftKey, ctrlKey, metaKey, altKey}
 * @param {object} ctx {target: "text"|"textarea"|"link"|"tier"|"other", dialog: null|"help"|"skip"|"instructions",
 *                      flagsOpen: index|null, responses: number, flags: number}
 */
export function keyAction(e, ctx) {
  const { key } = e;
  const target = ctx.target || "other";
  if (ctx.dialog === "help") return key === "?" || key === "Escape" ? { type: "help" } : null;
  if (ctx.dialog === "skip") {
    if (/^[1-9]$/.test(key)) return { type: "skip-reason", index: Number(key) - 1 };
    if (key === "Enter") return { type: "skip-confirm" };
    if (key === "Escape") return { type: "skip-cancel" };
    return null;
  }
  if (ctx.dialog) return null; // instructions and others: the dialog's own keys
  if (target === "textarea" || target === "text") {
    if (key === "Enter" && (e.ctrlKey || e.metaKey)) return { type: "submit" };
    if (key === "Escape") return { type: "leave-field" };
    if (key === "Enter" && target === "text") return { type: "submit" };
    return null;
  }
  if (key === "Enter") return target === "link" ? null : { type: "submit" };
  if (e.ctrlKey || e.metaKey) return null;
  if (e.altKey) {
    if (target === "tier" && key === "ArrowLeft") return { type: "tier-move", by: -1 };
    if (target === "tier" && key === "ArrowRight") return { type: "tier-move", by: 1 };
    return null;
  }
  if (target === "tier" && (key === "Delete" || key === "Backspace")) return { type: "tier-remove" };
  if (key === "?") return { type: "help" };
  if (key === "Escape") return ctx.flagsOpen != null ? { type: "flags-close" } : { type: "escape" };
  if (ctx.flagsOpen != null && /^[1-9]$/.test(key) && Number(key) <= ctx.flags) return { type: "flag-toggle", index: Number(key) - 1 };
  if (key === "Backspace") return { type: "undo" };
  if (key === "=") return { type: "tie" };
  if (/^[1-7]$/.test(key)) return { type: "rate", value: Number(key) };
  if (key.length !== 1 || !/[a-z]/i.test(key)) return null;
  const upper = key.toUpperCase();
  const index = LETTERS.indexOf(upper);
  if (e.shiftKey && index >= 0 && index < ctx.responses) return { type: "flags", index };
  // A response's letter wins: S, U, R and T are past P (the last label), only I can clash (9+ responses).
  if (!e.shiftKey && index >= 0 && index < ctx.responses) return { type: "place", index };
  if (upper === "S") return { type: "skip" };
  if (upper === "U") return { type: "skip-undo" };
  if (upper === "R") return { type: "rationale" };
  if (upper === "T") return { type: "raw" };
  if (upper === "I") return { type: "instructions" };
  return null;
}

/** The kind of element a key press came from, as keyAction wants it. */
export function targetKind(el) {
  if (!el || !el.tagName) return "other";
  const tag = el.tagName;
  if (tag === "TEXTAREA") return "textarea";
  if (tag === "SELECT") return "text";
  if (tag === "INPUT" && !["checkbox", "radio", "button", "submit"].includes(el.type)) return "text";
  // Links and buttons outside the task (the top bar: Projects, Log out) keep their own Enter.
  if ((tag === "A" || tag === "BUTTON") && el.closest && !el.closest("#rank-app")) return "link";
  if (el.classList && el.classList.contains("tier")) return "tier";
  return "other";
}
