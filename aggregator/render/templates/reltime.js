(function () {
  // Progressive enhancement: without scripts the page shows absolute times and every image.
  // A thumbnail that cannot be loaded goes away instead of showing a broken-image box.
  document.querySelectorAll(".thumb img").forEach(function (img) {
    function drop() { img.parentNode.remove(); }
    if (img.complete && img.naturalWidth === 0 && img.currentSrc) drop();
    else img.addEventListener("error", drop);
  });
  // The absolute time is in the page; this adds "3 hours ago" and keeps it current.
  if (!window.Intl || !Intl.RelativeTimeFormat) return;
  var fmt = new Intl.RelativeTimeFormat(document.documentElement.lang || undefined, {numeric: "auto"});
  var steps = [[60, 1, "second"], [3600, 60, "minute"], [86400, 3600, "hour"],
               [2592000, 86400, "day"], [31536000, 2592000, "month"], [Infinity, 31536000, "year"]];
  function update() {
    var now = Date.now();
    document.querySelectorAll("time[datetime] .rel").forEach(function (span) {
      var s = (Date.parse(span.parentNode.getAttribute("datetime")) - now) / 1000;
      for (var i = 0; i < steps.length; i++) {
        if (Math.abs(s) < steps[i][0]) { span.textContent = fmt.format(Math.round(s / steps[i][1]), steps[i][2]); break; }
      }
    });
  }
  update();
  setInterval(update, 60000);
})();
