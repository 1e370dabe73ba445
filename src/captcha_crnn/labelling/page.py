"""The labelling page: one image large, the model's reading typed in and selected, keyboard only.

Enter saves and moves on (so a right suggestion costs one key), typing replaces the suggestion, Esc skips,
Ctrl+Z goes back, Ctrl+U marks the image unreadable. Inline CSS and JS, nothing fetched from elsewhere.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>captcha-crnn label</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 52em; margin: 2em auto; padding: 0 1em; color: #222; }
  #current { display: block; min-height: 6em; max-width: 100%; height: 9em; object-fit: contain;
             image-rendering: pixelated; background: #f4f4f4; margin: 1em 0; }
  #label { font: 2em ui-monospace, monospace; letter-spacing: 0.08em; width: 100%; box-sizing: border-box;
           padding: 0.2em 0.4em; }
  #label.bad { outline: 3px solid #b00020; }
  #upcoming img { height: 3em; margin-right: 0.5em; opacity: 0.7; background: #f4f4f4; }
  #error { color: #b00020; min-height: 1.4em; }
  .muted { color: #666; }
  .flag { color: #b00020; font-weight: bold; }
  kbd { border: 1px solid #aaa; border-radius: 3px; padding: 0 0.3em; font-size: 0.9em; }
  button { font-size: 1em; }
</style></head>
<body>
<h1>captcha-crnn label</h1>
<p id="progress" class="muted" aria-live="polite">loading...</p>
<img id="current" alt="the image to label">
<div id="suggestion" class="muted"></div>
<input id="label" autocomplete="off" spellcheck="false" aria-label="label">
<div id="error" aria-live="assertive"></div>
<div id="upcoming"></div>
<p class="muted" id="keys"><kbd>Enter</kbd> save and next &middot; <kbd>Esc</kbd> skip &middot;
<kbd>Ctrl</kbd>+<kbd>Z</kbd> back &middot; <kbd>Ctrl</kbd>+<kbd>U</kbd> can't read</p>
<p><button id="retrain" type="button">Retrain now</button> <span id="job" class="muted"></span></p>
<script>
const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
let status = null, current = null, history = [], reviewItems = [], reviewAt = 0, busy = false;

// One action (save, skip, back) at a time, the field read-only meanwhile: keys pressed before the next
// image is shown would otherwise type into, and save over, the image just labelled.
async function act(action) {
  if (busy) return;
  busy = true;
  $("label").readOnly = true;
  try { await action(); } finally { busy = false; $("label").readOnly = false; }
}

// Never throws: a network error or a body that is not JSON comes back as {ok: false, data: {detail}}.
async function api(path, body) {
  const options = body === undefined ? {} :
    {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)};
  let response;
  try { response = await fetch(path, options); }
  catch (e) { return {ok: false, status: 0, data: {detail: "the server cannot be reached; is it still running?"}}; }
  const data = await response.json().catch(() => ({}));
  if (!response.ok && typeof data.detail !== "string")
    data.detail = `the server answered ${response.status} ${response.statusText}`;
  return {ok: response.ok, status: response.status, data};
}

function progress(c) {
  $("progress").textContent = `${c.labelled} / ${c.total} labelled, ${c.accepted} suggestions accepted ` +
    `unchanged, ${c.unreadable} unreadable` + (status.charset ? ` \\u00b7 characters: ${status.charset}` : "");
}

function show(item, text) {
  current = item;
  $("current").src = "api/image?file=" + enc(item.file);
  $("current").alt = item.file;
  const confidence = item.confidence == null ? "" : ` (${(100 * item.confidence).toFixed(1)}%)`;
  $("suggestion").textContent = item.file + (item.suggestion == null ? "" : ` \\u2014 model: ${item.suggestion}${confidence}`);
  const input = $("label");
  input.value = text ?? item.suggestion ?? "";
  input.classList.remove("bad");
  $("error").textContent = "";
  input.focus();
  input.select();
}

async function next() {
  const r = await api("api/next");
  if (!r.ok && r.status !== 404) { $("error").textContent = `${r.data.detail} (Esc to try again)`; return; }
  if (r.status === 404) {
    current = null;
    $("current").removeAttribute("src");
    $("suggestion").textContent = "";
    $("label").value = "";
    $("error").textContent = "";
    $("progress").textContent = "All done: " + r.data.detail;
    return;
  }
  progress(r.data);
  $("upcoming").replaceChildren(...r.data.upcoming.map((f) => {
    const img = document.createElement("img");
    img.src = "api/image?file=" + enc(f); img.alt = f; return img;
  }));
  show(r.data);
}

async function save(unreadable) {
  if (!current) return;
  const file = current.file, label = $("label").value.trim();
  if (!unreadable && !label) { $("error").textContent = "type the text, or Ctrl+U if it cannot be read"; return; }
  const suggestion = current.suggestion ?? "";  // as shown: a retrain may have changed the model's since
  const r = unreadable ? await api("api/unreadable", {file}) : await api("api/label", {file, label, suggestion});
  if (!r.ok) { $("label").classList.add("bad"); $("error").textContent = r.data.detail || "not saved"; return; }
  history.push(file);
  await next();
}

async function back() {
  const file = history.pop();
  if (!file) { $("error").textContent = "nothing to go back to"; return; }
  const r = await api("api/item?file=" + enc(file));
  if (r.ok) show(r.data, r.data.label || "");
  else { history.push(file); $("error").textContent = r.data.detail; }
}

function checkCharset() {
  const chars = status && status.charset;
  const bad = chars ? [...new Set([...$("label").value].filter((c) => !chars.includes(c)))] : [];
  $("label").classList.toggle("bad", bad.length > 0);
  $("error").textContent = bad.length ? `not in the charset: ${bad.join(" ")}` : "";
}

function showReview() {
  const item = reviewItems[reviewAt];
  if (!item) { $("progress").textContent = "Review: nothing labelled yet"; return; }
  current = item;
  $("current").src = "api/image?file=" + enc(item.file);
  $("label").value = item.label;
  $("label").readOnly = true;
  $("suggestion").innerHTML = "";
  const note = document.createElement("span");
  note.className = item.disagrees ? "flag" : "muted";
  note.textContent = `${item.file} \\u2014 model reads ${item.suggestion ?? "nothing"}` +
    (item.disagrees ? " (disagrees: a typo?)" : "");
  $("suggestion").append(note);
  const flagged = reviewItems.filter((i) => i.disagrees).length;
  $("progress").textContent = `Review ${reviewAt + 1} / ${reviewItems.length}; ${flagged} where the model disagrees`;
}

$("label").addEventListener("input", checkCharset);
document.addEventListener("keydown", (e) => {
  if (status && status.review) {
    if (e.key === "Enter" || e.key === "ArrowRight") reviewAt = Math.min(reviewAt + 1, reviewItems.length - 1);
    else if (e.key === "ArrowLeft") reviewAt = Math.max(reviewAt - 1, 0);
    else return;
    e.preventDefault(); showReview(); return;
  }
  if (e.target instanceof HTMLButtonElement && (e.key === "Enter" || e.key === " ")) return;  // its click
  // A held key repeats: Enter held down would accept suggestion after suggestion, unseen.
  if (e.repeat && (e.key === "Enter" || e.key === "Escape" || e.ctrlKey)) { e.preventDefault(); return; }
  if (e.key === "Enter") { e.preventDefault(); act(() => save(false)); }
  else if (e.key === "Escape") {
    e.preventDefault();
    if (current) {
      const file = current.file;
      act(async () => {
        const r = await api("api/skip", {file});
        if (r.ok) await next(); else $("error").textContent = r.data.detail;
      });
    }
  } else if (e.ctrlKey && (e.key === "z" || e.key === "Z")) { e.preventDefault(); act(back); }
  else if (e.ctrlKey && (e.key === "u" || e.key === "U")) { e.preventDefault(); act(() => save(true)); }
});

async function pollJob() {
  const r = await api("api/retrain");
  const job = r.data;
  const text = {idle: "", unavailable: "retraining unavailable", running: `training on ${job.labels} labels...`,
                done: `retrained on ${job.labels} labels: ${job.message}`, failed: `retrain failed: ${job.message}`};
  $("job").textContent = text[job.state] ?? job.state;
  $("retrain").disabled = job.state === "running" || job.state === "unavailable";
}
$("retrain").addEventListener("click", async () => {
  const r = await api("api/retrain", {});
  if (!r.ok) $("job").textContent = r.data.detail;
  else pollJob();
  $("label").focus();
});

(async () => {
  status = (await api("api/status")).data;
  if (status.review) {
    $("retrain").hidden = true;
    $("keys").textContent = "Review (read-only): Enter or \\u2192 next, \\u2190 previous";
    reviewItems = (await api("api/review")).data;
    showReview();
  } else {
    await next();
    pollJob();
    setInterval(pollJob, 3000);  // --retrain-every starts jobs on the server side too
  }
})();
</script>
</body></html>
"""
