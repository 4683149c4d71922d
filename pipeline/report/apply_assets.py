"""The apply report's own style, script and viewing help (on top of the shared shell)."""

HOW_TO_VIEW = (
    "<p>Each scan: <b>Compare</b> shows the input left of the slider and the output right of "
    "it; <b>Input</b>, <b>Output</b> and <b>Removed</b> show one of them; <b>Native size "
    "1:1</b> shows every pixel (scroll to pan). The full-resolution views are the PNG files in "
    "{views}/ beside this page.</p>"
)

STYLE = """
.gallery { display: flex; flex-wrap: wrap; gap: 0.6em; margin: 1em 0; }
.gallery a { display: block; width: 140px; text-decoration: none; color: #222; font-size: 0.8em; }
.gallery img { display: block; width: 140px; height: 140px; object-fit: contain; background: #000; }
section.scan { border-top: 1px solid #ccc; padding-top: 0.8em; margin-top: 1.5em; }
section.scan h3 { margin: 0 0 0.2em; font-size: 1.05em; }
.controls { display: flex; flex-wrap: wrap; gap: 0.4em 0.8em; align-items: center; margin: 0.5em \
0; }
.controls button { font: inherit; padding: 0.2em 0.7em; border: 1px solid #888; background: #f4f4f4;
  border-radius: 3px; cursor: pointer; }
.controls button[aria-pressed="true"] { background: #234; color: #fff; }
.stage { max-width: 100%; max-height: 85vh; overflow: auto; background: #000; text-align: center; }
.layers { position: relative; display: inline-block; max-width: 100%; line-height: 0; \
vertical-align: top; }
.layers img { display: block; max-width: 100%; max-height: 80vh; width: auto; height: auto; }
.stage.native .layers { max-width: none; }
.stage.native .layers img { max-width: none; max-height: none; }
.layers img.top { position: absolute; left: 0; top: 0; width: 100%; height: 100%; }
.divider { position: absolute; top: 0; bottom: 0; width: 2px; background: #ffcc00; pointer-events: \
none; }
.cropbox { position: absolute; border: 2px solid #ffcc00; pointer-events: none; }
.crops { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 0.8em 0; }
.crops figure { margin: 0; flex: 0 1 auto; max-width: 100%; }
.crops img { max-width: 100%; height: auto; image-rendering: pixelated; display: block; }
.scale { display: flex; flex-wrap: wrap; align-items: center; gap: 0.3em 0.5em; font-size: 0.9em; }
.scale span { white-space: nowrap; }
.scale .bar { width: 160px; height: 12px;
  background: linear-gradient(to right, #053061, #f7f7f7, #67001f); border: 1px solid #888; }
td.path { overflow-wrap: anywhere; text-align: left; min-width: 12em; }
th[data-sort="text"] { text-align: left; }
th[data-sort] { cursor: pointer; }
th[data-sort]::after { content: " ⇅"; color: #888; }
"""

SCRIPT = """
document.querySelectorAll('section.scan').forEach(function (scan) {
  var stage = scan.querySelector('.stage'), top = scan.querySelector('img.top');
  var base = scan.querySelector('img.base'), slider = scan.querySelector('input[type=range]');
  var divider = scan.querySelector('.divider'), buttons = \
scan.querySelectorAll('button[data-mode]');
  function setMode(mode) {
    buttons.forEach(function (b) { b.setAttribute('aria-pressed', String(b.dataset.mode === \
mode)); });
    var compare = mode === 'compare';
    slider.disabled = !compare;
    top.style.visibility = compare ? 'visible' : 'hidden';
    divider.style.visibility = compare ? 'visible' : 'hidden';
    base.src = scan.dataset[compare ? 'input' : mode];
  }
  function slide() {
    top.style.clipPath = 'inset(0 0 0 ' + slider.value + '%)';
    divider.style.left = slider.value + '%';
  }
  buttons.forEach(function (b) { b.addEventListener('click', function () { \
setMode(b.dataset.mode); }); });
  slider.addEventListener('input', slide);
  scan.querySelector('button.zoom').addEventListener('click', function (e) {
    var native = stage.classList.toggle('native');
    e.target.setAttribute('aria-pressed', String(native));
  });
  slide();
  setMode('compare');
});
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th[data-sort]').forEach(function (th, column) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var ascending = th.dataset.order !== 'asc';
      th.dataset.order = ascending ? 'asc' : 'desc';
      var numeric = th.dataset.sort === 'number';
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
        var c = numeric ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y);
        return ascending ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""
