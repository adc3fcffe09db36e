// Sorting and filtering for the test table. The table is complete without this
// script; it only reorders and hides rows. Data is read from the JSON block and
// written with textContent only, never as HTML. Allowed by the page's CSP hash,
// so any change here changes the hash (computed at render time).
(function () {
  "use strict";
  var table = document.getElementById("tests");
  var source = document.getElementById("energy-data");
  if (!table || !source) {
    return;
  }
  var data = JSON.parse(source.textContent);
  var records = data.tests;
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);

  function record(row) {
    return records[Number(row.getAttribute("data-i"))];
  }

  function compare(a, b) {
    // Missing figures sort last in both directions.
    if (a === null || a === "") {
      return b === null || b === "" ? 0 : 1;
    }
    if (b === null || b === "") {
      return -1;
    }
    if (a === b) {
      return 0;
    }
    return a > b ? 1 : -1;
  }

  function sortBy(header) {
    var column = Number(header.getAttribute("data-col"));
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    headers.forEach(function (h) {
      if (h.hasAttribute("data-col")) {
        h.setAttribute("aria-sort", "none");
      }
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var keyed = rows.map(function (row, position) {
      return { row: row, key: record(row)[column], position: position };
    });
    keyed.sort(function (x, y) {
      var missing = x.key === null || x.key === "" || y.key === null || y.key === "";
      var order = compare(x.key, y.key);
      if (!missing && !ascending) {
        order = -order;
      }
      return order || x.position - y.position;
    });
    var fragment = document.createDocumentFragment();
    keyed.forEach(function (item) {
      fragment.appendChild(item.row);
    });
    body.appendChild(fragment);
    rows = keyed.map(function (item) {
      return item.row;
    });
  }

  headers.forEach(function (header) {
    var button = header.querySelector("button");
    if (button && header.hasAttribute("data-col")) {
      button.addEventListener("click", function () {
        sortBy(header);
      });
    }
  });

  var controls = document.getElementById("test-controls");
  var text = document.getElementById("test-filter");
  var verdict = document.getElementById("verdict-filter");
  var count = document.getElementById("test-count");
  if (!controls || !text || !verdict || !count) {
    return;
  }
  controls.hidden = false;

  function applyFilter() {
    var needle = text.value.trim().toLowerCase();
    var wanted = verdict.value;
    var shown = 0;
    rows.forEach(function (row) {
      var item = record(row);
      var match = (!needle || String(item[0]).toLowerCase().indexOf(needle) !== -1) &&
        (!wanted || item[8] === wanted);
      row.hidden = !match;
      if (match) {
        shown += 1;
      }
    });
    count.textContent = shown === rows.length ? rows.length + " tests" : shown + " of " + rows.length + " tests";
  }

  text.addEventListener("input", applyFilter);
  verdict.addEventListener("change", applyFilter);
})();
