"""The web page at `/`: choose a model (from GET /v1/models), drop or choose an image, see it, its text,
confidence and, when asked to solve, its answer. The reading options (characters, length, solve) are the
API's query parameters. Inline CSS and JS, no build step and nothing fetched from elsewhere, so it works
offline."""

from captcha_crnn.arithmetic import SOLVERS

_SOLVER_OPTIONS = "".join(f'<option value="{name}">{name}</option>' for name in SOLVERS)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>captcha-crnn</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 40em; margin: 3em auto; padding: 0 1em; color: #222; }
  #drop { display: block; margin: 1em 0; border: 2px dashed #999; border-radius: 8px; padding: 2em;
          text-align: center; cursor: pointer; }
  #drop.over { border-color: #2a7d2a; background: #f3fbf3; }
  #drop:focus-within { outline: 3px solid #2a7d2a; }
  /* out of sight but in the tab order: keyboard users choose a file with Tab, then Enter or Space */
  .unseen { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  #preview { max-width: 100%; image-rendering: pixelated; margin: 1em 0; display: none; min-height: 2em; }
  #text { font: 2.2em ui-monospace, monospace; letter-spacing: 0.1em; }
  #answer { font: 1.6em ui-monospace, monospace; }
  #error { color: #b00020; }
  .muted { color: #666; }
</style></head>
<body>
<h1>captcha-crnn</h1>
<p><label for="models">Model</label> <select id="models"></select></p>
<p class="muted" id="model">loading model information...</p>
<details id="options"><summary>Reading options</summary>
<p><label>Characters <input id="charset" size="16" placeholder="all the model's"></label>
<label>Length <input id="length" size="7" placeholder="5, 4-6, any"></label>
<label>Solve <select id="solve"><option value="">as served</option>SOLVER_OPTIONS</select></label></p>
<p class="muted">Characters restrict what is read (the scores of other characters are masked); a length
keeps readings to it. Empty: the model's own.</p>
</details>
<label id="drop" for="file">Drop an image here, or click to choose one
  <input id="file" type="file" accept="image/*" class="unseen"></label>
<img id="preview" alt="the chosen image">
<div id="result" aria-live="polite">
  <div id="text"></div>
  <div id="answer"></div>
  <div id="confidence" class="muted"></div>
  <div id="error" role="alert"></div>
</div>
<p class="muted">API: <code>POST /v1/recognize</code> (one image), <code>POST /v1/recognize/batch</code>,
<code>GET /v1/model</code>, <code>GET /v1/models</code>, <code>POST /v1/models/{name}/recognize</code>,
<a href="docs">OpenAPI docs</a>.</p>
<script>
const $ = (id) => document.getElementById(id);
const models = {};  // name -> summary from GET /v1/models
let lastFile = null, previewUrl = null;
const READING = ["charset", "length", "solve"];  // the reading options: the API's query parameters

function showModel() {
  const m = models[$("models").value];
  $("model").textContent = m ? `model ${m.model_file}, characters ${m.charset}` : "no model";
}
fetch("v1/models").then((r) => r.json()).then((list) => {
  for (const m of list.models) {
    models[m.name] = m;
    $("models").add(new Option(m.name, m.name, m.name === list.default, m.name === list.default));
  }
  showModel();
}).catch(() => { $("model").textContent = "model information unavailable"; });
$("models").addEventListener("change", () => { showModel(); if (lastFile) recognize(lastFile); });

let latest = 0;  // a reading answered after a newer request was sent is stale: it is not shown
async function recognize(file) {
  const ticket = ++latest;
  lastFile = file;
  for (const id of ["text", "answer", "confidence", "error"]) $(id).textContent = "";
  const preview = $("preview");
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  preview.src = previewUrl = URL.createObjectURL(file);
  preview.style.display = "block";
  const body = new FormData();
  body.append("file", file, file.name);
  $("confidence").textContent = "reading...";
  const query = new URLSearchParams();
  for (const id of READING) if ($(id).value.trim()) query.set(id, $(id).value.trim());
  const name = $("models").value;  // none when the model list could not be fetched: the default model
  const url = (name ? `v1/models/${encodeURIComponent(name)}/recognize` : "v1/recognize") + `?${query}`;
  try {
    const response = await fetch(url, { method: "POST", body });
    const data = await response.json().catch(() => ({}));  // a proxy's error page is not JSON
    if (ticket !== latest) return;
    if (!response.ok) {
      $("confidence").textContent = "";
      $("error").textContent = data.detail || `the server answered ${response.status} ${response.statusText}`;
      return;
    }
    $("text").textContent = data.text || "(nothing read)";
    if ("answer" in data) {
      $("answer").textContent = data.answer === null ? `no answer: ${data.answer_error}` : `= ${data.answer}`;
    }
    $("confidence").textContent =
      `confidence ${(100 * data.confidence).toFixed(1)}%, ${data.elapsed_ms.toFixed(1)} ms`;
  } catch (err) {
    if (ticket !== latest) return;
    $("confidence").textContent = "";
    $("error").textContent = "the server cannot be reached; is it still running? Choose the image again to retry.";
  }
}
for (const id of READING) {
  $(id).addEventListener("change", () => { if (lastFile) recognize(lastFile); });
}
$("file").addEventListener("change", (e) => {
  if (e.target.files.length) recognize(e.target.files[0]);
  e.target.value = "";  // so that choosing the same file again (a retry) is a change too
});
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files.length) recognize(e.dataTransfer.files[0]);
});
</script>
</body></html>
""".replace("SOLVER_OPTIONS", _SOLVER_OPTIONS)
